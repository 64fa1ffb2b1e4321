"""Held-out scores of a triples student (or a teacher's triples) against gold triples.

Document KG, one step per chunk (Distill-SynthKG): the student reads a chunk and writes
all its triples, "s | p | o ; s | p | o". Predicted and gold triples are compared after
one stated normalisation (`KG_NORMALISATION`); each gold triple matches at most one
prediction. Entity-pair scores ignore the predicate, so a right fact with a differently
worded predicate still shows. Commonsense (COMET): the student completes
"head <relation phrase> [GEN]" with a tail, scored by exact match and token-F1 against
the gold tails of that (head, relation).
"""

from __future__ import annotations

import re
import time
from collections import Counter
from typing import Any

from synthkd.training._triples import (
    FIELD_SEPARATOR,
    GEN,
    TRIPLE_SEPARATOR,
    commonsense_prompt,
    match_scores,
)

KG_NORMALISATION = (
    "subject and object: case, whitespace, edge punctuation and quotes, a leading article "
    "(the/a/an) and a possessive 's ignored; predicate: lower case, underscores and hyphens "
    "as spaces, auxiliaries and articles (is, was, are, were, be, been, has, had, have, the, "
    "a, an) dropped; a triple matches when all three agree"
)
"""How `kg_scores` decides that a predicted triple is a gold one (reported beside the scores)."""

KG_MAX_NEW_TOKENS = 160
_ARTICLE = re.compile(r"^(the|a|an)\s+")
_POSSESSIVE = re.compile(r"['\u2019]s$")
_EDGE = "\"'`\u2018\u2019\u201c\u201d.,;:!?()[]{}<>*-_ "
_AUX = {"is", "was", "are", "were", "be", "been", "has", "had", "have", "the", "a", "an"}

Triple = tuple[str, str, str]


def kg_prompt(chunk: str) -> str:
    """The one-step extractor's prompt: the chunk, then [GEN] (as the student is trained)."""
    return f"{chunk.strip()} {GEN}"


def entity_key(name: str) -> str:
    text = " ".join(name.split()).strip(_EDGE).casefold()
    text = _ARTICLE.sub("", _POSSESSIVE.sub("", text))
    return " ".join(text.split())


def predicate_key(predicate: str) -> str:
    words = re.sub(r"[_\-]+", " ", predicate.casefold()).split()
    return " ".join(w.strip(_EDGE) for w in words if w.strip(_EDGE) not in _AUX)


def triple_key(triple: Triple) -> Triple:
    s, p, o = triple
    return entity_key(s), predicate_key(p), entity_key(o)


def render_triples(triples: list[Triple]) -> str:
    """Triples as the student writes them (the training target)."""
    return TRIPLE_SEPARATOR.join(FIELD_SEPARATOR.join(t) for t in triples)


def parse_triples(text: str) -> list[Triple]:
    """The student's "s | p | o ; ..." text as triples; malformed pieces are dropped."""
    found: list[Triple] = []
    seen: set[Triple] = set()
    for piece in text.split(";"):
        parts = [p.strip() for p in piece.split("|")]
        if len(parts) != 3 or not all(parts):
            continue
        triple = (parts[0], parts[1], parts[2])
        if triple_key(triple) not in seen:
            seen.add(triple_key(triple))
            found.append(triple)
    return found


def _prf(hits: int, predicted: int, gold: int) -> tuple[float, float, float]:
    precision = hits / predicted if predicted else 0.0
    recall = hits / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def _matches(pred: list[Any], gold: list[Any]) -> list[bool]:
    """Which gold items a prediction matched (each prediction used once)."""
    left = Counter(pred)
    hit = []
    for g in gold:
        hit.append(left[g] > 0)
        if left[g] > 0:
            left[g] -= 1
    return hit


