"""What every generation task shares: plan -> render -> parse, and the parse helpers.

A task is a build/parse pair (like curator's prompt/parse), split in three so one plan
can be sent to a mix of teachers that want different prompt styles:

- `plan(round, focus, wanted, attempt)` says *what* to ask (intents: plain dicts, so
  they travel in request metadata and test fixtures);
- `render(intent, style, sampling)` turns an intent into a `TeacherRequest` for a base
  model (few-shot completion) or a chat model (instructions + JSON schema);
- `parse(request, completion)` turns one sample into records, rejects with a reason,
  and follow-up intents (commonsense tails after new events, KG triples after entities).

Parsing never guesses: anything it cannot read exactly becomes a reject.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from synthkd.config import Settings, settings
from synthkd.errors import SynthkdError
from synthkd.generators.prompting import PromptStyle, Templates
from synthkd.generators.teachers.base import Completion, SamplingParams, TeacherRequest

Intent = dict[str, Any]
"""What to ask the teacher: {"stage": ..., "id": stable id, ...task fields}; JSON-able."""


@settings("teacher.sampling", frozen=True)
class Sampling(Settings):
    """A teacher's sampling defaults (the recipe's `teacher.sampling`); stages add stop
    strings and per-stage budgets."""

    temperature: Annotated[float, Field(ge=0, le=2)] = field(
        default=0.9, metadata={"help": "Softmax temperature; 0 is greedy."}
    )
    top_p: Annotated[float, Field(gt=0, le=1)] = field(
        default=0.95, metadata={"help": "Nucleus sampling mass."}
    )
    max_tokens: Annotated[int, Field(ge=1, le=32768)] | None = field(
        default=None,
        metadata={"help": "Completion budget; None lets each task stage choose its own."},
    )
    seed: int | None = field(
        default=0, metadata={"help": "Base seed; sample i of a request uses seed + i."}
    )


@dataclass
class HardNegative:
    """A validation example the student got confidently wrong."""

    text: str
    label: str
    """The true label."""
    predicted: str
    """What the student said."""
    confidence: float | None = None


@dataclass
class Focus:
    """What the performance-guided loop asks the next round to work on."""

    labels: list[str] | None = None
    """Weak labels to write for (None: all). Flows choose how many through `wanted`."""
    confusions: list[tuple[str, str]] = field(default_factory=list)
    """(true label, label the student predicts instead) pairs, most confused first."""
    hard_negatives: list[HardNegative] = field(default_factory=list)
    """Confidently wrong validation examples; shown as few-shot examples of their true label."""
    report: str | None = None
    """A short validation report (per-class F1) for chat teachers."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "labels": self.labels,
            "confusions": [list(pair) for pair in self.confusions],
            "hard_negatives": [vars(h) for h in self.hard_negatives],
            "report": self.report,
        }


@dataclass
class Parsed:
    """What one sample became."""

    records: list[dict[str, Any]] = field(default_factory=list)
    """Record content (the kind's content columns)."""
    rejects: list[tuple[dict[str, Any] | None, str]] = field(default_factory=list)
    """(partial content, reason) pairs."""
    follow_ups: list[Intent] = field(default_factory=list)

    @classmethod
    def reject(cls, content: dict[str, Any] | None, reason: str) -> Parsed:
        return cls(rejects=[(content, reason)])


