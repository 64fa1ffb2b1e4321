"""The trained critic on labelled fixtures: it ranks acceptable records first, its
threshold meets the target precision on held-out labels, corrupted records are rejected,
it is saved without pickle, and the per-label cut keeps the classes balanced."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import roc_auc_score

from synthkd.critics import (
    Critic,
    CriticConfig,
    LabelSet,
    accept_mask,
    apply_critic,
    auto_labels,
    labels_from_file,
    score,
    train_critic,
)
from synthkd.data import RunStore
from synthkd.errors import SynthkdError
from tests.fixtures.critic_data import labelled, news, news_corpus, write_label_csv

TARGET = 0.9


@pytest.fixture(scope="module")
def corpus_table(tmp_path_factory):
    """A real Delta corpus of 150 records: 100 correctly labelled, 50 label-swapped."""
    rows, accept = news_corpus()
    run = RunStore.create(tmp_path_factory.mktemp("critic") / "run", "labelled")
    run.corpus.append(rows, "round 0: generation")
    return run.corpus.read(), accept


@pytest.fixture(scope="module")
def human_critic(corpus_table, tmp_path_factory):
    table, accept = corpus_table
    root = tmp_path_factory.mktemp("human")
    labels_csv = write_label_csv(root / "labels.csv", table.to_pylist(), accept)
    labels = labels_from_file(labels_csv, table)
    return train_critic(labels, CriticConfig(target_precision=TARGET), root / "critic")


def test_critic_ranks_acceptable_records_first_and_meets_target_on_held_out(human_critic):
    critic = Critic.load(human_critic.path)
    assert critic.metrics["holdout_roc_auc"] > 0.85
    # Recompute from the saved held-out split: what a user would check.
    labels = pq.read_table(critic.path / "labels.parquet").to_pylist()
    held = [row for row in labels if row["split"] == "holdout"]
    assert len(held) >= 30 and {row["accept"] for row in held} == {0, 1}
    by_record = {(r["text"], r["label"]): r for r in news_corpus()[0]}
    records = [by_record[_parse_render(row["record"])] for row in held]
    y = np.array([row["accept"] for row in held])
    scores = score(critic, records)
    assert roc_auc_score(y, scores) > 0.85
    kept = scores >= critic.threshold
    assert kept.mean() > 0.3  # the cut keeps a useful share...
    assert y[kept].mean() >= TARGET  # ...at the target precision
    assert critic.metrics["target_met"] is True


def _parse_render(text: str) -> tuple[str, str]:
    label_line, text_line = text.split("\n", 1)
    return text_line.removeprefix("Text: "), label_line.removeprefix("Label: ")


def test_critic_is_saved_without_pickle_with_card_and_plot(human_critic):
    path = human_critic.path
    names = sorted(p.name for p in path.iterdir())
    assert names == [
        "README.md",
        "critic.json",
        "head.safetensors",
        "labels.parquet",
        "precision_yield.png",
    ]
    for file in path.iterdir():
        assert not file.read_bytes().startswith(b"\x80"), f"{file.name} looks like a pickle"
    assert (path / "precision_yield.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    card = (path / "README.md").read_text()
    assert human_critic.version in card
    assert f"{human_critic.threshold:.4f}" in card
    assert "| human | 100 | 50 |" in card
    assert "ROC-AUC" in card and "precision_yield.png" in card
    # The reloaded critic gives exactly the scores of the one that was trained.
    rows = news_corpus()[0][:40]
    reloaded = Critic.load(path)
    assert np.allclose(reloaded.score(rows), human_critic.score(rows), atol=1e-9)
    assert reloaded.version == human_critic.version


def test_saved_head_reproduces_sklearns_calibrated_probabilities():
    from sklearn.preprocessing import StandardScaler

    from synthkd.critics.head import LogisticHead, _calibrated

    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 12))
    y = (X[:, 0] + 0.5 * rng.normal(size=80) > 0).astype(int)
    head = LogisticHead.fit(X, y, seed=3)
    scaler = StandardScaler().fit(X)
    model = _calibrated(y, 3).fit(scaler.transform(X), y)
    X_new = rng.normal(size=(20, 12))
    expected = model.predict_proba(scaler.transform(X_new))[:, 1]
    assert np.allclose(head.predict(X_new), expected, atol=1e-10)


def test_corrupted_records_are_rejected_by_a_critic_trained_on_seeds(tmp_path):
    """Automatic labels: 8 seeds per label as positives, their label-swapped copies as
    negatives. The critic then judges 60 stories it never saw, each correctly labelled
    and label-swapped."""
    by_label: dict[str, list[dict]] = {}
    for item in news():
        by_label.setdefault(item["label"], []).append(item)
    seeds = [item for items in by_label.values() for item in items[:8]]
    unseen = [item for items in by_label.values() for item in items[8:]]
    critic = train_critic(auto_labels(seeds), CriticConfig(), tmp_path / "critic")
    assert critic.label_counts == {"auto": {"accept": 40, "reject": 40}}
    names = sorted(by_label)
    rng = np.random.default_rng(7)
    good = [labelled(item["text"], item["label"], f"good-{i}") for i, item in enumerate(unseen)]
    swapped = [
        labelled(
            item["text"], str(rng.choice([n for n in names if n != item["label"]])), f"bad-{i}"
        )
        for i, item in enumerate(unseen)
    ]
    config = CriticConfig(balance=False)
    scored = apply_critic(critic, good + swapped, config)
    accepted_good = np.mean([row["accepted"] for row in scored[: len(good)]])
    accepted_bad = np.mean([row["accepted"] for row in scored[len(good) :]])
    assert accepted_bad <= 0.15  # corrupted records are rejected...
    assert accepted_good >= 0.4  # ...while a useful share of good ones is kept...
    precision = accepted_good / (accepted_good + accepted_bad)
    assert precision >= 0.9  # ...at the target precision, on stories it never saw
    scores = np.array([row["critic_score"] for row in scored])
    y = np.r_[np.ones(len(good)), np.zeros(len(swapped))]
    assert roc_auc_score(y, scores) > 0.85
    assert {row["critic_version"] for row in scored} == {critic.version}


def test_balance_keeps_every_labels_share(human_critic):
    """A corpus where half the 'tech' stories are about politics: a plain threshold starves it,
    the per-label quota keeps every label at the same share."""
    items = news()
    politics = [item["text"] for item in items if item["label"] == "politics"]
    tech = [item["text"] for item in items if item["label"] == "tech"]
    rows = [
        labelled(item["text"], item["label"], f"s{i}")
        for i, item in enumerate(items)
        if item["label"] in ("business", "sport")
    ]
    rows += [labelled(text, "tech", f"t{i}") for i, text in enumerate(tech[:10] + politics[:10])]
    scores = score(human_critic, rows)
    plain = accept_mask(human_critic, rows, scores, CriticConfig(balance=False))
    balanced = accept_mask(human_critic, rows, scores, CriticConfig(balance=True))
    totals = Counter(r["label"] for r in rows)

    def shares(mask):
        kept = Counter(r["label"] for r, k in zip(rows, mask, strict=True) if k)
        return {label: kept[label] / totals[label] for label in totals}

    assert shares(plain)["tech"] < min(shares(plain)["business"], shares(plain)["sport"]) - 0.2
    overall = plain.mean()
    for label, share in shares(balanced).items():
        assert abs(share - overall) <= 1 / totals[label], label
    # within a label, the quota keeps the best-scored records
    tech = [i for i, r in enumerate(rows) if r["label"] == "tech"]
    kept_scores = [scores[i] for i in tech if balanced[i]]
    dropped_scores = [scores[i] for i in tech if not balanced[i]]
    assert min(kept_scores) >= max(dropped_scores)
    assert accept_mask(human_critic, rows, scores, CriticConfig(enabled=False)).all()


def test_bad_labels_are_one_clear_error_and_nothing_is_written(corpus_table, tmp_path):
    table, accept = corpus_table
    rows = table.to_pylist()
    out = tmp_path / "critic"

    strangers = tmp_path / "strangers.csv"
    strangers.write_text("id,accept\nnot-a-record,1\nnor-this,0\n")
    with pytest.raises(SynthkdError, match="none of the labels .* matches a record"):
        labels_from_file(strangers, table)

    one_class = write_label_csv(tmp_path / "one.csv", rows[:40], [1] * 40)
    with pytest.raises(SynthkdError, match="all 40 critic labels are acceptable"):
        train_critic(labels_from_file(one_class, table), CriticConfig(), out)

    few = write_label_csv(tmp_path / "few.csv", rows[:12], accept[:12])
    with pytest.raises(SynthkdError, match="too few critic labels to hold out a split"):
        train_critic(labels_from_file(few, table), CriticConfig(), out)

    bad_value = tmp_path / "bad.csv"
    bad_value.write_text(f"id,accept\n{rows[0]['id']},maybe\n")
    with pytest.raises(SynthkdError, match="row 1: accept must be 0 or 1"):
        labels_from_file(bad_value, table)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "bad.csv",
        "few.csv",
        "one.csv",
        "strangers.csv",
    ]


def test_labels_by_fields_match_corpus_records(corpus_table, tmp_path):
    table, _ = corpus_table
    row = table.to_pylist()[0]
    path = tmp_path / "fields.csv"
    text = row["text"].replace('"', '""')
    path.write_text(f'text,label,accept\n"{text}",{row["label"]},1\n"nothing like it",sport,0\n')
    found = labels_from_file(path, table)
    assert [label.row["id"] for label in found.labels] == [row["id"]]
    assert found.dropped == {"human: matches no record": 1}


def test_auto_labels_corrupt_every_kind():
    commonsense = [
        {"head": "PersonX buys a new car", "relation": "xNeed", "tail": "to save up money"},
        {"head": "PersonX bakes a cake", "relation": "xNeed", "tail": "to buy flour"},
        {"head": "PersonX wins the race", "relation": "xReact", "tail": "proud"},
    ]
    got = auto_labels(commonsense, kind="commonsense")
    reasons = Counter(label.rationale for label in got.labels if not label.accept)
    assert reasons == {"tail moved to another head": 3, "tail moved to another relation": 3}
    seeds = {(r["head"], r["relation"], r["tail"]) for r in commonsense}
    for label in got.labels:
        triple = (label.row["head"], label.row["relation"], label.row["tail"])
        assert (triple in seeds) == bool(label.accept)

    kg = [
        {"document_id": "d", "chunk_id": "c1", "subject": "Ada", "predicate": "born_in",
         "object": "London", "quote": "Ada was born in London"},
        {"document_id": "d", "chunk_id": "c2", "subject": "Bo", "predicate": "works_for",
         "object": "Acme", "quote": "Bo works for Acme"},
    ]  # fmt: skip
    got = auto_labels(kg, kind="document_kg")
    negatives = [label for label in got.labels if not label.accept]
    assert Counter(label.rationale for label in negatives) == {
        "quote not in the chunk": 2,
        "object from another chunk": 2,
    }
    quoted = [label.row for label in negatives if label.rationale == "quote not in the chunk"]
    assert all(
        row["quote"] not in ("Ada was born in London",) or row["chunk_id"] == "c2" for row in quoted
    )

    with pytest.raises(SynthkdError, match="at least two labels"):
        auto_labels([{"text": "a story", "label": "sport"}])


def test_judge_answers_parse_to_verdicts_with_rationale():
    from synthkd.critics.judge import judge_prompt, parse_verdict

    assert parse_verdict(" 1 - the story is about sport.") == (1, "the story is about sport.")
    assert parse_verdict("0: it talks about a bank") == (0, "it talks about a bank")
    assert parse_verdict("Not acceptable, the quote does not say it") == (
        0,
        "the quote does not say it",
    )
    assert parse_verdict("**Yes**. Clearly politics.") == (1, "Clearly politics.")
    assert parse_verdict("The record describes a football match") is None
    prompt = judge_prompt({"text": "A story.", "label": "sport"}, "labelled", "Be strict.")
    assert prompt.startswith("Be strict.") and prompt.endswith("Answer:")


def test_no_usable_labels_is_an_error_naming_why():
    with pytest.raises(SynthkdError, match="no critic labels"):
        train_critic(LabelSet(), CriticConfig(), Path("/nonexistent/never-written"))
    dropped = LabelSet(dropped=Counter({"judge: unparsed answer": 3}))
    with pytest.raises(
        SynthkdError, match=r"no usable critic labels \(judge: unparsed answer: 3\)"
    ):
        train_critic(dropped, CriticConfig(), Path("/nonexistent/never-written"))
    assert not Path("/nonexistent").exists()


def test_the_critic_learns_from_the_label_evidence(tmp_path):
    """A labelled run folder: the label evidence overrules wrong asked-for labels, and the
    critic then trains on those (as negatives) and on confirmed records (as positives)."""
    import json

    from synthkd import stages
    from tests.fixtures.fake_teacher import LABELS, labelled_recipe

    recipe = labelled_recipe(tmp_path, student="linear")
    ctx = stages.open_context(recipe, tmp_path / "run")
    other = {"sport": "tech", "tech": "sport"}
    items = [item for item in news() if item["label"] in LABELS][:36]
    wrong = {n for n in range(len(items)) if n % 4 == 0}
    rows = [
        labelled(item["text"], other[item["label"]] if n in wrong else item["label"], f"e-{n}")
        for n, item in enumerate(items)
    ]
    run = ctx.stores()
    run.corpus.append(rows, "round 0: generation")
    evidence = stages.label_round(ctx, 0)
    overruled = evidence["relabelled"] + evidence["rejected"]
    assert overruled >= len(wrong) // 2, evidence

    pool_text = "The striker scored twice as the home side won the derby on Sunday."
    pool = {
        **labelled(pool_text, "sport", "pool-0"),
        "soft_labels": json.dumps({"sport": 0.95, "tech": 0.05}),
        "meta": json.dumps({"source": "unlabelled_pool"}),
    }
    run.corpus.append([pool], "unlabelled pool")  # the user's texts: not teacher output

    labels = stages.critic_labels(ctx, run.corpus.read())
    assert pool_text not in {lab.row["text"] for lab in labels.labels}
    counts = labels.counts()
    assert counts["auto"] == {"accept": 10, "reject": 10}  # the seeds and their corruptions
    # every asked-for label the evidence overruled is a negative, with the label asked for
    negatives = {(lab.row["text"], lab.row["label"]) for lab in labels.labels if not lab.accept}
    asked = {(row["text"], row["label"]) for row in rows}
    evidence_negatives = {
        (lab.row["text"], lab.row["label"])
        for lab in labels.labels
        if lab.source == "evidence" and not lab.accept
    }
    assert counts["evidence"]["reject"] == len(evidence_negatives) == overruled
    assert evidence_negatives <= asked & negatives
    # confirmed positives: corpus records whose agreed distribution backs their label
    kept = [r for r in run.corpus.read().to_pylist() if r["text"] != pool_text]
    confirmed = [r for r in kept if json.loads(r["soft_labels"])[r["label"]] >= 0.7]
    assert counts["evidence"]["accept"] == min(len(confirmed), 30) > 0  # cap: 3 x 10 seeds

    critic = stages.fit_critic(ctx)
    sources = critic.metrics["label_sources"]
    assert sources == {
        "seed_positives": 10,
        "corruption_negatives": 10,
        "evidence_positives": counts["evidence"]["accept"],
        "evidence_negatives": overruled,
    }
    card = (tmp_path / "run" / "critic" / "README.md").read_text()
    assert f"{overruled} asked-for labels it overruled" in card
    from synthkd.flows.report_choices import critic_sources  # the run report's line

    (line,) = critic_sources(tmp_path / "run")
    assert "10 seed positives, 10 corruption negatives" in line
    assert f"{overruled} evidence negatives" in line

    ctx.recipe.critic.evidence_labels = False  # the old way: seeds and corruptions only
    assert set(stages.critic_labels(ctx, run.corpus.read()).counts()) == {"auto"}
