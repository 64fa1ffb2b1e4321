"""Generate one round of records into the run's corpus, and the filter pass over it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from synthkd.stages.context import FLUSH_ROWS, FLUSH_SECONDS, RunContext


def teacher_slots(ctx: RunContext, **overrides: Any) -> list[Any]:
    """The recipe's teacher mix (or --teacher), every sampling seed moved by the seed offset."""
    from synthkd.generators import teacher_mix

    sections = [s.model_dump() for s in ctx.recipe.teacher_sections()]
    if ctx.seed_offset:
        for section in sections:
            sampling = section.setdefault("sampling", {})
            sampling["seed"] = int(sampling.get("seed") or 0) + ctx.seed_offset
    return teacher_mix(sections, ctx.teacher, **overrides)


def _focus(focus: dict | None) -> Any:
    if not focus:
        return None
    from synthkd.generators import Focus, HardNegative

    return Focus(
        labels=focus.get("labels"),
        confusions=[tuple(pair) for pair in focus.get("confusions", [])],
        hard_negatives=[HardNegative(**h) for h in focus.get("hard_negatives", [])],
        report=focus.get("report"),
    )


def generate_round(
    ctx: RunContext,
    round: int = 0,
    *,
    focus: dict | None = None,
    wanted: dict[str, int] | None = None,
    n: int | None = None,
    progress: Callable[[Any], None] | None = None,
) -> Any:
    """Ask the teacher for this round's records; returns the `GenerationReport`.

    Samples already stored (a resumed run) are skipped; the teacher's response cache
    answers the rest of what was asked before. `focus` and `wanted` are what the loop
    asks a guided round for (JSON-able: see `synthkd.flows.distill.next_focus`). On a
    Dask cluster the groups are dealt out to the workers (`synthkd.stages.scale`).
    """
    from synthkd.stages import scale

    with scale.cluster() as client:
        if client is not None:
            return ClusterReport(scale.generate_on_cluster(client, ctx, round, focus, wanted, n))
    return generate_here(ctx, round, focus=focus, wanted=wanted, n=n, progress=progress)


class ClusterReport:
    """The workers' generation reports merged: what `GenerationReport` offers callers."""

    def __init__(self, merged: dict[str, Any]):
        from types import SimpleNamespace

        self._merged = merged
        self.usage = SimpleNamespace(requests=merged.get("teacher_requests", 0))

    def to_dict(self) -> dict[str, Any]:
        return dict(self._merged)


def generate_here(
    ctx: RunContext,
    round: int = 0,
    *,
    focus: dict | None = None,
    wanted: dict[str, int] | None = None,
    n: int | None = None,
    progress: Callable[[Any], None] | None = None,
) -> Any:
    """`generate_round` in this process (each cluster worker runs it for its groups)."""
    from synthkd.data import BufferedWriter
    from synthkd.generators import done_samples, generate, make_task

    recipe = ctx.recipe
    task = make_task(recipe.task.model_dump(), recipe.templates)
    slots = teacher_slots(ctx)
    run = ctx.stores()
    done = done_samples(run.corpus, run.rejects, task.group_column)
    message = f"generate {recipe.name} round {round}"
    meta = {"round": round, "stage": "generate"}

    async def ask(writer, rejects_writer):
        try:
            return await generate(
                task,
                slots,
                writer,
                rejects_writer,
                recipe=recipe.name,
                round=round,
                focus=_focus(focus),
                wanted=wanted,
                n=n,
                done=done,
                progress=progress,
            )
        finally:
            for slot in slots:
                with contextlib.suppress(Exception):
                    await slot.teacher.aclose()

    options = {"flush_rows": FLUSH_ROWS, "flush_seconds": FLUSH_SECONDS, "metadata": meta}
    options["background"] = True  # commits overlap the requests in flight (issue 17)
    with (
        BufferedWriter(run.corpus, message, **options) as writer,
        BufferedWriter(run.rejects, message, **options) as rejects_writer,
    ):
        return asyncio.run(ask(writer, rejects_writer))


def filter_round(ctx: RunContext, round: int = 0) -> dict[str, Any]:
    """Rule filters and dedup over this round's records; what fails moves to rejects.

    Idempotent: rejects are written before the corpus rows are deleted, so a kill in
    between repeats harmlessly, and a second pass finds nothing left to do.
    """
    import pyarrow.compute as pc

    from synthkd.critics import apply_filters

    started = time.perf_counter()
    run = ctx.stores()
    table = run.corpus.read()
    this_round = table.filter(pc.equal(table["round"], round)).sort_by("id")
    earlier = table.filter(pc.less(table["round"], round))
    echo = []
    if ctx.task_kind == "labelled" and ctx.inputs.real is not None:
        echo = ctx.inputs.real["text"].tolist()  # a record that copies a seed is no new data
    from synthkd.stages import scale

    placed: list[dict] = []
    with scale.cluster() as client:
        if client is not None and this_round.num_rows:
            result, placed = scale.filter_on_cluster(
                client, this_round, earlier, ctx.critic_config(), run.corpus.kind, echo
            )
        else:
            result = apply_filters(
                this_round,
                ctx.critic_config(),
                existing=earlier,
                kind=run.corpus.kind,
                echo_of=echo,
            )
    message = f"filter {ctx.name} round {round}"
    known = run.rejects.ids()
    fresh = [row for row in result.rejects if row["id"] not in known]
    if fresh:
        run.rejects.append(fresh, message, {"round": round, "stage": "filter"})
    kept = {row["id"] for row in result.kept}
    dropped = [i for i in this_round["id"].to_pylist() if i not in kept]
    if dropped:
        run.corpus.delete(dropped, message, {"round": round, "stage": "filter"})
    reasons: dict[str, int] = {}
    for row in result.rejects:
        reasons[row["reason"]] = reasons.get(row["reason"], 0) + 1
    return {
        "kept": len(result.kept),
        "rejected": len(result.rejects),
        "reasons": reasons,
        "seconds": round_seconds(started),
        **({"workers": placed} if placed else {}),
    }


def round_seconds(started: float) -> float:
    """Seconds since `started`, as a stage reports them (a cached task keeps its own)."""
    return round(time.perf_counter() - started, 2)
