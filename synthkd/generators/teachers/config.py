"""Teacher options and spec strings (`llamacpp:gemma-3-270m`, `openai:MODEL@URL`, `vllm:MODEL`)."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from synthkd.assets import GEMMA_MODEL_NAME, SMOLLM2_MODEL_NAME
from synthkd.config import Settings, settings
from synthkd.errors import SynthkdError

DEFAULT_SPEC = f"llamacpp:{GEMMA_MODEL_NAME}"
BACKENDS = ("llamacpp", "openai", "vllm")
EMBEDDED_MODELS = (GEMMA_MODEL_NAME, SMOLLM2_MODEL_NAME)


@settings("teacher")
class TeacherConfig(Settings):
    """How a teacher is reached and paced. Every field has a default that works locally.

    Fields only one backend reads say so. A recipe's `teacher:` section is this plus the
    spec, its weight in a mix, the prompt style and sampling (`synthkd.recipe`).
    """

    # --- every backend -------------------------------------------------------------
    cache: bool = field(
        default=True,
        metadata={"help": "Put the persistent response cache in front of the backend."},
    )
    cache_path: str | Path | None = field(
        default=None,
        metadata={
            "help": "SQLite file of the response cache; None: "
            "`<synthkd cache>/teacher_responses.sqlite`."
        },
    )

    price_prompt: Annotated[float, Field(ge=0, le=1_000_000)] | None = field(
        default=None,
        metadata={
            "help": "Money per million prompt tokens (e.g. USD), for the run's cost figures "
            "and `loop.max_cost`. None: 0 for the in-process backends (llamacpp, vllm), "
            "unknown for openai."
        },
    )
    price_completion: Annotated[float, Field(ge=0, le=1_000_000)] | None = field(
        default=None,
        metadata={"help": "Money per million completion tokens; None as for price_prompt."},
    )

    # --- openai backend --------------------------------------------------------------
    base_urls: tuple[str, ...] = field(
        default=(),
        metadata={
            "help": "openai: replicas of one OpenAI-compatible server (`.../v1`); each request "
            "goes to the one with the fewest requests in flight. Empty: the spec's `@URL` "
            "list, else OpenAI."
        },
    )
    api_key_env: str | None = field(
        default=None,
        metadata={
            "help": "openai: name of the environment variable holding the API key (the key "
            "itself is never taken as an option, logged or stored). None: OPENAI_API_KEY if "
            "set; a key is only required for the hosted OpenAI API."
        },
    )
    concurrency: Annotated[int, Field(ge=1, le=1024)] = field(
        default=4, metadata={"help": "openai: most requests in flight at once, over all replicas."}
    )
    requests_per_minute: Annotated[float, Field(gt=0)] | None = field(
        default=None,
        metadata={"help": "openai: client-side request rate limit (None: unlimited)."},
    )
    tokens_per_minute: Annotated[float, Field(gt=0)] | None = field(
        default=None,
        metadata={
            "help": "openai: client-side token rate limit, counting prompt (about 4 characters "
            "a token) plus `max_tokens` for each request (None: unlimited)."
        },
    )
    max_retries: Annotated[int, Field(ge=0, le=100)] = field(
        default=3,
        metadata={
            "help": "openai: retries of one sample after a timeout, 429, 5xx, dropped "
            "connection or malformed body; then the sample is reported as a `SampleError`."
        },
    )
    timeout_s: Annotated[float, Field(gt=0, le=86_400)] = field(
        default=20.0,
        metadata={
            "help": "openai: per-request timeout in seconds. 20 s fits a few hundred tokens "
            "from a hosted model or a short queue at a local server, and keeps a stalled "
            "teacher to about 40 s before the run stops (a sample gives up after two "
            "timeouts; no answer for 1.5 x timeout_s, and 5 s, means the teacher is gone) "
            "instead of minutes. Raise it for long answers from a slow server."
        },
    )
    backoff_base_s: Annotated[float, Field(ge=0, le=3600)] = field(
        default=0.5,
        metadata={"help": "openai: first retry waits up to this long (full jitter), doubling."},
    )
    backoff_max_s: Annotated[float, Field(ge=0, le=86_400)] = field(
        default=30.0,
        metadata={"help": "openai: longest wait between retries, Retry-After included."},
    )

    # --- llamacpp backend --------------------------------------------------------------
    n_ctx: Annotated[int, Field(ge=64, le=1_048_576)] = field(
        default=2048,
        metadata={"help": "llamacpp: context window (tokens) of the in-process model."},
    )
    n_threads: Annotated[int, Field(ge=1, le=1024)] | None = field(
        default=None,
        metadata={
            "help": "llamacpp: CPU threads; None means $SYNTHKD_LLAMA_THREADS, else every "
            "core. On a busy machine, fewer threads than cores is faster."
        },
    )
    parallel_samples: bool = field(
        default=True,
        metadata={
            "help": "llamacpp: decode the n samples of one completion request together in one "
            "batch (sharing the prompt's KV cache); False runs them one by one."
        },
    )

    # --- vllm backend -------------------------------------------------------------------
    vllm_engine_args: dict[str, Any] = field(
        default_factory=dict,
        metadata={
            "help": "vllm: extra keyword arguments for `vllm.LLM` (e.g. "
            "gpu_memory_utilization, max_model_len)."
        },
    )

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> TeacherConfig:
        """Build from keyword options, naming any unknown one."""
        names = {f.name for f in dataclasses.fields(TeacherConfig)}  # type: ignore[arg-type]
        unknown = sorted(set(options) - names)
        if unknown:
            raise SynthkdError(
                f"unknown teacher option {unknown[0]!r}; known options: {', '.join(sorted(names))}"
            )
        values = {k: v for k, v in options.items() if v is not None or k in _NULLABLE}
        if isinstance(values.get("base_urls"), str):
            values["base_urls"] = split_urls(values["base_urls"])
        return TeacherConfig(**values)


_NULLABLE = {
    "cache_path",
    "api_key_env",
    "requests_per_minute",
    "tokens_per_minute",
    "n_threads",
    "price_prompt",
    "price_completion",
}


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
