"""A small OpenAI-compatible server that injects faults: the only fake in the test suite.

It stands at the network edge, where real teachers time out, rate-limit, crash and
truncate. Faults are drawn per (sample, attempt) from the seed, so a run is
reproducible whatever the order requests arrive in:

    with FaultyOpenAIServer(rate_429=0.2, rate_500=0.1, rate_reset=0.1, seed=1) as srv:
        teacher = teacher_from_spec(f"openai:fake@{srv.base_url}")
        ...
        srv.stats.answered_ok  # samples that got a good answer

A sample is identified by its prompt (or messages) and seed; the server keeps what it
saw per sample (attempts, good answers and when they were sent, the request's sampling
fields), so a test can check that no answered sample was paid for twice. `answer`
replaces the default text ("answer-<id>") with realistic or hostile completions;
`go_away_after` makes the server vanish for good after that many good answers. The
server binds
127.0.0.1 on a free port, serves from a daemon thread (or, with `spawn_server_process`,
a child process for benchmarks) and stops by itself after `max_lifetime_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import random
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

OUTCOMES = ("429", "500", "reset", "malformed", "length", "stall", "echo")
"""Fault outcomes, in the order rates are laid out (new ones go last: seeds keep their draws)."""


@dataclass
class ServerStats:
    """What the server saw and answered, by sample id (see `sample_id`)."""

    requests: int = 0
    """POSTs to /v1/completions and /v1/chat/completions."""
    outcomes: Counter = field(default_factory=Counter)
    """Count of each outcome: "ok" or one of OUTCOMES."""
    attempts: Counter = field(default_factory=Counter)
    """Requests per sample id."""
    answered_ok: Counter = field(default_factory=Counter)
    """Good answers (finish_reason "stop") sent per sample id."""
    answered_length: Counter = field(default_factory=Counter)
    """Length-truncated answers sent per sample id."""
    max_in_flight: int = 0
    """Most completion requests being answered at once."""
    authorization: set = field(default_factory=set)
    """Authorization headers seen (to check a key was sent, and where it must not leak)."""
    ok_times: dict = field(default_factory=dict)
    """time.monotonic() of each good answer per sample id (same clock as the test's)."""
    payloads: dict = field(default_factory=dict)
    """Per sample id, the fields that make a sample: prompt or messages, seed, temperature,
    top_p, max_tokens, stop, response_format (first request seen)."""
    went_away: bool = False
    """True once `go_away_after` good answers were sent and the server closed for good."""

    def to_dict(self) -> dict:
        return {
            "requests": self.requests,
            "outcomes": dict(self.outcomes),
            "attempts": dict(self.attempts),
            "answered_ok": dict(self.answered_ok),
            "answered_length": dict(self.answered_length),
            "max_in_flight": self.max_in_flight,
            "went_away": self.went_away,
        }

    def repeated_after_ok(self) -> dict[str, int]:
        """Sample ids requested again after a good answer: attempts after the first "ok"."""
        return {sid: len(times) - 1 for sid, times in self.ok_times.items() if len(times) > 1}


def sample_id(prompt_or_messages, seed) -> str:
    """How the server names a sample: its prompt (or chat messages) and seed."""
    blob = json.dumps([prompt_or_messages, seed], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def answer_text(prompt_or_messages, seed) -> str:
    """The text the server answers a sample with (deterministic)."""
    return f"answer-{sample_id(prompt_or_messages, seed)[:8]}"


def default_answer(prompt_or_messages, seed, json_mode: bool) -> str:
    """What the server answers unless given `answer=`: `answer-<id>`, or {"answer": ...}."""
    text = answer_text(prompt_or_messages, seed)
    return json.dumps({"answer": text}) if json_mode else text


class FaultyOpenAIServer:
    """Context manager: an OpenAI-compatible server on 127.0.0.1 with injected faults.

    Rates are probabilities per attempt (they add up, at most 1). `latency` delays
    every answer (seconds), plus a random extra of up to `jitter` seconds; `retry_after` is the Retry-After header sent with a 429;
    a "stall" answers nothing for `stall_s` then drops the connection (a timeout for
    the client); "reset" drops the connection without answering; "malformed" sends a
    200 with a broken JSON body; "length" sends a valid answer cut at max_tokens; "echo"
    is a 400 whose error message repeats the request's Authorization header (what a
    careless proxy does; a client must not copy it into logs or rows).

    `answer(prompt_or_messages, seed, json_mode) -> str` writes the good answers
    (default `default_answer`); `go_away_after=N` closes the listener and every
    connection after N good answers: connections are refused from then on;
    `max_prompt_chars` answers longer prompts with the 400 a server gives a prompt that
    exceeds its context window; `fault_scoring=False` spares label-scoring requests
    (echo with logprobs) from the faults.
    """

    def __init__(
        self,
        *,
        latency: float = 0.0,
        jitter: float = 0.0,
        rate_429: float = 0.0,
        rate_500: float = 0.0,
        rate_reset: float = 0.0,
        rate_malformed: float = 0.0,
        rate_length: float = 0.0,
        rate_stall: float = 0.0,
        rate_echo: float = 0.0,
        stall_s: float = 5.0,
        retry_after: float = 0.05,
        seed: int = 0,
        model: str = "fake-teacher",
        port: int = 0,
        max_lifetime_s: float = 1800.0,
        answer=None,
        go_away_after: int | None = None,
        max_prompt_chars: int | None = None,
        fault_scoring: bool = True,
    ) -> None:
        self.latency = latency
        self.jitter = jitter
        self.rates = dict(
            zip(
                OUTCOMES,
                (
                    rate_429,
                    rate_500,
                    rate_reset,
                    rate_malformed,
                    rate_length,
                    rate_stall,
                    rate_echo,
                ),
                strict=True,
            )
        )
        if sum(self.rates.values()) > 1.0 + 1e-9:
            raise ValueError("fault rates add up to more than 1")
        self.stall_s = stall_s
        self.retry_after = retry_after
        self.seed = seed
        self.model = model
        self.port = port
        self.max_lifetime_s = max_lifetime_s
        self.answer = answer or default_answer
        self.go_away_after = go_away_after
        self.max_prompt_chars = max_prompt_chars
        self.fault_scoring = fault_scoring
        self.stats = ServerStats()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self._in_flight = 0
        self._handlers: set[asyncio.Task] = set()
        self._server: asyncio.AbstractServer | None = None
        self._ok_total = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # --- lifecycle -------------------------------------------------------------------
    def __enter__(self) -> FaultyOpenAIServer:
        self._thread = threading.Thread(target=self._run_thread, name="faulty-openai", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fake OpenAI server did not start")
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        if self._loop and self._stopped and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread:
            self._thread.join(10)

    def _run_thread(self) -> None:
        asyncio.run(self.serve())

    async def serve(self, on_ready=None) -> None:
        """Serve until stopped or `max_lifetime_s` passes."""
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, backlog=1024)
        self.port = server.sockets[0].getsockname()[1]
        self._server = server
        self._ready.set()
        if on_ready:
            on_ready(self)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stopped.wait(), self.max_lifetime_s)
        self._close_all()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    def _close_all(self) -> None:
        """Stop listening and drop every connection (idle, stalled or mid-answer)."""
        self._server.close()
        for task in list(self._handlers):  # stalled answers and idle keep-alive connections
            task.cancel()

    # --- HTTP ---------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._handlers.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                body = await reader.readexactly(length) if length else b""
                with self._lock:
                    self.stats.authorization.add(headers.get("authorization"))
                keep = await self._route(method, path.split("?")[0], body, headers, writer)
                if not keep:
                    return
        except (asyncio.IncompleteReadError, ConnectionError, ValueError, asyncio.CancelledError):
            pass
        finally:
            self._handlers.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    async def _route(self, method: str, path: str, body: bytes, headers: dict, writer) -> bool:
        if method == "GET" and path.endswith("/models"):
            data = {
                "object": "list",
                "data": [{"id": self.model, "object": "model", "owned_by": "fake"}],
            }
            return await _send(writer, 200, data)
        if method == "GET" and path == "/_stats":
            with self._lock:
                return await _send(writer, 200, self.stats.to_dict())
        if method == "POST" and path.endswith(("/completions", "/chat/completions")):
            with self._lock:
                self._in_flight += 1
                self.stats.max_in_flight = max(self.stats.max_in_flight, self._in_flight)
            try:
                chat = path.endswith("/chat/completions")
                return await self._complete(chat, body, headers, writer)
            finally:
                with self._lock:
                    self._in_flight -= 1
        return await _send(writer, 404, {"error": {"message": f"no route {method} {path}"}})

    async def _complete(self, chat: bool, body: bytes, headers: dict, writer) -> bool:
        try:
            payload = json.loads(body)
        except ValueError:
            return await _send(writer, 400, {"error": {"message": "body is not JSON"}})
        subject = payload.get("messages") if chat else payload.get("prompt")
        seed = payload.get("seed")
        sid = sample_id(subject, seed)
        with self._lock:
            if self.stats.went_away:
                writer.transport.abort()
                return False
            attempt = self.stats.attempts[sid]
            self.stats.attempts[sid] += 1
            self.stats.requests += 1
            if sid not in self.stats.payloads:
                self.stats.payloads[sid] = {
                    "chat": chat,
                    "subject": subject,
                    **{k: payload.get(k) for k in _SAMPLE_FIELDS},
                }
        if self.max_prompt_chars is not None and len(json.dumps(subject)) > self.max_prompt_chars:
            message = "This model's maximum context length is exceeded by the prompt"
            error = {"message": message, "type": "invalid_request_error"}
            return await _send(writer, 400, {"error": error})
        scoring = bool(payload.get("echo")) and payload.get("logprobs") is not None
        outcome = "ok" if scoring and not self.fault_scoring else self._draw(sid, attempt)
        delay = self.latency
        if self.jitter:
            delay += random.Random(f"jitter:{self.seed}:{sid}:{attempt}").uniform(0, self.jitter)
        if delay:
            await asyncio.sleep(delay)
        with self._lock:
            self.stats.outcomes[outcome] += 1
        if outcome == "429":
            error = {"error": {"message": "rate limited", "type": "rate_limit"}}
            return await _send(writer, 429, error, {"retry-after": f"{self.retry_after:g}"})
        if outcome == "500":
            return await _send(writer, 500, {"error": {"message": "internal error"}})
        if outcome == "reset":
            writer.transport.abort()
            return False
        if outcome == "stall":
            await asyncio.sleep(self.stall_s)
            writer.transport.abort()
            return False
        if outcome == "echo":
            message = f"rejected {headers.get('authorization')} (invalid request)"
            return await _send(writer, 400, {"error": {"message": message}})
        if outcome == "malformed":  # cut-off JSON, or JSON that is not a completion
            if attempt % 2:
                return await _send(writer, 200, {"id": "cmpl-1", "object": "text_completion"})
            return await _send_raw(writer, 200, b'{"id": "cmpl-1", "choices": [{"text": ')
        text = self.answer(subject, seed, payload.get("response_format") is not None)
        finish = "length" if outcome == "length" else "stop"
        if finish == "length":
            text = text[: max(1, len(text) // 2)]
        n = int(payload.get("n") or 1)
        if chat:
            choices = [
                {
                    "index": i,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": finish,
                }
                for i in range(n)
            ]
        else:
            choices = [{"index": i, "text": text, "finish_reason": finish} for i in range(n)]
            if payload.get("echo") and payload.get("logprobs") is not None:
                for choice in choices:  # the prompt's own tokens, scored (label scoring)
                    choice["text"] = subject + text
                    choice["logprobs"] = _prompt_logprobs(subject, sid)
        prompt_tokens = len(json.dumps(subject)) // 4 + 1
        data = {
            "id": f"cmpl-{sid}",
            "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()),
            "model": payload.get("model", self.model),
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": 3 * n,
                "total_tokens": prompt_tokens + 3 * n,
            },
        }
        keep = await _send(writer, 200, data)
        with self._lock:  # counted once the answer is on its way (written and drained)
            (self.stats.answered_length if finish == "length" else self.stats.answered_ok)[sid] += 1
            if finish == "stop":
                self.stats.ok_times.setdefault(sid, []).append(time.monotonic())
                self._ok_total += 1
                if self.go_away_after is not None and self._ok_total >= self.go_away_after:
                    self.stats.went_away = True
                    asyncio.get_running_loop().call_soon(self._close_all)
        return keep

    def _draw(self, sid: str, attempt: int) -> str:
        if not any(self.rates.values()):
            return "ok"
        u = random.Random(f"{self.seed}:{sid}:{attempt}").random()
        edge = 0.0
        for outcome, rate in self.rates.items():
            edge += rate
            if u < edge:
                return outcome
        return "ok"


def _prompt_logprobs(prompt: str, sid: str) -> dict:
    """Echoed prompt logprobs in the /v1/completions shape: word tokens, made-up scores."""
    tokens = re.findall(r"\s*\S+", prompt) or [prompt]
    offsets, at = [], 0
    for token in tokens:
        offsets.append(at)
        at += len(token)
    rng = random.Random(sid)
    values = [None] + [-rng.uniform(0.05, 6.0) for _ in tokens[1:]]
    return {
        "tokens": tokens,
        "token_logprobs": values,
        "text_offset": offsets,
        "top_logprobs": None,
    }


async def _send(writer, status: int, data, headers: dict[str, str] | None = None) -> bool:
    return await _send_raw(writer, status, json.dumps(data).encode(), headers)


_SAMPLE_FIELDS = ("seed", "temperature", "top_p", "max_tokens", "stop", "response_format")

_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
}


async def _send_raw(
    writer, status: int, body: bytes, headers: dict[str, str] | None = None
) -> bool:
    head = [
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}",
        "content-type: application/json",
        f"content-length: {len(body)}",
    ]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
    await writer.drain()
    return True


@contextlib.contextmanager
def spawn_server_process(**options):
    """The same server in a child process (no GIL shared with the client); yields base_url."""
    code = "from tests.fakes.openai_server import _main; _main()"
    args = [sys.executable, "-c", code, "--options", json.dumps(options)]
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, cwd=root)
    try:
        line = proc.stdout.readline().strip()
        if not line.startswith("http://"):
            raise RuntimeError(f"the fake OpenAI server process did not start: {line!r}")
        yield line
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--options", default="{}", help="JSON keyword options of FaultyOpenAIServer"
    )
    args = parser.parse_args()
    server = FaultyOpenAIServer(**json.loads(args.options))
    parent = os.getppid()

    def ready(srv: FaultyOpenAIServer) -> None:
        print(srv.base_url, flush=True)

        async def watch_parent() -> None:  # stop by itself when the parent is gone
            while os.getppid() == parent:
                await asyncio.sleep(1)
            srv._stopped.set()

        asyncio.get_running_loop().create_task(watch_parent())

    asyncio.run(server.serve(on_ready=ready))


if __name__ == "__main__":
    _main()
