"""Retries that never crash and no teacher answer paid twice.

A garbage Retry-After falls back to backoff; a 4xx on one request fails that request
only; a 401 names where the key came from; label scoring is cached per text, so a rerun
pays only for the texts not answered before; a rerun asks again the samples that ended
as teacher errors and says how many; a vLLM engine error fails one sample, not the
batch. Fakes only at the edge: the fault-injecting server, a 401 server, a stand-in
vLLM module.
"""

from __future__ import annotations

import asyncio
import http.server
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from synthkd.data import BufferedWriter, CorpusStore
from synthkd.errors import SynthkdError
from synthkd.generators import done_samples, generate, make_task, teacher_mix
from synthkd.generators.teachers import SamplingParams, TeacherRequest, teacher_from_spec
from synthkd.generators.teachers.base import LabelError
from synthkd.generators.teachers.config import TeacherConfig
from synthkd.generators.teachers.openai_client import MAX_TIMEOUTS
from synthkd.generators.teachers.vllm_backend import VLLMTeacher
from synthkd.training import TeacherClassifier, evaluate_teacher
from tests.fakes import FaultyOpenAIServer

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "examples" / "news_topics" / "seeds.jsonl"
LABELS = ["business", "entertainment", "politics", "sport", "tech"]
FAST = dict(backoff_base_s=0.001, backoff_max_s=0.01)


def run(coroutine):
    return asyncio.run(coroutine)


async def _generate(teacher, requests):
    try:
        return await teacher.generate(requests)
    finally:
        await teacher.aclose()


class Unparseable(float):
    """A Retry-After the fake server writes as "soon" (neither seconds nor an HTTP date)."""

    def __format__(self, spec: str) -> str:
        return "soon"


def test_an_unparseable_retry_after_falls_back_to_backoff():
    with FaultyOpenAIServer(rate_429=0.5, retry_after=Unparseable(0.0), seed=4) as srv:
        teacher = teacher_from_spec(f"openai:fake@{srv.base_url}", cache=False, **FAST)
        requests = [TeacherRequest(prompt=f"p{i}", params=SamplingParams(seed=i)) for i in range(8)]
        responses = run(_generate(teacher, requests))
    assert srv.stats.outcomes["429"] > 0  # "soon" was sent, and retried past
    assert all(r.completions and r.completions[0].ok for r in responses)


class _Refusing(http.server.BaseHTTPRequestHandler):
    def _refuse(self):
        body = b'{"error": {"message": "invalid api key"}}'
        self.send_response(401)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _refuse

    def log_message(self, *args):
        pass


@pytest.fixture
def refusing_url():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    timer = threading.Timer(60, server.shutdown)  # stops by itself
    timer.start()
    yield f"http://127.0.0.1:{server.server_port}/v1"
    timer.cancel()
    server.shutdown()


