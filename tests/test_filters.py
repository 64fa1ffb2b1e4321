"""Rule filters: every rule gives its reason, nothing is dropped silently, all three kinds."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pytest

from synthkd.critics import FILTER_REASONS, CriticConfig, apply_filters
from synthkd.data import make_record, reject_schema
from synthkd.errors import SynthkdError
from tests.fixtures.critic_data import commonsense, labelled, lineage, news, triple

STORY = "The striker scored twice in the second half as the home side came from behind to win."


def reasons(rejects: list[dict]) -> dict[str, str]:
    """sample_key -> reason, to see which record got which reason."""
    return {r["sample_key"]: r["reason"] for r in rejects}


def test_each_labelled_rule_gives_its_reason_and_nothing_is_dropped():
    config = CriticConfig(
        min_chars=40,
        max_chars=400,
        forbid_label_word=True,
        banned_patterns=[r"as an ai", r"https?://"],
        near_duplicate_threshold=0.8,
    )
    rows = [
        labelled(STORY, "sport", "kept"),
        labelled("Too short to teach anything.", "sport", "short"),
        labelled("word " * 100, "sport", "long"),
        labelled(
            "Label: business\nText: shares in the bank fell sharply on Monday", "business", "echo"
        ),
        labelled(
            "The sport pages say the home team won the league title on Saturday afternoon.",
            "sport",
            "leak",
        ),
        labelled(
            "As an AI language model I cannot write about the markets today, sorry about it.",
            "business",
            "banned",
        ),
        labelled(STORY.upper() + "!!", "politics", "exact"),
        labelled(STORY.replace("to win.", "to win again."), "sport", "near"),
        labelled("to be emptied below", "tech", "empty"),
        labelled(
            "Write a news story about technology. Example 1: the new phone has a bigger screen",
            "tech",
            "few-shot",
        ),
    ]
    rows[-2] = {
        **rows[-2],
        "text": "   \n  ",
    }  # make_record refuses empty text; a teacher would not
    result = apply_filters(rows, config, echo_of=["Write a news story about technology."])
    got = reasons(result.rejects)
    assert got == {
        "short": "too_short",
        "long": "too_long",
        "echo": "prompt_echo",
        "leak": "label_word",
        "banned": "banned_pattern",
        "exact": "exact_duplicate",
        "near": "near_duplicate",
        "empty": "empty",
        "few-shot": "prompt_echo",
    }
    assert [r["sample_key"] for r in result.kept] == ["kept"]
    assert len(result.kept) + len(result.rejects) == len(rows)
    assert set(got.values()) <= set(FILTER_REASONS)
    # rejects are rows of the rejects table: lineage kept, stage "filter"
    table = pa.Table.from_pylist(result.rejects, schema=reject_schema("labelled"))
    assert set(table.column("stage").to_pylist()) == {"filter"}
    assert table.column("raw_completion").to_pylist()[0] == rows[1]["raw_completion"]


def test_label_word_is_allowed_unless_the_recipe_forbids_it():
    row = labelled(
        "The sport pages say the home team won the league title on Saturday afternoon.",
        "sport",
        "leak",
    )
    assert apply_filters([row], CriticConfig()).kept == [row]


def test_schema_reject_for_a_missing_field():
    row = labelled(STORY, "sport", "bad")
    broken = {**row, "label": None}
    result = apply_filters([broken], CriticConfig(), kind="labelled")
    assert [r["reason"] for r in result.rejects] == ["schema"]
    assert result.rejects[0]["text"] == STORY


def test_duplicates_of_earlier_corpus_versions_are_rejected():
    earlier = [
        labelled(item["text"], item["label"], f"old-{i}") for i, item in enumerate(news()[:30])
    ]
    fresh = [
        labelled(news()[3]["text"], news()[3]["label"], "again"),
        labelled(news()[7]["text"].replace("4%", "5%"), news()[7]["label"], "edited"),
        labelled(news()[60]["text"], news()[60]["label"], "new"),
    ]
    table = pa.Table.from_pylist(earlier)  # a corpus read back from the store
    result = apply_filters(fresh, CriticConfig(near_duplicate_threshold=0.7), existing=table)
    assert reasons(result.rejects) == {"again": "exact_duplicate", "edited": "near_duplicate"}
    assert [r["sample_key"] for r in result.kept] == ["new"]


def test_near_duplicates_within_a_round_keep_the_first_only():
    base = (
        "The central bank raised interest rates by a quarter point and signalled further increases"
    )
    rows = [labelled(base + " to tame inflation.", "business", "first")]
    rows += [
        labelled(base + f" to tame inflation in {year}.", "business", f"v{year}")
        for year in (2024, 2025)
    ]
    rows.append(
        labelled(
            "The cyclist took the yellow jersey after a brutal mountain stage.", "sport", "other"
        )
    )
    result = apply_filters(rows, CriticConfig(near_duplicate_threshold=0.8))
    assert [r["sample_key"] for r in result.kept] == ["first", "other"]
    assert Counter(r["reason"] for r in result.rejects) == {"near_duplicate": 2}


def test_near_duplicate_verdicts_are_datasketchs():
    """The numpy MinHash LSH gives datasketch's signatures, bands and verdicts."""
    datasketch = pytest.importorskip("datasketch")
    from datasketch.lsh import _optimal_param

    from synthkd.critics.dedup import lsh_params, near_duplicates, shingles, signatures
    from synthkd.critics.records import normalise

    texts = [normalise(item["text"]) for item in news()[:40]]
    texts += [t.replace(" the ", " a ", 1) for t in texts[:15]] + ["", "one"]
    for threshold in (0.7, 0.8, 0.85, 0.9):
        assert lsh_params(threshold) == _optimal_param(threshold, 128, 0.5, 0.5)
    reference, lsh = [], datasketch.MinHashLSH(threshold=0.8, num_perm=128)
    for i, (text, ours) in enumerate(zip(texts, signatures(texts), strict=True)):
        m = datasketch.MinHash(num_perm=128, seed=1)
        m.update_batch(list(shingles(text)))
        assert (m.hashvalues == ours).all()
        twins = [k for k in lsh.query(m) if reference[k][1].jaccard(m) >= 0.8]
        reference.append((min(twins) if twins else None, m))
        if not twins:
            lsh.insert(i, m)
    verdicts = near_duplicates(texts, 0.8)
    assert [v is None for v in verdicts] == [r is None for r, _ in reference]
    assert sum(v is not None for v in verdicts) >= 10  # the edited copies are caught


