"""`synthkd run --estimate`: what round 0 would ask of the teachers, without asking them.

The recipe's round 0 is planned and rendered exactly as the generation driver would
(same plan, same prompts, same teacher per intent), then counted: requests, samples,
prompt tokens (about 4 characters a token, as the openai client's rate limiter counts
them) and completion tokens at most `max_tokens` per sample. Samples the response cache
already holds are free. Nothing is written and no teacher is called: teachers are built
lazily (no model load, no connection) and the cache is only read when it exists.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from synthkd.stages.context import RunContext
from synthkd.stages.cost import money, teacher_prices
from synthkd.stages.generate import teacher_slots


def _slot_of(intent_id: str, weights: list[float]) -> int:
    """The teacher of an intent: the driver's deterministic weighted choice."""
    if len(weights) == 1:
        return 0
    digest = hashlib.sha256(intent_id.encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64 * sum(weights)
    for i, weight in enumerate(weights):
        point -= weight
        if point < 0:
            return i
    return len(weights) - 1


def _requests(ctx: RunContext, slots: list[Any]) -> list[tuple[int, Any]]:
    """(slot index, TeacherRequest) of round 0's first pass."""
    from synthkd.generators import default_wanted, make_task, prompt_style

    task = make_task(ctx.recipe.task.model_dump(), ctx.recipe.templates)
    styles = [prompt_style(s.teacher, s.style) for s in slots]
    if ctx.task_kind == "annotate":
        header, suffix, *_ = task.header(styles[0])
        return [
            (0, task.request(header, task.prepared(item.text), suffix))
            for item in task.items(None)
            if item.text.strip()
        ]
    weights = [s.weight for s in slots]
    out = []
    for intent in task.plan(0, None, default_wanted(task, None), 0):
        i = _slot_of(intent["id"], weights)
        out.append((i, task.render(intent, styles[i], slots[i].sampling)))
    return out


def _cached(teacher: Any, keys: list[str]) -> int:
    """How many of KEYS the teacher's response cache already answers (0 without a cache)."""
    from synthkd.generators.teachers import ResponseCache, default_cache_path

    config = teacher.config
    path = config.cache_path or default_cache_path()
    if not config.cache or not keys or not path or not os.path.exists(path):
        return 0
    cache = ResponseCache(path)
    try:
        return len(cache.get_many(keys))
    finally:
        close = getattr(cache, "close", None)
        if close:
            close()


def estimate_round0(ctx: RunContext, price: str | None = None) -> dict[str, Any]:
    """Requests, samples, tokens and money of round 0, per teacher and in total."""
    import json

    slots = teacher_slots(ctx)
    prices = teacher_prices(ctx, price)
    per: list[dict[str, Any]] = [
        {
            "teacher": f"{s.teacher.backend}:{s.teacher.model}",
            "requests": 0,
            "samples": 0,
            "cached_samples": 0,
            "prompt_tokens": 0,
            "completion_tokens_max": 0,
        }
        for s in slots
    ]
    keys: list[list[str]] = [[] for _ in slots]
    for i, request in _requests(ctx, slots):
        teacher, row = slots[i].teacher, per[i]
        text = request.prompt if request.prompt is not None else json.dumps(request.messages)
        row["requests"] += 1
        row["samples"] += request.n
        row["prompt_tokens"] += (len(text) // 4 + 1) * request.n  # one API call per sample
        row["completion_tokens_max"] += request.params.max_tokens * request.n
        keys[i] += [request.sample_key(teacher.backend, teacher.model, k) for k in range(request.n)]
    for i, slot in enumerate(slots):
        row = per[i]
        row["cached_samples"] = _cached(slot.teacher, keys[i])
        paid = 1 - row["cached_samples"] / row["samples"] if row["samples"] else 0.0
        price_i = [prices[min(i, len(prices) - 1)]]
        row["cost_max"] = money(
            price_i,
            round(row["prompt_tokens"] * paid),
            round(row["completion_tokens_max"] * paid),
        )
    total = {
        key: sum(r[key] for r in per)
        for key in (
            "requests",
            "samples",
            "cached_samples",
            "prompt_tokens",
            "completion_tokens_max",
        )
    }
    costs = [r["cost_max"] for r in per]
    total["cost_max"] = None if any(c is None for c in costs) else round(sum(costs), 6)
    with_follow_ups = ctx.task_kind in ("commonsense", "document_kg")
    return {
        "recipe": ctx.name,
        "round": 0,
        "teachers": per,
        "total": total,
        "max_cost": ctx.recipe.loop.max_cost,
        "note": "first pass of round 0; groups that fall short are asked again (up to 2 "
        "more passes)"
        + (
            "; follow-up requests (later stages of a chain) are not counted"
            if with_follow_ups
            else ""
        )
        + ". Prompt tokens are about 4 characters each; completion tokens are at most max_tokens.",
    }
