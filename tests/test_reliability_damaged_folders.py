"""Damaged corpus and student folders fail cleanly: exit 2, one line naming the file.

Run folders are user files: a truncated or deleted Parquet file, garbage in a
`_delta_log` entry, a crafted safetensors header, a garbage ONNX file, a `student.json`
without labels. The CLI runs as a user runs it (a subprocess) on real Delta tables.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synthkd.data import CorpusStore, Lineage, make_record

ROOT = Path(__file__).resolve().parents[1]


def synthkd(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "synthkd", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(ROOT)},
    )


def fails_cleanly(result: subprocess.CompletedProcess, names: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and 1 <= len(lines) <= 3, result.stderr
    assert lines[-1].startswith("error: ") and names in lines[-1], lines[-1]


def corpus(tmp_path: Path) -> Path:
    store = CorpusStore.create(tmp_path / "run" / "corpus", "labelled")
    lineage = Lineage("r", 0, "openai", "m", "", {}, "k", "")
    rows = [
        make_record("labelled", {"text": f"story {i}", "label": "tech"}, lineage) for i in range(5)
    ]
    store.append(rows, "five stories")
    return tmp_path / "run" / "corpus"


@pytest.mark.parametrize("command", ["show", "versions"])
def test_a_truncated_parquet_file(tmp_path, command):
    data = next(corpus(tmp_path).glob("*.parquet"))
    data.write_bytes(data.read_bytes()[:50])
    fails_cleanly(synthkd("corpus", command, str(tmp_path / "run")), data.name)


@pytest.mark.parametrize("command", ["show", "versions"])
def test_a_deleted_parquet_file(tmp_path, command):
    data = next(corpus(tmp_path).glob("*.parquet"))
    data.unlink()
    result = synthkd("corpus", command, str(tmp_path / "run"))
    fails_cleanly(result, data.name)
    assert "missing" in result.stderr


@pytest.mark.parametrize("command", ["show", "versions"])
def test_garbage_in_a_log_entry(tmp_path, command):
    entry = sorted((corpus(tmp_path) / "_delta_log").glob("*.json"))[-1]
    entry.write_text('{"commitInfo": garbage')
    fails_cleanly(synthkd("corpus", command, str(tmp_path / "run")), entry.name)


def texts(tmp_path: Path) -> Path:
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"text": ["a story", "another"]}), path)
    return path


def predict(tmp_path: Path, student: Path) -> subprocess.CompletedProcess:
    out = tmp_path / "out.parquet"
    result = synthkd("predict", str(student), "--input", str(texts(tmp_path)), "--output", str(out))
    assert not out.exists()  # nothing half-written
    return result


def test_a_crafted_safetensors_header(tmp_path):
    student = tmp_path / "student"
    student.mkdir()
    (student / "student.json").write_text(json.dumps({"kind": "static", "labels": ["a", "b"]}))
    (student / "tokenizer.json").write_text("{}")
    # a header length of 2**60 bytes: a naive reader would try to allocate it
    (student / "model.safetensors").write_bytes(struct.pack("<Q", 2**60) + b"{}")
    fails_cleanly(predict(tmp_path, student), "model.safetensors")


def test_a_garbage_onnx_file(tmp_path):
    student = tmp_path / "student"
    student.mkdir()
    (student / "student.json").write_text(json.dumps({"kind": "onnx", "labels": ["a", "b"]}))
    (student / "model.onnx").write_bytes(b"\x00garbage, not a protobuf" * 10)
    fails_cleanly(predict(tmp_path, student), "model.onnx")


def test_a_manifest_without_labels(tmp_path):
    student = tmp_path / "student"
    student.mkdir()
    (student / "student.json").write_text(json.dumps({"kind": "linear"}))
    fails_cleanly(predict(tmp_path, student), "student.json")


def critic_folder(tmp_path: Path, **meta) -> Path:
    critic = tmp_path / "critic"
    critic.mkdir()
    fields = {
        "format_version": 1,
        "method": "logistic",
        "kind": "labelled",
        "threshold": 0.5,
        "target_precision": 0.9,
        "version": "v1",
    }
    (critic / "critic.json").write_text(json.dumps({**fields, **meta}))
    return critic


def test_a_critic_with_a_crafted_safetensors_header(tmp_path):
    critic = critic_folder(tmp_path)
    (critic / "head.safetensors").write_bytes(struct.pack("<Q", 2**60) + b"{}")
    result = synthkd("critic", "score", str(critic), "--corpus", str(corpus(tmp_path)))
    fails_cleanly(result, "head.safetensors")


def test_a_critic_manifest_missing_a_field(tmp_path):
    critic = critic_folder(tmp_path, threshold="high")
    result = synthkd("critic", "score", str(critic), "--corpus", str(corpus(tmp_path)))
    fails_cleanly(result, "critic.json")


def test_no_code_path_can_unpickle_a_run_folder_file():
    """Run folders are user files: no pickle, joblib or unsafe torch.load anywhere."""
    import re

    unsafe = re.compile(
        r"\bpickle\.loads?\(|\bjoblib\.load\(|\bdill\.load|allow_pickle\s*=\s*True"
        r"|torch\.load\((?![^)]*weights_only\s*=\s*True)"
    )
    hits = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in sorted((ROOT / "synthkd").rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if unsafe.search(line)
    ]
    assert not hits, hits
