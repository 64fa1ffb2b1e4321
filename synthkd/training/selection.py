"""Every choice the loop makes, decided by k-fold cross-validation over the REAL examples.

The user's seeds and validation examples are the only labels we trust. They are split
into stratified folds; each fold is scored by a student trained on the other folds plus
(when the candidate uses it) the whole synthetic corpus. The corpus is never scored.

- `select_student`: frozen MiniLM + logistic head, linear TF-IDF, a contrastively tuned
  MiniLM + logistic head (SetFit-style, contrastive.py) and LoRA MiniLM, each on the real
  examples only and on corpus + real; ranked by CV score on the folds all were scored on. The real-only students
  are always candidates, so the winner is never worse than them by CV. LoRA costs minutes
  per fold on a CPU: `lora_folds=0` (the default) skips it, n > 0 scores it on n folds.
  The encoder-tuning kinds are tried only while the cheap ones stay below `tune_below`.
- `fit_best`: refit the winner on everything.
- `accept_round`, `choose_cut` (choices.py): a guided round's records join only if the CV
  score does not drop; the critic's threshold (or no cut) maximises the CV score.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, log_loss
from sklearn.model_selection import StratifiedKFold

from synthkd.errors import SynthkdError
from synthkd.training._examples import LabelledExamples, labelled_examples
from synthkd.training.candidates import fit_candidate
from synthkd.training.contrastive import ContrastiveConfig
from synthkd.training.frozen import Embed

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
        if not 0.0 < self.tune_below <= 1.0:
            raise SynthkdError("selection tune_below must be in (0, 1]")


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
            "ranking": [
                {**{k: v for k, v in asdict(c).items() if k != "correct"}, "name": c.name}
                for c in self.ranking
            ],
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
    repeats = 1 if kind in ONCE else config.repeats
    accuracies, f1s, losses, fold_scores = [], [], [], []
    scored = 0
    correct: list[int | None] = [None] * len(real.texts)
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
            student = fit_candidate(
                kind, train, labels, embed=embed, config=config, real_count=len(fold_real)
            )
            proba = np.clip(student.predict_proba(test.texts), 1e-6, 1.0)
            proba = proba / proba.sum(axis=1, keepdims=True)
            guess = [labels[j] for j in proba.argmax(axis=1)]
            if repeat == 0:
                for i, label in zip(test_idx, guess, strict=True):
                    correct[i] = int(label == real.labels[i])
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
        correct=correct,
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


def _skip(
    kind: str, with_corpus: bool, config: SelectionConfig, scored: list[CandidateScore]
) -> str | None:
    """Why a candidate is not scored (None: it is). SCORED: the candidates so far."""
    if kind in ONCE and config.tune_below < 1.0:
        cheap = [c.accuracy for c in scored if c.kind not in ONCE and c.accuracy is not None]
        if cheap and max(cheap) >= config.tune_below:
            return (
                f"a frozen or linear candidate reached {max(cheap):.3f} CV accuracy "
                f"(tune_below={config.tune_below:g}): the labels are already separated"
            )
    if kind == "lora" and config.lora_folds <= 0:
        return "lora_folds=0: LoRA costs minutes per fold on CPU"
    if kind == "contrastive" and config.contrastive_folds <= 0:
        return "contrastive_folds=0"
    if kind == "contrastive" and with_corpus and not config.contrastive_corpus:
        return "contrastive_corpus=false: tuned on the real examples only"
    return None


def _ranked(c: CandidateScore) -> float:
    return -float("inf") if c.ranked_by is None else c.ranked_by


def _rank_on_common_folds(scores: list[CandidateScore], metric: str) -> None:
    """Set `ranked_by`: each candidate's score over every fold it was scored on.

    Candidates scored once (contrastive, LoRA) have fewer folds than the repeated ones;
    comparing the repeated ones on those few folds only was tried and chose by noise
    (SMS spam: linear TF-IDF won on the first split's folds, 0.971, against 0.933 over all
    its folds, and lost 6 points on test), so each is judged on all of its own folds.
    """
    for c in scores:
        if c.skipped is None and c.fold_scores:
            c.ranked_by = c.score(metric)


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
    config = replace(config, metric=config.choose_by)  # fold scores in the ranking metric
    real_ex = examples(real, "the real examples")
    corpus_ex = _memoised(corpus) if callable(corpus) else examples(corpus, "the corpus")
    names = _label_set(real_ex, None if callable(corpus_ex) else corpus_ex, labels)
    scores: list[CandidateScore] = []
    order = {kind: i for i, kind in enumerate(KINDS)}
    for kind in sorted(config.candidates, key=order.__getitem__):  # the cheap kinds first
        for data in [None, corpus_ex] if corpus_ex is not None else [None]:
            why = _skip(kind, data is not None, config, scores)
            if why:
                scores.append(CandidateScore(kind, "corpus+real" if data else "real", skipped=why))
                continue
            max_folds = {"lora": config.lora_folds, "contrastive": config.contrastive_folds}
            max_folds = max_folds.get(kind)
            scores.append(
                cross_validate(
                    kind, real_ex, data, names, embed=embed, config=config, max_folds=max_folds
                )
            )
    _rank_on_common_folds(scores, config.metric)
    scores.sort(key=lambda c: (-_ranked(c), c.data != "real", order[c.kind]))
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
    (frozen, contrastive and linear: student.json + weights, contrastive also its tuned
    encoder; LoRA: a full student directory).
    """
    config = config or SelectionConfig()
    best = selection.best
    real_ex = examples(real, "the real examples")
    corpus_ex = None
    if best.data == "corpus+real":
        corpus_ex = examples(corpus(real_ex) if callable(corpus) else corpus, "the corpus")
    names = _label_set(real_ex, corpus_ex, labels)
    train = _join(corpus_ex, real_ex)
    student = fit_candidate(
        best.kind,
        train,
        names,
        embed=embed,
        config=config,
        out_dir=out_dir,
        real_count=len(real_ex),
    )
    if out_dir is not None and best.kind != "lora":
        Path(out_dir).mkdir(parents=True, exist_ok=True)  # the linear student saves into it
        student.save(Path(out_dir))
        path = Path(out_dir) / "student.json"
        manifest = {"kind": "linear", "labels": names}  # linear: only what the loader reads
        if best.kind != "linear":
            manifest = json.loads(path.read_text())
        manifest["selected_by"] = selection.to_dict()
        path.write_text(json.dumps(manifest, indent=2))
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
