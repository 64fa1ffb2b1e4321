"""The honest rival: what the user's own examples give alone, and the untouched test figure.

A distilled student must beat a student trained on the user's real examples only, or the
corpus added nothing. So every labelled run:
- ranks frozen-MiniLM + logistic head, linear TF-IDF and contrastively tuned MiniLM +
  logistic head (SetFit-style) students, on the real examples only and on corpus + real,
  by k-fold cross-validation over the real examples (`synthkd.training.select_student`):
  does the corpus add anything, and which student kind suits this little data? With an
  `unlabelled:` pool each real-only kind is also scored self-trained on it ("real+pool":
  each fold's own student labels the pool, `training.self_training`), the user's own
  texts still, no generated one;
- fits the best student on the user's own texts, and the corpus + real CV winner when that
  used the corpus; `flows.shipping.choose_shipped` decides which of them, or the loop's
  student, ships, and the summary says which and why;
- scores the shipped student, and both contenders, on the recipe's `test:` file, which
  no other part of the run reads.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from synthkd.stages.context import RunContext
from synthkd.stages.evidence import real_examples, shared_embeddings
from synthkd.stages.fold_evidence import FoldEvidence
from synthkd.stages.pool import pool_texts
from synthkd.stages.student import corpus_table, on_validation_rows


def _corpus_records(ctx: RunContext) -> list[dict[str, Any]]:
    """Every corpus row the critic accepted, whichever round (with `round` and `meta`, so
    `FoldEvidence` can decide each fold's labels)."""
    table = corpus_table(ctx.stores().corpus.read())
    columns = [
        c for c in ("round", "text", "label", "soft_labels", "meta") if c in table.column_names
    ]
    return table.select(columns).to_pylist()


def _pool(ctx: RunContext) -> list[str] | None:
    """The recipe's unlabelled texts (as the pool stage takes them: deduplicated, no real
    example, at most `unlabelled_max`), for the self-trained candidates; None without."""
    if not ctx.inputs.unlabelled:
        return None
    kept, _ = pool_texts(ctx, set())
    return [text for _, text in kept] or None


def _rival_name(best: Any) -> str:
    if best.data == "real+pool":
        return f"real examples + self-labelled unlabelled texts ({best.kind})"
    return f"real examples only ({best.kind})"


def _on_validation(ctx: RunContext, real: Any, correct: list | None) -> list | None:
    """Out-of-fold correctness (per real example) on the validation file's rows: what the
    loop's student is paired with."""
    if correct is None:
        return None
    return on_validation_rows(ctx, dict(zip(real["text"], correct, strict=True)))


def real_only_rival(ctx: RunContext, out_dir: Path) -> dict[str, Any] | None:
    """CV ranking (corpus + real vs real only) and the best real-only student, saved;
    `cv_best` is the CV winner when it used the corpus (saved beside, `<out_dir>-cv-best`),
    else None. `plain_lr_cv_accuracy`: the plain rival (frozen MiniLM + LR, real only).
    None when some label has fewer than two real examples (nothing to cross-validate), or
    for annotate recipes, whose validation is teacher-labelled: no common yardstick."""
    from synthkd.training import Selection, SelectionConfig, fit_best, select_student

    if ctx.task_kind != "labelled":  # annotate: the loop's validation is teacher-labelled
        return None
    started = time.perf_counter()
    real = real_examples(ctx)
    counts = real["label"].value_counts()
    if len(counts) < 2 or counts.min() < 2 or set(ctx.labels) - set(counts.index):
        return None
    config = SelectionConfig(
        folds=ctx.recipe.loop.cv_folds,
        candidates=tuple(ctx.recipe.loop.rival_students),
        # each contrastive fold tunes the encoder (a minute on 2 cores): 3 folds bound it
        contrastive_folds=min(3, ctx.recipe.loop.cv_folds),
        tune_below=ctx.recipe.loop.rival_tune_below,
        seed=ctx.seed,
    )
    embed = shared_embeddings()
    corpus = _corpus_records(ctx) or None
    pool = _pool(ctx)
    # CV sees the corpus as each training fold's own evidence labels it (no leak: a frozen
    # corpus + real student leaning on leaky CV once shipped 0.575 on tweets' test split
    # against the tuned real-only student's 0.645); the winner is refitted on the rows
    judged = FoldEvidence(ctx).corpus(corpus) if corpus else None
    selection = select_student(real, judged, ctx.labels, embed=embed, config=config, pool=pool)
    best_real = selection.without_corpus
    only_real = Selection(ranking=[best_real], metric=selection.metric)
    fit_best(
        only_real, real, None, ctx.labels, embed=embed, config=config, out_dir=out_dir, pool=pool
    )
    cv_best = None
    if selection.best.data == "corpus+real":  # corpus + real beat every student of your own by CV
        best_dir = out_dir.parent / f"{out_dir.name}-cv-best"
        fit_best(selection, real, corpus, ctx.labels, embed=embed, config=config, out_dir=best_dir)
        best = selection.best
        cv_best = {
            "path": str(best_dir),
            "name": f"corpus + your examples ({best.kind}, chosen by CV)",
            "cv_accuracy": best.accuracy,
            "cv_macro_f1": best.macro_f1,
            "correct": best.correct,
            "val_correct": _on_validation(ctx, real, best.correct),
        }
    corpus_best = next(
        (c for c in selection.ranking if c.data == "corpus+real" and not c.skipped), None
    )
    plain = next((c for c in selection.ranking if c.name == "frozen/real"), None)
    return {
        "path": str(out_dir),
        "name": _rival_name(best_real),
        "cv_accuracy": best_real.accuracy,
        "cv_macro_f1": best_real.macro_f1,
        "corpus_cv_accuracy": corpus_best.accuracy if corpus_best else None,
        "corpus_cv_macro_f1": corpus_best.macro_f1 if corpus_best else None,
        "plain_lr_cv_accuracy": plain.accuracy if plain else None,
        "cv_best": cv_best,
        "correct": best_real.correct,
        "val_correct": _on_validation(ctx, real, best_real.correct),
        "real_examples": len(real),
        "pool_texts": len(pool or []),
        "corpus_rows": len(corpus or []),
        "selection": selection.to_dict(),
        "seconds": round(time.perf_counter() - started, 2),
    }


def score_test(ctx: RunContext, models: dict[str, str]) -> dict[str, Any] | None:
    """Each model folder on the recipe's untouched `test:` file; None without one."""
    from synthkd.training import evaluate, load_student

    test = ctx.inputs.test
    if test is None or not len(test):
        return None
    texts, labels = test["text"].tolist(), test["label"].tolist()
    scored = {}
    for name, folder in models.items():
        report = evaluate(load_student(folder), texts, labels, latency_samples=0)
        scored[name] = {"accuracy": report.accuracy, "macro_f1": report.macro_f1}
    return {"file": str(ctx.recipe.task.test), "examples": len(texts), "models": scored}
