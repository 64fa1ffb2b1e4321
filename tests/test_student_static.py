"""The static-embedding student: model2vec-style distillation of a fine-tuned MiniLM student plus
a logistic-regression head; saved without pickle, reloaded, served by `synthkd predict`."""

from __future__ import annotations

import numpy as np
import pytest

from synthkd.errors import SynthkdError
from synthkd.training import export_static, load_serving_student, load_student
from tests.fixtures.student_helpers import TRAIN, VALIDATION, read_jsonl
from tests.test_student_serving import trained_minilm

pytestmark = pytest.mark.slow  # trains a MiniLM student, then distils its vocabulary


@pytest.fixture(scope="module")
def minilm(tmp_path_factory):
    return trained_minilm(tmp_path_factory)


@pytest.fixture(scope="module")
def static_dir(minilm):
    train = read_jsonl(TRAIN)
    validation = read_jsonl(VALIDATION)
    return export_static(
        minilm,
        [r["text"] for r in train],
        [r["label"] for r in train],
        validation=([r["text"] for r in validation], [r["label"] for r in validation]),
    )


def test_saved_without_pickle_and_reloads(static_dir, minilm):
    assert static_dir == minilm / "static"
    names = sorted(p.name for p in static_dir.iterdir())
    assert names == ["model.safetensors", "student.json", "tokenizer.json"]
    texts = [r["text"] for r in read_jsonl(VALIDATION)]
    student = load_student(static_dir)
    assert student.kind == "static"
    first = student.predict_proba(texts)
    again = load_serving_student(minilm, "static").predict_proba(texts)
    assert np.allclose(first, again)
    assert np.allclose(first.sum(axis=1), 1.0)
    assert load_serving_student(minilm).format != "static", "static is chosen, never implied"


def test_agrees_with_the_minilm_student(static_dir, minilm):
    rows = read_jsonl(VALIDATION)
    texts = [r["text"] for r in rows]
    static = load_student(static_dir).predict_proba(texts).argmax(1)
    teacher = load_student(minilm).predict_proba(texts).argmax(1)
    assert np.mean(static == teacher) >= 0.7
    labels = load_student(minilm).labels
    accuracy = np.mean([labels[i] == r["label"] for i, r in zip(static, rows, strict=True)])
    assert accuracy >= 0.6  # 4 balanced labels: chance is 0.25


def test_texts_without_known_tokens_still_get_an_answer(static_dir):
    student = load_student(static_dir)
    probs = student.predict_proba(["", "   ", "word " * 2000])
    assert probs.shape == (3, len(student.labels))
    assert np.allclose(probs.sum(axis=1), 1.0)
    assert np.allclose(student.embed([""]), 0.0)


def test_bad_input_is_one_line(minilm, tmp_path):
    with pytest.raises(SynthkdError, match="as many training labels"):
        export_static(minilm, ["a text"], [], tmp_path / "s")
    with pytest.raises(SynthkdError, match="not known to the student"):
        export_static(minilm, ["a text"], ["politics"], tmp_path / "s")
    assert not (tmp_path / "s").exists()
