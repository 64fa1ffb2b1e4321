"""The run folder's metrics.json and report.md, with the plots a person would rather look at."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

from synthkd.data import write_atomic
from synthkd.flows import report_choices as choices

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

REQUIRED_METRICS = (
    "round",
    "generated",
    "accepted",
    "val_accuracy",
    "val_macro_f1",
    "teacher_prompt_tokens",
    "teacher_completion_tokens",
    "seconds",
)


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON so that a kill never leaves half a file."""
    write_atomic(path, json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n")


def write_metrics(run_dir: Path, rounds: Sequence[dict[str, Any]]) -> Path:
    """metrics.json: one object per round (the contract in docs/architecture.md)."""
    for row in rounds:
        missing = [key for key in REQUIRED_METRICS if key not in row]
        if missing:
            raise ValueError(f"round metrics lack {missing}")
    path = run_dir / "metrics.json"
    write_json_atomic(path, list(rounds))
    return path


def _f1_axis(ax, values: Sequence[float | None]) -> None:
    """Zoom on the scores (from 0.05 below the lowest): rounds differ by a few points,
    which a 0-1 axis flattens into one line."""
    present = [v for v in values if v is not None]
    low = min(present, default=0.0)
    ax.set_ylim(max(0.0, (int(low * 20) - 1) / 20), 1.005)


def plot_macro_f1(rounds: Sequence[dict[str, Any]], path: Path) -> Path:
    xs = [r["round"] for r in rounds]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(xs, [r["val_macro_f1"] for r in rounds], marker="o", label="student (LoRA)")
    baseline = [r.get("baseline_val_macro_f1") for r in rounds]
    if any(b is not None for b in baseline):
        ax.plot(xs, baseline, marker="s", linestyle="--", label="frozen-encoder baseline")
    ax.set_xlabel("round")
    ax.set_ylabel("validation macro-F1")
    ax.set_xticks(xs)
    _f1_axis(ax, [r["val_macro_f1"] for r in rounds] + baseline)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title("Validation macro-F1 per round")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_per_class_f1(rounds: Sequence[dict[str, Any]], path: Path) -> Path:
    xs = [r["round"] for r in rounds]
    labels = sorted({label for r in rounds for label in (r.get("per_class_f1") or {})})
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for label in labels:
        ax.plot(
            xs, [(r.get("per_class_f1") or {}).get(label) for r in rounds], marker="o", label=label
        )
    ax.set_xlabel("round")
    ax.set_ylabel("validation F1")
    ax.set_xticks(xs)
    _f1_axis(ax, [(r.get("per_class_f1") or {}).get(label) for r in rounds for label in labels])
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    ax.set_title("Per-class F1 per round")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


_fmt = choices.fmt


def rounds_table(rounds: Sequence[dict[str, Any]]) -> str:
    header = (
        "| round | generated | accepted | corpus rows | val accuracy | val macro-F1 "
        "| baseline macro-F1 | prompt tokens | completion tokens | seconds |\n"
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    lines = [
        f"| {r['round']} | {r['generated']} | {r['accepted']} | {_fmt(r.get('corpus_rows'))} "
        f"| {_fmt(r['val_accuracy'])} | {_fmt(r['val_macro_f1'])} "
        f"| {_fmt(r.get('baseline_val_macro_f1'))} | {r['teacher_prompt_tokens']} "
        f"| {r['teacher_completion_tokens']} | {_fmt(r['seconds'], 1)} |"
        for r in rounds
    ]
    return header + "\n".join(lines) + "\n"


def student_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The kept student and its serving copy, as rows of name, scores and speed."""
    rows = []
    speed = summary.get("student_speed") or {}
    if summary.get("student_accuracy") is not None:
        rows.append(
            {
                "name": speed.get("name", "LoRA MiniLM"),
                "val_accuracy": summary["student_accuracy"],
                "val_macro_f1": summary.get("student_macro_f1"),
                "examples_per_s": speed.get("examples_per_s"),
            }
        )
    for key in ("student_serving", "student_static"):
        if summary.get(key):
            rows.append(summary[key])
    return rows


def _sample(summary: dict[str, Any]) -> str:
    """ ", on N of the validation examples" when the teacher was scored on a sample."""
    teacher, lengths = summary.get("teacher") or {}, summary.get("speed_texts") or {}
    count, total = teacher.get("examples"), lengths.get("examples")
    return f", on {count} of the validation examples" if count and total and count < total else ""


def speedup(row: dict[str, Any], teacher: dict[str, Any]) -> float | None:
    if row.get("examples_per_s") and teacher.get("examples_per_s"):
        return row["examples_per_s"] / teacher["examples_per_s"]
    return None


def write_report(
    run_dir: Path,
    recipe_name: str,
    rounds: Sequence[dict[str, Any]],
    summary: dict[str, Any],
) -> Path:
    """report.md: the per-round table, the plots, student vs teacher and the ablations."""
    if summary.get("triples_student"):  # commonsense / document KG: their own report
        from synthkd.flows.triples_report import triples_report

        text = triples_report(run_dir, recipe_name, rounds, summary)
        return write_atomic(run_dir / "report.md", text)
    scored = any(r.get("val_macro_f1") is not None for r in rounds)
    parts = [f"# synthkd run report: {recipe_name}\n"]
    best = summary.get("best_round")
    stopped = f"Stopped: {summary.get('stop_reason', '–')}."
    if best is None:
        parts.append(f"No student: {summary.get('student', 'none was trained')}. {stopped}\n")
    else:
        parts.append(
            f"Best student: round {best}, validation accuracy "
            f"{_fmt(summary.get('student_accuracy'))}, macro-F1 "
            f"{_fmt(summary.get('student_macro_f1'))}. {stopped}\n"
        )
    parts.append("## Rounds\n")
    parts.append(rounds_table(rounds))
    if scored:
        plots = run_dir / "plots"
        plots.mkdir(exist_ok=True)
        plot_macro_f1(rounds, plots / "macro_f1_per_round.png")
        plot_per_class_f1(rounds, plots / "per_class_f1_per_round.png")
        parts.append("\n![macro-F1 per round](plots/macro_f1_per_round.png)\n")
        parts.append("![per-class F1 per round](plots/per_class_f1_per_round.png)\n")

    teacher = summary.get("teacher") or {}
    parts.append("\n## Student vs teacher\n")
    if teacher:
        parts.append(
            "| model | val accuracy | val macro-F1 | examples/s | x teacher |\n"
            "|---|---:|---:|---:|---:|\n"
            f"| teacher ({teacher.get('name', '?')}, few-shot label scoring{_sample(summary)}) "
            f"| {_fmt(teacher.get('accuracy'))} | {_fmt(teacher.get('macro_f1'))} "
            f"| {_fmt(teacher.get('examples_per_s'), 1)} | 1 |\n"
        )
        for row in student_rows(summary):
            parts.append(
                f"| student ({row['name']}) | {_fmt(row['val_accuracy'])} "
                f"| {_fmt(row['val_macro_f1'])} | {_fmt(row['examples_per_s'], 1)} "
                f"| {_fmt(speedup(row, teacher), 0)} |\n"
            )
        lengths = summary.get("speed_texts") or {}
        parts.append(
            f"\nexamples/s at batch size 32 on the {lengths.get('examples', '')} validation "
            f"texts (mean {_fmt(lengths.get('mean_chars'), 0)} characters), in this process, "
            "on this machine; the teacher keeps its few-shot header in the KV cache and "
            "scores only the labels. `benchmarks/student_vs_teacher.py` times whole "
            "`synthkd predict` processes instead.\n"
        )
        if choices.plot_speed_accuracy(summary, run_dir / "plots" / "accuracy_vs_speed.png"):
            parts.append("\n![accuracy vs examples/s](plots/accuracy_vs_speed.png)\n")
    else:
        parts.append("Teacher-as-classifier baseline not measured for this task.\n")

    parts.extend(_shipped_section(summary))
    parts.extend(_test_section(summary))
    parts.extend(_evidence_section(rounds))
    parts.extend(choices.decisions_section(rounds))
    parts.extend(choices.pool_section(rounds))  # issue 13: the unlabelled pool
    parts.extend(_stage_section(rounds, summary.get("finish_seconds")))
    parts.extend(_cost_section(rounds, summary))  # issue 16
    ablations = summary.get("ablations") or {}
    if ablations:
        parts.append("\n## Ablations\n")
        parts.append("| variant | val accuracy | val macro-F1 | CV score |\n|---|---:|---:|---:|\n")
        for name, values in ablations.items():
            parts.append(
                f"| {name} | {_fmt(values.get('val_accuracy'))} "
                f"| {_fmt(values.get('val_macro_f1'))} | {_fmt(values.get('cv'))} |\n"
            )
        if summary.get("critic_cut_kept") is not None:
            verdict = (
                "kept" if summary["critic_cut_kept"] else "dropped (it did not help the student)"
            )
            parts.append(f"\nThe critic's cut was {verdict}.\n")

    for title, rel in (
        ("Critic precision-yield curve", "critic/precision_yield.png"),
        ("Final confusion matrix", "student/confusion_matrix.png"),
    ):
        if (run_dir / rel).exists():
            parts.append(f"\n## {title}\n\n![{title}]({rel})\n")
            if rel.startswith("critic/"):
                parts.extend(choices.critic_sources(run_dir))

    return write_atomic(run_dir / "report.md", "".join(parts))


def _cost_section(rounds: Sequence[dict[str, Any]], summary: dict[str, Any]) -> list[str]:
    from synthkd.stages import cost_section

    return cost_section(rounds, summary)


def _test_section(summary: dict[str, Any]) -> list[str]:
    """The untouched figure: the recipe's `test:` file, read by nothing but this report."""
    test = summary.get("test")
    if not test:
        return []
    rows = [
        "\n## Test (untouched)\n",
        f"Scored once, at the end, on `{test['file']}` ({test['examples']} examples), "
        "which no part of the loop reads.\n\n",
        "| model | test accuracy | test macro-F1 |\n|---|---:|---:|\n",
    ]
    for name, values in test["models"].items():
        rows.append(
            f"| {name} | {_fmt(values.get('accuracy'))} | {_fmt(values.get('macro_f1'))} |\n"
        )
    return rows


def _evidence_section(rounds: Sequence[dict[str, Any]]) -> list[str]:
    """Labels from evidence: kept, relabelled and dropped per round and per label."""
    judged = [r for r in rounds if r.get("label_evidence")]
    if not judged:
        return []
    rows = [
        "\n## Labels from evidence\n",
        "Each generated record's asked-for label against a classifier on your real "
        "examples and an out-of-fold classifier (cleanlab); disagreements are relabelled "
        "or rejected (`label_disagreement`).\n\n",
        "| round | label | kept | relabelled away | relabelled in | dropped |\n",
        "|---:|---|---:|---:|---:|---:|\n",
    ]
    for r in judged:
        for label, counts in sorted(r["label_evidence"].get("per_label", {}).items()):
            rows.append(
                f"| {r['round']} | {label} | {counts.get('kept', 0)} "
                f"| {counts.get('relabelled', 0)} | {counts.get('relabelled_in', 0)} "
                f"| {counts.get('dropped', 0)} |\n"
            )
    return rows


def _stage_section(
    rounds: Sequence[dict[str, Any]], finish: dict[str, float] | None = None
) -> list[str]:
    """Where each round's time went, stage by stage, then the end of the run's stages."""
    timed = [r for r in rounds if r.get("stage_seconds")]
    if not timed:
        return []
    stages = list(dict.fromkeys(k for r in timed for k in r["stage_seconds"]))
    rows = [
        "\n## Time per stage (seconds)\n",
        "| round | " + " | ".join(stages) + " | total |\n",
        "|---:|" + "---:|" * (len(stages) + 1) + "\n",
    ]
    for r in timed:
        cells = [_fmt(r["stage_seconds"].get(k), 1) for k in stages]
        rows.append(f"| {r['round']} | " + " | ".join(cells) + f" | {_fmt(r['seconds'], 1)} |\n")
    if finish:
        rows.append("\nAfter the last round: ")
        rows.append(", ".join(f"{stage} {_fmt(sec, 1)}" for stage, sec in finish.items()))
        rows.append(f"; {_fmt(sum(finish.values()), 1)} in all.\n")
    return rows


def _shipped_section(summary: dict[str, Any]) -> list[str]:
    """Which student was shipped, against the one trained on the user's examples only."""
    shipped, rival = summary.get("shipped"), summary.get("real_only")
    if not shipped or not rival:
        return []
    rows = [
        "\n## Shipped student vs your examples alone\n",
        f"Shipped: **{shipped['which']}**, because {shipped['why']}.\n\n",
        f"Cross-validation over your {rival['real_examples']} real examples "
        f"(seeds and validation), {rival['selection']['metric']} ranks the candidates. "
        "In each fold the corpus rows' labels are decided again from that fold's real "
        "examples only, so no held-out example votes for the corpus."
        + (
            f" real+pool: self-trained on {rival['pool_texts']} of your unlabelled texts, "
            "each fold's student labelling them itself."
            if rival.get("pool_texts")
            else ""
        )
        + "\n\n",
        "| candidate | trained on | CV accuracy | CV macro-F1 |\n|---|---|---:|---:|\n",
    ]
    for c in rival["selection"]["ranking"]:
        if c.get("skipped"):
            continue
        rows.append(
            f"| {c['kind']} | {c['data']} | {_fmt(c.get('accuracy'))} "
            f"| {_fmt(c.get('macro_f1'))} |\n"
        )
    if shipped.get("paired"):
        rows += [
            "\nStudents are compared on the same real examples: the loop's student on "
            "validation, the others out-of-fold. The CV winner ships unless the loop's student "
            "beats it by an exact one-sided McNemar test (p <= `loop.ship_alpha`):\n\n",
            "| A vs B | A right, B wrong | A wrong, B right | examples | p (A not better) "
            "|\n|---|---:|---:|---:|---:|\n",
        ]
        for name, t in shipped["paired"].items():
            rows.append(
                f"| {name} | {t['better']} | {t['worse']} | {t['examples']} | {t['p']:.3f} |\n"
            )
    return rows
