"""`synthkd teacher sample` as a user runs it: output lines, and one-line errors with exit code 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes import FaultyOpenAIServer


def synthkd(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "synthkd", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--teacher", "gpt:4"], "unknown teacher backend 'gpt'"),
        (
            ["--teacher", "llamacpp:/no/such/model.gguf"],
            "the model file /no/such/model.gguf does not exist",
        ),
        (["--teacher", "openai:gpt-4o-mini"], "OPENAI_API_KEY is not set"),
        (
            ["--teacher", "openai:m@http://127.0.0.1:9/v1", "--api-key-env", "SYNTHKD_NO_SUCH_KEY"],
            "the API key variable SYNTHKD_NO_SUCH_KEY is not set",
        ),
        (["--teacher", "openai:m@http://127.0.0.1:9/v1"], "http://127.0.0.1:9/v1 is unreachable"),
        (["-n", "0"], "-n must be at least 1"),
        (
            ["--schema", "/no/such/schema.json"],
            "the schema file /no/such/schema.json does not exist",
        ),
    ],
)
def test_bad_input_is_one_line_on_stderr_and_exit_code_2(args, message, tmp_path):
    env = {"OPENAI_API_KEY": "", "SYNTHKD_CACHE": str(tmp_path)}
    result = synthkd("teacher", "sample", "--prompt", "hi", *args, env=env)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert result.stdout == ""


def test_json_lines_against_an_openai_compatible_server(tmp_path):
    with FaultyOpenAIServer(rate_length=0.3, seed=4) as srv:
        result = synthkd(
            "teacher", "sample", "--teacher", f"openai:fake@{srv.base_url}",
            "--prompt", "Three facts about the Moon:", "-n", "4", "--seed", "1", "--json",
            env={"SYNTHKD_CACHE": str(tmp_path)},
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["index"] for r in rows] == [0, 1, 2, 3]
    for row in rows:
        assert set(row) >= {"text", "finish_reason", "usage"}
        assert row["finish_reason"] in ("stop", "length") and row["text"]
        assert row["usage"]["completion_tokens"] == 3
    assert "4 teacher calls" in result.stderr


def test_chat_with_a_schema_file(tmp_path):
    schema = Path(__file__).parent / "fixtures" / "teacher_city_schema.json"
    with FaultyOpenAIServer() as srv:
        result = synthkd(
            "teacher", "sample", "--teacher", f"openai:fake@{srv.base_url}", "--chat",
            "--schema", str(schema), "--prompt", "Name a city as JSON", "--no-cache",
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("--- sample 0 (stop, 3 tokens)\n")
    assert json.loads(result.stdout.splitlines()[1])["answer"].startswith("answer-")


def test_default_embedded_teacher_works_offline(tmp_path):
    result = synthkd(
        "teacher", "sample", "--prompt", "Three facts about the Moon:\n1.",
        "-n", "2", "--max-tokens", "8", "--seed", "3", "--json", "--no-cache",
        env={
            "HF_HUB_OFFLINE": "1",
            "SYNTHKD_LLAMA_THREADS": "1",
            "PYTHONWARNINGS": "default::ResourceWarning",  # what a library may switch on
        },
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 2 and all(r["usage"]["completion_tokens"] > 0 for r in rows)
    assert "llamacpp:gemma-3-270m" in result.stderr
    assert "ResourceWarning" not in result.stderr  # no file left open at exit
