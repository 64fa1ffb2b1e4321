"""CLI: `synthkd run` (the whole distillation) and `synthkd serve` (on a cron schedule).

Prefect keeps its state under PREFECT_HOME; unless the user set one (or points
PREFECT_API_URL at a server), a run uses `<run folder>/.prefect`, so the run folder
holds everything needed to resume it.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table


def register(app: typer.Typer) -> None:
    """Add this group's commands to the root app."""
    app.command("run")(run_command)
    app.command("serve")(serve_command)
    app.command("prepare")(prepare_command)


def prepare_command() -> None:
    """Make the embedded models' cached files once (scripts/setup.sh runs this), so the
    first run on a machine does not: the teacher GGUF, the critic's int8 encoder, SmolLM2."""
    from synthkd import stages

    console = Console(stderr=True)
    with console.status("preparing the embedded models (once per machine)"):
        made = stages.prepare_models()
    table = Table("model", "seconds", "path", title="synthkd's model cache")
    for row in made:
        table.add_row(row["model"], f"{row['seconds']:.1f}", row["path"])
    Console().print(table)


def _prefect_env(run_dir: Path) -> None:
    """Must run before prefect is imported: its settings are read at import."""
    if not os.environ.get("PREFECT_API_URL") and not os.environ.get("PREFECT_HOME"):
        home = run_dir / ".prefect"
        try:
            home.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            from synthkd.errors import SynthkdError

            raise SynthkdError(f"cannot create the run folder {run_dir}: {exc.strerror}") from None
        os.environ["PREFECT_HOME"] = str(home.resolve())
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


_STOPPED: list[int] = []
"""The signal that stopped this run, if one did."""


def _terminated(signum: int, frame: Any) -> None:
    from synthkd.errors import Terminated

    _STOPPED.append(signum)
    raise Terminated(signum)


def run_command(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML file.")],
    out: Annotated[
        str | None,
        typer.Option(
            "--out", help="Run folder, a path or s3:// gs:// az:// URI (default runs/<name>)."
        ),
    ] = None,
    teacher: Annotated[
        str | None, typer.Option("--teacher", help="Teacher spec replacing the recipe's.")
    ] = None,
    rounds: Annotated[
        int | None, typer.Option("--rounds", min=1, help="Round budget replacing the recipe's.")
    ] = None,
    dask_address: Annotated[
        str | None,
        typer.Option("--dask-address", help="Run scoring and evaluation on this Dask cluster."),
    ] = None,
    verbose: Annotated[
        bool,
        typer.Option("--verbose", "-v", help="Show Prefect's logs here too (always in run.log)."),
    ] = False,
    continue_loop: Annotated[
        bool,
        typer.Option(
            "--continue",
            help="Go on from the run folder's earlier runs: new rounds after the last one, "
            "new seeds, starting from the kept student and its focus.",
        ),
    ] = False,
    price: Annotated[
        str | None,
        typer.Option(
            "--price",
            metavar="PROMPT,COMPLETION",
            help="Teacher price per million prompt and completion tokens (replaces the "
            "recipe's), e.g. 0.15,0.60.",
        ),
    ] = None,
    estimate: Annotated[
        bool,
        typer.Option(
            "--estimate",
            help="Print the requests, tokens and cost of round 0 and stop; no teacher is called.",
        ),
    ] = False,
) -> None:
    """Distil RECIPE: generate, filter, store, train, evaluate, iterate."""
    from synthkd import stages

    # a bad recipe, or a bad file it names, stops here: nothing written, no teacher call
    ctx = stages.open_context(recipe, out, teacher=teacher)
    loaded, run_dir = ctx.recipe, ctx.run_dir
    stages.check_budget(ctx, stages.teacher_prices(ctx, price))  # a bad --price: one line
    if estimate:
        _print_estimate(Console(), stages.estimate_round0(ctx, price))
        return
    stages.check_continue(run_dir, continue_loop)
    created = not run_dir.exists()
    _prefect_env(run_dir)
    signal.signal(signal.SIGTERM, _terminated)  # Prefect's bridge hands the signal back here
    signal.signal(signal.SIGINT, _terminated)  # Ctrl-C too: click would print 'Aborted!', exit 1
    from synthkd.commands.runlog import fail, logs_to_file

    log = None
    try:
        with logs_to_file(run_dir, verbose) as log:
            from synthkd.flows import distill

            flow = distill
            if dask_address:
                from prefect_dask import DaskTaskRunner

                flow = distill.with_options(task_runner=DaskTaskRunner(address=dask_address))
            console = Console(stderr=True)
            with _RunDisplay(console, loaded.name):
                summary = flow(
                    str(recipe),
                    out_dir=ctx.location,
                    teacher=teacher,
                    rounds=rounds,
                    continue_loop=continue_loop,
                    price=price,
                )
    except Exception as exc:
        if verbose:
            raise
        error = fail(exc, run_dir, created, log)
        with contextlib.suppress(Exception):
            ctx.sync()  # object storage: run.log and what finished, uploaded
        if _STOPPED:  # Ctrl-C also stops Prefect's API server: the error is its echo
            from synthkd.errors import Terminated

            raise Terminated(_STOPPED[0]) from None
        raise error from None
    _print_summary(Console(), run_dir, summary)


