"""The unlabelled pool: the user's real unlabelled texts, labelled by self-training.

A labelled recipe may name `unlabelled:` (production texts without labels). In the run's
first round, after label evidence and before the critic, `pool_round`:
- takes the pool's texts, deduplicated, without any text that is a real example or
  already in the corpus, at most `task.unlabelled_max` (sampled with the recipe's seed);
- labels them by self-training (`critics.pool.label_pool`): a frozen MiniLM + logistic
  head on the real examples and this round's records, and the teacher's label
  distribution, the teacher only where it is clearly above chance on the real examples;
- lets them join the round (lineage `meta.source = "unlabelled_pool"`) only if the loop's
  own cross-validation over the real examples does not drop with them (the rule a guided
  round's records follow), so what the pool adds is measured, not assumed.
Idempotent: a rerun rebuilds the same candidates and appends only ids not yet stored.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections import Counter
from typing import Any

from synthkd.errors import SynthkdError
from synthkd.stages.context import RunContext
from synthkd.stages.decisions import _decisions_possible
from synthkd.stages.evidence import real_examples, shared_embeddings
from synthkd.stages.generate import round_seconds, teacher_slots

MARGIN = 0.1
"""The teacher votes on pool labels only at accuracy >= 1/k + MARGIN on the real examples."""
MIN_CONFIDENCE = 0.8
"""What the classifier and the teacher must each give a pool text's label (`label_pool`);
the classifier alone needs `label_pool`'s `alone_confidence` (0.95)."""


def _source(meta: Any) -> str | None:
    try:
        return (json.loads(meta) or {}).get("source") if meta else None
    except (TypeError, ValueError, AttributeError):
        return None


def pool_texts(ctx: RunContext, corpus_texts: set[str]) -> tuple[list[tuple[int, str]], dict]:
    """(file row, text) of the pool texts to label, and what was left out and why."""
    real = {str(t).strip() for t in real_examples(ctx)["text"]}
    seen: set[str] = set()
    kept, dropped = [], Counter()
    for row, text in enumerate(ctx.inputs.unlabelled):
        key = str(text or "").strip()
        if not key:
            dropped["empty"] += 1
        elif key in seen:
            dropped["duplicate"] += 1
        elif key in real:
            dropped["a real example"] += 1
        elif key in corpus_texts:
            dropped["in the corpus"] += 1
        else:
            seen.add(key)
            kept.append((row, key))
    cap = int(getattr(ctx.recipe.task, "unlabelled_max", 1000) or 0)
    if cap and len(kept) > cap:
        dropped["over unlabelled_max"] = len(kept) - cap
        chosen = sorted(random.Random(ctx.seed).sample(range(len(kept)), cap))
        kept = [kept[i] for i in chosen]
    return kept, dict(dropped)


def _teacher_classifier(ctx: RunContext) -> tuple[Any, str]:
    """The teacher as a label scorer, built as `teacher_baseline` builds it (same header,
    so its answers on the validation texts are the baseline's, from the response cache)."""
    from synthkd.generators import make_task, prompt_style
    from synthkd.stages.student import _dump
    from synthkd.training import TeacherClassifier

    task = ctx.recipe.task
    slot = teacher_slots(ctx)[0]
    annotate = make_task(
        {
            "kind": "annotate",
            "input": task.validation or task.seeds,
            "text_column": task.text_column,
            "labels": {name: _dump(spec) for name, spec in task.labels.items()},
            "shots_file": task.seeds,
            "label_column": task.label_column,
        },
        ctx.recipe.templates,
    )
    header, suffix, *_ = annotate.header(prompt_style(slot.teacher, slot.style))
    name = f"{slot.teacher.backend}:{slot.teacher.model}"
    return TeacherClassifier(slot.teacher, list(task.labels), header, suffix), name


def teacher_view(
    ctx: RunContext, texts: list[str], wanted: list[bool]
) -> tuple[list[dict | None] | None, dict[str, Any]]:
    """The teacher's label distributions for the `wanted` pool texts, or None when it is
    not clearly above chance on the validation texts (the seeds without validation).

    Its skill is weighed as label evidence weighs it (`critics.evidence`: chance-corrected
    balanced accuracy; 0 gets no vote), plus a margin: accuracy >= 1/k + MARGIN.
    """
    import numpy as np

    from synthkd.critics.evidence import _skill

    judged = ctx.inputs.validation if ctx.inputs.validation is not None else ctx.inputs.real
    labels = ctx.labels
    info: dict[str, Any] = {"used": False, "judged_on": len(judged)}
    try:
        classifier, info["name"] = _teacher_classifier(ctx)
    except SynthkdError as exc:
        return None, {**info, "why": f"no teacher: {exc}"}
    try:
        proba = classifier.predict_proba(judged["text"].tolist())
        index = {name: i for i, name in enumerate(labels)}
        truth = np.asarray([index[label] for label in judged["label"]])
        guess = np.where(proba.sum(axis=1) > 0, proba.argmax(axis=1), -1)
        accuracy = float((guess == truth).mean())
        skill = _skill(truth, guess, len(labels))
        info.update(accuracy=round(accuracy, 4), skill=round(skill, 4))
        if skill <= 0 or accuracy < 1 / len(labels) + MARGIN:
            info["why"] = f"accuracy {accuracy:.3f} is not above chance + {MARGIN}"
            return None, info
        asked = [t for t, w in zip(texts, wanted, strict=True) if w]
        rows = iter(classifier.predict_proba(asked) if asked else [])
        dists: list[dict | None] = [
            dict(zip(labels, map(float, next(rows)), strict=True)) if w else None for w in wanted
        ]
    finally:
        classifier.close()
    info.update(used=True, asked=len(asked))
    return dists, info