def test_commonsense_rules():
    rows = [
        commonsense("PersonX buys a new car", "xNeed", "to save up money", "ok"),
        commonsense("PersonX buys a new car", "xNeed", "to save up money", "dup"),
        commonsense("PersonX buys a new car", "xWant", "PersonX buys a new car", "echo"),
        commonsense("PersonX buys a new car", "xAttr", "Tail: rich", "marker"),
        commonsense("PersonX buys a new car", "xReact", "x", "short"),
        commonsense("PersonX goes running", "xEffect", "gets tired", "ok2"),
    ]
    result = apply_filters(rows, CriticConfig(min_chars=2, max_chars=200))
    assert reasons(result.rejects) == {
        "dup": "exact_duplicate",
        "echo": "prompt_echo",
        "marker": "prompt_echo",
        "short": "too_short",
    }
    assert [r["sample_key"] for r in result.kept] == ["ok", "ok2"]


def test_document_kg_rules_and_duplicates_only_within_a_document():
    quote = "Brightwater Foods was founded in 1987 by Samira Okonedo"
    rows = [
        triple("d1", "c1", "Brightwater Foods", "founded_by", "Samira Okonedo", quote, "ok"),
        triple("d1", "c2", "Brightwater Foods", "founded by", "Samira Okonedo", quote, "dup"),
        triple("d2", "c1", "Brightwater Foods", "founded_by", "Samira Okonedo", quote, "other-doc"),
        triple("d1", "c1", "Brightwater Foods", "same_as", "brightwater foods", quote, "loop"),
        triple("d1", "c1", "Brightwater Foods", "located_in", "Leeds", "in Leeds", "short"),
    ]
    result = apply_filters(rows, CriticConfig(min_chars=12, max_chars=600))
    assert reasons(result.rejects) == {
        "dup": "exact_duplicate",
        "loop": "degenerate",
        "short": "too_short",
    }
    assert [r["sample_key"] for r in result.kept] == ["ok", "other-doc"]


def test_bad_config_is_one_clear_error():
    with pytest.raises(SynthkdError, match="banned_patterns"):
        CriticConfig(banned_patterns=["(unclosed"])
    with pytest.raises(SynthkdError, match="min_chars"):
        CriticConfig(min_chars=50, max_chars=10)


def test_rows_may_be_an_arrow_table_and_kinds_must_not_mix():
    rows = [
        labelled(STORY, "sport", "a"),
        commonsense("PersonX eats", "xNeed", "to cook food", "b"),
    ]
    with pytest.raises(SynthkdError, match="several kinds"):
        apply_filters(rows, CriticConfig(min_chars=2))
    table = pa.Table.from_pylist([labelled(STORY, "sport", "a")])
    assert len(apply_filters(table, CriticConfig()).kept) == 1


def test_reject_ids_are_stable_across_reruns():
    rows = [labelled(STORY, "sport", "a"), labelled("short one", "sport", "b")]
    first = apply_filters(rows, CriticConfig()).rejects
    second = apply_filters(rows, CriticConfig()).rejects
    assert [r["id"] for r in first] == [r["id"] for r in second]
    assert (
        first[0]["id"]
        != make_record("labelled", {"text": "short one", "label": "sport"}, lineage("b"))["id"]
    )
