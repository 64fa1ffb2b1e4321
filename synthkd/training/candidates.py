"""Fitting one student candidate of the selection (selection.py) on a training set."""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthkd.errors import SynthkdError
from synthkd.training._examples import LabelledExamples
from synthkd.training.contrastive import contrastive_student
from synthkd.training.frozen import Embed, frozen_student, linear_student

if TYPE_CHECKING:
    from synthkd.training.cross_validation import SelectionConfig


def fit_candidate(
    kind: str,
    train: LabelledExamples,
    labels: list[str],
    *,
    embed: Embed | None,
    config: SelectionConfig,
    out_dir: str | Path | None = None,
    real_count: int | None = None,
) -> Any:
    """A fitted student of `kind` with `labels` and `predict_proba(texts)`.

    `real_count`: how many of `train`'s last examples are the real ones (contrastive: they
    always tune the encoder)."""
    if kind == "frozen":
        if embed is None:
            raise SynthkdError("the frozen-head candidate needs an embed function")
        return frozen_student(train, labels, embed, C=config.C)
    if kind == "linear":
        return linear_student(train, labels, C=config.C)
    if kind == "contrastive":
        tuning = replace(config.contrastive, seed=config.seed)
        return contrastive_student(train, labels, config=tuning, real_count=real_count)
    if kind == "lora":
        return _lora(train, config, out_dir)
    raise SynthkdError(f"unknown student candidate {kind!r}")


def _lora(train: LabelledExamples, config: SelectionConfig, out_dir: str | Path | None) -> Any:
    from synthkd.training.config import StudentConfig
    from synthkd.training.students import load_student, train_student

    rows = [
        {"text": t, "label": y, "soft_labels": s}
        for t, y, s in zip(train.texts, train.labels, train.soft_labels, strict=True)
    ]
    student_config = StudentConfig(kind="minilm", epochs=config.lora_epochs, seed=config.seed)
    if out_dir is not None:
        train_student(student_config, rows, None, out_dir, progress=False)
        return load_student(out_dir)
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "student"
        train_student(student_config, rows, None, target, progress=False)
        student = load_student(target)
        student.predict_proba(train.texts[:1])  # loaded before the directory goes
        return student


__all__ = ["fit_candidate"]
