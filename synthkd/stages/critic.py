"""The critic: its labels (a file, an LLM judge, or the recipe's real examples plus what the
label evidence confirmed and overruled), training and scoring. `synthkd critic train|score`
and the flow's tasks both come through here."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from synthkd.errors import SynthkdError
from synthkd.stages.context import RunContext
from synthkd.stages.generate import round_seconds

JUDGE_N = 200
"""Records an LLM judge rates by default."""


def has_label_source(ctx: RunContext) -> bool:
    """Whether the recipe gives the critic anything to learn from (else it is skipped)."""
    task, config = ctx.recipe.task, ctx.recipe.critic
    if config.labels_file or config.judge:
        return True
    if task.kind == "annotate":
        return bool(task.shots_file)
    if task.kind == "document_kg":
        return bool(task.seed_kg)
    return True


def _real_seed_rows(ctx: RunContext) -> list[dict[str, Any]]:
    """The recipe's real examples as critic seed records."""
    from synthkd.critics import seeds_from_file

    task = ctx.recipe.task
    if task.kind == "labelled":
        return seeds_from_file(
            task.seeds, "labelled", text_column=task.text_column, label_column=task.label_column
        )
    if task.kind == "annotate":
        if not task.shots_file:
            raise SynthkdError(
                "no critic labels: this recipe has no shots_file to use as seeds; "
                "give --labels FILE or --judge SPEC"
            )
        return seeds_from_file(
            task.shots_file,
            "labelled",
            text_column=task.text_column,
            label_column=task.label_column,
        )
    if task.kind == "commonsense":
        return seeds_from_file(task.seed_triples, "commonsense")
    if not task.seed_kg:
        raise SynthkdError(
            "no critic labels: this recipe has no seed_kg; give --labels FILE or --judge SPEC"
        )
    return seeds_from_file(task.seed_kg, "document_kg")


EVIDENCE_CONFIDENCE = 0.7
"""Agreed probability of a record's own label (its `soft_labels`) for the critic to learn
it as a confirmed, acceptable record."""
EVIDENCE_CAP = 3
"""Evidence positives (and negatives) at most this many times the seeds: the user's real
examples keep their say."""


def _existing_run(ctx: RunContext) -> Any:
    """The run folder's tables when they exist (None: no run yet; nothing is created, so
    `synthkd critic train` on another corpus leaves the recipe's folder alone)."""
    from synthkd.data import RunStore

    if ctx.folder is not None and ctx.folder.remote:
        root, options = ctx.folder.uri, ctx.folder.options
    else:
        root, options = ctx.run_dir, None
    try:
        return RunStore.open(root, options)
    except SynthkdError:
        return None


