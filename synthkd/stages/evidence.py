"""Labels from evidence: each round's generated records get their label from several signals.

A small teacher writes fluent texts whose asked-for label can be close to random. So
after the rule filters, `label_round` weighs the asked-for label against a classifier on
the user's real examples (seeds and validation) and the out-of-fold prediction of one
trained on corpus + real (cleanlab's confident learning), in `synthkd.critics.label_evidence`.
Records the evidence contradicts are relabelled (new id, the agreed label) or moved to
rejects with reason `label_disagreement`; every kept record gets the agreed distribution
as its `soft_labels`.
"""

from __future__ import annotations

import json
import time
from typing import Any

from synthkd.stages.context import RunContext
from synthkd.stages.generate import round_seconds

_EMBEDDINGS: dict[str, Any] = {}
ASKED = "asked_label"
"""`meta` key of a relabelled record: the label the teacher was asked for."""


def _meta(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return dict(value)
    try:
        parsed = json.loads(value) if value else {}
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def asked_label(row: dict[str, Any]) -> str:
    """The label a corpus row was asked for (its own unless the evidence relabelled it)."""
    return str(_meta(row.get("meta")).get(ASKED) or row["label"])


def shared_embeddings() -> Any:
    """One MiniLM embedding cache per process: evidence, cut and selection share encodings."""
    if "cache" not in _EMBEDDINGS:
        from synthkd.critics import EmbeddingCache

        _EMBEDDINGS["cache"] = EmbeddingCache()
    return _EMBEDDINGS["cache"]


def real_examples(ctx: RunContext) -> Any:
    """The user's real labelled examples (seeds, and validation where given): a DataFrame."""
    import pandas as pd

    parts = [ctx.inputs.real, getattr(ctx.inputs, "validation", None)]
    frames = [p[["text", "label"]] for p in parts if p is not None and len(p)]
    return pd.concat(frames, ignore_index=True).drop_duplicates("text")


def label_round(ctx: RunContext, round: int) -> dict[str, Any] | None:
    """Relabel or reject this round's records by evidence; None for other task kinds.

    Idempotent: rejects are written first, relabelled rows appended under their new ids,
    then the old rows deleted; a rerun after a kill judges what is left again.
    """
    import pyarrow.compute as pc

    from synthkd.critics import label_evidence, to_reject
    from synthkd.data import record_id

    if ctx.task_kind != "labelled" or ctx.inputs.real is None:
        return None
    started = time.perf_counter()
    run = ctx.stores()
    table = run.corpus.read()
    this_round = table.filter(pc.equal(table["round"], round)).sort_by("id")
    empty = {"kept": 0, "relabelled": 0, "rejected": 0, "per_label": {}, "weights": {}}
    if this_round.num_rows == 0:
        return {**empty, "seconds": round_seconds(started)}
    records = this_round.to_pylist()
    real = real_examples(ctx)
    evidence = label_evidence(
        records,
        real["text"].tolist(),
        real["label"].tolist(),
        ctx.labels,
        embed=shared_embeddings(),
    )
    message = f"label evidence {ctx.name} round {round}"
    meta = {"round": round, "stage": "critic"}
    known_rejects = run.rejects.ids()
    known = set(table["id"].to_pylist())
    rejects, fresh, old_ids, soft = [], [], [], {}
    for row, decision, final, dist in zip(
        records, evidence.decisions, evidence.final_labels, evidence.soft_labels, strict=True
    ):
        if decision == "rejected":
            reject = to_reject(row, run.corpus.kind, "label_disagreement", "critic")
            if reject["id"] not in known_rejects:
                rejects.append(reject)
            old_ids.append(row["id"])
            continue
        text = json.dumps(dist, sort_keys=True) if dist else None
        if decision == "relabelled":  # the asked-for label stays: fold_evidence decides again
            meta = {**_meta(row.get("meta")), ASKED: row["label"]}
            new = {**row, "label": final, "soft_labels": text, "meta": json.dumps(meta)}
            new["id"] = record_id(run.corpus.kind, new)
            if new["id"] not in known:
                fresh.append(new)
                known.add(new["id"])
            old_ids.append(row["id"])
        elif text is not None:
            soft[row["id"]] = text
    if rejects:
        run.rejects.append(rejects, message, meta)
    if fresh:
        run.corpus.append(fresh, message, meta)
    if old_ids:
        run.corpus.delete(old_ids, message, meta)
    if soft:
        run.corpus.update_soft_labels(soft, message)
    return {**evidence.summary(), "seconds": round_seconds(started)}
