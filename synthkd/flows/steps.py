"""The Prefect tasks of a distillation run; each wires rooms together for one stage.

Every task takes a `RunContext` dict (recipe path and digest, run folder, teacher spec)
plus plain values and returns a JSON-able dict, so Prefect can cache it on its inputs
and source (a killed run resumes after its last finished task) and ship it to Dask
workers. Each task is idempotent on its own too: generation skips samples already
stored and the teacher's response cache answers the rest; a filter or scoring pass that
is repeated finds nothing left to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import task
from prefect.cache_policies import INPUTS, NO_CACHE, TASK_SOURCE

from synthkd.flows.events import ProgressArtifact, emit

RunContext = dict[str, Any]
"""{"recipe": path, "digest": sha256 of the recipe, "run_dir": path, "teacher": spec|None,
"seed_offset": int}"""

CACHED: dict[str, Any] = {
    "cache_policy": INPUTS + TASK_SOURCE,
    "persist_result": True,
    "result_serializer": "json",
}


def _since(started: float) -> float:
    """Seconds since `started`: each task reports its own duration, so a resumed run, whose
    finished tasks come from Prefect's cache, still reports what every round took."""
    return round(time.perf_counter() - started, 2)


def recipe_digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def make_context(
    recipe: str | Path, run_dir: str | Path, teacher: str | None = None, seed_offset: int = 0
) -> RunContext:
    """The run's identity: part of every task's cache key."""
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    return {
        "recipe": str(Path(recipe).resolve()),
        "digest": recipe_digest(recipe),
        "run_dir": str(Path(run_dir).resolve()),
        "teacher": teacher,
        "seed_offset": seed_offset,
    }


def load(ctx: RunContext):
    from synthkd.recipe import load_recipe

    return load_recipe(ctx["recipe"])


def stores(ctx: RunContext):
    from synthkd.data import CorpusStore

    recipe = load(ctx)
    kind = "labelled" if recipe.task.kind == "annotate" else recipe.task.kind
    run_dir = Path(ctx["run_dir"])
    corpus = CorpusStore.create(run_dir / "corpus", kind)
    rejects = CorpusStore.create(run_dir / "rejects", kind, rejects=True)
    return recipe, corpus, rejects


def read_examples(path: str | Path, text_column: str, label_column: str) -> pd.DataFrame:
    """A labelled file (JSONL, CSV or Parquet) as text/label columns."""
    from synthkd.errors import SynthkdError

    path = Path(path)
    if path.suffix in (".jsonl", ".json"):
        frame = pd.read_json(path, lines=path.suffix == ".jsonl")
    elif path.suffix == ".parquet":
        frame = pd.read_parquet(path)
    else:
        frame = pd.read_csv(path)
    for column in (text_column, label_column):
        if column not in frame.columns:
            raise SynthkdError(f"{path}: no column {column!r}")
    return pd.DataFrame({"text": frame[text_column].astype(str), "label": frame[label_column]})


def _teacher_slots(ctx: RunContext, recipe, **overrides):
    from synthkd.generators import teacher_mix

    sections = [s.model_dump() for s in recipe.teacher_sections()]
    offset = int(ctx.get("seed_offset") or 0)
    if offset:
        for section in sections:
            sampling = section.setdefault("sampling", {})
            sampling["seed"] = int(sampling.get("seed") or 0) + offset
    return teacher_mix(sections, ctx.get("teacher"), **overrides)


