"""The contrastive student (SetFit-style): MiniLM tuned on the real examples' same/other
label pairs, then a logistic head. Real MiniLM, real training, a tiny budget."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from synthkd.critics.evidence import EmbeddingCache
from synthkd.errors import SynthkdError
from synthkd.training import (
    ContrastiveConfig,
    SelectionConfig,
    fit_best,
    labelled_examples,
    load_student,
    select_student,
)
from synthkd.training.contrastive import contrastive_student

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "news_topics"
TINY = ContrastiveConfig(epochs=2, batch_size=8, max_length=48, learning_rate=1e-4)


def _rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (EXAMPLES / name).read_text().splitlines() if line]


@pytest.fixture(scope="module")
def news():
    rows = _rows("seeds.jsonl") + _rows("validation.jsonl")
    labels = sorted({r["label"] for r in rows})
    take = {label: [r for r in rows if r["label"] == label] for label in labels}
    real = [r for label in labels for r in take[label][:6]]
    held = [r for label in labels for r in take[label][6:10]]
    return {"labels": labels, "real": real, "held": held}


def _separation(vectors: np.ndarray, labels: list[str]) -> float:
    """Mean cosine of same-label pairs minus that of other-label pairs."""
    sims = vectors @ vectors.T
    same = np.equal.outer(labels, labels)
    off = ~np.eye(len(labels), dtype=bool)
    return float(sims[same & off].mean() - sims[~same].mean())


def test_tuning_pulls_each_label_together(news):
    train = labelled_examples(news["real"])
    student = contrastive_student(train, news["labels"], config=TINY)
    texts, labels = [r["text"] for r in news["held"]], [r["label"] for r in news["held"]]
    stock = EmbeddingCache()(texts)
    tuned = student.encoder(texts)
    # on texts it never saw, the tuned space separates the labels more than stock MiniLM
    assert _separation(tuned, labels) > _separation(stock, labels)
    assert student.trained["how"] == "contrastive" and student.trained["tuning_texts"] == len(train)
    with pytest.raises(SynthkdError, match="two labels"):
        contrastive_student(labelled_examples(news["real"][:3]), news["labels"][:1], config=TINY)


def test_selected_saved_and_loaded_like_any_student(news, tmp_path):
    config = SelectionConfig(
        folds=3,
        repeats=2,
        candidates=("frozen", "contrastive"),
        contrastive=TINY,
        contrastive_folds=2,
    )
    embed = EmbeddingCache()
    selection = select_student(
        news["real"], news["held"], news["labels"], embed=embed, config=config
    )
    by_name = {c.name: c for c in selection.ranking}
    assert by_name["contrastive/real"].folds == 2
    assert "contrastive_corpus" in by_name["contrastive/corpus+real"].skipped
    # each candidate is ranked on all of its own folds (a few shared folds chose by noise)
    frozen = by_name["frozen/real"]
    assert frozen.folds == 6
    assert selection.metric == "macro_f1"  # kinds are ranked by what the user sees
    assert frozen.ranked_by == pytest.approx(frozen.macro_f1, abs=1e-4)
    only = type(selection)(ranking=[by_name["contrastive/real"]], metric=selection.metric)
    student = fit_best(
        only, news["real"], None, news["labels"], embed=embed, config=config, out_dir=tmp_path
    )
    manifest = json.loads((tmp_path / "student.json").read_text())
    assert manifest["trained"]["how"] == "contrastive" and manifest["selected_by"]["best"]
    assert (tmp_path / "encoder" / "model.safetensors").is_file()
    again = load_student(tmp_path)  # a fresh process's view: the tuned encoder from disk
    texts = [r["text"] for r in news["held"]]
    proba = again.predict_proba(texts)
    assert np.allclose(proba, student.predict_proba(texts), atol=1e-4)
    truth = [news["labels"].index(r["label"]) for r in news["held"]]
    assert (proba.argmax(axis=1) == truth).mean() >= 0.75
