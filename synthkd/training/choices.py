"""Guided rounds and the critic's cut, decided by CV over the real examples.

Both compare "as it is" with "after the change" by `cross_validate` (see selection.py):
a guided round's records join only if the CV score does not drop; the critic's cut (or no
cut) is the one with the best CV score, ties going to no cut.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from synthkd.errors import SynthkdError
from synthkd.training.cross_validation import SelectionConfig, _join, _take, cross_validate
from synthkd.training.frozen import Embed
from synthkd.training.selection import _label_set, examples


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
) -> Decision:
    """Guided rounds must not hurt: take `new` only if CV(accepted + new) >= CV(accepted).

    `accepted`: the training records so far (None: none yet), `new`: this round's
    records. Scored with the `kind` student on corpus + real examples.
    """
    config = config or SelectionConfig()
    real_ex = examples(real, "the real examples")
    before_ex = examples(accepted, "the accepted corpus")
    new_ex = examples(new, "the new round")
    names = _label_set(real_ex, _join(before_ex, new_ex), labels)
    before = cross_validate(kind, real_ex, before_ex, names, embed=embed, config=config)
    after = cross_validate(
        kind, real_ex, _join(before_ex, new_ex), names, embed=embed, config=config
    )
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
) -> Decision:
    """The critic's cut decided on real examples: no cut, or drop the lowest-scored
    `drop_fractions` of the corpus, whichever scores best by CV (ties: no cut).

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
    no_cut = cross_validate(kind, real_ex, corpus_ex, names, embed=embed, config=config)
    tried: list[dict[str, Any]] = [
        {"threshold": None, "kept": len(corpus_ex), "score": no_cut.score(config.metric)}
    ]
    for fraction in sorted(set(drop_fractions)):
        threshold = float(np.quantile(scores, fraction))
        keep = [i for i, s in enumerate(scores) if s >= threshold]
        if not keep or len(keep) == tried[-1]["kept"]:
            continue
        result = cross_validate(
            kind, real_ex, _take(corpus_ex, keep), names, embed=embed, config=config
        )
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


__all__ = ["Decision", "accept_round", "choose_cut"]
