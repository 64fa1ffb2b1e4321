"""The critic's settings; this class is also the recipe's `critic` section."""

from __future__ import annotations

import re
from dataclasses import field
from typing import Annotated

from pydantic import Field

from synthkd.config import Settings, settings


@settings("critic")
class CriticConfig(Settings):
    """What the filters and the trained critic keep."""

    target_precision: Annotated[float, Field(gt=0, le=1)] = field(
        default=0.9,
        metadata={
            "help": "Share of acceptable records wanted among those the critic keeps; the "
            "threshold is the lowest score that reaches it on cross-validated labels."
        },
    )
    min_chars: Annotated[int, Field(ge=0, le=1_000_000)] = field(
        default=20,
        metadata={
            "help": "Shortest content kept: a labelled text, a commonsense tail, a document "
            "KG quote."
        },
    )
    max_chars: Annotated[int, Field(ge=1, le=10_000_000)] = field(
        default=1500, metadata={"help": "Longest content kept (same field as min_chars)."}
    )
    forbid_label_word: bool = field(
        default=False,
        metadata={
            "help": "Reject labelled texts that contain their own label word (a give-away "
            "the student would learn instead of the topic)."
        },
    )
    banned_patterns: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Regular expressions (case-insensitive); a record whose content matches "
            "one is rejected."
        },
    )
    near_duplicate_threshold: Annotated[float, Field(gt=0, le=1)] = field(
        default=0.85,
        metadata={
            "help": "MinHash Jaccard similarity (word bigrams) above which a record is a near "
            "duplicate of one kept earlier in the round or already in the corpus."
        },
    )
    labels_file: str | None = field(
        default=None,
        metadata={
            "help": "Human acceptability labels (Parquet or CSV: `id` or the record's "
            "fields, `accept` 0/1); relative to the recipe."
        },
    )
    judge: str | None = field(
        default=None,
        metadata={
            "help": "Teacher spec of an LLM judge that labels sampled records (e.g. "
            '"openai:gpt-4o-mini").'
        },
    )
    judge_rubric: str | None = field(
        default=None,
        metadata={
            "help": "What the judge is told makes a record acceptable; None: a rubric per "
            "record kind."
        },
    )
    enabled: bool = field(
        default=True,
        metadata={
            "help": "Apply the trained critic's cut; False keeps every record that passed "
            "the filters (they still get a critic score when a critic exists)."
        },
    )
    balance: bool = field(
        default=True,
        metadata={
            "help": "Keep the label (relation) balance: every label keeps the same share of "
            "its records, so a critic that favours easy classes cannot starve the hard ones."
        },
    )

    evidence_labels: bool = field(
        default=True,
        metadata={
            "help": "Labelled recipes without labels_file or judge: the critic also learns "
            "from the label evidence (generated records it confirmed as acceptable, asked-for "
            "labels it overruled as not), beside the seeds and their corruptions."
        },
    )

    def __post_init__(self) -> None:
        if self.min_chars > self.max_chars:
            raise ValueError(
                f"min_chars ({self.min_chars}) and max_chars ({self.max_chars}) "
                "must satisfy min_chars <= max_chars"
            )
        for pattern in self.banned_patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(
                    f"banned_patterns: {pattern!r} is not a valid regular expression ({exc})"
                ) from None