@task(name="generate-round", retries=2, retry_delay_seconds=5, **CACHED)
def generate_round(
    ctx: RunContext, round: int, focus: dict | None = None, wanted: dict | None = None
) -> dict:
    """Ask the teacher for this round's records; returns the generation report."""
    from synthkd.data import BufferedWriter
    from synthkd.generators import Focus, HardNegative, done_samples, generate, make_task

    recipe, corpus, rejects = stores(ctx)
    task_ = make_task(recipe.task.model_dump(), recipe.templates)
    slots = _teacher_slots(ctx, recipe)
    focus_obj = None
    if focus:
        focus_obj = Focus(
            labels=focus.get("labels"),
            confusions=[tuple(p) for p in focus.get("confusions", [])],
            hard_negatives=[HardNegative(**h) for h in focus.get("hard_negatives", [])],
            report=focus.get("report"),
        )
    done = done_samples(corpus, rejects, task_.group_column)
    artifact = ProgressArtifact(f"generation-round-{round}", f"Generation, round {round}")
    message = f"generate {recipe.name} round {round}"
    meta = {"round": round, "stage": "generate"}

    def on_progress(snapshot) -> None:
        total = snapshot.requests_total or 1
        artifact.update(snapshot.requests_done / total)
        emit(
            "generate",
            round=round,
            done=snapshot.requests_done,
            total=snapshot.requests_total,
            records=snapshot.records,
            rate=snapshot.records_per_s,
            accepted=snapshot.acceptance,
        )

    async def run():
        try:
            return await generate(
                task_,
                slots,
                writer,
                rejects_writer,
                recipe=recipe.name,
                round=round,
                focus=focus_obj,
                wanted=wanted,
                done=done,
                progress=on_progress,
            )
        finally:
            for slot in slots:
                with contextlib.suppress(Exception):
                    await slot.teacher.aclose()

    with (
        BufferedWriter(corpus, message, flush_rows=100, flush_seconds=15, metadata=meta) as writer,
        BufferedWriter(
            rejects, message, flush_rows=100, flush_seconds=15, metadata=meta
        ) as rejects_writer,
    ):
        report = asyncio.run(run())
    artifact.update(1.0)
    result = report.to_dict()
    result["teacher_requests"] = report.usage.requests
    return result


@task(name="filter-round", **CACHED)
def filter_round(ctx: RunContext, round: int) -> dict:
    """Rule filters and dedup over this round's records; failures move to rejects."""
    import pyarrow.compute as pc

    from synthkd.critics import CriticConfig, apply_filters

    started = time.perf_counter()
    recipe, corpus, rejects = stores(ctx)
    table = corpus.read()
    this_round = table.filter(pc.equal(table["round"], round)).sort_by("id")
    earlier = table.filter(pc.less(table["round"], round))
    echo = []
    if recipe.task.kind == "labelled":
        echo = read_examples(recipe.task.seeds, recipe.task.text_column, recipe.task.label_column)[
            "text"
        ].tolist()
    config = CriticConfig(**recipe.critic.model_dump())
    result = apply_filters(this_round, config, existing=earlier, kind=corpus.kind, echo_of=echo)
    known = rejects.ids()
    fresh = [row for row in result.rejects if row["id"] not in known]
    if fresh:  # rejects first, then delete: a kill in between repeats harmlessly
        rejects.append(fresh, f"filter {recipe.name} round {round}", {"round": round})
    kept_ids = {row["id"] for row in result.kept}
    dropped = [i for i in this_round["id"].to_pylist() if i not in kept_ids]
    if dropped:
        corpus.delete(
            dropped,
            f"filter {recipe.name} round {round}",
            {"round": round, "stage": "filter"},
        )
    reasons: dict[str, int] = {}
    for row in result.rejects:
        reasons[row["reason"]] = reasons.get(row["reason"], 0) + 1
    emit("filter", round=round, kept=len(result.kept), rejected=len(result.rejects))
    return {
        "kept": len(result.kept),
        "rejected": len(result.rejects),
        "reasons": reasons,
        "seconds": _since(started),
    }


@task(name="train-critic", **CACHED)
def fit_critic(ctx: RunContext) -> dict:
    """Train the critic once per run (labels file, LLM judge, or automatic labels)."""
    from synthkd.critics import CriticConfig, auto_labels, labels_from_file, train_critic

    started = time.perf_counter()
    recipe, corpus, _ = stores(ctx)
    config = CriticConfig(**recipe.critic.model_dump())
    out = Path(ctx["run_dir"]) / "critic"
    emit("critic", action="train")
    if config.labels_file:
        labels = labels_from_file(config.labels_file, corpus.read(), kind=corpus.kind)
    elif config.judge:
        labels = _judge_labels(recipe, corpus, config)
    else:
        labels = auto_labels(_seed_rows(recipe), kind=corpus.kind, labels=_group_names(recipe))
    if out.exists():
        shutil.rmtree(out)
    critic = train_critic(labels, config, out, kind=corpus.kind, seed=recipe.student.seed)
    return {
        "path": str(out),
        "threshold": critic.threshold,
        "version": critic.version,
        "metrics": critic.metrics,
        "seconds": _since(started),
    }


