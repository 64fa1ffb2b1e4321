"""Every choice the loop makes, decided by k-fold cross-validation over the REAL examples.

The user's seeds and validation examples are the only labels we trust. They are split
into stratified folds; each fold is scored by a student trained on the other folds plus
(when the candidate uses it) the whole synthetic corpus. The corpus is never scored.

- `select_student`: frozen MiniLM + logistic head, linear TF-IDF and LoRA MiniLM, each on
  the real examples only and on corpus + real; ranked by CV score. The real-only students
  are always candidates, so the winner is never worse than them by CV. LoRA costs minutes
  per fold on a CPU: `lora_folds=0` (the default) skips it, n > 0 scores it on n folds.
- `fit_best`: refit the winner on everything.
- `accept_round`, `choose_cut` (choices.py): a guided round's records join only if the CV
  score does not drop; the critic's threshold (or no cut) maximises the CV score.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, log_loss
from sklearn.model_selection import StratifiedKFold

from synthkd.errors import SynthkdError
from synthkd.training._examples import LabelledExamples, labelled_examples
from synthkd.training.frozen import Embed, frozen_student, linear_student

KINDS = ("frozen", "linear", "lora")
METRICS = ("log_loss", "macro_f1", "accuracy")
Corpus = Any
"""A corpus: any table of records, LabelledExamples, None, or a function from the training
fold's real examples to the corpus (labels decided from that fold only: no leak)."""


@dataclass
class SelectionConfig:
    """How candidates are compared."""

    folds: int = 5
    """Stratified folds over the real examples (fewer when a label has fewer examples)."""
    candidates: tuple[str, ...] = KINDS
    """Student kinds to compare: "frozen", "linear", "lora"."""
    lora_folds: int = 0
    """Folds LoRA is scored on; 0 skips it (minutes per fold on a CPU)."""
    metric: str = "log_loss"
    """What ranks candidates: "log_loss" (a proper scoring rule: on tens of real examples it
    is steadier than the others), "macro_f1" or "accuracy"."""
    C: float = 10.0
    """Inverse regularisation of the logistic heads (frozen and linear)."""
    seed: int = 0
    """Seed of the fold split (and of LoRA training)."""
    repeats: int = 3
    """Times the k-fold split is redrawn (frozen and linear; LoRA runs once): with tens of
    real examples one split is a noisy judge, the mean of a few is steadier."""
    lora_epochs: int = 4
    """Epochs of each LoRA fit."""

    def __post_init__(self) -> None:
        unknown = sorted(set(self.candidates) - set(KINDS))
        if unknown:
            raise SynthkdError(f"unknown student candidates: {', '.join(unknown)}")
        if self.metric not in METRICS:
            raise SynthkdError(f"selection metric must be one of {', '.join(METRICS)}")
        if self.folds < 2 or self.repeats < 1:
            raise SynthkdError("selection needs at least 2 folds and 1 repeat")


@dataclass
class CandidateScore:
    """One candidate's cross-validated figures on the real examples."""

    kind: str
    data: str
    """"real" (the real examples only) or "corpus+real"."""
    accuracy: float | None = None
    macro_f1: float | None = None
    log_loss: float | None = None
    folds: int = 0
    fold_scores: list[float] = field(default_factory=list)
    seconds: float = 0.0
    skipped: str | None = None
    """Why it was not scored (e.g. LoRA with lora_folds=0)."""

    @property
    def name(self) -> str:
        return f"{self.kind}/{self.data}"

    def score(self, metric: str) -> float:
        """Higher is better (log loss is negated); unscored candidates rank last."""
        value = getattr(self, metric)
        if value is None:
            return -float("inf")
        return -float(value) if metric == "log_loss" else float(value)


@dataclass
class Selection:
    """The candidates, best first by `metric` (skipped ones last)."""

    ranking: list[CandidateScore]
    metric: str

    @property
    def best(self) -> CandidateScore:
        return self.ranking[0]

    @property
    def real_only(self) -> CandidateScore:
        """The best candidate trained on the real examples only."""
        return next(c for c in self.ranking if c.data == "real")

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "best": self.best.name,
            "real_only_best": self.real_only.name,
            "ranking": [{**asdict(c), "name": c.name} for c in self.ranking],
        }


