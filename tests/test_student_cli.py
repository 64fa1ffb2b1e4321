"""`synthkd train | evaluate | predict | export | merge` through the real entry point:
happy paths with the linear student (seconds), and bad input as one line + exit code 2."""

from __future__ import annotations

import json
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from synthkd.cli import main
from tests.fixtures.student_helpers import TRAIN, VALIDATION, read_jsonl


def run_cli(args: list[str], capsys, monkeypatch) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["synthkd", *map(str, args)])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write_recipe(tmp_path, kind: str = "linear", validation: list[dict] | None = None) -> str:
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text(TRAIN.read_text())
    val = tmp_path / "validation.jsonl"
    rows = read_jsonl(VALIDATION) if validation is None else validation
    val.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "name: topics\n"
        "task:\n"
        "  kind: labelled\n"
        "  labels: [cooking, sport, technology, weather]\n"
        "  seeds: seeds.jsonl\n"
        "  validation: validation.jsonl\n"
        "student:\n"
        f"  kind: {kind}\n"
        "  max_length: 24\n"
    )
    return str(recipe)


def write_parquet(path, rows: list[dict]) -> str:
    pq.write_table(pa.Table.from_pylist(rows), path)
    return str(path)


@pytest.fixture
def student_dir(tmp_path, capsys, monkeypatch):
    recipe = write_recipe(tmp_path)
    corpus = write_parquet(tmp_path / "corpus.parquet", read_jsonl(TRAIN))
    out = tmp_path / "student"
    code, stdout, stderr = run_cli(
        ["train", recipe, "--corpus", corpus, "--out", out], capsys, monkeypatch
    )
    assert code == 0, stderr
    assert "val accuracy" in stdout
    return out


def test_train_predict_and_evaluate(student_dir, tmp_path, capsys, monkeypatch):
    validation = read_jsonl(VALIDATION)
    source = write_parquet(tmp_path / "val.parquet", validation)
    out = tmp_path / "pred.parquet"
    code, stdout, stderr = run_cli(
        ["predict", student_dir, "--input", source, "--text-column", "text", "--output", out],
        capsys,
        monkeypatch,
    )
    assert code == 0, stderr
    table = pq.read_table(out)
    assert {"text", "label", "prediction", "confidence"} <= set(table.column_names)
    rows = table.to_pylist()
    assert all(0.0 < r["confidence"] <= 1.0 for r in rows)
    accuracy = sum(r["prediction"] == r["label"] for r in rows) / len(rows)
    assert accuracy >= 0.7

    code, stdout, stderr = run_cli(
        ["evaluate", student_dir, "--input", source, "--label-column", "label", "--json"],
        capsys,
        monkeypatch,
    )
    assert code == 0, stderr
    report = json.loads(stdout)
    assert report["accuracy"] == pytest.approx(accuracy)
    assert set(report["per_class"]) == {"cooking", "sport", "technology", "weather"}
    assert "confused_pairs" in report["hard_negatives"]

    code, stdout, _ = run_cli(
        ["evaluate", student_dir, "--input", source, "--report", tmp_path / "rep"],
        capsys,
        monkeypatch,
    )
    assert code == 0 and "macro-F1" in stdout
    assert (tmp_path / "rep" / "confusion.png").exists()


def one_error_line(code: int, stderr: str) -> str:
    assert code == 2
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_unknown_validation_labels(student_dir, tmp_path, capsys, monkeypatch):
    rows = read_jsonl(VALIDATION) + [{"text": "Parliament passed the bill.", "label": "politics"}]
    source = write_parquet(tmp_path / "val.parquet", rows)
    code, _, stderr = run_cli(["evaluate", student_dir, "--input", source], capsys, monkeypatch)
    assert "politics" in one_error_line(code, stderr)


def test_missing_text_column(student_dir, tmp_path, capsys, monkeypatch):
    source = write_parquet(tmp_path / "in.parquet", [{"body": "hello"}])
    out = tmp_path / "out.parquet"
    code, _, stderr = run_cli(
        ["predict", student_dir, "--input", source, "--output", out], capsys, monkeypatch
    )
    assert "'text'" in one_error_line(code, stderr)
    assert not out.exists()


