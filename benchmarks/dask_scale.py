"""Dedup and critic scoring of a large corpus: one process against a Dask cluster of 2
worker processes (a LocalCluster on 127.0.0.1), through the same code `synthkd run
--dask-address` uses (`synthkd.stages.scale`).

- dedup: the whole filter pass (rules, exact and MinHash near duplicates) over
  `--records` synthetic records (news leads from the test fixtures, one in ten a near
  copy of an earlier one): `apply_filters` in one process, against rules and MinHash
  signatures per partition on the workers plus one ordered LSH pass here; the two must
  give the same verdicts (checked).
- scoring: the default critic (MiniLM int8 embeddings + logistic head) over
  `--score-records` of them: `Critic.score` in one process (every core), against one
  partition per worker (one thread each).

On a machine shared with other work, wall-clock figures move with the load (printed).
Prints one line per figure, then one JSON object on the last line.

    .venv/bin/python benchmarks/dask_scale.py [--records 200000] [--score-records 200000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pyarrow as pa  # noqa: E402
from critic import dedup_records, news  # noqa: E402  (benchmarks/critic.py)

from synthkd.critics import CriticConfig, apply_filters, auto_labels, train_critic  # noqa: E402
from synthkd.stages import scale  # noqa: E402

CONFIG = CriticConfig(min_chars=20, max_chars=2000, near_duplicate_threshold=0.85)


def _score_part(table: pa.Table, critic_dir: str) -> tuple[list[float], dict]:
    """One worker's partition scored by the critic (loaded in that worker)."""
    return scale.critic_at(critic_dir).score(table).tolist(), scale.where()


def run(records: int, score_records: int, workers: int) -> dict:
    import distributed

    table = pa.Table.from_pylist(dedup_records(records))
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)

    start = time.perf_counter()
    alone = apply_filters(table, CONFIG, kind="labelled")
    one_dedup = time.perf_counter() - start
    print(f"dedup, 1 process: {records} records in {one_dedup:.1f} s", flush=True)

    seeds = [{"text": item["text"], "label": item["label"]} for item in news()]
    scored = table.slice(0, score_records)
    with tempfile.TemporaryDirectory() as tmp:
        critic_dir = str(Path(tmp) / "critic")
        critic = train_critic(auto_labels(seeds), CriticConfig(), critic_dir)
        critic.score(scored.slice(0, 64))  # load the encoder before timing
        start = time.perf_counter()
        critic.score(scored)
        one_score = time.perf_counter() - start
        print(f"scoring, 1 process: {score_records} records in {one_score:.1f} s", flush=True)

        os.environ["SYNTHKD_THREADS"] = "1"  # one thread per worker process
        with (
            distributed.LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
            ) as cluster,
            distributed.Client(cluster) as client,
        ):
            pids = set(client.run(os.getpid).values())
            start = time.perf_counter()
            spread, places = scale.filter_on_cluster(
                client, table, table.slice(0, 0), CONFIG, "labelled", []
            )
            many_dedup = time.perf_counter() - start
            same = [r["id"] for r in spread.kept] == [r["id"] for r in alone.kept]
            print(
                f"dedup, {workers} workers: {many_dedup:.1f} s (same verdicts: {same})", flush=True
            )

            warm = [scored.slice(0, 64)] * workers  # each worker loads its encoder first
            scale.fan_out(client, _score_part, warm, critic_dir)
            parts = scale.slices(scored, workers)
            start = time.perf_counter()
            done = scale.fan_out(client, _score_part, parts, critic_dir)
            many_score = time.perf_counter() - start
            print(f"scoring, {workers} workers: {many_score:.1f} s", flush=True)
    ran = {p["pid"] for p in places} | {w["pid"] for _, w in done}
    return {
        "records": records,
        "score_records": score_records,
        "workers": workers,
        "dedup_seconds_1_process": round(one_dedup, 1),
        f"dedup_seconds_{workers}_workers": round(many_dedup, 1),
        "dedup_speedup": round(one_dedup / many_dedup, 2),
        "dedup_same_verdicts": same,
        "dedup_rejected": len(alone.rejects),
        "score_seconds_1_process": round(one_score, 1),
        f"score_seconds_{workers}_workers": round(many_score, 1),
        "score_speedup": round(one_score / many_score, 2),
        "ran_in_worker_processes": ran == pids and os.getpid() not in ran,
        "load_average": round(os.getloadavg()[0], 1),
        "cores": os.cpu_count(),
    }


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--score-records", type=int, default=200_000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    return run(args.records, min(args.score_records, args.records), args.workers)


if __name__ == "__main__":
    print(json.dumps(main()))
