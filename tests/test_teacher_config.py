"""Teacher spec strings and options: what parses, and the one-line errors for what does not."""

from __future__ import annotations

import pytest

from synthkd.errors import SynthkdError
from synthkd.generators.teachers import DEFAULT_SPEC, TeacherConfig, parse_spec, teacher_from_spec


@pytest.mark.parametrize(
    ("spec", "backend", "model", "urls"),
    [
        (None, "llamacpp", "gemma-3-270m", ()),
        ("", "llamacpp", "gemma-3-270m", ()),
        ("llamacpp:smollm2-135m-instruct", "llamacpp", "smollm2-135m-instruct", ()),
        ("llamacpp:/models/my model.gguf", "llamacpp", "/models/my model.gguf", ()),
        ("openai:gpt-4o-mini", "openai", "gpt-4o-mini", ()),
        (
            "openai:Qwen/Qwen2.5-7B@http://h:8000/v1",
            "openai",
            "Qwen/Qwen2.5-7B",
            ("http://h:8000/v1",),
        ),
        (
            "openai:m@http://a:1/v1/, http://b:2/v1",
            "openai",
            "m",
            ("http://a:1/v1", "http://b:2/v1"),
        ),
        ("vllm:meta-llama/Llama-3.1-8B-Instruct", "vllm", "meta-llama/Llama-3.1-8B-Instruct", ()),
    ],
)
def test_specs_parse(spec, backend, model, urls):
    parsed = parse_spec(spec)
    assert (parsed.backend, parsed.model, parsed.base_urls) == (backend, model, urls)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("ollama:llama3", "unknown teacher backend 'ollama'"),
        ("gemma", "unknown teacher backend 'gemma'"),
        ("openai:", "names no model"),
        ("vllm:m@http://h/v1", "only the openai backend takes @URL"),
    ],
)
def test_bad_specs_are_one_line_errors(spec, message):
    with pytest.raises(SynthkdError, match=message):
        parse_spec(spec)


def test_options_are_checked_by_name_and_value():
    with pytest.raises(SynthkdError, match="unknown teacher option 'concurency'"):
        teacher_from_spec(DEFAULT_SPEC, concurency=4)
    with pytest.raises(SynthkdError, match="concurrency must be at least 1"):
        TeacherConfig.from_options({"concurrency": 0})
    config = TeacherConfig.from_options({"base_urls": "http://a/v1,http://b/v1"})
    assert config.base_urls == ("http://a/v1", "http://b/v1")


def test_spec_urls_reach_the_openai_teacher(tmp_path):
    teacher = teacher_from_spec("openai:m@http://127.0.0.1:1/v1,http://127.0.0.1:2/v1", cache=False)
    assert teacher.backend == "openai" and teacher.model == "m"
    assert teacher.base_urls == ["http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1"]
