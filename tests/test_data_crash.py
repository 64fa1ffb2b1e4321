"""A writer killed (SIGKILL) in the middle of an append: the table stays at its last commit."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from synthkd.data import CorpusStore
from tests.fixtures.data_corpus import labelled_rows

ROOT = Path(__file__).resolve().parents[1]
TOTAL, FLUSH = 60_000, 10_000


def _writer(table: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.fixtures.data_writer", str(table), str(TOTAL), str(FLUSH)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def _data_files(table: Path) -> set[str]:
    """Everything in the table folder except the transaction log: data files, staged or not."""
    return {p.name for p in table.iterdir() if p.name != "_delta_log"} if table.exists() else set()


@pytest.mark.slow
def test_a_killed_writer_leaves_no_partial_rows_and_a_resumed_run_writes_each_id_once(tmp_path):
    table = tmp_path / "corpus"
    writer = _writer(table)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(
        target=lambda: [lines.put(line) for line in writer.stdout], daemon=True
    ).start()

    # wait for two committed batches, then kill the moment the next batch starts landing
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if lines.get(timeout=1).startswith("committed 2 "):
                break
        except queue.Empty:
            assert writer.poll() is None, f"the writer died: {writer.stderr.read()}"
    committed_files = _data_files(table)
    caught_mid_write = False
    while time.monotonic() < deadline and writer.poll() is None:
        if _data_files(table) - committed_files:
            caught_mid_write = True
            break
        time.sleep(0.001)
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=30)
    assert writer.returncode == -signal.SIGKILL, writer.stderr.read()
    assert caught_mid_write, "the writer finished a batch before it could be killed mid-write"

    store = CorpusStore(table)
    version = store.version()
    rows = store.read()
    expected = {row["id"] for row in labelled_rows(TOTAL)}
    ids = rows.column("id").to_pylist()
    # readable at its last committed version: whole batches only, nothing torn or doubled
    assert rows.num_rows == version * FLUSH and rows.num_rows < TOTAL
    assert len(set(ids)) == len(ids) and set(ids) <= expected
    assert rows.column("text").null_count == 0
    assert [v.rows for v in store.versions()] == [i * FLUSH for i in range(version + 1)]
    # the torn batch's file (if the kill beat its commit) is on disk but referenced by no version
    visible = {Path(uri).name for uri in store.file_uris()}
    assert visible <= _data_files(table) and len(visible) == version

    resumed = _writer(table)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    written, skipped = map(int, out.strip().splitlines()[-1].split()[1:])
    assert skipped == rows.num_rows and written == TOTAL - rows.num_rows
    final = CorpusStore(table).read(columns=["id"]).column("id").to_pylist()
    assert len(final) == TOTAL and set(final) == expected
