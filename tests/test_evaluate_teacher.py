"""The teacher as a classifier, measured with the same `evaluate` as the students: the
embedded llama.cpp teacher scores each label's continuation after a cached header."""

from __future__ import annotations

import numpy as np
import pytest

from synthkd.training import TeacherClassifier, evaluate

pytestmark = pytest.mark.slow  # loads the embedded Gemma teacher (llama.cpp)


@pytest.fixture(scope="module")
def teacher_classifier():
    from synthkd.generators.teachers import teacher_from_spec

    teacher = teacher_from_spec("llamacpp:gemma-3-270m", cache=False)
    header = (
        "Each sentence is labelled with its topic: sport or weather.\n\n"
        "Sentence: The striker scored twice in the final.\nTopic: sport\n\n"
        "Sentence: Heavy rain and strong wind are expected tomorrow.\nTopic: weather\n\n"
        "Sentence: "
    )
    classifier = TeacherClassifier(teacher, ["sport", "weather"], header, "\nTopic:")
    yield classifier
    classifier.close()


def test_teacher_distributions_feed_the_same_report(teacher_classifier):
    texts = [
        "The goalkeeper saved a penalty in extra time.",
        "Snow and frost will cover the hills tonight.",
        "The tennis champion won the final in three sets.",
    ]
    probs = teacher_classifier.predict_proba(texts, batch_size=2)
    assert probs.shape == (3, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    report = evaluate(teacher_classifier, texts, ["sport", "weather", "sport"], latency_samples=2)
    assert report.examples == 3
    assert report.examples_per_s_batch32 > 0
    assert report.accuracy >= 2 / 3  # a 270M base model still gets the easy ones
