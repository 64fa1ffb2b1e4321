"""CLI: `synthkd generate RECIPE.yaml [--n N] [--out DIR] [--teacher SPEC]`.

Writes DIR/corpus (records) and DIR/rejects (with reasons) as Delta tables through
`synthkd.stages` (the same generate and filter stages as `synthkd run`'s first round),
shows a progress bar with records/s and acceptance, and ends with a summary table. Run it again
after an interruption: samples already stored are skipped and the teacher's response
cache answers the rest, so nothing done is asked of the teacher twice.
"""

from __future__ import annotations

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
        str | None,
        typer.Option(
            "--out", help="Run folder, a path or s3:// gs:// az:// URI (default: the recipe's)."
        ),
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
    """Generate records from the recipe's teacher into OUT/corpus (rejects in OUT/rejects).

    The round is then filtered (rules, exact and near duplicates) as `synthkd run` does.
    """
    from synthkd import stages

    ctx = stages.open_context(recipe, out, teacher=teacher)  # every file checked first
    target = ctx.run_dir
    fresh = [p for p in (target, target / "corpus", target / "rejects") if not p.exists()]
    try:
        report = _run(ctx, n)
        filtered = stages.filter_round(ctx, 0)
    except SynthkdError:
        if ctx.wrote_nothing():
            for path in reversed(fresh):  # nothing was written: leave nothing behind
                shutil.rmtree(path, ignore_errors=True)
        raise
    run = ctx.stores()
    corpus = run.corpus
    summary = report.to_dict()
    summary.update(corpus=corpus.uri, rejects_table=run.rejects.uri)
    summary["filtered_out"] = filtered["rejected"]
    summary["filter_reasons"] = filtered["reasons"]
    summary["corpus_rows"] = corpus.count()
    if json_output:
        typer.echo(json.dumps(summary, sort_keys=True))
        return
    _print_summary(Console(), ctx.name, summary)


def _run(ctx, n):
    """One round through `synthkd.stages.generate_round`, with a rich progress bar."""
    from synthkd import stages

    console = Console(stderr=True)
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("requests  {task.fields[records]} records  {task.fields[rate]:.2f}/s"),
        TextColumn("accepted {task.fields[acceptance]:.0%}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
        refresh_per_second=4,  # a redraw costs the event loop; 4/s reads as live
    )
    bar = progress.add_task(f"generate {ctx.name}", total=None, records=0, rate=0.0, acceptance=0.0)

    def on_progress(snapshot) -> None:
        progress.update(
            bar,
            completed=snapshot.requests_done,
            total=snapshot.requests_total,
            records=snapshot.records,
            rate=snapshot.records_per_s,
            acceptance=snapshot.acceptance,
        )

    with progress:
        return stages.generate_round(ctx, 0, n=n, progress=on_progress)


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
    table.add_row("filtered out (rules, duplicates)", str(summary["filtered_out"]))
    for reason, count in sorted(summary["filter_reasons"].items(), key=lambda kv: -kv[1]):
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
