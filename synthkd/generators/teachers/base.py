"""The one async interface every teacher backend implements.

A teacher takes a batch of `TeacherRequest`s and returns one `TeacherResponse` per
request, in order. A response keeps every sample that succeeded; samples that failed
(after retries) are reported in `errors`, never silently dropped.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class SamplingParams:
    """How a teacher samples; every field is part of the response-cache key."""

    temperature: float = 0.8
    """Softmax temperature; 0 means greedy."""
    top_p: float = 0.95
    """Nucleus sampling mass."""
    max_tokens: int = 128
    """Completion budget; a sample that hits it (finish_reason "length") counts as failed."""
    stop: tuple[str, ...] = ()
    """Strings that end a completion."""
    seed: int | None = None
    """Base seed; sample i of a request uses seed + i so samples differ but replay exactly."""

    def to_dict(self) -> dict[str, Any]:
        # field by field: dataclasses.asdict deep-copies, and this runs for every sample key
        data = {f: getattr(self, f) for f in _SAMPLING_FIELDS}
        data["stop"] = list(self.stop)
        return data


_SAMPLING_FIELDS = tuple(f.name for f in fields(SamplingParams))


@dataclass(frozen=True)
class TeacherRequest:
    """One prompt (base models) or chat conversation (instruct models) to sample n times."""

    prompt: str | None = None
    """Raw completion prompt (few-shot style); exclusive with `messages`."""
    messages: tuple[dict[str, str], ...] | None = None
    """Chat messages ({"role", "content"}); exclusive with `prompt`."""
    params: SamplingParams = field(default_factory=SamplingParams)
    n: int = 1
    """Number of independent samples wanted."""
    json_schema: dict[str, Any] | None = None
    """Constrain output to this JSON schema (grammar, response_format or structured outputs)."""
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    """Caller's bookkeeping (label asked for, template hash...); not sent, not part of the key."""

    def __post_init__(self) -> None:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("a TeacherRequest needs exactly one of prompt or messages")
        if self.n < 1:
            raise ValueError("n must be at least 1")

    @property
    def is_chat(self) -> bool:
        return self.messages is not None

    def sample_key(self, backend: str, model: str, index: int) -> str:
        """Stable key of sample `index`: what the response cache and the store dedupe on."""
        payload = {
            "backend": backend,
            "model": model,
            "prompt": self.prompt,
            "messages": list(self.messages) if self.messages is not None else None,
            "params": self.params.to_dict(),
            "schema": self.json_schema,
            "index": index,
        }
        blob = json.dumps(payload, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass
class Completion:
    """One sample a teacher wrote."""

    index: int
    """Sample index within its request (0..n-1)."""
    text: str
    finish_reason: str
    """"stop", "length" (counted as failed), or "error"."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False
    """True when answered by the response cache (no teacher call)."""
    sample_key: str = ""

    @property
    def ok(self) -> bool:
        return self.finish_reason == "stop"


@dataclass
class SampleError:
    """A sample that could not be had after retries, with the last cause."""

    index: int
    reason: str
    sample_key: str = ""


@dataclass(frozen=True)
class LabelError:
    """A text `label_distribution` could not score (after retries), with why.

    It stands in the result list where that text's distribution would be: one bad text
    (an HTTP 400 for a prompt too long...) is that text's failure, not the batch's.
    """

    reason: str

    def __bool__(self) -> bool:  # a failed text has no distribution
        return False


LabelResult = dict[str, float] | LabelError
"""One text's answer from `label_distribution`: P(label) summing to 1, or why it failed."""


@dataclass
class TeacherResponse:
    request: TeacherRequest
    completions: list[Completion] = field(default_factory=list)
    """Samples that came back, including "length"-truncated ones (not ok)."""
    errors: list[SampleError] = field(default_factory=list)


@dataclass
class Usage:
    """What a run cost the teacher; accounted per teacher instance."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retries: int = 0
    cache_hits: int = 0
    failures: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@runtime_checkable
class Teacher(Protocol):
    """What every backend offers. `backend` and `model` go into every record's lineage."""

    backend: str
    model: str
    usage: Usage

    async def generate(self, requests: list[TeacherRequest]) -> list[TeacherResponse]:
        """Sample every request; one response per request, in order."""
        ...

    async def label_distribution(
        self, header: str, texts: list[str], labels: list[str], suffix: str = ""
    ) -> list[LabelResult]:
        """The teacher as a classifier: P(label | header + text + suffix) for each text.

        Base models score each label's continuation by log-probability (the header's KV
        state reused, not re-evaluated per text); chat models use a constrained choice or
        logprobs. Each distribution sums to 1; a text that could not be scored is a
        `LabelError` in its place. Scored texts are cached one by one, as they come.
        """
        ...

    async def aclose(self) -> None: ...
