"""A teacher that goes away for good mid-run: one clear line, nothing lost, a rerun resumes.

The user sees which teacher is gone and how far the run got; the samples the teacher
never answered are not turned into rejects (a rerun asks them), and the answers it
did give are neither lost nor paid for again (those of the batch in flight wait in the
response cache).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from synthkd.data import CorpusStore
from synthkd.errors import SynthkdError
from synthkd.generators.teachers import TeacherRequest, teacher_from_spec
from tests.fakes import FaultyOpenAIServer
from tests.test_reliability_chaos import recipe, story

ROOT = Path(__file__).resolve().parents[1]


def generate(recipe_path: Path, out: Path, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "SYNTHKD_CACHE": str(cache), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "synthkd", "generate", str(recipe_path), "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_a_teacher_gone_for_good_fails_clearly_and_a_rerun_asks_only_the_rest(tmp_path):
    out, cache = tmp_path / "run", tmp_path / "cache"
    with FaultyOpenAIServer(answer=story, go_away_after=24, rate_500=0.05, seed=2) as srv:
        path = recipe(tmp_path, srv.base_url, per_label=12)  # 60 records wanted
        result = generate(path, out, cache)
        first = srv.stats
    assert first.went_away
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr
    message = lines[-1]
    assert message.startswith("error: ")
    assert "openai:fake-teacher" in message and srv.base_url in message
    assert "24 samples" in message, message  # how far it got

    corpus, rejects = CorpusStore(out / "corpus"), CorpusStore(out / "rejects")
    stored = corpus.read().to_pylist()
    reasons = [r["reason"] for r in rejects.read().to_pylist()]
    # whole records of whole batches are committed (the batch the teacher died in is in
    # the response cache); samples never answered are not marked done: a teacher outage
    # is not a verdict on a sample
    assert 0 < len(stored) == len({r["id"] for r in stored}) <= 24
    assert all(r["text"] and r["label"] and r["sample_key"] for r in stored)
    assert not [r for r in reasons if r.startswith("teacher_error")], reasons
    assert corpus.versions()[-1].rows == len(stored)

    with FaultyOpenAIServer(answer=story, port=srv.port) as back:
        again = generate(path, out, cache)
        second = back.stats
    assert again.returncode == 0, again.stderr
    answered_before = {sid for sid, n in first.answered_ok.items() if n}
    assert not answered_before & set(second.attempts), "a rerun paid again for answered samples"
    records = CorpusStore(out / "corpus").read().to_pylist()
    assert len(records) == len({r["id"] for r in records}) >= 60


def _sample(base_url: str, prompts: list[str], **options):
    async def go():
        teacher = teacher_from_spec(f"openai:fake-teacher@{base_url}", cache=False, **options)
        try:
            return await teacher.generate([TeacherRequest(prompt=p) for p in prompts])
        finally:
            await teacher.aclose()

    return asyncio.run(go())


def test_a_teacher_failing_every_sample_stops_instead_of_rejecting_them_all():
    prompts = [f"p{i}" for i in range(40)]
    with (
        FaultyOpenAIServer(rate_500=1.0) as srv,
        pytest.raises(SynthkdError, match="keeps failing") as caught,
    ):
        _sample(srv.base_url, prompts, max_retries=1, concurrency=2)
    assert "openai:fake-teacher" in str(caught.value) and "HTTP 500" in str(caught.value)
    assert srv.stats.requests < 40 * 2  # it stopped early, not after every sample


def test_prompts_the_teacher_refuses_are_rejects_not_a_dead_teacher():
    with FaultyOpenAIServer(max_prompt_chars=50) as srv:
        responses = _sample(srv.base_url, ["x" * 100 + str(i) for i in range(30)] + ["short"])
    assert sum(len(r.errors) for r in responses) == 30
    assert all("context length" in e.reason for r in responses for e in r.errors)
    assert responses[-1].completions[0].ok