def examples(data: Any, what: str) -> LabelledExamples | None:
    """Any table of records (or LabelledExamples, or None) as LabelledExamples."""
    if data is None or isinstance(data, LabelledExamples):
        return data
    return labelled_examples(data, what=what)


def _join(*parts: LabelledExamples | None) -> LabelledExamples:
    out = LabelledExamples([], [], [])
    for part in parts:
        if part is not None:
            out.texts += part.texts
            out.labels += part.labels
            out.soft_labels += part.soft_labels
    return out


def _take(data: LabelledExamples, idx: Sequence[int]) -> LabelledExamples:
    return LabelledExamples(
        [data.texts[i] for i in idx],
        [data.labels[i] for i in idx],
        [data.soft_labels[i] for i in idx],
    )


def fit_candidate(
    kind: str,
    train: LabelledExamples,
    labels: list[str],
    *,
    embed: Embed | None,
    config: SelectionConfig,
    out_dir: str | Path | None = None,
) -> Any:
    """A fitted student of `kind` with `labels` and `predict_proba(texts)`."""
    if kind == "frozen":
        if embed is None:
            raise SynthkdError("the frozen-head candidate needs an embed function")
        return frozen_student(train, labels, embed, C=config.C)
    if kind == "linear":
        return linear_student(train, labels, C=config.C)
    if kind == "lora":
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
    raise SynthkdError(f"unknown student candidate {kind!r}")


def cross_validate(
    kind: str,
    real: LabelledExamples,
    corpus: Corpus,
    labels: list[str],
    *,
    embed: Embed | None = None,
    config: SelectionConfig | None = None,
    max_folds: int | None = None,
) -> CandidateScore:
    """CV over the real examples (`repeats` times, the mean); the corpus (if any) is in
    every training fold and never scored."""
    config = config or SelectionConfig()
    start = time.perf_counter()
    counts = {label: real.labels.count(label) for label in set(real.labels)}
    n_splits = min(config.folds, min(counts.values()))
    if n_splits < 2:
        raise SynthkdError("cross-validation needs at least 2 real examples of every label")
    repeats = 1 if kind == "lora" else config.repeats
    accuracies, f1s, losses, fold_scores = [], [], [], []
    scored = 0
    for repeat in range(repeats):
        splitter = StratifiedKFold(
            n_splits=n_splits, shuffle=True, random_state=config.seed + repeat
        )
        truth: list[str] = []
        predicted: list[str] = []
        for fold, (train_idx, test_idx) in enumerate(splitter.split(real.texts, real.labels)):
            if max_folds is not None and fold >= max_folds:
                break
            fold_real = _take(real, train_idx)
            fold_corpus = corpus(fold_real) if callable(corpus) else corpus
            train = _join(fold_corpus, fold_real)
            test = _take(real, test_idx)
            student = fit_candidate(kind, train, labels, embed=embed, config=config)
            proba = np.clip(student.predict_proba(test.texts), 1e-6, 1.0)
            proba = proba / proba.sum(axis=1, keepdims=True)
            guess = [labels[j] for j in proba.argmax(axis=1)]
            losses.append(float(log_loss(test.labels, proba, labels=labels)) * len(test))
            scored += len(test)
            truth += test.labels
            predicted += guess
            fold_scores.append(
                losses[-1] / len(test)
                if config.metric == "log_loss"
                else float(f1_score(test.labels, guess, average="macro", zero_division=0))
                if config.metric == "macro_f1"
                else float(accuracy_score(test.labels, guess))
            )
        accuracies.append(float(accuracy_score(truth, predicted)))
        f1s.append(float(f1_score(truth, predicted, average="macro", zero_division=0)))
    return CandidateScore(
        kind=kind,
        data="real" if corpus is None else "corpus+real",
        accuracy=float(np.mean(accuracies)),
        macro_f1=float(np.mean(f1s)),
        log_loss=float(np.sum(losses) / scored),
        folds=len(fold_scores),
        fold_scores=[round(s, 4) for s in fold_scores],
        seconds=round(time.perf_counter() - start, 2),
    )