class GenerationTask(ABC):
    """Base of the tasks; `kind` is the record kind, `groups` what `wanted` counts by."""

    kind: str
    task_name: str

    def __init__(self, templates: Templates | None = None):
        self.templates = templates or Templates()

    @property
    @abstractmethod
    def groups(self) -> list[str]:
        """Labels, relations or documents: the units `wanted` is counted in."""

    @abstractmethod
    def plan(
        self, round: int, focus: Focus | None, wanted: dict[str, int], attempt: int = 0
    ) -> list[Intent]:
        """Intents that should yield about `wanted[group]` records per group."""

    @abstractmethod
    def variables(self, intent: Intent, style: PromptStyle) -> dict[str, Any]:
        """Template variables of an intent."""

    @abstractmethod
    def stage_params(self, intent: Intent, style: PromptStyle) -> tuple[int, tuple[str, ...]]:
        """(default max_tokens, stop strings) of an intent's stage and style."""

    def schema(self, intent: Intent) -> dict[str, Any] | None:
        """JSON schema a chat teacher must answer in (None: free text)."""
        return None

    def samples(self, intent: Intent) -> int:
        return int(intent.get("samples", 1))

    @abstractmethod
    def parse(self, request: TeacherRequest, completion: Completion) -> Parsed: ...

    @abstractmethod
    def group_of(self, content: dict[str, Any]) -> str:
        """The group a record counts towards."""

    def reject_content(self, request: TeacherRequest) -> dict[str, Any] | None:
        """What is known of a sample that failed before parsing (label asked, head...)."""
        return None

    def render(self, intent: Intent, style: PromptStyle, sampling: Sampling) -> TeacherRequest:
        rendered = self.templates.render(intent["stage"], style, self.variables(intent, style))
        budget, stop = self.stage_params(intent, style)
        seed = None if sampling.seed is None else derive_seed(sampling.seed, intent["id"])
        params = SamplingParams(
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            max_tokens=sampling.max_tokens or budget,
            stop=stop if style == "completion" else (),
            seed=seed,
        )
        metadata = {
            "intent": intent,
            "style": style,
            "template": rendered.template,
            "template_hash": rendered.template_hash,
        }
        return TeacherRequest(
            prompt=rendered.prompt,
            messages=rendered.messages,
            params=params,
            n=self.samples(intent),
            json_schema=self.schema(intent) if style == "chat" else None,
            metadata=metadata,
        )


# ------------------------------------------------------------------- helpers


def derive_seed(base: int, intent_id: str) -> int:
    """A per-intent seed: equal prompts in different intents still sample differently."""
    digest = hashlib.sha256(f"{base}:{intent_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 2_000_000_000


def rotate(items: list[Any], k: int, offset: int) -> list[Any]:
    """k items starting at `offset`, wrapping: every item takes its turn as a shot."""
    if not items or k <= 0:
        return []
    return [items[(offset + i) % len(items)] for i in range(min(k, len(items)))]


_SPACE = re.compile(r"\s+")


def squash(text: str) -> str:
    """Whitespace collapsed to single spaces, trimmed."""
    return _SPACE.sub(" ", text).strip()


def normal_form(text: str) -> str:
    """Lower-case words only: what echo and duplicate checks compare."""
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def echoes(candidate: str, sources: list[str], threshold: float = 0.8) -> bool:
    """True when `candidate` repeats one of `sources` (word 3-gram overlap >= threshold)."""
    words = normal_form(candidate).split()
    if not words:
        return False
    mine = _ngrams(words)
    for source in sources:
        normal, theirs = _source_ngrams(source)
        if not theirs:
            continue
        overlap = len(mine & theirs) / max(1, min(len(mine), len(theirs)))
        if overlap >= threshold or normal == " ".join(words):
            return True
    return False


@functools.lru_cache(maxsize=4096)
def _source_ngrams(source: str) -> tuple[str, frozenset[tuple[str, ...]]]:
    """A prompt source's normal form and 3-grams, once: every sample of a prompt checks
    the same few shots (issue 17: this was most of a labelled sample's parse time)."""
    normal = normal_form(source)
    return normal, frozenset(_ngrams(normal.split()))


def _ngrams(words: list[str], n: int = 3) -> set[tuple[str, ...]]:
    if len(words) < n:
        return {tuple(words)}
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def loads_object(text: str) -> dict[str, Any] | None:
    """The completion as one JSON object, or None (no repair, no guessing)."""
    body = text.strip()
    if body.startswith("```"):
        body = re.sub(r"^```(?:json)?\s*|\s*```$", "", body)
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def column(rows: list[dict[str, Any]], name: str, path: str | Path, what: str) -> list[str]:
    if rows and name not in rows[0]:
        raise SynthkdError(f"{what} {path}: no column {name!r} (columns: {', '.join(rows[0])})")
    return [str(row.get(name) or "") for row in rows]
