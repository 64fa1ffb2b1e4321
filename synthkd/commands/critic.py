"""CLI: `synthkd critic evidence | train | score` and `synthkd label`.

`critic evidence` relabels or rejects generated records by label evidence, as `run` does
before the critic. `critic train` gathers labels (a human label file, an LLM judge, or
automatic labels from the recipe's seeds or shots_file, and the label evidence), fits the
critic and saves it with its card and precision_yield.png. `critic score` writes a new
corpus version with critic_score and accepted. `label` is the terminal annotation loop.
All go through `synthkd.stages`, the same functions `synthkd run` uses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from synthkd.errors import SynthkdError

critic_app = typer.Typer(
    help="Train a critic on acceptability labels and score corpora with it.",
    no_args_is_help=True,
)
_console = Console()

CorpusOpt = Annotated[
    str, typer.Option("--corpus", help="Corpus table or run folder (path or URI).")
]


def register(app: typer.Typer) -> None:
    """Add this group's commands to the root app."""
    app.add_typer(critic_app, name="critic")
    app.command("label")(label_command)


@critic_app.command("train")
def train_command(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML file (its critic section).")],
    corpus: CorpusOpt,
    labels: Annotated[
        Path | None,
        typer.Option("--labels", help="Human labels (Parquet/CSV: id or fields, accept)."),
    ] = None,
    judge: Annotated[
        str | None, typer.Option("--judge", help="Teacher spec of an LLM judge, e.g. openai:MODEL.")
    ] = None,
    judge_n: Annotated[
        int, typer.Option("--judge-n", min=1, help="Records the judge rates.")
    ] = 200,
    out: Annotated[
        Path | None, typer.Option("--out", help="Critic folder (default: the run's critic/).")
    ] = None,
    method: Annotated[
        str, typer.Option("--method", help="auto, logistic (embeddings) or lora (cross-encoder).")
    ] = "auto",
    seed: Annotated[
        int | None,
        typer.Option("--seed", help="Seed for splits and sampling (default: the recipe's)."),
    ] = None,
) -> None:
    """Train a critic for RECIPE on labels about records of CORPUS."""
    from synthkd import stages
    from synthkd.data import RunStore

    ctx = stages.open_context(recipe)
    config = ctx.critic_config()
    run = RunStore.open(corpus)
    store = run.corpus
    if store.kind != ctx.kind:
        raise SynthkdError(f"the recipe makes {ctx.kind} records but {corpus} holds {store.kind}")
    critic = stages.fit_critic(
        ctx,
        store.read(),
        out,
        run=run,
        labels_file=labels,
        judge_spec=judge,
        judge_n=judge_n,
        method=method,
        seed=seed,
        progress=True,
    )
    m = critic.metrics
    table = Table(title=f"critic {critic.version}", show_header=False)
    for source, counts in sorted(critic.label_counts.items()):
        table.add_row(
            f"labels ({source})", f"{counts['accept']} acceptable, {counts['reject']} not"
        )
    table.add_row("held-out ROC-AUC", f"{m['holdout_roc_auc']:.3f}")
    table.add_row(
        "threshold", f"{critic.threshold:.4f} (target precision {config.target_precision})"
    )
    table.add_row(
        "held-out at threshold",
        f"precision {m['holdout_precision_at_threshold']:.3f}, keeps {m['holdout_kept_share']:.1%}",
    )
    if not m["target_met"]:
        table.add_row("warning", "target precision not reached; the most precise cut was taken")
    table.add_row("saved to", str(critic.path))
    _console.print(table)


