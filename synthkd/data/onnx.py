"""One ONNX export for every encoder we serve: the critic's sentence encoder and students.

A module taking `(input_ids, attention_mask)` is exported with dynamic batch and
sequence axes (torch's dynamo exporter), optionally with int8 weights (onnxruntime's
dynamic quantization), and lands at its path whole or not at all. torch and onnxruntime
are imported only when an export runs, so reading corpora never pays for them.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any


def export_onnx(
    module: Any,
    tokenizer: Any,
    path: str | Path,
    *,
    output_name: str,
    max_length: int = 512,
    quantize: bool = False,
    per_channel: bool = False,
) -> Path:
    """Export `module(input_ids, attention_mask) -> output_name` to `path` (int8 weights
    when `quantize`); the file appears atomically."""
    import torch

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    example = tokenizer(
        ["a short example", "a slightly longer example sentence"],
        padding=True,
        return_tensors="pt",
    )
    batch = torch.export.Dim("batch", min=1, max=4096)
    sequence = torch.export.Dim("sequence", min=1, max=max_length)
    with tempfile.TemporaryDirectory(prefix=f".{target.name}.", dir=target.parent) as tmp:
        fp32 = Path(tmp) / "model.onnx"
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
            torch.inference_mode(False),
        ):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module.eval(),
                (example["input_ids"], example["attention_mask"]),
                str(fp32),
                input_names=["input_ids", "attention_mask"],
                output_names=[output_name],
                dynamic_shapes={
                    "input_ids": {0: batch, 1: sequence},
                    "attention_mask": {0: batch, 1: sequence},
                },
                external_data=False,
                dynamo=True,
                verbose=False,
            )
        if quantize:
            return quantize_onnx(fp32, target, per_channel=per_channel)
        os.replace(fp32, target)
    return target


def quantize_onnx(source: str | Path, path: str | Path, *, per_channel: bool = False) -> Path:
    """An int8 copy (dynamic quantization of the weights) of the ONNX file `source`."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target = Path(path)
    with tempfile.TemporaryDirectory(prefix=f".{target.name}.", dir=target.parent) as tmp:
        quantized = Path(tmp) / "model.int8.onnx"
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # quantize_dynamic advises through the root logger
        try:
            quantize_dynamic(
                str(source), str(quantized), weight_type=QuantType.QInt8, per_channel=per_channel
            )
        finally:
            root.setLevel(level)
        os.replace(quantized, target)  # concurrent exporters: the last complete file wins
    return target


__all__ = ["export_onnx", "quantize_onnx"]