def _judge_labels(recipe, corpus, config):
    from synthkd.critics import JUDGE_SAMPLING, judge_labels
    from synthkd.generators import teacher_from_spec
    from synthkd.generators.teachers import SamplingParams, TeacherRequest

    judge = teacher_from_spec(config.judge)
    params = (
        SamplingParams(**JUDGE_SAMPLING) if isinstance(JUDGE_SAMPLING, dict) else JUDGE_SAMPLING
    )
    return judge_labels(
        judge,
        corpus.read(),
        lambda prompt: TeacherRequest(prompt=prompt, params=params),
        rubric=config.judge_rubric,
        n=200,
    )


def _seed_rows(recipe) -> list[dict]:
    import json

    task_ = recipe.task
    if task_.kind == "labelled":
        frame = read_examples(task_.seeds, task_.text_column, task_.label_column)
        return [{"kind": "labelled", **row} for row in frame.to_dict("records")]
    if task_.kind == "commonsense":
        lines = Path(task_.seed_triples).read_text().splitlines()
        return [{"kind": "commonsense", **json.loads(line)} for line in lines if line.strip()]
    if task_.kind == "document_kg" and task_.seed_kg:
        rows = []
        for i, line in enumerate(Path(task_.seed_kg).read_text().splitlines()):
            if not line.strip():
                continue
            item = json.loads(line)
            chunk = item.get("text") or item.get("chunk", "")
            for triple in item.get("triples", []):
                rows.append(
                    {
                        "kind": "document_kg",
                        "document_id": f"seed-{i}",
                        "chunk_id": f"seed-{i}",
                        "chunk_text": chunk,
                        **triple,
                    }
                )
        return rows
    return []


def _group_names(recipe) -> list[str]:
    task_ = recipe.task
    if task_.kind in ("labelled", "annotate"):
        return list(task_.labels)
    if task_.kind == "commonsense":
        return list(task_.relations)
    return []


@task(name="score-corpus", **CACHED)
def score_corpus(ctx: RunContext, round: int, critic_version: str) -> dict:
    """Score every record the critic has not seen (a new corpus version)."""
    from synthkd.critics import Critic, CriticConfig, accept_mask

    started = time.perf_counter()
    recipe, corpus, _ = stores(ctx)
    critic = Critic.load(Path(ctx["run_dir"]) / "critic")
    config = CriticConfig(**recipe.critic.model_dump())
    table = corpus.read()
    emit("critic", action="score", rows=table.num_rows)
    scores = critic.score(table)
    keep = accept_mask(critic, table, scores, config)
    import pyarrow as pa

    source = pa.table({"id": table["id"], "critic_score": scores, "accepted": keep})
    corpus.update_scores(source, critic.version, f"critic score round {round}")
    return {
        "scored": table.num_rows,
        "accepted": int(keep.sum()),
        "threshold": critic.threshold,
        "seconds": _since(started),
    }


