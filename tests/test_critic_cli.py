"""`synthkd critic train | score` as a user runs them: real subprocesses, a real Delta
corpus, a real recipe file; bad labels are one line on stderr, exit 2, nothing written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from synthkd.data import RunStore
from tests.fakes import FaultyOpenAIServer
from tests.fixtures.critic_data import news, news_corpus, write_label_csv

ROOT = Path(__file__).resolve().parents[1]
LABELS = ("business", "entertainment", "politics", "sport", "tech")


def synthkd(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, "COLUMNS": "200", "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "synthkd", *args],
        capture_output=True,
        text=True,
        env=environment,
        cwd=ROOT,
        timeout=300,
    )


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A run folder with 150 news records and a recipe whose seeds are 8 stories per label."""
    root = tmp_path_factory.mktemp("critic-cli")
    rows, accept = news_corpus()
    run = RunStore.create(root / "run", "labelled")
    run.corpus.append(rows, "round 0: generation")
    seeds = root / "seeds.jsonl"
    per_label: dict[str, int] = {}
    with seeds.open("w", encoding="utf-8") as handle:
        for item in news():
            if per_label.get(item["label"], 0) < 8:
                per_label[item["label"]] = per_label.get(item["label"], 0) + 1
                handle.write(json.dumps({"text": item["text"], "label": item["label"]}) + "\n")
    recipe = root / "recipe.yaml"
    recipe.write_text(
        "name: critic_cli\n"
        "task:\n"
        "  kind: labelled\n"
        f"  seeds: {seeds}\n"
        f"  labels: [{', '.join(LABELS)}]\n"
        "critic:\n"
        "  target_precision: 0.9\n"
        f"output: {root / 'out'}\n"
    )
    return root, rows, accept


@pytest.mark.slow
def test_train_from_seeds_then_score_writes_a_corpus_version(workspace):
    root, rows, accept = workspace
    result = synthkd("critic", "train", str(root / "recipe.yaml"), "--corpus", str(root / "run"))
    assert result.returncode == 0, result.stderr
    critic_dir = root / "out" / "critic"  # the recipe's output folder
    assert "held-out ROC-AUC" in result.stdout and "labels (auto)" in result.stdout
    meta = json.loads((critic_dir / "critic.json").read_text())
    assert meta["label_counts"] == {"auto": {"accept": 40, "reject": 40}}

    store = RunStore.open(root / "run").corpus
    before = store.version()
    result = synthkd("critic", "score", str(critic_dir), "--corpus", str(root / "run"))
    assert result.returncode == 0, result.stderr
    assert store.version() == before + 1
    assert meta["version"] in result.stdout and "all" in result.stdout
    scored = {row["id"]: row for row in store.read().to_pylist()}
    assert len(scored) == len(rows)
    assert {row["critic_version"] for row in scored.values()} == {meta["version"]}
    good = [scored[r["id"]]["accepted"] for r, a in zip(rows, accept, strict=True) if a]
    bad = [scored[r["id"]]["accepted"] for r, a in zip(rows, accept, strict=True) if not a]
    assert sum(bad) / len(bad) < 0.2 and sum(good) / len(good) > 0.4
    # balance: every label keeps the same share of its records (within one record)
    shares = {}
    for label in LABELS:
        members = [r for r in scored.values() if r["label"] == label]
        shares[label] = sum(r["accepted"] for r in members) / len(members)
    assert max(shares.values()) - min(shares.values()) <= 1 / 30 + 1e-9
    assert "critic score" in store.versions()[-1].message


def test_bad_labels_exit_2_with_one_line_and_nothing_written(workspace):
    root, rows, accept = workspace
    recipe = str(root / "recipe.yaml")
    cases = {
        "strangers.csv": ("id,accept\nno-such-record,1\n", "matches a record"),
        "one_class.csv": (None, "are acceptable; a critic needs examples of both classes"),
        "few.csv": (None, "too few critic labels to hold out a split"),
    }
    write_label_csv(root / "one_class.csv", rows[:30], [1] * 30)
    write_label_csv(root / "few.csv", rows[:10], accept[:10])
    (root / "strangers.csv").write_text(cases["strangers.csv"][0])
    for name, (_, message) in cases.items():
        out = root / f"critic-{name}"
        result = synthkd(
            "critic", "train", recipe, "--corpus", str(root / "run"), "--labels", str(root / name),
            "--out", str(out),
        )  # fmt: skip
        assert result.returncode == 2, (name, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
        assert not out.exists()
        assert not list(root.glob(".critic-*"))  # no staging folder left behind


def test_score_with_something_that_is_not_a_critic(workspace, tmp_path):
    root, _, _ = workspace
    result = synthkd("critic", "score", str(tmp_path), "--corpus", str(root / "run"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: not a critic directory (no critic.json): {tmp_path}"


def test_a_judge_without_verdicts_is_one_line_and_nothing_written(workspace, tmp_path):
    """The fake server answers 'answer-…' and fails some calls: no usable label."""
    root, _, _ = workspace
    out = tmp_path / "critic"
    with FaultyOpenAIServer(seed=2, rate_500=0.2) as srv:
        result = synthkd(
            "critic", "train", str(root / "recipe.yaml"), "--corpus", str(root / "run"),
            "--judge", f"openai:fake@{srv.base_url}", "--judge-n", "10", "--out", str(out),
            env={"SYNTHKD_CACHE": str(tmp_path / "cache")},
        )  # fmt: skip
        asked = srv.stats.requests
    assert result.returncode == 2, result.stderr
    assert asked >= 10
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no usable critic labels (judge:")
    assert not out.exists()


def test_evidence_on_a_recipe_without_labels_or_a_folder_without_corpus(workspace, tmp_path):
    """`synthkd critic evidence`: one line, exit 2, nothing written, for a triples recipe or
    a folder that holds no corpus."""
    root, _, _ = workspace
    triples = synthkd(
        "critic", "evidence", "recipes/commonsense.yaml", "--corpus", str(root / "run")
    )
    assert triples.returncode == 2
    assert triples.stderr.strip().startswith("error: recipes/commonsense.yaml is not a labelled")
    missing = tmp_path / "nothing"
    empty = synthkd("critic", "evidence", str(root / "recipe.yaml"), "--corpus", str(missing))
    assert empty.returncode == 2
    assert empty.stderr.strip() == f"error: not a run folder: {missing} (no corpus/ table inside)"
    assert not missing.exists()
