"""Generation tasks: labelled examples, commonsense triples, document KG triples, annotation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from synthkd.errors import SynthkdError
from synthkd.generators.prompting import Templates
from synthkd.generators.tasks.annotate import AnnotateTask, AnnotateTaskConfig
from synthkd.generators.tasks.base import Focus, GenerationTask, HardNegative, Parsed, Sampling
from synthkd.generators.tasks.commonsense import CommonsenseTask, CommonsenseTaskConfig
from synthkd.generators.tasks.document_kg import DocumentKGTask, DocumentKGTaskConfig
from synthkd.generators.tasks.labelled import LabelledTask, LabelledTaskConfig, LabelSpec

TASKS: dict[str, tuple[type, type]] = {
    "labelled": (LabelledTaskConfig, LabelledTask),
    "commonsense": (CommonsenseTaskConfig, CommonsenseTask),
    "document_kg": (DocumentKGTaskConfig, DocumentKGTask),
    "annotate": (AnnotateTaskConfig, AnnotateTask),
}

TaskConfig = LabelledTaskConfig | CommonsenseTaskConfig | DocumentKGTaskConfig | AnnotateTaskConfig


def make_task(
    config: TaskConfig | Mapping[str, Any], templates: str | Templates | None = None
) -> GenerationTask | AnnotateTask:
    """The task a config names: a task dataclass, or a mapping with `kind` (e.g. the
    recipe's `task.model_dump()`); `templates` is a directory searched before ours."""
    if isinstance(config, Mapping):
        kind = config.get("kind")
        if kind not in TASKS:
            raise SynthkdError(f"unknown task kind {kind!r}; expected one of {', '.join(TASKS)}")
        config = TASKS[kind][0](**dict(config))  # validates: one line naming a bad field
    kind = config.kind
    if kind not in TASKS or not isinstance(config, TASKS[kind][0]):
        raise SynthkdError(f"not a task config: {type(config).__name__}")
    if not isinstance(templates, Templates):
        templates = Templates(templates)
    return TASKS[kind][1](config, templates)


__all__ = [
    "TASKS",
    "AnnotateTask",
    "AnnotateTaskConfig",
    "CommonsenseTask",
    "CommonsenseTaskConfig",
    "DocumentKGTask",
    "DocumentKGTaskConfig",
    "Focus",
    "GenerationTask",
    "HardNegative",
    "LabelSpec",
    "LabelledTask",
    "LabelledTaskConfig",
    "Parsed",
    "Sampling",
    "TaskConfig",
    "make_task",
]
