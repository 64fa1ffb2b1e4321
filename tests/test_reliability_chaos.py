"""Chaos: `synthkd generate` against a faulty teacher, killed with SIGKILL and rerun.

The promise to a user whose run is throttled, fed garbage and killed at random: every
sample the teacher was asked for ends as a record or a reject with a reason, no record
is stored twice, and no sample is paid for twice once the teacher answered it. The
fake server counts what it was asked and answered; the run folder is read back with
the data room's own store.

One answer can be paid twice without any bug: one already sent when the process is
killed but not yet in the client's response cache (no HTTP client can have
exactly-once across a kill). The test allows exactly those: answers that left the
server within GRACE_S before a kill, or after it (to requests in flight, whose client
is dead), and no more than the client's concurrency per kill.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synthkd.data import CorpusStore
from synthkd.generators.teachers import SamplingParams, TeacherRequest
from tests.fakes import FaultyOpenAIServer, sample_id

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "examples" / "news_topics" / "seeds.jsonl"
LABELS = ("business", "entertainment", "politics", "sport", "tech")
SAMPLES_PER_PROMPT = 2
CONCURRENCY = 8
KILLS = 10
GRACE_S = 1.0
"""An answer sent this long before a kill may not have reached the response cache."""
LATE_S = 0.5
"""Answers to requests in flight at the kill go out after it, to a dead process."""
BUDGET_S = 240.0  # the whole test, kills and final run included


def story(subject, seed, json_mode: bool) -> str:
    """A one-line story per sample, unique to it (so every record id is distinct)."""
    sid = sample_id(subject, seed)
    text = (
        f"Shares in Firm {sid[:6]} rose {int(sid[6:8], 16) % 9 + 1}% after results beat forecasts."
    )
    return json.dumps({"text": text}) if json_mode else text


def recipe(tmp_path: Path, base_url: str, per_label: int) -> Path:
    path = tmp_path / "chaos.yaml"
    path.write_text(
        f"""\
name: chaos
task:
  kind: labelled
  seeds: {SEEDS}
  labels: [{", ".join(LABELS)}]
  per_label: {per_label}
  samples_per_prompt: {SAMPLES_PER_PROMPT}
teacher:
  spec: openai:fake-teacher@{base_url}
  prompt_style: completion
  concurrency: {CONCURRENCY}
  max_retries: 3
  timeout_s: 10
"""
    )
    return path


def generate(recipe_path: Path, out: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "synthkd",
            "generate",
            str(recipe_path),
            "--out",
            str(out),
            "--json",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def client_keys(payload: dict) -> list[str]:
    """The client's sample keys this server-side sample may be (seed = base seed + index)."""
    keys = []
    for index in range(SAMPLES_PER_PROMPT):
        params = SamplingParams(
            temperature=payload["temperature"],
            top_p=payload["top_p"],
            max_tokens=payload["max_tokens"],
            stop=tuple(payload["stop"] or ()),
            seed=payload["seed"] - index,
        )
        request = TeacherRequest(prompt=payload["subject"], params=params, n=index + 1)
        keys.append(request.sample_key("openai", "fake-teacher", index))
    return keys


@pytest.mark.slow
def test_killed_and_rerun_generation_loses_nothing_and_pays_for_no_answer_twice(tmp_path):
    started = time.monotonic()
    rng = random.Random(20240607)
    out = tmp_path / "run"
    env = {
        **os.environ,
        "SYNTHKD_CACHE": str(tmp_path / "cache"),  # this test's own response cache
        "PYTHONPATH": str(ROOT),
    }
    faults = dict(rate_429=0.08, rate_500=0.08, rate_reset=0.05, rate_malformed=0.05)
    with FaultyOpenAIServer(
        latency=0.005,
        jitter=0.05,
        rate_length=0.04,
        retry_after=0.05,
        seed=5,
        answer=story,
        **faults,
    ) as srv:
        # enough work that every one of the KILLS runs is still generating when killed
        path = recipe(tmp_path, srv.base_url, per_label=150)
        kills: list[float] = []
        finished_early = 0
        for _ in range(KILLS):
            assert time.monotonic() - started < BUDGET_S / 2, "kills took too long"
            before = srv.stats.requests
            proc = generate(path, out, env)
            while srv.stats.requests == before and proc.poll() is None:
                time.sleep(0.01)  # wait until this run is asking the teacher for new samples
            time.sleep(rng.uniform(0.1, 1.5))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills.append(time.monotonic())
            proc.communicate(timeout=60)
            if proc.returncode == 0:
                finished_early += 1
            else:
                assert proc.returncode == -signal.SIGKILL, proc.stderr
        final = generate(path, out, env)
        stdout, stderr = final.communicate(timeout=BUDGET_S - (time.monotonic() - started))
        assert final.returncode == 0, stderr
        summary = json.loads(stdout.strip().splitlines()[-1])
        stats = srv.stats

    assert len(kills) >= KILLS - 2, f"only {len(kills)} runs were killed mid-generation"
    corpus, rejects = CorpusStore(out / "corpus"), CorpusStore(out / "rejects")
    records = corpus.read().to_pylist()
    rejected = rejects.read().to_pylist()

    # no record (and no reject) stored twice, and every reject says why
    assert len({r["id"] for r in records}) == len(records) > 0
    assert len({r["id"] for r in rejected}) == len(rejected)
    assert all(r["reason"] and r["stage"] for r in rejected)
    assert summary["corpus_rows"] == len(records)

    # every sample the server was asked for is a record or a reject, and nothing else is
    row_keys = {r["sample_key"] for r in records} | {r["sample_key"] for r in rejected}
    unaccounted = []
    matched = set()
    for sid, payload in stats.payloads.items():
        keys = set(client_keys(payload)) & row_keys
        if not keys:
            unaccounted.append(sid)
        matched |= keys
    assert not unaccounted, f"{len(unaccounted)} requested samples have no record or reject"
    assert matched == row_keys, "rows whose sample the teacher was never asked for"

    # a record keeps the teacher's good answer word for word
    good = {sid for sid, n in stats.answered_ok.items() if n}
    answers = {
        story(stats.payloads[sid]["subject"], stats.payloads[sid]["seed"], False) for sid in good
    }
    assert {r["raw_completion"] for r in records} <= answers

    # no answered sample asked again, except an answer in flight at the moment of a kill
    repeated = stats.repeated_after_ok()
    unexcused = []
    for sid, times in stats.ok_times.items():
        for sent in times[:-1]:
            if not any(-LATE_S <= kill - sent <= GRACE_S for kill in kills):
                nearest = min(kills, key=lambda kill: abs(kill - sent), default=None)
                unexcused.append((sid, None if nearest is None else round(nearest - sent, 2)))
    assert not unexcused, (
        f"{len(unexcused)} answered samples were asked again although no kill came near their "
        f"answer (seconds from answer to the nearest kill: {[s for _, s in unexcused][:10]})"
    )
    assert sum(repeated.values()) <= len(kills) * CONCURRENCY
    print(
        f"chaos: {len(kills)} kills, {finished_early} runs finished first, "
        f"{stats.requests} requests, {len(stats.payloads)} samples, {len(records)} records, "
        f"{len(rejected)} rejects, {sum(repeated.values())} answers lost in flight at a kill, "
        f"outcomes {dict(stats.outcomes)}, {time.monotonic() - started:.0f}s"
    )
