"""An LLM judge as a label source: a teacher rates sampled records against a rubric.

The critics room does not build teachers; the caller passes one (any object with the
Teacher protocol's async `generate`) and a `make_request(prompt)` that wraps a judge
prompt into the backend's request (a completion prompt or a chat message, sampled with
JUDGE_SAMPLING). Answers parse to 0/1 with the judge's rationale kept.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from synthkd.critics.labels import CriticLabel, LabelSet
from synthkd.critics.records import as_rows, kind_of, render

DEFAULT_RUBRICS = {
    "labelled": (
        "A record is acceptable when its text is a realistic, self-contained example whose "
        "topic is clearly its label. It is not acceptable when the text is about another "
        "label, off-topic, garbled, a list or an instruction, or repeats the prompt."
    ),
    "commonsense": (
        "A record is acceptable when the tail is a plausible, specific commonsense inference "
        "of the given relation for the event. It is not acceptable when the tail does not fit "
        "the relation, contradicts the event, is vague, or restates the event."
    ),
    "document_kg": (
        "A record is acceptable when the quote states the triple: the subject, the predicate "
        "and the object are all supported by the quoted sentence. It is not acceptable when "
        "the quote does not say it, or the subject or object is not an entity."
    ),
}
JUDGE_SAMPLING = {"temperature": 0.0, "max_tokens": 64, "stop": ("\n\n", "\nRecord")}
"""How the caller should sample judge answers: deterministic, short, one answer."""

_ANSWER = re.compile(
    r"^\W*(?:answer\W*)?(1|0|yes|no|acceptable|unacceptable|not acceptable|accept|reject)\b\W*",
    re.IGNORECASE,
)
_POSITIVE = {"1", "yes", "acceptable", "accept"}


def judge_prompt(row: Mapping[str, Any], kind: str, rubric: str | None = None) -> str:
    """The text the judge completes: rubric, record, and an answer slot."""
    return (
        f"{rubric or DEFAULT_RUBRICS[kind]}\n\n"
        f"Record:\n{render(dict(row), kind)}\n\n"
        "Is this record acceptable? Answer 1 (acceptable) or 0 (not acceptable), "
        "then give a one-sentence reason.\n"
        "Answer:"
    )


def parse_verdict(answer: str) -> tuple[int, str] | None:
    """(0 or 1, rationale) from a judge's answer, or None when it gave no verdict."""
    match = _ANSWER.match(answer or "")
    if match is None:
        return None
    verdict = int(match.group(1).lower() in _POSITIVE)
    rationale = " ".join(answer[match.end() :].split()).lstrip("-:.,) ")
    return verdict, rationale


async def judge_labels_async(
    teacher: Any,
    rows: pa.Table | Iterable[Mapping[str, Any]],
    make_request: Callable[[str], Any],
    *,
    rubric: str | None = None,
    n: int | None = None,
    seed: int = 0,
    kind: str | None = None,
    batch_size: int = 16,
    on_batch: Callable[[int], None] | None = None,
) -> LabelSet:
    """Ask `teacher` to rate `n` sampled records (all when None); see module docstring."""
    rows = as_rows(rows)
    kind = kind_of(rows, kind)
    if n is not None and n < len(rows):
        picked = np.random.default_rng(seed).choice(len(rows), size=n, replace=False)
        rows = [rows[i] for i in sorted(picked)]
    result = LabelSet(dropped=Counter())
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        requests = [make_request(judge_prompt(row, kind, rubric)) for row in batch]
        responses = await teacher.generate(requests)
        for row, response in zip(batch, responses, strict=True):
            answers = [c.text for c in response.completions if c.ok]
            parsed = parse_verdict(answers[0]) if answers else None
            if not answers:
                result.dropped["judge: no answer"] += 1
            elif parsed is None:
                result.dropped["judge: unparsed answer"] += 1
            else:
                verdict, rationale = parsed
                result.labels.append(CriticLabel(row, verdict, "judge", rationale))
        if on_batch is not None:
            on_batch(len(batch))
    return result


def judge_labels(
    teacher: Any, rows: Any, make_request: Callable[[str], Any], **kwargs: Any
) -> LabelSet:
    """Synchronous `judge_labels_async` for code that is not already in an event loop."""
    return asyncio.run(judge_labels_async(teacher, rows, make_request, **kwargs))
