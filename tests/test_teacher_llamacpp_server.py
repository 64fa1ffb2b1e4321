"""The openai backend against a real `llama_cpp.server` started by `synthkd teacher serve`."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from synthkd.generators.teachers import SamplingParams, TeacherRequest, teacher_from_spec

MODEL = "smollm2-135m-instruct"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:  # the server stops by itself if pytest is killed
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@pytest.fixture(scope="module")
def server():
    port = _free_port()
    command = [
        sys.executable, "-m", "synthkd", "teacher", "serve",
        "--model", f"llamacpp:{MODEL}", "--port", str(port),
        "--n-ctx", "1024", "--threads", "1", "--logprobs",
    ]  # fmt: skip
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        preexec_fn=_die_with_parent,
        start_new_session=True,
    )
    banner = proc.stdout.readline().strip()
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base_url}/models", timeout=2) as answer:
                json.load(answer)
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {proc.returncode}")
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("llama_cpp.server did not come up in 120 s")
    yield {"base_url": base_url, "banner": banner}
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _generate(spec: str, requests, **options):
    async def run():
        teacher = teacher_from_spec(spec, cache=False, **options)
        try:
            return await teacher.generate(requests), teacher
        finally:
            await teacher.aclose()

    return asyncio.run(run())


def test_serve_prints_the_base_url_to_use(server):
    assert server["banner"] == f"serving {MODEL} at {server['base_url']}"


def test_completions_and_chat_through_the_server(server):
    requests = [
        TeacherRequest(
            prompt="The capital of France is", n=2, params=SamplingParams(seed=1, max_tokens=6)
        ),
        TeacherRequest(
            messages=({"role": "user", "content": "Say hello."},),
            params=SamplingParams(seed=2, max_tokens=6),
        ),
    ]
    (completion, chat), teacher = _generate(f"openai:{MODEL}@{server['base_url']}", requests)
    assert [c.index for c in completion.completions] == [0, 1] and not completion.errors
    assert len(chat.completions) == 1 and chat.completions[0].text.strip()
    for c in completion.completions + chat.completions:
        assert c.finish_reason in ("stop", "length") and c.prompt_tokens > 0
        assert 0 < c.completion_tokens <= 7  # the server counts the end-of-turn token too
    assert teacher.usage.requests == 3 and teacher.usage.completion_tokens > 0


def test_chat_with_json_schema_through_the_server(server):
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
        "required": ["city", "country"],
    }
    request = TeacherRequest(
        messages=({"role": "user", "content": "Name a big city and its country, as JSON."},),
        json_schema=schema,
        params=SamplingParams(seed=3, max_tokens=40),
    )
    ((response,), _) = _generate(f"openai:{MODEL}@{server['base_url']}", [request])
    value = json.loads(response.completions[0].text)
    assert set(value) >= {"city", "country"}


@pytest.mark.slow  # llama-cpp-python's server computes echoed logprobs in Python: ~10-20 s
def test_label_distribution_from_echoed_logprobs(server):
    async def run():
        teacher = teacher_from_spec(f"openai:{MODEL}@{server['base_url']}", cache=False)
        try:
            return await teacher.label_distribution(
                "Label each review as positive or negative.\n\n"
                "Review: I loved it!\nSentiment: positive\n\n",
                ["Review: Awful, I want my money back."],
                ["positive", "negative"],
                "\nSentiment:",
            )
        finally:
            await teacher.aclose()

    (dist,) = asyncio.run(run())
    assert set(dist) == {"positive", "negative"} and abs(sum(dist.values()) - 1) < 1e-9
