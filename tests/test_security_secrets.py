"""An API key never leaves the environment variable it came from.

A run with a recognisable fake key, against a server that even echoes the key back in
its error messages (as careless proxies do), then a search of everything the run left
behind: the run folder (Delta logs, Parquet values, cards), the response cache, Prefect's
home (database, logs, artifacts), stdout and stderr. Zero hits.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from tests.fakes import FaultyOpenAIServer
from tests.test_reliability_chaos import story

ROOT = Path(__file__).resolve().parents[1]
NEWS = ROOT / "examples" / "news_topics"
MARK = "LEAKCHECK"
"""Part of every fake key; finding it anywhere (even in a cut-off key) is a leak."""


def fake_key() -> str:
    return f"sk-{MARK}-{secrets.token_hex(16)}"


def hits(root: Path, key: str) -> list[str]:
    """Files under root holding the key (or its marker), raw or inside Parquet values."""
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if key.encode() in data or MARK.encode() in data:
            found.append(str(path))
        elif path.suffix == ".parquet":  # compressed pages: look at the values too
            table = pq.read_table(path)
            strings = [
                c
                for c in table.columns
                if pa.types.is_string(c.type) or pa.types.is_large_string(c.type)
            ]
            if any(v and MARK in v for c in strings for v in c.to_pylist()):
                found.append(str(path))
    return found


def small_validation(tmp_path: Path, per_label: int = 4) -> Path:
    """A few validation examples per label: the run is about secrets, not accuracy."""
    rows, seen = [], {}
    for line in (NEWS / "validation.jsonl").read_text().splitlines():
        label = json.loads(line)["label"]
        if seen.get(label, 0) < per_label:
            seen[label] = seen.get(label, 0) + 1
            rows.append(line)
    path = tmp_path / "validation.jsonl"
    path.write_text("\n".join(rows) + "\n")
    return path


def recipe(tmp_path: Path, base_url: str, env_name: str) -> Path:
    path = tmp_path / "recipe.yaml"
    data = {
        "name": "secret",
        "task": {
            "kind": "labelled",
            "seeds": str(NEWS / "seeds.jsonl"),
            "validation": str(small_validation(tmp_path)),
            "labels": ["business", "entertainment", "politics", "sport", "tech"],
            "per_label": 4,
            "samples_per_prompt": 2,
        },
        "teacher": {
            "spec": f"openai:fake-teacher@{base_url}",
            "api_key_env": env_name,
            "prompt_style": "completion",
            "max_retries": 1,
        },
        "student": {"kind": "linear", "epochs": 1},
        "loop": {"rounds": 1, "rival_students": ["frozen", "linear"]},
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run_cli(tmp_path: Path, args: list[str], key: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "SYNTHKD_TEACHER_KEY": key,
        "SYNTHKD_CACHE": str(tmp_path / "cache"),
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_LOGGING_LEVEL": "DEBUG",  # the most a user could turn on
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.run(
        [sys.executable, "-m", "synthkd", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_generate_never_writes_or_prints_the_api_key(tmp_path):
    key = fake_key()
    faults = dict(rate_echo=0.3, rate_500=0.1, rate_429=0.1)
    with FaultyOpenAIServer(answer=story, seed=3, **faults) as srv:
        path = recipe(tmp_path, srv.base_url, "SYNTHKD_TEACHER_KEY")
        result = run_cli(tmp_path, ["generate", str(path), "--out", str(tmp_path / "run")], key)
    assert result.returncode == 0, result.stderr
    assert f"Bearer {key}" in srv.stats.authorization  # the key was used...
    assert srv.stats.outcomes["echo"] > 0  # ...and echoed back by the server
    assert MARK not in result.stdout and MARK not in result.stderr
    assert hits(tmp_path, key) == []


def test_a_failure_whose_message_echoes_the_key_is_reported_without_it(tmp_path):
    key = fake_key()
    with FaultyOpenAIServer(rate_echo=1.0) as srv:
        path = recipe(tmp_path, srv.base_url, "SYNTHKD_TEACHER_KEY")
        result = run_cli(tmp_path, ["generate", str(path), "--out", str(tmp_path / "run")], key)
    assert result.returncode == 2, result.stderr
    assert MARK not in result.stderr and MARK not in result.stdout
    assert hits(tmp_path, key) == []


@pytest.mark.slow
def test_a_whole_distillation_run_never_writes_the_api_key(tmp_path):
    key = fake_key()
    # faults while generating; scoring (one 400 there stops a run) is spared
    with FaultyOpenAIServer(answer=story, rate_echo=0.2, seed=4, fault_scoring=False) as srv:
        path = recipe(tmp_path, srv.base_url, "SYNTHKD_TEACHER_KEY")
        result = run_cli(tmp_path, ["run", str(path), "--out", str(tmp_path / "run")], key)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Bearer {key}" in srv.stats.authorization
    assert (tmp_path / "run" / "report.md").exists()
    assert any((tmp_path / "prefect").rglob("*")), "Prefect kept nothing to search"
    assert MARK not in result.stdout and MARK not in result.stderr
    assert hits(tmp_path, key) == []
