"""The critic's settings: the recipe's `critic` section, field for field."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from synthkd.errors import SynthkdError


@dataclass
class CriticConfig:
    """What the filters and the trained critic keep; flows build it with
    `CriticConfig(**recipe.critic.model_dump())`, so names match the recipe exactly.
    """

    target_precision: float = 0.9
    """Share of acceptable records wanted among those the critic keeps; the threshold is
    the lowest score that reaches it on cross-validated labels (most records kept)."""
    min_chars: int = 20
    """Shortest content kept: a labelled text, a commonsense tail, a document KG quote."""
    max_chars: int = 1500
    """Longest content kept (same field as `min_chars`)."""
    forbid_label_word: bool = False
    """Reject labelled texts that contain their own label word (a give-away the student
    would learn instead of the topic)."""
    banned_patterns: list[str] = field(default_factory=list)
    """Regular expressions (case-insensitive); a record whose content matches one is rejected."""
    near_duplicate_threshold: float = 0.85
    """MinHash Jaccard similarity (word bigrams) above which a record is a near duplicate
    of one kept earlier in the round or already in the corpus."""
    labels_file: str | None = None
    """Human acceptability labels (Parquet or CSV: `id` or the record's fields, `accept` 0/1)."""
    judge: str | None = None
    """Teacher spec of an LLM judge that labels sampled records (e.g. "openai:gpt-4o-mini")."""
    judge_rubric: str | None = None
    """What the judge is told makes a record acceptable; None: a rubric per record kind."""
    enabled: bool = True
    """Apply the trained critic's cut; False keeps every record that passed the filters
    (they still get a critic score when a critic exists)."""
    balance: bool = True
    """Keep the label (relation) balance: every label keeps the same share of its records,
    so a critic that favours easy classes cannot starve the hard ones."""

    def __post_init__(self) -> None:
        if not 0.0 < self.target_precision <= 1.0:
            raise SynthkdError(
                f"critic.target_precision must be in (0, 1], not {self.target_precision!r}"
            )
        if self.min_chars < 0 or self.max_chars < 1 or self.min_chars > self.max_chars:
            raise SynthkdError(
                f"critic.min_chars ({self.min_chars}) and max_chars ({self.max_chars}) "
                "must satisfy 0 <= min_chars <= max_chars"
            )
        if not 0.0 < self.near_duplicate_threshold <= 1.0:
            raise SynthkdError(
                "critic.near_duplicate_threshold must be in (0, 1], "
                f"not {self.near_duplicate_threshold!r}"
            )
        for pattern in self.banned_patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise SynthkdError(
                    f"critic.banned_patterns: {pattern!r} is not a valid regular expression ({exc})"
                ) from None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