class _RunDisplay:
    """Rich progress for a run: round, stage, records/s and accepted share."""

    def __init__(self, console: Console, name: str):
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=console,
        )
        self.bar = self.progress.add_task(f"distill {name}", total=None, detail="starting")
        self.round = 0

    def __call__(self, stage: str, fields: dict[str, Any]) -> None:
        if stage == "round":
            self.round = fields["round"]
            detail = f"round {self.round + 1}/{fields['rounds']}"
        elif stage == "generate":
            self.progress.update(self.bar, completed=fields["done"], total=fields["total"] or None)
            detail = (
                f"round {self.round} · generate · {fields['records']} records · "
                f"{fields['rate']:.2f}/s · accepted {fields['accepted']:.0%}"
            )
        elif stage == "round_done":
            f1 = fields.get("val_macro_f1")
            detail = f"round {fields['round']} done · macro-F1 {f1:.3f}" if f1 is not None else ""
        else:
            action = fields.get("action", "")
            detail = f"round {self.round} · {stage} {action}".strip()
        self.progress.update(self.bar, detail=detail)

    def __enter__(self):
        from synthkd.flows import add_listener

        add_listener(self)
        self.progress.start()
        return self

    def __exit__(self, *exc):
        from synthkd.flows import remove_listener

        remove_listener(self)
        self.progress.stop()


def _fmt(value: Any, digits: int = 3) -> str:
    return (
        f"{value:.{digits}f}"
        if isinstance(value, float)
        else ("–" if value is None else str(value))
    )


def _print_summary(console: Console, run_dir: Path, summary: dict[str, Any]) -> None:
    import json

    rounds = json.loads((run_dir / "metrics.json").read_text())
    table = Table(title=f"synthkd run {summary['recipe']}")
    for column in ("round", "generated", "accepted", "val accuracy", "val macro-F1", "seconds"):
        table.add_column(column, justify="right")
    for row in rounds:
        table.add_row(
            str(row["round"]),
            str(row["generated"]),
            str(row["accepted"]),
            _fmt(row["val_accuracy"]),
            _fmt(row["val_macro_f1"]),
            _fmt(row["seconds"], 1),
        )
    console.print(table)
    console.print(f"stopped: {summary['stop_reason']}", soft_wrap=True)
    console.print(f"report: {summary['report']}", soft_wrap=True)
    from synthkd.flows import speedup, student_rows

    teacher = summary.get("teacher") or {}
    rows = student_rows(summary)
    if not rows:
        console.print(f"student: {summary.get('student', 'none')}", soft_wrap=True)
        return
    parts = [f"student validation accuracy {_fmt(rows[0]['val_accuracy'])}"]
    if teacher:
        parts[0] += f" vs teacher {_fmt(teacher.get('accuracy'))}"
    for row in rows:
        ratio = speedup(row, teacher)
        if ratio:
            parts.append(
                f"{row['name']}: {ratio:.0f}x the teacher's examples/s"
                f" (accuracy {_fmt(row['val_accuracy'])})"
            )
    test = summary.get("test") or {}
    shipped_test = (test.get("models") or {}).get("shipped student")
    if shipped_test:
        parts.append(
            f"test accuracy {_fmt(shipped_test['accuracy'])} on the untouched test file "
            f"({test['examples']} examples)"
        )
    console.print("; ".join(parts), soft_wrap=True)  # one line, for readers and for grep


