"""Chunking documents and normalising entity names within one document (Distill-SynthKG)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from synthkd.generators.tasks.base import squash

_TOKEN = re.compile(r"\w+|[^\w\s]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[A-Z0-9])")


def count_tokens(text: str) -> int:
    """Words and punctuation marks: a tokenizer-free stand-in for a model's token count."""
    return len(_TOKEN.findall(text))


@dataclass(frozen=True)
class Chunk:
    document_id: str
    chunk_id: str
    text: str


def chunk_document(document_id: str, text: str, budget: int) -> list[Chunk]:
    """Paragraphs packed into chunks of at most `budget` tokens; a longer paragraph is
    split at sentence ends (a sentence longer than the budget stays whole)."""
    pieces: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        paragraph = squash(paragraph)
        if not paragraph:
            continue
        if count_tokens(paragraph) <= budget:
            pieces.append(paragraph)
        else:
            pieces.extend(s for s in _SENTENCE_END.split(paragraph) if s.strip())
    # paragraphs stay on their own lines: a title must not run into the next sentence
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for piece in pieces:
        tokens = count_tokens(piece)
        if current and size + tokens > budget:
            chunks.append("\n".join(current))
            current, size = [], 0
        current.append(piece)
        size += tokens
    if current:
        chunks.append("\n".join(current))
    return [Chunk(document_id, f"{document_id}#{i}", body) for i, body in enumerate(chunks)]


def quote_in(quote: str, text: str) -> bool:
    """The quote occurs verbatim in the text once whitespace is collapsed on both sides."""
    needle = squash(quote)
    return bool(needle) and needle in squash(text)


_FOLD = str.maketrans(
    {"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-"}
)
_QUOTE_EDGE = "\"'`\u2018\u2019\u201c\u201d.,;:!? \u2026"


def _folded(text: str) -> tuple[str, list[int]]:
    """TEXT case-folded, quotes and dashes unified, whitespace runs as one space; with the
    index in TEXT of every kept character (so a match maps back to the original span)."""
    out: list[str] = []
    where: list[int] = []
    for i, ch in enumerate(text):
        if ch.isspace():
            if out and out[-1] != " ":
                out.append(" ")
                where.append(i)
            continue
        low = ch.translate(_FOLD).lower()
        if len(low) != 1:
            low = ch
        out.append(low)
        where.append(i)
    return "".join(out), where


def find_quote(quote: str, text: str) -> str | None:
    """The span of TEXT that QUOTE copies, tolerating case, whitespace, curly quotes and
    dashes, and edge punctuation (a trailing full stop, surrounding quote marks, "..."),
    or None. Every word must still be in the text, in order, adjacent: strict grounding."""
    needle, _ = _folded(quote.strip(_QUOTE_EDGE).replace("...", "").strip(_QUOTE_EDGE))
    needle = needle.strip()
    if not needle:
        return None
    hay, where = _folded(text)
    at = hay.find(needle)
    if at < 0:
        return None
    return squash(text[where[at] : where[at + len(needle) - 1] + 1])


_ARTICLE = re.compile(r"^(the|a|an)\s+", re.I)
_POSSESSIVE = re.compile(r"['\u2019]s$", re.I)
_EDGE_PUNCT = "\"'`\u2018\u2019\u201c\u201d.,;:!?()[]{}<>*-_ "


def entity_key(name: str) -> str:
    """Case, whitespace, quotes, a leading article and a possessive removed."""
    text = squash(name).strip(_EDGE_PUNCT)
    text = _POSSESSIVE.sub("", text)
    text = _ARTICLE.sub("", text)
    return squash(text).casefold()


class EntityIndex:
    """The entities of one document: each name maps to one canonical surface form.

    The first surface form seen of a key is canonical. Simple aliases resolve to a
    known multi-word entity when they are unambiguous: a last name ("Curie" -> "Marie
    Curie") or initials ("UN" -> "United Nations").
    """

    def __init__(self) -> None:
        self._canonical: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._canonical)

    def add(self, name: str) -> str | None:
        """Register a name; returns its canonical form (None for an empty name)."""
        found = self.lookup(name)
        if found is not None:
            return found
        key = entity_key(name)
        if not key:
            return None
        surface = squash(name).strip(_EDGE_PUNCT)
        surface = _ARTICLE.sub("", _POSSESSIVE.sub("", surface)).strip()
        self._canonical[key] = surface
        return surface

    def lookup(self, name: str) -> str | None:
        key = entity_key(name)
        if not key:
            return None
        if key in self._canonical:
            return self._canonical[key]
        return self._alias(key, squash(name).strip(_EDGE_PUNCT))

    def _alias(self, key: str, surface: str) -> str | None:
        if " " in key:
            return None
        multi = [(k, v) for k, v in self._canonical.items() if " " in k]
        by_last = [v for k, v in multi if k.split()[-1] == key]
        if len(by_last) == 1:
            return by_last[0]
        if surface.isupper() and len(key) >= 2:
            by_initials = [v for k, v in multi if "".join(w[0] for w in k.split()) == key]
            if len(by_initials) == 1:
                return by_initials[0]
        return None
