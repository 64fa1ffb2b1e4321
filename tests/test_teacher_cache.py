"""The response cache: a rerun asks the teacher nothing; a changed parameter asks again."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3

from synthkd.generators.teachers import (
    Completion,
    ResponseCache,
    SamplingParams,
    TeacherRequest,
    teacher_from_spec,
)
from tests.fakes import FaultyOpenAIServer


def _batch(temperature: float = 0.8, seed: int = 5) -> list[TeacherRequest]:
    params = SamplingParams(temperature=temperature, seed=seed, max_tokens=8)
    return [TeacherRequest(prompt=f"Fact {i}:", n=3, params=params) for i in range(4)]


def _run(spec: str, cache_path, requests, **options):
    async def go():
        teacher = teacher_from_spec(spec, cache_path=cache_path, **options)
        try:
            return await teacher.generate(requests), teacher.usage
        finally:
            await teacher.aclose()

    return asyncio.run(go())


def test_second_run_makes_zero_teacher_calls_and_changed_params_make_new_ones(tmp_path):
    cache = tmp_path / "responses.sqlite"
    with FaultyOpenAIServer() as srv:
        spec = f"openai:fake@{srv.base_url}"
        first, usage1 = _run(spec, cache, _batch())
        assert srv.stats.requests == 12 and usage1.requests == 12 and usage1.cache_hits == 0

        second, usage2 = _run(spec, cache, _batch())  # a new teacher, same file: a rerun
        assert srv.stats.requests == 12  # the server heard nothing
        assert usage2.requests == 0 and usage2.cache_hits == 12
        assert [[c.text for c in r.completions] for r in second] == [
            [c.text for c in r.completions] for r in first
        ]
        assert all(c.cached for r in second for c in r.completions)
        assert not any(c.cached for r in first for c in r.completions)

        _, usage3 = _run(spec, cache, _batch(temperature=0.3))
        assert usage3.requests == 12 and usage3.cache_hits == 0
        _, usage4 = _run(spec, cache, _batch(seed=6))
        assert usage4.requests == 12 and usage4.cache_hits == 0
        assert srv.stats.requests == 36


def test_more_samples_of_a_cached_request_only_ask_for_the_new_ones(tmp_path):
    cache = tmp_path / "responses.sqlite"
    with FaultyOpenAIServer() as srv:
        spec = f"openai:fake@{srv.base_url}"
        request = _batch()[0]
        _run(spec, cache, [request])
        (response,), usage = _run(spec, cache, [dataclasses.replace(request, n=5)])
    assert usage.cache_hits == 3 and usage.requests == 2
    assert [c.cached for c in response.completions] == [True, True, True, False, False]
    assert srv.stats.requests == 5


def test_errors_are_not_cached_so_a_rerun_retries_them(tmp_path):
    cache = tmp_path / "responses.sqlite"
    with FaultyOpenAIServer(rate_500=1.0) as srv:
        (response,), _ = _run(f"openai:fake@{srv.base_url}", cache, [_batch()[0]], max_retries=0)
        assert len(response.errors) == 3
    assert sqlite3.connect(cache).execute("SELECT COUNT(*) FROM samples").fetchone() == (0,)
    with FaultyOpenAIServer(port=srv.port) as healthy:
        (response,), usage = _run(f"openai:fake@{healthy.base_url}", cache, [_batch()[0]])
    assert usage.requests == 3 and [c.ok for c in response.completions] == [True] * 3


def test_cache_file_round_trip_and_length_results_are_kept(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite", flush_every=2)
    cache.put(Completion(0, "done", "stop", 3, 4, sample_key="a"))
    cache.put(Completion(1, "cut", "length", 3, 8, sample_key="b"))
    cache.put(Completion(2, "", "error", sample_key="c"))  # refused
    cache.close()
    again = ResponseCache(tmp_path / "c.sqlite")
    found = again.get_many(["a", "b", "c", "d"])
    assert sorted(found) == ["a", "b"]
    assert found["b"].finish_reason == "length" and found["b"].completion_tokens == 8
    assert found["a"].cached and found["a"].text == "done"
    assert again.count() == 2
