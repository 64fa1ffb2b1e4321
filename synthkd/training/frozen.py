"""Frozen MiniLM + logistic head, and the linear student, fitted from arrays for selection.

With tens of real examples per label a LoRA fine-tune has little to learn from; a
logistic head on frozen sentence embeddings often does as well and trains in a second.
`FrozenHeadStudent` is that head as a student: weights in `frozen.npz` (no pickle),
labels in `student.json` (kind "frozen").
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from synthkd.errors import SynthkdError
from synthkd.training._examples import LabelledExamples, weighted_rows

WEIGHTS = "frozen.npz"
Embed = Callable[[Sequence[str]], np.ndarray]


def _softmax(scores: np.ndarray) -> np.ndarray:
    scores = scores - scores.max(axis=1, keepdims=True)
    np.exp(scores, out=scores)
    return scores / scores.sum(axis=1, keepdims=True)


def full_weights(model: LogisticRegression, k: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(coef (k, dim), intercept (k,)) with a column per label, even unseen ones."""
    coef = np.zeros((k, dim), dtype=np.float32)
    intercept = np.full(k, -1e4, dtype=np.float32)
    if len(model.classes_) == 2 and model.coef_.shape[0] == 1:
        coef[model.classes_[1]] = model.coef_[0]
        intercept[model.classes_[0]] = 0.0
        intercept[model.classes_[1]] = model.intercept_[0]
    else:
        coef[model.classes_] = model.coef_
        intercept[model.classes_] = model.intercept_
    return coef, intercept


def fit_head(
    features: Any, train: LabelledExamples, labels: list[str], *, C: float = 10.0
) -> LogisticRegression:
    """Logistic regression on `features` rows, soft labels as weighted (row, label) pairs."""
    rows, classes, weights = weighted_rows(train.targets(labels, use_soft_labels=True))
    model = LogisticRegression(C=C, max_iter=2000)
    with threadpool_limits(limits=1, user_api="blas"):  # small fits: threads only contend
        model.fit(features[rows], np.asarray(classes), sample_weight=np.asarray(weights))
    return model


class FrozenHeadStudent:
    """Logistic regression on frozen, mean-pooled MiniLM embeddings."""

    kind = "frozen"

    def __init__(
        self,
        labels: list[str],
        coef: np.ndarray,
        intercept: np.ndarray,
        embed: Embed | None = None,
        base_model: str | None = None,
    ) -> None:
        self.labels = list(labels)
        self.coef_t = np.ascontiguousarray(np.asarray(coef, dtype=np.float32).T)
        self.intercept = np.asarray(intercept, dtype=np.float32)
        self.base_model = base_model
        self._embed = embed
        self.encoder: Any | None = None
        """A contrastively tuned encoder (contrastive.py), saved beside the head."""
        self.trained: dict[str, Any] | None = None
        """How the encoder was tuned (None: the stock MiniLM, frozen)."""

    def _features(self, texts: list[str]) -> np.ndarray:
        if self._embed is None:
            from synthkd.training.baseline import mean_pooled_embeddings
            from synthkd.training.classifier import resolve_base_model

            base = resolve_base_model(self.base_model)
            self._embed = lambda batch: mean_pooled_embeddings(base, list(batch))
        return np.asarray(self._embed(texts), dtype=np.float32)

    def predict_proba(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """Label probabilities, one row per text, columns in `self.labels` order."""
        if not texts:
            return np.zeros((0, len(self.labels)))
        scores = self._features(list(texts)) @ self.coef_t + self.intercept
        return _softmax(scores.astype(np.float64))

    def save(self, root: str | Path) -> Path:
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        np.savez(root / WEIGHTS, coef=self.coef_t.T, intercept=self.intercept)
        manifest = {"kind": self.kind, "labels": self.labels, "base_model": self.base_model}
        if self.encoder is not None:
            from synthkd.training.contrastive import ENCODER_DIR

            self.encoder.save(root / ENCODER_DIR)
            manifest.update(encoder=ENCODER_DIR, max_length=self.encoder.max_length)
            manifest["trained"] = self.trained
        (root / "student.json").write_text(json.dumps(manifest, indent=2))
        return root

    @classmethod
    def load(cls, root: str | Path, manifest: dict[str, Any] | None = None) -> FrozenHeadStudent:
        root = Path(root)
        try:
            manifest = manifest or json.loads((root / "student.json").read_text())
            with np.load(root / WEIGHTS, allow_pickle=False) as arrays:
                coef, intercept = arrays["coef"], arrays["intercept"]
        except (OSError, KeyError, ValueError) as exc:
            raise SynthkdError(f"{root} is not a complete frozen-head student: {exc}") from exc
        student = cls(manifest["labels"], coef, intercept, base_model=manifest.get("base_model"))
        if manifest.get("encoder"):  # a tuned encoder, always in the fixed folder beside it
            from synthkd.training.contrastive import ENCODER_DIR, TunedEncoder

            if not (root / ENCODER_DIR).is_dir():
                raise SynthkdError(f"{root} is not a complete student: {ENCODER_DIR}/ is missing")
            student.encoder = TunedEncoder.load(root / ENCODER_DIR, manifest.get("max_length", 96))
            student._embed = student.encoder
            student.trained = manifest.get("trained")
        return student


def frozen_student(
    train: LabelledExamples, labels: list[str], embed: Embed, *, C: float = 10.0
) -> FrozenHeadStudent:
    """Fit the frozen-head student on `train` (embeddings from `embed`)."""
    features = np.asarray(embed(train.texts), dtype=np.float32)
    model = fit_head(features, train, labels, C=C)
    coef, intercept = full_weights(model, len(labels), features.shape[1])
    return FrozenHeadStudent(labels, coef, intercept, embed=embed)


def linear_student(train: LabelledExamples, labels: list[str], *, C: float = 10.0) -> Any:
    """Fit the TF-IDF student on `train` with a fixed C (no validation set to tune on)."""
    from synthkd.training.linear import _VECTORIZER, LinearStudent, _vectorizer

    vectorizer = _vectorizer(_VECTORIZER)
    features = vectorizer.fit_transform(train.texts)
    model = fit_head(features, train, labels, C=C)
    coef, intercept = full_weights(model, len(labels), features.shape[1])
    return LinearStudent(labels, vectorizer, coef, intercept)


__all__ = ["FrozenHeadStudent", "frozen_student", "linear_student"]
