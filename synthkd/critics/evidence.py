"""Labels from evidence, not from the prompt.

A small teacher writes fluent, on-topic texts, but the label it was asked for can be close
to random. So each generated record gets its label from several signals, each weighted by
how well it does on the user's real examples:

- `prompt`: the label the teacher was asked for (one-hot, weight `prompt_weight`);
- `teacher`: the teacher's label distribution for the text, where the record carries one;
- `real`: logistic regression on MiniLM embeddings of the user's real examples only;
- `oof`: the out-of-fold prediction (sklearn `cross_val_predict`) of the same model trained
  on corpus + real examples; cleanlab's confident learning (`find_label_issues`, per-class
  thresholds) turns it into a vote against the asked-for label.

Weights are chance-corrected balanced accuracies on the real examples (0: no better than
guessing, 1: perfect): `real` by cross-validation over the real examples, `oof` on the real
rows of its own out-of-fold pass, `teacher` from its distributions on the real examples
when given (else `teacher_weight`). A signal that cannot beat chance gets no vote.

Rules, per record with asked-for label `a`:
- kept: the pooled distribution (prompt + weighted signals) peaks at `a` and the signals
  voting for `a` outweigh those voting against it (a tie is not agreement);
- relabelled to `b`: the evidence alone (without the prompt) peaks at `b` with probability
  >= `relabel_confidence`, signals voting `b` hold a weighted majority, and the classifier
  on the user's own examples is one of them (the user's examples anchor every relabel);
- rejected (`label_disagreement`): anything else. Generated text is cheap; a wrong label
  in the training set costs more than a lost record.
`soft_labels` is the agreed distribution: the pooled one for kept records, the evidence
alone for relabelled ones (the prompt was overruled).
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from threadpoolctl import threadpool_limits

from synthkd.critics.embeddings import EmbeddingCache
from synthkd.critics.evidence_result import DECISIONS, REASON, LabelEvidence
from synthkd.errors import SynthkdError


@dataclass
class LabelEvidenceConfig:
    """How the signals are weighed; defaults are what the loop uses."""

    prompt_weight: float = 1.0
    """Weight of the asked-for label in the pooled distribution (the tie-breaker)."""
    teacher_weight: float | None = None
    """Weight of the teacher's distribution; None: measured on the real examples when
    their teacher distributions are given, else 1.0."""
    relabel_confidence: float = 0.6
    """Evidence-only probability the new label needs before a record is relabelled."""
    folds: int = 5
    """Folds of the out-of-fold pass and of the real classifier's skill estimate."""
    C: float = 10.0
    """Inverse regularisation of the logistic regressions (on L2-normalised embeddings)."""
    seed: int = 0
    """Seed of the fold splits."""
    filter_by: str = "prune_by_noise_rate"
    """cleanlab `find_label_issues` method."""

    def __post_init__(self) -> None:
        if not 0.0 < self.relabel_confidence <= 1.0:
            raise SynthkdError("label evidence: relabel_confidence must be in (0, 1]")
        if self.folds < 2:
            raise SynthkdError("label evidence: folds must be 2 or more")
        if self.C <= 0 or self.prompt_weight < 0 or (self.teacher_weight or 0) < 0:
            raise SynthkdError("label evidence: C must be positive and weights non-negative")


def _skill(truth: np.ndarray, predicted: np.ndarray, k: int) -> float:
    """Balanced accuracy rescaled so chance is 0 and perfect is 1 (clipped at 0)."""
    if len(truth) == 0:
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        accuracy = balanced_accuracy_score(truth, predicted)
    return float(max(0.0, (accuracy - 1.0 / k) / (1.0 - 1.0 / k)))


def _folds(y: np.ndarray, wanted: int, seed: int) -> StratifiedKFold | None:
    smallest = int(np.bincount(y)[np.unique(y)].min()) if len(y) else 0
    n = min(wanted, smallest)
    return StratifiedKFold(n_splits=n, shuffle=True, random_state=seed) if n >= 2 else None