def test_empty_corpus_leaves_nothing_behind(tmp_path, capsys, monkeypatch):
    recipe = write_recipe(tmp_path)
    empty = pa.table({"text": pa.array([], pa.string()), "label": pa.array([], pa.string())})
    pq.write_table(empty, tmp_path / "empty.parquet")
    out = tmp_path / "student"
    code, _, stderr = run_cli(
        ["train", recipe, "--corpus", tmp_path / "empty.parquet", "--out", out],
        capsys,
        monkeypatch,
    )
    assert "empty" in one_error_line(code, stderr)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".student")] == []


def test_validation_file_with_labels_not_in_the_corpus(tmp_path, capsys, monkeypatch):
    validation = read_jsonl(VALIDATION) + [{"text": "Stocks fell sharply.", "label": "business"}]
    recipe = write_recipe(tmp_path, validation=validation)
    corpus = write_parquet(tmp_path / "corpus.parquet", read_jsonl(TRAIN))
    code, _, stderr = run_cli(
        ["train", recipe, "--corpus", corpus, "--out", tmp_path / "s"], capsys, monkeypatch
    )
    assert "business" in one_error_line(code, stderr)
    assert not (tmp_path / "s").exists()


def test_a_directory_that_is_not_a_model(tmp_path, capsys, monkeypatch):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("hello")
    source = write_parquet(tmp_path / "in.parquet", [{"text": "hello", "label": "sport"}])
    for command in (
        ["evaluate", tmp_path / "junk", "--input", source],
        ["export", tmp_path / "junk", "--format", "onnx"],
        ["evaluate", tmp_path / "missing", "--input", source],
    ):
        code, _, stderr = run_cli(command, capsys, monkeypatch)
        assert "student" in one_error_line(code, stderr)


def test_export_and_merge_refuse_a_linear_student(student_dir, capsys, monkeypatch):
    code, _, stderr = run_cli(["export", student_dir, "--format", "onnx"], capsys, monkeypatch)
    assert "MiniLM" in one_error_line(code, stderr)
    code, _, stderr = run_cli(["export", student_dir, "--format", "fp8"], capsys, monkeypatch)
    assert "onnx, int8" in one_error_line(code, stderr)
    code, _, stderr = run_cli(
        ["merge", student_dir, "--out", student_dir.parent / "m"], capsys, monkeypatch
    )
    assert "LoRA" in one_error_line(code, stderr)


def pickle_checkpoint(tmp_path):
    """A model directory whose weights are only a pickle (pytorch_model.bin)."""
    from synthkd.assets import minilm_dir

    root = tmp_path / "pickled"
    root.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        (root / name).write_bytes((minilm_dir() / name).read_bytes())
    torch.save({"embeddings.word_embeddings.weight": torch.zeros(2, 2)}, root / "pytorch_model.bin")
    return root


def test_pickle_checkpoints_are_refused(tmp_path, capsys, monkeypatch):
    from synthkd.errors import SynthkdError
    from synthkd.training import StudentConfig, load_student, train_student

    root = pickle_checkpoint(tmp_path)
    with pytest.raises(SynthkdError, match="pickle"):
        train_student(StudentConfig(base_model=str(root)), read_jsonl(TRAIN), None, tmp_path / "s")
    assert not (tmp_path / "s").exists()
    (root / "student.json").write_text(
        json.dumps({"kind": "minilm", "merged": True, "labels": ["a", "b"]})
    )
    with pytest.raises(SynthkdError, match="safetensors"):
        load_student(root)
    source = write_parquet(tmp_path / "in.parquet", [{"text": "hello"}])
    code, _, stderr = run_cli(
        ["predict", root, "--input", source, "--output", tmp_path / "o.parquet"],
        capsys,
        monkeypatch,
    )
    assert "pickle" in one_error_line(code, stderr)
