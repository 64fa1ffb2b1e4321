"""Parse rules of every task on hand-written completions: records, or rejects with a reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synthkd.data import make_record, record_schema
from synthkd.generators import make_task
from synthkd.generators.tasks.base import Focus, HardNegative, Sampling
from synthkd.generators.tasks.entities import EntityIndex, chunk_document, count_tokens, quote_in
from synthkd.generators.teachers import Completion
from synthkd.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]


def task_of(name: str):
    recipe = load_recipe(ROOT / "recipes" / f"{name}.yaml")
    return make_task(recipe.task.model_dump(), recipe.templates)


def first_request(task, stage_filter=None, style="completion", **wanted):
    intents = task.plan(0, None, wanted or {g: 4 for g in task.groups})
    intents = [i for i in intents if stage_filter is None or i["stage"] == stage_filter]
    return task.render(intents[0], style, Sampling())


def done(text: str, index: int = 0) -> Completion:
    return Completion(index=index, text=text, finish_reason="stop")


# ----------------------------------------------------------------- labelled


def test_labelled_prompt_is_a_page_ending_with_the_asked_label():
    task = task_of("news_topics")
    request = first_request(task)
    intent = request.metadata["intent"]
    assert request.prompt.startswith("BBC News - Top stories\n\n")
    assert request.prompt.endswith(
        f"Section: {intent['label']} - {intent['subtopic']} - {intent['style']}\nStory:"
    )
    assert request.prompt.count("\nStory: ") == 4  # four rotating seed stories
    assert request.params.stop == ("\n\n", "\nSection:")
    assert request.n == 4
    assert len(request.metadata["template_hash"]) == 16


def test_labelled_plan_rotates_shots_and_subtopics():
    task = task_of("news_topics")
    intents = task.plan(0, None, {g: 40 for g in task.groups})
    sport = [i for i in intents if i["label"] == "sport"]
    assert len(sport) == 10
    assert len({i["subtopic"] for i in sport}) == 10
    assert len({tuple(s["text"] for s in i["shots"]) for i in sport}) >= 5
    # labels interleave, so an interrupted run is still balanced
    assert [i["label"] for i in intents[:5]] == task.groups


def test_labelled_parse_keeps_the_asked_label_and_rejects_with_reasons():
    task = task_of("news_topics")
    request = first_request(task)
    label = request.metadata["intent"]["label"]
    story = " Shares in Larkspur Airways rose 6% after the carrier said summer bookings were at a record high."
    parsed = task.parse(request, done(story))
    assert parsed.records == [
        {
            "text": story.strip(),
            "label": label,
            "meta": {
                "style": request.metadata["intent"]["style"],
                "length": request.metadata["intent"]["length"],
                "subtopic": request.metadata["intent"]["subtopic"],
                "focus": False,
            },
        }
    ]
    shot = request.metadata["intent"]["shots"][0]["text"]
    cases = {
        "   ": "empty",
        " one line\nSection: sport": "extra_lines",
        f" {shot}": "prompt_echo",
        " Good story. Headline: leaked format": "format_leak",
    }
    for text, reason in cases.items():
        assert task.parse(request, done(text)).rejects == [
            (
                {"label": label, **({"text": text.strip()} if reason == "prompt_echo" else {})},
                reason,
            )
        ]


def test_labelled_chat_prompt_uses_a_json_schema_and_parses_json_only():
    task = task_of("news_topics")
    request = first_request(task, style="chat")
    assert request.prompt is None and request.messages[0]["role"] == "system"
    assert request.json_schema["required"] == ["text"]
    ok = task.parse(
        request, done('{"text": "Ministers unveiled a new asylum bill in the Commons."}')
    )
    assert ok.records[0]["text"] == "Ministers unveiled a new asylum bill in the Commons."
    assert task.parse(request, done("Sure! Here is a story")).rejects[0][1] == "unparseable"
    assert task.parse(request, done('{"text": 5}')).rejects[0][1] == "unparseable"


def test_focus_puts_hard_negatives_into_the_prompt():
    task = task_of("news_topics")
    hard = HardNegative(
        text="The games publisher Nimbus issued a profit warning after weak console sales.",
        label="business",
        predicted="tech",
    )
    focus = Focus(labels=["business"], confusions=[("business", "tech")], hard_negatives=[hard])
    intents = task.plan(1, focus, {g: 8 for g in task.groups})
    assert {i["label"] for i in intents} == {"business"}
    completion = task.render(intents[0], "completion", Sampling())
    assert "Section: business\nStory: The games publisher Nimbus" in completion.prompt
    chat = task.render(intents[0], "chat", Sampling())
    user = chat.messages[-1]["content"]
    assert "It confuses it with: tech" in user and 'read this "business" text as "tech"' in user


# -------------------------------------------------------------- commonsense


def test_commonsense_events_then_tails_per_relation():
    task = task_of("commonsense")
    request = first_request(task)
    assert request.prompt.endswith(". PersonX")
    parsed = task.parse(request, done(" repaints the garden shed"))
    assert not parsed.records and not parsed.rejects
    assert [f["relation"] for f in parsed.follow_ups] == task.groups
    tail_request = task.render(parsed.follow_ups[0], "completion", Sampling())
    assert tail_request.prompt.endswith(
        "Event: PersonX repaints the garden shed\nBefore, PersonX needed"
    )
    tails = task.parse(tail_request, done(" to buy a tin of paint."))
    assert tails.records == [
        {
            "head": "PersonX repaints the garden shed",
            "relation": "xNeed",
            "tail": "to buy a tin of paint",
        }
    ]


def test_commonsense_rejects():
    task = task_of("commonsense")
    request = first_request(task)
    assert task.parse(request, done("")).rejects[0][1] == "empty"
    seed = task.seed_events[0][len("PersonX ") :]
    assert task.parse(request, done(f" {seed}")).rejects[0][1] == "prompt_echo"
    assert task.parse(request, done(" walks the dog at dawn")).follow_ups
    assert task.parse(request, done(" walks the dog at dawn")).rejects[0][1] == "duplicate_event"
    assert task.parse(request, done(" " + "very " * 20 + "long")).rejects[0][1] == "too_long"
    follow = task.parse(request, done(" plants tomatoes")).follow_ups[0]
    tail_request = task.render(follow, "completion", Sampling())
    assert task.parse(tail_request, done(" PersonX plants tomatoes")).rejects[0][1] == "prompt_echo"
    assert task.parse(tail_request, done("  ")).rejects[0][1] == "empty"


# -------------------------------------------------------------- document KG


def test_chunks_respect_the_token_budget_and_keep_paragraphs():
    text = "\n\n".join(f"Paragraph {i} has a few words in it." for i in range(10))
    chunks = chunk_document("doc", text, budget=20)
    assert all(count_tokens(c.text) <= 20 for c in chunks)
    assert " ".join(" ".join(c.text.split()) for c in chunks) == " ".join(text.split())
    assert chunks[0].text.startswith("Paragraph 0 has a few words in it.\nParagraph 1")
    assert [c.chunk_id for c in chunks][:2] == ["doc#0", "doc#1"]


def test_entity_names_are_normalised_within_a_document():
    index = EntityIndex()
    assert index.add("Margaret  Holm") == "Margaret Holm"
    assert index.add("the Tessel Navigation Company") == "Tessel Navigation Company"
    assert index.lookup("margaret holm") == "Margaret Holm"
    assert index.lookup("Holm") == "Margaret Holm"  # last name alias
    assert index.lookup("Holm's") == "Margaret Holm"
    assert index.lookup("TNC") == "Tessel Navigation Company"  # initials alias
    assert index.lookup("Aldery") is None


def test_quote_check_normalises_whitespace_only():
    chunk = "The iron Tessel Bridge at Millford was designed by\nthe engineer   Margaret Holm."
    assert quote_in("designed by the engineer Margaret Holm", chunk)
    assert not quote_in("Designed by the engineer Margaret Holm", chunk)
    assert not quote_in("designed by the architect Margaret Holm", chunk)
    assert not quote_in("", chunk)


def kg_triples_request(task):
    entities_request = first_request(task, "kg_entities", **{g: 1 for g in task.groups})
    chunk = entities_request.metadata["intent"]["chunk"]
    return entities_request, chunk


def test_kg_entities_then_grounded_triples():
    task = task_of("document_kg")
    entities_request, chunk = kg_triples_request(task)
    assert chunk.startswith("A History of Aldery")
    parsed = task.parse(entities_request, done(" Aldery; Carrowmere; Bay of Selk; Atlantis"))
    assert parsed.rejects == [
        (
            {
                "document_id": "aldery_city_history",
                "chunk_id": "aldery_city_history#0",
                "subject": "Atlantis",
            },
            "entity_not_in_chunk",
        )
    ]
    follow = parsed.follow_ups[0]
    assert follow["entities"] == ["Aldery", "Carrowmere", "Bay of Selk"]
    request = task.render(follow, "completion", Sampling())
    assert request.prompt.endswith("Entities: Aldery; Carrowmere; Bay of Selk\nFacts:\n-")
    quote = "It is the capital and largest city of the province of Carrowmere"
    assert quote in " ".join(chunk.split())
    lines = [
        f' aldery | capital of | Carrowmere | "{quote}"',
        '- Aldery | capital of | Carrowmere | "Aldery is the capital of Atlantis"',
        f'- Aldery | twinned with | Atlantis | "{quote}"',
        "- Aldery capital Carrowmere",
        f'- Aldery | is | Aldery | "{quote}"',
        '- Aldery | capital of | Carrowmere | "Aldery"',
    ]
    parsed = task.parse(request, done("\n".join(lines)))
    assert parsed.records == [
        {
            "document_id": "aldery_city_history",
            "chunk_id": "aldery_city_history#0",
            "subject": "Aldery",
            "predicate": "capital of",
            "object": "Carrowmere",
            "quote": quote,
        }
    ]
    assert [r for _, r in parsed.rejects] == [
        "unsupported_quote",
        "unknown_entity",
        "unparseable",
        "self_loop",
        "unsupported_quote",
    ]
    assert task.parse(request, done("")).rejects[0][1] == "empty"


def test_every_parsed_record_fits_the_schema():
    task = task_of("document_kg")
    entities_request, chunk = kg_triples_request(task)
    follow = task.parse(entities_request, done(" Aldery; Carrowmere")).follow_ups[0]
    request = task.render(follow, "chat", Sampling())
    raw = json.dumps(
        {
            "triples": [
                {
                    "subject": "Aldery",
                    "predicate": "capital of",
                    "object": "Carrowmere",
                    "quote": "the capital and largest city of the province of Carrowmere",
                }
            ]
        }
    )
    parsed = task.parse(request, done(raw))
    assert parsed.records
    from synthkd.data import Lineage

    lineage = Lineage("r", 0, "llamacpp", "m", "h", "{}", "k", raw)
    row = make_record("document_kg", parsed.records[0], lineage)
    assert set(row) == set(record_schema("document_kg").names)


@pytest.mark.parametrize("bad", ["not json", "[]", '{"triples": "none"}', '{"triples": [1, 2]}'])
def test_kg_chat_output_that_is_not_the_schema_is_rejected(bad):
    task = task_of("document_kg")
    entities_request, _ = kg_triples_request(task)
    follow = task.parse(entities_request, done(" Aldery; Carrowmere")).follow_ups[0]
    request = task.render(follow, "chat", Sampling())
    parsed = task.parse(request, done(bad))
    assert not parsed.records
    assert {r for _, r in parsed.rejects} == {"unparseable"}


# ---------------------------------------------------------------- templates


def test_a_recipe_template_dir_overrides_ours_and_changes_the_hash(tmp_path):
    recipe = load_recipe(ROOT / "recipes" / "news_topics.yaml")
    ours = first_request(make_task(recipe.task.model_dump()))
    (tmp_path / "labelled.completion.jinja").write_text(
        "Wire copy\n{% for shot in shots %}[{{ shot.label }}] {{ shot.text }}\n{% endfor %}[{{ label }}]"
    )
    theirs = first_request(make_task(recipe.task.model_dump(), str(tmp_path)))
    assert theirs.prompt.startswith("Wire copy\n[") and theirs.prompt.endswith(
        f"[{theirs.metadata['intent']['label']}]"
    )
    assert theirs.metadata["template_hash"] != ours.metadata["template_hash"]
    # the chat template was not overridden: ours is used
    chat = make_task(recipe.task.model_dump(), str(tmp_path)).render(
        theirs.metadata["intent"], "chat", Sampling()
    )
    assert chat.messages[0]["role"] == "system"


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ("{{ no_such_variable }}", "'no_such_variable' is undefined"),
        ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "unsafe"),
        ("{% for x in %}", "labelled.completion.jinja:1"),
    ],
)
def test_a_bad_user_template_is_one_clear_error(tmp_path, source, says):
    from synthkd.errors import SynthkdError

    (tmp_path / "labelled.completion.jinja").write_text(source)
    recipe = load_recipe(ROOT / "recipes" / "news_topics.yaml")
    task = make_task(recipe.task.model_dump(), str(tmp_path))
    with pytest.raises(SynthkdError) as info:
        first_request(task)
    assert says in str(info.value) and "\n" not in str(info.value)


def test_unusable_documents_become_input_rejects_and_the_rest_is_chunked(tmp_path):
    from synthkd.errors import SynthkdError
    from synthkd.generators import DocumentKGTaskConfig

    (tmp_path / "good.txt").write_text("Ada Quill founded the Velm Harbour Board in 1850.")
    (tmp_path / "empty.txt").write_text("\n  \n")
    (tmp_path / "latin.txt").write_bytes("Zoë Brandt runs Café Münster.".encode("latin-1"))
    (tmp_path / "image.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00" + bytes(range(256)))
    task = make_task(DocumentKGTaskConfig(documents=str(tmp_path / "*.txt")))
    assert task.groups == ["good"]
    assert sorted(task.input_rejects, key=lambda r: r[1]) == [
        ({"document_id": "image"}, "binary_file"),
        ({"document_id": "empty"}, "empty_document"),
        ({"document_id": "latin"}, "not_utf8_text"),
    ]
    (tmp_path / "good.txt").unlink()
    with pytest.raises(SynthkdError, match="no usable text"):
        make_task(DocumentKGTaskConfig(documents=str(tmp_path / "*.txt")))
