"""The openai backend against the fault-injecting server: what survives, what is reported."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from synthkd.errors import SynthkdError
from synthkd.generators.teachers import SamplingParams, TeacherRequest, teacher_from_spec
from tests.fakes import FaultyOpenAIServer, answer_text, sample_id

FAST = {"backoff_base_s": 0.01, "backoff_max_s": 0.2}


def _requests(count: int, n: int, seed: int = 7, **params) -> list[TeacherRequest]:
    return [
        TeacherRequest(
            prompt=f"Write fact number {i}:",
            n=n,
            params=SamplingParams(seed=seed, max_tokens=8, **params),
        )
        for i in range(count)
    ]


def _generate(teacher, requests):
    async def run():
        try:
            return await teacher.generate(requests)
        finally:
            await teacher.aclose()

    return asyncio.run(run())


def test_every_successful_sample_is_kept_and_every_failure_reported(tmp_path):
    rates = dict(rate_429=0.15, rate_500=0.1, rate_reset=0.1, rate_malformed=0.1, rate_length=0.1)
    with FaultyOpenAIServer(seed=11, **rates) as srv:
        teacher = teacher_from_spec(
            f"openai:fake@{srv.base_url}", cache_path=tmp_path / "c.sqlite", max_retries=2, **FAST
        )
        requests = _requests(30, n=3)
        responses = _generate(teacher, requests)
        stats = srv.stats

    assert stats.outcomes["ok"] > 0 and all(stats.outcomes[k] > 0 for k in ("429", "500", "reset"))
    total_errors = 0
    for request, response in zip(requests, responses, strict=True):
        assert len(response.completions) + len(response.errors) == request.n
        for completion in response.completions:
            sid = sample_id(request.prompt, request.params.seed + completion.index)
            if completion.ok:  # the server's good answer is the one kept, word for word
                assert stats.answered_ok[sid] == 1
                assert completion.text == answer_text(
                    request.prompt, request.params.seed + completion.index
                )
            else:
                assert completion.finish_reason == "length" and stats.answered_length[sid] == 1
        for error in response.errors:
            sid = sample_id(request.prompt, request.params.seed + error.index)
            assert stats.answered_ok[sid] == 0 and stats.answered_length[sid] == 0
            assert stats.attempts[sid] == 3  # 1 + max_retries, then reported
            assert "gave up after 3 attempts" in error.reason
        total_errors += len(response.errors)
    assert max(stats.attempts.values()) <= 3  # retries bounded
    assert total_errors > 0
    usage = teacher.usage
    assert usage.requests == stats.requests
    assert usage.retries == stats.requests - 90
    assert usage.failures == total_errors + sum(stats.answered_length.values())


def test_429_waits_for_retry_after(tmp_path):
    with FaultyOpenAIServer(rate_429=1.0, retry_after=0.3) as srv:
        teacher = teacher_from_spec(
            f"openai:fake@{srv.base_url}", cache=False, max_retries=1, backoff_base_s=0.001
        )
        started = time.monotonic()
        (response,) = _generate(teacher, _requests(1, n=1))
        waited = time.monotonic() - started
    assert srv.stats.attempts and max(srv.stats.attempts.values()) == 2
    assert "HTTP 429" in response.errors[0].reason
    assert waited >= 0.3  # honoured Retry-After, not the 1 ms backoff


def test_timeouts_are_retried_then_reported(tmp_path):
    with FaultyOpenAIServer(rate_stall=1.0, stall_s=5.0) as srv:
        teacher = teacher_from_spec(
            f"openai:fake@{srv.base_url}", cache=False, timeout_s=0.2, max_retries=1, **FAST
        )
        (response,) = _generate(teacher, _requests(1, n=2))
    assert not response.completions
    assert [e.index for e in response.errors] == [0, 1]
    assert all("timed out" in e.reason for e in response.errors)
    assert teacher.usage.retries == 2


def test_concurrency_cap_and_least_in_flight_routing(tmp_path):
    with FaultyOpenAIServer(latency=0.05) as a, FaultyOpenAIServer(latency=0.05) as b:
        teacher = teacher_from_spec(
            f"openai:fake@{a.base_url},{b.base_url}", cache=False, concurrency=4
        )
        responses = _generate(teacher, _requests(12, n=2))
    assert sum(len(r.completions) for r in responses) == 24
    assert a.stats.requests > 0 and b.stats.requests > 0  # both replicas used
    assert a.stats.requests + b.stats.requests == 24
    assert a.stats.max_in_flight + b.stats.max_in_flight <= 4


def test_chat_with_schema_sends_response_format(tmp_path):
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}},
        "required": ["answer"],
    }
    with FaultyOpenAIServer() as srv:
        teacher = teacher_from_spec(f"openai:fake@{srv.base_url}", cache=False)
        request = TeacherRequest(
            messages=({"role": "user", "content": "hi"},),
            n=2,
            json_schema=schema,
            params=SamplingParams(seed=1, max_tokens=16),
        )
        (response,) = _generate(teacher, [request])
    assert [c.ok for c in response.completions] == [True, True]
    assert response.completions[0].text.startswith('{"answer": "answer-')


def test_api_key_comes_from_the_named_variable_and_never_reaches_logs(
    tmp_path, monkeypatch, caplog, capfd
):
    secret = "sk-test-" + "9" * 24
    monkeypatch.setenv("SYNTHKD_TEST_KEY", secret)
    caplog.set_level(logging.DEBUG)
    with FaultyOpenAIServer(rate_500=0.5, seed=2) as srv:
        teacher = teacher_from_spec(
            f"openai:fake@{srv.base_url}",
            cache_path=tmp_path / "c.sqlite",
            api_key_env="SYNTHKD_TEST_KEY",
            max_retries=1,
            **FAST,
        )
        responses = _generate(teacher, _requests(4, n=2))
    assert f"Bearer {secret}" in srv.stats.authorization  # the key was sent...
    out, err = capfd.readouterr()
    assert secret not in caplog.text + out + err  # ...and written nowhere
    assert secret not in repr(responses) + repr(teacher.usage)
    assert secret.encode() not in (tmp_path / "c.sqlite").read_bytes()


def test_missing_key_variable_and_unreachable_url_are_one_line_errors(monkeypatch):
    monkeypatch.delenv("SYNTHKD_MISSING_KEY", raising=False)
    with pytest.raises(SynthkdError, match="SYNTHKD_MISSING_KEY is not set"):
        teacher_from_spec("openai:m@http://127.0.0.1:9/v1", api_key_env="SYNTHKD_MISSING_KEY")
    teacher = teacher_from_spec("openai:m@http://127.0.0.1:9/v1", cache=False)
    with pytest.raises(SynthkdError, match=r"http://127\.0\.0\.1:9/v1 is unreachable"):
        _generate(teacher, _requests(1, n=1))


def test_one_teacher_serves_one_event_loop_after_another(tmp_path):
    with FaultyOpenAIServer(latency=0.01) as srv:
        teacher = teacher_from_spec(f"openai:fake@{srv.base_url}", cache=False, concurrency=2)
        first = asyncio.run(teacher.generate(_requests(3, n=2)))
        second = _generate(
            teacher, _requests(3, n=2, seed=8)
        )  # a new loop, e.g. a new Prefect task
    assert sum(len(r.completions) for r in first + second) == 12
    assert srv.stats.max_in_flight <= 2
