"""Knowledge-graph triples grounded in quotes of the user's documents (Distill-SynthKG).

Documents are cut into chunks (paragraphs packed up to a token budget). For each chunk
the teacher first lists its entities, then writes facts "subject | predicate | object |
quote". A fact becomes a record only when its subject and object are entities of the
chunk (after normalising names within the document) and its quote occurs verbatim in
the chunk; everything else is a reject with its reason. Document text only ever enters
a prompt as a template variable and a record as a checked string, so text that looks
like instructions, braces or JSON cannot change the prompt template, the record's
columns or the quote check.
"""

from __future__ import annotations

import glob
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from synthkd.config import Settings, settings
from synthkd.errors import SynthkdError
from synthkd.generators.prompting import PromptStyle, Templates
from synthkd.generators.tasks.base import (
    Focus,
    GenerationTask,
    Intent,
    Parsed,
    loads_object,
    squash,
)
from synthkd.generators.tasks.entities import Chunk, EntityIndex, chunk_document, find_quote
from synthkd.generators.tasks.kg_inputs import (
    fact_line,
    mentioned,
    read_shots,
    read_text,
    relation_key,
    repair_object,
    split_names,
    unique_id,
)
from synthkd.generators.teachers.base import Completion, TeacherRequest


@settings("task")
class DocumentKGTaskConfig(Settings):
    """Knowledge-graph triples grounded in quotes of the user's documents."""

    documents: str = field(
        metadata={"help": "Glob of plain-text documents, relative to the recipe."}
    )
    seed_kg: str | None = field(
        default=None,
        metadata={
            "help": "JSONL of few-shot examples: {text, entities, triples: [{subject, "
            "predicate, object, quote}]}."
        },
    )
    heldout_gold: str | None = field(
        default=None,
        metadata={
            "help": "JSONL of held-out chunks with gold triples ({chunk, triples: [{subject, "
            "predicate, object, quote}]}), never shown to the teacher: the generative student "
            "is scored on them every round (None: no held-out score)."
        },
    )
    chunk_tokens: Annotated[int, Field(ge=20, le=100_000)] = field(
        default=160,
        metadata={"help": "Token budget of one chunk (words and punctuation marks)."},
    )
    per_document: Annotated[int, Field(ge=1, le=100_000)] = field(
        default=10,
        metadata={
            "help": "Triples wanted per document per round; while a document has fewer, its "
            "chunks are sampled once more (at most one extra pass)."
        },
    )
    max_entities: Annotated[int, Field(ge=2, le=200)] = field(
        default=12, metadata={"help": "Entities kept per chunk."}
    )
    samples_per_chunk: Annotated[int, Field(ge=1, le=64)] = field(
        default=2, metadata={"help": "Fact-list samples drawn per chunk."}
    )
    min_quote_chars: Annotated[int, Field(ge=1, le=10_000)] = field(
        default=12, metadata={"help": "Shorter quotes support nothing."}
    )
    kind: Literal["document_kg"] = "document_kg"


_MAX_PREDICATE_WORDS = 6
_MAX_ENTITY_WORDS = 6
_SHOTS = 2
_QUOTES = "\"'`\u2018\u2019\u201c\u201d "


