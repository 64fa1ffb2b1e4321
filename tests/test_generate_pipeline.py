"""Generation at the client's limit (issue 17): the teacher's connections stay busy while
answers are parsed and committed, and nothing about the outcome changes for it.

Real labelled task, real Delta tables, a real openai teacher and response cache; the
only fake is the server at the network edge (a little latency, so overlap shows).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pyarrow as pa
import pytest

from synthkd.data import BufferedWriter, CorpusStore
from synthkd.errors import SynthkdError
from synthkd.generators import generate, make_task, teacher_mix
from tests.fakes import FaultyOpenAIServer
from tests.fixtures.data_corpus import labelled_rows

ROOT = Path(__file__).resolve().parents[1]
NEWS = ROOT / "examples" / "news_topics"
TASK = {
    "kind": "labelled",
    "labels": {label: {} for label in ("business", "entertainment", "politics", "sport", "tech")},
    "seeds": str(NEWS / "seeds.jsonl"),
    "per_label": 4,
    "samples_per_prompt": 2,
}


def run(tmp_path: Path, base_url: str, concurrency: int, ticks: list | None = None, server=None):
    task = make_task(TASK)
    section = {
        "spec": f"openai:fake-teacher@{base_url}",
        "prompt_style": "completion",
        "concurrency": concurrency,
        "cache_path": str(tmp_path / "responses.sqlite"),
    }
    slots = teacher_mix([section])
    corpus = CorpusStore.create(tmp_path / "corpus", task.kind)
    rejects = CorpusStore.create(tmp_path / "rejects", task.kind, rejects=True)

    def progress(snapshot) -> None:
        if ticks is not None:
            ticks.append((snapshot.samples, server.stats.requests))

    async def go():
        try:
            with (
                BufferedWriter(corpus, "t", flush_rows=5, background=True) as writer,
                BufferedWriter(rejects, "t", flush_rows=5, background=True) as rw,
            ):
                return await generate(
                    task, slots, writer, rw, recipe="pipe", batch_size=3, progress=progress
                )
        finally:
            await slots[0].teacher.aclose()

    report = asyncio.run(go())
    return report, corpus.read(), rejects.read()


def outcome(table: pa.Table) -> list[tuple]:
    columns = [c for c in ("id", "sample_key", "label", "reason") if c in table.column_names]
    return sorted(zip(*(table.column(c).to_pylist() for c in columns), strict=True))


def test_next_batches_are_asked_while_answers_are_written(tmp_path):
    ticks: list[tuple[int, int]] = []
    with FaultyOpenAIServer(latency=0.02) as server:
        report, records, rejected = run(tmp_path / "a", server.base_url, 4, ticks, server)
        asked = dict(server.stats.attempts)
    # while the driver wrote a batch, the server was already answering later samples
    assert any(requests > samples for samples, requests in ticks[:-1]), ticks
    # ... and no sample was asked twice for it
    assert asked and set(asked.values()) == {1}
    assert report.samples == sum(asked.values()) == records.num_rows + rejected.num_rows

    # one batch at a time (a teacher without concurrency) gives the same rows
    with FaultyOpenAIServer(latency=0.0) as server:
        serial, records_1, rejected_1 = run(tmp_path / "b", server.base_url, 1)
    assert outcome(records) == outcome(records_1)
    assert outcome(rejected) == outcome(rejected_1)
    assert serial.records == report.records and serial.outcomes == report.outcomes


def test_background_commits_keep_order_and_wait_on_flush(tmp_path):
    store = CorpusStore.create(tmp_path / "corpus", "labelled")
    with BufferedWriter(store, "round 0", flush_rows=10, background=True) as writer:
        writer.extend(labelled_rows(25))
        assert writer.flush() == 3  # the last commit's version, once it is in
        assert store.count() == 25
    assert writer.stats.commits == 3
    assert [v.message for v in store.versions()][1:] == [
        "round 0 (batch 1)",
        "round 0 (batch 2)",
        "round 0 (batch 3)",
    ]


def test_a_failed_background_commit_is_raised_and_its_rows_can_come_again(tmp_path):
    store = CorpusStore.create(tmp_path / "corpus", "labelled")
    good = labelled_rows(4)
    bad = {**good[0], "id": "broken", "label": None}  # a record must have a label
    writer = BufferedWriter(store, "round 0", flush_rows=2, background=True)
    writer.add(good[0])
    writer.add(bad)  # committed in the background: fails there
    with pytest.raises(SynthkdError):
        writer.extend(good[1:])  # the next commit waits for that one and says why
    assert "broken" not in writer  # not stored: a resumed run may write it again
    assert store.count() == 0
    writer.close()