def test_a_401_names_the_variable_actually_used(refusing_url, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    teacher = teacher_from_spec(f"openai:m@{refusing_url}", cache=False)
    with pytest.raises(SynthkdError) as caught:
        run(_generate(teacher, [TeacherRequest(prompt="hi")]))
    message = str(caught.value)
    assert "HTTP 401" in message and "OPENAI_API_KEY" not in message
    assert "api_key_env" in message
    monkeypatch.setenv("MY_TEACHER_KEY", "sk-" + "1" * 20)
    teacher = teacher_from_spec(
        f"openai:m@{refusing_url}", cache=False, api_key_env="MY_TEACHER_KEY"
    )
    with pytest.raises(SynthkdError, match="MY_TEACHER_KEY.*HTTP 401"):
        run(_generate(teacher, [TeacherRequest(prompt="hi")]))


def test_a_stalled_teacher_fails_within_a_few_timeouts():
    with FaultyOpenAIServer(rate_stall=1.0, stall_s=30) as srv:
        teacher = teacher_from_spec(f"openai:fake@{srv.base_url}", cache=False, timeout_s=3, **FAST)
        requests = [TeacherRequest(prompt=f"p{i}") for i in range(4)]
        started = time.monotonic()
        with pytest.raises(SynthkdError, match="stopped answering"):
            run(_generate(teacher, requests))
    assert time.monotonic() - started < 12  # two timeouts of 3 s, not retries for minutes
    # the defaults: a sample gives up after MAX_TIMEOUTS timeouts, silent long enough by then
    default = TeacherConfig().timeout_s
    assert MAX_TIMEOUTS * default >= max(1.5 * default, 5) and MAX_TIMEOUTS * default + 1 < 60


def _score(base_url: str, cache: Path, texts: list[str], **options):
    teacher = teacher_from_spec(f"openai:fake@{base_url}", cache_path=cache, **FAST, **options)
    labels = [" sport", " tech"]

    async def go():
        try:
            return await teacher.label_distribution("Story: ", texts, labels, "\nSection:")
        finally:
            await teacher.aclose()

    return run(go())


def test_a_scoring_400_fails_one_text_and_a_rerun_pays_only_for_it(tmp_path):
    texts = [f"short story {i}" for i in range(9)] + ["a very long story " * 20]
    cache = tmp_path / "c.sqlite"
    with FaultyOpenAIServer(max_prompt_chars=200) as srv:
        first = _score(srv.base_url, cache, texts)
    assert isinstance(first[-1], LabelError) and "HTTP 400" in first[-1].reason
    assert all(isinstance(d, dict) and abs(sum(d.values()) - 1) < 1e-9 for d in first[:-1])
    with FaultyOpenAIServer() as again:
        second = _score(again.base_url, cache, texts)
    assert again.stats.requests == 2  # only the failed text's two labels were asked
    assert second[:-1] == first[:-1] and isinstance(second[-1], dict)


def test_the_teacher_baseline_uses_the_cache_and_times_only_real_answers(tmp_path):
    texts = [f"story {i}" for i in range(12)]
    truth = ["sport", "tech"] * 6
    cache = tmp_path / "c.sqlite"
    with FaultyOpenAIServer(latency=0.01) as srv:
        for attempt in range(2):
            teacher = teacher_from_spec(f"openai:fake@{srv.base_url}", cache_path=cache)
            classifier = TeacherClassifier(teacher, ["sport", "tech"], "Story: ", "\nSection:")
            try:
                report = evaluate_teacher(classifier, texts, truth)
            finally:
                classifier.close()
            if attempt == 0:
                paid = srv.stats.requests
                assert paid == 24 and report.examples_per_s_batch32 > 0
    assert srv.stats.requests == paid  # the second baseline paid for nothing
    assert report.examples == 12 and report.examples_per_s_batch32 == 0.0  # nothing timed


def _labelled_run(tmp_path: Path, base_url: str, done=None):
    config = {
        "kind": "labelled",
        "labels": {label: {} for label in LABELS},
        "seeds": str(SEEDS),
        "per_label": 3,
        "samples_per_prompt": 2,
    }
    task = make_task(config)
    section = {
        "spec": f"openai:fake-teacher@{base_url}",
        "prompt_style": "completion",
        "max_retries": 0,
        "cache_path": str(tmp_path / "responses.sqlite"),
    }
    slots = teacher_mix([section])
    corpus = CorpusStore.create(tmp_path / "corpus", "labelled")
    rejects = CorpusStore.create(tmp_path / "rejects", "labelled", rejects=True)
    done = done_samples(corpus, rejects, "label")

    async def go():
        try:
            with BufferedWriter(corpus, "t") as writer, BufferedWriter(rejects, "t") as rw:
                return await generate(
                    task, slots, writer, rw, recipe="retry", done=done, max_attempts=1
                )
        finally:
            await slots[0].teacher.aclose()

    return run(go()), corpus, rejects


def test_a_rerun_asks_again_the_samples_that_were_teacher_errors(tmp_path):
    with FaultyOpenAIServer(rate_500=0.3, seed=7) as srv:
        first, corpus, rejects = _labelled_run(tmp_path, srv.base_url)
        failed = first.rejects["teacher_error"]
    assert failed > 0
    assert len(done_samples(corpus, rejects, "label").retry) == failed
    with FaultyOpenAIServer(seed=7) as healthy:
        second, corpus, rejects = _labelled_run(tmp_path, healthy.base_url)
    assert second.retried_teacher_errors == failed
    assert second.to_dict()["retried_teacher_errors"] == failed
    assert healthy.stats.requests == failed  # the rest came from store and cache
    reasons = rejects.read(columns=["reason"]).column("reason").to_pylist()
    assert not [r for r in reasons if r.startswith("teacher_error")]  # superseded
    assert not done_samples(corpus, rejects, "label").retry


class _Engine:
    """A stand-in vLLM engine: refuses any prompt longer than its max_model_len."""

    def __init__(self, model: str, max_model_len: int = 40):
        self.max_model_len = max_model_len
        self.calls = 0

    def generate(self, prompts, params, use_tqdm=False):
        self.calls += 1
        for prompt in prompts:
            if len(prompt) > self.max_model_len:
                raise ValueError(f"prompt length {len(prompt)} exceeds max_model_len")
        return [
            SimpleNamespace(
                prompt_token_ids=list(range(len(p))),
                outputs=[SimpleNamespace(text=p[::-1], finish_reason="stop", token_ids=[1, 2])],
            )
            for p in prompts
        ]


def test_a_vllm_engine_error_fails_one_sample_not_the_batch():
    stand_in = SimpleNamespace(LLM=_Engine, SamplingParams=lambda **kw: SimpleNamespace(**kw))
    teacher = VLLMTeacher("m", TeacherConfig(cache=False), vllm=stand_in)
    prompts = ["short one", "x" * 100, "short two"]
    responses = run(_generate(teacher, [TeacherRequest(prompt=p) for p in prompts]))
    assert [c.text for c in responses[0].completions] == ["eno trohs"]
    assert not responses[1].completions and "max_model_len" in responses[1].errors[0].reason
    assert [c.text for c in responses[2].completions] == ["owt trohs"]
