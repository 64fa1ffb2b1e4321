"""The `openai` backend: `openai.AsyncOpenAI` against any OpenAI-compatible base_url.

OpenAI itself, `vllm serve`, `python -m llama_cpp.server`, llama.cpp's `llama-server`,
Ollama. Prompts go to /v1/completions (base models, few-shot), messages to
/v1/chat/completions (instruct models).

One HTTP request per sample, with seed + index as its seed: a server's `n` would be
cheaper on the wire, but per-sample requests are what make the cache and a resumed run
exact (sample i is the same request whichever samples were already cached), and most
local servers (llama.cpp) ignore `n` anyway. The client's own retries are off
(max_retries=0): retries, backoff and Retry-After are handled here, per sample, so a
retried sample may land on another replica. Samples are POSTed by `openai_transport`
(a pooled aiohttp session: a fifth of the SDK's CPU per request); the SDK client checks
reachability and scores labels.
"""

from __future__ import annotations

import json
import math
from typing import Any

from synthkd.errors import SynthkdError
from synthkd.generators.teachers.base import LabelError
from synthkd.generators.teachers.caching import CachingTeacher, SampleJob, gather_or_cancel
from synthkd.generators.teachers.config import TeacherConfig
from synthkd.generators.teachers.openai_client import (
    OPENAI_URL,
    Failed,
    OpenAIClient,
    Replica,
    estimate_tokens,
)
from synthkd.generators.teachers.openai_formats import (
    completion_schema_body,
    label_logprob,
    response_format_for,
)

__all__ = ["OPENAI_URL", "OpenAITeacher"]


class OpenAITeacher(OpenAIClient, CachingTeacher):
    """Any OpenAI-compatible server, paced, retried and cached (see module docstring)."""

    backend = "openai"

    def __init__(self, model: str, config: TeacherConfig | None = None) -> None:
        CachingTeacher.__init__(self, model, config)
        self._setup_client()

    @property
    def concurrent_samples(self) -> int:
        """Samples in flight at once: the driver sends batches ahead to keep them busy."""
        return self.config.concurrency * len(self._replicas)

    # --- sampling --------------------------------------------------------------------
    async def _sample(self, jobs: list[SampleJob]) -> None:
        await self.check()
        self._batch_started()
        await gather_or_cancel(self._sample_one(job) for job in jobs)

    async def _sample_one(self, job: SampleJob) -> None:
        request, params = job.request, job.request.params
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        if job.seed is not None:
            body["seed"] = job.seed
        estimate = 0  # tokens, for a tokens_per_minute limit only
        if self.config.tokens_per_minute:
            estimate = estimate_tokens(
                request.prompt or json.dumps(request.messages), params.max_tokens
            )
        schema = request.json_schema

        if request.is_chat:
            path, body["messages"] = "/chat/completions", list(request.messages)
        else:
            path, body["prompt"] = "/completions", request.prompt

        async def call(replica: Replica):
            payload = body
            if schema is not None:
                if request.is_chat:
                    extra = {"response_format": response_format_for(replica.flavour, schema)}
                else:
                    extra = completion_schema_body(replica.flavour, schema) or {}
                payload = {**body, **extra}
            # a lean POST, not the SDK's: a fifth of its CPU per request (issue 17)
            result = await replica.transport.post_json(path, payload)
            choice = result["choices"][0]  # a body without it is malformed: retried
            text = choice["message"]["content"] if request.is_chat else choice["text"]
            if not isinstance(text, str):
                raise TypeError("the answer has no text")
            return text, choice.get("finish_reason"), result.get("usage") or {}

        try:
            text, reason, usage = await self._with_retries(call, estimate)
        except Failed as exc:
            await self._give_up(exc)
            job.finish(error=str(exc))
            return
        prompt_tokens = _count(usage, "prompt_tokens")
        completion_tokens = _count(usage, "completion_tokens")
        if reason == "content_filter":
            job.finish(
                error="the teacher's content filter withheld the answer",
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
            )
            return
        job.finish(
            text=text,
            finish_reason="length" if reason == "length" else "stop",
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
        )

    # --- the teacher as a classifier -------------------------------------------------------
    async def _label_distribution(self, header, texts, labels, suffix, done) -> None:
        """log P(label | prompt) from /v1/completions prompt logprobs (echo), per label.

        Each text is handed to `done` as soon as all its labels are scored; a label the
        server refuses (HTTP 400...) or that runs out of retries fails that text only.
        """
        await self.check()
        self._batch_started()

        async def score(text: str, label: str) -> float:
            prefix = header + text + suffix

            async def call(replica: Replica):
                result = await replica.client.completions.create(
                    model=self.model,
                    prompt=prefix + label,
                    max_tokens=1,
                    temperature=0.0,
                    echo=True,
                    logprobs=0,
                )
                # a body without choices is malformed: retried
                return result.choices[0].logprobs, getattr(result, "usage", None)

            logprobs, usage = await self._with_retries(call, estimate_tokens(prefix, 1))
            self.usage.prompt_tokens += getattr(usage, "prompt_tokens", 0) or 0
            logprob = label_logprob(logprobs, len(prefix), len(label))
            if logprob is None:
                raise SynthkdError(
                    f"the teacher at {self.base_urls[0]} returned no prompt logprobs (echo) for "
                    "label_distribution; serve it with logprobs enabled (synthkd teacher serve "
                    "--logprobs) or use a server that supports echo"
                )
            return logprob

        async def score_text(position: int, text: str) -> None:
            try:
                row = await gather_or_cancel(score(text, label) for label in labels)
            except Failed as exc:
                await self._give_up(exc)
                done(position, LabelError(str(exc)))
                return
            self.answered += 1
            done(position, _normalise(dict(zip(labels, row, strict=True))))

        await gather_or_cancel(score_text(i, text) for i, text in enumerate(texts))

    async def aclose(self) -> None:
        await CachingTeacher.aclose(self)
        await self._close_clients()


def _count(usage: Any, name: str) -> int:
    """A token count from the answer's `usage` object (a number, else 0)."""
    value = usage.get(name) if isinstance(usage, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _normalise(logprobs: dict[str, float]) -> dict[str, float]:
    top = max(logprobs.values())
    weights = {k: math.exp(v - top) for k, v in logprobs.items()}
    total = sum(weights.values())
    return {k: w / total for k, w in weights.items()}