class DocumentKGTask(GenerationTask):
    kind = "document_kg"
    task_name = "document_kg"
    group_column = "document_id"
    chain_stages = frozenset({"kg_entities"})

    def __init__(self, config: DocumentKGTaskConfig, templates: Templates | None = None):
        super().__init__(templates)
        self.config = config
        paths = sorted(Path(p) for p in glob.glob(config.documents, recursive=True))
        paths = [p for p in paths if p.is_file()]
        if not paths:
            raise SynthkdError(f"documents: no file matches {config.documents}")
        self.chunks: dict[str, list[Chunk]] = {}
        self.input_rejects: list[tuple[dict[str, Any], str]] = []
        """Documents that could not be used, with the reason (the driver stores them)."""
        taken: set[str] = set()
        for path in paths:
            document_id = unique_id(path, taken)
            taken.add(document_id)
            text, problem = read_text(path)
            chunks = chunk_document(document_id, text, config.chunk_tokens) if text else []
            if problem is None and not chunks:
                problem = "empty_document"
            if problem is not None:
                self.input_rejects.append(({"document_id": document_id}, problem))
            else:
                self.chunks[document_id] = chunks
        if not self.chunks:
            reasons = sorted({reason for _, reason in self.input_rejects})
            raise SynthkdError(
                f"documents: no usable text in the files matching {config.documents} "
                f"({', '.join(reasons)})"
            )
        self.all_shots = read_shots(config.seed_kg) if config.seed_kg else []
        self.shots = self.all_shots[:_SHOTS]
        self.entities = {document_id: EntityIndex() for document_id in self.chunks}

    @property
    def groups(self) -> list[str]:
        return list(self.chunks)

    def group_of(self, content: dict[str, Any]) -> str:
        return content["document_id"]

    # ------------------------------------------------------------------ plan

    def plan(
        self, round: int, focus: Focus | None, wanted: dict[str, int], attempt: int = 0
    ) -> list[Intent]:
        if attempt > 1:
            return []  # a weak teacher rarely grounds a fact: two passes, not endless ones
        intents = []
        # a guided round: the chunks the student missed most on (hard negatives name them),
        # twice the samples, shown the seed examples of the weakest relations
        hard = {h.text for h in focus.hard_negatives} if focus else set()
        shots = self._shots_for(focus.labels if focus else None)
        for document_id, chunks in self.chunks.items():
            if wanted.get(document_id, 0) <= 0:
                continue
            per_chunk = self.config.samples_per_chunk * (1 if attempt == 0 and not hard else 2)
            for chunk in chunks:
                if hard and chunk.chunk_id not in hard:
                    continue
                intents.append(
                    {
                        "stage": "kg_entities",
                        "id": f"r{round}:{chunk.chunk_id}:entities",
                        "document_id": document_id,
                        "chunk_id": chunk.chunk_id,
                        "chunk": chunk.text,
                        "samples": 1,
                        "attempt": attempt,
                        "round": round,
                        "triple_samples": per_chunk,
                        **({"shots": shots} if shots is not None else {}),
                    }
                )
        return intents

    def _shots_for(self, relations: list[str] | None) -> list[int] | None:
        """Indices of the seed examples that show the most of RELATIONS (None: the default)."""
        if not relations or len(self.all_shots) <= _SHOTS:
            return None
        wanted = {relation_key(r) for r in relations}

        def hits(i: int) -> int:
            return sum(relation_key(t["predicate"]) in wanted for t in self.all_shots[i]["triples"])

        ranked = sorted(range(len(self.all_shots)), key=lambda i: (-hits(i), i))
        return sorted(ranked[:_SHOTS]) if hits(ranked[0]) else None

    # ---------------------------------------------------------------- render

    def variables(self, intent: Intent, style: PromptStyle) -> dict[str, Any]:
        shots = [self.all_shots[i] for i in intent["shots"]] if "shots" in intent else self.shots
        variables = {"shots": shots, "chunk": intent["chunk"]}
        if intent["stage"] == "kg_triples":
            variables["entities"] = intent["entities"]
        return variables

    def stage_params(self, intent: Intent, style: PromptStyle) -> tuple[int, tuple[str, ...]]:
        if style == "chat":
            return 200 if intent["stage"] == "kg_entities" else 600, ()
        if intent["stage"] == "kg_entities":
            return 80, ("\n",)
        return 240, ("\n\n", "\nText:")

    def schema(self, intent: Intent) -> dict[str, Any] | None:
        if intent["stage"] == "kg_entities":
            properties: dict[str, Any] = {
                "entities": {"type": "array", "items": {"type": "string"}, "maxItems": 30}
            }
        else:
            fact = {
                "type": "object",
                "properties": {
                    k: {"type": "string"} for k in ("subject", "predicate", "object", "quote")
                },
                "required": ["subject", "predicate", "object", "quote"],
                "additionalProperties": False,
            }
            properties = {"triples": {"type": "array", "items": fact, "maxItems": 20}}
        return {
            "type": "object",
            "properties": properties,
            "required": list(properties),
            "additionalProperties": False,
        }

    # ----------------------------------------------------------------- parse

    def reject_content(self, request: TeacherRequest) -> dict[str, Any] | None:
        intent = request.metadata["intent"]
        return {"document_id": intent["document_id"], "chunk_id": intent["chunk_id"]}

    def parse_truncated(self, request: TeacherRequest, completion: Completion) -> Parsed | None:
        """A fact list cut at max_tokens: its complete lines are still facts, each checked
        like any other; the cut line is a reject (`truncated`). None: nothing to keep."""
        intent = request.metadata["intent"]
        if intent["stage"] != "kg_triples" or request.metadata["style"] == "chat":
            return None
        lines = completion.text.rstrip().split("\n")
        if len(lines) < 2:
            return None
        parsed = self._parse_triples(intent, "\n".join(lines[:-1]), False)
        parsed.rejects.append((self.reject_content(request), "truncated"))
        return parsed

    def parse(self, request: TeacherRequest, completion: Completion) -> Parsed:
        intent = request.metadata["intent"]
        chat = request.metadata["style"] == "chat"
        if intent["stage"] == "kg_entities":
            return self._parse_entities(intent, completion.text, chat)
        return self._parse_triples(intent, completion.text, chat)

    def _parse_entities(self, intent: Intent, raw: str, chat: bool) -> Parsed:
        where = {"document_id": intent["document_id"], "chunk_id": intent["chunk_id"]}
        if chat:
            data = loads_object(raw) or repair_object(raw)
            names = data.get("entities") if data else None
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                return Parsed.reject(where, "unparseable")
        else:
            lines = [line for line in raw.strip().splitlines() if line.strip()]
            if len(lines) > 1:
                return Parsed.reject(where, "unparseable")
            names = lines[0].split(";") if lines else []
        index = self.entities[intent["document_id"]]
        kept: list[str] = []
        parsed = Parsed()
        for name in split_names(names, intent["chunk"]):
            if not mentioned(name, intent["chunk"]):
                parsed.rejects.append(({**where, "subject": name}, "entity_not_in_chunk"))
                continue
            canonical = index.add(name)
            if canonical and canonical not in kept:
                kept.append(canonical)
        kept = kept[: self.config.max_entities]
        if len(kept) < 2:
            parsed.rejects.append((where, "too_few_entities"))
            return parsed
        parsed.follow_ups.append(
            {
                "stage": "kg_triples",
                "id": f"r{intent['round']}:a{intent['attempt']}:{intent['chunk_id']}:triples",
                "document_id": intent["document_id"],
                "chunk_id": intent["chunk_id"],
                "chunk": intent["chunk"],
                "entities": kept,
                "samples": intent["triple_samples"],
                **({"shots": intent["shots"]} if "shots" in intent else {}),
            }
        )
        return parsed

    def _parse_triples(self, intent: Intent, raw: str, chat: bool) -> Parsed:
        where = {"document_id": intent["document_id"], "chunk_id": intent["chunk_id"]}
        facts: list[dict[str, Any] | str] = []
        if chat:
            data = loads_object(raw) or repair_object(raw)
            items = data.get("triples") if data else None
            if not isinstance(items, list):
                return Parsed.reject(where, "unparseable")
            facts = [item if isinstance(item, dict) else "" for item in items]
        else:
            for line in raw.strip().splitlines():
                if line.strip():
                    facts.append(fact_line(line))
        if not facts:
            return Parsed.reject(where, "empty")
        parsed = Parsed()
        index = self.entities[intent["document_id"]]
        allowed = set(intent["entities"])
        for fact in facts:
            content, reason = self._check(fact, index, allowed, intent["chunk"], where)
            if reason:
                parsed.rejects.append((content, reason))
            else:
                parsed.records.append(content)
        return parsed

    def _check(
        self,
        fact: dict[str, Any] | str,
        index: EntityIndex,
        allowed: set[str],
        chunk: str,
        where: dict[str, str],
    ) -> tuple[dict[str, Any], str | None]:
        if not isinstance(fact, dict):
            return where, "unparseable"
        fields = {k: fact.get(k) for k in ("subject", "predicate", "object", "quote")}
        if not all(isinstance(v, str) for v in fields.values()):
            return where, "unparseable"
        subject, predicate, obj, quote = (squash(v) for v in fields.values())  # type: ignore[arg-type]
        quote = quote.strip(_QUOTES)
        content = {
            **where,
            "subject": subject,
            "predicate": predicate,
            "object": obj,
            "quote": quote,
        }
        if not subject or not predicate or not obj or not quote:
            return content, "incomplete_triple"
        canonical_subject = _entity(subject, index, allowed, chunk)
        canonical_object = _entity(obj, index, allowed, chunk)
        if canonical_subject is None or canonical_object is None:
            return content, "unknown_entity"
        if canonical_subject == canonical_object:
            return content, "self_loop"
        if len(predicate.split()) > _MAX_PREDICATE_WORDS:
            return content, "predicate_too_long"
        found = find_quote(quote, chunk) if len(quote) >= self.config.min_quote_chars else None
        if found is None or len(found) < self.config.min_quote_chars:
            return content, "unsupported_quote"
        quote = content["quote"] = found  # the chunk's own words, verbatim
        names = (subject, obj, canonical_subject, canonical_object)
        if not any(mentioned(name, quote) for name in names):
            return content, "quote_misses_entities"
        content.update(
            subject=canonical_subject, object=canonical_object, predicate=predicate.lower()
        )
        return content, None


def _entity(name: str, index: EntityIndex, allowed: set[str], chunk: str) -> str | None:
    """The canonical entity a triple names: one listed for the chunk, or a name the chunk
    itself mentions (the entity list of a small teacher misses some); never an invented one.
    An unlisted lower-case phrase is no name: a document could dictate one ("owned by x")."""
    canonical = index.lookup(name)
    if canonical in allowed:
        return canonical
    words = name.split()
    looks_like_a_name = 0 < len(words) <= _MAX_ENTITY_WORDS and (
        name[0].isupper() or name[0].isdigit()
    )
    if looks_like_a_name and mentioned(name, chunk):
        return index.add(name)
    return None
