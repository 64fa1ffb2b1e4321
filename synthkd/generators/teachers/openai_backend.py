"""The `openai` backend: `openai.AsyncOpenAI` against any OpenAI-compatible base_url.

OpenAI itself, `vllm serve`, `python -m llama_cpp.server`, llama.cpp's `llama-server`,
Ollama. Prompts go to /v1/completions (base models, few-shot), messages to
/v1/chat/completions (instruct models).

One HTTP request per sample, with seed + index as its seed: a server's `n` would be
cheaper on the wire, but per-sample requests are what make the cache and a resumed run
exact (sample i is the same request whichever samples were already cached), and most
local servers (llama.cpp) ignore `n` anyway. The client's own retries are off
(max_retries=0): retries, backoff and Retry-After are handled here, per sample, so a
retried sample may land on another replica.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import random
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

import openai
from aiolimiter import AsyncLimiter

from synthkd.errors import SynthkdError
from synthkd.generators.teachers.caching import CachingTeacher, SampleJob, gather_or_cancel
from synthkd.generators.teachers.config import TeacherConfig
from synthkd.generators.teachers.openai_formats import (
    completion_schema_body,
    flavour_of,
    label_logprob,
    response_format_for,
)

OPENAI_URL = "https://api.openai.com/v1"
_RETRYABLE_STATUS = {408, 409, 425, 429}


class _Retryable(Exception):
    """A transient failure worth another attempt; `delay` is the server's Retry-After.

    `unreachable` marks failures that never got an HTTP answer (refused, reset, timed
    out): when a sample runs out of retries on one, the teacher may be gone altogether.
    """

    def __init__(self, reason: str, delay: float | None = None, unreachable: bool = False):
        super().__init__(reason)
        self.delay = delay
        self.unreachable = unreachable


@dataclass
class _Replica:
    url: str
    api_key: str = field(repr=False)
    timeout_s: float = 120.0
    in_flight: int = 0
    flavour: str = "openai"
    """"llama-cpp-python", "llama-server", "vllm" or "openai": picks the schema dialect."""
    clients: weakref.WeakKeyDictionary = field(
        default_factory=weakref.WeakKeyDictionary, repr=False
    )

    @property
    def client(self) -> openai.AsyncOpenAI:
        """This event loop's client: connections belong to the loop that opened them."""
        loop = asyncio.get_running_loop()
        client = self.clients.get(loop)
        if client is None:
            client = openai.AsyncOpenAI(
                base_url=self.url, api_key=self.api_key, max_retries=0, timeout=self.timeout_s
            )
            self.clients[loop] = client
        return client


@dataclass
class _Pacing:
    """Concurrency cap and rate limits; asyncio primitives, so one set per event loop."""

    semaphore: asyncio.Semaphore
    rpm: AsyncLimiter | None
    tpm: AsyncLimiter | None


