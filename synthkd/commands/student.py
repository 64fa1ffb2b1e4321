"""CLI commands: `synthkd train | evaluate | predict | export | merge` (the students).

Thin: read files, build a StudentConfig from the recipe, call synthkd.training, print.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from synthkd.errors import SynthkdError

_console = Console()

StudentDirArg = Annotated[
    Path, typer.Argument(help="A student directory written by `synthkd train`.")
]
InputOpt = Annotated[
    Path, typer.Option("--input", "-i", help="Parquet (or JSONL/CSV) file of texts.")
]
TextColumnOpt = Annotated[str, typer.Option("--text-column", help="Column holding the texts.")]
LabelColumnOpt = Annotated[
    str, typer.Option("--label-column", help="Column holding the true labels.")
]


def read_table(path: str | Path, what: str) -> Any:
    """A pyarrow Table from a corpus (Delta table or run folder), Parquet, JSONL or CSV."""
    import pyarrow as pa

    source = Path(path)
    if source.is_dir():
        from synthkd.data import RunStore

        return RunStore.open(source).corpus.read()
    if not source.exists():
        raise SynthkdError(f"{what} does not exist: {source}")
    suffix = source.suffix.lower()
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(source)
        if suffix in (".jsonl", ".json"):
            rows = []
            with source.open(encoding="utf-8") as handle:
                for number, line in enumerate(handle, 1):
                    if line.strip():
                        try:
                            rows.append(json.loads(line))
                        except json.JSONDecodeError as exc:
                            raise SynthkdError(f"{source}:{number}: not JSON ({exc.msg})") from None
            return pa.Table.from_pylist(rows)
        if suffix == ".csv":
            import pyarrow.csv as pcsv

            return pcsv.read_csv(source)
    except (pa.ArrowInvalid, OSError) as exc:
        raise SynthkdError(f"cannot read {what} {source}: {' '.join(str(exc).split())}") from None
    raise SynthkdError(f"{what} must be .parquet, .jsonl or .csv (or a corpus folder): {source}")


def _rename(table: Any, mapping: dict[str, str], source: Path) -> Any:
    """Give the recipe's text/label columns the corpus names (text, label)."""
    for column, name in mapping.items():
        if column == name:
            continue
        if column not in table.column_names:
            raise SynthkdError(f"validation file {source} has no {column!r} column")
        if name in table.column_names:
            table = table.drop_columns([name])
        table = table.rename_columns([name if c == column else c for c in table.column_names])
    return table


def _metrics_table(title: str, rows: list[tuple[str, str]]) -> Table:
    table = Table(title=title, show_header=False)
    for key, value in rows:
        table.add_row(key, value)
    return table