@critic_app.command("evidence")
def evidence_command(
    recipe: Annotated[Path, typer.Argument(help="Labelled recipe YAML (its real examples).")],
    run_dir: Annotated[
        Path, typer.Option("--corpus", help="Run folder written by `synthkd generate`.")
    ],
    teacher: Annotated[
        str | None,
        typer.Option(
            "--teacher", help="Teacher spec for the pool's labels (default: the recipe's)."
        ),
    ] = None,
) -> None:
    """Labels from evidence for every round of the run folder: relabel, or reject with
    label_disagreement; then the recipe's unlabelled pool joins the first round if CV holds.

    What `synthkd run` does between the filters and the critic, so `critic train` after it
    learns from the same evidence.
    """
    import pyarrow.compute as pc

    from synthkd import stages

    ctx = stages.open_context(recipe, run_dir, teacher=teacher)
    if ctx.task_kind != "labelled" or ctx.inputs.real is None:
        raise SynthkdError(
            f"{recipe} is not a labelled recipe with real examples: no label evidence to take"
        )
    if not (run_dir / "corpus").is_dir():
        raise SynthkdError(f"not a run folder: {run_dir} (no corpus/ table inside)")
    rounds = pc.unique(ctx.stores().corpus.read(columns=["round"])["round"]).to_pylist()
    if not rounds:
        raise SynthkdError(f"the corpus in {run_dir} has no records")
    table = Table(title=f"label evidence: {ctx.name}")
    for column in ("round", "kept", "relabelled", "rejected (label_disagreement)"):
        table.add_column(column, justify="right")
    for r in sorted(rounds):
        result = stages.label_round(ctx, r) or {}
        table.add_row(
            str(r), *(str(result.get(key, 0)) for key in ("kept", "relabelled", "rejected"))
        )
    pool = stages.pool_round(ctx, min(rounds))
    _console.print(table)
    if pool:
        verdict = f"{pool.get('appended', 0)} joined" if pool.get("joined") else "none joined"
        why = f" ({pool['why']})" if pool.get("why") else ""
        _console.print(
            f"unlabelled pool: {pool.get('candidates', 0)} of {pool.get('pool_texts', 0)} texts "
            f"labelled with confidence, {verdict}{why}"
        )


@critic_app.command("score")
def score_command(
    critic_dir: Annotated[Path, typer.Argument(help="Critic folder written by `critic train`.")],
    corpus: CorpusOpt,
    balance: Annotated[
        bool, typer.Option("--balance/--no-balance", help="Keep every label's share (quota).")
    ] = True,
    recipe: Annotated[
        Path | None, typer.Option("--recipe", help="Take critic settings from this recipe.")
    ] = None,
) -> None:
    """Score every record of CORPUS and commit a version with critic_score and accepted."""
    from synthkd import stages
    from synthkd.data import RunStore

    critic = stages.load_critic(critic_dir)
    ctx = stages.open_context(recipe) if recipe is not None else None
    config = stages.scoring_config(ctx, critic, balance)
    store = RunStore.open(corpus).corpus
    if store.kind != critic.kind:
        raise SynthkdError(
            f"the critic judges {critic.kind} records but {corpus} holds {store.kind}"
        )
    if store.count() == 0:
        raise SynthkdError(f"the corpus {corpus} has no records to score")
    scored, version = stages.score_store(critic, store, config, progress=True)
    _print_scored(scored, store.group_column, critic, version, config)


def _print_scored(scored, group_column, critic, version, config) -> None:
    counts: dict[str, list[int]] = {}
    for row in scored:
        entry = counts.setdefault(str(row.get(group_column)), [0, 0])
        entry[0] += 1
        entry[1] += int(row["accepted"])
    table = Table(title=f"{critic.version}: corpus version {version}")
    table.add_column(group_column)
    table.add_column("records", justify="right")
    table.add_column("accepted", justify="right")
    table.add_column("share", justify="right")
    for name, (total, kept) in sorted(counts.items()):
        table.add_row(name, str(total), str(kept), f"{kept / total:.1%}")
    total = sum(c[0] for c in counts.values())
    kept = sum(c[1] for c in counts.values())
    table.add_row("all", str(total), str(kept), f"{kept / total:.1%}", style="bold")
    _console.print(table)
    mode = "per-label quota" if config.balance else "threshold"
    _console.print(f"threshold {critic.threshold:.4f}, {mode}; new corpus version {version}")


def label_command(
    corpus: Annotated[str, typer.Argument(help="Corpus table or run folder (path or URI).")],
    n: Annotated[int, typer.Option("--n", "-n", min=1, help="Records to label.")] = 50,
    out: Annotated[Path, typer.Option("--out", help="Label file (.csv or .parquet).")] = Path(
        "labels.csv"
    ),
    seed: Annotated[int, typer.Option("--seed", help="Seed of the sample.")] = 0,
) -> None:
    """Label sampled records acceptable or not, one key per record; saves every answer."""
    from synthkd import stages
    from synthkd.data import RunStore

    rows = RunStore.open(corpus).corpus.read()
    stages.label_by_hand(rows, n, out, seed=seed, console=_console)
