"""Chaos: `synthkd generate` against a faulty teacher, SIGKILLed at random moments, rerun.

The fault-injecting local server (tests/fakes/openai_server.py) answers 429s, 500s,
dropped connections, malformed bodies, length-cut answers and stalls at set rates. The
benchmark starts `synthkd generate` on a small labelled recipe, kills it with SIGKILL at
--kills random moments (each once the run is asking the teacher), reruns after each,
then lets a last run finish and reads the run folder back with the data room's store.

Figures (target 0, 0, 0):
- lost_samples: samples the server was asked for that have no record and no reject;
- duplicate_ids: ids stored twice in corpus/ or rejects/, plus samples stored both as
  a record and as a teacher-error reject;
- paid_twice: samples answered by the server and asked again later, apart from answers
  that were in flight at a kill (sent up to GRACE_S before it, or after it, to a process
  already dead: no client can have those exactly once; reported as in_flight_at_kill);
- peak_rss_mb: the largest resident memory of a child process (`synthkd generate`, or
  `synthkd run` with --run-kills);
- orphans_after_kill: processes a killed run left alive in its process group.
With --run-kills N (default 3), `synthkd run` on a tiny recipe (one round, linear student) is also
killed N times and finished; its figures sit under "synthkd_run" (paid_twice there
counts every answer asked again, label scoring of the teacher baseline included).
The last line printed is one JSON object with the figures.

    .venv/bin/python benchmarks/chaos.py [--kills 10] [--per-label 40] [--seed 1] [--run-kills 3]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from synthkd.data import CorpusStore  # noqa: E402
from tests.fakes import FaultyOpenAIServer  # noqa: E402
from tests.test_reliability_chaos import SEEDS, client_keys, recipe, story  # noqa: E402

VALIDATION = ROOT / "examples" / "news_topics" / "validation.jsonl"

GRACE_S = 1.0
LATE_S = 0.5
FAULTS = dict(
    rate_429=0.06,
    rate_500=0.06,
    rate_reset=0.04,
    rate_malformed=0.04,
    rate_length=0.03,
    rate_stall=0.01,
    stall_s=3.0,
    retry_after=0.05,
    latency=0.005,
    jitter=0.05,
)


def start(
    recipe_path: Path, out: Path, env: dict[str, str], command: str = "generate"
) -> subprocess.Popen:
    args = [sys.executable, "-m", "synthkd", command, str(recipe_path), "--out", str(out)]
    return subprocess.Popen(
        [*args, "--json"] if command == "generate" else args,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: what it leaves behind can be found
    )


def leftovers(proc: subprocess.Popen) -> int:
    """Processes of a killed run's group still alive (e.g. a Prefect API server it
    started); they are killed, and counted."""
    try:
        os.killpg(proc.pid, 0)
    except ProcessLookupError:
        return 0
    found = subprocess.run(
        ["pgrep", "-g", str(proc.pid)], capture_output=True, text=True
    ).stdout.split()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    return len(found)


def run_recipe(work: Path, base_url: str) -> Path:
    """A tiny whole distillation: one round, a linear student (seconds to train)."""
    path = work / "run.yaml"
    path.write_text(
        f"""\
name: chaos_run
task:
  kind: labelled
  seeds: {SEEDS}
  validation: {VALIDATION}
  labels: [business, entertainment, politics, sport, tech]
  per_label: 8
  samples_per_prompt: 2
teacher:
  spec: openai:fake-teacher@{base_url}
  prompt_style: completion
  concurrency: 8
  max_retries: 3
  timeout_s: 10
student:
  kind: linear
loop:
  rounds: 1
