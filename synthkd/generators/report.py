"""What the generation driver is given (a teacher mix) and what it tells (progress, report)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from synthkd.generators.prompting import PromptStyle, prompt_style
from synthkd.generators.tasks.base import Sampling
from synthkd.generators.teachers.base import Teacher, Usage

_USAGE_FIELDS = ("requests", "prompt_tokens", "completion_tokens", "retries", "cache_hits")


@dataclass
class TeacherSlot:
    """One teacher of a mix, with its share of the work, prompt style and sampling."""

    teacher: Teacher
    weight: float = 1.0
    style: str = "auto"
    """"completion", "chat" or "auto" (ask the teacher / guess from its name)."""
    sampling: Sampling = field(default_factory=Sampling)

    def resolved_style(self) -> PromptStyle:
        return prompt_style(self.teacher, self.style)


@dataclass
class GenerationProgress:
    """A snapshot the progress callback receives after every batch."""

    requests_done: int
    requests_total: int
    samples: int
    records: int
    rejects: int
    skipped: int
    seconds: float

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0

    @property
    def acceptance(self) -> float:
        decided = self.records + self.rejects
        return self.records / decided if decided else 0.0


ProgressCallback = Callable[[GenerationProgress], None]


@dataclass
class GenerationReport:
    """What one generation did; `rejects` counts reasons.

    Every sample asked this time ends as records or rejects: `samples` is what the
    teacher was asked for (input rejects, such as an empty document, come on top).
    """

    requests: int = 0
    samples: int = 0
    records: int = 0
    rejects: Counter = field(default_factory=Counter)
    skipped_samples: int = 0
    """Samples already in the store (resume): neither asked nor written again."""
    outcomes: Counter = field(default_factory=Counter)
    """How each sample asked this time ended: "record" (one or more; a duplicate of a
    stored record is a reject), "reject" (rejects only), "follow_up" (an intermediate
    answer, such as commonsense events, that became further requests). They sum to
    `samples`: nothing the teacher returned is dropped silently."""
    retried_teacher_errors: int = 0
    """Samples an earlier run stored as a teacher error, asked again this time."""
    per_group: dict[str, int] = field(default_factory=dict)
    """Records per label / relation / document (skipped samples' records included)."""
    usage: Usage = field(default_factory=Usage)
    """Teacher usage during this generation, summed over the mix."""
    seconds: float = 0.0

    @property
    def rejected(self) -> int:
        return sum(self.rejects.values())

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0

    @property
    def acceptance(self) -> float:
        decided = self.records + self.rejected
        return self.records / decided if decided else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "samples": self.samples,
            "records": self.records,
            "rejects": dict(self.rejects),
            "skipped_samples": self.skipped_samples,
            "sample_outcomes": dict(self.outcomes),
            "retried_teacher_errors": self.retried_teacher_errors,
            "per_group": dict(self.per_group),
            "records_per_s": round(self.records_per_s, 3),
            "acceptance": round(self.acceptance, 4),
            "teacher_prompt_tokens": self.usage.prompt_tokens,
            "teacher_completion_tokens": self.usage.completion_tokens,
            "teacher_cache_hits": self.usage.cache_hits,
            "seconds": round(self.seconds, 2),
        }


def default_wanted(task: Any, n: int | None) -> dict[str, int]:
    """Records wanted per group: `n`, or the task's own per-round setting."""
    config = task.config
    if n is None:
        n = (
            getattr(config, "per_label", None)
            or getattr(config, "per_relation", None)
            or getattr(config, "per_document", None)
            or 30
        )
    return {group: n for group in task.groups}


def copy_usage(usage: Usage) -> Usage:
    return Usage(**usage.to_dict())


def usage_since(slots: Sequence[TeacherSlot], before: Sequence[Usage]) -> Usage:
    """What the mix's teachers spent since the `before` snapshots, summed."""
    total = Usage()
    for slot, start in zip(slots, before, strict=True):
        now = slot.teacher.usage
        for name in (*_USAGE_FIELDS, "failures"):
            setattr(total, name, getattr(total, name) + getattr(now, name) - getattr(start, name))
        total.seconds += now.seconds - start.seconds
    return total
