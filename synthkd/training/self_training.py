"""Self-training on the user's unlabelled texts (the recipe's `unlabelled:` pool).

A student fitted on tens of real examples labels the pool; the texts it labels with at
least `pool_confidence` join its training set and the head is fitted again. The pool is
real production text, so it shows the head where the user's texts actually lie, which
generated text from a small teacher does not. Measured on the real tasks
(`benchmarks/real_tasks.py`, test splits, the pool's 300 texts): frozen MiniLM head
0.970 -> 0.974 (SMS spam), 0.579 -> 0.593 (tweets), 0.933 -> 0.945 (Reuters); the
contrastively tuned head 0.976 -> 0.980, 0.645 -> 0.649, 0.943 -> 0.951. Whether it
helps a given recipe is decided like every other choice: by CV over the real examples,
each fold labelling the pool with its own student (`selection.select_student`). In the
runs CV chose it on Reuters only (test 0.951); on SMS spam, whose real examples are
balanced and whose pool is mostly ham, its CV dropped (0.976 -> 0.905), so it stayed out.

Only the head is fitted again (frozen and contrastive: the same encoder; TF-IDF: the
whole linear model, which is cheap): tuning the encoder again on its own labels was
tried and gained nothing (0.980, 0.645, 0.939 on the same tasks).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from synthkd.training._examples import LabelledExamples
from synthkd.training.frozen import Embed, FrozenHeadStudent, fit_head, full_weights

if TYPE_CHECKING:
    from synthkd.training.cross_validation import SelectionConfig

SELF_TRAINED = ("frozen", "linear", "contrastive")
"""The kinds that self-train (LoRA would tune the whole encoder again: minutes)."""


def pool_labels(student: Any, pool: Sequence[str], min_confidence: float) -> LabelledExamples:
    """The pool texts STUDENT labels with at least MIN_CONFIDENCE, with those labels."""
    texts = list(pool)
    if not texts:
        return LabelledExamples([], [], [])
    proba = np.asarray(student.predict_proba(texts))
    keep = np.flatnonzero(proba.max(axis=1) >= min_confidence)
    names = list(student.labels)
    best = proba.argmax(axis=1)
    return LabelledExamples(
        [texts[i] for i in keep], [names[best[i]] for i in keep], [None] * len(keep)
    )


def self_train(
    student: Any,
    kind: str,
    train: LabelledExamples,
    pool: Sequence[str],
    labels: list[str],
    *,
    embed: Embed | None,
    config: SelectionConfig,
) -> Any:
    """STUDENT (of `kind`, fitted on TRAIN) fitted again on TRAIN plus the pool texts it
    labels confidently; STUDENT itself when it labels none. A frozen-head student's `trained["self_trained"]`
    records how many pool texts joined."""
    from synthkd.training.candidates import fit_candidate

    pseudo = pool_labels(student, pool, config.pool_confidence)
    if not len(pseudo):
        return student
    joined = LabelledExamples(
        train.texts + pseudo.texts,
        train.labels + pseudo.labels,
        train.soft_labels + pseudo.soft_labels,
    )
    if isinstance(student, FrozenHeadStudent):  # frozen and contrastive: the head only
        features = student._features(joined.texts)
        C = config.contrastive.C if student.encoder is not None else config.C
        model = fit_head(features, joined, labels, C=C)
        coef, intercept = full_weights(model, len(labels), features.shape[1])
        fitted = FrozenHeadStudent(
            labels, coef, intercept, embed=student._embed, base_model=student.base_model
        )
        fitted.encoder = student.encoder
        fitted.trained = {**(student.trained or {}), "self_trained": len(pseudo)}
        return fitted
    return fit_candidate(kind, joined, labels, embed=embed, config=config)


__all__ = ["SELF_TRAINED", "pool_labels", "self_train"]
