"""The LLM judge as a label source: every sampled record comes back as a verdict with
its rationale, or is counted as dropped with why; never silently lost."""

from __future__ import annotations

import asyncio

import pytest

from synthkd.critics import JUDGE_SAMPLING, judge_labels_async
from synthkd.generators import prompt_style
from synthkd.generators.teachers import SamplingParams, TeacherRequest, teacher_from_spec
from tests.fakes import FaultyOpenAIServer
from tests.fixtures.critic_data import news_corpus

PARAMS = SamplingParams(**JUDGE_SAMPLING)


def request_for(teacher):
    chat = prompt_style(teacher) == "chat"

    def make_request(prompt: str) -> TeacherRequest:
        if chat:
            return TeacherRequest(messages=({"role": "user", "content": prompt},), params=PARAMS)
        return TeacherRequest(prompt=prompt, params=PARAMS)

    return make_request


def judge(teacher, rows, **kwargs):
    async def run():
        try:
            return await judge_labels_async(teacher, rows, request_for(teacher), **kwargs)
        finally:
            await teacher.aclose()

    return asyncio.run(run())


def test_judge_failures_and_unparsed_answers_are_counted(tmp_path):
    """The fake server answers 'answer-…' (no verdict) and fails some requests."""
    rows, _ = news_corpus()
    with FaultyOpenAIServer(seed=3, rate_500=0.3) as srv:
        teacher = teacher_from_spec(
            f"openai:fake@{srv.base_url}",
            cache_path=tmp_path / "c.sqlite",
            max_retries=0,
            backoff_base_s=0.01,
        )
        found = judge(teacher, rows, n=12, seed=1)
        requests = srv.stats.requests
    assert requests >= 12
    assert len(found.labels) == 0
    assert sum(found.dropped.values()) == 12
    assert set(found.dropped) <= {"judge: unparsed answer", "judge: no answer"}
    assert found.dropped["judge: no answer"] > 0  # the injected 500s


@pytest.mark.slow
def test_a_real_chat_model_judges_sampled_records(tmp_path):
    rows, _ = news_corpus()
    teacher = teacher_from_spec(
        "llamacpp:smollm2-135m-instruct", cache_path=tmp_path / "c.sqlite", n_threads=1
    )
    assert prompt_style(teacher) == "chat"
    found = judge(teacher, rows, n=6, seed=0, rubric="Accept a story only if its label fits.")
    assert len(found.labels) + sum(found.dropped.values()) == 6
    sampled_ids = {row["id"] for row in rows}
    for label in found.labels:
        assert label.source == "judge" and label.accept in (0, 1)
        assert isinstance(label.rationale, str)
        assert label.row["id"] in sampled_ids
