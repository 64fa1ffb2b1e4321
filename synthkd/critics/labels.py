"""Where acceptability labels come from: a human label file, automatic labels (gold seeds
as positives, corrupted seeds as negatives), or the label evidence (generated records it
confirmed as positives, asked-for labels it contradicted as negatives). The LLM judge is in
judge.py and the terminal annotation loop in annotate.py; all of them produce a `LabelSet`.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from synthkd.critics.records import Row, as_rows, kind_of
from synthkd.data import RELATION_PHRASES, read_rows
from synthkd.data.schemas import CONTENT_FIELDS, IDENTITY_FIELDS, record_id
from synthkd.errors import SynthkdError

SOURCES = ("human", "judge", "auto", "evidence")
"""Label sources, most trusted first: on the same record the earlier one wins."""


@dataclass
class CriticLabel:
    """One record judged acceptable (1) or not (0), and by whom."""

    row: Row
    """The record (at least its content fields; an `id` when it came from a corpus)."""
    accept: int
    source: str
    """"human", "judge", "auto" (seeds and their corruptions) or "evidence"."""
    rationale: str | None = None
    """The judge's reason, or which corruption made an automatic negative."""


@dataclass
class LabelSet:
    """Labels for training a critic, with counts of what could not be used and why."""

    labels: list[CriticLabel] = field(default_factory=list)
    dropped: Counter = field(default_factory=Counter)
    """e.g. {"human: matches no record": 3, "judge: unparsed answer": 2}."""

    def __add__(self, other: LabelSet) -> LabelSet:
        return LabelSet(self.labels + other.labels, self.dropped + other.dropped)

    def __len__(self) -> int:
        return len(self.labels)

    def counts(self) -> dict[str, dict[str, int]]:
        """{source: {"accept": n, "reject": n}} for the critic card."""
        out: dict[str, dict[str, int]] = {}
        for label in self.labels:
            side = "accept" if label.accept else "reject"
            out.setdefault(label.source, {"accept": 0, "reject": 0})[side] += 1
        return out


def _accept_value(value: Any, line: int, path: Path) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None  # skipped during annotation
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)) and value in (0, 1):
        return int(value)
    if isinstance(value, str) and value.strip().lower() in ("0", "1", "true", "false"):
        return int(value.strip().lower() in ("1", "true"))
    raise SynthkdError(f"{path}: row {line}: accept must be 0 or 1, got {value!r}")


def labels_from_file(
    path: str | Path,
    corpus: pa.Table | Iterable[Mapping[str, Any]] | None = None,
    *,
    kind: str | None = None,
) -> LabelSet:
    """Human labels: rows with `accept` 0/1 and either a record `id` or the record's fields.

    With a corpus, each label is matched to a corpus record (by id, or by the id its
    fields hash to); labels that match nothing are counted in `dropped`, and a file none
    of whose labels match is an error. Without one, the file's own fields are the records.
    The last answer for a record wins; empty answers (skips) are ignored.
    """
    path = Path(path)
    file_rows = read_rows(path, "label file")
    if not any("accept" in row for row in file_rows):
        raise SynthkdError(f"label file {path} has no `accept` column (0 or 1 per record)")
    corpus_rows = as_rows(corpus) if corpus is not None else None
    if corpus_rows is not None and not corpus_rows:
        raise SynthkdError("the corpus to match labels against is empty")
    kind = kind_of(corpus_rows or file_rows, kind)
    by_id = {row["id"]: row for row in corpus_rows} if corpus_rows is not None else None
    identity = IDENTITY_FIELDS[kind]
    answers: dict[str, tuple[Row, int]] = {}
    dropped: Counter = Counter()
    for line, entry in enumerate(file_rows, start=1):
        accept = _accept_value(entry.get("accept"), line, path)
        if accept is None:
            dropped["human: skipped"] += 1
            continue
        rid = entry.get("id")
        if not rid:
            if not all(isinstance(entry.get(name), str) for name in identity):
                fields = ", ".join(identity)
                raise SynthkdError(f"{path}: row {line} has neither an id nor the fields {fields}")
            rid = record_id(kind, {name: entry[name] for name in identity})
        if by_id is not None:
            row = by_id.get(rid)
            if row is None:
                dropped["human: matches no record"] += 1
                continue
        else:
            content = {f.name: entry.get(f.name) for f in CONTENT_FIELDS[kind]}
            missing = [name for name in identity if not isinstance(content[name], str)]
            if missing:
                raise SynthkdError(
                    f"{path}: row {line} is missing {', '.join(missing)} (no corpus to look "
                    "its id up in)"
                )
            row = {"id": rid, "kind": kind, **content}
        answers[rid] = (row, accept)
    if not answers:
        if dropped.get("human: matches no record"):
            raise SynthkdError(f"none of the labels in {path} matches a record of the corpus")
        raise SynthkdError(f"label file {path} has no 0/1 answers")
    labels = [CriticLabel(row, accept, "human") for row, accept in answers.values()]
    return LabelSet(labels, dropped)


