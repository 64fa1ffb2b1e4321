"""CLI: `synthkd generate RECIPE.yaml [--n N] [--out DIR] [--teacher SPEC]`.

Writes DIR/corpus (records) and DIR/rejects (with reasons) as Delta tables, shows a
progress bar with records/s and acceptance, and ends with a summary table. Run it again
after an interruption: samples already stored are skipped and the teacher's response
cache answers the rest, so nothing done is asked of the teacher twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from synthkd.errors import SynthkdError


def register(app: typer.Typer) -> None:
    """Add this group's commands to the root app."""
    app.command("generate")(generate_command)


def generate_command(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML file.")],
    n: Annotated[
        int | None,
        typer.Option(
            "--n",
            "-n",
            min=1,
            max=100_000,
            help="Records per label / relation / document (or texts to label).",
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Run folder (default: the recipe's output).")
    ] = None,
    teacher: Annotated[
        str | None,
        typer.Option(
            "--teacher", help="Teacher spec replacing the recipe's, e.g. openai:MODEL@URL."
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the summary as one JSON object.")
    ] = False,
) -> None:
    """Generate records from the recipe's teacher into OUT/corpus (rejects in OUT/rejects)."""
    from synthkd.data import CorpusStore
    from synthkd.generators import done_samples, make_task, teacher_mix
    from synthkd.recipe import load_recipe

    loaded = load_recipe(recipe)
    task = make_task(loaded.task.model_dump(), loaded.templates)
    slots = teacher_mix([s.model_dump() for s in loaded.teacher_sections()], teacher)
    target = Path(out) if out is not None else loaded.output_dir()
    fresh = [p for p in (target, target / "corpus", target / "rejects") if not p.exists()]
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SynthkdError(f"cannot create the run folder {target}: {exc.strerror}") from None
    corpus = CorpusStore.create(target / "corpus", task.kind)
    rejects = CorpusStore.create(target / "rejects", task.kind, rejects=True)
    done = done_samples(corpus, rejects, task.group_column)
    try:
        report = _run(loaded, task, slots, corpus, rejects, done, n)
    except SynthkdError:
        if corpus.count() == 0 and rejects.count() == 0:
            for path in reversed(fresh):  # nothing was written: leave nothing behind
                shutil.rmtree(path, ignore_errors=True)
        raise
    summary = report.to_dict()
    summary.update(corpus=str(target / "corpus"), rejects_table=str(target / "rejects"))
    summary["corpus_rows"] = corpus.count()
    if json_output:
        typer.echo(json.dumps(summary, sort_keys=True))
        return
    _print_summary(Console(), loaded.name, summary)


def _run(loaded, task, slots, corpus, rejects, done, n):
    from synthkd.data import BufferedWriter
    from synthkd.generators import generate

    console = Console(stderr=True)
    message = f"generate {loaded.name} round 0"
    with contextlib.ExitStack() as stack:
        writer = stack.enter_context(
            BufferedWriter(corpus, message, flush_rows=200, flush_seconds=20, metadata={"round": 0})
        )
        rejects_writer = stack.enter_context(
            BufferedWriter(
                rejects, message, flush_rows=200, flush_seconds=20, metadata={"round": 0}
            )
        )
        progress = stack.enter_context(
            Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("requests  {task.fields[records]} records  {task.fields[rate]:.2f}/s"),
                TextColumn("accepted {task.fields[acceptance]:.0%}"),
                TimeElapsedColumn(),
                console=console,
                transient=False,
            )
        )
        bar = progress.add_task(
            f"generate {loaded.name}", total=None, records=0, rate=0.0, acceptance=0.0
        )

        def on_progress(snapshot) -> None:
            progress.update(
                bar,
                completed=snapshot.requests_done,
                total=snapshot.requests_total,
                records=snapshot.records,
                rate=snapshot.records_per_s,
                acceptance=snapshot.acceptance,
            )

        async def run():
            try:
                return await generate(
                    task,
                    slots,
                    writer,
                    rejects_writer,
                    recipe=loaded.name,
                    round=0,
                    n=n,
                    done=done,
                    progress=on_progress,
                )
            finally:
                for slot in slots:
                    with contextlib.suppress(Exception):
                        await slot.teacher.aclose()

        return asyncio.run(run())


def _print_summary(console: Console, name: str, summary: dict) -> None:
    table = Table(title=f"synthkd generate {name}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    table.add_row("requests", str(summary["requests"]))
    table.add_row("samples", str(summary["samples"]))
    table.add_row("records", str(summary["records"]))
    table.add_row("rejects", str(sum(summary["rejects"].values())))
    for reason, count in sorted(summary["rejects"].items(), key=lambda kv: -kv[1]):
        table.add_row(f"  {reason}", str(count))
    table.add_row("skipped (already stored)", str(summary["skipped_samples"]))
    table.add_row("records/s", f"{summary['records_per_s']:.2f}")
    table.add_row("acceptance", f"{summary['acceptance']:.1%}")
    table.add_row("teacher prompt tokens", str(summary["teacher_prompt_tokens"]))
    table.add_row("teacher completion tokens", str(summary["teacher_completion_tokens"]))
    table.add_row("teacher cache hits", str(summary["teacher_cache_hits"]))
    table.add_row("seconds", f"{summary['seconds']:.1f}")
    for group, count in sorted(summary["per_group"].items()):
        table.add_row(f"  {group}", str(count))
    table.add_row("corpus", summary["corpus"])
    table.add_row("rejects table", summary["rejects_table"])
    console.print(table)
