"""The frozen-encoder baseline: mean-pooled embeddings + logistic regression.

It trains in seconds; a LoRA student that cannot beat it is not worth its training time,
so every classifier report shows both.
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from transformers import AutoModel, AutoTokenizer

from synthkd.assets import cpu_threads
from synthkd.training._examples import LabelledExamples, weighted_rows
from synthkd.training._files import require_model_dir
from synthkd.training._hf_training import quiet_transformers

if TYPE_CHECKING:
    from synthkd.training.frozen import Embed


@torch.inference_mode()
def mean_pooled_embeddings(
    model_dir: str | Path, texts: list[str], *, max_length: int = 128, batch_size: int = 64
) -> np.ndarray:
    """Sentence embeddings the way all-MiniLM-L6-v2 was trained: masked mean, L2-normalised."""
    torch.set_num_threads(cpu_threads())
    quiet_transformers()
    root = require_model_dir(model_dir, "student.base_model")
    tokenizer = AutoTokenizer.from_pretrained(root)
    model = AutoModel.from_pretrained(root, use_safetensors=True).eval()
    order = np.argsort([len(t) for t in texts])
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    for start in range(0, len(texts), batch_size):
        idx = order[start : start + batch_size]
        batch = tokenizer(
            [texts[i] for i in idx],
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        out[idx] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
    return out


def frozen_encoder_baseline(
    model_dir: str | Path,
    train: LabelledExamples,
    validation: LabelledExamples,
    labels: list[str],
    *,
    use_soft_labels: bool = True,
    max_length: int = 128,
    seed: int = 0,
    embed: Embed | None = None,
) -> dict[str, float]:
    """Validation accuracy and macro-F1 of logistic regression on frozen embeddings: EMBED's
    (a run's shared cache of MODEL_DIR's sentence embeddings, already holding most of these
    texts), else MODEL_DIR's computed here."""
    start = time.perf_counter()
    if embed is None:
        embed = partial(mean_pooled_embeddings, model_dir, max_length=max_length)
    train_x = np.asarray(embed(train.texts), dtype=np.float32)
    val_x = np.asarray(embed(validation.texts), dtype=np.float32)
    rows, classes, weights = weighted_rows(train.targets(labels, use_soft_labels))
    head = LogisticRegression(C=10.0, max_iter=2000, random_state=seed)
    head.fit(train_x[rows], np.asarray(classes), sample_weight=np.asarray(weights))
    predicted = head.classes_[head.predict_proba(val_x).argmax(axis=1)]
    truth = np.asarray([labels.index(label) for label in validation.labels])
    return {
        "accuracy": float(accuracy_score(truth, predicted)),
        "macro_f1": float(f1_score(truth, predicted, average="macro", zero_division=0)),
        "seconds": round(time.perf_counter() - start, 2),
    }
