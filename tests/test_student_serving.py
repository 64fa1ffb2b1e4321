"""`synthkd predict` serves a student's fastest copy: the int8 export by default, any copy
with --format, on every core, and without importing torch on the ONNX path."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synthkd.errors import SynthkdError
from synthkd.training import (
    StudentConfig,
    export_student,
    load_serving_student,
    load_student,
    train_student,
)
from synthkd.training.serving import resolve_serving_copy
from tests.fixtures.student_helpers import TRAIN, VALIDATION, read_jsonl

pytestmark = pytest.mark.slow  # one LoRA fine-tune of MiniLM and an int8 export (minutes)


def trained_minilm(tmp_path_factory) -> tuple:
    """One small MiniLM student per test session, shared by the serving and static tests."""
    root = tmp_path_factory.getbasetemp() / "shared-minilm" / "student"
    if not (root / "student.json").exists():
        config = StudentConfig(
            kind="minilm", epochs=2, max_length=24, learning_rate=1e-3, early_stopping_patience=1
        )
        train_student(config, read_jsonl(TRAIN), read_jsonl(VALIDATION), root, progress=False)
    return root


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    root = trained_minilm(tmp_path_factory)
    if not (root / "int8" / "student.json").exists():
        export_student(root, "int8")
    return root


@pytest.fixture(scope="module")
def texts_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("serve") / "texts.parquet"
    pq.write_table(pa.Table.from_pylist(read_jsonl(VALIDATION)), path)
    return path


def run_predict(args: list[str]) -> subprocess.CompletedProcess:
    """The real entry point in a child process; it also reports what it imported."""
    code = (
        "import json, sys\n"
        "from synthkd.cli import main\n"
        f"sys.argv = ['synthkd', 'predict', *{[str(a) for a in args]!r}]\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    code = exc.code or 0\nelse:\n    code = 0\n"
        "print('MODULES ' + json.dumps(sorted(m for m in ('torch', 'transformers') "
        "if m in sys.modules)))\n"
        "sys.exit(code)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=False
    )


def imported(result: subprocess.CompletedProcess) -> list[str]:
    line = next(x for x in result.stdout.splitlines() if x.startswith("MODULES "))
    return json.loads(line.removeprefix("MODULES "))


def test_predict_serves_the_int8_copy_by_default_without_torch(student, texts_file, tmp_path):
    out = tmp_path / "pred.parquet"
    result = run_predict([student, "--input", texts_file, "--output", out])
    assert result.returncode == 0, result.stderr
    assert "(int8;" in result.stdout
    assert imported(result) == [], "the ONNX path must not import torch or transformers"
    table = pq.read_table(out)
    assert {"text", "label", "prediction", "confidence"} <= set(table.column_names)
    rows = table.to_pylist()
    assert all(0.0 < r["confidence"] <= 1.0 for r in rows)
    assert np.mean([r["prediction"] == r["label"] for r in rows]) >= 0.6


def test_format_chooses_the_copy(student, texts_file, tmp_path):
    out = tmp_path / "torch.parquet"
    result = run_predict([student, "--input", texts_file, "--output", out, "--format", "torch"])
    assert result.returncode == 0, result.stderr
    assert "(torch;" in result.stdout and "torch" in imported(result)
    assert resolve_serving_copy(student, "int8") == ("int8", student / "int8")
    assert resolve_serving_copy(student / "int8", "auto") == ("int8", student / "int8")
    assert resolve_serving_copy(student / "int8", "torch") == ("torch", student.resolve())


def test_a_missing_copy_is_one_line_and_exit_2(student, texts_file, tmp_path):
    out = tmp_path / "none.parquet"
    result = run_predict([student, "--input", texts_file, "--output", out, "--format", "onnx"])
    assert result.returncode == 2
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "no onnx copy" in lines[0]
    assert not out.exists()
    with pytest.raises(SynthkdError, match="--format must be one of"):
        load_serving_student(student, "fp16")


def test_serving_copy_matches_the_int8_student(student):
    texts = [r["text"] for r in read_jsonl(VALIDATION)]
    served = load_serving_student(student)
    assert served.format == "int8"
    reference = load_student(student / "int8").predict_proba(texts)
    probs = served.predict_proba(texts, batch_size=5)
    assert probs.shape == reference.shape
    # int8 activations are quantized per batch: other batches, slightly other numbers
    assert np.allclose(probs, reference, atol=0.03)
    assert np.mean(probs.argmax(1) == reference.argmax(1)) >= 0.9
    torch_probs = load_serving_student(student, "torch").predict_proba(texts)
    assert np.mean(torch_probs.argmax(1) == probs.argmax(1)) >= 0.9


def test_fast_tokenizer_matches_the_students_tokenizer(student):
    from transformers import AutoTokenizer

    from synthkd.training.serving import load_fast_tokenizer

    texts = [r["text"] for r in read_jsonl(VALIDATION)] + ["word " * 100, ""]
    ours = load_fast_tokenizer(student / "int8", 24).encode_batch(texts)
    theirs = AutoTokenizer.from_pretrained(student / "int8")(texts, truncation=True, max_length=24)
    assert [e.ids for e in ours] == theirs["input_ids"]


def test_the_onnx_copy_runs_on_every_core_in_length_buckets(student, monkeypatch):
    from synthkd.assets import cpu_threads
    from synthkd.training.serving import length_buckets

    served = load_serving_student(student)
    options = served.session.get_session_options()
    assert options.intra_op_num_threads == cpu_threads() >= 1
    assert options.graph_optimization_level.name == "ORT_ENABLE_ALL"
    # attention exported eagerly: no per-layer NaN guards over the attention matrices
    import onnx

    graph = onnx.load(student / "int8" / "model.onnx").graph
    assert "IsNaN" not in {node.op_type for node in graph.node}
    monkeypatch.setenv("SYNTHKD_THREADS", "1")
    assert cpu_threads() == 1
    # texts of like length share a batch: a batch pads to its own longest text
    lengths = np.array([5, 90, 7, 88, 6, 91])
    buckets = length_buckets(lengths, 3)
    assert [sorted(lengths[b].tolist()) for b in buckets] == [[5, 6, 7], [88, 90, 91]]
