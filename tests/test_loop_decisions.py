"""Guided rounds must not hurt: a round's records join only if CV over the real examples
does not drop, and the critic's cut is chosen the same way (issue 13).

Real Delta corpus, real MiniLM embeddings, real scikit-learn CV; the records are
hand-written news leads (tests/fixtures/critic_news.csv), some given the wrong label.
"""

from __future__ import annotations

from synthkd import stages
from tests.fixtures.critic_data import labelled, news
from tests.fixtures.fake_teacher import LABELS, labelled_recipe


def _rows(round: int, wrong: bool, part: slice) -> list[dict]:
    other = {"sport": "tech", "tech": "sport"}
    items = [item for item in news() if item["label"] in LABELS]
    by_label = {label: [i for i in items if i["label"] == label][part] for label in LABELS}
    return [
        labelled(item["text"], other[label] if wrong else label, f"r{round}-{n}", round)
        for label, chosen in by_label.items()
        for n, item in enumerate(chosen)
    ]


def test_a_round_of_wrong_labels_is_turned_down_and_a_good_one_joins(tmp_path):
    recipe = labelled_recipe(tmp_path, student="linear")
    ctx = stages.open_context(recipe, tmp_path / "run")
    corpus = ctx.stores().corpus
    corpus.append(_rows(0, False, slice(0, 7)), "round 0")
    corpus.append(_rows(1, True, slice(7, 14)), "round 1: every label wrong")
    corpus.append(_rows(2, False, slice(14, 20)), "round 2")

    first = stages.round_decision(ctx, 0, [], use_cut=False)
    assert first["accepted"] and first["rounds"] == [0] and first["before"] is None

    wrong = stages.round_decision(ctx, 1, [0], use_cut=False)
    assert not wrong["accepted"], wrong
    assert wrong["after"] < wrong["before"] and wrong["rounds"] == [0]

    good = stages.round_decision(ctx, 2, wrong["rounds"], use_cut=False)
    assert good["accepted"] and good["rounds"] == [0, 2], good

    # the training set the loop's student sees follows the decision
    frame = stages.training_frame(ctx, corpus.read(), round=2, rounds=good["rounds"])
    texts = set(frame["text"])
    assert not texts & {row["text"] for row in _rows(1, True, slice(7, 14))}
    assert {row["text"] for row in _rows(2, False, slice(14, 20))} <= texts


def test_the_cut_is_chosen_on_the_real_examples(tmp_path):
    recipe = labelled_recipe(tmp_path, student="linear")
    ctx = stages.open_context(recipe, tmp_path / "run")
    corpus = ctx.stores().corpus
    good, bad = _rows(0, False, slice(0, 12)), _rows(0, True, slice(12, 20))
    corpus.append(good + bad, "round 0: a third of the labels wrong")
    import pyarrow as pa

    # a critic that scores the wrong-label records low: the CV should take its cut
    scores = [0.9] * len(good) + [0.1] * len(bad)
    ids = [row["id"] for row in good + bad]
    corpus.update_scores(
        pa.table({"id": ids, "critic_score": scores, "accepted": [s > 0.5 for s in scores]}),
        "test-critic",
        "scores",
        threshold=0.5,
    )
    decision = stages.round_decision(ctx, 0, [], use_cut=True)
    assert decision["cut"]["chosen"] and decision["threshold"] > 0.1, decision
    assert decision["cut"]["best"] > decision["cut"]["no_cut"]
    frame = stages.training_frame(
        ctx, corpus.read(), round=0, rounds=decision["rounds"], threshold=decision["threshold"]
    )
    assert not set(frame["text"]) - {row["text"] for row in good} - set(ctx.inputs.real["text"])
