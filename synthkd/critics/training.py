"""Training a critic from labels: hold out a split, choose the threshold on labels the
model never saw, report ROC-AUC and the precision-yield curve, and save it with its card.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import train_test_split

from synthkd.critics.card import write_card
from synthkd.critics.config import CriticConfig
from synthkd.critics.critic import Critic
from synthkd.critics.curve import choose_threshold, evaluate, plot_precision_yield
from synthkd.critics.encoder import DEFAULT_BACKEND, SentenceEncoder
from synthkd.critics.head import VIEWS, LogisticHead, out_of_fold, pair_features
from synthkd.critics.labels import SOURCES, CriticLabel, LabelSet
from synthkd.critics.progress import progress_bar
from synthkd.critics.records import kind_of, pair_of, render
from synthkd.data import staged_dir
from synthkd.errors import SynthkdError

MIN_PER_CLASS = 8
"""Fewest labels of each class: enough for a held-out split and cross-validated calibration."""
HOLDOUT = 0.25
VIEW_MARGIN = 0.02
"""Cross-validated ROC-AUC by which the one-feature view must win to be chosen."""
LORA_MIN_LABELS = 2000
"""With `method="auto"`, this many labels switch from the logistic head to a LoRA cross-encoder."""


def _deduplicated(labels: list[CriticLabel]) -> list[CriticLabel]:
    """One label per record; a human answer beats a judge's, which beats an automatic one."""
    rank = {source: i for i, source in enumerate(SOURCES)}
    best: dict[str, CriticLabel] = {}
    for label in labels:
        key = label.row.get("id") or json.dumps(label.row, sort_keys=True, default=str)
        current = best.get(key)
        if current is None or rank[label.source] <= rank[current.source]:
            best[key] = label
    return list(best.values())


def label_sources(counts: dict[str, dict[str, int]]) -> dict[str, int]:
    """The critic's training labels by where they came from (for its card and the report)."""

    def n(source: str, side: str) -> int:
        return int(counts.get(source, {}).get(side, 0))

    out = {
        "seed_positives": n("auto", "accept"),
        "corruption_negatives": n("auto", "reject"),
        "evidence_positives": n("evidence", "accept"),
        "evidence_negatives": n("evidence", "reject"),
    }
    for source in ("human", "judge"):
        if source in counts:
            out[f"{source}_positives"] = n(source, "accept")
            out[f"{source}_negatives"] = n(source, "reject")
    return out


def check_labels(labels: LabelSet) -> tuple[list[CriticLabel], np.ndarray]:
    """The usable labels and their 0/1 vector; SynthkdError for one class or too few."""
    usable = _deduplicated(labels.labels)
    y = np.array([label.accept for label in usable], dtype=np.int64)
    accepted, rejected = int(y.sum()), int(len(y) - y.sum())
    if not usable:
        if labels.dropped:
            why = ", ".join(f"{k}: {v}" for k, v in sorted(labels.dropped.items()))
            raise SynthkdError(f"no usable critic labels ({why})")
        raise SynthkdError("no critic labels: give a label file, a judge, or seed examples")
    if accepted == 0 or rejected == 0:
        only = "acceptable" if accepted else "unacceptable"
        raise SynthkdError(
            f"all {len(usable)} critic labels are {only}; a critic needs examples of both classes"
        )
    if min(accepted, rejected) < MIN_PER_CLASS:
        raise SynthkdError(
            f"too few critic labels to hold out a split: {accepted} acceptable and {rejected} "
            f"unacceptable; need at least {MIN_PER_CLASS} of each"
        )
    return usable, y


