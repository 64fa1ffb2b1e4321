"""The ATOMIC relations and the natural-language phrase each one reads as.

One table for every room: the commonsense task's default prompt templates, the critic's
sentence for a triple and the generative student's prompt all say a relation the same
way, so what the teacher was asked, what the critic judged and what the student learnt
line up. A relation not in the table reads as its own name.
"""

from __future__ import annotations

RELATION_PHRASES: dict[str, str] = {
    "xNeed": "Before that, PersonX needed",
    "xIntent": "PersonX did this because PersonX wanted",
    "xWant": "After that, PersonX wants",
    "xReact": "As a result, PersonX feels",
    "xEffect": "As a result, PersonX",
    "xAttr": "PersonX is seen as",
    "xReason": "PersonX did this because",
    "oWant": "As a result, others want",
    "oReact": "As a result, others feel",
    "oEffect": "As a result, others",
    "HinderedBy": "This would not happen if",
    "isAfter": "This happens after",
    "isBefore": "This happens before",
    "Causes": "This causes",
    "isFilledBy": "The blank can be filled by",
}
"""Relation -> the phrase its tail completes, as a sentence start ("<head>. <phrase> <tail>")."""

DEFAULT_RELATIONS: tuple[str, ...] = (
    "xNeed",
    "xIntent",
    "xWant",
    "xReact",
    "xEffect",
    "xAttr",
    "HinderedBy",
)
"""The relations a commonsense recipe asks for when it names none (Symbolic KD's set)."""


def relation_phrase(relation: str, *, mid_sentence: bool = False) -> str:
    """The phrase of `relation`; mid-sentence, its first word is lower-cased (not PersonX)."""
    phrase = RELATION_PHRASES.get(relation, relation)
    if mid_sentence and phrase and not phrase.startswith("PersonX") and phrase[1:2].islower():
        return phrase[0].lower() + phrase[1:]
    return phrase


__all__ = ["DEFAULT_RELATIONS", "RELATION_PHRASES", "relation_phrase"]
