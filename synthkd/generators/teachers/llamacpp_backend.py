"""The `llamacpp` backend (the embedded default): llama-cpp-python in-process.

Models: `gemma-3-270m` (base, few-shot completion; the default), `smollm2-135m-instruct`
(chat template and JSON schemas without a network), both from PyPI packages via
synthkd.assets, or any .gguf path. One model, one context: the blocking llama.cpp calls
run in a worker thread under a lock, one at a time, while the event loop stays free.

Throughput: samples of one prompt run back to back so the prompt's KV state is reused
(llama-cpp-python keeps the longest common prefix of the previous evaluation), and a
plain completion request with n > 1 decodes its samples together in one llama.cpp batch
(`llamacpp_parallel`). JSON schemas become llama.cpp grammars (GBNF).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import json
import logging
import os
import random
import threading
from pathlib import Path
from typing import Any

import numpy as np

from synthkd.assets import GEMMA_MODEL_NAME, SMOLLM2_MODEL_NAME, gemma_gguf_path, smollm2_gguf_path
from synthkd.errors import SynthkdError
from synthkd.generators.teachers.base import LabelError, TeacherRequest
from synthkd.generators.teachers.caching import CachingTeacher, SampleJob
from synthkd.generators.teachers.config import TeacherConfig

_EMBEDDED = {GEMMA_MODEL_NAME: gemma_gguf_path, SMOLLM2_MODEL_NAME: smollm2_gguf_path}


def resolve_model(model: str) -> tuple[str, Path]:
    """(lineage name, .gguf path) of an embedded model name or a user's .gguf path."""
    if model in _EMBEDDED:
        return model, _EMBEDDED[model]()
    looks_like_path = model.endswith(".gguf") or os.sep in model or model.startswith((".", "~"))
    if not looks_like_path:
        raise SynthkdError(
            f"unknown llamacpp model {model!r}; use {' or '.join(_EMBEDDED)} or a path to a .gguf file"
        )
    path = Path(model).expanduser()
    if not path.is_file():
        raise SynthkdError(f"the model file {path} does not exist")
    return path.name, path.resolve()


