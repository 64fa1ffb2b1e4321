"""Record and reject schemas, lineage, and the stable content ids every room relies on.

A record is one thing a teacher taught (a labelled example, a commonsense triple, a
document KG triple); a reject is something it returned that did not survive, with the
reason and the stage that dropped it. Both carry the same lineage, so any row in a
corpus can be traced back to the prompt template, sampling parameters and raw
completion that produced it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from synthkd.errors import SynthkdError

KINDS = ("labelled", "commonsense", "document_kg")
STAGES = ("teacher", "parse", "filter", "critic")

_STRING = pa.string()

LINEAGE_FIELDS: tuple[pa.Field, ...] = (
    pa.field("id", _STRING, nullable=False),
    pa.field("kind", _STRING, nullable=False),
    pa.field("recipe", _STRING, nullable=False),
    pa.field("round", pa.int32(), nullable=False),
    pa.field("teacher_backend", _STRING, nullable=False),
    pa.field("teacher_model", _STRING, nullable=False),
    pa.field("template_hash", _STRING, nullable=False),
    pa.field("sampling", _STRING, nullable=False),
    pa.field("sample_key", _STRING, nullable=False),
    pa.field("raw_completion", _STRING, nullable=False),
    pa.field("created_at", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("critic_score", pa.float64(), nullable=True),
    pa.field("critic_version", _STRING, nullable=True),
    pa.field("accepted", pa.bool_(), nullable=True),
)

CONTENT_FIELDS: dict[str, tuple[pa.Field, ...]] = {
    "labelled": (
        pa.field("text", _STRING, nullable=False),
        pa.field("label", _STRING, nullable=False),
        pa.field("soft_labels", _STRING, nullable=True),
        pa.field("teacher_confidence", pa.float64(), nullable=True),
        pa.field("meta", _STRING, nullable=True),
    ),
    "commonsense": (
        pa.field("head", _STRING, nullable=False),
        pa.field("relation", _STRING, nullable=False),
        pa.field("tail", _STRING, nullable=False),
    ),
    "document_kg": (
        pa.field("document_id", _STRING, nullable=False),
        pa.field("chunk_id", _STRING, nullable=False),
        pa.field("subject", _STRING, nullable=False),
        pa.field("predicate", _STRING, nullable=False),
        pa.field("object", _STRING, nullable=False),
        pa.field("quote", _STRING, nullable=False),
    ),
}

IDENTITY_FIELDS: dict[str, tuple[str, ...]] = {
    "labelled": ("text", "label"),
    "commonsense": ("head", "relation", "tail"),
    "document_kg": ("document_id", "chunk_id", "subject", "predicate", "object"),
}
"""The content fields a record's id is hashed from: the same fact taught twice is one id."""

GROUP_COLUMN = {"labelled": "label", "commonsense": "relation", "document_kg": "predicate"}
"""The column a corpus is counted by (per label, per relation, per predicate)."""

REJECT_FIELDS: tuple[pa.Field, ...] = (
    pa.field("reason", _STRING, nullable=False),
    pa.field("stage", _STRING, nullable=False),
)

_JSON_CONTENT = {"soft_labels", "meta"}


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise SynthkdError(f"unknown record kind {kind!r}; expected one of {', '.join(KINDS)}")
    return kind


def record_schema(kind: str) -> pa.Schema:
    """Columns of an accepted record of `kind`: lineage first, then content."""
    fields = LINEAGE_FIELDS + CONTENT_FIELDS[_check_kind(kind)]
    return pa.schema(fields, metadata={"synthkd.kind": kind, "synthkd.table": "records"})


def reject_schema(kind: str) -> pa.Schema:
    """Columns of a reject: the record's columns with content nullable, plus reason and stage."""
    content = tuple(f.with_nullable(True) for f in CONTENT_FIELDS[_check_kind(kind)])
    fields = LINEAGE_FIELDS + content + REJECT_FIELDS
    return pa.schema(fields, metadata={"synthkd.kind": kind, "synthkd.table": "rejects"})


