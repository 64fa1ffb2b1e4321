"""Triples as text: COMET-style "head relation [GEN] tail" lines for commonsense records,
"chunk [GEN] s | p | o ; ..." lines for document knowledge graphs, and the two match
scores (exact, token-F1) a generated tail is judged by."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from synthkd.data import relation_phrase
from synthkd.errors import SynthkdError
from synthkd.training._examples import accepted_only, rows_of

GEN = "[GEN]"
TRIPLE_SEPARATOR = " ; "
FIELD_SEPARATOR = " | "


@dataclass
class TripleExample:
    """One prompt and every reference completion for it."""

    prompt: str
    targets: list[str] = field(default_factory=list)


def commonsense_prompt(head: str, relation: str) -> str:
    """COMET-style "head <relation phrase> [GEN]" (the phrase table shared by every room)."""
    return f"{head.strip()} {relation_phrase(relation, mid_sentence=True)} {GEN}"


def _text(value: Any, column: str, row: int, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SynthkdError(f"{what} row {row}: {column!r} is empty or not a string")
    return value.strip()


def triple_examples(
    data: Any, *, what: str = "the training corpus"
) -> tuple[str, list[TripleExample]]:
    """("commonsense" | "document_kg", examples grouped by prompt) from corpus records."""
    columns = accepted_only(rows_of(data, what))
    grouped: dict[str, list[str]] = {}
    if {"head", "relation", "tail"} <= set(columns):
        layout = "commonsense"
        triples = zip(columns["head"], columns["relation"], columns["tail"], strict=True)
        for i, (h, r, t) in enumerate(triples):
            prompt = commonsense_prompt(_text(h, "head", i, what), _text(r, "relation", i, what))
            grouped.setdefault(prompt, []).append(_text(t, "tail", i, what))
    elif {"subject", "predicate", "object"} <= set(columns):
        layout = "document_kg"
        n = len(columns["subject"])
        sources = columns.get("chunk_text") or columns.get("chunk") or None
        docs = columns.get("document_id") or [""] * n
        chunks = columns.get("chunk_id") or [str(i) for i in range(n)]
        quotes = columns.get("quote") or [None] * n
        by_chunk: dict[tuple[str, str], dict[str, Any]] = {}
        for i in range(n):
            entry = by_chunk.setdefault((str(docs[i]), str(chunks[i])), {"src": [], "triples": []})
            source = sources[i] if sources else quotes[i]
            if isinstance(source, str) and source.strip() and source.strip() not in entry["src"]:
                entry["src"].append(source.strip())
            triple = FIELD_SEPARATOR.join(
                _text(columns[c][i], c, i, what) for c in ("subject", "predicate", "object")
            )
            entry["triples"].append(triple)
        for (doc, chunk), entry in by_chunk.items():
            if not entry["src"]:
                raise SynthkdError(f"{what}: chunk {doc}/{chunk} has no quote or chunk text")
            prompt = f"{' '.join(entry['src'])} {GEN}"
            grouped.setdefault(prompt, []).append(TRIPLE_SEPARATOR.join(entry["triples"]))
    else:
        have = ", ".join(sorted(columns)) or "none"
        raise SynthkdError(
            f"{what} has neither head/relation/tail nor subject/predicate/object columns "
            f"(columns: {have})"
        )
    if not grouped:
        raise SynthkdError(f"{what} is empty: no triples to train or evaluate on")
    return layout, [TripleExample(prompt, targets) for prompt, targets in grouped.items()]


def normalize(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s|;]", " ", text.lower()).split())


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD-style token overlap F1 between two normalized strings."""
    pred, ref = normalize(prediction).split(), normalize(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def match_scores(prediction: str, references: list[str]) -> tuple[float, float]:
    """(exact match against any reference, best token-F1 over the references)."""
    exact = float(normalize(prediction) in {normalize(r) for r in references})
    return exact, max(token_f1(prediction, r) for r in references)
