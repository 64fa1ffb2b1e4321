"""Cross-validation over the user's real examples: what every choice of the loop is scored by.

`SelectionConfig` says how; `cross_validate` scores one student kind, trained on each
fold's real examples (plus the corpus, when given), on the held-out fold. Ranking the
kinds and refitting the winner live in selection.py.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, log_loss
from sklearn.model_selection import StratifiedKFold

from synthkd.errors import SynthkdError
from synthkd.training._examples import LabelledExamples
from synthkd.training.candidates import fit_candidate
from synthkd.training.contrastive import ContrastiveConfig
from synthkd.training.frozen import Embed
from synthkd.training.self_training import self_train

KINDS = ("frozen", "linear", "contrastive", "lora")
ONCE = ("contrastive", "lora")
"""Kinds scored on one k-fold split (not `repeats`): each fit tunes an encoder."""
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
    """Student kinds to compare: "frozen", "linear", "contrastive", "lora"."""
    lora_folds: int = 0
    """Folds LoRA is scored on; 0 skips it (minutes per fold on a CPU)."""
    metric: str = "log_loss"
    """What `accept_round` and `choose_cut` compare: "log_loss" (a proper scoring rule: on
    tens of real examples it is steadier than the others), "macro_f1" or "accuracy"."""
    choose_by: str = "macro_f1"
    """What ranks the student kinds in `select_student`. Not log loss: heads of different
    kinds are calibrated differently (the contrastive head is softer), and log loss then
    ranks calibration over what the user sees (on tweets and SMS the contrastive student
    was +4.5 points CV accuracy yet worse by log loss)."""
    C: float = 10.0
    """Inverse regularisation of the logistic heads (frozen and linear)."""
    seed: int = 0
    """Seed of the fold split (and of LoRA training)."""
    repeats: int = 3
    """Times the k-fold split is redrawn (frozen and linear; LoRA runs once): with tens of
    real examples one split is a noisy judge, the mean of a few is steadier."""
    lora_epochs: int = 4
    """Epochs of each LoRA fit."""
    contrastive: ContrastiveConfig = field(default_factory=ContrastiveConfig)
    """How the contrastive candidate tunes its encoder (its seed is `seed`)."""
    contrastive_folds: int = 5
    """Folds of the first split the contrastive candidate is scored on (each tunes an
    encoder: seconds to a minute on CPU); 0 skips it."""
    contrastive_corpus: bool = False
    """Also score contrastive on corpus + real (k more tunings). Off: generated texts of a
    small teacher rarely help, and the real-only tuning already costs the most."""
    pool_confidence: float = 0.7
    """With unlabelled texts (the recipe's `unlabelled:` pool), each real-only candidate is
    also scored self-trained ("real+pool", self_training.py): the pool texts its student
    labels with at least this probability join its head's training set."""
    tune_below: float = 1.0
    """Score the encoder-tuning kinds (contrastive, LoRA: minutes each on a CPU) only while
    no frozen or linear candidate reaches this CV accuracy; 1.0 always scores them. Where
    frozen MiniLM already separates the labels, tens of real examples cannot tell a tuned
    encoder's last points from noise, and the tuning costs the most of the selection."""

    def __post_init__(self) -> None:
        unknown = sorted(set(self.candidates) - set(KINDS))
        if unknown:
            raise SynthkdError(f"unknown student candidates: {', '.join(unknown)}")
        if self.metric not in METRICS or self.choose_by not in METRICS:
            raise SynthkdError(f"selection metric must be one of {', '.join(METRICS)}")
        if self.folds < 2 or self.repeats < 1:
            raise SynthkdError("selection needs at least 2 folds and 1 repeat")
        if not 0.0 <= self.pool_confidence <= 1.0:
            raise SynthkdError("selection pool_confidence must be in [0, 1]")
        if not 0.0 < self.tune_below <= 1.0:
            raise SynthkdError("selection tune_below must be in (0, 1]")


@dataclass
class CandidateScore:
    """One candidate's cross-validated figures on the real examples."""

    kind: str
    data: str
    """"real" (the real examples only), "real+pool" (self-trained on the unlabelled pool as
    well) or "corpus+real"."""
    accuracy: float | None = None
    macro_f1: float | None = None
    log_loss: float | None = None
    folds: int = 0
    fold_scores: list[float] = field(default_factory=list)
    seconds: float = 0.0
    skipped: str | None = None
    """Why it was not scored (e.g. LoRA with lora_folds=0)."""
    ranked_by: float | None = None
    """The score it was ranked by (higher is better): the mean over the folds every
    candidate was scored on (the first split's), so candidates are compared pairwise."""
    correct: list[int | None] | None = field(default=None, repr=False)
    """Per real example (in the order given), 1 if its out-of-fold prediction on the first
    split was right, 0 if wrong, None if not scored: every candidate shares that split, so
    two candidates can be compared example by example (`flows.shipping`)."""

    @property
    def name(self) -> str:
        return f"{self.kind}/{self.data}"

    def score(self, metric: str) -> float:
        """Higher is better (log loss is negated); unscored candidates rank last."""
        value = getattr(self, metric)
        if value is None:
            return -float("inf")
        return -float(value) if metric == "log_loss" else float(value)


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


def cross_validate(
    kind: str, real: LabelledExamples, corpus: Corpus, labels: list[str], **options: Any
) -> CandidateScore:
    """CV over the real examples (`repeats` times, the mean); the corpus (if any) is in
    every training fold and never scored. OPTIONS: `cross_validate_variants`' keywords."""
    return cross_validate_variants(kind, real, corpus, labels, **options)[0]


class _Tally:
    """One variant's out-of-fold figures while `_cross_validate` runs."""

    def __init__(self, n: int) -> None:
        self.accuracies: list[float] = []
        self.f1s: list[float] = []
        self.losses: list[float] = []
        self.fold_scores: list[float] = []
        self.scored = 0
        self.correct: list[int | None] = [None] * n
        self.truth: list[str] = []
        self.predicted: list[str] = []

    def add(self, student, test, test_idx, real, labels, metric: str, first: bool) -> None:
        proba = np.clip(student.predict_proba(test.texts), 1e-6, 1.0)
        proba = proba / proba.sum(axis=1, keepdims=True)
        guess = [labels[j] for j in proba.argmax(axis=1)]
        if first:
            for i, label in zip(test_idx, guess, strict=True):
                self.correct[i] = int(label == real.labels[i])
        self.losses.append(float(log_loss(test.labels, proba, labels=labels)) * len(test))
        self.scored += len(test)
        self.truth += test.labels
        self.predicted += guess
        self.fold_scores.append(
            self.losses[-1] / len(test)
            if metric == "log_loss"
            else float(f1_score(test.labels, guess, average="macro", zero_division=0))
            if metric == "macro_f1"
            else float(accuracy_score(test.labels, guess))
        )

    def end_repeat(self) -> None:
        self.accuracies.append(float(accuracy_score(self.truth, self.predicted)))
        self.f1s.append(
            float(f1_score(self.truth, self.predicted, average="macro", zero_division=0))
        )
        self.truth, self.predicted = [], []

    def score(self, kind: str, data: str, seconds: float) -> CandidateScore:
        return CandidateScore(
            kind=kind,
            data=data,
            accuracy=float(np.mean(self.accuracies)),
            macro_f1=float(np.mean(self.f1s)),
            log_loss=float(np.sum(self.losses) / self.scored),
            folds=len(self.fold_scores),
            fold_scores=[round(s, 4) for s in self.fold_scores],
            seconds=round(seconds, 2),
            correct=self.correct,
        )


def cross_validate_variants(
    kind: str,
    real: LabelledExamples,
    corpus: Corpus,
    labels: list[str],
    *,
    embed: Embed | None = None,
    config: SelectionConfig | None = None,
    max_folds: int | None = None,
    pool: Sequence[str] | None = None,
) -> list[CandidateScore]:
    """`cross_validate`'s score, then with POOL (unlabelled texts) the same folds' students
    self-trained on it ("real+pool"): each fold's student labels the pool itself, so no
    held-out label leaks, and the encoder is tuned once for both."""
    config = config or SelectionConfig()
    start = time.perf_counter()
    counts = {label: real.labels.count(label) for label in set(real.labels)}
    n_splits = min(config.folds, min(counts.values()))
    if n_splits < 2:
        raise SynthkdError("cross-validation needs at least 2 real examples of every label")
    repeats = 1 if kind in ONCE else config.repeats
    variants = [_Tally(len(real.texts))] + ([_Tally(len(real.texts))] if pool else [])
    for repeat in range(repeats):
        splitter = StratifiedKFold(
            n_splits=n_splits, shuffle=True, random_state=config.seed + repeat
        )
        for fold, (train_idx, test_idx) in enumerate(splitter.split(real.texts, real.labels)):
            if max_folds is not None and fold >= max_folds:
                break
            fold_real = _take(real, train_idx)
            fold_corpus = corpus(fold_real) if callable(corpus) else corpus
            train = _join(fold_corpus, fold_real)
            test = _take(real, test_idx)
            student = fit_candidate(
                kind, train, labels, embed=embed, config=config, real_count=len(fold_real)
            )
            fitted = [student]
            if pool:
                fitted.append(
                    self_train(student, kind, train, pool, labels, embed=embed, config=config)
                )
            for tally, model in zip(variants, fitted, strict=True):
                tally.add(model, test, test_idx, real, labels, config.metric, repeat == 0)
        for tally in variants:
            tally.end_repeat()
    seconds = time.perf_counter() - start
    data = "real" if corpus is None else "corpus+real"
    scores = [variants[0].score(kind, data, seconds)]
    if pool:
        scores.append(variants[1].score(kind, "real+pool", seconds))
    return scores


__all__ = [
    "KINDS",
    "ONCE",
    "CandidateScore",
    "SelectionConfig",
    "cross_validate",
    "cross_validate_variants",
]
