"""ATOMIC-style commonsense triples, as Symbolic Knowledge Distillation (West et al.) made them.

Two stages, both few-shot: first new head events written after a list of seed events
("PersonX ..."), then for every new event and relation a tail written after gold
examples of that relation, each shown as the relation's natural-language template
("Event: PersonX buys a car\\nBefore that, PersonX needed to save money"). The gold
shots of a relation stay fixed within a round, so consecutive tail prompts of one
relation share their prefix (llama.cpp reuses its KV cache).
"""

from __future__ import annotations

import math
import random
from dataclasses import field
from typing import Annotated, Any, Literal

from pydantic import Field

from synthkd.config import Settings, settings
from synthkd.data import read_rows, read_texts
from synthkd.data.relations import DEFAULT_RELATIONS, RELATION_PHRASES
from synthkd.errors import SynthkdError
from synthkd.generators.prompting import PromptStyle, Templates
from synthkd.generators.tasks.base import (
    Focus,
    GenerationTask,
    Intent,
    Parsed,
    loads_object,
    normal_form,
    rotate,
    squash,
)
from synthkd.generators.teachers.base import Completion, TeacherRequest


@settings("task")
class CommonsenseTaskConfig(Settings):
    """ATOMIC-style (head, relation, tail) triples, Symbolic Knowledge Distillation style."""

    seed_events: str = field(
        metadata={
            "help": 'Seed head events: a .txt file, one "PersonX ..." per line (or a table '
            "with an `event` column)."
        }
    )
    seed_triples: str = field(
        metadata={"help": "JSONL of gold {head, relation, tail} examples, several per relation."}
    )
    relations: Annotated[dict[str, str], Field(min_length=1)] = field(
        default_factory=lambda: {name: RELATION_PHRASES[name] for name in DEFAULT_RELATIONS},
        metadata={
            "help": "Relation name -> natural-language template the tail completes, e.g. "
            "'As a result, PersonX' (default: the ATOMIC relations)."
        },
    )
    heldout_gold: str | None = field(
        default=None,
        metadata={
            "help": "JSONL of gold {head, relation, tail} triples the teacher never sees: the "
            "generative student is scored on them every round (None: no held-out score)."
        },
    )
    per_relation: Annotated[int, Field(ge=1, le=100_000)] = field(
        default=20, metadata={"help": "Triples asked for per relation per round."}
    )
    tails_per_event: Annotated[int, Field(ge=1, le=64)] = field(
        default=2, metadata={"help": "Tails sampled per (event, relation)."}
    )
    event_shots: Annotated[int, Field(ge=1, le=100)] = field(
        default=10, metadata={"help": "Seed events shown when writing new events (rotating)."}
    )
    tail_shots: Annotated[int, Field(ge=1, le=100)] = field(
        default=6, metadata={"help": "Gold triples shown per relation."}
    )
    kind: Literal["commonsense"] = "commonsense"


_EVENT_SAMPLES = 4
_MAX_EVENT_WORDS = 16
_MAX_TAIL_WORDS = 14


