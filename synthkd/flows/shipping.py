"""Which student a labelled run ships: the loop's student, the best corpus + real student
by cross-validation, or the best student on the user's real examples only.

The loop's student is judged on the validation examples it was not trained on; the other
two by k-fold CV over all the real examples (`stages.real_only_rival`). The corpus + real
student replaces the loop's only when more accurate by more than the loop's `epsilon` (the
loop's own "better"; the loop's student has an int8 and a static copy); a real-only student
ships only when more accurate than the distilled pick, so the shipped student is never
below the user's own examples by these yardsticks, and a tie goes to the distilled one.
"""

from __future__ import annotations

from typing import Any

LOOP_NAME = "the loop's student (corpus + your examples)"


def choose_shipped(
    loop: dict[str, Any], rival: dict[str, Any] | None, allow: bool, epsilon: float = 0.0
) -> dict:
    """{which, why, path, accuracy, macro_f1, from} for the student to ship.

    LOOP: the loop's kept student (path, val_accuracy, val_macro_f1). RIVAL: the result
    of `real_only_rival` (None: no real examples to cross-validate). ALLOW: the recipe's
    `loop.ship_real_only`; off, the loop's student ships whatever the CV says. EPSILON:
    the recipe's `loop.epsilon`.
    """
    loop_acc = loop["val_accuracy"]
    options = [
        {
            "from": "loop",
            "which": LOOP_NAME,
            "path": loop["path"],
            "accuracy": loop_acc,
            "macro_f1": loop["val_macro_f1"],
            "judged": f"validation accuracy {loop_acc:.3f}",
        }
    ]
    if rival:
        best = rival.get("cv_best")
        if best:
            options.append(
                {
                    "from": "cv_best",
                    "which": best["name"],
                    "path": best["path"],
                    "accuracy": best["cv_accuracy"],
                    "macro_f1": best["cv_macro_f1"],
                    "judged": f"cross-validated accuracy {best['cv_accuracy']:.3f}",
                }
            )
        options.append(
            {
                "from": "real_only",
                "which": rival["name"],
                "path": rival["path"],
                "accuracy": rival["cv_accuracy"],
                "macro_f1": rival["cv_macro_f1"],
                "judged": f"cross-validated accuracy {rival['cv_accuracy']:.3f}",
            }
        )
    if not rival:
        why = (
            "no real-examples-only rival: an annotate recipe, or under two real examples per label"
        )
        return {**options[0], "why": why}
    found = {o["from"]: o for o in options}
    chosen, corpus, real = found["loop"], found.get("cv_best"), found["real_only"]
    if allow and corpus and corpus["accuracy"] > chosen["accuracy"] + epsilon:
        chosen = corpus
    if allow and real["accuracy"] > chosen["accuracy"]:  # never below your own examples
        chosen = corpus if corpus and corpus["accuracy"] >= real["accuracy"] else real
    others = "; ".join(f"{o['which']}: {o['judged']}" for o in options if o is not chosen)
    n = rival["real_examples"]
    if not allow and max(o["accuracy"] for o in options) > loop_acc:
        why = f"loop.ship_real_only is off (over your {n} real examples: {others})"
    else:
        why = f"its {chosen['judged']} is the highest (over your {n} real examples: {others})"
    return {**chosen, "why": why}


__all__ = ["LOOP_NAME", "choose_shipped"]