class LlamaCppTeacher(CachingTeacher):
    """A GGUF model run by llama.cpp in this process (see module docstring)."""

    backend = "llamacpp"

    def __init__(self, model: str, config: TeacherConfig | None = None) -> None:
        name, path = resolve_model(model)
        super().__init__(name, config)
        self.model_path = path
        self._llm = None
        self._parallel = None
        self._grammars: dict[str, Any] = {}
        self._lock = threading.Lock()  # a thread lock: callers may come from several loops

    # --- the model, loaded once in the worker thread ---------------------------------------
    def _load(self):
        if self._llm is not None:
            return self._llm
        from llama_cpp import Llama

        _quiet_llama_logs()
        threads = _threads(self.config)
        try:
            self._llm = Llama(
                model_path=str(self.model_path),
                n_ctx=self.config.n_ctx,
                n_batch=min(512, self.config.n_ctx),
                n_threads=threads,
                n_threads_batch=threads,
                swa_full=True,  # sliding-window layers keep every cell so prefixes can be reused
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise SynthkdError(f"cannot load the model file {self.model_path}: {exc}") from None
        return self._llm

    def _parallel_sampler(self):
        if self._parallel is None:
            from synthkd.generators.teachers.llamacpp_parallel import ParallelSampler

            self._parallel = ParallelSampler(self._load(), self.config.n_ctx, _threads(self.config))
        return self._parallel

    async def _run(self, fn, *args):
        def locked():
            with self._lock:
                return fn(*args)

        return await asyncio.to_thread(locked)

    async def warm_up(self) -> None:
        """Load the model now (it is otherwise loaded on first use)."""
        await self._run(self._load)

    # --- sampling ----------------------------------------------------------------------
    async def _sample(self, jobs: list[SampleJob]) -> None:
        groups: dict[int, list[SampleJob]] = {}
        for job in jobs:  # samples of one request run back to back: its prompt's KV is reused
            groups.setdefault(id(job.response), []).append(job)
        for group in groups.values():
            outcomes = await self._run(self._sample_request, group[0].request, group)
            for job, outcome in zip(group, outcomes, strict=True):
                job.finish(**outcome)

    def _sample_request(self, request: TeacherRequest, jobs: list[SampleJob]) -> list[dict]:
        llm = self._load()
        params = request.params
        if request.is_chat or request.json_schema is not None or len(jobs) == 1:
            return [self._sample_one(llm, request, job) for job in jobs]
        if not self.config.parallel_samples:
            return [self._sample_one(llm, request, job) for job in jobs]
        prompt_tokens = llm.tokenize(request.prompt.encode("utf-8"), special=True)
        sampler = self._parallel_sampler()
        size = sampler.group_size(len(prompt_tokens), params.max_tokens)
        if size < 1:
            return [_too_long(len(prompt_tokens), params.max_tokens, self.config.n_ctx)] * len(jobs)
        outcomes: list[dict] = []
        for start in range(0, len(jobs), size):
            chunk = jobs[start : start + size]
            self.usage.requests += len(chunk)
            try:
                samples = sampler.sample(
                    prompt_tokens,
                    [_seed(job) for job in chunk],
                    temperature=params.temperature,
                    top_p=params.top_p,
                    max_tokens=params.max_tokens,
                    stop=params.stop,
                )
            except RuntimeError as exc:
                outcomes += [{"error": f"llama.cpp failed: {exc}"}] * len(chunk)
                continue
            for i, sample in enumerate(samples):
                outcomes.append(
                    {
                        "text": sample.text,
                        "finish_reason": sample.finish_reason,
                        # the prompt is evaluated once per chunk; charge it to the first sample
                        "prompt_tokens": len(prompt_tokens) if i == 0 else 0,
                        "completion_tokens": sample.completion_tokens,
                    }
                )
        return outcomes

    def _sample_one(self, llm, request: TeacherRequest, job: SampleJob) -> dict:
        params = request.params
        kwargs: dict[str, Any] = {
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "stop": list(params.stop),
            "seed": _seed(job),
        }
        if request.json_schema is not None:
            kwargs["grammar"] = self._grammar(request.json_schema)
        self.usage.requests += 1
        try:
            if request.is_chat:
                result = llm.create_chat_completion(messages=list(request.messages), **kwargs)
                text = result["choices"][0]["message"]["content"] or ""
            else:
                result = llm.create_completion(request.prompt, **kwargs)
                text = result["choices"][0]["text"]
        except ValueError as exc:  # e.g. "Requested tokens exceed context window"
            return {"error": f"llama.cpp refused the request: {' '.join(str(exc).split())}"}
        except RuntimeError as exc:
            return {"error": f"llama.cpp failed: {exc}"}
        usage = result.get("usage") or {}
        return {
            "text": text,
            "finish_reason": "length"
            if result["choices"][0]["finish_reason"] == "length"
            else "stop",
            "prompt_tokens": usage.get("prompt_tokens", 0),
            "completion_tokens": usage.get("completion_tokens", 0),
        }

    def _grammar(self, schema: dict[str, Any]):
        from llama_cpp import LlamaGrammar

        key = json.dumps(schema, sort_keys=True)
        if key not in self._grammars:
            try:
                self._grammars[key] = LlamaGrammar.from_json_schema(key, verbose=False)
            except Exception as exc:  # the converter raises assorted errors on bad schemas
                raise SynthkdError(f"cannot turn the JSON schema into a grammar: {exc}") from None
        return self._grammars[key]

    # --- the teacher as a classifier ----------------------------------------------------
    async def _label_distribution(self, header, texts, labels, suffix, done) -> None:
        await self._run(self._score_labels, header, texts, labels, suffix, done)

    def _score_labels(self, header: str, texts: list[str], labels: list[str], suffix: str, done):
        """P(label | header + text + suffix) from the model's own logits.

        The header's KV state is evaluated once and kept: for each text the cache is
        cut back to the longest prefix it shares with what was evaluated (the header)
        and only text + suffix are evaluated; then each label's tokens are scored from
        the logits (a one-token label costs nothing more). Cutting the KV cache back is
        llama.cpp's cheapest form of save/restore state: nothing is copied.
        """
        llm = self._load()
        vocab_n = llm.n_vocab()
        for position, text in enumerate(texts):
            prefix = header + text + suffix
            tokens = llm.tokenize(prefix.encode("utf-8"), special=True)
            if len(tokens) + 8 > llm.n_ctx():  # one text too long is its own failure
                reason = f"prompt of {len(tokens)} tokens exceeds the context ({llm.n_ctx()})"
                done(position, LabelError(reason))
                continue
            last = self._eval_from_common_prefix(llm, tokens)
            scores = {}
            for label in labels:
                label_tokens = _continuation(llm, prefix, tokens, label)
                logprob = float(_log_softmax(last, vocab_n)[label_tokens[0]])
                for i, token in enumerate(label_tokens[1:]):
                    llm.eval([label_tokens[i]])
                    logprob += float(_log_softmax(_last_logits(llm), vocab_n)[token])
                if len(label_tokens) > 1:
                    llm.n_tokens = len(tokens)  # rewind to the end of text + suffix
                scores[label] = logprob
            self.usage.requests += 1
            self.usage.prompt_tokens += len(tokens)
            done(position, _normalise(scores))
        llm._requires_eval = True  # logits on hand may be a label's; generate() re-evaluates

    def _eval_from_common_prefix(self, llm, tokens: list[int]) -> np.ndarray:
        common = 0
        for a, b in zip(llm.input_ids[: llm.n_tokens], tokens, strict=False):
            if a != b:
                break
            common += 1
        common = min(common, len(tokens) - 1)
        if not llm._ctx.kv_cache_seq_rm(-1, common, -1):
            llm.reset()
            common = 0
        llm.n_tokens = common
        llm.eval(tokens[common:])
        return _last_logits(llm).copy()

    async def aclose(self) -> None:
        await super().aclose()
        with self._lock:
            if self._parallel is not None:
                self._parallel.close()
                self._parallel = None
            if self._llm is not None:
                with contextlib.suppress(Exception):
                    self._llm.close()
                self._llm = None


def _threads(config: TeacherConfig) -> int:
    env = os.environ.get("SYNTHKD_LLAMA_THREADS", "").strip()
    if config.n_threads:
        return config.n_threads
    if env.isdigit() and int(env) > 0:
        return int(env)
    return os.cpu_count() or 1


def _seed(job: SampleJob) -> int:
    """The sample's seed; an unseeded request still gets a fresh one per sample."""
    seed = job.seed
    return random.getrandbits(31) if seed is None else seed & 0x7FFFFFFF


def _too_long(n_prompt: int, max_tokens: int, n_ctx: int) -> dict:
    return {
        "error": f"prompt of {n_prompt} tokens plus max_tokens {max_tokens} exceeds n_ctx {n_ctx}"
    }


def _last_logits(llm) -> np.ndarray:
    import llama_cpp

    pointer = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
    return np.ctypeslib.as_array(
        ctypes.cast(pointer, ctypes.POINTER(ctypes.c_float)), shape=(llm.n_vocab(),)
    )


def _log_softmax(logits: np.ndarray, n: int) -> np.ndarray:
    values = logits[:n].astype(np.float64)
    top = values.max()
    return values - (top + np.log(np.exp(values - top).sum()))


def _continuation(llm, prefix: str, prefix_tokens: list[int], label: str) -> list[int]:
    """The tokens `label` adds after `prefix`, as the model would see them in context."""
    joined = llm.tokenize((prefix + label).encode("utf-8"), special=True)
    if joined[: len(prefix_tokens)] == prefix_tokens and len(joined) > len(prefix_tokens):
        return joined[len(prefix_tokens) :]
    alone = llm.tokenize(label.encode("utf-8"), add_bos=False, special=True)
    if not alone:
        raise SynthkdError(f"label {label!r} has no tokens")
    return alone


def _normalise(logprobs: dict[str, float]) -> dict[str, float]:
    values = np.array(list(logprobs.values()))
    weights = np.exp(values - values.max())
    weights /= weights.sum()
    return {label: float(w) for label, w in zip(logprobs, weights, strict=True)}


_LOG_CALLBACK = None


def _quiet_llama_logs() -> None:
    """llama.cpp's C-level log: warnings and errors to Python logging, the chatter nowhere."""
    global _LOG_CALLBACK
    if _LOG_CALLBACK is not None:
        return
    import llama_cpp

    log = logging.getLogger("synthkd.llamacpp")

    # ggml.h of the bundled llama.cpp: WARN = 3, ERROR = 4 (llama_cpp/_logger.py's comment
    # still lists an older numbering, where 3 was ERROR)
    @llama_cpp.llama_log_callback
    def _forward(level, text, user_data):  # pragma: no cover - called from C
        if level == 4:
            log.error(text.decode("utf-8", errors="replace").rstrip())
        elif level == 3 and b"full-size SWA cache" not in text:
            log.warning(text.decode("utf-8", errors="replace").rstrip())

    _LOG_CALLBACK = _forward
    llama_cpp.llama_log_set(_LOG_CALLBACK, ctypes.c_void_p(0))
    atexit.register(_close_llama_devnull)


def _close_llama_devnull() -> None:
    """llama-cpp-python opens two /dev/null files at import and never closes them, so the
    interpreter's teardown prints ResourceWarnings after a run; close them at exit."""
    from llama_cpp import _utils

    for name in ("outnull_file", "errnull_file"):
        handle = getattr(_utils, name, None)
        if handle is not None:
            handle.close()
