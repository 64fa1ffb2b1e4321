"""`synthkd label`: a terminal loop in which a person judges sampled records one at a time.

Every answer is on disk before the next record is shown, so quitting (q, Ctrl-C, a
closed terminal) loses nothing; running the same command again continues with the same
sample, skipping what was already answered.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console
from rich.panel import Panel

from synthkd.critics.records import Row, as_rows, kind_of, render
from synthkd.data import read_rows, write_atomic
from synthkd.data.schemas import IDENTITY_FIELDS
from synthkd.errors import SynthkdError

KEYS = {"y": 1, "n": 0, "s": None}
_PROMPT = "[bold green]y[/] acceptable   [bold red]n[/] not acceptable   [bold]s[/] skip   [bold]q[/] quit"


@dataclass
class AnnotationSummary:
    """What a labelling session left in the label file."""

    path: Path
    accepted: int
    rejected: int
    skipped: int
    remaining: int
    """Sampled records still without an answer (0 when the sample is done)."""
    quit: bool


def sample_for_annotation(rows: list[Row], n: int, seed: int = 0) -> list[Row]:
    """The same `n` records for the same corpus and seed, whatever order rows come in."""
    if n < 1:
        raise SynthkdError(f"--n must be at least 1, not {n}")
    ordered = sorted(rows, key=lambda row: row["id"])
    if n >= len(ordered):
        return ordered
    picked = np.random.default_rng(seed).choice(len(ordered), size=n, replace=False)
    return [ordered[i] for i in sorted(picked)]


class LabelFile:
    """An append-only answer file: CSV appends one line; Parquet is rewritten atomically."""

    def __init__(self, path: str | Path, kind: str) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() not in (".csv", ".parquet"):
            raise SynthkdError(f"label file must end in .csv or .parquet: {self.path}")
        self.columns = ["id", "accept", *IDENTITY_FIELDS[kind], "labelled_at"]
        self.answers: list[dict[str, Any]] = []
        if self.path.exists():
            rows = read_rows(self.path, "label file")
            if rows and not {"id", "accept"} <= set(rows[0]):
                raise SynthkdError(f"{self.path} exists and is not a label file (no id/accept)")
            self.answers = [{c: row[c] for c in self.columns if c in row} for row in rows]

    def answered(self) -> set[str]:
        return {str(answer["id"]) for answer in self.answers}

    def add(self, row: Row, accept: int | None) -> None:
        answer = {name: row.get(name) for name in self.columns}
        answer["accept"] = accept
        answer["labelled_at"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        self.answers.append(answer)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.suffix.lower() == ".csv":
            new = not self.path.exists()
            with self.path.open("a", newline="", encoding="utf-8") as handle:
                writer = csv.DictWriter(handle, fieldnames=self.columns)
                if new:
                    writer.writeheader()
                writer.writerow({k: "" if v is None else v for k, v in answer.items()})
                handle.flush()
                os.fsync(handle.fileno())
            return
        table = pa.Table.from_pylist(
            self.answers,
            schema=pa.schema(
                [(name, pa.int8() if name == "accept" else pa.string()) for name in self.columns]
            ),
        )
        buffer = pa.BufferOutputStream()
        pq.write_table(table, buffer)
        write_atomic(self.path, buffer.getvalue().to_pybytes())

    def counts(self) -> tuple[int, int, int]:
        values = [answer.get("accept") for answer in self.answers]
        accepted = sum(1 for v in values if str(v) == "1")
        rejected = sum(1 for v in values if str(v) == "0")
        return accepted, rejected, len(values) - accepted - rejected


def annotate(
    corpus: pa.Table | Iterable[Mapping[str, Any]],
    n: int,
    out: str | Path,
    *,
    seed: int = 0,
    console: Console | None = None,
    read_key: Callable[[], str] | None = None,
) -> AnnotationSummary:
    """Show up to `n` sampled records, one at a time, and save each answer to `out`."""
    rows = as_rows(corpus)
    if not rows:
        raise SynthkdError("the corpus has no records to label")
    kind = kind_of(rows)
    labels = LabelFile(out, kind)
    sample = sample_for_annotation(rows, n, seed)
    done = labels.answered()
    todo = [row for row in sample if row["id"] not in done]
    console = console or Console()
    if read_key is None:
        import click

        read_key = click.getchar
    quit_early = False
    for position, row in enumerate(todo, start=1):
        accepted, rejected, skipped = labels.counts()
        title = f"record {len(sample) - len(todo) + position} of {len(sample)}"
        subtitle = f"saved: {accepted} yes, {rejected} no, {skipped} skipped"
        console.print(Panel(render(row, kind), title=title, subtitle=subtitle, expand=False))
        console.print(_PROMPT)
        key = _ask(read_key, console)
        if key == "q":
            quit_early = True
            break
        labels.add(row, KEYS[key])
        answer = {1: "yes", 0: "no", None: "skip"}[KEYS[key]]
        console.print(f"saved {answer} for {row['id'][:12]}", highlight=False)
    accepted, rejected, skipped = labels.counts()
    remaining = len([row for row in sample if row["id"] not in labels.answered()])
    verb = "stopped" if quit_early else "done"
    console.print(
        f"{verb}: {accepted} acceptable, {rejected} not acceptable, {skipped} skipped saved to "
        f"{labels.path}; {remaining} left"
        + (" (run the same command to continue)" if remaining else ""),
        highlight=False,
    )
    return AnnotationSummary(labels.path, accepted, rejected, skipped, remaining, quit_early)


def _ask(read_key: Callable[[], str], console: Console) -> str:
    while True:
        try:
            key = read_key()
        except (KeyboardInterrupt, EOFError):
            return "q"
        key = (key or "").strip().lower()[:1]
        if key in ("\x03", "\x04"):
            return "q"
        if key in KEYS or key == "q":
            return key
        console.print("press y, n, s or q")
