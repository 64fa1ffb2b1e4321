"""Which student a labelled run ships (issue 13): never one worse than the user's own
examples by the run's own yardsticks, and a distilled one wherever it is as good."""

from __future__ import annotations

from synthkd.flows.shipping import LOOP_NAME, choose_shipped

LOOP = {"path": "rounds/0/student", "val_accuracy": 0.90, "val_macro_f1": 0.89}


def rival(real: float, corpus: float | None = None) -> dict:
    best = None
    if corpus is not None:
        best = {
            "path": "rounds/real-only-cv-best",
            "name": "corpus + your examples (frozen, chosen by CV)",
            "cv_accuracy": corpus,
            "cv_macro_f1": corpus - 0.01,
        }
    return {
        "path": "rounds/real-only",
        "name": "real examples only (frozen)",
        "cv_accuracy": real,
        "cv_macro_f1": real - 0.01,
        "real_examples": 70,
        "cv_best": best,
    }


def test_the_most_accurate_ships_and_a_tie_goes_to_the_distilled_student():
    assert choose_shipped(LOOP, rival(0.85), True)["which"] == LOOP_NAME
    assert choose_shipped(LOOP, rival(0.90), True)["which"] == LOOP_NAME  # a tie
    pick = choose_shipped(LOOP, rival(0.95), True)
    assert pick["from"] == "real_only" and pick["path"] == "rounds/real-only"
    assert pick["accuracy"] == 0.95 and "cross-validated accuracy 0.950" in pick["why"]
    assert "validation accuracy 0.900" in pick["why"]  # what it beat, and by which yardstick
    pick = choose_shipped(LOOP, rival(0.92, corpus=0.94), True)
    assert (
        pick["from"] == "cv_best"
        and pick["macro_f1"] == rival(0, corpus=0.94)["cv_best"]["cv_macro_f1"]
    )
    pick = choose_shipped(LOOP, rival(0.94, corpus=0.94), True)  # corpus + real first
    assert pick["from"] == "cv_best"
    # corpus + real must beat the loop's student by more than the loop's epsilon ...
    assert choose_shipped(LOOP, rival(0.80, corpus=0.903), True, 0.005)["from"] == "loop"
    # ... yet nothing ships below the real-examples-only student
    assert choose_shipped(LOOP, rival(0.902, corpus=0.903), True, 0.005)["from"] == "cv_best"
    assert choose_shipped(LOOP, rival(0.904, corpus=0.903), True, 0.005)["from"] == "real_only"


def test_ship_real_only_off_keeps_the_loop_student_and_says_why():
    pick = choose_shipped(LOOP, rival(0.95, corpus=0.97), False)
    assert pick["which"] == LOOP_NAME and "ship_real_only is off" in pick["why"]
    assert choose_shipped(LOOP, None, True)["which"] == LOOP_NAME