def kind_of_schema(schema: pa.Schema) -> tuple[str, bool] | None:
    """(kind, is_rejects) of a table's schema, or None when it is not a synthkd table."""
    names = set(schema.names)
    if not {f.name for f in LINEAGE_FIELDS} <= names:
        return None
    for kind, fields in CONTENT_FIELDS.items():
        if {f.name for f in fields} <= names:
            return kind, {"reason", "stage"} <= names
    return None


def _hash(parts: list[Any]) -> str:
    blob = json.dumps(parts, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:32]


def record_id(kind: str, content: Mapping[str, Any]) -> str:
    """Stable id of a record: a hash of its kind and identity fields (see IDENTITY_FIELDS)."""
    return _hash([_check_kind(kind), *[content.get(name) for name in IDENTITY_FIELDS[kind]]])


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass
class Lineage:
    """Where a record came from; the same for every record parsed from one sample."""

    recipe: str
    """Name of the recipe that asked for it."""
    round: int
    """Generation round (0 for the first; performance-guided rounds count up)."""
    teacher_backend: str
    """Backend of the teacher ("llamacpp", "openai", "vllm")."""
    teacher_model: str
    """Model name as the backend reports it."""
    template_hash: str
    """Hash of the prompt template that was rendered for this sample."""
    sampling: str | Mapping[str, Any] | Any
    """Sampling parameters: a JSON string, a mapping, or an object with `to_dict()`."""
    sample_key: str
    """TeacherRequest.sample_key(...) of the sample: what resume and the cache key on."""
    raw_completion: str
    """The completion text exactly as the teacher returned it."""
    created_at: dt.datetime = field(default_factory=_utc_now)
    """When the sample was produced; timezone-aware, stored as UTC."""

    def columns(self) -> dict[str, Any]:
        """The lineage as column values, checked."""
        for name in ("recipe", "teacher_backend", "teacher_model", "template_hash", "sample_key"):
            value = getattr(self, name)
            if not isinstance(value, str):
                raise SynthkdError(f"lineage field {name} must be a string, got {value!r}")
        if not self.recipe.strip():
            raise SynthkdError("lineage field recipe must not be empty")
        if not isinstance(self.raw_completion, str):
            raise SynthkdError("lineage field raw_completion must be a string")
        if isinstance(self.round, bool) or not isinstance(self.round, int) or self.round < 0:
            raise SynthkdError(
                f"lineage field round must be a non-negative int, got {self.round!r}"
            )
        created = self.created_at
        if not isinstance(created, dt.datetime) or created.tzinfo is None:
            raise SynthkdError("lineage field created_at must be a timezone-aware datetime")
        return {
            "recipe": self.recipe,
            "round": self.round,
            "teacher_backend": self.teacher_backend,
            "teacher_model": self.teacher_model,
            "template_hash": self.template_hash,
            "sampling": _sampling_json(self.sampling),
            "sample_key": self.sample_key,
            "raw_completion": self.raw_completion,
            "created_at": created.astimezone(dt.timezone.utc),
        }


def _sampling_json(sampling: Any) -> str:
    if isinstance(sampling, str):
        try:
            json.loads(sampling)
        except ValueError:
            raise SynthkdError("lineage field sampling is not valid JSON") from None
        return sampling
    if hasattr(sampling, "to_dict"):
        sampling = sampling.to_dict()
    if isinstance(sampling, Mapping):
        return json.dumps(dict(sampling), sort_keys=True, ensure_ascii=False)
    raise SynthkdError(
        f"lineage field sampling must be JSON, a mapping or params, got {sampling!r}"
    )


