"""Parse on REAL embedded-teacher output: Gemma 3 270M completions recorded once into
tests/fixtures/gen_*.json by tests/fixtures/gen_record_fixtures.py (rerun it after
changing a template; the tests below re-render each request and check it is unchanged)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from synthkd.data import Lineage, make_record, make_reject
from synthkd.generators import make_task
from synthkd.generators.tasks.base import Sampling
from synthkd.generators.tasks.entities import quote_in
from synthkd.generators.teachers import Completion, SamplingParams, TeacherRequest
from synthkd.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def replay(name: str):
    """(task, [(request, [completions])]) with requests rebuilt from the fixture."""
    recipe = load_recipe(ROOT / "recipes" / f"{name}.yaml")
    task = make_task(recipe.task.model_dump(), recipe.templates)
    sampling = Sampling(**recipe.teacher_sections()[0].sampling.model_dump())
    entries = json.loads((FIXTURES / f"gen_{name}.json").read_text())
    pairs = []
    for entry in entries:
        params = dict(entry["params"])
        params["stop"] = tuple(params["stop"])
        request = TeacherRequest(
            prompt=entry["prompt"],
            params=SamplingParams(**params),
            n=entry["n"],
            metadata=entry["metadata"],
        )
        # the fixture still matches what the task renders today
        rendered = task.render(entry["metadata"]["intent"], "completion", sampling)
        assert rendered.prompt == request.prompt, "template changed: rerun gen_record_fixtures.py"
        completions = [
            Completion(c["index"], c["text"], c["finish_reason"]) for c in entry["completions"]
        ]
        pairs.append((request, completions))
    return task, pairs


def parse_all(task, pairs):
    records, rejects = [], []
    for request, completions in pairs:
        for completion in completions:
            if not completion.ok:
                rejects.append((request, None, "truncated"))
                continue
            parsed = task.parse(request, completion)
            records += [(request, completion, content) for content in parsed.records]
            rejects += [(request, content, reason) for content, reason in parsed.rejects]
    return records, rejects


def lineage(request, completion):
    return Lineage(
        "fixture",
        0,
        "llamacpp",
        "gemma-3-270m",
        request.metadata["template_hash"],
        request.params,
        "k",
        completion.text,
    )


def test_news_stories_from_gemma_parse_into_labelled_records():
    task, pairs = replay("news_topics")
    records, rejects = parse_all(task, pairs)
    samples = sum(len(c) for _, c in pairs)
    assert samples == 20
    assert len(records) >= 15, Counter(r for *_, r in rejects)
    for request, completion, content in records:
        assert content["label"] == request.metadata["intent"]["label"]
        assert content["text"] == " ".join(completion.text.split())  # the story, untouched
        assert len(content["text"].split()) >= 5
        make_record("labelled", content, lineage(request, completion))
    assert Counter(c["label"] for *_, c in records).keys() == set(task.groups)
    # the tech sample that copied a seed story word for word is caught
    assert "prompt_echo" in {reason for *_, reason in rejects}


def test_commonsense_events_and_tails_from_gemma():
    task, pairs = replay("commonsense")
    records, rejects = parse_all(task, pairs)
    events = [p for p in pairs if p[0].metadata["intent"]["stage"] == "commonsense_events"]
    tails = [p for p in pairs if p[0].metadata["intent"]["stage"] == "commonsense_tails"]
    assert events and tails
    assert {p[0].metadata["intent"]["relation"] for p in tails} == set(task.groups)
    assert len(records) >= 20
    for request, completion, content in records:
        intent = request.metadata["intent"]
        assert content == {
            "head": intent["head"],
            "relation": intent["relation"],
            "tail": content["tail"],
        }
        assert content["head"].startswith("PersonX ")
        assert 1 <= len(content["tail"].split()) <= 14
        make_record("commonsense", content, lineage(request, completion))
    for *_, reason in rejects:
        assert reason in {"prompt_echo", "duplicate_event", "empty", "too_long", "not_an_event"}


def test_document_kg_from_gemma_keeps_only_grounded_triples():
    task, pairs = replay("document_kg")
    records, rejects = parse_all(task, pairs)
    triples = [p for p in pairs if p[0].metadata["intent"]["stage"] == "kg_triples"]
    assert triples
    for request, completion, content in records:
        intent = request.metadata["intent"]
        assert quote_in(content["quote"], intent["chunk"])
        for name in (content["subject"], content["object"]):  # listed, or named in the chunk
            assert name in intent["entities"] or name.casefold() in intent["chunk"].casefold()
        assert any(
            n.casefold() in content["quote"].casefold()
            for n in (content["subject"], content["object"])
        )
        make_record("document_kg", content, lineage(request, completion))
    reasons = Counter(reason for *_, reason in rejects)
    assert reasons  # a 270M model misquotes often; each miss is a reject with its reason
    assert set(reasons) <= {
        "unsupported_quote",
        "unknown_entity",
        "unparseable",
        "incomplete_triple",
        "self_loop",
        "predicate_too_long",
        "quote_misses_entities",
        "entity_not_in_chunk",
        "too_few_entities",
        "empty",
        "truncated",
    }
    for request, content, reason in rejects:
        make_reject(
            "document_kg", content, lineage(request, Completion(0, "", "stop")), reason, "parse"
        )


@pytest.mark.parametrize("name", ["news_topics", "commonsense", "document_kg"])
def test_fixtures_hold_real_completions(name):
    entries = json.loads((FIXTURES / f"gen_{name}.json").read_text())
    texts = [c["text"] for e in entries for c in e["completions"]]
    assert texts and len(set(texts)) > len(texts) // 2  # sampled, not one repeated string
