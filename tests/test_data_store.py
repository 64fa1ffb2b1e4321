"""The corpus store on real Delta tables: versions, time travel, diff, rescoring, resume."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synthkd.data import (
    BufferedWriter,
    CorpusStore,
    RunStore,
    check_name,
    corpus_path,
    make_record,
)
from synthkd.errors import SynthkdError
from tests.fixtures.data_corpus import LABELS, build_run, labelled_rows, lineage

ROOT = Path(__file__).resolve().parents[1]


def test_each_append_is_a_version_with_its_message(tmp_path):
    run = build_run(tmp_path / "run", rounds=2, per_round=30)
    versions = run.corpus.versions()
    assert [v.version for v in versions] == [0, 1, 2]
    assert [v.rows for v in versions] == [0, 30, 60]
    assert [v.message for v in versions][1:] == ["round 0: generation", "round 1: generation"]
    assert versions[2].metadata["round"] == 1
    assert versions[1].operation == "WRITE"


def test_any_past_version_can_be_read(tmp_path):
    run = build_run(tmp_path / "run", rounds=2, per_round=30)
    first = run.corpus.read(version=1)
    assert first.num_rows == 30
    assert set(first.column("round").to_pylist()) == {0}
    assert run.corpus.read().num_rows == 60
    assert first.schema == run.corpus.schema  # typed as the record schema, not as stored
    row = first.to_pylist()[0]
    assert row["created_at"].isoformat() == "2025-01-02T03:04:05.678901+00:00"
    with pytest.raises(SynthkdError, match="version 7 .* does not exist \\(latest is 2\\)"):
        run.corpus.read(version=7)


def test_diff_counts_added_and_removed_records_per_label(tmp_path):
    run = build_run(tmp_path / "run", rounds=2, per_round=30)
    dropped = sorted(run.corpus.ids(version=1))[:4]
    deleted_at = run.corpus.delete(dropped, "filter pass: length", {"stage": "filter"})
    diff = run.corpus.diff(1, deleted_at)
    assert len(diff.added) == 30 and sorted(diff.removed) == dropped
    assert diff.counts_v1 == {label: 10 for label in LABELS}
    assert sum(diff.counts_v2.values()) == 56
    assert sum(diff.added_counts.values()) == 30 and sum(diff.removed_counts.values()) == 4
    assert run.corpus.versions()[-1].message == "filter pass: length"
    reverse = run.corpus.diff(deleted_at, 1)
    assert sorted(reverse.added) == dropped and len(reverse.removed) == 30


def test_rescoring_is_a_new_version_and_the_old_one_is_unchanged(tmp_path):
    run = build_run(tmp_path / "run", rounds=1, per_round=30)
    ids = sorted(run.corpus.ids())
    scores = {record_id: i / 30 for i, record_id in enumerate(ids)}
    version = run.corpus.update_scores(scores, "critic-v1", "critic rescoring", threshold=0.5)
    table = run.corpus.read().to_pylist()
    by_id = {row["id"]: row for row in table}
    assert all(by_id[i]["critic_version"] == "critic-v1" for i in ids)
    assert all(by_id[i]["accepted"] == (scores[i] >= 0.5) for i in ids)
    assert run.corpus.read(version=version - 1).column("critic_score").null_count == 30
    assert run.corpus.versions()[-1].metadata["critic_threshold"] == 0.5
    assert len(run.corpus.diff(version - 1, version).rescored) == 30
    with pytest.raises(SynthkdError, match="1 id\\(s\\) are not in"):
        run.corpus.update_scores({"nope": 0.1}, "critic-v1", "bad")
    assert run.corpus.version() == version


def test_a_bad_batch_leaves_the_table_unchanged(tmp_path):
    run = build_run(tmp_path / "run", rounds=1, per_round=5)
    before = run.corpus.version()
    good = labelled_rows(3, start=100)
    broken = dict(good[1], label=None)
    with pytest.raises(SynthkdError, match="label has empty values"):
        run.corpus.append([good[0], broken, good[2]], "bad batch")
    with pytest.raises(SynthkdError, match="unknown column\\(s\\): colour"):
        run.corpus.append([dict(good[0], colour="red")], "bad batch")
    with pytest.raises(SynthkdError, match="repeat an id"):
        run.corpus.append([good[0], good[0]], "bad batch")
    triple = make_record("commonsense", {"head": "h", "relation": "xWant", "tail": "t"}, lineage())
    with pytest.raises(SynthkdError, match="fit the labelled schema"):
        run.corpus.append([triple], "bad batch")
    with pytest.raises(SynthkdError, match="needs a commit message"):
        run.corpus.append(good, "  ")
    assert run.corpus.version() == before and run.corpus.count() == 5


def test_what_is_not_a_corpus_is_named(tmp_path):
    with pytest.raises(SynthkdError, match="not a corpus"):
        CorpusStore(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    with pytest.raises(SynthkdError, match="not a corpus"):
        RunStore.open(tmp_path / "plain")
    run = build_run(tmp_path / "run", rounds=1, per_round=3)
    with pytest.raises(SynthkdError, match="already holds labelled records, not commonsense"):
        CorpusStore.create(run.corpus.uri, "commonsense")
    with pytest.raises(SynthkdError, match="is a rejects table"):
        RunStore.open(tmp_path / "run" / "rejects")


def test_a_run_folder_opens_as_corpus_and_rejects(tmp_path):
    build_run(tmp_path / "run", rounds=2, per_round=30, rejects_per_round=10)
    for path in (tmp_path / "run", tmp_path / "run" / "corpus"):
        run = RunStore.open(path)
        assert run.corpus.kind == "labelled" and not run.corpus.is_rejects
        assert run.rejects is not None and run.rejects.is_rejects
    acceptance = RunStore.open(tmp_path / "run").acceptance()
    assert [(a.round, a.accepted, a.rejected) for a in acceptance] == [(0, 30, 10), (1, 30, 10)]
    assert acceptance[0].rate == pytest.approx(0.75)
    assert len(run.done_sample_keys()) == 80


@pytest.mark.parametrize("name", ["../escape", "/etc/passwd", "a/b", "..", ".hidden", ""])
def test_corpus_names_are_not_paths(name, tmp_path):
    with pytest.raises(SynthkdError, match="invalid corpus name"):
        corpus_path(tmp_path, name)


def test_a_plain_name_is_accepted(tmp_path):
    assert check_name("news-topics_v2.1") == "news-topics_v2.1"
    assert corpus_path("s3://bucket/runs/", "news") == "s3://bucket/runs/news"
    assert corpus_path(tmp_path, "news") == str(tmp_path / "news")


def test_buffered_writer_commits_every_n_rows_and_on_exit(tmp_path):
    store = CorpusStore.create(tmp_path / "corpus", "labelled")
    rows = labelled_rows(25)
    with BufferedWriter(store, "round 0", flush_rows=10, metadata={"round": 0}) as writer:
        writer.extend(rows)
        assert store.count() == 20  # two full batches committed, five still buffered
    assert store.count() == 25 and writer.stats.commits == 3
    assert [v.message for v in store.versions()][1:] == [
        "round 0 (batch 1)",
        "round 0 (batch 2)",
        "round 0 (batch 3)",
    ]


def test_buffered_writer_commits_after_t_seconds(tmp_path):
    store = CorpusStore.create(tmp_path / "corpus", "labelled")
    rows = labelled_rows(3)
    writer = BufferedWriter(store, "slow generation", flush_rows=1000, flush_seconds=0.2)
    writer.add(rows[0])
    assert store.count() == 0
    time.sleep(0.3)
    writer.add(rows[1])  # the oldest buffered row is now older than 0.2 s
    assert store.count() == 2
    writer.close()


def test_a_resumed_writer_appends_each_id_once(tmp_path):
    store = CorpusStore.create(tmp_path / "corpus", "labelled")
    rows = labelled_rows(40)
    with BufferedWriter(store, "first attempt", flush_rows=8) as writer:
        writer.extend(rows[:17])
    with BufferedWriter(store, "resumed", flush_rows=8) as writer:
        assert writer.extend(rows) == 23  # the 17 already stored are skipped
        assert writer.extend(rows[:5]) == 0
    ids = store.read(columns=["id"]).column("id").to_pylist()
    assert len(ids) == len(set(ids)) == 40
    assert writer.stats.skipped_duplicates == 22


def test_appending_a_pyarrow_table(tmp_path):
    store = CorpusStore.create(tmp_path / "corpus", "labelled")
    table = pa.Table.from_pylist(labelled_rows(6), schema=store.schema)
    version = store.append(table, "bulk import")
    assert version == 1 and store.counts() == {label: 2 for label in LABELS}
    assert store.sample_keys() == {f"r0-s{i}" for i in range(6)}


def test_compacting_keeps_the_rows_and_is_a_version(tmp_path):
    store = CorpusStore.create(tmp_path / "corpus", "labelled")
    for start in range(0, 30, 10):
        store.append(labelled_rows(10, start=start), f"batch at {start}")
    before = store.read().sort_by("id")
    assert store.compact() == 4
    assert len(store.file_uris()) == 1 and len(store.file_uris(version=3)) == 3
    assert store.read().sort_by("id").equals(before)
    assert store.versions()[-1].operation == "OPTIMIZE"


def test_commit_metadata_comes_back_with_its_types(tmp_path):
    store = CorpusStore.create(tmp_path / "corpus", "labelled")
    meta = {"round": 2, "threshold": 0.5, "recipe": "3", "resumed": False, "labels": ["a", "b"]}
    store.append(labelled_rows(3), "round 2: generation", meta)
    assert store.versions()[-1].metadata == {**meta, "rows": 3}


def test_corpus_files_are_compressed_parquet_like_pyarrow_writes(tmp_path):
    store = CorpusStore.create(tmp_path / "corpus", "labelled")
    store.append(labelled_rows(50), "round 0: generation")
    (path,) = store.file_uris()
    columns = pq.ParquetFile(path).metadata.row_group(0)
    assert {columns.column(i).compression for i in range(columns.num_columns)} == {"SNAPPY"}


def test_rescoring_prints_nothing_to_stderr(tmp_path):
    """A Delta merge must not spill deltalake's Rust log lines into a user's terminal."""
    script = (
        "import sys\n"
        "from tests.fixtures.data_corpus import build_run\n"
        "run = build_run(__import__('pathlib').Path(sys.argv[1]), rounds=1)\n"
        "run.corpus.update_scores({i: 0.9 for i in run.corpus.ids()}, 'c1', 'critic', threshold=0.5)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "RUST_LOG"}
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "run")],
        capture_output=True,
        text=True,
        env={**env, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_rows_are_counted_when_another_writer_logged_no_stats(tmp_path):
    from deltalake import DeltaTable
    from deltalake.transaction import AddAction

    store = CorpusStore.create(tmp_path / "corpus", "labelled")
    pq.write_table(
        pa.Table.from_pylist(labelled_rows(7), schema=store.schema), store.uri + "/x.parquet"
    )
    size = (Path(store.uri) / "x.parquet").stat().st_size
    table = DeltaTable(store.uri)
    table.create_write_transaction(
        [AddAction("x.parquet", size, {}, int(time.time() * 1000), True, None)],
        "append",
        table.schema(),
    )
    assert store.count() == 7 and store.versions()[-1].rows == 7
