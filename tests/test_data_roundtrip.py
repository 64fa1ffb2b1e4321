"""The Parquet files of a corpus version read the same through duckdb, polars, pandas, datasets."""

from __future__ import annotations

import datasets
import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from tests.fixtures.data_corpus import build_run


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Two appends, then a critic rescoring (a merge that rewrites files)."""
    run = build_run(tmp_path_factory.mktemp("roundtrip") / "run", rounds=2, per_round=40)
    ids = sorted(run.corpus.ids())
    scores = {record_id: (i % 10) / 10 for i, record_id in enumerate(ids)}
    run.corpus.update_scores(scores, "critic-v1", "critic rescoring", threshold=0.5)
    return run.corpus


def _rows(table: pa.Table, schema: pa.Schema) -> list[dict]:
    """Rows as Python values, typed by the record schema and ordered by id."""
    table = table.select(schema.names).cast(schema)
    return table.sort_by("id").to_pylist()


@pytest.fixture(scope="module")
def expected(corpus):
    rows = _rows(corpus.read(), corpus.schema)
    assert len(rows) == 80
    assert sum(row["accepted"] for row in rows) == 40 and rows[0]["soft_labels"].startswith("{")
    return rows


def test_duckdb_reads_the_same_rows(corpus, expected):
    with duckdb.connect() as con:
        table = con.read_parquet(corpus.file_uris()).to_arrow_table()
    assert _rows(table, corpus.schema) == expected


def test_polars_reads_the_same_rows(corpus, expected):
    frame = pl.read_parquet(corpus.file_uris())
    assert frame.height == 80
    assert _rows(frame.to_arrow(), corpus.schema) == expected


def test_pandas_reads_the_same_rows(corpus, expected):
    frame = pd.read_parquet(corpus.file_uris())
    assert str(frame["created_at"].dt.tz) == "UTC"
    table = pa.Table.from_pandas(frame, preserve_index=False)
    assert _rows(table, corpus.schema) == expected


def test_datasets_reads_the_same_rows(corpus, expected, tmp_path):
    dataset = datasets.load_dataset(
        "parquet", data_files=corpus.file_uris(), split="train", cache_dir=str(tmp_path / "hf")
    )
    assert dataset.num_rows == 80 and isinstance(dataset[0]["label"], str)
    assert _rows(dataset.data.table, corpus.schema) == expected


def test_an_older_version_reads_the_same_through_its_own_files(corpus):
    old = corpus.read(version=1)
    frame = pl.read_parquet(corpus.file_uris(version=1))
    assert _rows(frame.to_arrow(), corpus.schema) == _rows(old, corpus.schema)
    assert old.column("critic_score").null_count == old.num_rows
