"""The README's main job, timed as a user runs it: `synthkd run recipes/news_topics.yaml`.

One whole `synthkd run` process with a fresh cache (`SYNTHKD_CACHE`, so every teacher
answer is paid for) and a fresh run folder, timed from outside as wall and CPU time. The
cache's model files are made first by `synthkd prepare`, as `scripts/setup.sh` leaves them,
and that is timed apart (`prepare_seconds`: the install's, once per machine). Then the run's own figures: seconds per stage per round (metrics.json) and after
the last round (summary.json `finish_seconds`), validation and test accuracy of the
shipped student, and which student shipped.

Target (issue 17): under 10 minutes on 2 cores after the install. The last line printed is
one JSON object with every figure.

    .venv/bin/python benchmarks/main_job.py [--recipe recipes/news_topics.yaml] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 600


def prepare_models(env: dict[str, str]) -> float:
    """The install's last step (`synthkd prepare` in scripts/setup.sh) into the fresh cache:
    timed apart, since the README's main job runs after the install."""
    started = time.perf_counter()
    command = [sys.executable, "-m", "synthkd", "prepare"]
    result = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"synthkd prepare failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
    return round(time.perf_counter() - started, 1)


def run_main_job(recipe: Path, work: Path) -> dict:
    """Run the recipe in a fresh folder with a fresh cache (models prepared as the install
    leaves them, no teacher answer kept); wall and CPU seconds."""
    out, cache = work / "run", work / "cache"
    env = {**os.environ, "SYNTHKD_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    prepare_seconds = prepare_models(env)
    command = [sys.executable, "-m", "synthkd", "run", str(recipe), "--out", str(out)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        sys.exit(f"synthkd run failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "out": out,
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(cpu, 1),
        "prepare_seconds": prepare_seconds,
    }


def run_figures(out: Path) -> dict:
    """What the run says about itself: stage seconds, accuracy, the shipped student."""
    rounds = json.loads((out / "metrics.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    test = (summary.get("test") or {}).get("models") or {}
    shipped = summary.get("shipped") or {}
    return {
        "rounds": [
            {
                "round": r["round"],
                "seconds": r.get("seconds"),
                "stage_seconds": r.get("stage_seconds"),
                "val_accuracy": r.get("val_accuracy"),
            }
            for r in rounds
        ],
        "finish_seconds": summary.get("finish_seconds"),
        "shipped": shipped.get("which"),
        "val_accuracy": summary.get("student_accuracy"),
        "test_accuracy": {name: m.get("accuracy") for name, m in test.items()},
        "teacher_val_accuracy": (summary.get("teacher") or {}).get("accuracy"),
        "stop_reason": summary.get("stop_reason"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", default=str(ROOT / "recipes" / "news_topics.yaml"))
    parser.add_argument("--out", default=None, help="work folder (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(args.out or scratch)
        work.mkdir(parents=True, exist_ok=True)
        timed = run_main_job(Path(args.recipe).resolve(), work)
        figures = run_figures(timed.pop("out"))
    print(f"main job: {timed['wall_seconds']:.0f} s wall, {timed['cpu_seconds']:.0f} s CPU")
    print(f"  (before it, synthkd prepare as the install runs it: {timed['prepare_seconds']} s)")
    for r in figures["rounds"]:
        stages = ", ".join(f"{k} {v:.0f}" for k, v in (r["stage_seconds"] or {}).items())
        print(f"  round {r['round']}: {r['seconds']:.0f} s ({stages})")
    finish = figures["finish_seconds"] or {}
    print("  after the last round: " + ", ".join(f"{k} {v:.0f}" for k, v in finish.items()))
    print(f"  shipped: {figures['shipped']}; validation accuracy {figures['val_accuracy']}")
    for name, accuracy in figures["test_accuracy"].items():
        print(f"  test accuracy, {name}: {accuracy:.3f}")
    result = {
        "benchmark": "main_job",
        "recipe": str(Path(args.recipe).resolve().relative_to(ROOT)),
        **timed,
        "cores": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "target_seconds": TARGET_SECONDS,
        "meets_target": timed["wall_seconds"] < TARGET_SECONDS,
        **figures,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
