"""MiniLM embeddings computed once per text, shared by the evidence, the critic's cut and the
students (see critics/encoder.py for the encoder itself)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from synthkd.critics.encoder import DEFAULT_BACKEND, SentenceEncoder


class EmbeddingCache:
    """MiniLM sentence embeddings, each distinct text encoded once.

    Callable as `cache(texts) -> (len(texts), dim) float32`; pass the same cache to the
    evidence, the critic's cut and the student selection so no text is encoded twice.
    """

    def __init__(
        self,
        encoder: Any | None = None,
        *,
        model_dir: str | None = None,
        backend: str = DEFAULT_BACKEND,
    ) -> None:
        self._encoder = encoder
        self._model_dir = model_dir
        self._backend = backend
        self._vectors: dict[str, np.ndarray] = {}

    @property
    def encoder(self) -> Any:
        if self._encoder is None:
            self._encoder = SentenceEncoder(self._model_dir, backend=self._backend)
        return self._encoder

    def __len__(self) -> int:
        return len(self._vectors)

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        # one text per forward pass: the int8 encoder quantises activations per batch, so a
        # text's vector would otherwise depend on its batch-mates, and a resumed run (other
        # batches) could decide other labels than an uninterrupted one
        for text in dict.fromkeys(texts):
            if text not in self._vectors:
                self._vectors[text] = self.encoder.encode([text])[0]
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([self._vectors[t] for t in texts]).astype(np.float32, copy=False)


__all__ = ["EmbeddingCache"]
