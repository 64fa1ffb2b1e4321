"""Labelled examples per label (text classification), with rotating shots and diversity axes.

For a base model the prompt is a document the model continues: a page of items, each
"<label_name>: <label>\\nHeadline: ...\\n<item_name>: ...", with seed examples of all
labels rotating through, ending with the label asked for (plus a subtopic and a style)
and an open headline. The record's label is the label asked for; the critic, not the
parser, decides whether the text really is one.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from synthkd.config import Settings, settings
from synthkd.data import read_rows
from synthkd.errors import SynthkdError
from synthkd.generators.prompting import PromptStyle, Templates
from synthkd.generators.tasks.base import (
    Focus,
    GenerationTask,
    Intent,
    Parsed,
    column,
    echoes,
    loads_object,
    rotate,
    squash,
)
from synthkd.generators.teachers.base import Completion, TeacherRequest

_SHOT_WORDS = 60
_SHOT_SENTENCES = 2


@settings("task.labels")
class LabelSpec(Settings):
    description: str = field(
        default="", metadata={"help": "What the label means, in a few words (chat prompts)."}
    )
    subtopics: list[str] = field(
        default_factory=list,
        metadata={"help": "Diversity axis: what an example of this label may be about."},
    )


def label_dict(value: Any) -> Any:
    """Accept `labels: [a, b]` and `labels: {a: "description"}` as shorthands."""
    if isinstance(value, list):
        return {str(name): {} for name in value}
    if isinstance(value, dict):
        return {k: ({"description": v} if isinstance(v, str) else v) for k, v in value.items()}
    return value


Count = Annotated[int, Field(ge=1, le=100_000)]
Shots = Annotated[int, Field(ge=0, le=64)]


@settings("task")
class LabelledTaskConfig(Settings):
    """Labelled examples written per label (text classification); the recipe's `task:`."""

    labels: Annotated[dict[str, LabelSpec], Field(min_length=2)] = field(
        metadata={"help": "Label name -> its description and subtopics (or a list of names)."}
    )
    seeds: str = field(
        metadata={"help": "JSONL/CSV/Parquet of a few real examples per label (the shots)."}
    )
    validation: str | None = field(
        default=None,
        metadata={"help": "Held-out examples that judge the student (never shown to the teacher)."},
    )
    test: str | None = field(
        default=None,
        metadata={
            "help": "A labelled file no part of the loop reads; only the final report scores it."
        },
    )
    unlabelled: str | None = field(
        default=None,
        metadata={"help": "CSV/Parquet/JSONL of the user's real unlabelled texts."},
    )
    unlabelled_text_column: str = field(
        default="text", metadata={"help": "Text column of `unlabelled`."}
    )
    unlabelled_max: Annotated[int, Field(ge=0, le=1_000_000)] = field(
        default=1000,
        metadata={
            "help": "At most this many `unlabelled` texts are labelled by self-training "
            "(sampled with the recipe's seed when the pool is larger); 0: no cap."
        },
    )
    text_column: str = field(
        default="text", metadata={"help": "Text column of seeds, validation and test."}
    )
    label_column: str = field(
        default="label", metadata={"help": "Label column of seeds, validation and test."}
    )
    styles: list[str] = field(
        default_factory=list,
        metadata={"help": "Diversity axis: writing styles (e.g. report, interview, preview)."},
    )
    lengths: list[str] = field(
        default_factory=list,
        metadata={"help": "Diversity axis: lengths (chat prompts; base models follow the shots)."},
    )
    per_label: Count = field(
        default=50, metadata={"help": "Records asked for per label per round."}
    )
    shots: Shots = field(
        default=4,
        metadata={"help": "Seed examples per prompt; they rotate so every seed takes its turn."},
    )
    samples_per_prompt: Annotated[int, Field(ge=1, le=64)] = field(
        default=4,
        metadata={"help": "Samples drawn from one prompt (they share its KV cache on llama.cpp)."},
    )
    item_name: str = field(
        default="Story",
        metadata={"help": 'What one example is called in the prompt ("Story", "Review").'},
    )
    label_name: str = field(
        default="Section",
        metadata={"help": 'What the label is called in the prompt ("Section", "Topic").'},
    )
    document_title: str = field(
        default="Latest stories",
        metadata={"help": "First line of the completion prompt: the page the items belong to."},
    )
    headline: bool = field(
        default=False,
        metadata={
            "help": "Items start with a headline line; the first line of a multi-line seed "
            "is its headline."
        },
    )
    kind: Literal["labelled"] = "labelled"

    _labels_shorthand = field_validator("labels", mode="before")(label_dict)

    def label_specs(self) -> dict[str, LabelSpec]:
        return dict(self.labels)


