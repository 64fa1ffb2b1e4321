"""Guided rounds and the critic's cut, decided by CV over the real examples.

Both compare "as it is" with "after the change" by `cross_validate` (see selection.py):
a guided round's records join only if the CV score does not drop; the critic's cut (or no
cut) is the one with the best CV score, ties going to no cut.

A corpus whose labels were decided with every real example leaks the held-out fold into
training; both take a `judge` for that: rows -> a function of the training fold's real
examples giving those rows labelled from that fold only (`stages.FoldEvidence.corpus`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from synthkd.errors import SynthkdError
from synthkd.training._examples import rows_of
from synthkd.training.cross_validation import SelectionConfig, _join, _take, cross_validate
from synthkd.training.frozen import Embed
from synthkd.training.selection import _label_set, _memoised, examples

Judge = Callable[[list[Any]], Any]
"""Corpus rows -> a corpus function of the training fold's real examples (see the module)."""


def _rows(data: Any) -> list[dict[str, Any]]:
    """Any table of records as a list of row dicts (what a judge takes)."""
    if data is None:
        return []
    columns = rows_of(data, "the corpus")
    return [
        dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)
    ]


def _judged(judge: Judge | None, rows: list[Any], fallback: Any) -> Any:
    return _memoised(judge(rows)) if judge is not None and rows else fallback


@dataclass
class Decision:
    """A CV comparison between keeping things as they are and a change."""

    accepted: bool
    before: float
    after: float
    detail: dict[str, Any] = field(default_factory=dict)


def accept_round(
    accepted: Any | None,
    new: Any,
    real: Any,
    labels: Sequence[str] | None = None,
    *,
    kind: str = "frozen",
    embed: Embed | None = None,
    config: SelectionConfig | None = None,
    tolerance: float = 0.0,
    judge: Judge | None = None,
) -> Decision:
    """Guided rounds must not hurt: take `new` only if CV(accepted + new) >= CV(accepted).

    `accepted`: the training records so far (None: none yet), `new`: this round's
    records. Scored with the `kind` student on corpus + real examples; with `judge`, on the
    records as each training fold's own evidence labels them.
    """
    config = config or SelectionConfig()
    real_ex = examples(real, "the real examples")
    before_ex = examples(accepted, "the accepted corpus")
    new_ex = examples(new, "the new round")
    names = _label_set(real_ex, _join(before_ex, new_ex), labels)
    before_corpus = _judged(judge, _rows(accepted), before_ex)
    after_corpus = _judged(judge, _rows(accepted) + _rows(new), _join(before_ex, new_ex))
    before = cross_validate(kind, real_ex, before_corpus, names, embed=embed, config=config)
    after = cross_validate(kind, real_ex, after_corpus, names, embed=embed, config=config)
    b, a = before.score(config.metric), after.score(config.metric)
    return Decision(
        accepted=a >= b - tolerance,
        before=b,
        after=a,
        detail={"metric": config.metric, "kind": kind, "new": len(new_ex)},
    )


def choose_cut(
    corpus: Any,
    critic_scores: Sequence[float],
    real: Any,
    labels: Sequence[str] | None = None,
    *,
    kind: str = "frozen",
    drop_fractions: Sequence[float] = (0.1, 0.2, 0.3, 0.5),
    embed: Embed | None = None,
    config: SelectionConfig | None = None,
    judge: Judge | None = None,
) -> Decision:
    """The critic's cut decided on real examples: no cut, or drop the lowest-scored
    `drop_fractions` of the corpus, whichever scores best by CV (ties: no cut). With
    `judge`, each fold sees the kept rows as its own evidence labels them.

    `Decision.detail["threshold"]` is the chosen critic score (None: no cut); keep records
    with score >= threshold. `Decision.accepted` is True when a cut was chosen.
    """
    config = config or SelectionConfig()
    real_ex = examples(real, "the real examples")
    corpus_ex = examples(corpus, "the corpus")
    scores = np.asarray(critic_scores, dtype=float)
    if len(scores) != len(corpus_ex):
        raise SynthkdError(f"{len(scores)} critic scores for {len(corpus_ex)} corpus records")
    names = _label_set(real_ex, corpus_ex, labels)
    rows = _rows(corpus) if judge is not None else []
    no_cut = cross_validate(
        kind, real_ex, _judged(judge, rows, corpus_ex), names, embed=embed, config=config
    )
    tried: list[dict[str, Any]] = [
        {"threshold": None, "kept": len(corpus_ex), "score": no_cut.score(config.metric)}
    ]
    for fraction in sorted(set(drop_fractions)):
        threshold = float(np.quantile(scores, fraction))
        keep = [i for i, s in enumerate(scores) if s >= threshold]
        if not keep or len(keep) == tried[-1]["kept"]:
            continue
        kept = _judged(judge, [rows[i] for i in keep] if rows else [], _take(corpus_ex, keep))
        result = cross_validate(kind, real_ex, kept, names, embed=embed, config=config)
        tried.append(
            {"threshold": threshold, "kept": len(keep), "score": result.score(config.metric)}
        )
    best = max(tried, key=lambda t: (t["score"], t["threshold"] is None))
    return Decision(
        accepted=best["threshold"] is not None,
        before=tried[0]["score"],
        after=best["score"],
        detail={"threshold": best["threshold"], "tried": tried, "metric": config.metric},
    )


__all__ = ["Decision", "Judge", "accept_round", "choose_cut"]
