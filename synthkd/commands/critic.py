"""CLI: `synthkd critic train | score` and `synthkd label`.

`critic train` gathers labels (a human label file, an LLM judge, or automatic labels
from the recipe's seeds), fits the critic and saves it with its card and
precision_yield.png. `critic score` writes a new corpus version with critic_score and
accepted. `label` is the terminal annotation loop.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

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
    seed: Annotated[int, typer.Option("--seed", help="Seed for splits and sampling.")] = 0,
) -> None:
    """Train a critic for RECIPE on labels about records of CORPUS."""
    from synthkd.critics import CriticConfig, train_critic
    from synthkd.data import RunStore
    from synthkd.recipe import load_recipe

    loaded = load_recipe(recipe)
    config = CriticConfig(**loaded.critic.model_dump())
    store = RunStore.open(corpus).corpus
    task_kind = "labelled" if loaded.task.kind == "annotate" else loaded.task.kind
    if store.kind != task_kind:
        raise SynthkdError(f"the recipe makes {task_kind} records but {corpus} holds {store.kind}")
    rows = store.read()
    label_set = _gather_labels(loaded, config, rows, labels, judge, judge_n, seed)
    target = out if out is not None else loaded.output_dir() / "critic"
    critic = train_critic(
        label_set, config, target, kind=store.kind, method=method, seed=seed, progress=True
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


def _gather_labels(recipe, config, rows, labels_path, judge_spec, judge_n, seed):
    from synthkd.critics import LabelSet, auto_labels, labels_from_file, seeds_from_file

    found = LabelSet()
    labels_path = labels_path or (Path(config.labels_file) if config.labels_file else None)
    if labels_path is not None:
        found = found + labels_from_file(labels_path, rows)
    judge_spec = judge_spec or config.judge
    if judge_spec is not None:
        found = found + _judge(judge_spec, rows, config.judge_rubric, judge_n, seed)
    if labels_path is None and judge_spec is None:
        task = recipe.task
        if task.kind == "labelled":
            seeds = seeds_from_file(
                task.seeds, "labelled", text_column=task.text_column, label_column=task.label_column
            )
            found = auto_labels(seeds, labels=list(task.labels), seed=seed)
        elif task.kind == "annotate":
            if task.shots_file is None:
                raise SynthkdError(
                    "no critic labels: this recipe has no shots_file to use as seeds; "
                    "give --labels FILE or --judge SPEC"
                )
            seeds = seeds_from_file(
                task.shots_file,
                "labelled",
                text_column=task.text_column,
                label_column=task.label_column,
            )
            found = auto_labels(seeds, labels=list(task.labels), seed=seed)
        elif task.kind == "commonsense":
            found = auto_labels(seeds_from_file(task.seed_triples, "commonsense"), seed=seed)
        else:
            if task.seed_kg is None:
                raise SynthkdError(
                    "no critic labels: this recipe has no seed_kg; give --labels FILE or --judge SPEC"
                )
            found = auto_labels(seeds_from_file(task.seed_kg, "document_kg"), seed=seed)
    return found


def _judge(spec: str, rows, rubric: str | None, n: int, seed: int):
    from synthkd.critics import JUDGE_SAMPLING, judge_labels_async
    from synthkd.generators import prompt_style, teacher_from_spec
    from synthkd.generators.teachers import SamplingParams, TeacherRequest

    teacher = teacher_from_spec(spec)
    params = SamplingParams(**JUDGE_SAMPLING)
    chat = prompt_style(teacher) == "chat"

    def make_request(prompt: str) -> Any:
        if chat:
            return TeacherRequest(messages=({"role": "user", "content": prompt},), params=params)
        return TeacherRequest(prompt=prompt, params=params)

    async def run():
        try:
            return await judge_labels_async(
                teacher, rows, make_request, rubric=rubric, n=n, seed=seed
            )
        finally:
            await teacher.aclose()

    return asyncio.run(run())


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
    import pyarrow as pa

    from synthkd.critics import Critic, CriticConfig, apply_critic
    from synthkd.data import RunStore

    critic = Critic.load(critic_dir)
    if recipe is not None:
        from synthkd.recipe import load_recipe

        config = CriticConfig(**load_recipe(recipe).critic.model_dump())
    else:
        config = CriticConfig(balance=balance, target_precision=critic.target_precision)
    store = RunStore.open(corpus).corpus
    if store.kind != critic.kind:
        raise SynthkdError(
            f"the critic judges {critic.kind} records but {corpus} holds {store.kind}"
        )
    rows = store.read().to_pylist()
    if not rows:
        raise SynthkdError(f"the corpus {corpus} has no records to score")
    scored = apply_critic(critic, rows, config, progress=True)
    scores = pa.table(
        {
            "id": [r["id"] for r in scored],
            "critic_score": [r["critic_score"] for r in scored],
            "accepted": [r["accepted"] for r in scored],
        }
    )
    version = store.update_scores(
        scores,
        critic.version,
        f"critic score: {critic.version}",
        threshold=critic.threshold,
    )
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
    from synthkd.critics import annotate
    from synthkd.data import RunStore

    rows = RunStore.open(corpus).corpus.read()
    annotate(rows, n, out, seed=seed, console=_console)
