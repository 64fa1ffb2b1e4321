"""Sentence embeddings from all-MiniLM-L6-v2 (mean pooling, L2-normalised), offline.

The critic embeds the two sides of a record (text and label, head and tail, quote and
triple) and its head learns whether they agree. Two backends give the same vectors up
to int8 rounding (cosine 0.99 on news stories):
- "onnx-int8" (default): the transformers model exported once to ONNX with pooling in
  the graph, weights quantized to int8 by onnxruntime, cached under synthkd's cache
  directory. About 2.5x the CPU throughput of PyTorch fp32, which is what lets a 2-core
  machine score a round's corpus in seconds.
- "torch": transformers AutoModel under torch.inference_mode, fp32.
A critic is trained and scored with the same backend (it is saved in critic.json).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from synthkd.assets import cache_dir, cache_lock, cpu_threads, minilm_dir
from synthkd.data.onnx import cpu_session, export_onnx
from synthkd.errors import SynthkdError

BACKENDS = ("onnx-int8", "torch")
DEFAULT_BACKEND = "onnx-int8"
DEFAULT_BATCH_SIZE = 32
DEFAULT_MAX_LENGTH = 128
_EXPORT_VERSION = "1"


def configure_torch_threads() -> int:
    """Let torch use every available CPU (and no more: oversubscription thrashes)."""
    import torch

    wanted = cpu_threads()
    if torch.get_num_threads() != wanted:
        torch.set_num_threads(wanted)
    return torch.get_num_threads()


def _pooled_module(model):
    import torch

    class MeanPooled(torch.nn.Module):
        def __init__(self, encoder) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids, attention_mask):
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask)[0]
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    return MeanPooled(model).eval()


def onnx_int8_model(model_dir: Path, tokenizer, load_model: Callable[[], Any]) -> Path:
    """The cached int8 ONNX export of `model_dir` (made once, atomically). LOAD_MODEL gives
    the PyTorch encoder, loaded only when there is no export yet (torch costs seconds)."""
    weights = sorted(model_dir.glob("*.safetensors")) or sorted(model_dir.glob("*.bin"))
    stamp = [str(model_dir.resolve()), _EXPORT_VERSION]
    stamp += [f"{w.name}:{w.stat().st_size}:{int(w.stat().st_mtime)}" for w in weights]
    key = hashlib.sha256("|".join(stamp).encode()).hexdigest()[:16]
    target = cache_dir() / "critic-encoders" / f"{model_dir.name}-{key}.int8.onnx"
    if target.is_file():
        return target
    with cache_lock(target.name):
        if target.is_file():  # exported by another process while we waited
            return target
        return export_onnx(
            _pooled_module(load_model()),
            tokenizer,
            target,
            output_name="sentence_embedding",
            quantize=True,
            per_channel=True,
        )


class SentenceEncoder:
    """Mean-pooled, L2-normalised sentence embeddings from a local BERT-family model."""

    def __init__(
        self,
        model_dir: str | Path | None = None,
        *,
        backend: str = DEFAULT_BACKEND,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_length: int = DEFAULT_MAX_LENGTH,
    ) -> None:
        from transformers import AutoTokenizer

        if backend not in BACKENDS:
            raise SynthkdError(
                f"unknown encoder backend {backend!r}; expected {', '.join(BACKENDS)}"
            )
        path = Path(model_dir) if model_dir is not None else minilm_dir()
        if not (path / "config.json").exists():
            raise SynthkdError(f"encoder model directory has no config.json: {path}")
        self.model_dir = path
        self.backend = backend
        self.batch_size = batch_size
        self.max_length = max_length
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self._model = None
        self._session = None
        if backend == "torch":
            self._model = self._torch_model()
        else:
            self._session = self._onnx_session()

    def _torch_model(self):
        from transformers import AutoModel
        from transformers.utils import logging as hf_logging

        configure_torch_threads()
        hf_logging.disable_progress_bar()  # a local load: "Loading weights" bars are noise
        model = AutoModel.from_pretrained(self.model_dir, local_files_only=True).eval()
        return _pooled_module(model)

    def _onnx_session(self):
        model_file = onnx_int8_model(
            self.model_dir, self.tokenizer, lambda: self._torch_model().encoder
        )
        return cpu_session(model_file, cpu_threads())  # the students' session options

    def _embed(self, texts: list[str]) -> np.ndarray:
        if self._session is not None:
            encoded = self.tokenizer(
                texts,
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="np",
            )
            feeds = {
                "input_ids": encoded["input_ids"].astype(np.int64),
                "attention_mask": encoded["attention_mask"].astype(np.int64),
            }
            return self._session.run(None, feeds)[0]
        import torch

        encoded = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        with torch.inference_mode():
            return self._model(encoded["input_ids"], encoded["attention_mask"]).float().numpy()

    def encode(
        self, texts: Sequence[str], on_batch: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """(len(texts), dim) float32 embeddings; duplicates are encoded once.

        Texts are sorted by length so each batch pads to a similar length.
        """
        unique = list(dict.fromkeys(texts))
        order = sorted(range(len(unique)), key=lambda i: len(unique[i]))
        vectors: np.ndarray | None = None
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            embedded = self._embed([unique[i] for i in batch])
            if vectors is None:
                vectors = np.zeros((len(unique), embedded.shape[1]), dtype=np.float32)
            vectors[batch] = embedded
            if on_batch is not None:
                on_batch(len(batch))
        if vectors is None:
            return np.zeros((0, 0), dtype=np.float32)
        position = {text: i for i, text in enumerate(unique)}
        return vectors[[position[t] for t in texts]]
