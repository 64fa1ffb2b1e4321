"""The `synthkd` command line: a thin typer app that parses, calls `synthkd.stages` or flows, prints.

Each command group lives in `synthkd/commands/` and registers itself here. Every
`SynthkdError` becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import atexit
import gc
import os
import sys

import typer

from synthkd.commands import corpus, critic, generate, student, teacher, workflow
from synthkd.errors import SynthkdError

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
    """Console-script entry point: user errors are one line on stderr and exit code 2."""
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
    except KeyboardInterrupt:
        print("interrupted: the corpus stays at its last committed version", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
