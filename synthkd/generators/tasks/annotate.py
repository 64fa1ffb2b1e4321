"""The teacher labels the user's own texts (production data), keeping its full distribution.

The classic way a large model annotates data for a small one: each text is classified
by `teacher.label_distribution(header, texts, labels, suffix)`. For a base model that
is the log-probability of each label's continuation after a few-shot header whose KV
state is evaluated once and reused; a chat model answers with a constrained choice.
Records keep the distribution (soft labels) and its maximum (teacher confidence).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from synthkd.config import Settings, settings
from synthkd.data import read_rows
from synthkd.errors import SynthkdError
from synthkd.generators.prompting import PromptStyle, Templates
from synthkd.generators.tasks.base import column, squash
from synthkd.generators.tasks.labelled import LabelSpec, Shots, label_dict
from synthkd.generators.teachers.base import SamplingParams, TeacherRequest


@settings("task")
class AnnotateTaskConfig(Settings):
    """The teacher labels the user's own texts; records keep its full label distribution."""

    input: str = field(metadata={"help": "CSV, Parquet or JSONL file of the texts to label."})
    labels: Annotated[dict[str, LabelSpec], Field(min_length=2)] = field(
        metadata={"help": "Label name -> description (chat teachers see it)."}
    )
    text_column: str = field(default="text", metadata={"help": "Text column of `input`."})
    shots_file: str | None = field(
        default=None,
        metadata={"help": "Labelled examples for the few-shot header (JSONL/CSV/Parquet)."},
    )
    shots: Shots = field(default=2, metadata={"help": "Examples per label in the header."})
    label_column: str = field(default="label", metadata={"help": "Label column of shots_file."})
    kind: Literal["annotate"] = "annotate"

    _labels_shorthand = field_validator("labels", mode="before")(label_dict)


_MAX_TEXT_CHARS = 1200  # the head of a long text decides; the header's KV is what is reused


@dataclass
class Annotation:
    """One text's labelling, ready to become a record."""

    row: int
    text: str
    distribution: dict[str, float] = field(default_factory=dict)


class AnnotateTask:
    """Not a plan/render/parse task: one `label_distribution` call per batch of texts."""

    kind = "labelled"
    task_name = "annotate"
    group_column = "label"

    def __init__(self, config: AnnotateTaskConfig, templates: Templates | None = None):
        self.config = config
        self.templates = templates or Templates()
        self.labels = dict(config.labels)
        rows = read_rows(config.input, "input file")
        self.texts = column(rows, config.text_column, config.input, "input file")
        self.shots: list[dict[str, str]] = []
        if config.shots_file:
            shot_rows = read_rows(config.shots_file, "shots file")
            texts = column(shot_rows, config.text_column, config.shots_file, "shots file")
            labels = column(shot_rows, config.label_column, config.shots_file, "shots file")
            taken: dict[str, int] = {}
            for text, label in zip(texts, labels, strict=True):
                if label in self.labels and taken.get(label, 0) < config.shots and text.strip():
                    taken[label] = taken.get(label, 0) + 1
                    self.shots.append({"text": _clip(text), "label": label})
            self.shots = _interleave(self.shots)

    @property
    def groups(self) -> list[str]:
        return list(self.labels)

    def header(self, style: PromptStyle) -> tuple[str, str, str, str]:
        """(header, suffix, template name, template hash) for this teacher's style."""
        variables = {
            "labels": {name: spec.description for name, spec in self.labels.items()},
            "shots": self.shots,
        }
        rendered = self.templates.render("annotate", style, variables)
        if rendered.prompt is not None:
            header = rendered.prompt
        else:
            header = "\n\n".join(m["content"] for m in rendered.messages or ())
        if "{text}" not in header:
            raise SynthkdError(f"prompt template {rendered.template} must contain {{text}}")
        before, after = header.split("{text}", 1)
        return before, after, rendered.template, rendered.template_hash

    def request(self, header: str, text: str, suffix: str) -> TeacherRequest:
        """The request a text stands for: its sample_key is what resume and lineage use."""
        return TeacherRequest(
            prompt=header + text + suffix,
            params=SamplingParams(temperature=0.0, max_tokens=1, seed=None),
            metadata={"task": "annotate"},
        )

    def items(self, limit: int | None = None) -> list[Annotation]:
        texts = self.texts if limit is None else self.texts[:limit]
        return [Annotation(i, text) for i, text in enumerate(texts)]

    def prepared(self, text: str) -> str:
        return _clip(text)

    def content(self, item: Annotation) -> dict[str, Any]:
        dist = item.distribution
        label = max(dist, key=dist.get)
        return {
            "text": item.text,
            "label": label,
            "soft_labels": dist,
            "teacher_confidence": dist[label],
            "meta": {"source": "annotate", "row": item.row, "input": Path(self.config.input).name},
        }


def _clip(text: str) -> str:
    text = squash(text)
    return text if len(text) <= _MAX_TEXT_CHARS else text[:_MAX_TEXT_CHARS].rsplit(" ", 1)[0]


def _interleave(shots: list[dict[str, str]]) -> list[dict[str, str]]:
    """Labels alternate in the header, so no label is favoured by being last."""
    by_label: dict[str, list[dict[str, str]]] = {}
    for shot in shots:
        by_label.setdefault(shot["label"], []).append(shot)
    out = []
    while any(by_label.values()):
        for items in by_label.values():
            if items:
                out.append(items.pop(0))
    return out


def normalised(distribution: dict[str, float], labels: list[str]) -> dict[str, float]:
    """The teacher's distribution over exactly `labels`, summing to 1."""
    values = {label: max(0.0, float(distribution.get(label, 0.0))) for label in labels}
    total = sum(values.values())
    if total <= 0:
        raise SynthkdError("the teacher returned an empty label distribution")
    return {label: value / total for label, value in values.items()}


def raw_text(distribution: dict[str, float]) -> str:
    return json.dumps(distribution, sort_keys=True)
