"""CLI commands: `synthkd corpus show | versions | diff | export | publish`.

CORPUS is a corpus table (a run's `corpus/` folder or URI) or a run folder holding one;
a `rejects/` table beside it gives acceptance rates.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

corpus_app = typer.Typer(
    help="Inspect, compare, export and publish versioned corpora.",
    no_args_is_help=True,
)

CorpusArg = Annotated[str, typer.Argument(help="Corpus table or run folder (path or URI).")]
VersionOpt = Annotated[
    int | None, typer.Option("--version", "-v", help="Corpus version (default: latest).")
]
SplitOpt = Annotated[
    str, typer.Option("--split", help="Splits and fractions, e.g. train=0.9,validation=0.1.")
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Shuffle seed for the splits.")]
LicenseOpt = Annotated[
    str, typer.Option("--license", help="License id for the card (check the teacher's terms).")
]

_console = Console()


def _short(value: object, width: int = 60) -> str:
    text = " ".join(str(value).split()) if value is not None else ""
    return text if len(text) <= width else text[: width - 1] + "…"


@corpus_app.command("show")
def show(corpus: CorpusArg, version: VersionOpt = None, samples: int = 5) -> None:
    """Rows, versions, counts per label/relation, acceptance rate and a few sample rows."""
    from synthkd.data import RunStore

    run = RunStore.open(corpus)
    store = run.corpus
    number = store.version() if version is None else version
    table = store.read(number)
    history = store.versions()
    summary = Table(title=f"corpus {store.uri}", show_header=False)
    summary.add_row("kind", store.kind)
    summary.add_row("version", f"{number} (latest {history[-1].version}, {len(history)} versions)")
    summary.add_row("rows", str(table.num_rows))
    acceptance = run.acceptance(number) if run.rejects is not None else []
    if acceptance:
        kept = sum(a.accepted for a in acceptance)
        total = kept + sum(a.rejected for a in acceptance)
        summary.add_row("acceptance", f"{kept}/{total} = {kept / total:.1%}" if total else "-")
    else:
        summary.add_row("acceptance", "no rejects/ table beside the corpus")
    _console.print(summary)

    counts = Table(title=f"rows per {store.group_column}")
    counts.add_column(store.group_column)
    counts.add_column("rows", justify="right")
    counts.add_column("share", justify="right")
    for name, count in store.counts(number).items():
        counts.add_row(name, str(count), f"{count / max(table.num_rows, 1):.1%}")
    _console.print(counts)

    if acceptance:
        rounds = Table(title="acceptance per round")
        for column in ("round", "accepted", "rejected", "rate"):
            rounds.add_column(column, justify="right")
        for a in acceptance:
            rounds.add_row(str(a.round), str(a.accepted), str(a.rejected), f"{a.rate:.1%}")
        _console.print(rounds)

    content = [f.name for f in store.schema if f.name in _CONTENT[store.kind]]
    sample = Table(title=f"first {min(samples, table.num_rows)} rows")
    for column in ["id", "round", *content, "critic_score"]:
        sample.add_column(column)
    for row in table.slice(0, max(samples, 0)).to_pylist():
        score = row["critic_score"]
        sample.add_row(
            row["id"][:12],
            str(row["round"]),
            *[_short(row[c]) for c in content],
            "-" if score is None else f"{score:.3f}",
        )
    _console.print(sample)


_CONTENT = {
    "labelled": ("text", "label"),
    "commonsense": ("head", "relation", "tail"),
    "document_kg": ("subject", "predicate", "object", "quote"),
}


@corpus_app.command("versions")
def versions(corpus: CorpusArg) -> None:
    """Every committed version with its time, operation, rows and commit message."""
    from synthkd.data import RunStore

    store = RunStore.open(corpus).corpus
    table = Table(title=f"versions of {store.uri}")
    for column, justify in [
        ("version", "right"),
        ("committed (UTC)", "left"),
        ("operation", "left"),
        ("rows", "right"),
        ("message", "left"),
    ]:
        table.add_column(column, justify=justify)
    for v in store.versions():
        table.add_row(
            str(v.version),
            v.timestamp.strftime("%Y-%m-%d %H:%M:%S"),
            v.operation,
            str(v.rows),
            v.message,
        )
    _console.print(table)


@corpus_app.command("diff")
def diff(
    corpus: CorpusArg,
    v1: Annotated[int, typer.Argument(help="Older version.")],
    v2: Annotated[int, typer.Argument(help="Newer version.")],
    show_ids: Annotated[int, typer.Option(help="How many added/removed ids to list.")] = 5,
) -> None:
    """Records added, removed and rescored between two versions, per label or relation."""
    from synthkd.data import RunStore

    store = RunStore.open(corpus).corpus
    result = store.diff(v1, v2)
    _console.print(
        f"version {v1} -> {v2}: [green]+{len(result.added)} added[/], "
        f"[red]-{len(result.removed)} removed[/], {len(result.rescored)} rescored"
    )
    table = Table(title=f"rows per {result.group_column}")
    table.add_column(result.group_column)
    for column in (f"v{v1}", f"v{v2}", "added", "removed"):
        table.add_column(column, justify="right")
    groups = list(dict.fromkeys([*result.counts_v2, *result.counts_v1]))
    for name in groups:
        table.add_row(
            name,
            str(result.counts_v1.get(name, 0)),
            str(result.counts_v2.get(name, 0)),
            f"+{result.added_counts.get(name, 0)}",
            f"-{result.removed_counts.get(name, 0)}",
        )
    _console.print(table)
    for label, ids in (("added", result.added), ("removed", result.removed)):
        if ids and show_ids > 0:
            listed = ", ".join(ids[:show_ids]) + (" …" if len(ids) > show_ids else "")
            _console.print(f"{label}: {listed}")


@corpus_app.command("export")
def export(
    corpus: CorpusArg,
    to: Annotated[str, typer.Option("--to", help="Folder to write (absent or empty).")],
    version: VersionOpt = None,
    split: SplitOpt = "train=1.0",
    seed: SeedOpt = 0,
    license: LicenseOpt = "other",
    overwrite: Annotated[bool, typer.Option(help="Replace a non-empty --to folder.")] = False,
    graph: Annotated[
        bool,
        typer.Option(
            "--graph",
            help="Triples corpora: a knowledge-graph edge list instead (edges.parquet: head, "
            "relation, tail, quote, document; loads with datasets or networkx) plus a card.",
        ),
    ] = False,
) -> None:
    """Write a DatasetDict as Parquet shards per split plus a dataset card (README.md)."""
    from synthkd.data import export_dataset, export_graph, parse_splits

    if graph:
        kg = export_graph(corpus, to, version=version, overwrite=overwrite)
        _console.print(
            f"exported version {kg.version} to {kg.path} ({kg.edges} edges, {kg.nodes} nodes, "
            f"{kg.relations} relations; edges.parquet, card README.md)"
        )
        return

    splits = parse_splits(split)
    result = export_dataset(
        corpus,
        to,
        version=version,
        splits=splits,
        seed=seed,
        license=license,
        overwrite=overwrite,
        progress=True,
    )
    parts = ", ".join(f"{name} {rows}" for name, rows in result.split_rows.items())
    _console.print(f"exported version {result.version} to {result.path} ({parts}; card README.md)")


@corpus_app.command("publish")
def publish(
    corpus: CorpusArg,
    repo_id: Annotated[str, typer.Option("--repo-id", help="Hub dataset repo, ORG/NAME.")],
    version: VersionOpt = None,
    split: SplitOpt = "train=1.0",
    seed: SeedOpt = 0,
    license: LicenseOpt = "other",
    public: Annotated[bool, typer.Option(help="Create the repo public (default private).")] = False,
) -> None:
    """Export, then upload to the Hugging Face Hub (needs HF_TOKEN and a network)."""
    from synthkd.data import parse_splits, publish_dataset

    splits = parse_splits(split)
    result = publish_dataset(
        corpus,
        repo_id,
        version=version,
        splits=splits,
        seed=seed,
        license=license,
        private=not public,
    )
    _console.print(f"published version {result.version} to {result.url}")


def register(app: typer.Typer) -> None:
    """Add this group's commands to the root app."""
    app.add_typer(corpus_app, name="corpus")