def train_critic(
    labels: LabelSet,
    config: CriticConfig,
    out_dir: str | Path,
    *,
    kind: str | None = None,
    method: str = "auto",
    seed: int = 0,
    encoder_dir: str | Path | None = None,
    encoder_backend: str = DEFAULT_BACKEND,
    progress: bool = False,
    lora_steps: int | None = None,
) -> Critic:
    """Fit a critic on `labels` and save it (with card and plot) to `out_dir`.

    `method`: "logistic" (frozen MiniLM embeddings, calibrated logistic head), "lora"
    (MiniLM cross-encoder fine-tuned with LoRA for `lora_steps` optimizer steps, default
    3 epochs and at least 200), or "auto" (lora from LORA_MIN_LABELS labels on).
    `encoder_backend`: "onnx-int8" (default, fast on CPU) or "torch" (fp32) embeddings.
    Labels are checked before anything is written; the directory appears complete or
    not at all (it is built beside `out_dir` and moved into place).
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not (out_dir / "critic.json").exists() and any(out_dir.iterdir()):
        raise SynthkdError(f"{out_dir} exists and is not a critic directory; not replacing it")
    usable, y = check_labels(labels)
    rows = [label.row for label in usable]
    kind = kind_of(rows, kind)
    if method == "auto":
        method = "lora" if len(usable) >= LORA_MIN_LABELS else "logistic"
    if method not in ("logistic", "lora"):
        raise SynthkdError(f"unknown critic method {method!r}; expected logistic, lora or auto")
    index = np.arange(len(usable))
    train, held = train_test_split(index, test_size=HOLDOUT, stratify=y, random_state=seed)
    pairs = [pair_of(row, kind) for row in rows]
    enc_dir = str(encoder_dir) if encoder_dir is not None else None

    critic = Critic(kind=kind, method=method, threshold=0.5, target_precision=0.0, version="")
    critic.encoder_dir = enc_dir
    critic.encoder_backend = encoder_backend
    if method == "logistic":
        encoder = SentenceEncoder(enc_dir, backend=encoder_backend)
        critic._encoder = encoder
        texts = [a for a, _ in pairs] + [b for _, b in pairs]
        with progress_bar("embedding labelled records", len(set(texts)), progress) as advance:
            vectors = encoder.encode(texts, on_batch=advance)
        u, v = vectors[: len(rows)], vectors[len(rows) :]
        candidates = {}
        for view in VIEWS:
            X = pair_features(u, v, view)
            oof = out_of_fold(X[train], y[train], seed)
            candidates[view] = (float(roc_auc_score(y[train], oof)), oof, X)
        # the richer view unless the single cosine is clearly better (it is when few
        # automatic labels make 385 features memorise recombined seeds)
        view = "interaction"
        if candidates["agreement"][0] > candidates["interaction"][0] + VIEW_MARGIN:
            view = "agreement"
        _, selection_scores, X = candidates[view]
        selection_y = y[train]
        critic.head = LogisticHead.fit(X[train], y[train], seed, view=view)
        held_scores = critic.head.predict(X[held])
        fingerprint = critic.head.fingerprint()
        view_auc = {name: round(c[0], 4) for name, c in candidates.items()}
    else:
        from synthkd.critics.crossencoder import CrossEncoderHead

        left, right = [a for a, _ in pairs], [b for _, b in pairs]
        head, selection_scores, selection_y = CrossEncoderHead.fit(
            [left[i] for i in train],
            [right[i] for i in train],
            y[train],
            enc_dir,
            seed,
            progress,
            steps=lora_steps,
        )
        critic.cross_encoder = head
        held_scores = head.predict([left[i] for i in held], [right[i] for i in held])
        fingerprint = head.fingerprint()
        view_auc = {}

    cut = choose_threshold(selection_scores, selection_y, config.target_precision)
    held_cut = evaluate(held_scores, y[held], cut.threshold)
    critic.threshold = cut.threshold
    critic.target_precision = config.target_precision
    digest = hashlib.sha256(fingerprint + repr(cut.threshold).encode()).hexdigest()[:10]
    critic.version = f"critic-{kind}-{method}-{digest}"
    critic.label_counts = LabelSet(usable).counts()
    critic.metrics = {
        "labels": len(usable),
        "train": len(train),
        "holdout": len(held),
        "holdout_roc_auc": float(roc_auc_score(y[held], held_scores)),
        "holdout_average_precision": float(average_precision_score(y[held], held_scores)),
        "holdout_base_rate": float(y[held].mean()),
        "holdout_precision_at_threshold": held_cut.precision,
        "holdout_kept_share": held_cut.kept_share,
        "selection_precision_at_threshold": cut.precision,
        "selection_kept_share": cut.kept_share,
        "target_met": cut.met,
        "feature_view": critic.head.view if critic.head is not None else "cross-encoder",
        "cross_validated_roc_auc_by_view": view_auc,
        "label_sources": label_sources(critic.label_counts),
        "dropped_labels": dict(labels.dropped),
    }
    _save(critic, out_dir, usable, y, held, held_scores, selection_scores, selection_y, cut)
    return critic


def _save(critic, out_dir, usable, y, held, held_scores, selection_scores, selection_y, cut):
    out_dir = out_dir.resolve()
    with staged_dir(out_dir) as staging:
        critic.save_model(staging)
        held_set = set(held.tolist())
        pq.write_table(
            pa.table(
                {
                    "id": [str(label.row.get("id") or "") for label in usable],
                    "record": [render(label.row, critic.kind) for label in usable],
                    "accept": pa.array(y.tolist(), pa.int8()),
                    "source": [label.source for label in usable],
                    "rationale": [label.rationale for label in usable],
                    "split": ["holdout" if i in held_set else "train" for i in range(len(usable))],
                }
            ),
            staging / "labels.parquet",
        )
        selection = (
            "cross-validated training labels"
            if critic.method == "logistic"
            else "calibration split"
        )
        plot_precision_yield(
            staging / "precision_yield.png",
            {selection: (selection_scores, selection_y), "held-out split": (held_scores, y[held])},
            cut,
            critic.target_precision,
            f"{critic.kind} critic ({critic.method})",
        )
        write_card(staging / "README.md", critic, selection)
    critic.path = out_dir