def _print_estimate(console: Console, estimate: dict[str, Any]) -> None:
    """`synthkd run --estimate`: round 0's requests, tokens and cost, per teacher."""
    table = Table(title=f"round 0 of {estimate['recipe']}: estimate (no teacher called)")
    for column in ("teacher", "requests", "samples", "cached", "prompt tokens",
                   "completion tokens (at most)", "cost (at most)"):  # fmt: skip
        table.add_column(column, justify="left" if column == "teacher" else "right")
    for row in [*estimate["teachers"], {**estimate["total"], "teacher": "total"}]:
        table.add_row(
            row["teacher"],
            str(row["requests"]),
            str(row["samples"]),
            str(row["cached_samples"]),
            str(row["prompt_tokens"]),
            str(row["completion_tokens_max"]),
            "unknown (no price)" if row["cost_max"] is None else f"{row['cost_max']:.4f}",
        )
    console.print(table)
    console.print(estimate["note"], soft_wrap=True)
    total = estimate["total"]
    cost = "unknown (no price)" if total["cost_max"] is None else f"{total['cost_max']:.4f}"
    console.print(
        f"estimate: {total['requests']} requests, {total['samples']} samples "
        f"({total['cached_samples']} cached), {total['prompt_tokens']} prompt tokens, "
        f"at most {total['completion_tokens_max']} completion tokens, cost at most {cost}",
        soft_wrap=True,
    )


def serve_command(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML file.")],
    cron: Annotated[str, typer.Option("--cron", help='Cron schedule, e.g. "0 3 * * *".')],
    out: Annotated[
        Path | None, typer.Option("--out", help="Run folder (default runs/<name>).")
    ] = None,
    teacher: Annotated[str | None, typer.Option("--teacher", help="Teacher spec.")] = None,
    price: Annotated[
        str | None,
        typer.Option(
            "--price",
            metavar="PROMPT,COMPLETION",
            help="Teacher price per million prompt and completion tokens.",
        ),
    ] = None,
) -> None:
    """Serve `distill` for RECIPE on a cron schedule (Prefect `flow.serve`).

    Each scheduled run continues the loop of the runs before it in the run folder: new
    rounds with new seeds (a new corpus version), from the kept student and its focus.
    """
    from synthkd import stages
    from synthkd.errors import SynthkdError

    ctx = stages.open_context(recipe, out, teacher=teacher)
    loaded = ctx.recipe
    stages.check_budget(ctx, stages.teacher_prices(ctx, price))
    try:
        from prefect.client.schemas.schedules import CronSchedule

        CronSchedule(cron=cron)
    except Exception as exc:
        raise SynthkdError(f"--cron {cron!r} is not a valid cron expression") from exc
    run_dir = Path(out) if out is not None else loaded.output_dir()
    _prefect_env(run_dir)
    from synthkd.flows import distill

    distill.serve(
        name=f"distill-{loaded.name}",
        cron=cron,
        parameters={
            "recipe": str(Path(recipe).resolve()),
            "out_dir": str(run_dir.resolve()),
            "teacher": teacher,
            "continue_loop": True,
            "price": price,
        },
    )
