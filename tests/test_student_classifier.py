"""The MiniLM LoRA student end to end: train on a small labelled fixture, save, reload,
predict, evaluate, mine hard negatives, export to ONNX/int8 and merge."""

from __future__ import annotations

import json

import numpy as np
import pytest

from synthkd.training import (
    StudentConfig,
    evaluate,
    export_student,
    hard_negatives,
    load_student,
    merge_student,
    train_student,
)
from tests.fixtures.student_helpers import TRAIN, VALIDATION, read_jsonl

pytestmark = pytest.mark.slow  # one LoRA fine-tune of MiniLM on CPU (about a minute)


@pytest.fixture(scope="module")
def validation():
    rows = read_jsonl(VALIDATION)
    return [r["text"] for r in rows], [r["label"] for r in rows]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("minilm") / "student"
    config = StudentConfig(
        kind="minilm", epochs=2, max_length=24, learning_rate=1e-3, early_stopping_patience=1
    )
    result = train_student(config, read_jsonl(TRAIN), read_jsonl(VALIDATION), out, progress=False)
    return result


def test_validation_accuracy_clearly_above_chance(trained):
    # 4 balanced labels: chance is 0.25
    assert trained.metrics["val_accuracy"] >= 0.7
    assert trained.metrics["val_macro_f1"] >= 0.6
    assert trained.labels == ["cooking", "sport", "technology", "weather"]


def test_student_directory_holds_adapter_tokenizer_label_map_and_card(trained):
    root = trained.path
    assert (root / "adapter" / "adapter_model.safetensors").exists()
    assert (root / "tokenizer.json").exists()
    assert not list(root.rglob("*.bin")), "no pickle weights are written"
    label_map = json.loads((root / "label_map.json").read_text())
    assert sorted(label_map["id2label"].values()) == trained.labels
    assert "learning_rate" in json.loads((root / "training_args.json").read_text())
    card = (root / "README.md").read_text()
    assert "val_macro_f1" in card and "Frozen-encoder baseline" in card
    assert (root / "confusion.png").stat().st_size > 1000
    # the frozen-encoder baseline is reported next to the student
    assert 0.0 <= trained.baseline["macro_f1"] <= 1.0


def test_reloaded_student_predicts_the_same_labels(trained, validation):
    texts, labels = validation
    student = load_student(trained.path)
    probs = student.predict_proba(texts, batch_size=8)
    assert probs.shape == (len(texts), 4)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    again = load_student(trained.path).predict_proba(texts, batch_size=32)
    assert (probs.argmax(1) == again.argmax(1)).all()
    accuracy = np.mean(
        [student.labels[i] == y for i, y in zip(probs.argmax(1), labels, strict=True)]
    )
    assert accuracy == pytest.approx(trained.metrics["val_accuracy"])


def test_evaluate_and_hard_negatives(trained, validation, tmp_path):
    texts, labels = validation
    student = load_student(trained.path)
    report = evaluate(student, texts, labels, plot_path=tmp_path / "cm.png", latency_samples=4)
    assert report.examples == len(texts)
    assert set(report.per_class) == set(student.labels)
    assert sum(map(sum, report.confusion)) == len(texts)
    assert report.examples_per_s_batch32 > 0 and report.latency_ms > 0
    assert (tmp_path / "cm.png").stat().st_size > 1000
    # scoring a test file times nothing at batch size 1: same figures, no latency
    scored = evaluate(student, texts, labels, latency_samples=0)
    assert scored.accuracy == report.accuracy and scored.latency_ms == 0.0
    # flip two labels so there are mistakes the student is confident about
    wrong = list(labels)
    wrong[0] = next(label for label in student.labels if label != labels[0])
    wrong[1] = next(label for label in student.labels if label != labels[1])
    mined = hard_negatives(student, texts, wrong, k=5)
    assert len(mined.examples) >= 2
    confidences = [e.confidence for e in mined.examples]
    assert confidences == sorted(confidences, reverse=True)
    assert all(e.true_label != e.predicted for e in mined.examples)
    assert sum(p.count for p in mined.confused_pairs) >= 2


def test_onnx_and_int8_exports_agree_with_the_student(trained, validation):
    texts, _ = validation
    reference = load_student(trained.path).predict_proba(texts)
    for fmt in ("onnx", "int8"):
        exported = load_student(export_student(trained.path, fmt))
        assert exported.kind == "onnx"
        probs = exported.predict_proba(texts)
        agreement = np.mean(probs.argmax(1) == reference.argmax(1))
        assert agreement >= (1.0 if fmt == "onnx" else 0.9), fmt
    assert (trained.path / "int8" / "model.onnx").stat().st_size < (
        trained.path / "onnx" / "model.onnx"
    ).stat().st_size


def test_merge_gives_a_standalone_transformers_model(trained, validation, tmp_path):
    from transformers import AutoModelForSequenceClassification

    texts, _ = validation
    merged = merge_student(trained.path, tmp_path / "merged")
    model = AutoModelForSequenceClassification.from_pretrained(merged, use_safetensors=True)
    assert model.config.id2label[0] == "cooking"
    reference = load_student(trained.path).predict_proba(texts)
    assert (load_student(merged).predict_proba(texts).argmax(1) == reference.argmax(1)).all()


def test_a_small_corpus_trains_for_at_least_min_steps(tmp_path):
    # 32 examples at batch 16 are 2 steps an epoch: one epoch would teach a new head nothing
    rows = read_jsonl(TRAIN)[::4][:32]
    config = StudentConfig(
        kind="minilm", epochs=1, min_steps=6, max_length=24, early_stopping_patience=0
    )
    result = train_student(config, rows, read_jsonl(VALIDATION), tmp_path / "s", progress=False)
    assert result.metrics["epochs_run"] == 3
    assert result.metrics["steps"] == 6
    card = json.loads((tmp_path / "s" / "student.json").read_text())
    assert card["config"]["min_steps"] == 6


def test_without_best_epoch_selection_the_last_epoch_is_kept_and_validation_scored_once(
    tmp_path,
):
    # patience 1 would stop early if validation were scored each epoch; off, nothing is
    # chosen on validation: every epoch runs and the saved student is the last one's
    rows = read_jsonl(TRAIN)[::4][:32]
    config = StudentConfig(
        kind="minilm", epochs=3, max_length=24, early_stopping_patience=1, select_best_epoch=False
    )
    result = train_student(config, rows, read_jsonl(VALIDATION), tmp_path / "s", progress=False)
    assert result.metrics["epochs_run"] == 3 and result.metrics["steps"] == 6
    assert (
        result.metrics["history"] == [] and result.metrics["best_val_macro_f1_in_training"] is None
    )
    assert 0 <= result.metrics["val_accuracy"] <= 1  # the saved student's one scoring pass
    card = json.loads((tmp_path / "s" / "student.json").read_text())
    assert card["config"]["select_best_epoch"] is False
