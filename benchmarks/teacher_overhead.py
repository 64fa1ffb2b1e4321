"""What synthkd's openai backend costs on top of a bare AsyncOpenAI loop, and cached replay speed.

Against a local zero-latency OpenAI-compatible server (the test suite's fake, in its own
process so it shares no GIL with the clients), the same N completion requests are sent
by a bare `AsyncOpenAI` + semaphore loop and by synthkd's teacher (routing, limits,
retries, cache writes, accounting), alternately, in --rounds pairs; the verdict is the
median of the paired ratios (one lucky round of either side cannot decide it). Then 10,000 samples
are generated once and replayed from the response cache by a fresh teacher.

Targets (issue 2): synthkd >= 0.9x the bare loop's requests/s; replay of 10,000 samples
in under 2 s. The last line printed is one JSON object with the figures.

    .venv/bin/python benchmarks/teacher_overhead.py [--requests 2000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import openai

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from synthkd.generators.teachers import SamplingParams, TeacherRequest, teacher_from_spec  # noqa: E402
from tests.fakes import spawn_server_process  # noqa: E402


async def bare_loop(base_url: str, prompts: list[str], concurrency: int) -> float:
    client = openai.AsyncOpenAI(base_url=base_url, api_key="no-key", max_retries=0)
    semaphore = asyncio.Semaphore(concurrency)

    async def one(prompt: str, seed: int):
        async with semaphore:
            result = await client.completions.create(
                model="fake", prompt=prompt, max_tokens=8, temperature=0.8, top_p=0.95, seed=seed
            )
            return result.choices[0].text

    started = time.perf_counter()
    texts = await asyncio.gather(*(one(p, 0) for p in prompts))
    seconds = time.perf_counter() - started
    await client.close()
    assert len(texts) == len(prompts)
    return len(prompts) / seconds


async def synthkd_loop(base_url: str, prompts: list[str], concurrency: int, cache: Path) -> float:
    teacher = teacher_from_spec(
        f"openai:fake@{base_url}", cache_path=cache, concurrency=concurrency
    )
    await teacher.check()  # the one-off reachability probe is not per-request overhead
    params = SamplingParams(max_tokens=8, seed=0)
    requests = [TeacherRequest(prompt=p, params=params) for p in prompts]
    started = time.perf_counter()
    responses = await teacher.generate(requests)
    seconds = time.perf_counter() - started
    await teacher.aclose()
    assert sum(len(r.completions) for r in responses) == len(prompts)
    assert teacher.usage.cache_hits == 0
    return len(prompts) / seconds


async def replay(base_url: str, cache: Path, samples: int, concurrency: int) -> dict:
    per_request = 10
    params = SamplingParams(max_tokens=8, seed=1)
    requests = [
        TeacherRequest(prompt=f"replay prompt {i}", params=params, n=per_request)
        for i in range(samples // per_request)
    ]
    writer = teacher_from_spec(f"openai:fake@{base_url}", cache_path=cache, concurrency=concurrency)
    started = time.perf_counter()
    await writer.generate(requests)
    fill_seconds = time.perf_counter() - started
    await writer.aclose()

    reader = teacher_from_spec(f"openai:fake@{base_url}", cache_path=cache)
    started = time.perf_counter()
    responses = await reader.generate(requests)
    seconds = time.perf_counter() - started
    await reader.aclose()
    assert reader.usage.requests == 0 and reader.usage.cache_hits == samples
    assert sum(len(r.completions) for r in responses) == samples
    return {"fill_seconds": fill_seconds, "replay_seconds": seconds}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--replay-samples", type=int, default=10_000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, spawn_server_process() as base_url:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) > 1:  # the clients on one core, the server on the others: less noise
            os.sched_setaffinity(0, {cpus[0]})
        await bare_loop(base_url, [f"warm {i}" for i in range(200)], args.concurrency)
        bare, ours = [], []
        for r in range(args.rounds):
            prompts = [f"round {r} prompt {i}" for i in range(args.requests)]
            cache = Path(tmp) / f"round{r}.sqlite"
            if r % 2:  # alternate who goes first, so drift in machine load hits both
                ours.append(await synthkd_loop(base_url, prompts, args.concurrency, cache))
                bare.append(await bare_loop(base_url, prompts, args.concurrency))
            else:
                bare.append(await bare_loop(base_url, prompts, args.concurrency))
                ours.append(await synthkd_loop(base_url, prompts, args.concurrency, cache))
            print(
                f"round {r}: bare {bare[-1]:8.1f} req/s   synthkd {ours[-1]:8.1f} req/s", flush=True
            )
        played = await replay(
            base_url, Path(tmp) / "replay.sqlite", args.replay_samples, args.concurrency
        )

    ratio = max(ours) / max(bare)
    median = statistics.median(o / b for o, b in zip(ours, bare, strict=True))
    print(
        f"best: bare {max(bare):.1f} req/s, synthkd {max(ours):.1f} req/s, ratio {ratio:.3f}; median of paired rounds {median:.3f} (target >= 0.9)"
    )
    print(
        f"cached replay: {args.replay_samples} samples in {played['replay_seconds']:.3f} s"
        f" (target < 2 s; filling the cache took {played['fill_seconds']:.1f} s)"
    )
    result = {
        "benchmark": "teacher_overhead",
        "requests": args.requests,
        "concurrency": args.concurrency,
        "bare_requests_per_s": round(max(bare), 1),
        "synthkd_requests_per_s": round(max(ours), 1),
        "ratio": round(ratio, 3),
        "ratio_per_round": [round(o / b, 3) for o, b in zip(ours, bare, strict=True)],
        "ratio_median": round(median, 3),
        "replay_samples": args.replay_samples,
        "replay_seconds": round(played["replay_seconds"], 3),
        "replay_samples_per_s": round(args.replay_samples / played["replay_seconds"], 1),
        "meets_targets": median >= 0.9 and played["replay_seconds"] < 2.0,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