def train(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML (its `student` section).")],
    corpus: Annotated[
        Path, typer.Option("--corpus", "-c", help="Corpus folder (Delta table or run) or a file.")
    ],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Student directory (default: <run>/student).")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Train the recipe's student on a corpus; report validation scores beside the baseline."""
    from synthkd.recipe import load_recipe
    from synthkd.training import StudentConfig, train_student

    loaded = load_recipe(recipe)
    config = StudentConfig(**loaded.student.model_dump())
    train_table = read_table(corpus, "corpus")
    validation = None
    task = loaded.task
    if getattr(task, "validation", None):
        validation = read_table(task.validation, "validation file")
        validation = _rename(
            validation, {task.text_column: "text", task.label_column: "label"}, task.validation
        )
    target = out or loaded.output_dir() / "student"
    result = train_student(config, train_table, validation, target, progress=progress)
    rows = [("student", f"{result.kind} -> {result.path}")]
    rows.append(
        ("examples", f"{result.train_examples} train, {result.validation_examples} validation")
    )
    metrics = result.metrics
    if result.kind == "generative":
        rows += [
            ("val loss", f"{metrics['val_loss']:.4f}"),
            ("val exact match", f"{metrics['val_exact_match']:.3f}"),
            ("val token F1", f"{metrics['val_token_f1']:.3f}"),
        ]
    else:
        rows += [
            ("val accuracy", f"{metrics['val_accuracy']:.3f}"),
            ("val macro-F1", f"{metrics['val_macro_f1']:.3f}"),
        ]
        if result.baseline:
            verdict = "beats it" if result.beats_baseline else "does NOT beat it"
            rows.append(
                (
                    "frozen-encoder baseline",
                    f"acc {result.baseline['accuracy']:.3f}, macro-F1 "
                    f"{result.baseline['macro_f1']:.3f} (student {verdict})",
                )
            )
        if result.report:
            rows.append(
                (
                    "speed",
                    f"{result.report.examples_per_s_batch32:.0f} examples/s at batch 32, "
                    f"{result.report.latency_ms:.1f} ms at batch 1",
                )
            )
    rows.append(("seconds", f"{result.seconds:.1f}"))
    _console.print(_metrics_table("student trained", rows))


def evaluate(
    student_dir: StudentDirArg,
    input: InputOpt,
    text_column: TextColumnOpt = "text",
    label_column: LabelColumnOpt = "label",
    report: Annotated[
        Path | None, typer.Option("--report", help="Write report.json and confusion.png here.")
    ] = None,
    hard_negatives: Annotated[
        int, typer.Option("--hard-negatives", "-k", help="Show the k surest wrong answers.")
    ] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Accuracy, macro-F1, per-class scores, confusions and speed of a student on a file."""
    from synthkd.training import evaluate as score
    from synthkd.training import hard_negatives as mine
    from synthkd.training import load_student

    student = load_student(student_dir)
    table = read_table(input, "input file")
    if student.kind == "generative":
        from synthkd.training import evaluate_generation

        result = evaluate_generation(student, table)
        _print_or_json(result.to_dict(), as_json, "generation", report)
        return
    from synthkd.training import labelled_examples

    data = labelled_examples(
        table, what=str(input), text_column=text_column, label_column=label_column
    )
    plot = None
    if report is not None:
        report.mkdir(parents=True, exist_ok=True)
        plot = report / "confusion.png"
    result = score(student, data.texts, data.labels, plot_path=plot)
    negatives = mine(student, data.texts, data.labels, hard_negatives)
    payload = {**result.to_dict(), "hard_negatives": negatives.to_dict()}
    if as_json:
        _print_or_json(payload, True, "evaluation", report)
        return
    if report is not None:
        (report / "report.json").write_text(json.dumps(payload, indent=2))
    summary = Table(title=f"{student.kind} student on {input.name} ({result.examples} examples)")
    for column in ("label", "precision", "recall", "F1", "support"):
        summary.add_column(column, justify="left" if column == "label" else "right")
    for label, scores in result.per_class.items():
        summary.add_row(
            label,
            f"{scores['precision']:.3f}",
            f"{scores['recall']:.3f}",
            f"{scores['f1']:.3f}",
            str(scores["support"]),
        )
    _console.print(summary)
    _console.print(
        f"accuracy {result.accuracy:.3f}  macro-F1 {result.macro_f1:.3f}  "
        f"{result.examples_per_s_batch32:.0f} examples/s (batch 32)  "
        f"{result.examples_per_s_batch1:.0f} examples/s (batch 1, {result.latency_ms:.2f} ms each)"
    )
    for pair in negatives.confused_pairs[:5]:
        _console.print(f"confused: {pair.true_label} -> {pair.predicted} ({pair.count}x)")
    for example in negatives.examples:
        _console.print(
            f"hard negative ({example.confidence:.2f} {example.predicted}, true "
            f"{example.true_label}): {example.text[:100]!r}"
        )
    if report is not None:
        _console.print(f"report: {report / 'report.json'}  plot: {plot}")


def _print_or_json(payload: dict[str, Any], as_json: bool, title: str, report: Path | None) -> None:
    if report is not None:
        report.mkdir(parents=True, exist_ok=True)
        (report / "report.json").write_text(json.dumps(payload, indent=2))
    if as_json:
        typer.echo(json.dumps(payload))
        return
    rows = [
        (k, f"{v:.4f}" if isinstance(v, float) else str(v))
        for k, v in payload.items()
        if not isinstance(v, (list, dict))
    ]
    _console.print(_metrics_table(title, rows))


def predict(
    student_dir: StudentDirArg,
    input: InputOpt,
    output: Annotated[Path, typer.Option("--output", "-o", help="Parquet file to write.")],
    text_column: TextColumnOpt = "text",
    batch_size: Annotated[int, typer.Option(help="Texts per batch.")] = 32,
) -> None:
    """Add `prediction` and `confidence` columns to a file of texts."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from synthkd.training import load_student, texts_of

    if output.suffix.lower() != ".parquet":
        raise SynthkdError(f"--output must be a .parquet file: {output}")
    student = load_student(student_dir)
    table = read_table(input, "input file")
    texts = texts_of(table, what=str(input), text_column=text_column)
    if student.kind == "generative":
        predictions = student.generate(texts, batch_size=batch_size)
        confidence = pa.nulls(len(texts), pa.float64())
    else:
        probabilities = student.predict_proba(texts, batch_size=batch_size)
        predictions = [student.labels[i] for i in probabilities.argmax(axis=1)]
        confidence = pa.array(probabilities.max(axis=1), pa.float64())
    for name in ("prediction", "confidence"):
        if name in table.column_names:
            table = table.drop_columns([name])
    table = table.append_column("prediction", pa.array(predictions, pa.string()))
    table = table.append_column("confidence", confidence)
    output.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=f".{output.name}.", dir=output.parent)
    os.close(handle)
    try:
        pq.write_table(table, staging)
        os.replace(staging, output)
    finally:
        if os.path.exists(staging):
            os.unlink(staging)
    counts: dict[str, int] = {}
    for label in predictions:
        counts[label] = counts.get(label, 0) + 1
    shown = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])[:8])
    _console.print(
        f"wrote {len(texts)} predictions to {output}"
        + (f" ({shown})" if student.kind != "generative" else "")
    )


def export(
    student_dir: StudentDirArg,
    format: Annotated[
        str, typer.Option("--format", "-f", help="onnx or int8 (ONNX, int8 weights).")
    ],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Default: STUDENT_DIR/<format>.")
    ] = None,
) -> None:
    """Write an ONNX or int8-quantized ONNX copy of a MiniLM student for serving."""
    from synthkd.training import export_student

    target = export_student(student_dir, format, out)
    size = (target / "model.onnx").stat().st_size / 2**20
    _console.print(f"exported {format} student to {target} (model.onnx, {size:.1f} MiB)")


def merge(
    student_dir: StudentDirArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the merged model.")],
) -> None:
    """Merge the LoRA adapter into its base: a standalone transformers model directory."""
    from synthkd.training import merge_student

    target = merge_student(student_dir, out)
    _console.print(f"merged student written to {target} (loads with transformers alone)")


def register(app: typer.Typer) -> None:
    """Add this group's commands to the root app."""
    app.command("train")(train)
    app.command("evaluate")(evaluate)
    app.command("predict")(predict)
    app.command("export")(export)
    app.command("merge")(merge)
