"""How the critics room sees a record: its kind, its content text and its rendering.

Every room speaks the data room's columns; this module turns a row of any kind into
the strings the filters, the encoder, the judge and a human annotator look at.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa

from synthkd.data import relations
from synthkd.data.schemas import CONTENT_FIELDS, GROUP_COLUMN, KINDS
from synthkd.errors import SynthkdError

Row = dict[str, Any]

_WORD = re.compile(r"\w+", re.UNICODE)


def as_rows(rows: pa.Table | Iterable[Mapping[str, Any]]) -> list[Row]:
    """A pyarrow Table or an iterable of mappings as a list of plain dicts."""
    if isinstance(rows, pa.Table):
        return rows.to_pylist()
    return [dict(row) for row in rows]


def kind_of(rows: list[Row], kind: str | None = None) -> str:
    """The record kind of `rows`: given, from their `kind` column, or from their fields."""
    if kind is not None:
        if kind not in KINDS:
            raise SynthkdError(f"unknown record kind {kind!r}; expected one of {', '.join(KINDS)}")
        other = next((row["kind"] for row in rows if row.get("kind") not in (None, kind)), None)
        if other is not None:
            raise SynthkdError(f"expected {kind} records, got a {other} record")
        return kind
    kinds = {row.get("kind") for row in rows if row.get("kind")}
    if len(kinds) > 1:
        raise SynthkdError(f"records of several kinds in one batch: {', '.join(sorted(kinds))}")
    if kinds:
        return kind_of(rows, kinds.pop())
    for name in ("document_kg", "commonsense", "labelled"):
        required = {f.name for f in CONTENT_FIELDS[name] if not f.nullable}
        if rows and required <= set(rows[0]):
            return name
    raise SynthkdError("cannot tell the record kind: no `kind` column and no known fields")


def group_of(row: Row, kind: str) -> str:
    """The column a corpus is balanced by: label, relation or predicate."""
    return str(row.get(GROUP_COLUMN[kind]) or "")


def content_text(row: Row, kind: str) -> str:
    """The text a teacher wrote that length bounds and banned patterns look at."""
    if kind == "labelled":
        return row.get("text") or ""
    if kind == "commonsense":
        return row.get("tail") or ""
    return row.get("quote") or ""


def relation_phrase(relation: str) -> str:
    """The relation as the sentence the encoder reads (the table shared by every room)."""
    return relations.relation_phrase(relation)


def pair_of(row: Row, kind: str) -> tuple[str, str]:
    """The two sides whose agreement makes a record acceptable.

    labelled: (text, label); commonsense: (head event, relation + tail);
    document_kg: (supporting quote, the triple as a sentence).
    """
    if kind == "labelled":
        return row.get("text") or "", f"this is about {_label_words(row.get('label') or '')}"
    if kind == "commonsense":
        return row.get(
            "head"
        ) or "", f"{relation_phrase(row.get('relation') or '')} {row.get('tail') or ''}"
    triple = f"{row.get('subject') or ''} {row.get('predicate') or ''} {row.get('object') or ''}"
    return row.get("quote") or "", triple


def render(row: Row, kind: str) -> str:
    """The record as a person (or an LLM judge) reads it."""
    if kind == "labelled":
        return f"Label: {row.get('label')}\nText: {row.get('text')}"
    if kind == "commonsense":
        return (
            f"Event: {row.get('head')}\nRelation: {row.get('relation')} "
            f"({relation_phrase(row.get('relation') or '')})\nTail: {row.get('tail')}"
        )
    return (
        f"Triple: ({row.get('subject')}; {row.get('predicate')}; {row.get('object')})\n"
        f"Quote: {row.get('quote')}"
    )


def dedup_text(row: Row, kind: str) -> str:
    """The content that two records must share to be duplicates (normalised later)."""
    if kind == "labelled":
        return row.get("text") or ""
    if kind == "commonsense":
        return f"{row.get('head')} {row.get('relation')} {row.get('tail')}"
    return (
        f"{row.get('document_id')} {row.get('subject')} {row.get('predicate')} {row.get('object')}"
    )


def normalise(text: str) -> str:
    """Case, accents, punctuation and spacing folded away: what exact duplicates compare."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(_WORD.findall(text.replace("_", " ")))


def _label_words(label: str) -> str:
    return re.sub(r"[_/\-]+", " ", label).strip()
