"""CLI commands: `synthkd train | evaluate | predict | export | merge` (the students).

Thin: read files, call `synthkd.stages` (the same student stages as `synthkd run`), print.
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
    """A pyarrow Table from a corpus (Delta table or run folder) or a file of rows
    (Parquet, JSONL, JSON, CSV, TSV: `synthkd.data`'s one reader)."""
    source = Path(path)
    if source.is_dir():
        from synthkd.data import RunStore

        return RunStore.open(source).corpus.read()
    from synthkd.data import read_table as read_file

    return read_file(source, what)


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
    """Train the recipe's student on a corpus; report validation scores beside the baseline.

    The student learns from the corpus (the critic's cut applied) plus the recipe's real
    examples, and is judged on the recipe's validation file or, without one, on a
    stratified split: the same data and split as `synthkd run` (through `synthkd.stages`).
    """
    from synthkd import stages

    ctx = stages.open_context(recipe)
    train_table = read_table(corpus, "corpus")
    target = out or ctx.run_dir / "student"
    result, _ = stages.fit_student(ctx, train_table, target, progress=progress)
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
    from synthkd import stages

    table = read_table(input, "input file")
    plot = None
    if report is not None:
        report.mkdir(parents=True, exist_ok=True)
        plot = report / "confusion.png"
    found = stages.evaluate_student(
        student_dir,
        table,
        what=str(input),
        text_column=text_column,
        label_column=label_column,
        plot_path=plot,
        hard_negatives=hard_negatives,
    )
    if found.kind == "generative":
        _print_or_json(found.to_dict(), as_json, "generation", report)
        return
    result, negatives, payload = found.report, found.negatives, found.to_dict()
    if as_json:
        _print_or_json(payload, True, "evaluation", report)
        return
    if report is not None:
        (report / "report.json").write_text(json.dumps(payload, indent=2))
    summary = Table(title=f"{found.kind} student on {input.name} ({result.examples} examples)")
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
    batch_size: Annotated[
        int | None,
        typer.Option(min=1, help="Texts per batch (default: the student form's own, 64 for ONNX)."),
    ] = None,
    format: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            help="auto (the int8 copy when the folder has one), torch, onnx, int8 or static.",
        ),
    ] = "auto",
) -> None:
    """Add `prediction` and `confidence` columns to a file of texts (fastest copy by default)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from synthkd.stages import serving_student, texts_in

    if output.suffix.lower() != ".parquet":
        raise SynthkdError(f"--output must be a .parquet file: {output}")
    student = serving_student(student_dir, format)
    table = read_table(input, "input file")
    texts = texts_in(table, str(input), text_column)
    if student.kind == "generative":
        predictions = student.generate(texts, batch_size=batch_size or 32)
        confidence = pa.nulls(len(texts), pa.float64())
    else:
        options = {} if batch_size is None else {"batch_size": batch_size}
        probabilities = student.predict_proba(texts, **options)
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
        f"wrote {len(texts)} predictions to {output} ({getattr(student, 'format', student.kind)}"
        + (f"; {shown})" if student.kind != "generative" else ")")
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
    from synthkd import stages

    target = stages.export_copy(student_dir, format, out)
    size = (target / "model.onnx").stat().st_size / 2**20
    _console.print(f"exported {format} student to {target} (model.onnx, {size:.1f} MiB)")


def merge(
    student_dir: StudentDirArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the merged model.")],
) -> None:
    """Merge the LoRA adapter into its base: a standalone transformers model directory."""
    from synthkd import stages

    target = stages.merge_copy(student_dir, out)
    _console.print(f"merged student written to {target} (loads with transformers alone)")


def register(app: typer.Typer) -> None:
    """Add this group's commands to the root app."""
    app.command("train")(train)
    app.command("evaluate")(evaluate)
    app.command("predict")(predict)
    app.command("export")(export)
    app.command("merge")(merge)
