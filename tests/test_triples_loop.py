"""The triples half of the loop (issue 14): held-out scoring of KG triples and commonsense
tails, quote grounding that tolerates formatting but not paraphrase, guided rounds that ask
for the weakest relations, and a real SmolLM2 student above a stated floor on held-out gold.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from synthkd.generators import Focus, HardNegative, make_task
from synthkd.generators.tasks.entities import find_quote
from synthkd.recipe import load_recipe
from synthkd.stages.triples import read_heldout, triples_focus
from synthkd.training import kg_scores, parse_triples

ROOT = Path(__file__).resolve().parents[1]
FLOOR_TAIL_TOKEN_F1 = 0.10
"""Held-out token-F1 a SmolLM2 student trained on the 56 shipped seed triples must beat
(measured once: 0.134, exact match 0.0, 4 epochs, 9 minutes on a loaded 2-core machine)."""
FLOOR_KG_PAIR_F1 = 0.05
"""Held-out entity-pair F1 a SmolLM2 student trained on the 12 shipped seed KG chunks must
beat (measured once: 0.154, triple F1 0.051, 10 epochs, 100 s on a quiet 2-core machine;
with the recipe's 2 epochs on 12 chunks it has not yet learned the "s | p | o" format and
scores 0.0, which is why the test trains longer than a loop round does)."""


def _recipe(name: str):
    return load_recipe(ROOT / "recipes" / f"{name}.yaml")


def test_kg_triples_match_under_the_stated_normalisation():
    gold = [
        [
            ("Brenna Museum of Glass", "located_in", "Calloway"),
            ("Ines Calder", "spouse", "Tom Reyes"),
        ]
    ]
    text = "The Brenna Museum of Glass | located in | Calloway. ; Ines Calder | married to | Tom Reyes ; junk"
    predicted = [parse_triples(text)]
    assert len(predicted[0]) == 2, "the malformed piece is dropped, the two triples kept"
    scores = kg_scores(predicted, gold)
    assert scores["precision"] == scores["recall"] == 0.5  # article, case and "_" normalised
    assert scores["pair_f1"] == 1.0  # the spouse fact is right up to its predicate wording
    assert scores["per_relation_recall"] == {"located_in": 1.0, "spouse": 0.0}
    assert "predicate" in scores["normalisation"]


def test_quotes_tolerate_case_whitespace_and_marks_but_grounding_stays_strict():
    chunk = "The Fennick Stone Bridge was built in 1488.\nIt has   five arches."
    assert find_quote('"the fennick stone bridge was built in 1488."', chunk) == (
        "The Fennick Stone Bridge was built in 1488"
    )
    assert find_quote("It has five arches", chunk) == "It has five arches"
    assert find_quote("\u201cIt has five arches\u201d...", chunk) == "It has five arches"
    assert find_quote("The bridge was built in 1488", chunk) is None  # a paraphrase
    assert find_quote("It has six arches", chunk) is None
    assert find_quote("", chunk) is None


def test_heldout_gold_is_never_what_the_teacher_is_shown():
    cs = _recipe("commonsense")
    heads = {i["head"] for i in read_heldout(cs.task)}
    shown = {
        json.loads(line)["head"] for line in Path(cs.task.seed_triples).read_text().splitlines()
    }
    shown |= set(Path(cs.task.seed_events).read_text().splitlines())
    assert len(heads) == 6 and not heads & shown
    kg = _recipe("document_kg")
    items = read_heldout(kg.task)
    task = make_task(kg.task.model_dump(), kg.templates)
    chunks = {c.text for cs_ in task.chunks.values() for c in cs_} | {
        s["text"] for s in task.all_shots
    }
    assert len(items) == 8 and not {i["chunk"] for i in items} & chunks
    assert sum(len(i["triples"]) for i in items) >= 25


def test_guided_commonsense_round_asks_for_the_weakest_relations():
    recipe = _recipe("commonsense")
    groups = list(recipe.task.relations)
    per = {r: 0.6 for r in groups} | {"xAttr": 0.05, "HinderedBy": 0.1, "xNeed": 0.2}
    rejected = [
        {"text": "PersonX fixes a fence", "label": "xAttr", "predicted": "fence", "confidence": 1.0}
    ]
    student = {"per_relation": per, "critic_rejected_events": rejected}
    focus, wanted = triples_focus("commonsense", student, 20, groups)
    assert focus["labels"] == ["xAttr", "HinderedBy", "xNeed"]
    assert wanted["xAttr"] > wanted["HinderedBy"] > wanted["xNeed"] > wanted["xWant"]
    task = make_task(recipe.task.model_dump(), recipe.templates)
    plan = task.plan(
        1, Focus(labels=focus["labels"], hard_negatives=[HardNegative(**rejected[0])]), wanted
    )
    events = [i for i in plan if i["stage"] == "commonsense_events"]
    assert events and all(set(i["relations"]) == {"xAttr", "HinderedBy", "xNeed"} for i in events)
    tails = [i for i in plan if i["stage"] == "commonsense_tails"]
    assert [(i["head"], i["relation"]) for i in tails] == [("PersonX fixes a fence", "xAttr")]


def test_guided_kg_round_rereads_the_most_missed_chunks_with_shots_of_weak_relations():
    recipe = _recipe("document_kg")
    task = make_task(recipe.task.model_dump(), recipe.templates)
    student = {
        "per_relation": {"born_in": 0.9, "tributary_of": 0.0, "founded_by": 0.5},
        "missed_chunks": [
            {"chunk_id": "river_tessel#1", "document_id": "river_tessel", "missed": 5, "of": 6},
            {
                "chunk_id": "aldery_city_history#0",
                "document_id": "aldery_city_history",
                "missed": 2,
                "of": 2,
            },
            {"chunk_id": "river_tessel#0", "document_id": "river_tessel", "missed": 0, "of": 3},
        ],
    }
    focus, wanted = triples_focus("document_kg", student, 5, list(task.groups))
    assert focus["labels"][0] == "tributary_of"
    assert wanted["river_tessel"] > 0 and wanted["halvorsen_instruments"] == 0
    guided = Focus(
        labels=focus["labels"], hard_negatives=[HardNegative(**h) for h in focus["hard_negatives"]]
    )
    plan = task.plan(1, guided, wanted)
    assert sorted(i["chunk_id"] for i in plan) == ["aldery_city_history#0", "river_tessel#1"]
    shown = [task.all_shots[k] for k in plan[0]["shots"]]
    assert any(t["predicate"] == "tributary_of" for s in shown for t in s["triples"])
    assert all(i["triple_samples"] == 2 * recipe.task.samples_per_chunk for i in plan)


# ------------------------------------------------------------------ real SmolLM2 student


def _student_config(name: str, tmp_path: Path):
    from synthkd.training import StudentConfig

    section = _recipe(name).student.model_dump()
    return StudentConfig(**section)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_student_on_the_shipped_seed_triples_beats_the_floor_on_heldout_tails(tmp_path):
    from synthkd.training import evaluate_tails, load_student, train_student

    recipe = _recipe("commonsense")
    rows = [json.loads(line) for line in Path(recipe.task.seed_triples).read_text().splitlines()]
    config = _student_config("commonsense", tmp_path)
    config.epochs = 4
    train_student(config, rows, None, tmp_path / "student", progress=False)
    report = evaluate_tails(load_student(tmp_path / "student"), read_heldout(recipe.task))
    assert report["token_f1"] > FLOOR_TAIL_TOKEN_F1, report
    assert (tmp_path / "student" / "README.md").exists()
    shutil.rmtree(tmp_path / "student")


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_student_on_the_shipped_seed_kg_beats_the_floor_on_heldout_chunks(tmp_path):
    from synthkd.training import evaluate_kg, load_student, train_student

    recipe = _recipe("document_kg")
    rows = []
    for n, line in enumerate(Path(recipe.task.seed_kg).read_text().splitlines()):
        shot = json.loads(line)
        for t in shot["triples"]:
            rows.append(
                {"document_id": "seed", "chunk_id": str(n), "chunk_text": shot["chunk"], **t}
            )
    config = _student_config("document_kg", tmp_path)
    config.epochs = 10
    train_student(config, rows, None, tmp_path / "student", progress=False)
    report = evaluate_kg(load_student(tmp_path / "student"), read_heldout(recipe.task))
    assert report["pair_f1"] > FLOOR_KG_PAIR_F1, report
    assert report["triples_per_s"] > 0


# ------------------------------------------------------------------ the KG a user can load


def test_kg_export_is_an_edge_list_datasets_and_networkx_load(tmp_path):
    import datasets
    import networkx
    import pandas

    from synthkd.data import RunStore, export_graph, make_record
    from tests.fixtures.data_corpus import lineage

    run = RunStore.create(tmp_path / "run", "document_kg")
    facts = [
        ("River Tessel", "flows_into", "Bay of Selk", "flows north-east to the Bay of Selk"),
        ("Fennick", "located_on", "River Tessel", "The first town on its banks is Fennick"),
        (
            "Corran Mill",
            "founded_by",
            "Hugh Corran",
            "founded in 1702 by the papermaker Hugh Corran",
        ),
    ]
    rows = [
        make_record(
            "document_kg",
            {
                "document_id": "river_tessel",
                "chunk_id": f"river_tessel#{i}",
                "subject": s,
                "predicate": p,
                "object": o,
                "quote": q,
            },
            lineage(0, sample=f"s{i}"),
        )
        for i, (s, p, o, q) in enumerate(facts)
    ]
    run.corpus.append(rows, "round 0", {"round": 0})
    rejected = rows[2]["id"]
    run.corpus.update_scores(
        {r["id"]: (0.1 if r["id"] == rejected else 0.9) for r in rows},
        "critic-1",
        "score",
        threshold=0.5,
    )
    result = export_graph(run, tmp_path / "kg")
    assert (result.edges, result.nodes, result.relations) == (2, 3, 2)  # the critic's cut holds
    frame = pandas.read_parquet(tmp_path / "kg" / "edges.parquet")
    assert list(frame.columns[:5]) == ["head", "relation", "tail", "quote", "document"]
    graph = networkx.from_pandas_edgelist(
        frame, "head", "tail", edge_attr=True, create_using=networkx.MultiDiGraph
    )
    assert graph.has_edge("Fennick", "River Tessel") and not graph.has_node("Hugh Corran")
    loaded = datasets.load_dataset(
        str(tmp_path / "kg"), split="train", cache_dir=str(tmp_path / "c")
    )
    assert loaded.num_rows == 2 and set(loaded["document"]) == {"river_tessel"}
    card = (tmp_path / "kg" / "README.md").read_text()
    assert "networkx" in card and "verbatim span" in card


# ------------------------------------------------------------------ yield: the parser's part


def _kg_task(tmp_path):
    from synthkd.generators import DocumentKGTaskConfig

    (tmp_path / "mill.txt").write_text(
        "Corran Mill was founded in 1702 by the papermaker Hugh Corran. It stands in Brackwater,"
        " on the River Linn."
    )
    config = DocumentKGTaskConfig(
        documents=str(tmp_path / "*.txt"),
        seed_kg=str(ROOT / "examples" / "documents" / "seed_kg.jsonl"),
    )
    return make_task(config)


def _triples_request(task, style="completion"):
    from synthkd.generators import Sampling
    from synthkd.generators.teachers import Completion

    intent = task.plan(0, None, {g: 1 for g in task.groups})[0]
    entities = task.render(intent, style, Sampling())
    answer = (
        '{"entities": ["Corran Mill", "Hugh Corran", "Brackwater"]}'
        if style == "chat"
        else " Corran Mill; Hugh Corran, Brackwater"  # a comma where a semicolon belongs
    )
    parsed = task.parse(entities, Completion(index=0, text=answer, finish_reason="stop"))
    (follow,) = parsed.follow_ups
    assert {"Corran Mill", "Hugh Corran", "Brackwater"} <= set(follow["entities"])
    return task.render(follow, style, Sampling())


def test_the_parser_keeps_what_a_sloppy_teacher_grounded_and_nothing_else(tmp_path):
    from synthkd.generators.teachers import Completion

    task = _kg_task(tmp_path)
    request = _triples_request(task)
    lines = [
        ' Corran Mill | founded_by | Hugh Corran; "FOUNDED IN 1702 BY THE PAPERMAKER HUGH CORRAN."',
        '- Corran Mill | located_in | Brackwater | "It  stands in Brackwater"',
        '- Corran Mill | located_in | Brackwater | "It is located in Brackwater"',
        "- Corran Mill | on | River Linn",
        '- Corran Mill | owned_by | Brackwater | "It stands in Brack',
    ]
    cut = Completion(index=0, text="\n".join(lines), finish_reason="length")
    parsed = task.parse_truncated(request, cut)
    kept = {(r["predicate"], r["quote"]) for r in parsed.records}
    assert kept == {
        ("founded_by", "founded in 1702 by the papermaker Hugh Corran"),
        ("located_in", "It stands in Brackwater"),
    }
    reasons = sorted(reason for _, reason in parsed.rejects)
    assert reasons == ["incomplete_triple", "truncated", "unsupported_quote"]


def test_chat_json_with_prose_and_a_cut_tail_is_repaired_not_trusted(tmp_path):
    from synthkd.generators.teachers import Completion

    task = _kg_task(tmp_path)
    request = _triples_request(task, "chat")
    raw = (
        'Here you go: {"triples": [{"subject": "Corran Mill", "predicate": "founded_by", '
        '"object": "Hugh Corran", "quote": "founded in 1702 by the papermaker Hugh Corran"}, '
        '{"subject": "Corran Mill", "predicate": "owned_by", "object": "Hugh Corran", '
        '"quote": "owned by Hugh Corran"}, {"subject": "Corran'
    )
    parsed = task.parse(request, Completion(index=0, text=raw, finish_reason="stop"))
    assert [r["predicate"] for r in parsed.records] == ["founded_by"]
    assert [reason for _, reason in parsed.rejects] == ["unsupported_quote"]  # cut item: dropped
