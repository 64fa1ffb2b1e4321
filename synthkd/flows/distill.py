"""`distill`: the performance-guided distillation loop (PGKD) as one Prefect flow.

Round 0 writes the initial corpus, filters it, trains the critic, scores, trains and
evaluates the student. Each later round shows the teacher the student's weak classes,
most confused pairs and hard negatives, and asks for more of what the student gets
wrong. The loop stops when validation macro-F1 stops improving by more than epsilon
for `patience` rounds, or at the round or token budget. The best student is kept, and
the critic's cut is kept only if the student does not do worse without it.
"""

from __future__ import annotations

import json
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prefect import flow

from synthkd import stages
from synthkd.flows import report as reporting
from synthkd.flows.events import emit
from synthkd.flows.shipping import choose_shipped
from synthkd.flows.steps import (
    decide_round,
    export_serving_copy,
    filter_round,
    fit_critic,
    fit_student,
    generate_round,
    label_round,
    pool_round,
    real_only_rival,
    score_corpus,
    score_test,
    teacher_baseline,
)
from synthkd.flows.triples import TriplesLoop  # issue 14: the triples student

NO_STUDENT = "no student for this task kind yet"
STUDENT_NAMES = {"minilm": "LoRA MiniLM", "linear": "linear TF-IDF"}


def _run_id() -> str | None:
    """Prefect's id of this flow run: what metrics.json rows of this run are marked with."""
    from prefect.runtime import flow_run

    return flow_run.id


def next_focus(student: dict[str, Any], per_label: int) -> tuple[dict, dict[str, int]]:
    """What the next round asks for: more of the weak classes, shown the hard negatives."""
    f1 = student["per_class_f1"]
    weights = {label: (1.0 - score) + 0.02 for label, score in f1.items()}
    total = per_label * len(f1) // 2
    wanted = {
        label: max(1, round(total * w / sum(weights.values()))) for label, w in weights.items()
    }
    mean = sum(f1.values()) / len(f1)
    weak = sorted((label for label, score in f1.items() if score <= mean), key=f1.get)
    negatives = student["hard_negatives"]
    focus = {
        "labels": weak or None,
        "confusions": [
            [pair["true_label"], pair["predicted"]] for pair in negatives["confused_pairs"][:3]
        ],
        "hard_negatives": [
            {
                "text": h["text"],
                "label": h["true_label"],
                "predicted": h["predicted"],
                "confidence": h["confidence"],
            }
            for h in negatives["examples"][:10]
        ],
        "report": "Per-class F1: "
        + ", ".join(
            f"{label} {score:.2f}" for label, score in sorted(f1.items(), key=lambda x: x[1])
        ),
    }
    return focus, wanted


def _publish_artifacts(history: list[dict], report_path: Path | None = None) -> None:
    try:
        from prefect.artifacts import create_markdown_artifact, create_table_artifact

        columns = ["round", "generated", "accepted", "val_accuracy", "val_macro_f1", "seconds"]
        create_table_artifact(
            key="distill-metrics",
            table=[{k: row.get(k) for k in columns} for row in history],
            description="Per-round metrics of the distillation run",
        )
        if report_path is not None:
            create_markdown_artifact(
                key="distill-report", markdown=report_path.read_text(), description="Run report"
            )
    except Exception:  # artifacts are a view; a failing API never fails the run
        pass


