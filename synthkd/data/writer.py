"""Checkpointing writes: buffer rows, commit every N rows or T seconds, exactly once per id.

Generation is slow and may be killed; committing small batches as it goes means a
restart loses at most one buffer. On open the writer loads the ids already in the
table, so a resumed run that regenerates (or replays from the teacher cache) the same
records appends only those that are missing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from synthkd.data.store import CorpusStore


@dataclass
class WriterStats:
    """What a writer did; a duplicate is an id already in the table or the buffer."""

    written: int = 0
    skipped_duplicates: int = 0
    commits: int = 0
    versions: list[int] = field(default_factory=list)


class BufferedWriter:
    """Append rows to a `CorpusStore` in batches; a context manager that flushes on exit.

    flush_rows: commit when this many new rows are buffered.
    flush_seconds: commit when the oldest buffered row is this old (checked on each add).
    message: commit message; each commit's says "<message> (batch k)".
    metadata: extra commit metadata (round, stage...) recorded with every batch.
    background: commit in a worker thread while the caller goes on (generation keeps its
    requests in flight during a commit); one commit at a time, in order; `flush` and
    `close` wait for it, and a failed commit raises from the next `add` or `flush`.
    """

    def __init__(
        self,
        store: CorpusStore,
        message: str,
        *,
        flush_rows: int = 1000,
        flush_seconds: float = 30.0,
        metadata: Mapping[str, Any] | None = None,
        background: bool = False,
    ):
        if flush_rows < 1 or flush_seconds <= 0:
            raise ValueError("flush_rows must be >= 1 and flush_seconds > 0")
        self.store = store
        self.message = message
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.metadata = dict(metadata or {})
        self.stats = WriterStats()
        self._seen: set[str] = store.ids()
        self._buffer: list[Mapping[str, Any]] = []
        self._oldest: float | None = None
        self._lock = threading.Lock()
        self.background = background
        self._worker: ThreadPoolExecutor | None = None
        self._commit: Future | None = None

    def __contains__(self, record_id: str) -> bool:
        return record_id in self._seen

    def add(self, row: Mapping[str, Any]) -> bool:
        """Buffer one row; False when its id is already stored or buffered (not written again)."""
        with self._lock:
            if row["id"] in self._seen:
                self.stats.skipped_duplicates += 1
                return False
            self._seen.add(row["id"])
            self._buffer.append(row)
            if self._oldest is None:
                self._oldest = time.monotonic()
            due = len(self._buffer) >= self.flush_rows or (
                time.monotonic() - self._oldest >= self.flush_seconds
            )
            if due:
                self._flush_locked()
            return True

    def extend(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Buffer many rows; returns how many were new."""
        return sum(self.add(row) for row in rows)

    def flush(self) -> int | None:
        """Commit what is buffered now; returns the new version, None if nothing was buffered."""
        with self._lock:
            version = self._flush_locked()
            return self._wait_locked() if self.background else version

    def _flush_locked(self) -> int | None:
        if not self._buffer:
            return None
        if not self.background:
            rows, self._buffer, self._oldest = self._buffer, [], None
            return self._commit_rows(rows)
        self._wait_locked()  # the previous commit first: versions in order, errors raised
        rows, self._buffer, self._oldest = self._buffer, [], None
        if self._worker is None:
            self._worker = ThreadPoolExecutor(1, thread_name_prefix="synthkd-commit")
        self._commit = self._worker.submit(self._commit_rows, rows)
        return None

    def _wait_locked(self) -> int | None:
        commit, self._commit = self._commit, None
        return commit.result() if commit is not None else None

    def _commit_rows(self, rows: list[Mapping[str, Any]]) -> int:
        batch = self.stats.commits + 1
        try:
            version = self.store.append(
                rows, f"{self.message} (batch {batch})", {**self.metadata, "batch": batch}
            )
        except BaseException:
            # the rows were not committed: let a later add or a resumed run write them
            self._seen.difference_update(row["id"] for row in rows)
            raise
        self.stats.written += len(rows)
        self.stats.commits += 1
        self.stats.versions.append(version)
        return version

    def close(self) -> None:
        try:
            self.flush()
        finally:
            if self._worker is not None:
                self._worker.shutdown()
                self._worker = None

    def __enter__(self) -> BufferedWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        # Buffered rows are complete records: keep them even when the caller failed, so a
        # resumed run has less to redo. A bad row still raises here.
        self.close()
