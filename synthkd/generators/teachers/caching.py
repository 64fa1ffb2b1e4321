"""What every backend shares: the response cache in front, usage accounting, ordering.

A backend subclasses `CachingTeacher` and implements `_sample(jobs)`: sample each job
(one sample of one request) and hand each outcome to `job.finish(...)`. Everything
else (cache lookups and writes, usage, keeping every success and reporting every
failure per request, in order) happens here once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from synthkd.errors import SynthkdError
from synthkd.generators.teachers.base import (
    Completion,
    LabelError,
    LabelResult,
    SampleError,
    TeacherRequest,
    TeacherResponse,
    Usage,
)
from synthkd.generators.teachers.cache import ResponseCache
from synthkd.generators.teachers.config import TeacherConfig

ProgressCallback = Callable[[int], None]
"""Called with the number of samples just finished (cached ones included)."""
T = TypeVar("T")


async def gather_or_cancel(awaitables: Iterable[Awaitable[T]]) -> list[T]:
    """asyncio.gather that cancels the rest when one fails (a SynthkdError stops the batch)."""
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


_SURROGATE = re.compile("[\ud800-\udfff]")


def valid_unicode(text: str) -> str:
    """The text with lone surrogates (JSON `\\ud800` escapes) replaced by U+FFFD: they are
    not Unicode, and UTF-8 stores (SQLite, Parquet) refuse them mid-run."""
    return _SURROGATE.sub("\ufffd", text)


@dataclass
class SampleJob:
    """One sample (request, index) the cache could not answer."""

    request: TeacherRequest
    index: int
    key: str
    response: TeacherResponse
    teacher: CachingTeacher

    @property
    def seed(self) -> int | None:
        """The sample's own seed: base seed + index, so samples differ but replay exactly."""
        base = self.request.params.seed
        return None if base is None else base + self.index

    def finish(
        self,
        *,
        text: str | None = None,
        finish_reason: str = "stop",
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        error: str | None = None,
    ) -> None:
        """Record the outcome: a completion ("stop"/"length"), or an error after retries."""
        self.teacher._record(self, text, finish_reason, prompt_tokens, completion_tokens, error)


class CachingTeacher:
    """Base of every backend: answers from the cache first, asks the teacher for the rest."""

    backend: str = ""

    def __init__(self, model: str, config: TeacherConfig | None = None) -> None:
        self.model = model
        self.config = config or TeacherConfig()
        self.usage = Usage()
        self._cache = ResponseCache(self.config.cache_path) if self.config.cache else None
        self._progress: ProgressCallback | None = None
        self.answered = 0
        """Samples the teacher answered (finished or truncated) since this instance was made;
        cache hits not included. What an error message says was done before a failure."""

    async def generate(
        self, requests: list[TeacherRequest], *, progress: ProgressCallback | None = None
    ) -> list[TeacherResponse]:
        """Sample every request; one response per request, in order (see base.Teacher)."""
        started = time.perf_counter()
        responses = [TeacherResponse(request=r) for r in requests]
        keyed = [
            (response, index, response.request.sample_key(self.backend, self.model, index))
            for response in responses
            for index in range(response.request.n)
        ]
        hits = self._cache.get_many(k for _, _, k in keyed) if self._cache is not None else {}
        jobs: list[SampleJob] = []
        for response, index, key in keyed:
            cached = hits.get(key)
            if cached is not None:
                response.completions.append(dataclasses.replace(cached, index=index))
                self.usage.cache_hits += 1
            else:
                jobs.append(SampleJob(response.request, index, key, response, self))
        if progress and hits:
            progress(len(keyed) - len(jobs))
        self._progress = progress
        try:
            if jobs:
                await self._sample(jobs)
        finally:
            self._progress = None
            if self._cache is not None:
                self._cache.flush()
            self.usage.seconds += time.perf_counter() - started
        for response in responses:
            response.completions.sort(key=lambda c: c.index)
            response.errors.sort(key=lambda e: e.index)
        return responses

    async def _sample(self, jobs: list[SampleJob]) -> None:
        raise NotImplementedError

    def _record(
        self,
        job: SampleJob,
        text: str | None,
        finish_reason: str,
        prompt_tokens: int,
        completion_tokens: int,
        error: str | None,
    ) -> None:
        self.usage.prompt_tokens += prompt_tokens
        self.usage.completion_tokens += completion_tokens
        if error is not None:
            job.response.errors.append(SampleError(job.index, error, job.key))
            self.usage.failures += 1
        else:
            self.answered += 1
            completion = Completion(
                index=job.index,
                text=valid_unicode(text or ""),
                finish_reason=finish_reason,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                sample_key=job.key,
            )
            job.response.completions.append(completion)
            if not completion.ok:
                self.usage.failures += 1
            if self._cache is not None:
                self._cache.put(completion)
        if self._progress:
            self._progress(1)

    async def label_distribution(
        self, header: str, texts: list[str], labels: list[str], suffix: str = ""
    ) -> list[LabelResult]:
        """P(label | header + text + suffix) per text, normalised over `labels`.

        Each text is answered from the cache, else scored and cached as soon as its own
        answer is in: a batch that fails halfway keeps what was answered, and a rerun
        pays only for the rest. A text that cannot be scored is a `LabelError`.
        """
        labels = list(dict.fromkeys(labels))
        if not labels:
            raise SynthkdError("label_distribution needs at least one label")
        started = time.perf_counter()
        keys = [self._label_key(header, text, labels, suffix) for text in texts]
        hits = self._cache.get_many(keys) if self._cache is not None else {}
        results: list[LabelResult | None] = [None] * len(texts)
        missing = []
        for i, key in enumerate(keys):
            if key in hits:
                results[i] = json.loads(hits[key].text)
                self.usage.cache_hits += 1
            else:
                missing.append(i)

        def done(j: int, result: LabelResult) -> None:
            i = missing[j]
            results[i] = result
            if isinstance(result, LabelError):
                self.usage.failures += 1
            elif self._cache is not None:
                self._cache.put(Completion(0, json.dumps(result), "stop", sample_key=keys[i]))

        try:
            if missing:
                await self._label_distribution(
                    header, [texts[i] for i in missing], labels, suffix, done
                )
        finally:
            if self._cache is not None:
                self._cache.flush()
            self.usage.seconds += time.perf_counter() - started
        return [LabelError("no answer") if r is None else r for r in results]

    async def _label_distribution(
        self,
        header: str,
        texts: list[str],
        labels: list[str],
        suffix: str,
        done: Callable[[int, LabelResult], None],
    ) -> None:
        """Score each text; call `done(i, distribution or LabelError)` as each is had."""
        raise NotImplementedError

    def _label_key(self, header: str, text: str, labels: list[str], suffix: str) -> str:
        payload = ["label_distribution", self.backend, self.model, header, text, labels, suffix]
        blob = json.dumps(payload, ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    async def aclose(self) -> None:
        if self._cache is not None:
            self._cache.close()
            self._cache = None
