"""The generative student with a tiny Llama built from a config: a few training steps,
loss goes down, save, reload, generate, score against held-out triples."""

from __future__ import annotations

import json

import pytest

from synthkd.errors import SynthkdError
from synthkd.training import StudentConfig, evaluate_generation, load_student, train_student
from tests.fixtures.student_helpers import TRIPLES, build_tiny_causal_lm, read_jsonl


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    rows = read_jsonl(TRIPLES)
    corpus = [f"{r['head']} {r['relation']} [GEN] {r['tail']}" for r in rows]
    corpus += ["but before, PersonX needed as a result, PersonX wants feels"]
    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny") / "base", corpus)


@pytest.fixture(scope="module")
def trained(tiny_base, tmp_path_factory):
    rows = read_jsonl(TRIPLES)
    config = StudentConfig(
        kind="generative",
        base_model=str(tiny_base),
        epochs=6,
        batch_size=8,
        learning_rate=2e-2,
        lora_r=8,
        max_length=48,
        early_stopping_patience=0,
    )
    out = tmp_path_factory.mktemp("gen") / "student"
    return train_student(config, rows[:30], rows[30:], out, progress=False)


def test_training_loss_goes_down(trained):
    losses = trained.metrics["losses"]
    assert len(losses) >= 10
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.8 * first


def test_saved_student_reloads_and_generates(trained):
    root = trained.path
    assert (root / "adapter" / "adapter_model.safetensors").exists()
    manifest = json.loads((root / "student.json").read_text())
    assert manifest["kind"] == "generative" and manifest["layout"] == "commonsense"
    student = load_student(root)
    prompts = ["PersonX bakes a cake as a result, PersonX feels [GEN]"]
    greedy = student.generate(prompts, max_new_tokens=8)
    beams = student.generate(prompts, num_beams=3, max_new_tokens=8)
    sampled = student.generate(prompts, do_sample=True, max_new_tokens=8, seed=1)
    assert all(isinstance(text, str) for text in greedy + beams + sampled)
    assert greedy == student.generate(prompts, max_new_tokens=8), "greedy decoding is repeatable"


def test_generation_is_scored_by_exact_match_and_token_f1(trained):
    student = load_student(trained.path)
    rows = read_jsonl(TRIPLES)
    report = evaluate_generation(student, rows[:30], max_new_tokens=8)
    assert report.examples == 30
    assert 0.0 <= report.exact_match <= report.token_f1 <= 1.0
    assert report.samples and "generated" in report.samples[0]
    assert 0.0 <= trained.metrics["val_token_f1"] <= 1.0


def test_document_kg_records_render_as_chunk_to_triples(tiny_base, tmp_path):
    rows = [
        {
            "document_id": "d1",
            "chunk_id": f"c{i % 4}",
            "subject": f"River {i % 4}",
            "predicate": "flows into",
            "object": "the sea",
            "quote": f"River {i % 4} flows into the sea.",
        }
        for i in range(8)
    ]
    config = StudentConfig(
        kind="generative", base_model=str(tiny_base), epochs=1, batch_size=4, max_length=64
    )
    result = train_student(config, rows, None, tmp_path / "kg", progress=False)
    assert result.extra["layout"] == "document_kg"
    sample = result.extra["generation"]["samples"][0]
    assert sample["prompt"].endswith("[GEN]")
    assert "flows into" in sample["references"][0]


def test_records_without_triple_columns_are_refused(tiny_base, tmp_path):
    config = StudentConfig(kind="generative", base_model=str(tiny_base))
    with pytest.raises(SynthkdError, match="head/relation/tail"):
        train_student(config, [{"text": "x", "label": "y"}], None, tmp_path / "g")
    assert not (tmp_path / "g").exists()
