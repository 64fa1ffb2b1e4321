"""The loop's choices, made on the user's real examples by k-fold cross-validation.

A validation score on one held-out file is a noisy judge with tens of examples per label,
and the loop makes several choices per round. So each round:
- a guided round's records join the training set only if the cross-validated score
  (frozen MiniLM + logistic head, corpus + real, over the real examples) does not drop
  (`training.accept_round`);
- the critic's cut for the training set so far is chosen the same way: no cut, or the
  lowest-scored 10-50% dropped, ties going to no cut (`training.choose_cut`).
Both are cheap (embeddings are cached, the heads are logistic regressions), so they run
every round instead of one extra student training at the end. Both see the corpus as each
training fold's own label evidence decides it (`FoldEvidence`): labels decided with every
real example would let the held-out fold vote for the corpus.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from synthkd.stages.context import RunContext
from synthkd.stages.evidence import real_examples, shared_embeddings
from synthkd.stages.generate import round_seconds


def _decisions_possible(ctx: RunContext, real: Any) -> bool:
    counts = real["label"].value_counts()
    return len(counts) >= 2 and counts.min() >= 2 and not set(ctx.labels) - set(counts.index)


def _rows(table: Any, rounds: Sequence[int]) -> list[dict[str, Any]]:
    import pyarrow as pa
    import pyarrow.compute as pc

    part = table.filter(pc.is_in(table["round"], pa.array(list(rounds), table["round"].type)))
    columns = [
        c
        for c in ("id", "round", "text", "label", "soft_labels", "critic_score", "meta")
        if c in part.column_names
    ]
    return part.select(columns).sort_by("id").to_pylist()


def round_decision(
    ctx: RunContext, round: int, included: Sequence[int], use_cut: bool
) -> dict[str, Any] | None:
    """Whether ROUND's records join the training set (rounds `included` so far), and the
    critic's cut for the resulting set; None where the real examples cannot be split.

    Returns {"accepted", "before", "after", "rounds", "threshold", "cut": {...}, "seconds"}:
    `rounds` is the training set's rounds after this decision, `threshold` the critic score
    to keep (None: no cut).
    """
    from synthkd.stages.fold_evidence import FoldEvidence
    from synthkd.training import SelectionConfig, accept_round, choose_cut

    started = time.perf_counter()
    real = real_examples(ctx)
    if ctx.task_kind != "labelled" or not _decisions_possible(ctx, real):
        return None
    config = SelectionConfig(folds=ctx.recipe.loop.cv_folds, seed=ctx.seed)
    embed = shared_embeddings()
    judge = FoldEvidence(ctx).corpus
    table = ctx.stores().corpus.read()
    before_rows = _rows(table, included) if included else []
    new_rows = _rows(table, [round])
    accepted, before, after = True, None, None
    if included and new_rows:
        decision = accept_round(
            before_rows or None,
            new_rows,
            real,
            ctx.labels,
            embed=embed,
            config=config,
            judge=judge,
        )
        accepted, before, after = decision.accepted, decision.before, decision.after
    rounds = sorted({*included, round}) if accepted else sorted(included)
    rows = before_rows + new_rows if accepted else before_rows
    threshold, cut = None, None
    scores = [row.get("critic_score") for row in rows]
    if use_cut and rows and all(score is not None for score in scores):
        chosen = choose_cut(rows, scores, real, ctx.labels, embed=embed, config=config, judge=judge)
        threshold = chosen.detail["threshold"]
        cut = {
            "chosen": chosen.accepted,
            "no_cut": chosen.before,
            "best": chosen.after,
            "metric": chosen.detail["metric"],
            "tried": chosen.detail["tried"],
        }
    return {
        "accepted": accepted,
        "before": before,
        "after": after,
        "metric": config.metric,
        "rounds": rounds,
        "threshold": threshold,
        "cut": cut,
        "seconds": round_seconds(started),
    }
