"""Critic and filter speed on this machine: records/s for scoring 10,000 labelled records
with the default critic (MiniLM embeddings + logistic head), and seconds for MinHash
near-duplicate removal (and the whole filter pass) over 100,000 records.

Targets (2 CPU cores): scoring >= 300 records/s; dedup of 100,000 records < 60 s.
Prints one line per figure, then one JSON object on the last line. On a machine shared
with other work, wall-clock rates fall with the load average (printed); CPU-time rates
and the idle-core estimate derived from them do not.

    .venv/bin/python benchmarks/critic.py [--score-records 10000] [--dedup-records 100000]
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from synthkd.assets import cpu_threads  # noqa: E402
from synthkd.critics import CriticConfig, apply_filters, auto_labels, train_critic  # noqa: E402
from synthkd.critics.dedup import near_duplicates  # noqa: E402
from synthkd.critics.encoder import configure_torch_threads  # noqa: E402
from synthkd.critics.records import normalise  # noqa: E402

NEWS = ROOT / "tests" / "fixtures" / "critic_news.csv"
LINEAGE = {
    "kind": "labelled",
    "recipe": "bench",
    "round": 0,
    "teacher_backend": "llamacpp",
    "teacher_model": "gemma-3-270m",
    "template_hash": "bench",
    "sampling": "{}",
    "raw_completion": "",
    "created_at": dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc),
    "critic_score": None,
    "critic_version": None,
    "accepted": None,
}


def news() -> list[dict]:
    with NEWS.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def story_records(count: int) -> list[dict]:
    """`count` distinct two- and three-sentence stories made of fixture leads (like the
    recipes' "two sentences" / "three sentences" lengths)."""
    items = news()
    rng = np.random.default_rng(0)
    rows, seen = [], set()
    while len(rows) < count:
        picks = tuple(int(i) for i in rng.choice(len(items), size=2 + len(rows) % 2, replace=False))
        if picks in seen:
            continue
        seen.add(picks)
        text = " ".join(items[i]["text"] for i in picks)
        rows.append({"text": text, "label": items[picks[0]]["label"]})
    return rows


def dedup_records(count: int) -> list[dict]:
    """`count` records of 2-3 leads; one in ten is a copy of an earlier one with one word
    changed (a near duplicate), so the index both inserts and finds."""
    items = [item["text"] for item in news()]
    rng = np.random.default_rng(1)
    rows = []
    for i in range(count):
        if i > 10 and i % 10 == 0:
            words = rows[int(rng.integers(i))]["text"].split()
            words[int(rng.integers(len(words)))] = "changed"
            text = " ".join(words)
        else:
            picks = rng.choice(len(items), size=int(rng.integers(2, 4)), replace=False)
            text = " ".join(items[j] for j in picks) + f" Report {i}."
        rows.append({**LINEAGE, "id": f"r{i}", "sample_key": f"s{i}", "text": text, "label": "x"})
    return rows


def bench_scoring(count: int) -> dict:
    items = news()
    seeds = [{"text": item["text"], "label": item["label"]} for item in items]
    with tempfile.TemporaryDirectory() as tmp:
        critic = train_critic(auto_labels(seeds), CriticConfig(), Path(tmp) / "critic")
    rows = story_records(count)
    critic.score(rows[:64])  # load the encoder and warm up before timing
    start = time.perf_counter()
    cpu = time.process_time()
    scores = critic.score(rows)
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu
    threads = cpu_threads()
    return {
        "score_records": count,
        "score_seconds": round(seconds, 2),
        "score_records_per_s": round(count / seconds, 1),
        "score_cpu_seconds": round(cpu_seconds, 2),
        # what the same work needs with `threads` otherwise idle cores: wall time on a
        # shared machine counts other processes' turns; CPU time does not
        "score_records_per_cpu_s": round(count / cpu_seconds, 1),
        "score_records_per_s_idle_cores_estimate": round(threads * count / cpu_seconds, 1),
        "score_mean_chars": round(float(np.mean([len(r["text"]) for r in rows])), 1),
        "score_accepted_share": round(float((scores >= critic.threshold).mean()), 3),
    }


def bench_dedup(count: int) -> dict:
    rows = dedup_records(count)
    start = time.perf_counter()
    texts = [normalise(row["text"]) for row in rows]
    twins = near_duplicates(texts, threshold=0.85)
    dedup_seconds = time.perf_counter() - start
    start = time.perf_counter()
    kept, rejects = apply_filters(rows, CriticConfig(min_chars=20, max_chars=2000))
    filter_seconds = time.perf_counter() - start
    return {
        "dedup_records": count,
        "dedup_seconds": round(dedup_seconds, 2),
        "dedup_records_per_s": round(count / dedup_seconds),
        "dedup_near_duplicates": sum(t is not None for t in twins),
        "filter_pass_seconds": round(filter_seconds, 2),
        "filter_pass_kept": len(kept),
        "filter_pass_rejected": len(rejects),
    }


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--score-records", type=int, default=10_000)
    parser.add_argument("--dedup-records", type=int, default=100_000)
    args = parser.parse_args()
    figures = {
        "cpus": cpu_threads(),
        "torch_threads": configure_torch_threads(),
        "load_average_at_start": round(os.getloadavg()[0], 2),
    }
    figures.update(bench_scoring(args.score_records))
    figures.update(bench_dedup(args.dedup_records))
    figures["load_average_at_end"] = round(os.getloadavg()[0], 2)
    figures["score_target_met"] = figures["score_records_per_s"] >= 300
    figures["dedup_target_met"] = figures["dedup_seconds"] < 60
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}")
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