class OpenAITeacher(CachingTeacher):
    """Any OpenAI-compatible server, paced, retried and cached (see module docstring)."""

    backend = "openai"

    def __init__(self, model: str, config: TeacherConfig | None = None) -> None:
        super().__init__(model, config)
        cfg = self.config
        urls = cfg.base_urls or (OPENAI_URL,)
        api_key = _api_key(cfg.api_key_env, hosted=OPENAI_URL in urls)
        self._key_env = cfg.api_key_env or "OPENAI_API_KEY"
        self._secret = api_key if len(api_key) >= 8 else None
        self._replicas = [_Replica(url, api_key, cfg.timeout_s) for url in urls]
        self._pacing: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._checked = False
        self._failed_in_row = 0
        """Samples that ran out of retries since the last good answer (see _give_up)."""

    def _pace(self) -> _Pacing:
        loop = asyncio.get_running_loop()
        pacing = self._pacing.get(loop)
        if pacing is None:
            cfg = self.config
            pacing = _Pacing(
                asyncio.Semaphore(cfg.concurrency),
                AsyncLimiter(cfg.requests_per_minute, 60) if cfg.requests_per_minute else None,
                AsyncLimiter(cfg.tokens_per_minute, 60) if cfg.tokens_per_minute else None,
            )
            self._pacing[loop] = pacing
        return pacing

    @property
    def base_urls(self) -> list[str]:
        return [r.url for r in self._replicas]

    # --- reachability ----------------------------------------------------------------
    async def check(self) -> None:
        """Fail with one line if a base_url cannot be reached; learn each server's dialect."""
        if self._checked:
            return
        await asyncio.gather(*(self._check_replica(r) for r in self._replicas))
        self._checked = True

    async def _check_replica(self, replica: _Replica) -> None:
        last: Exception | None = None
        for _ in range(3):
            try:
                page = await replica.client.models.list(timeout=min(self.config.timeout_s, 15))
                replica.flavour = flavour_of([getattr(m, "owned_by", None) for m in page.data])
                return
            except openai.AuthenticationError as exc:
                raise SynthkdError(
                    f"the teacher at {replica.url} refused the API key from {self._key_env}"
                    f" (HTTP {exc.status_code})"
                ) from None
            except openai.APIStatusError:
                return  # reachable; it just has no /models listing
            except openai.APIConnectionError as exc:
                last = exc
                await asyncio.sleep(0.2)
            except ValueError:
                return  # answered, though not with a models list
        cause = self._redact(_cause(last))
        raise SynthkdError(f"teacher base_url {replica.url} is unreachable ({cause})") from None

    # --- sampling --------------------------------------------------------------------
    async def _sample(self, jobs: list[SampleJob]) -> None:
        await self.check()
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
        estimate = _estimate_tokens(
            request.prompt or json.dumps(request.messages), params.max_tokens
        )

        async def call(replica: _Replica):
            if request.is_chat:
                extra = {}
                if request.json_schema is not None:
                    extra["response_format"] = response_format_for(
                        replica.flavour, request.json_schema
                    )
                result = await replica.client.chat.completions.create(
                    messages=list(request.messages), **body, **extra
                )
            else:
                extra_body = None
                if request.json_schema is not None:
                    extra_body = completion_schema_body(replica.flavour, request.json_schema)
                result = await replica.client.completions.create(
                    prompt=request.prompt, **body, extra_body=extra_body
                )
            choice = result.choices[0]  # a body without it is malformed: retried
            text = choice.message.content if request.is_chat else choice.text
            if not isinstance(text, str):
                raise TypeError("the answer has no text")
            return text, choice.finish_reason, getattr(result, "usage", None)

        try:
            text, reason, usage = await self._with_retries(call, estimate)
        except _Failed as exc:
            await self._give_up(exc)
            job.finish(error=str(exc))
            return
        self._failed_in_row = 0
        prompt_tokens = getattr(usage, "prompt_tokens", 0) or 0
        completion_tokens = getattr(usage, "completion_tokens", 0) or 0
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

    async def _give_up(self, failure: _Failed) -> None:
        """A sample ran out of retries: its own bad luck, or a teacher that is gone?

        Gone means no replica answers at all (probed like `check`), or the last
        `_gone_after()` samples in a row ran out of retries. Then the run stops with one
        line instead of writing every remaining sample off as a teacher error: samples
        never answered are not done, and a rerun asks them. A refusal (HTTP 400 for a
        prompt too long...) is a verdict on its sample, not on the teacher.
        """
        if not failure.exhausted:
            return
        self._failed_in_row += 1
        gone: str | None = None
        if failure.unreachable:
            alive = await asyncio.gather(
                *(self._reachable(r) for r in self._replicas), return_exceptions=True
            )
            if not any(a is True for a in alive):
                gone = f"went away: {', '.join(self.base_urls)} no longer answers ({failure})"
        if gone is None and self._failed_in_row >= self._gone_after():
            gone = (
                f"keeps failing: the last {self._failed_in_row} samples in a row failed "
                f"(last: {failure})"
            )
        if gone is not None:
            raise SynthkdError(
                f"teacher {self.backend}:{self.model} {gone}; {self.answered} samples were "
                "answered before that (kept in the response cache: rerun to resume)"
            )

    def _gone_after(self) -> int:
        return max(8, 2 * self.config.concurrency)

    async def _reachable(self, replica: _Replica) -> bool:
        """True when the replica answers HTTP at all (any status counts as alive)."""
        for attempt in range(3):
            try:
                await replica.client.models.list(timeout=min(self.config.timeout_s, 10))
                return True
            except openai.APIStatusError:
                return True
            except (openai.APIConnectionError, openai.APITimeoutError):
                await asyncio.sleep(0.2 * (attempt + 1))
            except ValueError:
                return True
        return False

    async def _with_retries(self, call, estimate: int):
        """Run `call(replica)` under the limits, retrying transient failures with backoff."""
        cfg = self.config
        reason, unreachable = "", False
        for attempt in range(cfg.max_retries + 1):
            if attempt:
                self.usage.retries += 1
            delay: float | None = None
            try:
                return await self._attempt(call, estimate)
            except _Retryable as exc:
                reason, delay, unreachable = str(exc), exc.delay, exc.unreachable
            if attempt == cfg.max_retries:
                break
            backoff = random.uniform(0, min(cfg.backoff_max_s, cfg.backoff_base_s * 2**attempt))
            await asyncio.sleep(min(cfg.backoff_max_s, delay) if delay is not None else backoff)
        raise _Failed(
            f"gave up after {cfg.max_retries + 1} attempts: {reason}",
            unreachable=unreachable,
            exhausted=True,
        )

    async def _attempt(self, call, estimate: int):
        pacing = self._pace()
        if pacing.rpm:
            await pacing.rpm.acquire(1)
        if pacing.tpm:
            await pacing.tpm.acquire(min(estimate, self.config.tokens_per_minute))
        async with pacing.semaphore:
            replica = min(self._replicas, key=lambda r: r.in_flight)
            replica.in_flight += 1
            self.usage.requests += 1
            try:
                return await call(replica)
            except openai.APITimeoutError:
                raise _Retryable(
                    f"timed out after {self.config.timeout_s:g}s ({replica.url})", unreachable=True
                ) from None
            except openai.APIConnectionError as exc:
                raise _Retryable(
                    f"connection failed ({replica.url}): {self._redact(_cause(exc))}",
                    unreachable=True,
                ) from None
            except openai.AuthenticationError as exc:
                raise SynthkdError(
                    f"the teacher at {replica.url} refused the API key from {self._key_env}"
                    f" (HTTP {exc.status_code})"
                ) from None
            except openai.NotFoundError:
                raise SynthkdError(
                    f"the teacher at {replica.url} has no model {self.model!r} (HTTP 404)"
                ) from None
            except openai.APIStatusError as exc:
                status = exc.status_code
                if status == 429 or status >= 500 or status in _RETRYABLE_STATUS:
                    delay = _retry_after(exc) if status == 429 else None
                    raise _Retryable(f"HTTP {status} from {replica.url}", delay) from None
                detail = self._redact(_short(exc))
                raise _Failed(f"HTTP {status} from {replica.url}: {detail}") from None
            except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
                # a 200 whose body is not the JSON it claims (openai raises while parsing)
                detail = self._redact(_short(exc))
                raise _Retryable(f"malformed body from {replica.url}: {detail}") from None
            finally:
                replica.in_flight -= 1

    def _redact(self, text: str) -> str:
        """Error text with the API key blanked: servers and proxies may echo it back, and
        error text goes into rejects, logs and messages."""
        return text.replace(self._secret, "***") if self._secret else text

    # --- the teacher as a classifier -------------------------------------------------------
    async def _label_distribution(
        self, header: str, texts: list[str], labels: list[str], suffix: str
    ) -> list[dict[str, float]]:
        """log P(label | prompt) from /v1/completions prompt logprobs (echo), per label."""
        await self.check()

        async def score(text: str, label: str) -> float:
            prefix = header + text + suffix

            async def call(replica: _Replica):
                return await replica.client.completions.create(
                    model=self.model,
                    prompt=prefix + label,
                    max_tokens=1,
                    temperature=0.0,
                    echo=True,
                    logprobs=0,
                )

            try:
                result = await self._with_retries(call, _estimate_tokens(prefix, 1))
            except _Failed as exc:
                raise SynthkdError(f"label_distribution failed: {exc}") from None
            usage = getattr(result, "usage", None)
            self.usage.prompt_tokens += getattr(usage, "prompt_tokens", 0) or 0
            logprob = label_logprob(result.choices[0].logprobs, len(prefix), len(label))
            if logprob is None:
                raise SynthkdError(
                    f"the teacher at {self.base_urls[0]} returned no prompt logprobs (echo) for "
                    "label_distribution; serve it with logprobs enabled (synthkd teacher serve "
                    "--logprobs) or use a server that supports echo"
                )
            return logprob

        flat = await gather_or_cancel(score(t, label) for t in texts for label in labels)
        rows = [flat[i : i + len(labels)] for i in range(0, len(flat), len(labels))]
        return [_normalise(dict(zip(labels, row, strict=True))) for row in rows]

    async def aclose(self) -> None:
        await super().aclose()
        loop = asyncio.get_running_loop()
        for replica in self._replicas:
            client = replica.clients.pop(loop, None)
            if client is not None:
                await client.close()


