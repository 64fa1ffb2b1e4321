"""The linear (TF-IDF + logistic regression) student: trained, saved without pickle, reloaded."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from synthkd.errors import SynthkdError
from synthkd.training import StudentConfig, evaluate, load_student, train_student
from tests.fixtures.student_helpers import TRAIN, VALIDATION, read_jsonl


@pytest.fixture(scope="module")
def data():
    return read_jsonl(TRAIN), read_jsonl(VALIDATION)


def test_linear_student_trains_saves_and_reloads(data, tmp_path):
    train, validation = data
    result = train_student(StudentConfig(kind="linear"), train, validation, tmp_path / "lin")
    assert result.metrics["val_accuracy"] >= 0.7  # 4 labels: chance is 0.25
    texts = [r["text"] for r in validation]
    student = load_student(tmp_path / "lin")
    assert student.kind == "linear"
    first = student.predict_proba(texts)
    again = load_student(tmp_path / "lin").predict_proba(texts)
    np.testing.assert_allclose(first, again)
    report = evaluate(student, texts, [r["label"] for r in validation])
    assert report.accuracy == pytest.approx(result.metrics["val_accuracy"])


def test_linear_student_is_stored_without_pickle(data, tmp_path):
    train, validation = data
    train_student(StudentConfig(kind="linear"), train, validation, tmp_path / "lin")
    files = {p.name for p in (tmp_path / "lin").iterdir()}
    assert {"linear.npz", "linear.json", "student.json", "README.md"} <= files
    assert not [f for f in files if f.endswith((".pkl", ".joblib", ".bin", ".pickle"))]
    with zipfile.ZipFile(tmp_path / "lin" / "linear.npz") as archive:
        for name in archive.namelist():
            header = archive.read(name)[:128]
            assert b"'descr': '|O'" not in header, "object arrays would need pickle"
    with np.load(tmp_path / "lin" / "linear.npz", allow_pickle=False) as arrays:
        assert arrays["coef"].shape[0] == 4


def test_soft_labels_are_what_the_student_learns(data, tmp_path):
    """A corpus whose teacher distributions disagree with the hard labels: the soft-label
    student follows the distributions, the hard-label one the labels."""
    train, validation = data
    rotate = {
        "cooking": "sport",
        "sport": "technology",
        "technology": "weather",
        "weather": "cooking",
    }
    soft = []
    for row in train:
        dist = {label: 0.02 for label in rotate}
        dist[rotate[row["label"]]] = 0.94
        soft.append({"text": row["text"], "label": row["label"], "soft_labels": json.dumps(dist)})
    rotated_validation = [{**r, "label": rotate[r["label"]]} for r in validation]
    result = train_student(
        StudentConfig(kind="linear"), soft, rotated_validation, tmp_path / "soft", progress=False
    )
    assert result.metrics["val_accuracy"] >= 0.7
    hard = train_student(
        StudentConfig(kind="linear", use_soft_labels=False), soft, validation, tmp_path / "hard"
    )
    assert hard.metrics["val_accuracy"] >= 0.7


def test_validation_labels_the_student_never_saw_are_refused(data, tmp_path):
    train, validation = data
    bad = validation + [{"text": "The election results came in overnight.", "label": "politics"}]
    with pytest.raises(SynthkdError, match="politics"):
        train_student(StudentConfig(kind="linear"), train, bad, tmp_path / "lin")
    assert not (tmp_path / "lin").exists(), "nothing half written"


def test_empty_and_single_label_corpora_are_refused(tmp_path):
    with pytest.raises(SynthkdError, match="empty"):
        train_student(StudentConfig(kind="linear"), [], None, tmp_path / "a")
    one = [{"text": f"text number {i}", "label": "only"} for i in range(10)]
    with pytest.raises(SynthkdError, match="single label"):
        train_student(StudentConfig(kind="linear"), one, None, tmp_path / "b")
    assert not list(tmp_path.iterdir())


def test_without_validation_a_stratified_split_is_held_out(data, tmp_path):
    train, _ = data
    result = train_student(StudentConfig(kind="linear", seed=3), train, None, tmp_path / "lin")
    assert result.train_examples + result.validation_examples == len(train)
    assert result.validation_examples == 24