def auto_labels(
    seeds: Iterable[Mapping[str, Any]],
    *,
    kind: str | None = None,
    labels: Iterable[str] = (),
    seed: int = 0,
) -> LabelSet:
    """Gold seed records as positives and corrupted copies of them as negatives.

    Only seeds are used, never the validation set (that judges the student) and never
    teacher output (a critic trained on seeds-vs-corpus would learn style, not truth).
    Corruptions: labelled, the label swapped for another; commonsense, the tail moved to
    another head and the relation changed; document KG, the quote taken from another
    chunk and the object taken from another chunk's triple.
    """
    rows = as_rows(seeds)
    if not rows:
        raise SynthkdError("automatic critic labels need seed examples, and there are none")
    kind = kind_of(rows, kind)
    identity = IDENTITY_FIELDS[kind]
    for i, row in enumerate(rows):
        missing = [name for name in identity if not isinstance(row.get(name), str)]
        if missing:
            raise SynthkdError(f"seed {i + 1} is missing {', '.join(missing)}")
    rng = np.random.default_rng(seed)
    positives = [_content(row, kind) for row in rows]
    known = {_full_key(row) for row in positives}
    negatives: list[tuple[Row, str]] = []
    if kind == "labelled":
        names = sorted({row["label"] for row in positives} | set(labels))
        if len(names) < 2:
            raise SynthkdError("automatic critic labels need seeds of at least two labels")
        for row in positives:
            other = [n for n in names if n != row["label"]]
            negatives.append(({**row, "label": str(rng.choice(other))}, "label swapped"))
    elif kind == "commonsense":
        relations = sorted({row["relation"] for row in positives} | set(RELATION_PHRASES))
        for row in positives:
            donors = [r for r in positives if r["head"] != row["head"] and r["tail"] != row["tail"]]
            same_relation = [r for r in donors if r["relation"] == row["relation"]]
            donors = same_relation or donors
            if donors:
                donor = donors[int(rng.integers(len(donors)))]
                negatives.append(({**row, "tail": donor["tail"]}, "tail moved to another head"))
            other = [r for r in relations if r != row["relation"]]
            negatives.append(
                ({**row, "relation": str(rng.choice(other))}, "tail moved to another relation")
            )
    else:
        for row in positives:
            chunk = (row["document_id"], row["chunk_id"])
            donors = [r for r in positives if (r["document_id"], r["chunk_id"]) != chunk]
            if not donors:
                raise SynthkdError("automatic critic labels need seed triples from two chunks")
            quoted = [r for r in donors if r["quote"] != row["quote"]]
            if quoted:
                donor = quoted[int(rng.integers(len(quoted)))]
                negatives.append(({**row, "quote": donor["quote"]}, "quote not in the chunk"))
            objects = [r for r in donors if r["object"] != row["object"]]
            if objects:
                donor = objects[int(rng.integers(len(objects)))]
                negatives.append(({**row, "object": donor["object"]}, "object from another chunk"))
    result = LabelSet([CriticLabel(_with_id(row, kind), 1, "auto", "seed") for row in positives])
    for row, why in negatives:
        if _full_key(row) in known:
            result.dropped["auto: corruption equals a seed"] += 1
            continue
        known.add(_full_key(row))
        digest = hashlib.sha256(repr(_full_key(row)).encode("utf-8")).hexdigest()[:32]
        negative = {"id": f"corrupt-{digest}", "kind": kind, **row}
        result.labels.append(CriticLabel(negative, 0, "auto", why))
    return result


