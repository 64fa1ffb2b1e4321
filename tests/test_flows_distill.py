"""`synthkd run`: the distillation loop end to end on the embedded teacher, as a user runs it.

Each run is a real subprocess: Prefect's ephemeral API, llama.cpp with Gemma 3 270M,
Delta tables, the MiniLM critic and LoRA student. The recipe is news-topics cut down to
a few records per label and a 40-item validation set so the whole module takes minutes.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synthkd.data import CorpusStore

# a two-round run, its exports and its rivals take minutes; under load, more
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

RECIPE = Path(__file__).parent / "fixtures" / "flows_tiny.yaml"
REQUIRED = (
    "round",
    "generated",
    "accepted",
    "val_accuracy",
    "val_macro_f1",
    "teacher_prompt_tokens",
    "teacher_completion_tokens",
    "seconds",
)


def _env(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(SYNTHKD_CACHE=str(cache), HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    env.setdefault("SYNTHKD_LLAMA_THREADS", "2")
    return env


def _run(out: Path, cache: Path, *extra: str, timeout: int = 1500) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "synthkd", "run", str(RECIPE), "--out", str(out), *extra],
        env=_env(cache),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _cache_rows(cache: Path) -> int:
    path = cache / "teacher_responses.sqlite"
    if not path.exists():
        return 0
    with sqlite3.connect(path) as db:
        return db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]


def _metrics(run_dir: Path) -> list[dict]:
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """One uninterrupted two-round run, shared by the tests below."""
    root = tmp_path_factory.mktemp("distill")
    out, cache = root / "run", root / "cache"
    result = _run(out, cache)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, cache, result


def test_run_writes_the_run_folder_a_user_expects(reference_run):
    out, _, result = reference_run
    assert "report:" in result.stdout
    assert "student validation accuracy" in result.stdout and "vs teacher" in result.stdout

    rounds = _metrics(out)
    assert [r["round"] for r in rounds] == [0, 1]
    for row in rounds:
        assert all(key in row for key in REQUIRED)
        assert 0.0 <= row["val_accuracy"] <= 1.0
        assert row["accepted"] > 0
    assert rounds[0]["val_accuracy"] > 0.3  # five classes: chance is 0.2

    corpus = CorpusStore(out / "corpus")
    messages = [v.message for v in corpus.versions()]
    assert any("round 0" in m for m in messages) and any("round 1" in m for m in messages)
    assert any(m.startswith("critic score") for m in messages)
    assert set(corpus.read()["round"].to_pylist()) == {0, 1}
    assert CorpusStore(out / "rejects").count() >= 0

    student = out / "student"
    assert list(student.rglob("*.safetensors")), "the student keeps its weights as safetensors"
    assert (student / "README.md").exists()
    assert not list(student.rglob("*.bin")) and not list(student.rglob("*.pkl"))

    report = (out / "report.md").read_text()
    for png in ("plots/macro_f1_per_round.png", "plots/per_class_f1_per_round.png"):
        assert png in report and (out / png).stat().st_size > 1000
    assert (out / "critic" / "precision_yield.png").exists()
    assert (out / "student" / "confusion_matrix.png").exists()
    assert "Student vs teacher" in report and "Ablations" in report
    # the recipe's loop.teacher_baseline_examples: 20 of the 40 validation examples
    teacher = json.loads((out / "summary.json").read_text())["teacher"]
    assert teacher["examples"] == 20 and 0 <= teacher["accuracy"] <= 1
    assert "few-shot label scoring, on 20 of the validation examples" in report
    # the serving copy: an int8 ONNX student, measured on validation beside the teacher
    serving = json.loads((out / "summary.json").read_text())["student_serving"]
    assert (student / "int8" / "model.onnx").exists()
    assert serving["val_accuracy"] > 0.3 and serving["examples_per_s"] > 0
    assert "int8 ONNX export" in report and "int8 ONNX export" in result.stdout
    # where the time went: every round's stages, then the end of the run's (issue 17)
    assert all(
        r["stage_seconds"]["generate"] > 0 and r["stage_seconds"]["student"] >= 0 for r in rounds
    )
    finish = json.loads((out / "summary.json").read_text())["finish_seconds"]
    stages = {"real-examples-only rival", "export int8", "export static", "teacher baseline"}
    assert stages <= set(finish) and all(finish[s] > 0 for s in stages), finish
    assert "Time per stage (seconds)" in report and "After the last round: " in report


def test_predict_with_the_distilled_student(reference_run, tmp_path):
    import pandas as pd

    out, cache, _ = reference_run
    texts = pd.DataFrame({"text": ["The striker scored twice as United won the derby 3-1."]})
    texts.to_parquet(tmp_path / "in.parquet")
    result = subprocess.run(
        [sys.executable, "-m", "synthkd", "predict", str(out / "student"), "--input",
         str(tmp_path / "in.parquet"), "--text-column", "text", "--output",
         str(tmp_path / "out.parquet")],
        env=_env(cache), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    predicted = pd.read_parquet(tmp_path / "out.parquet")
    assert {"prediction", "confidence"} <= set(predicted.columns)


def test_killed_run_resumes_without_paying_the_teacher_twice(reference_run, tmp_path):
    ref_out, ref_cache, _ = reference_run
    out, cache = tmp_path / "run", tmp_path / "cache"
    proc = subprocess.Popen(
        [sys.executable, "-m", "synthkd", "run", str(RECIPE), "--out", str(out)],
        env=_env(cache),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 900
    try:
        # wait for round 0 to finish, then for round 1 to start paying the teacher
        while time.monotonic() < deadline and proc.poll() is None:
            if (out / "metrics.json").exists() and _cache_rows(cache) > 0:
                rows_round0 = _cache_rows(cache)
                while time.monotonic() < deadline and _cache_rows(cache) <= rows_round0:
                    time.sleep(0.2)
                break
            time.sleep(0.5)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert len(_metrics(out)) == 1, "the kill should land in round 1"
    paid_before_kill = _cache_rows(cache)

    result = _run(out, cache)
    assert result.returncode == 0, result.stderr[-3000:]
    rounds = _metrics(out)
    assert [r["round"] for r in rounds] == [0, 1]
    # round 0 came back from Prefect's cache, with the seconds it took before the kill
    assert all(r["seconds"] > 0 for r in rounds)
    # every sample the teacher wrote after the kill was new: nothing was asked twice
    paid_after = _cache_rows(cache) - paid_before_kill
    assert _cache_rows(cache) == _cache_rows(ref_cache)
    assert paid_after < _cache_rows(ref_cache)

    # and the run holds the same samples as an uninterrupted one, each once (the texts of
    # a few may differ: llama.cpp decodes a prompt's samples as one batch, and a sample
    # decoded beside fewer batch-mates after the kill can come out otherwise)
    def samples(run: Path) -> list[str]:
        keys = []
        for table in ("corpus", "rejects"):
            keys += CorpusStore(run / table).read()["sample_key"].to_pylist()
        return sorted(set(keys))

    assert samples(out) == samples(ref_out)
    resumed = CorpusStore(out / "corpus").read()["id"].to_pylist()
    assert len(resumed) == len(set(resumed))


def test_bad_recipe_stops_before_any_teacher_call(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(RECIPE.read_text().replace("per_label: 4", "per_label: -4"))
    out, cache = tmp_path / "run", tmp_path / "cache"
    result = subprocess.run(
        [sys.executable, "-m", "synthkd", "run", str(bad), "--out", str(out)],
        env=_env(cache), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "per_label" in result.stderr
    assert not out.exists() and _cache_rows(cache) == 0


# `synthkd run --dask-address` on a LocalCluster, with the stages' worker PIDs checked:
# tests/test_dask_stages.py
