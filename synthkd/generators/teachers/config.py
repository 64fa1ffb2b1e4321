"""Teacher options and spec strings (`llamacpp:gemma-3-270m`, `openai:MODEL@URL`, `vllm:MODEL`)."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthkd.assets import GEMMA_MODEL_NAME, SMOLLM2_MODEL_NAME
from synthkd.errors import SynthkdError

DEFAULT_SPEC = f"llamacpp:{GEMMA_MODEL_NAME}"
BACKENDS = ("llamacpp", "openai", "vllm")
EMBEDDED_MODELS = (GEMMA_MODEL_NAME, SMOLLM2_MODEL_NAME)


@dataclass
class TeacherConfig:
    """How a teacher is reached and paced. Every field has a default that works locally.

    Fields only one backend reads are grouped and say so.
    """

    # --- every backend -------------------------------------------------------------
    cache: bool = True
    """Put the persistent response cache in front of the backend (see cache.py)."""
    cache_path: str | Path | None = None
    """SQLite file of the response cache; None means `<synthkd cache>/teacher_responses.sqlite`."""

    # --- openai backend --------------------------------------------------------------
    base_urls: tuple[str, ...] = ()
    """Replicas of one OpenAI-compatible server (`.../v1`); each request goes to the one
    with the fewest requests in flight. Empty means the spec's `@URL` list, else OpenAI."""
    api_key_env: str | None = None
    """Name of the environment variable holding the API key (the key itself is never
    taken as an option, logged or stored). None: OPENAI_API_KEY if set; a key is only
    required for the hosted OpenAI API."""
    concurrency: int = 16
    """Most requests in flight at once, over all replicas."""
    requests_per_minute: float | None = None
    """Client-side request rate limit (None: unlimited)."""
    tokens_per_minute: float | None = None
    """Client-side token rate limit, counting prompt (about 4 characters a token) plus
    `max_tokens` for each request (None: unlimited)."""
    max_retries: int = 4
    """Retries of one sample after a timeout, 429, 5xx, dropped connection or malformed
    body; then the sample is reported as a `SampleError`."""
    timeout_s: float = 120.0
    """Per-request timeout in seconds."""
    backoff_base_s: float = 0.5
    """First retry waits up to this long (full jitter), doubling each retry."""
    backoff_max_s: float = 30.0
    """Longest wait between retries, Retry-After included."""

    # --- llamacpp backend --------------------------------------------------------------
    n_ctx: int = 2048
    """Context window (tokens) of the in-process llama.cpp model."""
    n_threads: int | None = None
    """CPU threads for llama.cpp; None means $SYNTHKD_LLAMA_THREADS, else every core. On a
    machine busy with other work, fewer threads than cores is faster (llama.cpp's
    threads spin while they wait for each other)."""
    parallel_samples: bool = True
    """Decode the n samples of one plain completion request together in one llama.cpp
    batch (one sequence each, sharing the prompt's KV cache); False runs them one by one."""

    # --- vllm backend -------------------------------------------------------------------
    vllm_engine_args: dict[str, Any] = field(default_factory=dict)
    """Extra keyword arguments for `vllm.LLM` (e.g. gpu_memory_utilization, max_model_len)."""

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> TeacherConfig:
        """Build from keyword options, naming any unknown one."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - names)
        if unknown:
            raise SynthkdError(
                f"unknown teacher option {unknown[0]!r}; known options: {', '.join(sorted(names))}"
            )
        values = dict(options)
        if isinstance(values.get("base_urls"), str):
            values["base_urls"] = split_urls(values["base_urls"])
        elif values.get("base_urls") is not None:
            values["base_urls"] = tuple(values["base_urls"])
        config = cls(**values)
        config.validate()
        return config

    def validate(self) -> None:
        if self.concurrency < 1:
            raise SynthkdError(
                f"teacher option concurrency must be at least 1, got {self.concurrency}"
            )
        if self.max_retries < 0:
            raise SynthkdError(f"teacher option max_retries must be >= 0, got {self.max_retries}")
        if self.timeout_s <= 0:
            raise SynthkdError(f"teacher option timeout_s must be positive, got {self.timeout_s}")
        for name in ("requests_per_minute", "tokens_per_minute"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise SynthkdError(f"teacher option {name} must be positive, got {value}")


@dataclass(frozen=True)
class TeacherSpec:
    """A parsed spec string."""

    backend: str
    model: str
    base_urls: tuple[str, ...] = ()


_URL_SPLIT = re.compile(r"^(?P<model>.*?)@(?P<urls>https?://.*)$")


def split_urls(text: str) -> tuple[str, ...]:
    return tuple(u.strip().rstrip("/") for u in text.split(",") if u.strip())


def parse_spec(spec: str | None) -> TeacherSpec:
    """`backend:model[@url,url...]` -> TeacherSpec; a bad spec is one SynthkdError line."""
    text = (spec or "").strip() or DEFAULT_SPEC
    backend, sep, rest = text.partition(":")
    backend = backend.strip().lower()
    if not sep or backend not in BACKENDS:
        raise SynthkdError(
            f"unknown teacher backend {backend!r} in spec {text!r}; "
            f"use one of {', '.join(b + ':' for b in BACKENDS)} (e.g. {DEFAULT_SPEC})"
        )
    rest = rest.strip()
    urls: tuple[str, ...] = ()
    if backend == "openai":
        match = _URL_SPLIT.match(rest)
        if match:
            rest, urls = match["model"].strip(), split_urls(match["urls"])
    elif "@http" in rest:
        raise SynthkdError(f"teacher spec {text!r}: only the openai backend takes @URL")
    if not rest:
        raise SynthkdError(f"teacher spec {text!r} names no model (e.g. {backend}:MODEL)")
    return TeacherSpec(backend=backend, model=rest, base_urls=urls)
