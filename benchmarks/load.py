"""Load: 20,000 requests at concurrency 64 through the openai backend, 5% faults, 50 ms latency.

The test suite's fault-injecting OpenAI-compatible server runs in its own process (no
GIL shared with the client) and answers every request after `--latency` seconds; in the
faulty run, `--fault-rate` of the attempts fail (429 with Retry-After, 500, dropped
connection, malformed body and length-truncated answer in equal parts). The same
number of fresh requests goes to a fault-free server, in alternating rounds so that the
shared machine's drifting load hits both alike. synthkd's teacher does the pacing,
retries, backoff and response caching, as in a real run.

Reported: records/s (good answers per wall second, and per CPU second of the client:
the figure that a busy shared machine does not distort), retries, failed samples (errors after
retries, truncated answers), lost samples (asked for, but neither an answer nor an
error came back), samples the server answered twice, peak memory (max RSS of this
process, getrusage) and throughput against the fault-free run.

Targets (issue 8): 0 lost samples, peak memory < 1 GiB, faulty throughput within 20%
of the fault-free run (wall clock; on a loaded machine read the per-CPU-second ratio). The last line printed is one JSON object with the figures.

    .venv/bin/python benchmarks/load.py [--requests 20000] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from synthkd.generators.teachers import SamplingParams, TeacherRequest, teacher_from_spec  # noqa: E402
from tests.fakes import spawn_server_process  # noqa: E402

FAULTS = ("rate_429", "rate_500", "rate_reset", "rate_malformed", "rate_length")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def cpu_seconds() -> float:
    """CPU time of this process (the client): unlike wall time, not stretched when other
    work on a shared machine takes the cores."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def server_stats(base_url: str) -> dict:
    root = base_url.rsplit("/v1", 1)[0]
    with urllib.request.urlopen(f"{root}/_stats", timeout=30) as answer:
        return json.load(answer)


async def load_chunk(base_url: str, prompts: list[str], concurrency: int, cache: Path) -> dict:
    """One teacher.generate over `prompts`: what came back, and how long it took."""
    teacher = teacher_from_spec(
        f"openai:fake-teacher@{base_url}", cache_path=cache, concurrency=concurrency, timeout_s=30
    )
    await teacher.check()  # the one-off reachability probe is not load
    params = SamplingParams(max_tokens=16, seed=7)
    batch = [TeacherRequest(prompt=prompt, params=params) for prompt in prompts]
    started, cpu_started = time.perf_counter(), cpu_seconds()
    responses = await teacher.generate(batch)
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
    await teacher.aclose()
    good = sum(c.ok for r in responses for c in r.completions)
    truncated = sum(not c.ok for r in responses for c in r.completions)
    errors = sum(len(r.errors) for r in responses)
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "records": good,
        "truncated": truncated,
        "errors": errors,
        "lost": len(prompts) - good - truncated - errors,
        "retries": teacher.usage.retries,
    }


def summary(chunks: list[dict], base_url: str) -> dict:
    total = {k: sum(c[k] for c in chunks) for k in chunks[0]}
    stats = server_stats(base_url)
    return {
        **total,
        "seconds": round(total["seconds"], 2),
        "cpu_seconds": round(total["cpu_seconds"], 2),
        "records_per_s": round(total["records"] / total["seconds"], 1),
        "records_per_cpu_s": round(total["records"] / total["cpu_seconds"], 1),
        "server_outcomes": stats["outcomes"],
        "answered_twice": sum(1 for n in stats["answered_ok"].values() if n > 1),
        "max_in_flight": stats["max_in_flight"],
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--fault-rate", type=float, default=0.05)
    parser.add_argument(
        "--rounds", type=int, default=4, help="Alternating faulty/fault-free rounds."
    )
    args = parser.parse_args()

    share = args.fault_rate / len(FAULTS)
    servers = {
        "faulty": {name: share for name in FAULTS},
        "fault_free": {},
    }
    per_round = args.requests // args.rounds
    chunks: dict[str, list[dict]] = {name: [] for name in servers}
    with (
        tempfile.TemporaryDirectory() as tmp,
        spawn_server_process(
            latency=args.latency, retry_after=0.05, seed=8, **servers["faulty"]
        ) as faulty_url,
        spawn_server_process(latency=args.latency) as clean_url,
    ):
        urls = {"faulty": faulty_url, "fault_free": clean_url}
        for r in range(args.rounds):
            # alternate who goes first, so drifting machine load hits both alike
            order = ["faulty", "fault_free"] if r % 2 == 0 else ["fault_free", "faulty"]
            for name in order:
                prompts = [f"{name} round {r} prompt {i}: one line." for i in range(per_round)]
                cache = Path(tmp) / f"{name}-{r}.sqlite"
                chunk = await load_chunk(urls[name], prompts, args.concurrency, cache)
                chunks[name].append(chunk)
                print(
                    f"round {r} {name:>10}: {per_round} requests in {chunk['seconds']:.1f}s "
                    f"({chunk['records'] / chunk['seconds']:.0f} records/s, "
                    f"{chunk['records'] / chunk['cpu_seconds']:.0f} per CPU s), "
                    f"{chunk['retries']} retries, {chunk['lost']} lost",
                    flush=True,
                )
        runs = {name: summary(chunks[name], urls[name]) for name in servers}
    for name, run in runs.items():
        print(
            f"{name:>10}: {run['records_per_s']:.0f} records/s, {run['retries']} retries, "
            f"{run['truncated']} truncated, {run['errors']} failed, {run['lost']} lost, "
            f"{run['answered_twice']} answered twice, server {run['server_outcomes']}"
        )

    peak = peak_rss_mib()
    ratio = runs["faulty"]["records_per_s"] / runs["fault_free"]["records_per_s"]
    cpu_ratio = runs["faulty"]["records_per_cpu_s"] / runs["fault_free"]["records_per_cpu_s"]
    lost = runs["faulty"]["lost"] + runs["fault_free"]["lost"]
    print(
        f"peak memory {peak:.0f} MiB (target < 1024); faulty/fault-free throughput "
        f"{ratio:.3f} wall, {cpu_ratio:.3f} per CPU second (target >= 0.8)"
    )
    result = {
        "benchmark": "load",
        "requests": per_round * args.rounds,
        "concurrency": args.concurrency,
        "latency_s": args.latency,
        "fault_rate": args.fault_rate,
        "records_per_s": runs["faulty"]["records_per_s"],
        "fault_free_records_per_s": runs["fault_free"]["records_per_s"],
        "throughput_ratio": round(ratio, 3),
        "records_per_cpu_s": runs["faulty"]["records_per_cpu_s"],
        "fault_free_records_per_cpu_s": runs["fault_free"]["records_per_cpu_s"],
        "cpu_throughput_ratio": round(cpu_ratio, 3),
        "retries": runs["faulty"]["retries"],
        "truncated": runs["faulty"]["truncated"],
        "failed_samples": runs["faulty"]["errors"],
        "lost_samples": lost,
        "answered_twice": runs["faulty"]["answered_twice"],
        "peak_memory_mib": round(peak, 1),
        "max_in_flight": runs["faulty"]["max_in_flight"],
        "meets_targets": lost == 0 and peak < 1024 and ratio >= 0.8,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
