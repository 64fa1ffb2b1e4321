"""What a run costs: teacher prices, money per round, the budget, and the price of a point.

Users pay a hosted teacher per token, so each round reports its tokens and money, a run
stops cleanly at `loop.max_cost`, and the summary says what one point of accuracy over
the real-examples-only student cost. Prices are per million prompt and completion tokens
(`teacher.price_prompt`, `teacher.price_completion`, or `--price PROMPT,COMPLETION`);
the in-process backends (llamacpp, vllm) cost 0 unless priced, an unpriced openai
teacher's cost is unknown (None), never guessed. Tokens answered by the response cache
were paid for before: they count as 0 tokens and 0 money.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from synthkd.errors import SynthkdError
from synthkd.stages.context import RunContext

LOCAL_BACKENDS = ("llamacpp", "vllm")
"""Backends that run on the user's own machine: free unless the recipe prices them."""


@dataclass(frozen=True)
class Price:
    """One teacher's price per million tokens; None: unknown."""

    teacher: str
    prompt: float | None
    completion: float | None

    @property
    def known(self) -> bool:
        return self.prompt is not None and self.completion is not None


def parse_price(text: str) -> tuple[float, float]:
    """`--price 0.15,0.60` -> (0.15, 0.6): money per million prompt, completion tokens."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 2 or any(v < 0 or v != v or v == float("inf") for v in values):
        raise SynthkdError(
            f"--price {text!r}: give PROMPT,COMPLETION, the money per million prompt and "
            "completion tokens, e.g. --price 0.15,0.60"
        )
    return values[0], values[1]


def teacher_prices(ctx: RunContext, price: str | None = None) -> list[Price]:
    """The price of each teacher of the run (the recipe's mix, or --teacher)."""
    from synthkd.generators.teachers import parse_spec

    sections = ctx.recipe.teacher_sections()
    if ctx.teacher:
        sections = sections[:1]
    given = parse_price(price) if price else None
    prices = []
    for section in sections:
        spec = ctx.teacher or section.spec
        prompt, completion = given or (section.price_prompt, section.price_completion)
        if prompt is None and completion is None:
            if parse_spec(spec).backend in LOCAL_BACKENDS:
                prompt, completion = 0.0, 0.0
        elif prompt is None or completion is None:  # one price given: the other is free
            prompt, completion = prompt or 0.0, completion or 0.0
        prices.append(Price(spec, prompt, completion))
    return prices


def money(prices: Sequence[Price], prompt_tokens: int, completion_tokens: int) -> float | None:
    """What the tokens cost; None when a teacher has no price. A mix of teachers with
    different prices is charged at its highest prices (an upper bound: usage is summed
    over the mix)."""
    if not prices or not all(p.known for p in prices):
        return None
    prompt = max(p.prompt for p in prices)  # type: ignore[type-var]
    completion = max(p.completion for p in prices)  # type: ignore[type-var]
    return round((prompt_tokens * prompt + completion_tokens * completion) / 1e6, 6)


def check_budget(ctx: RunContext, prices: Sequence[Price]) -> None:
    """`loop.max_cost` needs a price for every teacher: one line now, not mid-run."""
    if ctx.recipe.loop.max_cost is None:
        return
    unknown = [p.teacher for p in prices if not p.known]
    if unknown:
        raise SynthkdError(
            f"loop.max_cost needs a price for teacher {unknown[0]!r}: set teacher.price_prompt "
            "and teacher.price_completion in the recipe, or --price PROMPT,COMPLETION"
        )


def round_cost(prices: Sequence[Price], gen: dict[str, Any], spent: float) -> dict[str, Any]:
    """A round's money and the run's total so far (metrics.json fields)."""
    cost = money(prices, gen["teacher_prompt_tokens"], gen["teacher_completion_tokens"])
    return {
        "teacher_cost": cost,
        "run_cost": None if cost is None else round(spent + cost, 6),
    }


def budget_stop(
    max_cost: float | None, spent: float, last: dict[str, Any], next_wanted: dict | None
) -> str | None:
    """Why the run stops for money, or None: it has spent the budget, or the next round
    (priced like the last one, scaled by how many records it asks for) would pass it."""
    if max_cost is None:
        return None
    if spent >= max_cost:
        return f"cost budget (loop.max_cost {max_cost:g}; spent {spent:.4f})"
    cost, asked = last.get("teacher_cost") or 0.0, last.get("generated") or 0
    if cost and next_wanted and asked:
        expected = cost * sum(next_wanted.values()) / asked
        if spent + expected > max_cost:
            return (
                f"cost budget (loop.max_cost {max_cost:g}; spent {spent:.4f}, the next round "
                f"would cost about {expected:.4f})"
            )
    return None


def _sum(rows: Sequence[dict[str, Any]], key: str) -> float | None:
    values = [r.get(key) for r in rows]
    if not values or any(v is None for v in values):
        return None
    return round(sum(values), 6)


def _per_point(cost: float | None, ours: Any, theirs: Any) -> dict[str, Any] | None:
    if ours is None or theirs is None:
        return None
    gain = (float(ours) - float(theirs)) * 100
    return {
        "student": ours,
        "real_only": theirs,
        "points": round(gain, 2),
        "cost_per_point": round(cost / gain, 6) if cost is not None and gain > 0 else None,
    }


def cost_summary(
    history: Sequence[dict[str, Any]],
    summary: dict[str, Any],
    prices: Sequence[Price],
    run_id: str | None = None,
) -> dict[str, Any]:
    """summary.json's `cost`: tokens and money of this run and of every round in the run
    folder (the student learnt from all of them), and the money per point of validation
    and test accuracy the loop's student gained over the real-examples-only student."""
    mine = [r for r in history if run_id is None or r.get("run_id") == run_id]
    total = _sum(history, "teacher_cost")
    rival = summary.get("real_only") or {}
    test_models = (summary.get("test") or {}).get("models") or {}
    rival_test = test_models.get(rival.get("name", ""), {}) if rival else {}
    loop_test = test_models.get("loop student (corpus + real)", {})
    return {
        "prices_per_million_tokens": [asdict(p) for p in prices],
        "run_prompt_tokens": sum(r["teacher_prompt_tokens"] for r in mine),
        "run_completion_tokens": sum(r["teacher_completion_tokens"] for r in mine),
        "run_cost": _sum(mine, "teacher_cost"),
        "total_prompt_tokens": sum(r["teacher_prompt_tokens"] for r in history),
        "total_completion_tokens": sum(r["teacher_completion_tokens"] for r in history),
        "total_cost": total,
        "validation": _per_point(
            total, summary.get("loop_student_accuracy"), rival.get("cv_accuracy")
        ),
        "test": _per_point(total, loop_test.get("accuracy"), rival_test.get("accuracy")),
    }


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def cost_section(rounds: Sequence[dict[str, Any]], summary: dict[str, Any]) -> list[str]:
    """report.md's Cost section: tokens and money per round, totals, price of a point."""
    cost = summary.get("cost")
    if not cost:
        return []
    prices = ", ".join(
        f"{p['teacher']} {_fmt(p['prompt'], 2)} / {_fmt(p['completion'], 2)}"
        for p in cost["prices_per_million_tokens"]
    )
    rows = [
        "\n## Cost\n",
        f"Prices per million prompt / completion tokens: {prices}"
        + (" (– : no price given, so no money figure)" if "–" in prices else "")
        + ". Answers from the response cache cost nothing.\n\n",
        "| round | run | prompt tokens | completion tokens | money | run total |\n",
        "|---:|---|---:|---:|---:|---:|\n",
    ]
    for r in rounds:
        rows.append(
            f"| {r['round']} | {str(r.get('run_id') or '–')[:8]} | {r['teacher_prompt_tokens']} "
            f"| {r['teacher_completion_tokens']} | {_fmt(r.get('teacher_cost'))} "
            f"| {_fmt(r.get('run_cost'))} |\n"
        )
    rows.append(
        f"\nThis run: {cost['run_prompt_tokens']} prompt and {cost['run_completion_tokens']} "
        f"completion tokens, {_fmt(cost['run_cost'])}. Every round in this folder: "
        f"{_fmt(cost['total_cost'])}.\n"
    )
    for name, what in (("validation", "validation accuracy (against its CV accuracy)"),
                       ("test", "test accuracy")):  # fmt: skip
        point = cost.get(name)
        if not point:
            continue
        verdict = (
            f"{_fmt(point['cost_per_point'])} per point"
            if point["cost_per_point"] is not None
            else "no price per point (no gain, or no price)"
        )
        rows.append(
            f"\nOver the real-examples-only student, {what}: {_fmt(point['student'], 3)} vs "
            f"{_fmt(point['real_only'], 3)}, {point['points']:+.2f} points; {verdict}.\n"
        )
    return rows
