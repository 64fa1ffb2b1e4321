"""Records and rejects: stable ids, lineage columns, clear errors on bad input."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pytest

from synthkd.data import (
    KINDS,
    Lineage,
    make_record,
    make_reject,
    record_schema,
    reject_schema,
)
from synthkd.errors import SynthkdError
from tests.fixtures.data_corpus import lineage

LINEAGE_COLUMNS = [
    "id",
    "kind",
    "recipe",
    "round",
    "teacher_backend",
    "teacher_model",
    "template_hash",
    "sampling",
    "sample_key",
    "raw_completion",
    "created_at",
    "critic_score",
    "critic_version",
    "accepted",
]


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_carries_the_lineage_columns(kind):
    records, rejects = record_schema(kind), reject_schema(kind)
    assert records.names[: len(LINEAGE_COLUMNS)] == LINEAGE_COLUMNS
    assert rejects.names[-2:] == ["reason", "stage"]
    assert records.field("created_at").type == pa.timestamp("us", tz="UTC")
    assert records.field("round").type == pa.int32()
    # content is required in a record and optional in a reject
    content = records.names[len(LINEAGE_COLUMNS) :]
    assert any(not records.field(name).nullable for name in content)
    assert all(rejects.field(name).nullable for name in content)


def test_the_same_content_gets_the_same_id_whatever_its_lineage():
    first = make_record("labelled", {"text": "Goal!", "label": "sports"}, lineage(0, "a"))
    again = make_record("labelled", {"text": "Goal!", "label": "sports"}, lineage(3, "b"))
    other = make_record("labelled", {"text": "Goal!", "label": "politics"}, lineage(0, "a"))
    assert first["id"] == again["id"] != other["id"]
    assert len(first["id"]) == 32


def test_a_record_keeps_its_lineage_and_typed_content():
    record = make_record(
        "labelled",
        {"text": "Rates rise", "label": "economy", "soft_labels": {"economy": 0.9, "sports": 0.1}},
        lineage(2, "key-1", raw="Label: economy"),
    )
    assert record["round"] == 2 and record["sample_key"] == "key-1"
    assert record["raw_completion"] == "Label: economy"
    assert json.loads(record["sampling"])["temperature"] == 0.8
    assert json.loads(record["soft_labels"]) == {"economy": 0.9, "sports": 0.1}
    assert record["created_at"].tzinfo is not None
    pa.Table.from_pylist([record], schema=record_schema("labelled"))  # fits the schema


def test_triples_of_both_kg_kinds():
    triple = make_record(
        "commonsense", {"head": "PersonX bakes", "relation": "xWant", "tail": "to eat"}, lineage()
    )
    kg = make_record(
        "document_kg",
        {
            "document_id": "doc1",
            "chunk_id": "doc1#0",
            "subject": "Curie",
            "predicate": "discovered",
            "object": "polonium",
            "quote": "Curie discovered polonium in 1898.",
        },
        lineage(),
    )
    assert triple["relation"] == "xWant" and kg["predicate"] == "discovered"


@pytest.mark.parametrize(
    ("kind", "content", "message"),
    [
        ("labelled", {"text": "x"}, "missing required field label"),
        ("labelled", {"text": "  ", "label": "a"}, "field text must not be empty"),
        ("labelled", {"text": "x", "label": "a", "colour": "red"}, "unknown field(s): colour"),
        ("labelled", {"text": "x", "label": 3}, "field label must be a string"),
        ("labelled", {"text": "x", "label": "a", "soft_labels": {"a": 0.2}}, "must sum to 1"),
        ("labelled", {"text": "x", "label": "a", "teacher_confidence": 2}, "teacher_confidence"),
        ("commonsense", {"head": "h", "relation": "xWant"}, "missing required field tail"),
        ("poems", {"text": "x"}, "unknown record kind 'poems'"),
    ],
)
def test_a_bad_record_is_one_clear_error(kind, content, message):
    with pytest.raises(SynthkdError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make_record(kind, content, lineage())


def test_bad_lineage_is_named():
    naive = Lineage("r", 0, "b", "m", "t", {}, "k", "raw", created_at=dt.datetime(2025, 1, 1))
    with pytest.raises(SynthkdError, match="created_at must be a timezone-aware"):
        make_record("labelled", {"text": "x", "label": "a"}, naive)
    negative = Lineage("r", -1, "b", "m", "t", {}, "k", "raw")
    with pytest.raises(SynthkdError, match="round must be a non-negative int"):
        make_record("labelled", {"text": "x", "label": "a"}, negative)


def test_rejects_keep_reason_stage_and_partial_content():
    reject = make_reject("labelled", None, lineage(1, "k9", raw="garbage"), "no label", "parse")
    assert reject["reason"] == "no label" and reject["stage"] == "parse"
    assert reject["text"] is None and reject["raw_completion"] == "garbage"
    again = make_reject("labelled", None, lineage(1, "k9", raw="garbage"), "no label", "parse")
    assert again["id"] == reject["id"]  # re-running the stage does not add a second reject
    critic = make_reject(
        "labelled",
        {"text": "meh", "label": "a"},
        lineage(),
        "below threshold",
        "critic",
        critic_score=0.2,
        critic_version="critic-1",
    )
    assert critic["accepted"] is False and critic["critic_score"] == 0.2
    with pytest.raises(SynthkdError, match="unknown reject stage"):
        make_reject("labelled", None, lineage(), "x", "later")
    with pytest.raises(SynthkdError, match="non-empty reason"):
        make_reject("labelled", None, lineage(), " ", "parse")
