"""What the whole `synthkd generate` process costs on top of a bare AsyncOpenAI loop.

A zero-latency OpenAI-compatible stand-in (the test suite's fake server, in a child
process) answers every sample with a distinct one-line news story, so records are
parsed, deduplicated, committed to Delta and cached as in a real run. Then, in the same
run, alternately for --rounds pairs:

- `synthkd generate recipes/news_topics.yaml --n N --teacher openai:x@URL` as a whole
  process (start-up, recipe, prompts, parsing, progress display, Delta commits, cache
  writes, the filter pass), with a fresh response cache and run folder; its rate is
  HTTP requests (one per sample: the openai backend's rule) / wall seconds;
- a bare `AsyncOpenAI` + semaphore loop (same concurrency as the teacher's default)
  making as many requests with a prompt of the same size; its rate is requests / loop
  seconds.

Target (issue 17): generate >= 0.9x the bare loop. The last line printed is one JSON
object with both rates and the ratio, the CPU seconds of each (the bare loop's without
its start-up; a steadier figure than rates when others share the cores) and the load
average. Pass --profile to also write a cProfile of one generate process (printed top
25 by cumulative time).

    .venv/bin/python benchmarks/generate_overhead.py [--n 1000] [--rounds 3] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "news_topics.yaml"
CONCURRENCY = 4
"""The openai backend's default `concurrency` (TeacherConfig), which generate uses."""

SERVER = r"""
import asyncio, json, os, random, re, sys
from tests.fakes.openai_server import FaultyOpenAIServer

rows = [json.loads(x) for x in open("examples/news_topics/validation.jsonl")]
sentences = [s for r in rows for s in re.split(r"(?<=[.!?])\s+", r["text"]) if len(s) > 30]

def answer(prompt, seed, json_mode):
    rng = random.Random(f"{str(prompt)[-300:]}|{seed}")
    text = " ".join(rng.sample(sentences, 3))
    return json.dumps({"text": text}) if json_mode else text + "\n"

server = FaultyOpenAIServer(answer=answer, max_lifetime_s=3600)
parent = os.getppid()

def ready(srv):
    print(srv.base_url, flush=True)
    async def watch():
        while os.getppid() == parent:
            await asyncio.sleep(1)
        srv._stopped.set()
    asyncio.get_running_loop().create_task(watch())

asyncio.run(server.serve(on_ready=ready))
"""


@contextlib.contextmanager
def stand_in():
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        url = proc.stdout.readline().strip()
        if not url.startswith("http://"):
            raise SystemExit(f"the stand-in server did not start: {url!r}")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def run_generate(url: str, n: int, work: Path, profile: Path | None = None) -> dict:
    """One whole `synthkd generate` process; its summary plus wall seconds."""
    out = work / "run"
    env = {**os.environ, "SYNTHKD_CACHE": str(work / "cache"), "HF_HUB_OFFLINE": "1"}
    head = [sys.executable]
    if profile is not None:
        head += ["-m", "cProfile", "-o", str(profile)]
    command = head + ["-m", "synthkd", "generate", str(RECIPE), "--n", str(n), "--out", str(out)]
    command += ["--teacher", f"openai:x@{url}", "--json"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise SystemExit(f"synthkd generate failed: {done.stderr.strip()[-2000:]}")
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    return {"wall_seconds": wall, "cpu_seconds": cpu, **summary}


async def bare_loop(url: str, requests: int, prompt_chars: int) -> tuple[float, float]:
    """Chat requests shaped like generate's: a JSON schema, one sample each (the openai
    backend sends one request per sample, so its cache is exact)."""
    import openai

    client = openai.AsyncOpenAI(base_url=url, api_key="no-key", max_retries=0)
    semaphore = asyncio.Semaphore(CONCURRENCY)
    base = ("Write one BBC News story as JSON. " + "x" * prompt_chars)[:prompt_chars]
    schema = {
        "type": "json_schema",
        "json_schema": {
            "name": "story",
            "schema": {"type": "object", "properties": {"text": {"type": "string"}}},
        },
    }

    async def one(i: int) -> str:
        async with semaphore:
            result = await client.chat.completions.create(
                model="x",
                messages=[{"role": "user", "content": f"{base} {i}"}],
                max_tokens=160,
                temperature=0.9,
                seed=i,
                response_format=schema,
            )
            return json.loads(result.choices[0].message.content)["text"]

    start, cpu = time.perf_counter(), time.process_time()
    texts = await asyncio.gather(*(one(i) for i in range(requests)))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    await client.close()
    assert len(texts) == requests
    return requests / seconds, cpu


def print_profile(path: Path) -> None:
    import pstats

    print(f"\ncProfile of one generate process ({path}), top 25 by cumulative time:")
    pstats.Stats(str(path)).sort_stats("cumulative").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="records per label (generate --n)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--prompt-chars", type=int, default=2000, help="bare loop prompt size")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    ours, bare, runs, bare_cpu = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="synthkd-genbench-") as tmp, stand_in() as url:
        asyncio.run(bare_loop(url, 200, args.prompt_chars))  # warm the server
        for r in range(args.rounds):
            work = Path(tmp) / f"round{r}"
            if r % 2:  # alternate who goes first: drift in machine load hits both
                run = run_generate(url, args.n, work)
                rate, cpu = asyncio.run(bare_loop(url, run["samples"], args.prompt_chars))
                bare.append(rate)
                bare_cpu.append(cpu)
            else:
                requests = runs[0]["samples"] if runs else args.n * 5
                rate, cpu = asyncio.run(bare_loop(url, requests, args.prompt_chars))
                bare.append(rate)
                bare_cpu.append(cpu)
                run = run_generate(url, args.n, work)
            runs.append(run)
            ours.append(run["samples"] / run["wall_seconds"])  # one HTTP request per sample
            print(
                f"round {r}: generate {ours[-1]:7.1f} req/s ({run['samples']} requests, "
                f"{run['wall_seconds']:.1f} s wall, {run['seconds']:.1f} s in generation, "
                f"{run['cpu_seconds']:.1f} s CPU)   bare {bare[-1]:7.1f} req/s ({bare_cpu[-1]:.1f} s CPU)",
                flush=True,
            )
        if args.profile:
            profile = Path(tmp) / "generate.prof"
            run_generate(url, args.n, Path(tmp) / "profiled", profile)
            print_profile(profile)
    ratios = [o / b for o, b in zip(ours, bare, strict=True)]
    last = runs[-1]
    result = {
        "benchmark": "generate_overhead",
        "n": args.n,
        "requests": last["samples"],
        "records": last["records"],
        "concurrency": CONCURRENCY,
        "generate_requests_per_s": round(max(ours), 1),
        "bare_requests_per_s": round(max(bare), 1),
        "ratio": round(max(ours) / max(bare), 3),
        "ratio_per_round": [round(x, 3) for x in ratios],
        "ratio_median": round(statistics.median(ratios), 3),
        "generate_wall_seconds": round(last["wall_seconds"], 2),
        "generate_inner_seconds": round(last["seconds"], 2),
        "generate_cpu_seconds": round(last["cpu_seconds"], 2),
        "bare_cpu_seconds": round(bare_cpu[-1], 2),
        "cpu_ratio_median": round(
            statistics.median(b / r["cpu_seconds"] for b, r in zip(bare_cpu, runs, strict=True)), 3
        ),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "meets_target": statistics.median(ratios) >= 0.9,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
