"""Teacher backends behind one async interface (see base.py).

`teacher_from_spec("llamacpp:gemma-3-270m" | "openai:MODEL[@URL,...]" | "vllm:MODEL")`
builds one; every backend answers from the persistent `ResponseCache` first.
"""

from __future__ import annotations

from typing import Any

from synthkd.generators.teachers.base import (
    Completion,
    LabelError,
    SampleError,
    SamplingParams,
    Teacher,
    TeacherRequest,
    TeacherResponse,
    Usage,
)
from synthkd.generators.teachers.cache import ResponseCache, default_cache_path
from synthkd.generators.teachers.config import (
    DEFAULT_SPEC,
    TeacherConfig,
    TeacherSpec,
    parse_spec,
)


def teacher_from_spec(
    spec: str | None = None, *, config: TeacherConfig | None = None, **options: Any
) -> Teacher:
    """The teacher a spec string names, with options (fields of `TeacherConfig`).

    `spec` None means the embedded default (`llamacpp:gemma-3-270m`). Base URLs given
    in the spec (`openai:MODEL@http://a/v1,http://b/v1`) are used unless `base_urls`
    is passed. Bad specs, missing model files or API key variables raise SynthkdError.
    """
    parsed = parse_spec(spec)
    if config is None:
        config = TeacherConfig.from_options(options)
    elif options:
        raise TypeError("pass either config or keyword options, not both")
    if parsed.backend == "openai":
        from synthkd.generators.teachers.openai_backend import OpenAITeacher

        if not config.base_urls and parsed.base_urls:
            config = TeacherConfig.from_options({**_fields(config), "base_urls": parsed.base_urls})
        return OpenAITeacher(parsed.model, config)
    if parsed.backend == "llamacpp":
        from synthkd.generators.teachers.llamacpp_backend import LlamaCppTeacher

        return LlamaCppTeacher(parsed.model, config)
    from synthkd.generators.teachers.vllm_backend import VLLMTeacher

    return VLLMTeacher(parsed.model, config)


def _fields(config: TeacherConfig) -> dict[str, Any]:
    import dataclasses

    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}


__all__ = [
    "DEFAULT_SPEC",
    "Completion",
    "LabelError",
    "ResponseCache",
    "SampleError",
    "SamplingParams",
    "Teacher",
    "TeacherConfig",
    "TeacherRequest",
    "TeacherResponse",
    "TeacherSpec",
    "Usage",
    "default_cache_path",
    "parse_spec",
    "teacher_from_spec",
]