def _soft_labels_json(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise SynthkdError("soft_labels is not valid JSON") from None
    if not isinstance(value, Mapping) or not value:
        raise SynthkdError("soft_labels must be a non-empty mapping of label to probability")
    probs: dict[str, float] = {}
    for name, prob in value.items():
        if isinstance(prob, bool) or not isinstance(prob, (int, float)) or not 0 <= prob <= 1:
            raise SynthkdError(
                f"soft_labels[{name!r}] must be a probability in [0, 1], got {prob!r}"
            )
        probs[str(name)] = float(prob)
    if not math.isclose(sum(probs.values()), 1.0, abs_tol=0.01):
        raise SynthkdError(f"soft_labels must sum to 1, got {sum(probs.values()):.4f}")
    return json.dumps(probs, sort_keys=True, ensure_ascii=False)


def _content_columns(kind: str, content: Mapping[str, Any], *, required: bool) -> dict[str, Any]:
    fields = CONTENT_FIELDS[kind]
    known = {f.name for f in fields}
    unknown = sorted(set(content) - known)
    if unknown:
        raise SynthkdError(f"{kind} record has unknown field(s): {', '.join(unknown)}")
    columns: dict[str, Any] = {}
    for f in fields:
        value = content.get(f.name)
        if f.name == "soft_labels":
            value = _soft_labels_json(value)
        elif f.name == "meta" and value is not None:
            if isinstance(value, Mapping):
                value = json.dumps(dict(value), sort_keys=True, ensure_ascii=False)
            elif not isinstance(value, str):
                raise SynthkdError("meta must be a mapping or a JSON string")
        elif f.name == "teacher_confidence" and value is not None:
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not 0 <= value <= 1
            ):
                raise SynthkdError(f"teacher_confidence must be in [0, 1], got {value!r}")
            value = float(value)
        elif f.type == _STRING and f.name not in _JSON_CONTENT and value is not None:
            if not isinstance(value, str):
                raise SynthkdError(f"{kind} field {f.name} must be a string, got {value!r}")
            if required and not value.strip():
                raise SynthkdError(f"{kind} field {f.name} must not be empty")
        if value is None and required and not f.nullable:
            raise SynthkdError(f"{kind} record is missing required field {f.name}")
        columns[f.name] = value
    return columns


def _scores(critic_score: float | None, critic_version: str | None, accepted: bool | None):
    if critic_score is not None:
        if isinstance(critic_score, bool) or not isinstance(critic_score, (int, float)):
            raise SynthkdError(f"critic_score must be a number, got {critic_score!r}")
        critic_score = float(critic_score)
    return {"critic_score": critic_score, "critic_version": critic_version, "accepted": accepted}


def make_record(
    kind: str,
    content: Mapping[str, Any],
    lineage: Lineage,
    *,
    critic_score: float | None = None,
    critic_version: str | None = None,
    accepted: bool | None = None,
) -> dict[str, Any]:
    """One checked row of `record_schema(kind)`; SynthkdError names the first bad field."""
    _check_kind(kind)
    columns = _content_columns(kind, content, required=True)
    row = {"id": record_id(kind, columns), "kind": kind, **lineage.columns()}
    row.update(_scores(critic_score, critic_version, accepted))
    row.update(columns)
    return row


def make_reject(
    kind: str,
    content: Mapping[str, Any] | None,
    lineage: Lineage,
    reason: str,
    stage: str,
    *,
    critic_score: float | None = None,
    critic_version: str | None = None,
) -> dict[str, Any]:
    """One checked row of `reject_schema(kind)`; content may be partial or None.

    The id hashes stage, reason, sample and content, so re-running a stage that rejects
    the same thing again does not add a second reject.
    """
    _check_kind(kind)
    if stage not in STAGES:
        raise SynthkdError(f"unknown reject stage {stage!r}; expected one of {', '.join(STAGES)}")
    if not isinstance(reason, str) or not reason.strip():
        raise SynthkdError("a reject needs a non-empty reason")
    columns = _content_columns(kind, content or {}, required=False)
    lineage_columns = lineage.columns()
    reject_id = _hash(
        [kind, stage, reason, lineage_columns["sample_key"], lineage_columns["raw_completion"]]
        + [columns[f.name] for f in CONTENT_FIELDS[kind]]
    )
    row = {"id": reject_id, "kind": kind, **lineage_columns}
    row.update(_scores(critic_score, critic_version, False if stage == "critic" else None))
    row.update(columns)
    row.update({"reason": reason, "stage": stage})
    return row
