"""Sentence embeddings from all-MiniLM-L6-v2 (transformers AutoModel + mean pooling), offline.

The critic embeds the two sides of a record (text and label, head and tail, quote and
triple) and its head learns whether they agree. Texts are embedded once per call even
when many records share them (a head event, a label, a quote).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from synthkd.assets import minilm_dir
from synthkd.errors import SynthkdError

DEFAULT_BATCH_SIZE = 64
DEFAULT_MAX_LENGTH = 128


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def configure_torch_threads() -> int:
    """Use every CPU this process may run on (SYNTHKD_THREADS overrides), once."""
    import torch

    wanted = int(os.environ.get("SYNTHKD_THREADS") or available_cpus())
    if torch.get_num_threads() != wanted:
        torch.set_num_threads(max(1, wanted))
    return torch.get_num_threads()


class SentenceEncoder:
    """Mean-pooled, L2-normalised sentence embeddings from a local BERT-family model."""

    def __init__(
        self,
        model_dir: str | Path | None = None,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_length: int = DEFAULT_MAX_LENGTH,
    ) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        path = Path(model_dir) if model_dir is not None else minilm_dir()
        if not (path / "config.json").exists():
            raise SynthkdError(f"encoder model directory has no config.json: {path}")
        configure_torch_threads()
        self.model_dir = path
        self.batch_size = batch_size
        self.max_length = max_length
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModel.from_pretrained(path, local_files_only=True).eval()
        self.dim = int(self.model.config.hidden_size)
        self._torch = torch

    @property
    def name(self) -> str:
        return self.model_dir.name if self.model_dir != minilm_dir() else "all-MiniLM-L6-v2"

    def encode(
        self, texts: Sequence[str], on_batch: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """(len(texts), dim) float32 embeddings; duplicates are encoded once.

        Texts are sorted by length so each batch pads to a similar length.
        """
        unique = list(dict.fromkeys(texts))
        order = sorted(range(len(unique)), key=lambda i: len(unique[i]))
        vectors = np.zeros((len(unique), self.dim), dtype=np.float32)
        torch = self._torch
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                encoded = self.tokenizer(
                    [unique[i] for i in batch],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                )
                hidden = self.model(**encoded).last_hidden_state
                mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                vectors[batch] = pooled.numpy()
                if on_batch is not None:
                    on_batch(len(batch))
        position = {text: i for i, text in enumerate(unique)}
        return vectors[[position[t] for t in texts]]
