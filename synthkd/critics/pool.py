"""Self-training on the user's unlabelled texts (production data).

A pool text gets a label only where two independent views agree confidently: a
classifier trained on the corpus and the real examples, and the teacher's label
distribution. Without the teacher the classifier alone must be surer still. What is
kept joins the corpus with `meta.source = "unlabelled_pool"`, so its effect can be
measured and it can be dropped again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from synthkd.errors import SynthkdError

SOURCE = "unlabelled_pool"


def label_pool(
    texts: Sequence[str],
    probabilities: np.ndarray,
    labels: Sequence[str],
    teacher: Sequence[Mapping[str, float] | None] | None = None,
    *,
    min_confidence: float = 0.8,
    alone_confidence: float = 0.95,
    loop_round: int = 0,
) -> list[dict[str, Any]]:
    """Records for the pool texts the classifier and the teacher agree on.

    `probabilities`: (len(texts), len(labels)) from the classifier, columns in `labels`
    order. `teacher`: per text the teacher's {label: p}, or None. A text is kept when
    both argmaxes match and each gives that label at least `min_confidence`; a text
    with no teacher distribution needs `alone_confidence` from the classifier. The
    record's `soft_labels` is the mean of the two distributions. Pass `teacher=None` when
    the teacher is no better than chance on the real examples (its evidence weight is 0).
    """
    names = list(labels)
    proba = np.asarray(probabilities, dtype=float)
    if proba.ndim != 2 or proba.shape != (len(texts), len(names)):
        raise SynthkdError(
            f"pool probabilities must be ({len(texts)}, {len(names)}), not {proba.shape}"
        )
    if teacher is not None and len(teacher) != len(texts):
        raise SynthkdError(f"the pool has {len(texts)} texts but {len(teacher)} teacher rows")
    records = []
    seen: set[str] = set()
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip() or text in seen:
            continue
        seen.add(text)
        student = proba[i] / max(proba[i].sum(), 1e-12)
        best = int(student.argmax())
        dist = teacher[i] if teacher is not None else None
        if dist:
            row = np.asarray([float(dist.get(name, 0.0)) for name in names])
            if row.sum() <= 0:
                continue
            row = row / row.sum()
            if int(row.argmax()) != best or min(row[best], student[best]) < min_confidence:
                continue
            agreed = (row + student) / 2
        else:
            if student[best] < alone_confidence:
                continue
            agreed = student
        soft = {
            name: round(float(p), 4) for name, p in zip(names, agreed, strict=True) if p >= 5e-4
        }
        records.append(
            {
                "text": text,
                "label": names[best],
                "soft_labels": json.dumps(soft, sort_keys=True),
                "teacher_confidence": float(row[best]) if dist else None,
                "meta": json.dumps({"source": SOURCE, "row": i, "round": loop_round}),
                "source": SOURCE,
            }
        )
    return records


__all__ = ["SOURCE", "label_pool"]