def evidence_labels(
    confirmed: Iterable[Mapping[str, Any]],
    contradicted: Iterable[Mapping[str, Any]],
    *,
    cap: int | None = None,
    seed: int = 0,
) -> LabelSet:
    """Labelled-record critic labels from the label evidence (source "evidence").

    `confirmed`: generated records whose label the evidence confirmed (acceptable);
    `contradicted`: generated texts with the label they were asked for and the evidence
    overruled (relabelled or rejected; that text with that label is a bad record). Each
    side keeps at most `cap` records, sampled with `seed`, so the teacher's texts cannot
    swamp the user's seeds; a record on both sides counts as contradicted.
    """
    rng = np.random.default_rng(seed)

    def unique(rows: Iterable[Mapping[str, Any]]) -> dict[str, Row]:
        out: dict[str, Row] = {}
        for row in rows:
            content = {"text": row.get("text"), "label": row.get("label")}
            if isinstance(content["text"], str) and isinstance(content["label"], str):
                out.setdefault(record_id("labelled", content), content)
        return out

    bad = unique(contradicted)
    good = {rid: row for rid, row in unique(confirmed).items() if rid not in bad}
    result = LabelSet()
    for accept, side, why in ((1, good, "evidence: confirmed"), (0, bad, "evidence: contradicted")):
        ids = sorted(side)
        if cap is not None and len(ids) > cap:
            result.dropped[f"evidence: over the cap ({why.split(': ')[1]})"] += len(ids) - cap
            ids = sorted(rng.choice(ids, size=cap, replace=False).tolist())
        for rid in ids:
            row = {"id": rid, "kind": "labelled", **side[rid]}
            result.labels.append(CriticLabel(row, accept, "evidence", why))
    return result


def _content(row: Mapping[str, Any], kind: str) -> Row:
    return {f.name: row.get(f.name) for f in CONTENT_FIELDS[kind]}


def _full_key(row: Row) -> tuple:
    return tuple(sorted((k, str(v)) for k, v in row.items()))


def _with_id(row: Row, kind: str) -> Row:
    return {"id": record_id(kind, row), "kind": kind, **row}


def seeds_from_file(
    path: str | Path,
    kind: str,
    *,
    text_column: str = "text",
    label_column: str = "label",
) -> list[Row]:
    """Gold seed records from a recipe's seed file (JSONL, CSV or Parquet).

    labelled: `text_column` and `label_column`; commonsense: head, relation, tail;
    document_kg: the few-shot format {chunk, triples: [{subject, predicate, object,
    quote}]}, one chunk per line (or flat rows with those fields).
    """
    path = Path(path)
    entries = read_rows(path, "seed file")
    rows: list[Row] = []
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            raise SynthkdError(f"seed file {path}:{number}: each entry must be an object")
        if kind == "labelled":
            rows.append({"text": entry.get(text_column), "label": entry.get(label_column)})
        elif kind == "commonsense":
            rows.append({k: entry.get(k) for k in ("head", "relation", "tail")})
        elif isinstance(entry.get("triples"), list):
            for triple in entry["triples"]:
                rows.append(
                    {
                        "document_id": str(entry.get("document_id") or f"seed-{path.stem}"),
                        "chunk_id": str(entry.get("chunk_id") or f"seed-{number}"),
                        **{
                            k: (triple or {}).get(k)
                            for k in ("subject", "predicate", "object", "quote")
                        },
                    }
                )
        else:
            rows.append({f.name: entry.get(f.name) for f in CONTENT_FIELDS["document_kg"]})
    return [{"kind": kind, **row} for row in rows]