def _label_set(real: LabelledExamples, corpus: LabelledExamples | None, labels) -> list[str]:
    names = (
        list(labels) if labels else sorted(set(real.labels) | set(corpus.labels if corpus else []))
    )
    unknown = sorted(set(real.labels) - set(names))
    if unknown:
        raise SynthkdError(f"the real examples have labels outside the label set: {unknown}")
    return names


def _memoised(make: Any) -> Any:
    """The corpus function, called once per distinct training fold (candidates share folds)."""
    cache: dict[tuple, LabelledExamples | None] = {}

    def corpus_for(fold_real: LabelledExamples) -> LabelledExamples | None:
        key = (tuple(fold_real.texts), tuple(fold_real.labels))
        if key not in cache:
            cache[key] = examples(make(fold_real), "the corpus")
        return cache[key]

    return corpus_for


def select_student(
    real: Any,
    corpus: Any | None = None,
    labels: Sequence[str] | None = None,
    *,
    embed: Embed | None = None,
    config: SelectionConfig | None = None,
) -> Selection:
    """Rank every candidate kind x {real only, corpus + real} by CV over the real examples.

    `real`: the user's seeds + validation examples (any table of records). `corpus`: the
    accepted generated records (with soft_labels), or better a function from a training
    fold's real examples to the corpus labelled with them only (e.g. `label_evidence`
    run on that fold): labels decided with all real examples leak the held-out fold into
    the corpus and flatter corpus+real. `embed`: texts -> MiniLM embeddings (share the
    critic's `EmbeddingCache`). Ties go to the real-only student, then the cheaper kind.
    """
    config = config or SelectionConfig()
    real_ex = examples(real, "the real examples")
    corpus_ex = _memoised(corpus) if callable(corpus) else examples(corpus, "the corpus")
    names = _label_set(real_ex, None if callable(corpus_ex) else corpus_ex, labels)
    scores = []
    for kind in config.candidates:
        for data in [None, corpus_ex] if corpus_ex is not None else [None]:
            if kind == "lora" and config.lora_folds <= 0:
                scores.append(
                    CandidateScore(
                        kind,
                        "real" if data is None else "corpus+real",
                        skipped="lora_folds=0: LoRA costs minutes per fold on CPU",
                    )
                )
                continue
            max_folds = config.lora_folds if kind == "lora" else None
            scores.append(
                cross_validate(
                    kind, real_ex, data, names, embed=embed, config=config, max_folds=max_folds
                )
            )
    order = {kind: i for i, kind in enumerate(KINDS)}
    scores.sort(key=lambda c: (-c.score(config.metric), c.data != "real", order[c.kind]))
    return Selection(ranking=scores, metric=config.metric)


def fit_best(
    selection: Selection,
    real: Any,
    corpus: Any | None = None,
    labels: Sequence[str] | None = None,
    *,
    embed: Embed | None = None,
    config: SelectionConfig | None = None,
    out_dir: str | Path | None = None,
) -> Any:
    """Refit the winner on all its data (real, plus the corpus if it won with it).

    Returns the student (labels + predict_proba); with `out_dir` it is also saved there
    (frozen and linear: student.json + weights; LoRA: a full student directory).
    """
    config = config or SelectionConfig()
    best = selection.best
    real_ex = examples(real, "the real examples")
    corpus_ex = None
    if best.data == "corpus+real":
        corpus_ex = examples(corpus(real_ex) if callable(corpus) else corpus, "the corpus")
    names = _label_set(real_ex, corpus_ex, labels)
    train = _join(corpus_ex, real_ex)
    student = fit_candidate(best.kind, train, names, embed=embed, config=config, out_dir=out_dir)
    if out_dir is not None and best.kind != "lora":
        student.save(Path(out_dir))
        if best.kind == "linear":
            import json

            manifest = {"kind": "linear", "labels": names, "selected_by": selection.to_dict()}
            (Path(out_dir) / "student.json").write_text(json.dumps(manifest, indent=2))
    return student


__all__ = [
    "CandidateScore",
    "KINDS",
    "Selection",
    "SelectionConfig",
    "cross_validate",
    "examples",
    "fit_candidate",
    "fit_best",
    "select_student",
]
