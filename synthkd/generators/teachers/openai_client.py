"""The openai backend's HTTP side: replicas, pacing, retries, and telling a bad sample from a
teacher that is gone.

Transient failures (timeouts, 429 after its Retry-After, 5xx, dropped connections,
malformed bodies) are retried with exponential backoff and full jitter; a Retry-After
that is not a number or an HTTP date falls back to that backoff. Any other 4xx (a
prompt too long...) fails that one request with the server's reason. 401/403 (the key)
and 404 (the model) are the same for every request: they end the run with one line.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiolimiter import AsyncLimiter

from synthkd.errors import SynthkdError
from synthkd.generators.teachers.config import TeacherConfig
from synthkd.generators.teachers.openai_formats import flavour_of
from synthkd.generators.teachers.openai_transport import (
    StatusError,
    Transport,
    TransportError,
    TransportTimeout,
    retry_after,
)

if TYPE_CHECKING:
    import openai

OPENAI_URL = "https://api.openai.com/v1"
RETRYABLE_STATUS = {408, 409, 425, 429}
MAX_TIMEOUTS = 2
"""Attempts of one sample that may time out before it gives up: a request that stalled
twice rarely answers a third time, and each costs `timeout_s`."""
SILENT_FLOOR_S = 5.0
"""A teacher silent this long (and 1.5 x timeout_s) while samples time out is gone."""


class Retryable(Exception):
    """A transient failure worth another attempt; `delay` is the server's Retry-After.

    `unreachable` marks failures that never got an HTTP answer (refused, reset, timed
    out): when a sample runs out of retries on one, the teacher may be gone altogether.
    """

    def __init__(
        self, reason: str, delay: float | None = None, unreachable: bool = False, timeout=False
    ):
        super().__init__(reason)
        self.delay = delay
        self.unreachable = unreachable
        self.timeout = timeout


class Failed(Exception):
    """A sample that will not succeed (retries exhausted, or a non-retryable status)."""

    def __init__(self, reason: str, unreachable: bool = False, exhausted: bool = False):
        super().__init__(reason)
        self.unreachable = unreachable
        """The last attempt got no HTTP answer at all."""
        self.exhausted = exhausted
        """Every retry was spent on transient failures (not a refusal of this sample)."""


@dataclass
class Replica:
    url: str
    api_key: str = field(repr=False)
    timeout_s: float = 20.0
    in_flight: int = 0
    flavour: str = "openai"
    """"llama-cpp-python", "llama-server", "vllm" or "openai": picks the schema dialect."""
    clients: weakref.WeakKeyDictionary = field(
        default_factory=weakref.WeakKeyDictionary, repr=False
    )
    transport: Transport | None = field(default=None, repr=False)
    """Sampling POSTs (lean: `openai_transport`); the SDK client serves the rest."""

    def __post_init__(self) -> None:
        if self.transport is None:
            self.transport = Transport(self.url, self.api_key, self.timeout_s)

    @property
    def client(self) -> openai.AsyncOpenAI:
        """This event loop's SDK client (label scoring only: samples and the reachability
        check go through `transport`); connections belong to the loop that opened them."""
        loop = asyncio.get_running_loop()
        client = self.clients.get(loop)
        if client is None:
            import openai  # imported here: generation never needs it (0.7 s, issue 17)

            client = openai.AsyncOpenAI(
                base_url=self.url, api_key=self.api_key, max_retries=0, timeout=self.timeout_s
            )
            self.clients[loop] = client
        return client


@dataclass
class Pacing:
    """Concurrency cap and rate limits; asyncio primitives, so one set per event loop."""

    semaphore: asyncio.Semaphore
    rpm: AsyncLimiter | None
    tpm: AsyncLimiter | None


class OpenAIClient:
    """Retries, pacing and give-up rules; mixed into `OpenAITeacher` (which sets `config`,
    `backend`, `model`, `usage` and `answered`)."""

    config: TeacherConfig

    def _setup_client(self) -> None:
        cfg = self.config
        urls = cfg.base_urls or (OPENAI_URL,)
        api_key, self._key_source = api_key_and_source(cfg.api_key_env, hosted=OPENAI_URL in urls)
        self._secret = api_key if len(api_key) >= 8 else None
        self._replicas = [Replica(url, api_key, cfg.timeout_s) for url in urls]
        self._pacing: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._checked = False
        self._failed_in_row = 0
        """Samples that ran out of retries since the last good answer (see _give_up)."""
        self._last_answer = time.monotonic()
        """When an HTTP answer last came (or this teacher was made)."""

    def _batch_started(self) -> None:
        """Silence is counted from the start of a batch, not from an idle spell before it."""
        self._last_answer = max(self._last_answer, time.monotonic())

    @property
    def base_urls(self) -> list[str]:
        return [r.url for r in self._replicas]

    def _pace(self) -> Pacing:
        loop = asyncio.get_running_loop()
        pacing = self._pacing.get(loop)
        if pacing is None:
            cfg = self.config
            pacing = Pacing(
                asyncio.Semaphore(cfg.concurrency),
                AsyncLimiter(cfg.requests_per_minute, 60) if cfg.requests_per_minute else None,
                AsyncLimiter(cfg.tokens_per_minute, 60) if cfg.tokens_per_minute else None,
            )
            self._pacing[loop] = pacing
        return pacing

    def _refused(self, replica: Replica, status: int | None) -> SynthkdError:
        return SynthkdError(
            f"the teacher at {replica.url} refused {self._key_source} (HTTP {status})"
        )

    # --- reachability ----------------------------------------------------------------
    async def check(self) -> None:
        """Fail with one line if a base_url cannot be reached; learn each server's dialect."""
        if self._checked:
            return
        await asyncio.gather(*(self._check_replica(r) for r in self._replicas))
        self._checked = True

    async def _check_replica(self, replica: Replica) -> None:
        last: Exception | None = None
        for _ in range(3):
            try:
                page = await replica.transport.get_json("/models", min(self.config.timeout_s, 10))
                models = page.get("data") if isinstance(page, dict) else None
                models = models if isinstance(models, list) else []
                replica.flavour = flavour_of(
                    [m.get("owned_by") for m in models if isinstance(m, dict)]
                )
                return
            except StatusError as exc:
                if exc.status_code in (401, 403):
                    raise self._refused(replica, exc.status_code) from None
                return  # reachable; it just has no /models listing
            except (TransportError, TransportTimeout) as exc:
                last = exc
                await asyncio.sleep(0.2)
            except ValueError:
                return  # answered, though not with a models list
        cause = self._redact(cause_of(last))
        raise SynthkdError(f"teacher base_url {replica.url} is unreachable ({cause})") from None

    async def _give_up(self, failure: Failed) -> None:
        """A sample ran out of retries: its own bad luck, or a teacher that is gone?

        Gone means no replica answers at all (probed like `check`), no HTTP answer came
        for 1.5 x timeout_s, at least 5 s (a stalled teacher), or the last `_gone_after()` samples in a
        row ran out of retries. Then the run stops with one line instead of writing every
        remaining sample off as a teacher error: samples never answered are not done,
        and a rerun asks them. A refusal (HTTP 400 for a prompt too long...) is a
        verdict on its sample, not on the teacher.
        """
        if not failure.exhausted:
            return
        self._failed_in_row += 1
        gone: str | None = None
        if failure.unreachable:
            silent = time.monotonic() - self._last_answer
            if silent >= max(1.5 * self.config.timeout_s, SILENT_FLOOR_S):
                gone = (
                    f"stopped answering: no answer for {silent:.0f}s ({failure}; raise the "
                    "teacher option timeout_s if it is only slow)"
                )
            else:
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

    async def _reachable(self, replica: Replica) -> bool:
        """True when the replica answers HTTP at all (any status counts as alive)."""
        for attempt in range(2):
            try:
                await replica.transport.get_json("/models", min(self.config.timeout_s, 5))
                return True
            except StatusError:
                return True
            except (TransportError, TransportTimeout):
                await asyncio.sleep(0.2 * (attempt + 1))
            except ValueError:
                return True
        return False

    # --- retries ---------------------------------------------------------------------
    async def _with_retries(self, call, estimate: int):
        """Run `call(replica)` under the limits, retrying transient failures with backoff."""
        cfg = self.config
        reason, unreachable, timeouts = "", False, 0
        for attempt in range(cfg.max_retries + 1):
            if attempt:
                self.usage.retries += 1
            delay: float | None = None
            try:
                result = await self._attempt(call, estimate)
            except Retryable as exc:
                reason, delay, unreachable = str(exc), exc.delay, exc.unreachable
                timeouts += exc.timeout
            else:
                self._last_answer = time.monotonic()
                self._failed_in_row = 0
                return result
            if not unreachable:
                self._last_answer = time.monotonic()  # an HTTP answer, if not a good one
            if attempt == cfg.max_retries or timeouts >= MAX_TIMEOUTS:
                break
            backoff = random.uniform(0, min(cfg.backoff_max_s, cfg.backoff_base_s * 2**attempt))
            await asyncio.sleep(min(cfg.backoff_max_s, delay) if delay is not None else backoff)
        raise Failed(
            f"gave up after {attempt + 1} attempts: {reason}",
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
            except TransportTimeout:
                raise self._timed_out(replica) from None
            except TransportError as exc:
                raise self._connection_failed(replica, exc) from None
            except StatusError as exc:
                raise self._status_failure(replica, exc, exc.headers) from None
            except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
                # a 200 whose body is not the JSON it claims (openai raises while parsing)
                detail = self._redact(short(exc))
                raise Retryable(f"malformed body from {replica.url}: {detail}") from None
            except Exception as exc:
                mapped = self._sdk_failure(replica, exc)  # the SDK's errors (label scoring)
                if mapped is None:
                    raise
                raise mapped from None
            finally:
                replica.in_flight -= 1

    def _timed_out(self, replica: Replica) -> Retryable:
        return Retryable(
            f"timed out after {self.config.timeout_s:g}s ({replica.url})",
            unreachable=True,
            timeout=True,
        )

    def _connection_failed(self, replica: Replica, exc: Exception) -> Retryable:
        return Retryable(
            f"connection failed ({replica.url}): {self._redact(cause_of(exc))}",
            unreachable=True,
        )

    def _sdk_failure(self, replica: Replica, exc: Exception) -> Exception | None:
        """The SDK's exception mapped as the transport's are, or None (not the SDK's)."""
        openai = sys.modules.get("openai")
        if openai is None or not isinstance(exc, openai.OpenAIError):
            return None
        if isinstance(exc, openai.APITimeoutError):
            return self._timed_out(replica)
        if isinstance(exc, openai.APIConnectionError):
            return self._connection_failed(replica, exc)
        if isinstance(exc, openai.APIStatusError):
            return self._status_failure(replica, exc, exc.response.headers)
        return None

    def _status_failure(self, replica: Replica, exc: Exception, headers) -> Exception:
        """What an HTTP error status means: the key refused, no such model (the run
        stops), a transient failure (retried), or a refusal of this one sample."""
        status = exc.status_code
        if status in (401, 403):
            return self._refused(replica, status)
        if status == 404:
            return SynthkdError(
                f"the teacher at {replica.url} has no model {self.model!r} (HTTP 404)"
            )
        if status == 429 or status >= 500 or status in RETRYABLE_STATUS:
            delay = retry_after(headers) if status == 429 else None
            return Retryable(f"HTTP {status} from {replica.url}", delay)
        detail = self._redact(short(exc))
        return Failed(f"HTTP {status} from {replica.url}: {detail}")

    def _redact(self, text: str) -> str:
        """Error text with the API key blanked: servers and proxies may echo it back, and
        error text goes into rejects, logs and messages."""
        return text.replace(self._secret, "***") if self._secret else text

    async def _close_clients(self) -> None:
        loop = asyncio.get_running_loop()
        for replica in self._replicas:
            await replica.transport.aclose()
            client = replica.clients.pop(loop, None)
            if client is not None:
                await client.close()


def api_key_and_source(env: str | None, *, hosted: bool) -> tuple[str, str]:
    """(key, what an error message calls it): the key never appears in either."""
    if env:
        value = os.environ.get(env)
        if not value:
            raise SynthkdError(
                f"the API key variable {env} is not set (teacher option api_key_env)"
            )
        return value, f"the API key from {env}"
    value = os.environ.get("OPENAI_API_KEY")
    if value:
        return value, "the API key from OPENAI_API_KEY"
    if hosted:
        raise SynthkdError(
            "the API key variable OPENAI_API_KEY is not set (needed for the hosted OpenAI API;"
            " name another variable with the teacher option api_key_env)"
        )
    # local servers (vllm serve, llama.cpp) accept any key
    return "no-key", "the request: no API key was set (name its variable with api_key_env)"


def estimate_tokens(text: str, max_tokens: int) -> int:
    return len(text) // 4 + 1 + max_tokens


def cause_of(exc: BaseException | None) -> str:
    while exc is not None and exc.__cause__ is not None:
        exc = exc.__cause__
    return short(exc) if exc is not None else "no answer"


def short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]
