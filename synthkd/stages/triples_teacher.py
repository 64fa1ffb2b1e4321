"""The teacher on the triples student's held-out gold: the same items, the same scores.

The teacher answers as the run uses it: its own prompts (few-shot for a base model),
its own parser and grounding checks, one sample per item. Document KG: each held-out
chunk goes through the entities then triples prompts; the triples that pass become its
prediction. Commonsense: one tail per held-out (head, relation). Answers go through the
response cache; the speed is that of this call, or, when every answer came from the
cache, the speed measured when they were first asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from pathlib import Path
from typing import Any

from synthkd.stages.context import RunContext
from synthkd.stages.generate import teacher_slots
from synthkd.stages.student import _teacher_speed
from synthkd.stages.triples import judge_tails, read_heldout


class _Collect:
    """A writer that keeps rows in memory (the held-out answers are no corpus)."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self._ids: set[str] = set()

    def add(self, row: dict[str, Any]) -> bool:
        if row.get("id") in self._ids:
            return False
        self._ids.add(row.get("id"))
        self.rows.append(row)
        return True

    def flush(self) -> None:
        return None


class _Fixed:
    """A task that asks exactly the given intents once (the held-out items)."""

    def __init__(self, task: Any, intents: list[dict[str, Any]]):
        self._task, self._intents = task, intents

    def plan(self, round, focus, wanted, attempt=0):
        return self._intents if attempt == 0 else []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._task, name)


def _ask(ctx: RunContext, task: Any, wanted: dict[str, int]) -> tuple[list, list, Any]:
    from synthkd.generators import generate

    slots = teacher_slots(ctx)
    records, rejects = _Collect(), _Collect()

    async def run():
        try:
            return await generate(
                task,
                slots,
                records,
                rejects,
                recipe=f"{ctx.name}-heldout",
                round=0,
                wanted=wanted,
                max_attempts=1,
            )
        finally:
            for slot in slots:
                with contextlib.suppress(Exception):
                    await slot.teacher.aclose()

    report = asyncio.run(run())
    name = f"{slots[0].teacher.backend}:{slots[0].teacher.model}"
    return records.rows, rejects.rows, (report, name)


def triples_teacher_baseline(ctx: RunContext) -> dict[str, Any] | None:
    """The teacher's scores and triples/s on the held-out gold (None without one)."""
    items = read_heldout(ctx.recipe.task)
    if not items:
        return None
    if ctx.task_kind == "commonsense":
        return _commonsense(ctx, items)
    return _kg(ctx, items)


def _speed(name: str, what: str, n: int, report: Any, seconds: float) -> float:
    measured = n / seconds if seconds > 0 and report.usage.cache_hits == 0 else 0.0
    return _teacher_speed(name, f"heldout-triples:{what}", measured)


def _commonsense(ctx: RunContext, items: list[dict[str, Any]]) -> dict[str, Any]:
    from synthkd.generators import make_task
    from synthkd.training import tail_scores

    task = make_task(ctx.recipe.task.model_dump(), ctx.recipe.templates)
    parent = {"id": "heldout", "round": 0}
    intents = []
    for i, item in enumerate(items):
        intent = task._tail_intent(parent, i, item["head"], item["relation"])
        intents.append({**intent, "samples": 1})
    started = time.perf_counter()
    records, _, (report, name) = _ask(ctx, _Fixed(task, intents), dict.fromkeys(task.groups, 10**6))
    seconds = time.perf_counter() - started
    said = {(r["head"], r["relation"]): r["tail"] for r in records}
    tails = [said.get((i["head"], i["relation"]), "") for i in items]
    scores = tail_scores(tails, items)
    verdict = judge_tails(ctx, [i["head"] for i in items], [i["relation"] for i in items], tails)
    return {
        "name": name,
        "exact_match": scores["exact_match"],
        "token_f1": scores["token_f1"],
        "critic_accuracy": sum(verdict) / len(verdict) if verdict else None,
        "answered": sum(bool(t) for t in tails),
        "items": len(items),
        "triples_per_s": _speed(name, "commonsense", len(records), report, seconds),
    }


def _kg(ctx: RunContext, items: list[dict[str, Any]]) -> dict[str, Any]:
    from synthkd.generators import make_task
    from synthkd.training import kg_scores

    with tempfile.TemporaryDirectory(prefix="synthkd-heldout-") as folder:
        for i, item in enumerate(items):
            Path(folder, f"heldout_{i:03d}.txt").write_text(item["chunk"], encoding="utf-8")
        config = {
            **ctx.recipe.task.model_dump(),
            "documents": str(Path(folder) / "*.txt"),
            "heldout_gold": None,
            "chunk_tokens": 100_000,
            "samples_per_chunk": 1,
        }
        task = make_task(config, ctx.recipe.templates)
        started = time.perf_counter()
        records, _, (report, name) = _ask(ctx, task, dict.fromkeys(task.groups, 10**6))
        seconds = time.perf_counter() - started
    predicted: list[list[tuple[str, str, str]]] = [[] for _ in items]
    for r in records:
        predicted[int(r["document_id"].rsplit("_", 1)[1])].append(
            (r["subject"], r["predicate"], r["object"])
        )
    scores = kg_scores(predicted, [list(map(tuple, i["triples"])) for i in items])
    return {
        "name": name,
        "kg_precision": scores["precision"],
        "kg_recall": scores["recall"],
        "kg_f1": scores["f1"],
        "kg_pair_f1": scores["pair_f1"],
        "predicted_triples": scores["predicted_triples"],
        "items": len(items),
        "triples_per_s": _speed(name, "document_kg", len(records), report, seconds),
    }