def kg_scores(predicted: list[list[Triple]], gold: list[list[Triple]]) -> dict[str, Any]:
    """Micro precision, recall and F1 over chunks, for triples and for entity pairs, and
    per gold relation the recall (which relations the student misses)."""
    counts = Counter()
    by_relation: dict[str, list[int]] = {}
    missed: list[int] = []
    for pred, ref in zip(predicted, gold, strict=True):
        pk, gk = [triple_key(t) for t in pred], [triple_key(t) for t in ref]
        hit = _matches(pk, gk)
        pair_hit = _matches([(s, o) for s, _, o in pk], [(s, o) for s, _, o in gk])
        counts.update(hits=sum(hit), pair_hits=sum(pair_hit), predicted=len(pk), gold=len(gk))
        missed.append(len(gk) - sum(hit))
        for (_, relation, _), ok in zip(gk, hit, strict=True):
            slot = by_relation.setdefault(relation.replace(" ", "_"), [0, 0])
            slot[0] += int(ok)
            slot[1] += 1
    p, r, f = _prf(counts["hits"], counts["predicted"], counts["gold"])
    pp, pr, pf = _prf(counts["pair_hits"], counts["predicted"], counts["gold"])
    return {
        "precision": p,
        "recall": r,
        "f1": f,
        "pair_precision": pp,
        "pair_recall": pr,
        "pair_f1": pf,
        "predicted_triples": counts["predicted"],
        "gold_triples": counts["gold"],
        "per_relation_recall": {k: v[0] / v[1] for k, v in sorted(by_relation.items())},
        "missed_per_item": missed,
        "normalisation": KG_NORMALISATION,
    }


def evaluate_kg(student: Any, items: list[dict[str, Any]], *, batch_size: int = 4) -> dict:
    """The student on held-out chunks: items are {"chunk", "triples": [(s, p, o), ...]}."""
    started = time.perf_counter()
    texts = student.generate(
        [kg_prompt(item["chunk"]) for item in items],
        max_new_tokens=KG_MAX_NEW_TOKENS,
        batch_size=batch_size,
    )
    seconds = time.perf_counter() - started
    predicted = [parse_triples(t) for t in texts]
    scores = kg_scores(predicted, [list(map(tuple, item["triples"])) for item in items])
    n = sum(len(p) for p in predicted)
    scores.update(
        seconds=seconds,
        triples_per_s=n / seconds if seconds > 0 else 0.0,
        chunks_per_s=len(items) / seconds if seconds > 0 else 0.0,
        samples=[
            {"chunk": item["chunk"][:160], "generated": text, "gold": item["triples"][:4]}
            for item, text in list(zip(items, texts, strict=True))[:3]
        ],
    )
    return scores


def tail_scores(predicted: list[str], items: list[dict[str, Any]]) -> dict[str, Any]:
    """Exact match and token-F1 of tails against each item's gold tails, overall and per relation."""
    per: dict[str, list[tuple[float, float]]] = {}
    scores = []
    for tail, item in zip(predicted, items, strict=True):
        pair = match_scores(tail, item["tails"])
        scores.append(pair)
        per.setdefault(item["relation"], []).append(pair)
    n = max(1, len(scores))
    return {
        "exact_match": sum(s[0] for s in scores) / n,
        "token_f1": sum(s[1] for s in scores) / n,
        "per_relation_token_f1": {r: sum(s[1] for s in v) / len(v) for r, v in sorted(per.items())},
    }


def evaluate_tails(student: Any, items: list[dict[str, Any]], *, batch_size: int = 16) -> dict:
    """The student on held-out (head, relation) pairs: items are {"head", "relation", "tails"}."""
    started = time.perf_counter()
    predicted = student.generate(
        [commonsense_prompt(i["head"], i["relation"]) for i in items],
        max_new_tokens=16,
        batch_size=batch_size,
    )
    seconds = time.perf_counter() - started
    result = tail_scores(predicted, items)
    result.update(
        predictions=predicted,
        seconds=seconds,
        triples_per_s=len(items) / seconds if seconds > 0 else 0.0,
    )
    return result
