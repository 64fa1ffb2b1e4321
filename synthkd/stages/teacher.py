"""A teacher asked directly (`synthkd teacher sample|serve`): one request, one teacher."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def open_teacher(spec: str | None, **options: Any) -> Any:
    """A teacher from its spec (None: the embedded default) with backend options."""
    from synthkd.generators import teacher_from_spec

    return teacher_from_spec(spec, **options)


def teacher_request(
    prompt: str,
    *,
    chat: bool = False,
    n: int = 1,
    json_schema: dict | None = None,
    **sampling: Any,
) -> Any:
    """One request: the prompt as text, or as a chat user message; `sampling` as
    `SamplingParams` takes it (temperature, top_p, max_tokens, stop, seed)."""
    from synthkd.generators.teachers import SamplingParams, TeacherRequest

    params = SamplingParams(**sampling)
    if chat:
        messages = ({"role": "user", "content": prompt},)
        return TeacherRequest(messages=messages, params=params, n=n, json_schema=json_schema)
    return TeacherRequest(prompt=prompt, params=params, n=n, json_schema=json_schema)


def local_model(spec: str) -> tuple[str, Path]:
    """(name, .gguf path) of an embedded model name or a .gguf file."""
    from synthkd.generators.teachers.llamacpp_backend import resolve_model

    return resolve_model(spec)