class CommonsenseTask(GenerationTask):
    kind = "commonsense"
    task_name = "commonsense"
    group_column = "relation"
    chain_stages = frozenset({"commonsense_events"})

    def __init__(self, config: CommonsenseTaskConfig, templates: Templates | None = None):
        super().__init__(templates)
        self.config = config
        lines = read_texts(config.seed_events, "event", "seed events file")
        self.seed_events = [squash(line) for line in lines if line.strip()]
        if not self.seed_events:
            raise SynthkdError(f"seed events file {config.seed_events}: no events")
        self.gold: dict[str, list[dict[str, str]]] = {name: [] for name in config.relations}
        for row in read_rows(config.seed_triples, "seed triples file"):
            if not all(isinstance(row.get(k), str) for k in ("head", "relation", "tail")):
                raise SynthkdError(
                    f"seed triples file {config.seed_triples}: each line needs head, relation, tail"
                )
            if row["relation"] in self.gold:
                self.gold[row["relation"]].append(
                    {"head": squash(row["head"]), "tail": squash(row["tail"])}
                )
        empty = [name for name, shots in self.gold.items() if not shots]
        if empty:
            raise SynthkdError(
                f"seed triples file {config.seed_triples}: no example of relation {empty[0]!r}"
            )
        self._known_events = {normal_form(e) for e in self.seed_events}
        self._new_events: set[str] = set()

    @property
    def groups(self) -> list[str]:
        return list(self.config.relations)

    def group_of(self, content: dict[str, Any]) -> str:
        return content["relation"]

    # ------------------------------------------------------------------ plan

    def plan(
        self, round: int, focus: Focus | None, wanted: dict[str, int], attempt: int = 0
    ) -> list[Intent]:
        relations = [r for r in self.groups if wanted.get(r, 0) > 0]
        if focus and focus.labels:
            relations = [r for r in relations if r in focus.labels]
        if not relations:
            return []
        most = max(wanted[r] for r in relations)
        margin = 1.25 if attempt == 0 else 1.6
        events = math.ceil(most * margin / self.config.tails_per_event)
        rng = random.Random(f"events:{round}:{attempt}")
        pool = list(self.seed_events)
        rng.shuffle(pool)
        intents = []
        for j in range(math.ceil(events / _EVENT_SAMPLES)):
            intents.append(
                {
                    "stage": "commonsense_events",
                    "id": f"r{round}:a{attempt}:events:{j}",
                    "shots": rotate(pool, self.config.event_shots, j * self.config.event_shots),
                    "samples": _EVENT_SAMPLES,
                    "relations": relations,
                    "round": round,
                }
            )
        if focus and attempt == 0:
            intents.extend(self._focus_tails(round, focus, relations))
        return intents

    def _focus_tails(self, round: int, focus: Focus, relations: list[str]) -> list[Intent]:
        """Tails asked again for the events whose student tails the critic rejected (the
        guided loop passes them as hard negatives: event as text, relation as label)."""
        parent = {"id": f"r{round}:focus", "round": round}
        return [
            self._tail_intent(parent, i, squash(h.text), h.label)
            for i, h in enumerate(focus.hard_negatives)
            if h.label in self.config.relations and h.label in relations and h.text.strip()
        ]

    def _tail_intent(self, parent: Intent, index: int, head: str, relation: str) -> Intent:
        shots = rotate(self.gold[relation], self.config.tail_shots, parent["round"] * 3)
        return {
            "stage": "commonsense_tails",
            "id": f"{parent['id']}:{index}:{relation}",
            "head": head,
            "relation": relation,
            "template": self.config.relations[relation],
            "shots": shots,
            "samples": self.config.tails_per_event,
        }

    # ---------------------------------------------------------------- render

    def variables(self, intent: Intent, style: PromptStyle) -> dict[str, Any]:
        if intent["stage"] == "commonsense_events":
            return {"shots": intent["shots"]}
        return {
            "head": intent["head"],
            "relation": intent["relation"],
            "template": intent["template"],
            "shots": intent["shots"],
        }

    def stage_params(self, intent: Intent, style: PromptStyle) -> tuple[int, tuple[str, ...]]:
        if style == "chat":
            return 120, ()
        if intent["stage"] == "commonsense_events":
            return 32, ("\n",)
        return 24, ("\n",)

    def schema(self, intent: Intent) -> dict[str, Any] | None:
        key = "event" if intent["stage"] == "commonsense_events" else "tail"
        return {
            "type": "object",
            "properties": {key: {"type": "string", "minLength": 1}},
            "required": [key],
            "additionalProperties": False,
        }

    # ----------------------------------------------------------------- parse

    def reject_content(self, request: TeacherRequest) -> dict[str, Any] | None:
        intent = request.metadata["intent"]
        if intent["stage"] == "commonsense_events":
            return None
        return {"head": intent["head"], "relation": intent["relation"]}

    def parse(self, request: TeacherRequest, completion: Completion) -> Parsed:
        intent = request.metadata["intent"]
        text = _answer(completion.text, request.metadata["style"], intent["stage"])
        if intent["stage"] == "commonsense_events":
            if text is not None and request.metadata["style"] == "completion":
                text = (
                    f"PersonX {text.strip()}" if text.strip() else ""
                )  # the prompt ends "PersonX"
            return self._parse_event(intent, completion.index, text)
        return self._parse_tail(intent, text)

    def _parse_event(self, intent: Intent, index: int, text: str | None) -> Parsed:
        if text is None:
            return Parsed.reject(None, "unparseable")
        event = squash(text).rstrip(".")
        if not event:
            return Parsed.reject(None, "empty")
        content = {"head": event}
        words = event.split()
        if words[0] != "PersonX" or len(words) < 3:
            return Parsed.reject(content, "not_an_event")
        if len(words) > _MAX_EVENT_WORDS:
            return Parsed.reject(content, "too_long")
        key = normal_form(event)
        if key in self._known_events:
            return Parsed.reject(content, "prompt_echo")
        if key in self._new_events:
            return Parsed.reject(content, "duplicate_event")
        self._new_events.add(key)
        follow = [self._tail_intent(intent, index, event, r) for r in intent["relations"]]
        return Parsed(follow_ups=follow)

    def _parse_tail(self, intent: Intent, text: str | None) -> Parsed:
        content = {"head": intent["head"], "relation": intent["relation"]}
        if text is None:
            return Parsed.reject(content, "unparseable")
        tail = squash(text).rstrip(".").strip()
        template = squash(intent["template"])
        if tail.lower().startswith(template.lower()):
            tail = tail[len(template) :].strip()  # a chat model may restate the template
        if not tail:
            return Parsed.reject(content, "empty")
        content["tail"] = tail
        if "Event:" in tail or len(tail.split()) > _MAX_TAIL_WORDS:
            return Parsed.reject(content, "too_long" if "Event:" not in tail else "format_leak")
        key = normal_form(tail)
        if not key:
            return Parsed.reject(content, "empty")
        if key == normal_form(intent["head"]) or key in {
            normal_form(s["tail"]) for s in intent["shots"]
        }:
            return Parsed.reject(content, "prompt_echo")
        return Parsed(records=[content])


def _answer(raw: str, style: str, stage: str) -> str | None:
    """The completion's one line (completion style) or the JSON field (chat style)."""
    if style != "chat":
        lines = [line for line in raw.strip().splitlines() if line.strip()]
        return lines[0] if len(lines) == 1 else ("" if not lines else None)
    data = loads_object(raw)
    key = "event" if stage == "commonsense_events" else "tail"
    if data is None or not isinstance(data.get(key), str):
        return None
    return data[key]