def _record(ctx: RunContext, round: int, found: dict, row: int, teacher: str | None) -> dict:
    from synthkd.critics.pool import SOURCE
    from synthkd.data import Lineage, make_record

    digest = hashlib.sha256(found["text"].encode("utf-8")).hexdigest()[:16]
    lineage = Lineage(
        recipe=ctx.name,
        round=round,
        teacher_backend="self-training",
        teacher_model="frozen MiniLM head" + (f" + {teacher}" if teacher else ""),
        template_hash=SOURCE,
        sampling={},
        sample_key=f"{SOURCE}:{digest}",
        raw_completion="",
    )
    content = {
        "text": found["text"],
        "label": found["label"],
        "soft_labels": found["soft_labels"],
        "teacher_confidence": found["teacher_confidence"],
        "meta": {"source": SOURCE, "row": row, "round": round},
    }
    return make_record("labelled", content, lineage)


def pool_round(ctx: RunContext, round: int) -> dict[str, Any] | None:
    """Label the unlabelled pool and let it join ROUND if CV does not drop; None when the
    recipe is not labelled or names no pool (nothing changes then)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from synthkd.critics.pool import SOURCE, label_pool
    from synthkd.stages.fold_evidence import FoldEvidence
    from synthkd.training import SelectionConfig, accept_round, labelled_examples
    from synthkd.training.frozen import frozen_student

    if ctx.task_kind != "labelled" or not ctx.inputs.unlabelled or ctx.inputs.real is None:
        return None
    started = time.perf_counter()
    run = ctx.stores()
    table = run.corpus.read(columns=["id", "round", "text", "label", "soft_labels", "meta"])
    pooled = [_source(m) == SOURCE for m in table["meta"].to_pylist()]
    generated = table.filter(pa.array([not p for p in pooled], pa.bool_()))
    # a rerun of this round sees its own pool rows as not there yet (same candidates, known
    # ids skipped); pool texts an earlier round took (a continued run) are in the corpus
    columns = (table["text"].to_pylist(), pooled, table["round"].to_pylist())
    earlier = [text for text, p, r in zip(*columns, strict=True) if not p or r != round]
    chosen, dropped = pool_texts(ctx, {str(t).strip() for t in earlier})
    real = real_examples(ctx)
    this_round = generated.filter(pc.equal(generated["round"], round)).sort_by("id")
    rows = this_round.select(["round", "text", "label", "soft_labels", "meta"]).to_pylist()
    result: dict[str, Any] = {"pool_texts": len(chosen), "left_out": dropped}
    if not chosen or not _decisions_possible(ctx, real):
        why = "no new pool text" if not chosen else "too few real examples per label for CV"
        return {
            **result,
            "candidates": 0,
            "joined": False,
            "why": why,
            "seconds": round_seconds(started),
        }
    texts = [text for _, text in chosen]
    embed = shared_embeddings()
    train = labelled_examples(real.to_dict("records") + rows, what="the pool's classifier data")
    proba = frozen_student(train, ctx.labels, embed).predict_proba(texts)
    sure = [float(p.max()) >= MIN_CONFIDENCE for p in proba]  # the teacher is asked only here
    teacher, info = teacher_view(ctx, texts, sure)
    found = label_pool(
        texts, proba, ctx.labels, teacher, min_confidence=MIN_CONFIDENCE, loop_round=round
    )
    result.update(
        candidates=len(found),
        per_label=dict(sorted(Counter(r["label"] for r in found).items())),
        teacher=info,
    )
    if not found:
        return {**result, "joined": False, "seconds": round_seconds(started)}
    config = SelectionConfig(folds=ctx.recipe.loop.cv_folds, seed=ctx.seed)
    new = [
        {**{k: r[k] for k in ("text", "label", "soft_labels", "meta")}, "round": round}
        for r in found
    ]
    judge = FoldEvidence(ctx).corpus  # each fold labels the pool (and the round) itself
    decision = accept_round(
        rows or None, new, real, ctx.labels, embed=embed, config=config, judge=judge
    )
    result.update(
        cv_before=float(f"{decision.before:.4f}"),
        cv_after=float(f"{decision.after:.4f}"),
        metric=config.metric,
        joined=decision.accepted,
    )
    appended = 0
    if decision.accepted:
        file_row = {text: row for row, text in chosen}
        teacher_name = info.get("name") if info.get("used") else None
        records = [_record(ctx, round, r, file_row[r["text"]], teacher_name) for r in found]
        known = run.corpus.ids()
        fresh = [r for r in records if r["id"] not in known]
        if fresh:
            meta = {"round": round, "stage": "unlabelled pool"}
            run.corpus.append(fresh, f"unlabelled pool {ctx.name} round {round}", meta)
        appended = len(fresh)
    return {**result, "appended": appended, "seconds": round_seconds(started)}


__all__ = ["pool_round", "pool_texts", "teacher_view"]
