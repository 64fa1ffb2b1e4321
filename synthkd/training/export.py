"""Serving copies of a MiniLM student: ONNX (fp32) and ONNX int8 (dynamic quantization).

Both are student directories of their own (kind "onnx"), so `evaluate` and `predict`
measure and serve them exactly like the PyTorch student.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from synthkd.assets import cpu_threads
from synthkd.data.onnx import cpu_session, quantize_onnx
from synthkd.data.onnx import export_onnx as export_graph
from synthkd.errors import SynthkdError
from synthkd.training._files import write_json
from synthkd.training._hf_training import forward_batches

EXPORT_FORMATS = ("onnx", "int8")
MODEL_FILE = "model.onnx"


class _LogitsOnly(torch.nn.Module):
    """The exported graph takes ids and mask and returns logits, nothing else."""

    def __init__(self, inner: Any) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.inner(input_ids=input_ids, attention_mask=attention_mask).logits


def export_onnx(
    student: Any, target: Path, *, quantize: bool, fp32_export: Path | None = None
) -> dict[str, Any]:
    """Write `model.onnx` (int8 weights when `quantize`) and the tokenizer into `target`.

    `fp32_export`: this student's ONNX export, if one exists; quantizing it skips a second
    (slow) graph export.
    """
    model = target / MODEL_FILE
    if quantize and fp32_export is not None:
        quantize_onnx(fp32_export, model)
    else:
        export_graph(
            _LogitsOnly(student.model),
            student.tokenizer,
            model,
            output_name="logits",
            quantize=quantize,
        )
    student.tokenizer.save_pretrained(target)
    return {"bytes": model.stat().st_size}


class OnnxStudent:
    """An exported MiniLM student served by onnxruntime."""

    kind = "onnx"

    def __init__(
        self, session: Any, tokenizer: Any, labels: list[str], max_length: int, path: Path
    ):
        self.session = session
        self.tokenizer = tokenizer
        self.labels = list(labels)
        self.max_length = max_length
        self.path = path

    @classmethod
    def load(cls, root: Path, manifest: dict[str, Any]) -> OnnxStudent:
        from transformers import AutoTokenizer

        model = root / MODEL_FILE
        if not model.exists():
            raise SynthkdError(f"{root} has no {MODEL_FILE}: not an exported student")
        session = cpu_session(model, cpu_threads())
        tokenizer = AutoTokenizer.from_pretrained(root)
        max_length = int(manifest.get("config", {}).get("max_length", 128))
        return cls(session, tokenizer, manifest["labels"], max_length, root)

    def predict_proba(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        out = np.empty((len(texts), len(self.labels)), dtype=np.float64)
        for idx in forward_batches(texts, batch_size):
            batch = self.tokenizer(
                [texts[i] for i in idx],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="np",
            )
            feeds = {
                "input_ids": batch["input_ids"].astype(np.int64),
                "attention_mask": batch["attention_mask"].astype(np.int64),
            }
            logits = self.session.run(None, feeds)[0].astype(np.float64)
            logits -= logits.max(axis=1, keepdims=True)
            probs = np.exp(logits)
            out[idx] = probs / probs.sum(axis=1, keepdims=True)
        return out


def exported_manifest(source: dict[str, Any], fmt: str, info: dict[str, Any]) -> dict[str, Any]:
    manifest = {k: v for k, v in source.items() if k not in ("kind", "merged")}
    manifest.update({"kind": "onnx", "format": fmt, "source_kind": source["kind"], **info})
    return manifest


def write_export_manifest(target: Path, manifest: dict[str, Any]) -> None:
    write_json(target / "student.json", manifest)
