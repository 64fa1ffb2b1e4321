"""The trained critic: P(acceptable) for a record, a threshold chosen for a target
precision, and a per-label cut that keeps the corpus balanced.

Saved as numbers and JSON (never pickle): `critic.json` (settings, threshold, metrics),
`head.safetensors` (logistic head) or `adapter/` (LoRA cross-encoder), `labels.parquet`,
`README.md` (the critic card) and `precision_yield.png`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from synthkd.critics.config import CriticConfig
from synthkd.critics.encoder import DEFAULT_BACKEND, SentenceEncoder
from synthkd.critics.head import LogisticHead
from synthkd.critics.progress import progress_bar
from synthkd.critics.records import Row, as_rows, group_of, kind_of, pair_of
from synthkd.errors import SynthkdError

FORMAT_VERSION = 1
METHODS = ("logistic", "lora")
BALANCED_KINDS = ("labelled", "commonsense")
"""Kinds whose group column (label, relation) has few values worth a quota each;
document KG predicates are open-ended, so those corpora get one global threshold."""


@dataclass
class Critic:
    """A trained critic; `score` gives P(acceptable), `threshold` the chosen cut."""

    kind: str
    method: str
    """"logistic" (MiniLM embeddings + calibrated logistic head) or "lora" (cross-encoder)."""
    threshold: float
    target_precision: float
    version: str
    """What goes into every scored record's `critic_version`."""
    encoder_dir: str | None = None
    """Base model directory; None: the bundled all-MiniLM-L6-v2."""
    encoder_backend: str = DEFAULT_BACKEND
    """How the logistic critic's embeddings are computed ("onnx-int8" or "torch");
    scoring uses the backend training used."""
    metrics: dict[str, Any] = field(default_factory=dict)
    label_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    head: LogisticHead | None = None
    cross_encoder: Any = None
    path: Path | None = None
    _encoder: SentenceEncoder | None = field(default=None, repr=False)

    def encoder(self) -> SentenceEncoder:
        if self._encoder is None:
            self._encoder = SentenceEncoder(self.encoder_dir, backend=self.encoder_backend)
        return self._encoder

    def score(
        self, rows: pa.Table | Iterable[Mapping[str, Any]], progress: bool = False
    ) -> np.ndarray:
        """P(acceptable) of each record, in order."""
        rows = as_rows(rows)
        if not rows:
            return np.zeros(0, dtype=np.float64)
        kind_of(rows, self.kind)
        pairs = [pair_of(row, self.kind) for row in rows]
        left, right = [a for a, _ in pairs], [b for _, b in pairs]
        if self.method == "lora":
            with progress_bar("critic scoring", len(rows), progress) as advance:
                return self.cross_encoder.predict(left, right, on_batch=advance)
        unique = len(set(left) | set(right))
        with progress_bar("critic scoring", unique, progress) as advance:
            vectors = self.encoder().encode(left + right, on_batch=advance)
        return self.head.predict_pairs(vectors[: len(rows)], vectors[len(rows) :])

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "kind": self.kind,
            "method": self.method,
            "threshold": self.threshold,
            "target_precision": self.target_precision,
            "version": self.version,
            "encoder_dir": self.encoder_dir,
            "encoder_backend": self.encoder_backend,
            "metrics": self.metrics,
            "label_counts": self.label_counts,
        }

    def save_model(self, directory: Path) -> None:
        """Write critic.json and the model weights (the card is written by training)."""
        (directory / "critic.json").write_text(json.dumps(self.to_json(), indent=2) + "\n")
        if self.method == "logistic":
            self.head.save(directory / "head.safetensors")
        else:
            self.cross_encoder.save(directory / "adapter")

    @classmethod
    def load(cls, directory: str | Path) -> Critic:
        """A critic saved by `train_critic`; SynthkdError when the directory is not one."""
        directory = Path(directory)
        meta_path = directory / "critic.json"
        if not meta_path.is_file():
            raise SynthkdError(f"not a critic directory (no critic.json): {directory}")
        try:
            meta = json.loads(meta_path.read_text())
        except ValueError:
            raise SynthkdError(f"{meta_path} is not valid JSON") from None
        if meta.get("format_version") != FORMAT_VERSION or meta.get("method") not in METHODS:
            raise SynthkdError(f"{meta_path} is not a critic this synthkd version can read")
        try:
            critic = cls(
                kind=meta["kind"],
                method=meta["method"],
                threshold=float(meta["threshold"]),
                target_precision=float(meta["target_precision"]),
                version=meta["version"],
                encoder_dir=meta.get("encoder_dir"),
                encoder_backend=meta.get("encoder_backend", DEFAULT_BACKEND),
                metrics=meta.get("metrics", {}),
                label_counts=meta.get("label_counts", {}),
                path=directory,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SynthkdError(f"{meta_path} is damaged (bad or missing field {exc})") from None
        weights = directory / ("head.safetensors" if critic.method == "logistic" else "adapter")
        try:
            if critic.method == "logistic":
                if not weights.is_file():
                    raise SynthkdError(f"critic directory has no head.safetensors: {directory}")
                critic.head = LogisticHead.load(weights)
            else:
                from synthkd.critics.crossencoder import CrossEncoderHead

                critic.cross_encoder = CrossEncoderHead.load(weights, critic.encoder_dir)
        except SynthkdError:
            raise
        except Exception as exc:  # the loaders raise assorted errors on a damaged file
            text = " ".join(str(exc).split())[:160] or type(exc).__name__
            raise SynthkdError(f"damaged critic file {weights}: {text}") from None
        return critic


def score(
    critic: Critic, rows: pa.Table | Iterable[Mapping[str, Any]], progress: bool = False
) -> np.ndarray:
    """P(acceptable) of each record under `critic`, in order."""
    return critic.score(rows, progress=progress)


def accept_mask(
    critic: Critic,
    rows: pa.Table | Iterable[Mapping[str, Any]],
    scores: np.ndarray,
    config: CriticConfig,
) -> np.ndarray:
    """Which records the critic keeps.

    Without balance: score >= threshold. With balance (labelled and commonsense): the
    threshold decides how large a share of the corpus to keep, and every label
    (relation) keeps that same share of its own records, its best-scored ones, so the
    class proportions the generator asked for survive the cut. With `enabled` False,
    every record is kept.
    """
    rows = as_rows(rows)
    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) != len(rows):
        raise SynthkdError(f"{len(scores)} scores for {len(rows)} records")
    if not config.enabled:
        return np.ones(len(rows), dtype=bool)
    above = scores >= critic.threshold
    if not config.balance or critic.kind not in BALANCED_KINDS or not len(rows):
        return above
    share = float(above.mean())
    keep = np.zeros(len(rows), dtype=bool)
    groups: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(group_of(row, critic.kind), []).append(i)
    for members in groups.values():
        quota = int(np.floor(share * len(members) + 0.5))
        ranked = sorted(members, key=lambda i: (-scores[i], i))
        keep[ranked[:quota]] = True
    return keep


def apply_critic(
    critic: Critic,
    rows: pa.Table | Iterable[Mapping[str, Any]],
    config: CriticConfig,
    scores: np.ndarray | None = None,
    progress: bool = False,
) -> list[Row]:
    """The rows with `critic_score`, `critic_version` and `accepted` filled in."""
    rows = as_rows(rows)
    if scores is None:
        scores = critic.score(rows, progress=progress)
    keep = accept_mask(critic, rows, scores, config)
    return [
        {**row, "critic_score": float(s), "critic_version": critic.version, "accepted": bool(k)}
        for row, s, k in zip(rows, scores, keep, strict=True)
    ]
