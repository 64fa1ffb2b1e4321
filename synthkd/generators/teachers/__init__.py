"""Teacher backends behind one async interface (see base.py)."""

from synthkd.generators.teachers.base import (
    Completion,
    SampleError,
    SamplingParams,
    Teacher,
    TeacherRequest,
    TeacherResponse,
    Usage,
)

__all__ = [
    "Completion",
    "SampleError",
    "SamplingParams",
    "Teacher",
    "TeacherRequest",
    "TeacherResponse",
    "Usage",
]