def _full(proba: np.ndarray, classes: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros((proba.shape[0], k))
    out[:, classes] = proba
    return out


def _teacher_rows(dists: Sequence[Any], index: dict[str, int], what: str) -> np.ndarray:
    out = np.full((len(dists), len(index)), np.nan)
    for i, dist in enumerate(dists):
        if dist is None or (isinstance(dist, float) and math.isnan(dist)) or dist == "":
            continue
        if isinstance(dist, str):
            try:
                dist = json.loads(dist)
            except json.JSONDecodeError as exc:
                raise SynthkdError(f"{what} row {i}: soft_labels is not JSON ({exc.msg})") from exc
        row = np.zeros(len(index))
        for name, p in dict(dist).items():
            if name in index:
                row[index[name]] = float(p)
        if row.sum() > 0:
            out[i] = row / row.sum()
    return out


def _indices(values: Sequence[str], index: dict[str, int], what: str) -> np.ndarray:
    unknown = sorted({str(v) for v in values} - set(index))
    if unknown:
        raise SynthkdError(
            f"{what} has labels outside the label set: {', '.join(unknown[:5])} "
            f"(labels: {', '.join(index)})"
        )
    return np.asarray([index[str(v)] for v in values], dtype=int)


def _issues(y: np.ndarray, proba: np.ndarray, filter_by: str) -> np.ndarray:
    """cleanlab's label issues over the classes present (it wants contiguous columns)."""
    from cleanlab.filter import find_label_issues

    present = np.unique(y)
    if len(present) < 2:
        return np.zeros(len(y), dtype=bool)
    remap = {c: i for i, c in enumerate(present)}
    compact = proba[:, present]
    compact = compact / np.clip(compact.sum(axis=1, keepdims=True), 1e-12, None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(
            find_label_issues(
                labels=np.asarray([remap[c] for c in y]),
                pred_probs=compact,
                filter_by=filter_by,
                n_jobs=1,  # no worker pool: small inputs, and Dask workers may not fork
            ),
            dtype=bool,
        )


def _classifier_signals(
    corpus_x: np.ndarray,
    real_x: np.ndarray,
    asked: np.ndarray,
    real_y: np.ndarray,
    k: int,
    config: LabelEvidenceConfig,
    signals: dict[str, np.ndarray],
    weights: dict[str, float],
) -> np.ndarray:
    """Add the `real` and `oof` signals and weights; return cleanlab's label issues."""

    def model() -> LogisticRegression:
        return LogisticRegression(C=config.C, max_iter=2000)

    # the user's own examples: fitted on all of them, its skill from CV over them
    real_model = model().fit(real_x, real_y)
    signals["real"] = _full(real_model.predict_proba(corpus_x), real_model.classes_, k)
    cv = _folds(real_y, config.folds, config.seed)
    if cv is not None and len(np.unique(real_y)) >= 2:
        held = cross_val_predict(model(), real_x, real_y, cv=cv)
        weights["real"] = _skill(real_y, held, k)
    else:
        weights["real"] = 1.0

    # out-of-fold on corpus + real; confident learning flags the corpus rows
    n = len(corpus_x)
    both_x = np.vstack([corpus_x, real_x])
    both_y = np.concatenate([asked, real_y])
    cv = _folds(both_y, config.folds, config.seed)
    if cv is None or len(np.unique(both_y)) < 2:
        return np.zeros(n, dtype=bool)
    classes = np.unique(both_y)
    oof = _full(
        cross_val_predict(model(), both_x, both_y, cv=cv, method="predict_proba"), classes, k
    )
    signals["oof"] = oof[:n]
    weights["oof"] = _skill(real_y, oof[n:].argmax(axis=1), k)
    return _issues(both_y, oof, config.filter_by)[:n]


def label_evidence(
    records: Sequence[Mapping[str, Any]],
    real_texts: Sequence[str],
    real_labels: Sequence[str],
    labels: Sequence[str],
    *,
    embed: Callable[[Sequence[str]], np.ndarray] | None = None,
    teacher_real: Sequence[Mapping[str, float]] | None = None,
    config: LabelEvidenceConfig | None = None,
) -> LabelEvidence:
    """Decide every generated record's label from the evidence (see the module docstring).

    `records`: rows with `text`, `label` (the asked-for one) and optional `soft_labels`
    (the teacher's distribution, a dict or its JSON). `real_texts`/`real_labels`: the
    user's seeds and validation examples. `embed`: texts -> embeddings (an
    `EmbeddingCache`, shared with the students; a fresh one when None). `teacher_real`:
    the teacher's distributions for the real texts, to weigh the teacher by its skill.
    """
    config = config or LabelEvidenceConfig()
    names = list(dict.fromkeys(str(label) for label in labels))
    if len(names) < 2:
        raise SynthkdError("label evidence needs two or more labels")
    if not records:
        raise SynthkdError("label evidence got no records to judge")
    if len(real_texts) != len(real_labels) or not real_texts:
        raise SynthkdError("label evidence needs the real examples: texts and labels, same length")
    index = {name: i for i, name in enumerate(names)}
    k = len(names)
    texts = [str(r.get("text") or "") for r in records]
    if any(not t.strip() for t in texts):
        raise SynthkdError("label evidence: a record has no text")
    asked = _indices([r.get("label") for r in records], index, "the corpus")
    real_y = _indices(real_labels, index, "the real examples")
    embed = embed or EmbeddingCache()
    corpus_x, real_x = embed(texts), embed(list(real_texts))

    signals: dict[str, np.ndarray] = {"prompt": np.eye(k)[asked]}
    weights: dict[str, float] = {"prompt": config.prompt_weight}
    with threadpool_limits(limits=1, user_api="blas"):  # small fits: BLAS threads only contend
        issues = _classifier_signals(corpus_x, real_x, asked, real_y, k, config, signals, weights)

    teacher = _teacher_rows([r.get("soft_labels") for r in records], index, "the corpus")
    if not np.isnan(teacher).all():
        signals["teacher"] = teacher
        if config.teacher_weight is not None:
            weights["teacher"] = config.teacher_weight
        elif teacher_real is not None:
            rows = _teacher_rows(list(teacher_real), index, "the teacher's real distributions")
            known = ~np.isnan(rows).any(axis=1)
            weights["teacher"] = _skill(real_y[known], rows[known].argmax(axis=1), k)
        else:
            weights["teacher"] = 1.0

    result = LabelEvidence(
        labels=names,
        decisions=[],
        final_labels=[],
        soft_labels=[],
        reasons=[],
        asked=[names[a] for a in asked],
        weights={name: round(w, 4) for name, w in weights.items()},
        signals=signals,
        label_issues=issues,
    )
    evidence_names = [n for n in ("real", "oof", "teacher") if n in signals and weights[n] > 0]
    for i, a in enumerate(asked):
        decision, final, soft = _decide(i, int(a), signals, weights, evidence_names, issues, config)
        result.decisions.append(decision)
        result.final_labels.append(names[final])
        result.soft_labels.append(
            None
            if soft is None
            else {names[j]: round(float(p), 4) for j, p in enumerate(soft) if p >= 5e-4}
        )
        result.reasons.append(REASON if decision == "rejected" else None)
    return result


def _decide(
    i: int,
    asked: int,
    signals: dict[str, np.ndarray],
    weights: dict[str, float],
    evidence_names: list[str],
    issues: np.ndarray,
    config: LabelEvidenceConfig,
) -> tuple[str, int, np.ndarray | None]:
    k = signals["prompt"].shape[1]
    present = [n for n in evidence_names if not np.isnan(signals[n][i]).any()]
    evidence = np.zeros(k)
    votes: dict[str, int] = {}
    for name in present:
        row = signals[name][i]
        evidence += weights[name] * row
        vote = int(row.argmax())
        if name == "oof":  # confident learning decides whether the oof model objects
            if issues[i] and vote == asked:
                vote = int(np.argsort(row)[-2])
            elif not issues[i]:
                vote = asked
        votes[name] = vote
    total = sum(weights[n] for n in present)
    pooled = evidence + config.prompt_weight * signals["prompt"][i]
    pooled = pooled / pooled.sum() if pooled.sum() > 0 else signals["prompt"][i]
    if total == 0:  # nothing to contradict the prompt
        return "kept", asked, pooled
    support = sum(weights[n] for n, v in votes.items() if v == asked)
    if int(pooled.argmax()) == asked and support > total - support:
        return "kept", asked, pooled
    evidence = evidence / total
    target = int(evidence.argmax())
    backing = sum(weights[n] for n, v in votes.items() if v == target)
    anchored = "real" not in present or votes["real"] == target
    if (
        target != asked
        and anchored
        and backing > total / 2
        and evidence[target] >= config.relabel_confidence
    ):
        return "relabelled", target, evidence
    return "rejected", asked, None


__all__ = [
    "DECISIONS",
    "REASON",
    "EmbeddingCache",
    "LabelEvidence",
    "LabelEvidenceConfig",
    "label_evidence",
]
