"""Cheap rule filters that run before the trained critic, each with its reason string.

Every row that goes in comes out either kept or as a reject (stage "filter") whose
`reason` names the first rule it failed: nothing is dropped silently.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import pyarrow as pa

from synthkd.critics.config import CriticConfig
from synthkd.critics.dedup import NearDuplicateIndex
from synthkd.critics.records import (
    Row,
    as_rows,
    content_text,
    dedup_text,
    kind_of,
    normalise,
)
from synthkd.data.schemas import CONTENT_FIELDS, Lineage, make_reject
from synthkd.errors import SynthkdError

FILTER_REASONS: dict[str, str] = {
    "schema": "a required field is missing or is not a string",
    "empty": "a required field is empty or only whitespace",
    "too_short": "the content is shorter than critic.min_chars",
    "too_long": "the content is longer than critic.max_chars",
    "prompt_echo": "the output repeats the prompt (template markers, a few-shot example, "
    "or a tail that restates its head)",
    "degenerate": "the triple relates a thing to itself",
    "label_word": "the text contains its own label word (critic.forbid_label_word)",
    "banned_pattern": "the content matches one of critic.banned_patterns",
    "exact_duplicate": "the same normalised content was kept earlier or is in the corpus",
    "near_duplicate": "MinHash Jaccard with a kept or corpus record reaches "
    "critic.near_duplicate_threshold",
}
"""Every reason a filter can give, in the order the rules run."""

_TEACHER_FIELDS = {
    "labelled": ("text",),
    "commonsense": ("head", "tail"),
    "document_kg": ("subject", "predicate", "object", "quote"),
}
_TEMPLATE_MARKERS = re.compile(
    r"(^|\n|[.!?]\s+)\s*(#{2,}|label|text|topic|category|example\s*\d*|event|relation|tail|"
    r"head|subject|predicate|object|quote|input|output|answer|q|a)\s*:|\{\{|\}\}|<\|",
    re.IGNORECASE,
)
_ECHO_MIN_CHARS = 30


class FilterResult(NamedTuple):
    """Kept rows and rejects (reject-schema rows with `reason` and stage "filter")."""

    kept: list[Row]
    rejects: list[Row]


def apply_filters(
    rows: pa.Table | Iterable[Mapping[str, Any]],
    config: CriticConfig,
    existing: pa.Table | Iterable[Mapping[str, Any]] | None = None,
    *,
    kind: str | None = None,
    echo_of: Iterable[str] = (),
) -> FilterResult:
    """Run every rule over `rows` in order; the first rule a row fails is its reason.

    `existing` holds earlier corpus rows: exact and near duplicates of them are rejected
    too. `echo_of` holds prompt fragments (few-shot examples, instructions); a record that
    repeats one of them is a prompt echo.
    """
    rows = as_rows(rows)
    if not rows:
        return FilterResult([], [])
    kind = kind_of(rows, kind)
    earlier = as_rows(existing) if existing is not None else []
    rules = _Rules(config, kind, echo_of)
    index = NearDuplicateIndex(config.near_duplicate_threshold)
    seen: set[str] = set()
    earlier_keys = [normalise(dedup_text(row, kind)) for row in earlier]
    for i, (row, key, m) in enumerate(
        zip(earlier, earlier_keys, index.minhashes(earlier_keys), strict=True)
    ):
        seen.add(key)
        index.add(f"e{i}", m, _dup_group(row, kind))

    reasons = [rules.first_failure(row) for row in rows]
    passed = [i for i, reason in enumerate(reasons) if reason is None]
    keys = [normalise(dedup_text(rows[i], kind)) for i in passed]
    hashes = dict(zip(passed, zip(keys, index.minhashes(keys), strict=True), strict=True))
    kept: list[Row] = []
    rejects: list[Row] = []
    for i, (row, reason) in enumerate(zip(rows, reasons, strict=True)):
        if reason is None:
            key, m = hashes[i]
            if key in seen:
                reason = "exact_duplicate"
            elif index.add_if_new(f"n{i}", m, _dup_group(row, kind)) is not None:
                reason = "near_duplicate"
            else:
                seen.add(key)
        if reason is None:
            kept.append(row)
        else:
            rejects.append(to_reject(row, kind, reason, "filter"))
    return FilterResult(kept, rejects)


def to_reject(row: Row, kind: str, reason: str, stage: str) -> Row:
    """The reject-schema row for `row`, keeping its lineage and whatever content it had."""
    try:
        lineage = Lineage(
            recipe=row["recipe"],
            round=row["round"],
            teacher_backend=row["teacher_backend"],
            teacher_model=row["teacher_model"],
            template_hash=row["template_hash"],
            sampling=row["sampling"],
            sample_key=row["sample_key"],
            raw_completion=row["raw_completion"],
            created_at=row["created_at"],
        )
    except KeyError as exc:
        raise SynthkdError(f"a record to filter has no lineage column {exc.args[0]}") from None
    content = {}
    for f in CONTENT_FIELDS[kind]:
        value = row.get(f.name)
        if f.type == pa.string() and value is not None and not isinstance(value, str):
            value = None
        content[f.name] = value
    return make_reject(
        kind,
        content,
        lineage,
        reason,
        stage,
        critic_score=row.get("critic_score"),
        critic_version=row.get("critic_version"),
    )


def _dup_group(row: Row, kind: str) -> str:
    return str(row.get("document_id") or "") if kind == "document_kg" else ""


class _Rules:
    """The per-row rules (everything but duplicates), compiled once per call."""

    def __init__(self, config: CriticConfig, kind: str, echo_of: Iterable[str]) -> None:
        self.config = config
        self.kind = kind
        self.required = [f.name for f in CONTENT_FIELDS[kind] if not f.nullable]
        self.banned = [re.compile(p, re.IGNORECASE) for p in config.banned_patterns]
        self.echoes = {normalise(e) for e in echo_of if e and e.strip()}
        self.long_echoes = [e for e in self.echoes if len(e) >= _ECHO_MIN_CHARS]
        self.label_patterns: dict[str, re.Pattern[str]] = {}

    def first_failure(self, row: Row) -> str | None:
        for check in (
            self._schema,
            self._empty,
            self._length,
            self._echo,
            self._degenerate,
            self._label_word,
            self._banned,
        ):
            reason = check(row)
            if reason is not None:
                return reason
        return None

    def _schema(self, row: Row) -> str | None:
        if any(not isinstance(row.get(name), str) for name in self.required):
            return "schema"
        return None

    def _empty(self, row: Row) -> str | None:
        if any(not row[name].strip() for name in self.required):
            return "empty"
        return None

    def _length(self, row: Row) -> str | None:
        size = len(content_text(row, self.kind).strip())
        if size < self.config.min_chars:
            return "too_short"
        if size > self.config.max_chars:
            return "too_long"
        return None

    def _echo(self, row: Row) -> str | None:
        for name in _TEACHER_FIELDS[self.kind]:
            value = row[name]
            if _TEMPLATE_MARKERS.search(value):
                return "prompt_echo"
            norm = normalise(value)
            if norm in self.echoes or any(e in norm for e in self.long_echoes):
                return "prompt_echo"
        if self.kind == "commonsense":
            head, tail = normalise(row["head"]), normalise(row["tail"])
            if tail == head or (len(head) >= 12 and head in tail):
                return "prompt_echo"
        return None

    def _degenerate(self, row: Row) -> str | None:
        if self.kind == "document_kg" and normalise(row["subject"]) == normalise(row["object"]):
            return "degenerate"
        return None

    def _label_word(self, row: Row) -> str | None:
        if self.kind != "labelled" or not self.config.forbid_label_word:
            return None
        label = row["label"]
        pattern = self.label_patterns.get(label)
        if pattern is None:
            words = [w for w in re.split(r"[\s_/\-]+", label.strip()) if len(w) >= 3]
            phrase = r"\s+".join(re.escape(w) for w in re.split(r"[\s_/\-]+", label.strip()))
            alternatives = [phrase] + [re.escape(w) for w in words]
            pattern = re.compile(r"\b(" + "|".join(alternatives) + r")(s|es)?\b", re.IGNORECASE)
            self.label_patterns[label] = pattern
        return "label_word" if pattern.search(row["text"]) else None

    def _banned(self, row: Row) -> str | None:
        if not self.banned:
            return None
        content = "\n".join(row[name] for name in _TEACHER_FIELDS[self.kind])
        if any(p.search(content) for p in self.banned):
            return "banned_pattern"
        return None
