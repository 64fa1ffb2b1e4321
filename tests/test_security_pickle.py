"""Only safetensors weights are loaded: a student directory whose weights are a pickle
(pytorch_model.bin, adapter_model.bin) is refused by `synthkd predict` and `synthkd
evaluate` with exit code 2, and the pickle is never opened.

The pickles here are booby-trapped: unpickling one creates a marker file, so "refused"
also means "never unpickled".
"""

from __future__ import annotations

import builtins
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synthkd.cli import main
from synthkd.errors import SynthkdError
from synthkd.training import load_student

ROOT = Path(__file__).resolve().parents[1]
LABELS = ["sport", "tech"]


class _Trap:
    """Unpickling this opens (creates) the marker file: what a hostile checkpoint could do."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.open, (self.marker, "w"))


def booby_trapped(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps({"weight": _Trap(marker)}))
    return path


def manifest(root: Path, **extra) -> None:
    data = {"kind": "minilm", "labels": LABELS, "config": {"max_length": 32}, **extra}
    (root / "student.json").write_text(json.dumps(data))


def plain_checkpoint(root: Path, marker: Path) -> Path:
    """A Hugging Face-style model folder with only pickle weights, no student.json."""
    root.mkdir()
    (root / "config.json").write_text(json.dumps({"model_type": "bert"}))
    booby_trapped(root / "pytorch_model.bin", marker)
    return root


def lora_student(root: Path, marker: Path) -> Path:
    """A student whose LoRA adapter comes as adapter_model.bin (pickle) only."""
    root.mkdir()
    manifest(root)
    (root / "adapter").mkdir()
    (root / "adapter" / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
    booby_trapped(root / "adapter" / "adapter_model.bin", marker)
    return root


def merged_student(root: Path, marker: Path) -> Path:
    """A merged student (a whole model) whose weights are pytorch_model.bin only."""
    plain_checkpoint(root, marker)
    manifest(root, merged=True)
    return root


STUDENTS = {"plain": plain_checkpoint, "lora": lora_student, "merged": merged_student}


@pytest.mark.parametrize("kind", sorted(STUDENTS))
def test_load_student_refuses_pickle_weights_without_opening_them(tmp_path, kind):
    marker = tmp_path / "unpickled"
    student = STUDENTS[kind](tmp_path / "student", marker)
    with pytest.raises(SynthkdError, match="safetensors") as caught:
        load_student(student)
    assert "\n" not in str(caught.value)
    assert not marker.exists()


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "synthkd", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_predict_refuses_a_pickle_checkpoint_with_exit_2(tmp_path):
    marker = tmp_path / "unpickled"
    texts = tmp_path / "texts.parquet"
    pq.write_table(pa.table({"text": ["a goal in the last minute"]}), texts)
    output = tmp_path / "out.parquet"
    student = plain_checkpoint(tmp_path / "plain", marker)
    result = subprocess.run(
        [sys.executable, "-m", "synthkd", "predict", str(student)]
        + ["--input", str(texts), "--output", str(output)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "pickle" in lines[0] and "safetensors" in lines[0], lines[0]
    assert not marker.exists() and not output.exists()


def test_evaluate_refuses_a_pickle_adapter_with_exit_2(tmp_path, monkeypatch, capsys):
    """The console script's own entry point, in-process (torch is already imported here)."""
    marker = tmp_path / "unpickled"
    texts = tmp_path / "texts.parquet"
    pq.write_table(pa.table({"text": ["a new phone"], "label": ["tech"]}), texts)
    student = lora_student(tmp_path / "lora", marker)
    monkeypatch.setattr(sys, "argv", ["synthkd", "evaluate", str(student), "--input", str(texts)])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "pickle" in lines[0] and "adapter_model.bin" in lines[0], lines
    assert not marker.exists()
