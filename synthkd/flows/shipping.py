"""Which student a labelled run ships: the loop's student when it beats the student trained
on the user's real examples only on the same real examples, else that one; the best corpus +
real student by CV when clearly better than either.

Comparing one student's validation accuracy with another's cross-validated accuracy chose
by noise (tweets: a 0.654 against 0.651 CV lead shipped a student 6 points worse on the
untouched test split). So students are compared example by example; `stages.real_only_rival`
keeps each candidate's out-of-fold predictions:
- the loop's student on the validation file's rows against the real-only student's
  out-of-fold predictions on those rows: the loop's student ships only when right more
  often where the two disagree. A tie is not beating your own examples (Reuters: 3 against
  3 of 145, then 0.825 on the test split against the real-only student's 0.943);
- the best corpus + real student by CV won a contest among several candidates on these
  same examples, so its lead over the incumbent (the loop's student on the validation rows,
  or the real-only one on every real example) must pass an exact one-sided McNemar test,
  p <= `loop.ship_alpha`.
On news the loop's student was 6 against 5 of 250 validation leads and 0.987 on the test
articles against the real-only student's 0.947; requiring it to pass the McNemar test as
well shipped the real-only one there.
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
    recipe's `loop.ship_real_only`; off, the loop's student ships. ALPHA: `loop.ship_alpha`.
    Without per-example records (no validation file), accuracies are compared as before:
    the higher one ships, a tie going to the student that used the corpus.
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
        tests["corpus + real vs loop"] = paired(best.get("val_correct"), loop.get("val_correct"))
    tests = {k: v for k, v in tests.items() if v is not None}
    others = "; ".join(o["which"] + ": " + o["judged"] for o in (mine, corpus, real) if o)
    if not allow:
        why = f"loop.ship_real_only is off (over your {n} real examples: {others})"
        return {**mine, "why": why, "paired": tests}
    if "loop vs real only" not in tests:  # no validation file: no common examples
        chosen = max([mine, corpus, real] if corpus else [mine, real], key=lambda o: o["accuracy"])
        why = f"its {chosen['judged']} is the highest (over your {n} real examples: {others})"
        return {**chosen, "why": why, "paired": tests}

    def wins(name: str) -> bool:
        return name in tests and tests[name]["p"] <= alpha

    vs_real = tests["loop vs real only"]
    chosen = mine
    why = f"on the validation examples, against the real-only student, it was {_said(vs_real)}"
    if vs_real["worse"] >= vs_real["better"]:  # it must beat your own examples
        chosen = real
        real_vs_loop = paired(rival["val_correct"], loop["val_correct"])
        why = f"against the loop's student it was {_said(real_vs_loop)}"
    # the corpus + real student won a CV contest among several candidates on these same
    # examples: its lead must be more than that contest's luck
    if corpus and chosen is mine and wins("corpus + real vs loop"):
        chosen = corpus
        why = f"against the loop's student it was {_said(tests['corpus + real vs loop'])}"
    elif corpus and chosen is real and wins("corpus + real vs real only"):
        chosen = corpus
        why = f"against the real-only student it was {_said(tests['corpus + real vs real only'])}"
    why += f" (over your {n} real examples: {others})"
    return {**chosen, "why": why, "paired": tests}


__all__ = ["LOOP_NAME", "choose_shipped", "paired"]