@dataclass(frozen=True)
class _Shot:
    label: str
    headline: str
    text: str

    def as_dict(self) -> dict[str, str]:
        return {"label": self.label, "headline": self.headline, "text": self.text}


class LabelledTask(GenerationTask):
    kind = "labelled"
    task_name = "labelled"
    group_column = "label"

    def __init__(self, config: LabelledTaskConfig, templates: Templates | None = None):
        super().__init__(templates)
        self.config = config
        self.labels = config.label_specs()
        rows = read_rows(config.seeds, "seeds file")
        texts = column(rows, config.text_column, config.seeds, "seeds file")
        labels = column(rows, config.label_column, config.seeds, "seeds file")
        unknown = sorted({label for label in labels if label not in self.labels})
        if unknown:
            raise SynthkdError(
                f"seeds file {config.seeds}: label {unknown[0]!r} is not one of the recipe's labels"
            )
        self.shots = [
            self._shot(text, label)
            for text, label in zip(texts, labels, strict=True)
            if text.strip()
        ]
        if not self.shots and config.shots > 0:
            raise SynthkdError(f"seeds file {config.seeds}: no examples")

    def _shot(self, text: str, label: str) -> _Shot:
        if self.config.headline:
            first, _, rest = text.strip().partition("\n")
            if rest.strip():
                return _Shot(label, squash(first), _clip(rest))
        return _Shot(label, "", _clip(text))

    @property
    def groups(self) -> list[str]:
        return list(self.labels)

    def group_of(self, content: dict[str, Any]) -> str:
        return content["label"]

    # ------------------------------------------------------------------ plan

    def plan(
        self, round: int, focus: Focus | None, wanted: dict[str, int], attempt: int = 0
    ) -> list[Intent]:
        config = self.config
        spp = config.samples_per_prompt
        labels = [label for label in self.groups if wanted.get(label, 0) > 0]
        if focus and focus.labels:
            labels = [label for label in labels if label in focus.labels]
        rng = random.Random(f"shots:{round}:{attempt}")
        pool = list(self.shots)
        rng.shuffle(pool)
        margin = 1.0 if attempt == 0 else 1.3
        per_label = {label: math.ceil(wanted[label] * margin / spp) for label in labels}
        intents: list[Intent] = []
        for j in range(max(per_label.values(), default=0)):
            for li, label in enumerate(labels):
                if j >= per_label[label]:
                    continue
                spec = self.labels[label]
                intent: Intent = {
                    "stage": "labelled",
                    "id": f"r{round}:a{attempt}:{label}:{j}",
                    "label": label,
                    "subtopic": _pick(spec.subtopics, j, li),
                    "style": _pick(config.styles, j, 0),
                    "length": _pick(config.lengths, j // max(1, len(config.styles)), 0),
                    "shots": [s.as_dict() for s in self._shots_for(pool, label, j, focus)],
                    "samples": spp,
                    "focus": self._focus_for(label, focus),
                }
                intents.append(intent)
        return intents

    def _shots_for(self, pool: list[_Shot], label: str, j: int, focus: Focus | None) -> list[_Shot]:
        k = self.config.shots
        hard: list[_Shot] = []
        if focus and k > 0:
            mine = [self._shot(h.text, h.label) for h in focus.hard_negatives if h.label == label]
            hard = rotate(mine, max(1, k // 2), j)
        chosen = rotate(pool, k - len(hard), j * max(1, k - len(hard)))
        return chosen + hard  # the hard negatives sit right before the new item

    @staticmethod
    def _focus_for(label: str, focus: Focus | None) -> dict[str, Any] | None:
        if focus is None:
            return None
        confused = [other for true, other in focus.confusions if true == label]
        hard = [
            {"text": h.text, "predicted": h.predicted}
            for h in focus.hard_negatives
            if h.label == label
        ][:3]
        if not confused and not hard and not focus.report:
            return None
        return {"confused_with": confused, "hard_negatives": hard, "report": focus.report}

    # ---------------------------------------------------------------- render

    def variables(self, intent: Intent, style: PromptStyle) -> dict[str, Any]:
        config = self.config
        spec = self.labels[intent["label"]]
        return {
            "title": config.document_title,
            "label_name": config.label_name,
            "item_name": config.item_name,
            "headline": config.headline,
            "label": intent["label"],
            "description": spec.description,
            "labels": {name: s.description for name, s in self.labels.items()},
            "subtopic": intent["subtopic"],
            "style": intent["style"],
            "length": intent["length"],
            "shots": intent["shots"],
            "focus": intent["focus"],
        }

    def stage_params(self, intent: Intent, style: PromptStyle) -> tuple[int, tuple[str, ...]]:
        if style == "chat":
            return 400, ()
        return 120, ("\n\n", f"\n{self.config.label_name}:")

    def schema(self, intent: Intent) -> dict[str, Any] | None:
        properties: dict[str, Any] = {"text": {"type": "string", "minLength": 1}}
        if self.config.headline:
            properties = {"headline": {"type": "string", "minLength": 1}, **properties}
        return {
            "type": "object",
            "properties": properties,
            "required": list(properties),
            "additionalProperties": False,
        }

    # ----------------------------------------------------------------- parse

    def reject_content(self, request: TeacherRequest) -> dict[str, Any] | None:
        return {"label": request.metadata["intent"]["label"]}

    def parse(self, request: TeacherRequest, completion: Completion) -> Parsed:
        intent = request.metadata["intent"]
        label = intent["label"]
        partial = {"label": label}
        if request.metadata["style"] == "chat":
            parts = self._parse_chat(completion.text)
        else:
            parts = self._parse_completion(completion.text)
        if isinstance(parts, str):
            return Parsed.reject(partial, parts)
        headline, body = parts
        text = f"{headline}\n\n{body}" if headline else body
        sources = [s["text"] for s in intent["shots"]] + [s["headline"] for s in intent["shots"]]
        if echoes(body, [s for s in sources if s]) or (headline and echoes(headline, sources)):
            return Parsed.reject({**partial, "text": text}, "prompt_echo")
        meta = {
            "style": intent["style"],
            "length": intent["length"],
            "subtopic": intent["subtopic"],
            "focus": intent["focus"] is not None,
        }
        return Parsed(records=[{"text": text, "label": label, "meta": meta}])

    def _parse_completion(self, raw: str) -> tuple[str, str] | str:
        if not raw.strip():
            return "empty"
        marker = f"\n{self.config.item_name}:"
        if self.config.headline:
            if marker not in raw:
                return f"missing_{self.config.item_name.lower()}"
            headline, body = raw.split(marker, 1)
            headline = squash(headline)
            if not headline:
                return "missing_headline"
        else:
            headline, body = "", raw
        lines = [line for line in body.strip().splitlines() if line.strip()]
        if len(lines) != 1:
            return "extra_lines" if lines else "empty"
        body = squash(lines[0])
        if f"{self.config.label_name}:" in body or "Headline:" in body or f"{marker[1:]}" in body:
            return "format_leak"
        return headline, body

    def _parse_chat(self, raw: str) -> tuple[str, str] | str:
        if not raw.strip():
            return "empty"
        data = loads_object(raw)
        if data is None:
            return "unparseable"
        body = data.get("text")
        headline = data.get("headline", "") if self.config.headline else ""
        if not isinstance(body, str) or not isinstance(headline, str):
            return "unparseable"
        body, headline = squash(body), squash(headline)
        if not body:
            return "empty"
        if self.config.headline and not headline:
            return "missing_headline"
        return headline, body


def _clip(text: str, words: int = _SHOT_WORDS, sentences: int = _SHOT_SENTENCES) -> str:
    """An example cut to its first sentences (at most `words` words): the teacher writes
    about as much as its shots show, and every token costs teacher time."""
    parts = re.split(r"(?<=[.!?])\s+(?=[\"'A-Z0-9])", squash(text))
    kept = " ".join(parts[:sentences])
    if len(kept.split()) <= words:
        return kept
    head = " ".join(kept.split()[:words])
    end = max(head.rfind(". "), head.rfind("! "), head.rfind("? "))
    return head[: end + 1] if end > 0 else head


def _pick(values: list[str], j: int, offset: int) -> str | None:
    return values[(j + offset) % len(values)] if values else None
