"""The persistent response cache every teacher backend sits behind.

One SQLite file maps a sample key (`TeacherRequest.sample_key(backend, model, index)`:
backend, model, rendered prompt or messages, sampling parameters with seed, schema and
sample index) to the completion the teacher wrote. A rerun or a resumed run reads its
samples back instead of asking the teacher again; a changed parameter is a new key.

What is stored: completions that came back, finished ("stop") or truncated ("length").
A truncated sample is as deterministic an outcome of its parameters as a finished one,
so caching it avoids paying for the same truncation twice; raising `max_tokens` changes
the key and asks again. Errors (timeouts, 5xx, resets, malformed bodies) are never
stored: they say nothing about the sample, and the next run retries them.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from synthkd.assets import cache_dir
from synthkd.errors import SynthkdError
from synthkd.generators.teachers.base import Completion

_SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
    key TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    finish_reason TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    created_at REAL NOT NULL
) WITHOUT ROWID
"""
_INSERT = "INSERT OR REPLACE INTO samples VALUES (?, ?, ?, ?, ?, ?)"
_LOOKUP_CHUNK = 500  # SQLite's host-parameter limit is 999 on old builds


def default_cache_path() -> Path:
    """Where teachers cache their answers unless told otherwise."""
    return cache_dir() / "teacher_responses.sqlite"


class ResponseCache:
    """Completions by sample key, on disk (SQLite, WAL journal), safe across threads.

    Every answer is committed as soon as it arrives, so a run killed at any moment has
    paid for nothing it will ask again. Inside an event loop the answers that arrive in
    the same loop iteration share one commit (group commit, scheduled with `call_soon`):
    the commit runs before the loop waits on the network again, and one transaction per
    burst instead of per answer keeps the cache off the hot path. Outside a loop each
    answer is committed at once. A larger `flush_every` batches commits for bulk imports.
    """

    def __init__(self, path: str | Path | None = None, *, flush_every: int = 1) -> None:
        self.path = Path(path) if path is not None else default_cache_path()
        self.flush_every = flush_every
        self._lock = threading.Lock()
        self._pending: dict[str, tuple] = {}
        self._flush_scheduled = False
        self._failure: SynthkdError | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=30000")
            self._db.execute(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise SynthkdError(
                f"cannot open the teacher response cache {self.path}: {exc}"
            ) from exc

    def get_many(self, keys: Iterable[str]) -> dict[str, Completion]:
        """The cached completions among `keys` (index and key filled in by the caller)."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, Completion] = {}
        with self._lock:
            for key in wanted:
                row = self._pending.get(key)
                if row is not None:
                    found[key] = _completion(key, row[0:4])
            rest = [k for k in wanted if k not in found]
            for start in range(0, len(rest), _LOOKUP_CHUNK):
                chunk = rest[start : start + _LOOKUP_CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    "SELECT key, text, finish_reason, prompt_tokens, completion_tokens"
                    f" FROM samples WHERE key IN ({marks})",
                    chunk,
                ).fetchall()
                for key, *values in rows:
                    found[key] = _completion(key, values)
        return found

    def put(self, completion: Completion) -> None:
        """Remember a completion that came back ("stop" or "length"); errors are refused."""
        if completion.finish_reason not in ("stop", "length") or not completion.sample_key:
            return
        with self._lock:
            self._raise_failure()
            self._pending[completion.sample_key] = (
                completion.text,
                completion.finish_reason,
                completion.prompt_tokens,
                completion.completion_tokens,
                time.time(),
            )
            if len(self._pending) < self.flush_every:
                return
            if self.flush_every == 1 and self._schedule_flush():
                return
            self._flush_locked()

    def _schedule_flush(self) -> bool:
        """Commit at the end of this event-loop iteration; False outside a loop."""
        if self._flush_scheduled:
            return True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        self._flush_scheduled = True
        loop.call_soon(self._scheduled_flush)
        return True

    def _scheduled_flush(self) -> None:
        with self._lock:
            if self._db is None:
                return
            try:
                self._flush_locked()
            except SynthkdError as exc:  # raised to the caller by its next put or flush
                self._failure = exc

    def flush(self) -> None:
        """Commit buffered samples to disk."""
        with self._lock:
            self._raise_failure()
            self._flush_locked()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure

    def count(self) -> int:
        self.flush()
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]

    def close(self) -> None:
        if self._db is None:
            return
        self.flush()
        with self._lock:
            self._db.close()
            self._db = None

    def _flush_locked(self) -> None:
        # a flush empties the buffer, so whatever is scheduled has nothing left to wait for;
        # clearing the flag also frees a flag left set by a loop that closed before its
        # callback ran, which would otherwise defer every later answer to an explicit flush
        self._flush_scheduled = False
        if not self._pending:
            return
        rows = [(key, *values) for key, values in self._pending.items()]
        try:
            if len(rows) == 1:  # autocommit: one statement is its own transaction
                self._db.execute(_INSERT, rows[0])
            else:
                self._db.execute("BEGIN")
                self._db.executemany(_INSERT, rows)
                self._db.execute("COMMIT")
        except (sqlite3.Error, UnicodeError) as exc:
            # a failed batch must not leave its transaction open (every later flush would
            # fail on it); and a cache that cannot keep answers would have them paid twice
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise SynthkdError(
                f"cannot write the teacher response cache {self.path}: {' '.join(str(exc).split())}"
            ) from None
        self._pending.clear()


def _completion(key: str, values) -> Completion:
    text, finish_reason, prompt_tokens, completion_tokens = values
    return Completion(
        index=-1,
        text=text,
        finish_reason=finish_reason,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cached=True,
        sample_key=key,
    )