@flow(name="distill", log_prints=True)
def distill(
    recipe: str,
    out_dir: str | None = None,
    teacher: str | None = None,
    rounds: int | None = None,
    fresh: bool = False,
    teacher_baseline_limit: int | None = None,
    continue_loop: bool = False,
    price: str | None = None,
) -> dict[str, Any]:
    """Run the whole distillation of RECIPE into OUT_DIR; returns the run summary."""
    # the recipe and every file it names are read and checked here, before any teacher call
    ctx = stages.open_context(recipe, out_dir, teacher=teacher)
    prices = stages.teacher_prices(ctx, price)  # issue 16: cost
    stages.check_budget(ctx, prices)
    # issue 16: on a folder with a finished run, `fresh`/`continue_loop` go on from it
    ctx, start = stages.start_run(ctx, continue_loop or fresh, _run_id())
    ctx = stages.remember(ctx)
    ident, loaded, run_dir = ctx.identity(), ctx.recipe, ctx.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    # annotate labels every input text once: a second round would ask for nothing new
    max_rounds = 1 if ctx.task_kind == "annotate" else (rounds or loaded.loop.rounds)
    classifier = ctx.is_classifier
    triples = TriplesLoop.start(ctx)  # commonsense / document KG with a generative student
    use_cut = loaded.critic.enabled and stages.has_label_source(ctx)
    per_label = getattr(loaded.task, "per_label", None) or getattr(loaded.task, "per_relation", 20)

    history: list[dict[str, Any]] = list(start.history)  # earlier runs' rows stay
    students: dict[int, dict[str, Any]] = start.students
    best_round, best_f1, stale, tokens, spent = start.best_round, start.best_f1, 0, 0, 0.0
    focus, wanted, critic = start.focus, start.wanted, start.critic
    included: list[int] = start.included  # the rounds whose records train the student (CV-accepted)
    stop_reason = f"round budget ({max_rounds})"
    if ctx.task_kind == "annotate":
        stop_reason = "every input text labelled once (annotate)"
    for r in range(start.first_round, start.first_round + max_rounds):
        emit("round", round=r, rounds=start.first_round + max_rounds)
        gen = generate_round(ident, r, focus, wanted)
        filtered = filter_round.submit(ident, r).result()
        stage_seconds = {"generate": gen["seconds"], "filter": filtered["seconds"]}
        evidence = label_round.submit(ident, r).result() if classifier else None
        if evidence:
            stage_seconds["label evidence"] = evidence["seconds"]
        # issue 13: the recipe's unlabelled pool joins the run's first round (before the critic)
        pool = pool_round.submit(ident, r).result() if r == start.first_round else None
        if pool:
            stage_seconds["unlabelled pool"] = pool["seconds"]
        scored = None
        if stages.has_label_source(ctx):
            if critic is None:
                critic = fit_critic(ident)
                stage_seconds["critic training"] = critic["seconds"]
            scored = score_corpus.submit(ident, r, critic["version"]).result()
            stage_seconds["critic scoring"] = scored["seconds"]
        tokens += gen["teacher_prompt_tokens"] + gen["teacher_completion_tokens"]
        row: dict[str, Any] = {
            "round": r,
            "run_id": start.run_id,
            **stages.round_cost(prices, gen, spent),
            "generated": gen["records"] + sum(gen["rejects"].values()),
            "accepted": filtered["kept"] - (evidence["rejected"] if evidence else 0),
            "rejected": sum(gen["rejects"].values())
            + filtered["rejected"]
            + (evidence["rejected"] if evidence else 0),
            "reject_reasons": {
                **gen["rejects"],
                **filtered["reasons"],
                **({"label_disagreement": evidence["rejected"]} if evidence else {}),
            },
            "label_evidence": evidence,
            **({"unlabelled_pool": pool} if pool else {}),
            "critic_accepted": scored["accepted"] if scored else None,
            "corpus_rows": scored["scored"] if scored else None,
            "teacher_requests": gen.get("teacher_requests"),
            "teacher_cache_hits": gen["teacher_cache_hits"],
            "teacher_prompt_tokens": gen["teacher_prompt_tokens"],
            "teacher_completion_tokens": gen["teacher_completion_tokens"],
            "records_per_s": gen["records_per_s"],
            "val_accuracy": None,
            "val_macro_f1": None,
        }
        if classifier:
            student, decision = _round_student(ident, r, included, use_cut, students, best_round)
            included = student["rounds"]
            if decision:
                stage_seconds["decisions (CV)"] = decision["seconds"]
                row["decision"] = {k: v for k, v in decision.items() if k != "seconds"}
            stage_seconds["student"] = student["seconds"] if student["round"] == r else 0.0
            students[r] = student
            baseline = student.get("baseline") or {}
            row.update(
                val_accuracy=student["val_accuracy"],
                val_macro_f1=student["val_macro_f1"],
                per_class_f1=student["per_class_f1"],
                baseline_val_accuracy=baseline.get("accuracy"),
                baseline_val_macro_f1=baseline.get("macro_f1"),
                student_train_rows=student["train_rows"],
            )
        if triples:
            triples.round(r, row, stage_seconds)
        row["stage_seconds"] = {k: round(v, 1) for k, v in stage_seconds.items()}
        row["seconds"] = round(sum(stage_seconds.values()), 1)
        spent += row["teacher_cost"] or 0.0
        history.append(row)
        reporting.write_metrics(run_dir, history)
        ctx.sync()  # object storage: this round's critic, students and metrics uploaded
        _publish_artifacts(history)
        emit("round_done", **row)
        if triples:
            stop = triples.after_round(r, loaded.loop.epsilon, loaded.loop.patience, per_label)
            if stop:
                stop_reason = stop
                break
            if loaded.loop.token_budget and tokens >= loaded.loop.token_budget:
                stop_reason = f"token budget ({loaded.loop.token_budget})"
                break
            if stop := stages.budget_stop(loaded.loop.max_cost, spent, row, None):
                stop_reason = stop
                break
            focus, wanted = triples.focus, triples.wanted
            continue
        if not classifier:
            if stop := stages.budget_stop(loaded.loop.max_cost, spent, row, None):
                stop_reason = stop
                break
            continue
        if row["val_macro_f1"] > best_f1 + loaded.loop.epsilon or best_round is None:
            best_round, best_f1, stale = r, row["val_macro_f1"], 0
        else:
            stale += 1
            if stale >= max(1, loaded.loop.patience):
                stop_reason = f"no improvement above epsilon for {stale} round(s)"
                break
        if loaded.loop.token_budget and tokens >= loaded.loop.token_budget:
            stop_reason = f"token budget ({loaded.loop.token_budget})"
            break
        focus, wanted = next_focus(students[r], per_label)
        if stop := stages.budget_stop(loaded.loop.max_cost, spent, row, wanted):
            stop_reason = stop
            break

    summary: dict[str, Any] = {
        "recipe": loaded.name,
        "run_dir": ctx.location,
        "rounds": len(history),
        "stop_reason": stop_reason,
    }
    finish: dict[str, float] = {}  # issue 17: where the end of the run's time goes
    if classifier and best_round is not None:
        summary.update(_finish_classifier(ctx, students, best_round, use_cut, finish))
        with _timed(finish, "teacher baseline"):
            limit = teacher_baseline_limit or loaded.loop.teacher_baseline_examples
            summary["teacher"] = teacher_baseline.submit(ident, limit).result()
    elif triples and triples.best_round is not None:
        with _timed(finish, "student, teacher on held-out gold"):
            summary.update(triples.finish())
    else:
        summary["student"] = NO_STUDENT
    summary["finish_seconds"] = {k: round(v, 1) for k, v in finish.items()}
    summary["run_id"] = start.run_id
    summary["cost"] = stages.cost_summary(history, summary, prices, start.run_id)
    kept = students.get(best_round) if classifier else None
    stages.save_round(ctx, start, best_round, kept, kept and next_focus(kept, per_label), critic)
    report_path = reporting.write_report(run_dir, loaded.name, history, summary)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    stages.finish_run(ctx, start, stop_reason, len(history) - len(start.history))
    ctx.sync()
    _publish_artifacts(history, report_path)
    remote = ctx.folder is not None and ctx.folder.remote
    summary["report"] = ctx.folder.join("report.md") if remote else str(report_path)
    return summary


