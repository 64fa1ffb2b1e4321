"""Labels from evidence: real MiniLM embeddings, real-style news examples, cleanlab.

A record whose asked-for label contradicts both the classifier on the user's examples
and the teacher must never keep that label: it is relabelled or rejected with
`label_disagreement`. Unlabelled-pool records carry their lineage.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from synthkd.critics.evidence import (
    REASON,
    EmbeddingCache,
    LabelEvidenceConfig,
    label_evidence,
)
from synthkd.critics.pool import SOURCE, label_pool
from synthkd.errors import SynthkdError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "news_topics"


def _rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (EXAMPLES / name).read_text().splitlines() if line]


@pytest.fixture(scope="module")
def news():
    seeds, validation = _rows("seeds.jsonl"), _rows("validation.jsonl")
    labels = sorted({r["label"] for r in seeds})
    per_label: dict[str, list[dict]] = {label: [] for label in labels}
    for row in validation:
        per_label[row["label"]].append(row)
    real = seeds + [r for label in labels for r in per_label[label][:10]]
    pool = [r for label in labels for r in per_label[label][10:16]]  # 30 unseen texts
    return {"labels": labels, "real": real, "pool": pool, "embed": EmbeddingCache()}


def _corpus(news, wrong_every: int = 5, teacher: bool = True):
    """The pool texts as generated records; every `wrong_every`-th asks for a wrong label."""
    labels = news["labels"]
    records, wrong = [], []
    for i, row in enumerate(news["pool"]):
        truth = row["label"]
        asked = labels[(labels.index(truth) + 2) % len(labels)] if i % wrong_every == 0 else truth
        record = {"text": row["text"], "label": asked}
        if teacher:
            record["soft_labels"] = json.dumps(
                {truth: 0.7, asked: 0.3} if asked != truth else {truth: 1.0}
            )
        records.append(record)
        if asked != truth:
            wrong.append((i, truth))
    return records, wrong


def test_contradicted_labels_are_relabelled_or_rejected(news):
    records, wrong = _corpus(news)
    real = news["real"]
    evidence = label_evidence(
        records,
        [r["text"] for r in real],
        [r["label"] for r in real],
        news["labels"],
        embed=news["embed"],
    )
    assert set(evidence.weights) == {"prompt", "real", "oof", "teacher"}
    labels = news["labels"]
    real_votes = evidence.signals["real"].argmax(axis=1)
    contradicted = [(i, t) for i, t in wrong if labels[real_votes[i]] != records[i]["label"]]
    assert len(contradicted) >= 4  # the user's examples disagree with most wrong prompts
    for i, truth in contradicted:  # ... and so does the teacher (its soft_labels)
        assert evidence.decisions[i] in ("relabelled", "rejected")
        if evidence.decisions[i] == "relabelled":
            assert evidence.final_labels[i] == truth
            assert max(evidence.soft_labels[i], key=evidence.soft_labels[i].get) == truth
        else:
            assert evidence.reasons[i] == REASON and evidence.soft_labels[i] is None
    assert sum(d == "relabelled" for d in evidence.decisions) >= len(wrong) // 2
    right = [i for i in range(len(records)) if i not in dict(wrong)]
    assert sum(evidence.decisions[i] == "kept" for i in right) >= 0.8 * len(right)

    counts = evidence.counts()
    assert sum(
        sum(c[k] for k in ("kept", "relabelled", "dropped")) for c in counts.values()
    ) == len(records)
    accepted, rejects = evidence.apply(records)
    assert len(accepted) + len(rejects) == len(records)
    assert all(r["reason"] == REASON for r in rejects)
    soft = json.loads(accepted[0]["soft_labels"])
    assert abs(sum(soft.values()) - 1) < 0.01 and accepted[0]["label"] in soft


def test_without_teacher_a_weak_teacher_gets_no_vote(news):
    records, wrong = _corpus(news, teacher=False)
    real = news["real"]
    evidence = label_evidence(
        records,
        [r["text"] for r in real],
        [r["label"] for r in real],
        news["labels"],
        embed=news["embed"],
    )
    assert "teacher" not in evidence.weights
    labels = news["labels"]
    real_votes = evidence.signals["real"].argmax(axis=1)
    for i, _ in wrong:
        if labels[real_votes[i]] != records[i]["label"]:
            assert evidence.decisions[i] != "kept"

    # a teacher that is wrong on every real example is weighed at zero
    teacher_records = [{**r, "soft_labels": {r["label"]: 1.0}} for r in records]
    bad = [{labels[(labels.index(r["label"]) + 1) % len(labels)]: 1.0} for r in real]
    evidence = label_evidence(
        teacher_records,
        [r["text"] for r in real],
        [r["label"] for r in real],
        labels,
        embed=news["embed"],
        teacher_real=bad,
    )
    assert evidence.weights["teacher"] == 0.0


def test_bad_input_is_one_line(news):
    real = news["real"]
    with pytest.raises(SynthkdError, match="outside the label set"):
        label_evidence(
            [{"text": "a story", "label": "weather"}],
            [r["text"] for r in real],
            [r["label"] for r in real],
            news["labels"],
            embed=news["embed"],
        )
    with pytest.raises(SynthkdError, match="two or more labels"):
        label_evidence([{"text": "x", "label": "a"}], ["x"], ["a"], ["a"])
    with pytest.raises(SynthkdError, match="relabel"):
        LabelEvidenceConfig(relabel_confidence=2.0)


def test_pool_records_carry_lineage():
    labels = ["negative", "positive"]
    texts = ["great flight, thanks!", "lost my bag again", "on time", "on time"]
    proba = np.array([[0.05, 0.95], [0.9, 0.1], [0.55, 0.45], [0.55, 0.45]])
    teacher = [{"positive": 0.9, "negative": 0.1}, {"positive": 0.6, "negative": 0.4}, None, None]
    records = label_pool(texts, proba, labels, teacher)
    assert [r["text"] for r in records] == ["great flight, thanks!"]  # agreement, confidently
    record = records[0]
    assert record["source"] == SOURCE == "unlabelled_pool"
    assert json.loads(record["meta"])["source"] == SOURCE
    assert record["label"] == "positive"
    assert json.loads(record["soft_labels"])["positive"] == pytest.approx(0.925)
    alone = label_pool(texts[:2], proba[:2], labels, min_confidence=0.8, alone_confidence=0.9)
    assert [r["label"] for r in alone] == ["positive", "negative"]
    with pytest.raises(SynthkdError):
        label_pool(texts, proba[:2], labels)
