"""The Prefect tasks of a distillation run: thin wrappers around `synthkd.stages`.

Each task takes the run's identity (`RunContext.identity()`: recipe and input-file
digests, code version, run folder, teacher, seed offset) plus plain values, and returns a
JSON-able dict. So Prefect's cache key sees every input file and the package's code,
not only the task's own source: an edited seed file or a changed room gives fresh
results, and a killed run resumes after its last finished task. Each task is
idempotent on its own too: generation skips samples already stored and the teacher's
response cache answers the rest; a repeated filter or scoring pass finds nothing to do.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import INPUTS, NO_CACHE, TASK_SOURCE

from synthkd import stages
from synthkd.flows.events import ProgressArtifact, emit

Identity = dict[str, Any]
"""`RunContext.identity()`: what a task takes instead of the context itself."""

CACHED: dict[str, Any] = {
    "cache_policy": INPUTS + TASK_SOURCE,
    "persist_result": True,
    "result_serializer": "json",
}


@task(name="generate-round", retries=2, retry_delay_seconds=5, **CACHED)
def generate_round(
    ident: Identity, round: int, focus: dict | None = None, wanted: dict | None = None
) -> dict:
    """Ask the teacher for this round's records; returns the generation report."""
    started = time.perf_counter()
    ctx = stages.context_from(ident)
    artifact = ProgressArtifact(f"generation-round-{round}", f"Generation, round {round}")

    def on_progress(snapshot) -> None:
        artifact.update(snapshot.requests_done / (snapshot.requests_total or 1))
        emit(
            "generate",
            round=round,
            done=snapshot.requests_done,
            total=snapshot.requests_total,
            records=snapshot.records,
            rate=snapshot.records_per_s,
            accepted=snapshot.acceptance,
        )

    report = stages.generate_round(ctx, round, focus=focus, wanted=wanted, progress=on_progress)
    artifact.update(1.0)
    result = report.to_dict()
    result["teacher_requests"] = report.usage.requests
    result.setdefault("seconds", round_(time.perf_counter() - started))
    return result


def round_(seconds: float) -> float:
    return float(f"{seconds:.2f}")


@task(name="filter-round", **CACHED)
def filter_round(ident: Identity, round: int) -> dict:
    """Rule filters and dedup over this round's records; failures move to rejects."""
    result = stages.filter_round(stages.context_from(ident), round)
    emit("filter", round=round, kept=result["kept"], rejected=result["rejected"])
    return result


@task(name="label-evidence", **CACHED)
def label_round(ident: Identity, round: int) -> dict | None:
    """Labels from evidence: relabel or reject (label_disagreement) this round's records."""
    emit("critic", round=round, action="label evidence")
    return stages.label_round(stages.context_from(ident), round)


@task(name="unlabelled-pool", **CACHED)
def pool_round(ident: Identity, round: int) -> dict | None:
    """The recipe's unlabelled pool, labelled by self-training; joins ROUND if CV holds."""
    ctx = stages.context_from(ident)
    if ctx.inputs.unlabelled:
        emit("critic", round=round, action="label the unlabelled pool")
    return stages.pool_round(ctx, round)


@task(name="train-critic", **CACHED)
def fit_critic(ident: Identity) -> dict:
    """Train the critic once per run (labels file, LLM judge, or the real examples)."""
    started = time.perf_counter()
    ctx = stages.context_from(ident)
    emit("critic", action="train")
    critic = stages.fit_critic(ctx)
    return {
        "path": str(ctx.run_dir / "critic"),
        "threshold": critic.threshold,
        "version": critic.version,
        "metrics": critic.metrics,
        "label_sources": critic.metrics.get("label_sources"),
        "seconds": round_(time.perf_counter() - started),
    }


@task(name="score-corpus", **CACHED)
def score_corpus(ident: Identity, round: int, critic_version: str) -> dict:
    """Score every record the critic has not seen (a new corpus version)."""
    emit("critic", action="score")
    return stages.score_round(stages.context_from(ident), round)


@task(name="decide-round", **CACHED)
def decide_round(ident: Identity, round: int, included: list[int], use_cut: bool) -> dict | None:
    """By CV over the real examples: does this round's corpus join, and which critic cut."""
    emit("critic", round=round, action="decide the round and the cut by CV")
    return stages.round_decision(stages.context_from(ident), round, included, use_cut)


@task(name="train-student", **CACHED)
def fit_student(
    ident: Identity,
    round: int,
    use_cut: bool,
    name: str,
    rounds: list[int] | None = None,
    threshold: float | None = None,
) -> dict:
    """Train a student on the corpus of ROUNDS (and the real examples); evaluate it."""
    emit("student", round=round, action=f"train {name}")
    return stages.fit_round_student(
        stages.context_from(ident), round, use_cut, name, rounds=rounds, threshold=threshold
    )


@task(name="export-student", cache_policy=NO_CACHE)  # the student dir is reinstalled per run
def export_serving_copy(
    ident: Identity,
    student_dir: str,
    round: int,
    use_cut: bool,
    fmt: str = "int8",
    rounds: list[int] | None = None,
    threshold: float | None = None,
) -> dict:
    """A serving copy of the kept student (int8 ONNX or static), measured on validation."""
    emit("student", action=f"export {fmt}")
    return stages.export_serving(
        stages.context_from(ident), student_dir, round, use_cut, fmt, rounds, threshold
    )


@task(name="teacher-baseline", **CACHED)
def teacher_baseline(ident: Identity, limit: int | None = None) -> dict | None:
    """The teacher as a classifier on the validation set, in its fastest honest mode."""
    ctx = stages.context_from(ident)
    if ctx.inputs.validation is not None:
        emit("teacher", action="score validation")
    return stages.teacher_baseline(ctx, limit)


@task(name="real-only-rival", **CACHED)
def real_only_rival(ident: Identity, out_dir: str) -> dict:
    """The best student on the user's own texts, chosen by cross-validation."""
    emit("student", action="real-examples-only rival")
    return stages.real_only_rival(stages.context_from(ident), Path(out_dir))


@task(name="score-test", cache_policy=NO_CACHE)  # students are reinstalled per run
def score_test(ident: Identity, models: dict[str, str]) -> dict | None:
    """The untouched figure: each model on the recipe's `test:` file."""
    ctx = stages.context_from(ident)
    if ctx.inputs.test is not None:
        emit("student", action="score the test file")
    return stages.score_test(ctx, models)
