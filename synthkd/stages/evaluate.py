"""A trained student on a file of examples, and its serving copies (`synthkd evaluate`,
`export`, `merge`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Evaluation:
    """What `evaluate_student` found: a classifier's report and hard negatives, or a
    generative student's generation report."""

    kind: str
    report: Any
    negatives: Any = None

    def to_dict(self) -> dict[str, Any]:
        payload = self.report.to_dict()
        if self.negatives is not None:
            payload["hard_negatives"] = self.negatives.to_dict()
        return payload


def evaluate_student(
    student_dir: str | Path,
    table: Any,
    *,
    what: str = "input",
    text_column: str = "text",
    label_column: str = "label",
    plot_path: str | Path | None = None,
    hard_negatives: int = 5,
) -> Evaluation:
    """Accuracy, macro-F1, per-class scores, confusions, speed and the k surest mistakes."""
    from synthkd.training import evaluate, evaluate_generation, labelled_examples, load_student
    from synthkd.training import hard_negatives as mine

    student = load_student(student_dir)
    if student.kind == "generative":
        return Evaluation("generative", evaluate_generation(student, table))
    data = labelled_examples(table, what=what, text_column=text_column, label_column=label_column)
    report = evaluate(student, data.texts, data.labels, plot_path=plot_path)
    negatives = mine(student, data.texts, data.labels, hard_negatives)
    return Evaluation(student.kind, report, negatives)


def export_copy(student_dir: str | Path, fmt: str, out: str | Path | None = None) -> Path:
    """An ONNX or int8 ONNX copy of a MiniLM student for serving."""
    from synthkd.training import export_student

    return export_student(student_dir, fmt, out)


def merge_copy(student_dir: str | Path, out: str | Path) -> Path:
    """The LoRA adapter merged into its base: a standalone transformers model folder."""
    from synthkd.training import merge_student

    return merge_student(student_dir, out)


def serving_student(student_dir: str | Path, fmt: str = "auto") -> Any:
    """The fastest copy of a student for `synthkd predict` (no torch on the ONNX path)."""
    from synthkd.training import load_serving_student

    return load_serving_student(student_dir, fmt)


def texts_in(table: Any, what: str, text_column: str = "text") -> list[str]:
    """The texts of an input table's column, checked (one line naming the fault)."""
    from synthkd.training import texts_of

    return texts_of(table, what=what, text_column=text_column)
