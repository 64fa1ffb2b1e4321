"""The `synthkd` command line: a thin typer app that parses, calls `synthkd.stages` or flows, prints.

Each command group lives in `synthkd/commands/` and registers itself here. Every
`SynthkdError` becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import atexit
import gc
import os
import signal
import sys

import typer

from synthkd.commands import corpus, critic, generate, student, teacher, workflow
from synthkd.errors import SynthkdError, Terminated

app = typer.Typer(
    name="synthkd",
    help="Distil a large teacher LLM into small, fast students through versioned corpora.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

for group in (teacher, corpus, generate, critic, student, workflow):
    group.register(app)


def _one_line(text: str) -> str:
    """A message as one plain line: no terminal colour codes, no line breaks."""
    import re

    return " ".join(re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text).split())


def main() -> None:
    """Console-script entry point (see `_run`). `synthkd corpus` on an object-store URI ends
    with `os._exit` once its output is flushed: deltalake's and Arrow's native thread pools
    can abort the interpreter's teardown after a remote read ("terminate called without an
    active exception", exit -6; delta-io/delta-rs#2184, apache/arrow#34314), turning a
    finished command into a crash. Nothing is left to do by then: the command wrote
    atomically, and these commands start no Prefect run."""
    args = sys.argv[1:]
    remote = bool(args) and args[0] == "corpus" and any("://" in a for a in args)
    try:
        _run()
    except SystemExit as done:
        if not remote:
            raise
        code = done.code
        _exit_now(code if isinstance(code, int) else (0 if code is None else 1))
    if remote:
        _exit_now(0)


def _exit_now(code: int) -> None:
    import logging

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _run() -> None:
    """User errors are one line on stderr and exit code 2."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    # at exit, spare the interpreter its last full garbage collection over everything a
    # command imported (0.4 s of CPU after `synthkd generate`, issue 17): the OS frees it
    atexit.register(gc.freeze)
    try:
        app()
    except SynthkdError as exc:
        print(f"error: {_one_line(str(exc)) or type(exc).__name__}", file=sys.stderr)
        sys.exit(2)
    except OSError as exc:  # a full, read-only or vanished disk, wherever it shows up
        if os.environ.get("SYNTHKD_DEBUG"):
            raise
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        print(f"error: {_one_line(exc.strerror or str(exc))}{where}", file=sys.stderr)
        sys.exit(2)
    except Terminated as stop:  # `synthkd run`: SIGTERM or Ctrl-C (SIGINT)
        signum = stop.args[0] if stop.args else signal.SIGTERM
        how = "interrupted" if signum == signal.SIGINT else "stopped by SIGTERM"
        print(
            f"{how}: the run folder keeps what was committed; the same command resumes",
            file=sys.stderr,
        )
        sys.exit(128 + int(signum))


if __name__ == "__main__":
    main()