class _Failed(Exception):
    """A sample that will not succeed (retries exhausted, or a non-retryable status)."""

    def __init__(self, reason: str, unreachable: bool = False, exhausted: bool = False):
        super().__init__(reason)
        self.unreachable = unreachable
        """The last attempt got no HTTP answer at all."""
        self.exhausted = exhausted
        """Every retry was spent on transient failures (not a refusal of this sample)."""


def _api_key(env: str | None, *, hosted: bool) -> str:
    if env:
        value = os.environ.get(env)
        if not value:
            raise SynthkdError(
                f"the API key variable {env} is not set (teacher option api_key_env)"
            )
        return value
    value = os.environ.get("OPENAI_API_KEY")
    if value:
        return value
    if hosted:
        raise SynthkdError(
            "the API key variable OPENAI_API_KEY is not set (needed for the hosted OpenAI API;"
            " name another variable with the teacher option api_key_env)"
        )
    return "no-key"  # local servers (vllm serve, llama.cpp) accept any key


def _retry_after(exc: openai.APIStatusError) -> float | None:
    headers = exc.response.headers
    if "retry-after-ms" in headers:
        try:
            return float(headers["retry-after-ms"]) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time()) if when else None


def _estimate_tokens(text: str, max_tokens: int) -> int:
    return len(text) // 4 + 1 + max_tokens


def _cause(exc: BaseException | None) -> str:
    while exc is not None and exc.__cause__ is not None:
        exc = exc.__cause__
    return _short(exc) if exc is not None else "no answer"


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


def _normalise(logprobs: dict[str, float]) -> dict[str, float]:
    top = max(logprobs.values())
    weights = {k: pow(2.718281828459045, v - top) for k, v in logprobs.items()}
    total = sum(weights.values())
    return {k: w / total for k, w in weights.items()}