def _round_student(
    ident: dict, r: int, included: list[int], use_cut: bool, students: dict, best: int | None
) -> tuple[dict, dict | None]:
    """This round's student: trained on the rounds the CV accepted, cut where the CV chose
    to; a round the CV turned down leaves the student as it was (not trained again)."""
    decision = decide_round.submit(ident, r, included, use_cut).result()
    rounds = decision["rounds"] if decision else sorted({*included, r})
    cut = use_cut and (decision is None or decision["threshold"] is not None)
    threshold = decision["threshold"] if decision else None
    if decision and not decision["accepted"] and best is not None:
        return {**students[best], "rounds": rounds}, decision
    student = fit_student.submit(ident, r, cut, "student", rounds, threshold).result()
    student.update(round=r, rounds=rounds, cut=cut, threshold=threshold)
    student["cut_cv"] = decision["cut"] if decision else None
    return student, decision


@contextmanager
def _timed(seconds: dict[str, float], stage: str):
    started = time.perf_counter()
    try:
        yield
    finally:
        seconds[stage] = seconds.get(stage, 0.0) + time.perf_counter() - started


def _without_predictions(rival: dict | None) -> dict | None:
    """The rival for the summary: no paths, no per-example records."""
    if not rival:
        return None
    drop = ("path", "correct", "val_correct")
    out = {k: v for k, v in rival.items() if k not in drop}
    if rival.get("cv_best"):
        out["cv_best"] = {k: v for k, v in rival["cv_best"].items() if k not in drop}
    return out


