"""Tokens/s of the embedded teacher (Gemma 3 270M, llama-cpp-python) in each runtime mode.

Modes, same prompts and sampling, response cache off:
- `sequential`: one sample after another in-process (`Llama.create_completion`; the
  prompt's KV is reused between samples of one prompt);
- `parallel`: the n samples of a prompt decoded together in one llama.cpp batch;
- `server` (with --server): the openai backend against `synthkd teacher serve`
  (llama-cpp-python's server; it answers one request at a time).

The last line printed is one JSON object with the figures.

    .venv/bin/python benchmarks/teacher_llamacpp_speed.py [--n 8] [--max-tokens 64] [--threads 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from synthkd.generators.teachers import SamplingParams, TeacherRequest, teacher_from_spec  # noqa: E402

PROMPTS = [
    "Three facts about the Moon:\n1.",
    "A short news headline about football:\n",
]


async def measure(spec: str, requests: list[TeacherRequest], **options) -> dict:
    teacher = teacher_from_spec(spec, cache=False, **options)
    try:
        if hasattr(teacher, "warm_up"):
            await teacher.warm_up()
        await teacher.generate(
            [TeacherRequest(prompt="Hello", params=SamplingParams(max_tokens=4))]
        )
        tokens_before = teacher.usage.completion_tokens
        started = time.perf_counter()
        responses = await teacher.generate(requests)
        seconds = time.perf_counter() - started
    finally:
        await teacher.aclose()
    tokens = teacher.usage.completion_tokens - tokens_before
    samples = sum(len(r.completions) for r in responses)
    return {
        "samples": samples,
        "completion_tokens": tokens,
        "seconds": round(seconds, 2),
        "tokens_per_s": round(tokens / seconds, 1),
    }


def start_server(threads: int) -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "synthkd",
            "teacher",
            "serve",
            "--port",
            str(port),
            "--threads",
            str(threads),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}/v1"
    for _ in range(240):
        try:
            urllib.request.urlopen(f"{base_url}/models", timeout=2).close()
            return proc, base_url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("the llama_cpp.server did not start")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8, help="samples per prompt")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--server", action="store_true", help="also measure llama_cpp.server")
    args = parser.parse_args()

    params = SamplingParams(temperature=0.8, max_tokens=args.max_tokens, seed=1)
    requests = [TeacherRequest(prompt=p, n=args.n, params=params) for p in PROMPTS]
    figures = {
        "model": "gemma-3-270m",
        "n": args.n,
        "max_tokens": args.max_tokens,
        "threads": args.threads,
    }
    base = {"n_threads": args.threads}
    figures["sequential"] = await measure(None, requests, parallel_samples=False, **base)
    print(f"sequential: {figures['sequential']}", flush=True)
    figures["parallel"] = await measure(None, requests, parallel_samples=True, **base)
    print(f"parallel:   {figures['parallel']}", flush=True)
    if args.server:
        proc, base_url = start_server(args.threads)
        try:
            figures["server"] = await measure(
                f"openai:gemma-3-270m@{base_url}", requests, concurrency=4
            )
        finally:
            proc.terminate()
            proc.wait(15)
        print(f"server:     {figures['server']}", flush=True)
    figures["parallel_speedup"] = round(
        figures["parallel"]["tokens_per_s"] / figures["sequential"]["tokens_per_s"], 2
    )
    print(json.dumps({"benchmark": "teacher_llamacpp_speed", **figures}))


if __name__ == "__main__":
    asyncio.run(main())