@task(name="train-student", **CACHED)
def fit_student(ctx: RunContext, round: int, use_cut: bool, name: str) -> dict:
    """Train a student on the corpus (and the seeds) and evaluate it on validation."""
    import pyarrow.compute as pc

    from synthkd.training import (
        StudentConfig,
        evaluate,
        hard_negatives,
        load_student,
        train_student,
    )

    task_started = time.perf_counter()
    recipe, corpus, _ = stores(ctx)
    table = corpus.read()
    table = table.filter(pc.less_equal(table["round"], round))
    if use_cut and "accepted" in table.column_names:
        table = table.filter(pc.fill_null(table["accepted"], True))
    train = table.select(["text", "label", "soft_labels"]).to_pandas()
    seeds = read_examples(recipe.task.seeds, recipe.task.text_column, recipe.task.label_column)
    train = pd.concat([train, seeds.assign(soft_labels=None)], ignore_index=True)
    validation = read_examples(
        recipe.task.validation, recipe.task.text_column, recipe.task.label_column
    )
    out = Path(ctx["run_dir"]) / "rounds" / f"round-{round}" / name
    if out.exists():
        shutil.rmtree(out)
    emit("student", round=round, action=f"train {name}", rows=len(train))
    started = time.perf_counter()
    config = StudentConfig(**recipe.student.model_dump())
    result = train_student(config, train, validation, out, progress=False)
    student = load_student(out)
    texts, labels = validation["text"].tolist(), validation["label"].tolist()
    probabilities = student.predict_proba(texts, batch_size=32)
    report = evaluate(
        student, texts, labels, plot_path=out / "confusion_matrix.png", probabilities=probabilities
    )
    negatives = hard_negatives(student, texts, labels, k=20, probabilities=probabilities)
    return {
        "path": str(out),
        "train_rows": len(train),
        "train_seconds": float(f"{time.perf_counter() - started:.2f}"),
        "val_accuracy": report.accuracy,
        "val_macro_f1": report.macro_f1,
        "per_class_f1": {k: v["f1"] for k, v in report.per_class.items()},
        "examples_per_s": report.examples_per_s_batch32,
        "baseline": result.baseline,
        "hard_negatives": asdict(negatives),
        "seconds": _since(task_started),
    }


@task(name="export-student", cache_policy=NO_CACHE)  # the student dir is reinstalled per run
def export_serving_copy(ctx: RunContext, student_dir: str, fmt: str = "int8") -> dict:
    """The serving copy of the kept student (int8 ONNX), measured on validation like it."""
    from synthkd.training import evaluate, export_student, load_student

    recipe = load(ctx)
    emit("student", action=f"export {fmt}")
    target = export_student(student_dir, fmt)
    validation = read_examples(
        recipe.task.validation, recipe.task.text_column, recipe.task.label_column
    )
    report = evaluate(
        load_student(target), validation["text"].tolist(), validation["label"].tolist()
    )
    return {
        "path": str(target),
        "format": fmt,
        "val_accuracy": report.accuracy,
        "val_macro_f1": report.macro_f1,
        "examples_per_s": report.examples_per_s_batch32,
    }


@task(name="teacher-baseline", **CACHED)
def teacher_baseline(ctx: RunContext, limit: int | None = None) -> dict | None:
    """The teacher as a classifier on the validation set, in its fastest honest mode."""
    from synthkd.generators import make_task, prompt_style
    from synthkd.training import TeacherClassifier, evaluate

    recipe = load(ctx)
    if recipe.task.kind != "labelled" or not recipe.task.validation:
        return None
    # no response cache: its answers would time the cache, not the teacher
    slot = _teacher_slots(ctx, recipe, cache=False)[0]
    labels = {name: spec.model_dump() for name, spec in recipe.task.labels.items()}
    annotate = make_task(
        {
            "kind": "annotate",
            "input": recipe.task.validation,
            "text_column": recipe.task.text_column,
            "labels": labels,
            "shots_file": recipe.task.seeds,
            "label_column": recipe.task.label_column,
        },
        recipe.templates,
    )
    header, suffix, *_ = annotate.header(prompt_style(slot.teacher, slot.style))
    validation = read_examples(
        recipe.task.validation, recipe.task.text_column, recipe.task.label_column
    )
    if limit:
        validation = validation.sample(n=min(limit, len(validation)), random_state=0)
    emit("teacher", action="score validation", rows=len(validation))
    classifier = TeacherClassifier(slot.teacher, list(recipe.task.labels), header, suffix)
    try:
        report = evaluate(
            classifier, validation["text"].tolist(), validation["label"].tolist(), latency_samples=8
        )
    finally:
        classifier.close()
    return {
        "name": f"{slot.teacher.backend}:{slot.teacher.model}",
        "accuracy": report.accuracy,
        "macro_f1": report.macro_f1,
        "examples_per_s": report.examples_per_s_batch32,
    }