def _finish_classifier(
    ctx, students: dict, best_round: int, use_cut: bool, seconds: dict[str, float]
) -> dict:
    """Keep the best student; check the critic's cut against training without it.
    SECONDS gets the time of each stage of this end of the run."""
    ident, run_dir = ctx.identity(), ctx.run_dir
    best = students[best_round]
    chosen, cut_kept, ablations = best, None, {}
    first = students[min(students)]
    ablations["round 0 only"] = {k: first[k] for k in ("val_accuracy", "val_macro_f1")}
    ablations[f"after guided rounds (best, round {best_round})"] = {
        k: best[k] for k in ("val_accuracy", "val_macro_f1")
    }
    if use_cut and best.get("cut_cv"):  # the cut was chosen by CV on the real examples
        cv = best["cut_cv"]
        metric = cv["metric"].replace("_", " ")
        ablations[f"without the critic's cut (CV {metric})"] = {"cv": cv["no_cut"]}
        ablations[f"the best cut (CV {metric})"] = {"cv": cv["best"]}
        cut_kept = cv["chosen"]
    elif use_cut:
        emit("student", action="ablation without the critic's cut")
        with _timed(seconds, "ablation without the cut"):
            uncut = fit_student.submit(ident, best_round, False, "student-no-cut").result()
        ablations["with the critic's cut"] = {k: best[k] for k in ("val_accuracy", "val_macro_f1")}
        ablations["without the critic's cut"] = {
            k: uncut[k] for k in ("val_accuracy", "val_macro_f1")
        }
        cut_kept = best["val_macro_f1"] >= uncut["val_macro_f1"]
        if not cut_kept:
            chosen = uncut
    chosen_cut = chosen.get("cut", use_cut) if chosen is best else False
    rounds, threshold = chosen.get("rounds"), chosen.get("threshold") if chosen_cut else None
    with _timed(seconds, "real-examples-only rival"):
        rival = real_only_rival.submit(ident, str(run_dir / "rounds" / "real-only")).result()
    loop = ctx.recipe.loop
    pick = choose_shipped(chosen, rival, loop.ship_real_only, loop.ship_alpha)
    ship_rival = pick["from"] != "loop"
    stages.install_student(pick["path"], run_dir / "student")
    png = Path(chosen["path"]) / "confusion.png"  # every student folder's validation plot
    if png.exists() and not ship_rival:
        shutil.copy(png, run_dir / "student" / "confusion_matrix.png")
    kind = ctx.recipe.student.kind
    serving = static = None
    if kind == "minilm" and not ship_rival:  # the linear student is its own fastest form
        student_dir = str(run_dir / "student")
        with _timed(seconds, "export int8"):
            copy = export_serving_copy.submit(
                ident, student_dir, best_round, chosen_cut, "int8", rounds, threshold
            ).result()
        serving = {
            "name": f"{copy['format']} ONNX export, student/{Path(copy['path']).name}",
            **{k: copy[k] for k in ("val_accuracy", "val_macro_f1", "examples_per_s")},
        }
        with _timed(seconds, "export static"):
            copy = export_serving_copy.submit(
                ident, student_dir, best_round, chosen_cut, "static", rounds, threshold
            ).result()
        static = {
            "name": "static embeddings + linear head, student/static",
            **{k: copy[k] for k in ("val_accuracy", "val_macro_f1", "examples_per_s")},
        }
    models = {"shipped student": str(run_dir / "student")}
    if serving:
        models["int8 serving copy"] = str(run_dir / "student" / "int8")
        models["static-embedding copy"] = str(run_dir / "student" / "static")
    models["loop student (corpus + real)"] = chosen["path"]
    if rival:
        models[rival["name"]] = rival["path"]
        if rival.get("cv_best"):
            models[rival["cv_best"]["name"]] = rival["cv_best"]["path"]
    shipped = {"which": pick["which"], "why": pick["why"], "paired": pick["paired"]}
    result = {
        "best_round": best_round,
        "loop_student_accuracy": chosen["val_accuracy"],  # issue 16: cost per point
        "student_accuracy": pick["accuracy"],
        "student_macro_f1": pick["macro_f1"],
        "student_speed": {
            "name": pick["which"] if ship_rival else STUDENT_NAMES.get(kind, kind),
            "examples_per_s": None if ship_rival else chosen["examples_per_s"],
        },
        "student_serving": serving,
        "student_static": static,
        "speed_texts": stages.speed_texts(ctx),
        "critic_cut_kept": cut_kept,
        "ablations": ablations,
        "shipped": shipped,
        "real_only": _without_predictions(rival),
    }
    # the shipped student is a copy of the one that won: score it once
    copied = "loop student (corpus + real)" if pick["from"] == "loop" else pick["which"]
    same = {copied: "shipped student"}
    with _timed(seconds, "test scoring"):
        test = score_test.submit(ident, {k: v for k, v in models.items() if k not in same})
        result["test"] = test.result()
    if result["test"]:
        scored = result["test"]["models"]
        result["test"]["models"] = {name: scored[same.get(name, name)] for name in models}
    return result
