"""What training a student produced: one type every student kind returns.

Its own module so that students.py (the front door) and each kind's trainer
(generative.py, ...) can both use it without importing each other.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from synthkd.training.evaluation import EvaluationReport


@dataclass
class TrainResult:
    """What training produced and how it scored on validation."""

    path: Path
    kind: str
    labels: list[str]
    metrics: dict[str, Any]
    """val_accuracy, val_macro_f1 and the kind's training facts (epochs run, loss...)."""
    baseline: dict[str, Any] | None = None
    """Frozen-encoder baseline on the same data (MiniLM students only)."""
    report: EvaluationReport | None = None
    seconds: float = 0.0
    train_examples: int = 0
    validation_examples: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    validation: tuple[list[str], list[str], Any] | None = field(default=None, repr=False)
    """(texts, labels, probabilities) the saved student gave on validation: a caller that
    needs its predictions (hard negatives) reuses them instead of loading it again."""

    @property
    def beats_baseline(self) -> bool | None:
        if not self.baseline:
            return None
        return self.metrics["val_macro_f1"] > self.baseline["macro_f1"]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("validation", None)
        data["path"] = str(self.path)
        data["beats_baseline"] = self.beats_baseline
        return data
