"""One error path for `synthkd run`: logs to `<run>/run.log`, one line on the terminal.

Prefect logs every failed task with its traceback on stderr; a user wants one line that
names the cause and says whether the run can be resumed. So while a run is going,
Prefect's (and the libraries') log records go to `run.log` in the run folder, and
`--verbose` keeps them on the terminal too. A failure that committed nothing removes
the folder the run created; one that did says `rerun the same command to resume`.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import traceback
from collections.abc import Iterator
from pathlib import Path

from synthkd.errors import SynthkdError

LOG_NAME = "run.log"
_FORMAT = "%(asctime)s | %(levelname)-7s | %(name)s - %(message)s"


def _stream_handlers(logger: logging.Logger) -> list[logging.Handler]:
    return [
        h
        for h in logger.handlers
        if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
    ]


@contextlib.contextmanager
def logs_to_file(run_dir: Path, verbose: bool = False) -> Iterator[Path]:
    """Send every logger's records to `run_dir/run.log` (and off the terminal unless verbose)."""
    path = run_dir / LOG_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(_FORMAT))
    removed: list[tuple[logging.Logger, logging.Handler]] = []
    added: list[logging.Logger] = []
    loggers = [logging.getLogger()] + [
        logging.getLogger(name)
        for name, item in list(logging.root.manager.loggerDict.items())
        if isinstance(item, logging.Logger)
    ]
    for logger in loggers:
        streams = _stream_handlers(logger)
        if logger is logging.getLogger() or (streams and not logger.propagate):
            logger.addHandler(handler)
            added.append(logger)
        if not verbose:
            for stream in streams:
                logger.removeHandler(stream)
                removed.append((logger, stream))
    logging.captureWarnings(True)
    try:
        yield path
    finally:
        logging.captureWarnings(False)
        for logger in added:
            logger.removeHandler(handler)
        for logger, stream in removed:
            logger.addHandler(stream)
        handler.close()


def log_traceback(path: Path, exc: BaseException) -> None:
    """The full story of a failure, for the user who opens run.log."""
    with contextlib.suppress(OSError), path.open("a", encoding="utf-8") as handle:
        handle.write("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))


def committed_rows(run_dir: Path) -> int:
    """Rows the run committed to its corpus and rejects tables (0 when there are none)."""
    from synthkd.data import CorpusStore

    total = 0
    for name in ("corpus", "rejects"):
        folder = run_dir / name
        if (folder / "_delta_log").is_dir():
            with contextlib.suppress(Exception):
                total += CorpusStore(folder).count()
    return total


def fail(exc: BaseException, run_dir: Path, created: bool, log: Path | None) -> SynthkdError:
    """The one line a failed run ends with; removes a folder that holds no committed work."""
    if log is not None:
        log_traceback(log, exc)
    if isinstance(exc, SynthkdError):
        cause = " ".join(str(exc).split()) or type(exc).__name__
    elif isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        cause = f"{exc.strerror}{where}"
    else:
        first = (str(exc).strip().splitlines() or [""])[0]
        cause = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    if committed_rows(run_dir):
        return SynthkdError(
            f"{cause}; the run folder {run_dir} keeps what was committed "
            f"(details in {LOG_NAME}): rerun the same command to resume"
        )
    if created:
        shutil.rmtree(run_dir, ignore_errors=True)
        return SynthkdError(f"{cause}; nothing was committed, so no run folder is left")
    return SynthkdError(f"{cause}; nothing was committed (details in {run_dir / LOG_NAME})")
