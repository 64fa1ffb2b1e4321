"""A recipe's teacher section(s) -> the teacher mix the driver sends work to."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from synthkd.generators.driver import TeacherSlot
from synthkd.generators.tasks.base import Sampling
from synthkd.generators.teachers import teacher_from_spec

_SLOT_KEYS = {"spec", "weight", "prompt_style", "sampling"}


def teacher_mix(
    sections: Sequence[Mapping[str, Any]], spec: str | None = None, **overrides: Any
) -> list[TeacherSlot]:
    """Teachers from recipe sections (`TeacherSection.model_dump()`s).

    `spec` (the CLI's --teacher) replaces the whole mix by that one teacher, keeping the
    first section's limits and sampling. `overrides` are extra teacher options (e.g. a
    response-cache path) applied to every teacher.
    """
    sections = list(sections) or [{}]
    if spec:
        sections = [{**sections[0], "spec": spec, "weight": 1.0, "prompt_style": "auto"}]
    slots = []
    for section in sections:
        options = {k: v for k, v in section.items() if k not in _SLOT_KEYS and v is not None}
        options.update(overrides)
        sampling = dict(section.get("sampling") or {})
        slots.append(
            TeacherSlot(
                teacher=teacher_from_spec(section.get("spec"), **options),
                weight=float(section.get("weight", 1.0)),
                style=section.get("prompt_style", "auto"),
                sampling=Sampling(**sampling),
            )
        )
    return slots
