"""Which student a labelled run ships: the cross-validation winner among the students of the
user's real examples and the corpus + real ones, unless the loop's student is clearly
better on the same real examples.

- The CV winner (`stages.real_only_rival`): every candidate is scored out-of-fold on the
  user's real examples, and a corpus + real candidate sees the corpus as each training
  fold's own label evidence decides it, so no held-out example voted for its training
  labels. A corpus + real winner also needs a CV accuracy no lower than the best student
  of the user's own texts (candidates are ranked by CV macro-F1). On the six-label
  newsgroups task it won (CV 0.748 against 0.722) and scored 0.744 on the test split
  against 0.728; an exact McNemar test on one CV repeat (4 against 2) had held it back.
- The loop's student is judged on the validation file's rows, against the CV winner's
  out-of-fold predictions on them, and ships only when an exact one-sided McNemar test over
  the rows where the two disagree gives p <= `loop.ship_alpha`. Its validation figures
  lean optimistic: the label evidence decided its corpus labels with those same rows. Ahead
  on more rows was not enough: 19 against 17 of 180 on newsgroups, then 0.686 on the test
  split (Reuters: 3 against 3 of 145, then 0.825 against 0.943). On news it was 7 against
  1 of 250 (p = 0.035), and 0.973 on the test articles against the real-only student's
  0.947. Comparing one student's validation accuracy with another's CV accuracy chose by
  noise (tweets: a 0.654 against 0.651 lead shipped a student 6 points worse on test).
"""

from __future__ import annotations

from typing import Any

LOOP_NAME = "the loop's student (corpus + your examples)"


def paired(challenger: list | None, incumbent: list | None) -> dict[str, Any] | None:
    """McNemar's exact test on two students' per-example correctness (1, 0, None: not
    scored): `better` (right where the incumbent was wrong), `worse`, `examples` both were
    scored on, and the one-sided `p` that the challenger is not more accurate. None when
    either has no per-example record."""
    from scipy.stats import binomtest

    if challenger is None or incumbent is None or len(challenger) != len(incumbent):
        return None
    both = [(a, b) for a, b in zip(challenger, incumbent, strict=True) if None not in (a, b)]
    better = sum(1 for a, b in both if a and not b)
    worse = sum(1 for a, b in both if b and not a)
    p = binomtest(better, better + worse, 0.5, alternative="greater").pvalue if better else 1.0
    return {"better": better, "worse": worse, "examples": len(both), "p": round(float(p), 4)}


def _option(source: str, which: str, path: str, acc: float, f1: float, judged: str) -> dict:
    return {
        "from": source,
        "which": which,
        "path": path,
        "accuracy": acc,
        "macro_f1": f1,
        "judged": judged,
    }


def _said(test: dict) -> str:
    return (
        f"right where the other was wrong on {test['better']}, wrong where it was right on "
        f"{test['worse']}, of {test['examples']} examples (one-sided McNemar p = {test['p']:.3f})"
    )


def choose_shipped(
    loop: dict[str, Any], rival: dict[str, Any] | None, allow: bool, alpha: float = 0.1
) -> dict:
    """{which, why, path, accuracy, macro_f1, from, paired} for the student to ship.

    LOOP: the loop's kept student (path, val_accuracy, val_macro_f1, val_correct). RIVAL:
    the result of `real_only_rival` (None: no real examples to cross-validate). ALLOW: the
    recipe's `loop.ship_real_only`; off, the loop's student ships. ALPHA: `loop.ship_alpha`,
    the largest McNemar p-value at which the loop's student replaces the CV winner.
    Without per-example records (no validation file), accuracies are compared: the higher
    one ships, a tie going to the student that used the corpus.
    """
    loop_acc = loop["val_accuracy"]
    mine = _option(
        "loop", LOOP_NAME, loop["path"], loop_acc, loop["val_macro_f1"],
        f"validation accuracy {loop_acc:.3f}",
    )  # fmt: skip
    if not rival:
        why = (
            "no real-examples-only rival: an annotate recipe, or under two real examples per label"
        )
        return {**mine, "why": why, "paired": {}}
    n = rival["real_examples"]
    real = _option(
        "real_only", rival["name"], rival["path"], rival["cv_accuracy"], rival["cv_macro_f1"],
        f"cross-validated accuracy {rival['cv_accuracy']:.3f}",
    )  # fmt: skip
    best = rival.get("cv_best")
    corpus = best and _option(
        "cv_best", best["name"], best["path"], best["cv_accuracy"], best["cv_macro_f1"],
        f"cross-validated accuracy {best['cv_accuracy']:.3f}",
    )  # fmt: skip
    tests = {"loop vs real only": paired(loop.get("val_correct"), rival.get("val_correct"))}
    if best:
        tests["corpus + real vs real only"] = paired(best.get("correct"), rival.get("correct"))
        tests["loop vs corpus + real"] = paired(loop.get("val_correct"), best.get("val_correct"))
    tests = {k: v for k, v in tests.items() if v is not None}
    others = "; ".join(o["which"] + ": " + o["judged"] for o in (mine, corpus, real) if o)
    if not allow:
        why = f"loop.ship_real_only is off (over your {n} real examples: {others})"
        return {**mine, "why": why, "paired": tests}
    if "loop vs real only" not in tests:  # no validation file: no common examples
        chosen = max([mine, corpus, real] if corpus else [mine, real], key=lambda o: o["accuracy"])
        why = f"its {chosen['judged']} is the highest (over your {n} real examples: {others})"
        return {**chosen, "why": why, "paired": tests}

    winner, against = real, "loop vs real only"
    if corpus and corpus["accuracy"] >= real["accuracy"] and "loop vs corpus + real" in tests:
        winner, against = corpus, "loop vs corpus + real"
    vs = tests[against]
    if vs["p"] <= alpha:
        chosen = mine
        why = f"on the validation examples, against {winner['which']}, it was {_said(vs)}"
    else:
        chosen = winner
        why = (
            f"it won the cross-validation over your real examples, and the loop's student did "
            f"not clearly beat it on the validation examples: it was {_said(vs)}, above "
            f"loop.ship_alpha = {alpha:g}"
        )
    why += f" (over your {n} real examples: {others})"
    return {**chosen, "why": why, "paired": tests}


__all__ = ["LOOP_NAME", "choose_shipped", "paired"]