def evidence_rows(run: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(confirmed, contradicted) generated records from the label evidence so far, read
    from the corpus and rejects of RUN (a `RunStore`; None: no run yet).

    Confirmed: generated corpus records whose agreed distribution (`soft_labels`, written by
    the evidence) gives their own label at least EVIDENCE_CONFIDENCE and the most (not the
    unlabelled pool's records: those are the user's texts). Contradicted:
    rejects with reason `label_disagreement` and relabelled records (`meta.asked_label`),
    each with the label that was asked for.
    """
    import json

    from synthkd.critics.evidence_result import REASON
    from synthkd.critics.pool import SOURCE as POOL_SOURCE
    from synthkd.stages.evidence import asked_label

    if run is None:
        return [], []
    confirmed, contradicted = [], []
    for row in run.corpus.read(columns=["text", "label", "soft_labels", "meta"]).to_pylist():
        try:
            dist = json.loads(row["soft_labels"]) if row["soft_labels"] else None
            meta = json.loads(row["meta"]) if row["meta"] else {}
        except ValueError:
            dist, meta = None, {}
        if not isinstance(dist, dict) or not dist:
            continue
        if isinstance(meta, dict) and meta.get("source") == POOL_SOURCE:
            continue  # the user's unlabelled texts, labelled by self-training: not generated
        asked = asked_label(row)
        if asked != row["label"]:  # relabelled: the text is evidence against its asked label
            contradicted.append({"text": row["text"], "label": asked})
        p = float(dist.get(row["label"]) or 0.0)
        if p >= EVIDENCE_CONFIDENCE and p >= max(float(v) for v in dist.values()):
            confirmed.append(row)
    if run.rejects is not None:
        rejects = run.rejects.read(columns=["text", "label", "reason"]).to_pylist()
        contradicted += [row for row in rejects if row["reason"] == REASON]
    return confirmed, contradicted


def judge(spec: str, rows: Any, rubric: str | None, n: int, seed: int) -> Any:
    """Labels from an LLM judge: chat messages to chat teachers; the teacher is closed after."""
    from synthkd.critics import JUDGE_SAMPLING, judge_labels_async
    from synthkd.generators import prompt_style, teacher_from_spec
    from synthkd.generators.teachers import SamplingParams, TeacherRequest

    teacher = teacher_from_spec(spec)
    params = SamplingParams(**JUDGE_SAMPLING)
    chat = prompt_style(teacher) == "chat"

    def make_request(prompt: str) -> Any:
        if chat:
            return TeacherRequest(messages=({"role": "user", "content": prompt},), params=params)
        return TeacherRequest(prompt=prompt, params=params)

    async def run():
        try:
            return await judge_labels_async(
                teacher, rows, make_request, rubric=rubric, n=n, seed=seed
            )
        finally:
            await teacher.aclose()

    return asyncio.run(run())


def critic_labels(
    ctx: RunContext,
    rows: Any,
    *,
    labels_file: str | Path | None = None,
    judge_spec: str | None = None,
    judge_n: int = JUDGE_N,
    seed: int | None = None,
    run: Any = None,
) -> Any:
    """The critic's `LabelSet`: a labels file and/or a judge, else the recipe's real examples
    (seeds and their corruptions) and, for labelled recipes with `critic.evidence_labels`,
    what the label evidence of the rounds so far confirmed and contradicted (read from RUN,
    a `RunStore`; default: the recipe's run folder)."""
    from synthkd.critics import LabelSet, auto_labels, evidence_labels, labels_from_file

    config = ctx.recipe.critic
    seed = ctx.seed if seed is None else seed
    found = LabelSet()
    labels_file = labels_file or config.labels_file
    if labels_file:
        found = found + labels_from_file(labels_file, rows)
    judge_spec = judge_spec or config.judge
    if judge_spec:
        found = found + judge(judge_spec, rows, config.judge_rubric, judge_n, seed)
    if not labels_file and not judge_spec:
        found = auto_labels(_real_seed_rows(ctx), labels=ctx.labels, seed=seed)
        if ctx.task_kind == "labelled" and config.evidence_labels:
            seeds = sum(label.accept for label in found.labels)
            confirmed, contradicted = evidence_rows(run if run is not None else _existing_run(ctx))
            found = found + evidence_labels(
                confirmed, contradicted, cap=EVIDENCE_CAP * seeds, seed=seed
            )
    return found


def fit_critic(
    ctx: RunContext,
    rows: Any = None,
    out: str | Path | None = None,
    *,
    labels_file: str | Path | None = None,
    judge_spec: str | None = None,
    judge_n: int = JUDGE_N,
    method: str = "auto",
    seed: int | None = None,
    progress: bool = False,
    run: Any = None,
) -> Any:
    """Train the critic (default: RUN/critic, replaced whole) on `critic_labels`; returns it.

    RUN (a `RunStore`) is where the label evidence is read; default: the recipe's run folder.
    """
    from synthkd.critics import train_critic

    if rows is None:
        rows = ctx.stores().corpus.read()
    seed = ctx.seed if seed is None else seed
    labels = critic_labels(
        ctx,
        rows,
        labels_file=labels_file,
        judge_spec=judge_spec,
        judge_n=judge_n,
        seed=seed,
        run=run,
    )
    target = Path(out) if out is not None else ctx.run_dir / "critic"
    return train_critic(
        labels,
        ctx.critic_config(),
        target,
        kind=ctx.kind,
        method=method,
        seed=seed,
        progress=progress,
    )


def score_store(
    critic: Any, store: Any, config: Any, message: str | None = None, progress: bool = False
) -> tuple[list[dict[str, Any]], int | None]:
    """Score every record of `store` and commit a version with critic_score and accepted.

    Returns the scored rows and the new version (None when the corpus is empty).
    """
    import pyarrow as pa

    from synthkd.critics import apply_critic

    if store.kind != critic.kind:
        raise SynthkdError(
            f"the critic judges {critic.kind} records but {store.uri} holds {store.kind}"
        )
    rows = store.read().to_pylist()
    if not rows:
        return [], None
    scored = apply_critic(critic, rows, config, progress=progress)
    scores = pa.table(
        {
            "id": [r["id"] for r in scored],
            "critic_score": [r["critic_score"] for r in scored],
            "accepted": [r["accepted"] for r in scored],
        }
    )
    version = store.update_scores(
        scores,
        critic.version,
        message or f"critic score: {critic.version}",
        threshold=critic.threshold,
    )
    return scored, version


def score_round(ctx: RunContext, round: int) -> dict[str, Any]:
    """The loop's scoring step: the run's critic scores every record (a new corpus version)."""
    from synthkd.critics import Critic

    started = time.perf_counter()
    critic = Critic.load(ctx.run_dir / "critic")
    scored, _ = score_store(
        critic,
        ctx.stores().corpus,
        ctx.critic_config(),
        f"critic score round {round}: {critic.version}",
    )
    return {
        "scored": len(scored),
        "accepted": sum(1 for row in scored if row["accepted"]),
        "threshold": critic.threshold,
        "seconds": round_seconds(started),
    }


def load_critic(path: str | Path) -> Any:
    """A critic folder written by `fit_critic` (one line if it is not one)."""
    from synthkd.critics import Critic

    return Critic.load(path)


def scoring_config(ctx: RunContext | None, critic: Any, balance: bool = True) -> Any:
    """The recipe's critic settings, or (no recipe) the critic's own target and `balance`."""
    from synthkd.critics import CriticConfig

    if ctx is not None:
        return ctx.critic_config()
    return CriticConfig(balance=balance, target_precision=critic.target_precision)


def label_by_hand(rows: Any, n: int, out: str | Path, *, seed: int = 0, console: Any = None) -> Any:
    """The terminal loop that asks a person to accept or reject sampled records."""
    from synthkd.critics import annotate

    return annotate(rows, n, out, seed=seed, console=console)
