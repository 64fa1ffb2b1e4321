"""`synthkd corpus ...` as a user runs it: real subprocesses, real exit codes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from synthkd.data import CorpusStore
from tests.fixtures.data_corpus import build_run

ROOT = Path(__file__).resolve().parents[1]


def synthkd(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "HF_TOKEN"}
    environment.update({"COLUMNS": "200", "PYTHONPATH": str(ROOT), **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "synthkd", *args],
        capture_output=True,
        text=True,
        env=environment,
        cwd=ROOT,
        timeout=120,
    )


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli") / "run"
    build_run(root, rounds=2, per_round=30, rejects_per_round=10)
    return root


def test_show_summarises_the_corpus(run_dir):
    result = synthkd("corpus", "show", str(run_dir))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "labelled" in out and "2 (latest 2, 3 versions)" in out
    assert "60/80 = 75.0%" in out  # acceptance from rejects/ beside the corpus
    for label in ("sports", "politics", "science"):
        assert label in out
    assert ": a short news item about" in out  # sample rows


def test_show_an_older_version(run_dir):
    result = synthkd("corpus", "show", str(run_dir / "corpus"), "--version", "1")
    assert result.returncode == 0, result.stderr
    assert "1 (latest 2, 3 versions)" in result.stdout and "│ rows       │ 30" in result.stdout


def test_versions_lists_commit_messages(run_dir):
    result = synthkd("corpus", "versions", str(run_dir))
    assert result.returncode == 0, result.stderr
    assert "round 0: generation" in result.stdout and "round 1: generation" in result.stdout
    assert "CREATE TABLE" in result.stdout


def test_diff_counts_per_label(run_dir):
    result = synthkd("corpus", "diff", str(run_dir), "1", "2")
    assert result.returncode == 0, result.stderr
    assert "+30 added" in result.stdout and "-0 removed" in result.stdout
    assert "sports" in result.stdout


def test_export_writes_a_dataset_folder(run_dir, tmp_path):
    target = tmp_path / "dataset"
    result = synthkd(
        "corpus",
        "export",
        str(run_dir),
        "--to",
        str(target),
        "--split",
        "train=0.9,validation=0.1",
        "--seed",
        "5",
    )
    assert result.returncode == 0, result.stderr
    assert "exported version 2" in result.stdout and "train 54, validation 6" in result.stdout
    assert (target / "README.md").exists()
    assert sorted(p.name for p in (target / "data").iterdir()) == [
        "train-00000-of-00001.parquet",
        "validation-00000-of-00001.parquet",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "{tmp}/nowhere"], "not a corpus"),
        (["show", "{run}", "--version", "9"], "version 9 of .* does not exist \\(latest is 2\\)"),
        (["diff", "{run}", "0", "9"], "version 9 of .* does not exist"),
        (["export", "{run}", "--to", "{tmp}/out", "--version", "9"], "version 9"),
        (
            ["export", "{run}", "--to", "{tmp}/out", "--split", "train=0.9,test=0.2"],
            "malformed --split",
        ),
        (["export", "{run}", "--to", "{tmp}/out", "--split", "train:1"], "malformed --split"),
        (["publish", "{run}", "--repo-id", "my-org/news"], "no Hugging Face token"),
        (["publish", "{run}", "--repo-id", "../../etc"], "invalid --repo-id"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(run_dir, tmp_path, args, message):
    before = CorpusStore(run_dir / "corpus").version()
    args = [a.format(run=run_dir, tmp=tmp_path) for a in args]
    result = synthkd("corpus", *args)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert re.search(message, lines[0]), lines[0]
    assert list(tmp_path.iterdir()) == []  # no export folder, no staging leftovers
    assert CorpusStore(run_dir / "corpus").version() == before
