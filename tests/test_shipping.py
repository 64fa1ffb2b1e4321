"""Which student a labelled run ships (issue 13): the cross-validation winner (a student
of the user's real examples, or a corpus + real one), unless the loop's student is clearly
better on the same real examples; never for a higher score on other examples."""

from __future__ import annotations

from synthkd.flows.shipping import LOOP_NAME, choose_shipped, paired

N = 60  # validation rows; the real examples are 10 seeds + these 60


def loop(val_correct: list | None, accuracy: float | None = None) -> dict:
    if accuracy is None:
        accuracy = sum(val_correct) / len(val_correct)
    return {
        "path": "rounds/0/student",
        "val_accuracy": accuracy,
        "val_macro_f1": accuracy - 0.01,
        "val_correct": val_correct,
    }


def rights(wrong: int, n: int = N) -> list[int]:
    """Per-example correctness: the first WRONG examples wrong."""
    return [0] * wrong + [1] * (n - wrong)


def rival(val_correct, seeds_correct=None, corpus_correct=None, corpus_val=None) -> dict:
    seeds_correct = seeds_correct or [1] * 10
    real = seeds_correct + list(val_correct)
    best = None
    if corpus_correct is not None:
        acc = sum(corpus_correct) / len(corpus_correct)
        best = {
            "path": "rounds/real-only-cv-best",
            "name": "corpus + your examples (frozen, chosen by CV)",
            "cv_accuracy": acc,
            "cv_macro_f1": acc - 0.01,
            "correct": corpus_correct,
            "val_correct": corpus_val if corpus_val is not None else corpus_correct[10:],
        }
    acc = sum(v for v in real if v is not None) / sum(v is not None for v in real)
    return {
        "path": "rounds/real-only",
        "name": "real examples only (contrastive)",
        "cv_accuracy": acc,
        "cv_macro_f1": acc - 0.01,
        "real_examples": len(real),
        "cv_best": best,
        "correct": real,
        "val_correct": list(val_correct),
    }


def test_mcnemar_counts_and_exact_p_value():
    challenger = [1] * 7 + [0] * 2 + [1] * 50 + [None]
    incumbent = [0] * 7 + [1] * 2 + [1] * 50 + [0]
    test = paired(challenger, incumbent)
    assert (test["better"], test["worse"], test["examples"]) == (7, 2, 59)
    assert abs(test["p"] - 46 / 512) < 1e-4  # P(X >= 7), X ~ Binomial(9, 1/2)
    assert paired([1, 1], [1, 1])["p"] == 1.0 and paired(None, [1]) is None


def test_the_real_only_student_ships_when_the_loop_student_is_behind_it():
    pick = choose_shipped(loop(rights(5)), rival(rights(3)), True)  # 0 against 2
    assert pick["from"] == "real_only" and pick["path"] == "rounds/real-only"
    assert pick["paired"]["loop vs real only"] == {
        "better": 0,
        "worse": 2,
        "examples": 60,
        "p": 1.0,
    }
    assert "wrong where it was right on 2" in pick["why"]  # the loop student's 2 misses
    assert "validation accuracy 0.917" in pick["why"]  # what it beat, by which yardstick


def test_the_loop_student_ships_only_when_clearly_better_where_they_disagree():
    def leads(better: int, worse: int, n: int) -> tuple[list[int], list[int]]:
        same = n - better - worse
        return [1] * better + [0] * worse + [1] * same, [0] * better + [1] * worse + [1] * same

    # news: 7 against 1 of 250 (p = 0.035); 0.973 on the test articles against 0.947
    loop_right, real_right = leads(7, 1, 250)
    pick = choose_shipped(loop(loop_right), rival(real_right), True)
    assert pick["which"] == LOOP_NAME and "McNemar p = 0.035" in pick["why"]
    # newsgroups6: 19 against 17 of 180 is a lead, not evidence (0.686 on the test split
    # against 0.728 for the student of the user's own texts)
    loop_right, real_right = leads(19, 17, 180)
    pick = choose_shipped(loop(loop_right), rival(real_right), True)
    assert pick["from"] == "real_only" and "did not clearly beat it" in pick["why"]
    assert "McNemar p = 0.434" in pick["why"] and "loop.ship_alpha = 0.1" in pick["why"]
    # the same lead ships the loop's student at alpha 0.5
    assert choose_shipped(loop(loop_right), rival(real_right), True, alpha=0.5)["from"] == "loop"
    # Reuters: 3 against 3 of 145, and 0.825 on test against the real-only student's 0.943
    tie = choose_shipped(loop([1] * 3 + [0] * 3 + [1] * 54), rival([0] * 3 + [1] * 57), True)
    assert tie["from"] == "real_only"
    assert choose_shipped(loop(rights(2)), rival(rights(2)), True)["from"] == "real_only"


def test_a_corpus_plus_real_cv_winner_ships_unless_the_loop_student_clearly_beats_it():
    # newsgroups6: corpus + real won the CV (0.748 against 0.722), the loop's student was
    # not clearly better on the validation rows, and the CV winner was best on test
    real_only = rights(12, 70)
    corpus = [1] * 4 + [0] * 2 + [1] * 6 + [1] * 58  # 10 misses of 70: CV 0.857 > 0.829
    pick = choose_shipped(loop(rights(12)), rival(real_only[10:], real_only[:10], corpus), True)
    assert pick["from"] == "cv_best" and "won the cross-validation" in pick["why"]
    assert pick["paired"]["corpus + real vs real only"]["better"] == 10
    assert pick["paired"]["loop vs corpus + real"]["p"] > 0.1
    # a corpus + real winner by macro-F1 with a lower CV accuracy does not ship
    worse = [1] * 10 + [0] * 13 + [1] * 47
    pick = choose_shipped(loop(rights(20)), rival(real_only[10:], real_only[:10], worse), True)
    assert pick["from"] == "real_only"


def test_the_loop_student_replaces_the_cv_winner_only_when_clearly_better():
    corpus = [1] * 10 + [0] * 9 + [1] * 51  # misses 9 of the 60 validation rows
    pick = choose_shipped(loop(rights(0)), rival(rights(18), None, corpus), True)
    assert pick["from"] == "loop"  # right on all 9 of the CV winner's misses
    assert "McNemar p = 0.002" in pick["why"] and "corpus + your examples" in pick["why"]
    pick = choose_shipped(loop(rights(8)), rival(rights(18), None, corpus), True)
    assert pick["from"] == "cv_best"  # 1 against 0 over it: no evidence


def test_ship_real_only_off_no_rival_and_no_validation_file():
    pick = choose_shipped(loop(rights(10)), rival(rights(0)), False)
    assert pick["which"] == LOOP_NAME and "ship_real_only is off" in pick["why"]
    assert choose_shipped(loop(rights(10)), None, True)["which"] == LOOP_NAME
    # no validation file (the loop validated on a split of its corpus): no common
    # examples, so accuracies are compared; a tie goes to the distilled student
    unpaired = {**rival(rights(9)), "val_correct": None}  # CV 0.871
    assert choose_shipped(loop(None, 0.90), unpaired, True)["from"] == "loop"
    assert choose_shipped(loop(None, 0.85), unpaired, True)["from"] == "real_only"
