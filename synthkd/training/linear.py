"""The cheapest student: TF-IDF features and logistic regression, stored without pickle.

Weights live in `linear.npz` (loaded with allow_pickle=False) and the vocabulary and
settings in `linear.json`, so loading a student can never execute code.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score

from synthkd.errors import SynthkdError
from synthkd.training._examples import LabelledExamples, weighted_rows

WEIGHTS = "linear.npz"
VOCABULARY = "linear.json"
_VECTORIZER = {
    "lowercase": True,
    "ngram_range": [1, 2],
    "sublinear_tf": True,
    "min_df": 1,
    "max_features": 200_000,
    "strip_accents": "unicode",
}
_C_GRID = (1.0, 4.0, 16.0)


def _vectorizer(settings: dict[str, Any]) -> TfidfVectorizer:
    options = dict(settings)
    options["ngram_range"] = tuple(options["ngram_range"])
    return TfidfVectorizer(**options, dtype=np.float32)


def _softmax(scores: np.ndarray) -> np.ndarray:
    scores = scores - scores.max(axis=1, keepdims=True)
    np.exp(scores, out=scores)
    return scores / scores.sum(axis=1, keepdims=True)


class LinearStudent:
    """TF-IDF + multinomial logistic regression; predicts tens of thousands of texts/s."""

    kind = "linear"

    def __init__(
        self,
        labels: list[str],
        vectorizer: TfidfVectorizer,
        coef: np.ndarray,
        intercept: np.ndarray,
        path: Path | None = None,
    ) -> None:
        self.labels = list(labels)
        self.vectorizer = vectorizer
        self.coef_t = np.ascontiguousarray(coef.T, dtype=np.float32)
        self.intercept = intercept.astype(np.float32)
        self.path = path

    def predict_proba(self, texts: list[str], batch_size: int = 256) -> np.ndarray:
        """Label probabilities, one row per text, columns in `self.labels` order."""
        features = self.vectorizer.transform(texts)
        scores = np.asarray(features @ self.coef_t, dtype=np.float64) + self.intercept
        return _softmax(scores)

    def save(self, root: Path) -> None:
        np.savez(
            root / WEIGHTS,
            idf=self.vectorizer.idf_.astype(np.float32),
            coef=self.coef_t.T,
            intercept=self.intercept,
        )
        vocabulary = sorted(self.vectorizer.vocabulary_, key=self.vectorizer.vocabulary_.get)
        settings = {k: self.vectorizer.get_params()[k] for k in _VECTORIZER}
        settings["ngram_range"] = list(settings["ngram_range"])
        payload = {"labels": self.labels, "vectorizer": settings, "vocabulary": vocabulary}
        (root / VOCABULARY).write_text(json.dumps(payload, ensure_ascii=False))

    @classmethod
    def load(cls, root: Path, manifest: dict[str, Any]) -> LinearStudent:
        try:
            payload = json.loads((root / VOCABULARY).read_text())
            with np.load(root / WEIGHTS, allow_pickle=False) as arrays:
                idf, coef, intercept = arrays["idf"], arrays["coef"], arrays["intercept"]
        except (OSError, KeyError, ValueError) as exc:
            raise SynthkdError(f"{root} is not a complete linear student: {exc}") from exc
        vectorizer = _vectorizer(payload["vectorizer"])
        vectorizer.vocabulary_ = {term: i for i, term in enumerate(payload["vocabulary"])}
        vectorizer.idf_ = idf
        return cls(payload["labels"], vectorizer, coef, intercept, path=root)


def train_linear(
    train: LabelledExamples,
    validation: LabelledExamples,
    labels: list[str],
    *,
    use_soft_labels: bool = True,
    seed: int = 0,
) -> tuple[LinearStudent, dict[str, Any]]:
    """Fit on `train`, pick the regularisation strength by validation macro-F1."""
    start = time.perf_counter()
    vectorizer = _vectorizer(_VECTORIZER)
    train_x = vectorizer.fit_transform(train.texts)
    val_x = vectorizer.transform(validation.texts)
    rows, classes, weights = weighted_rows(train.targets(labels, use_soft_labels))
    truth = np.asarray([labels.index(label) for label in validation.labels])
    best: tuple[float, float, Any] | None = None
    for c in _C_GRID:
        model = LogisticRegression(C=c, max_iter=2000, random_state=seed)
        model.fit(train_x[rows], np.asarray(classes), sample_weight=np.asarray(weights))
        predicted = model.classes_[model.predict_proba(val_x).argmax(axis=1)]
        score = f1_score(truth, predicted, average="macro", zero_division=0)
        if best is None or score > best[0]:
            best = (score, c, model)
    assert best is not None
    _, c, model = best
    # Labels that appear only with zero weight get no column from sklearn; give them one.
    coef = np.full((len(labels), train_x.shape[1]), 0.0, dtype=np.float32)
    intercept = np.full(len(labels), -1e4, dtype=np.float32)
    if len(model.classes_) == 2 and model.coef_.shape[0] == 1:
        coef[model.classes_[1]] = model.coef_[0]
        intercept[model.classes_[0]] = 0.0
        intercept[model.classes_[1]] = model.intercept_[0]
    else:
        coef[model.classes_] = model.coef_
        intercept[model.classes_] = model.intercept_
    student = LinearStudent(labels, vectorizer, coef, intercept)
    return student, {
        "C": c,
        "features": int(train_x.shape[1]),
        "seconds": time.perf_counter() - start,
    }