"""
    )
    return path


def chaos_run(work: Path, base_url: str, kills: int, rng: random.Random, env) -> dict:
    """`synthkd run` killed `kills` times at random moments, then run to the end."""
    path, out = run_recipe(work, base_url), work / "whole"
    killed, failures, orphans = [], [], 0
    for _ in range(kills):
        proc = start(path, out, env, "run")
        time.sleep(rng.uniform(2.0, 25.0))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed.append(time.monotonic())
            proc.wait(60)
            orphans += leftovers(proc)  # before reading: they hold its pipes open
        _, err = proc.communicate(timeout=600)
        if proc.returncode not in (0, -signal.SIGKILL):
            failures.append(err.strip().splitlines()[-1] if err.strip() else "")
    final = start(path, out, env, "run")
    _, err = final.communicate(timeout=900)
    if final.returncode != 0:
        failures.append(err.strip().splitlines()[-1] if err.strip() else "")
        return {
            "kills": killed,
            "final_exit": final.returncode,
            "runs_failed": failures,
            "orphans_after_kill": orphans,
        }
    records = CorpusStore(out / "corpus").read(columns=["id", "sample_key"]).to_pylist()
    rejected = CorpusStore(out / "rejects").read(columns=["id"]).to_pylist()
    return {
        "kills": killed,
        "final_exit": final.returncode,
        "runs_failed": failures,
        "records": len(records),
        "duplicate_ids": len(records)
        - len({r["id"] for r in records})
        + len(rejected)
        - len({r["id"] for r in rejected}),
        "metrics_json": (out / "metrics.json").is_file(),
        "orphans_after_kill": orphans,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--per-label", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--run-kills",
        type=int,
        default=3,
        help="Also kill `synthkd run` on a tiny recipe this many times (0: skip it).",
    )
    args = parser.parse_args()
    rng = random.Random(args.seed)
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="synthkd-chaos-"))
    out = work / "run"
    env = {**os.environ, "SYNTHKD_CACHE": str(work / "cache"), "PYTHONPATH": str(ROOT)}
    kills: list[float] = []
    exits: list[int] = []
    failures: list[str] = []
    orphans = 0
    with FaultyOpenAIServer(seed=args.seed, answer=story, **FAULTS) as srv:
        path = recipe(work, srv.base_url, per_label=args.per_label)
        for _ in range(args.kills):
            before = srv.stats.requests
            proc = start(path, out, env)
            while srv.stats.requests == before and proc.poll() is None:
                time.sleep(0.01)  # until this run asks the teacher for something new
            time.sleep(rng.uniform(0.1, 1.5))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills.append(time.monotonic())
                proc.wait(60)
                orphans += leftovers(proc)
            _, err = proc.communicate(timeout=120)
            exits.append(proc.returncode)
            if proc.returncode not in (0, -signal.SIGKILL):
                failures.append(err.strip().splitlines()[-1] if err.strip() else "")
        final = start(path, out, env)
        stdout, stderr = final.communicate(timeout=600)
        stats = srv.stats
        payloads, outcomes = dict(stats.payloads), dict(stats.outcomes)
        ok_times = {sid: list(times) for sid, times in stats.ok_times.items()}
        requests_before_run = stats.requests
        whole = chaos_run(work, srv.base_url, args.run_kills, rng, env) if args.run_kills else None
    if final.returncode != 0:
        sys.exit(f"the final run failed ({final.returncode}): {stderr.strip()[-500:]}")
    summary = json.loads(stdout.strip().splitlines()[-1])

    records = CorpusStore(out / "corpus").read().to_pylist()
    rejected = CorpusStore(out / "rejects").read().to_pylist()
    row_keys = {r["sample_key"] for r in records} | {r["sample_key"] for r in rejected}
    lost = sum(1 for p in payloads.values() if not set(client_keys(p)) & row_keys)
    record_keys = {r["sample_key"] for r in records}
    both = {
        r["sample_key"]
        for r in rejected
        if r["reason"].startswith("teacher_error") and r["sample_key"] in record_keys
    }
    duplicates = (len(records) - len({r["id"] for r in records})) + (
        len(rejected) - len({r["id"] for r in rejected})
    )
    paid_twice = in_flight = 0
    for times in ok_times.values():
        for sent in times[:-1]:
            if any(-LATE_S <= kill - sent <= GRACE_S for kill in kills):
                in_flight += 1
            else:
                paid_twice += 1
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    figures = {
        "kills": len(kills),
        "runs_finished_before_their_kill": sum(code == 0 for code in exits),
        "runs_failed": failures,
        "orphans_after_kill": orphans,
        "lost_samples": lost,
        "duplicate_ids": duplicates + len(both),
        "paid_twice": paid_twice,
        "in_flight_at_kill": in_flight,
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "samples_asked": len(payloads),
        "requests": requests_before_run,
        "outcomes": outcomes,
        "records": len(records),
        "rejects": len(rejected),
        "teacher_error_rejects": sum(r["reason"].startswith("teacher_error") for r in rejected),
        "final_run": {k: summary.get(k) for k in ("corpus_rows", "retried_teacher_errors")},
        "seconds": round(time.monotonic() - started, 1),
    }
    if whole is not None:
        whole["teacher_requests"] = srv.stats.requests - requests_before_run
        run_kills, twice, flight = whole.pop("kills"), 0, 0
        for sid, times in srv.stats.ok_times.items():
            for sent in times[len(ok_times.get(sid, ())) :][:-1]:
                if any(-LATE_S <= kill - sent <= GRACE_S for kill in run_kills):
                    flight += 1
                else:
                    twice += 1
        whole.update(kills=len(run_kills), paid_twice=twice, in_flight_at_kill=flight)
        figures["synthkd_run"] = whole
    print(
        f"chaos: {figures['kills']} kills; lost {lost}, duplicated {figures['duplicate_ids']}, "
        f"paid twice {paid_twice} (+{in_flight} in flight at a kill); "
        f"{len(records)} records, {len(rejected)} rejects; peak {figures['peak_rss_mb']} MB"
    )
    print(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    main()
