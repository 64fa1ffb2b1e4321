"""The filter pass split in two, so a cluster can do the costly half.

`filter_signatures` (per partition, on any worker) runs the rule filters and computes each
surviving row's normalised key and MinHash signature: the work that grows with the corpus.
`dedup_with_signatures` (once, in order) replays `apply_filters`' exact and near-duplicate
pass on those signatures: an LSH insert and query per row. Together they give exactly what
`apply_filters` gives on the whole table (tests/test_dask_stages.py checks it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa

from synthkd.critics.config import CriticConfig
from synthkd.critics.dedup import NearDuplicateIndex
from synthkd.critics.filters import FilterResult, _dup_group, _Rules, to_reject
from synthkd.critics.records import as_rows, dedup_text, normalise


class Signatures(NamedTuple):
    """One partition's rows after the rules: reason (None: passed), key, group, MinHash."""

    reasons: list[str | None]
    keys: list[str]
    groups: list[str]
    hashes: np.ndarray
    """(rows, num_perm) uint64; rows that failed a rule have zeros."""


def filter_signatures(
    rows: pa.Table | Iterable[Mapping[str, Any]],
    config: CriticConfig,
    kind: str,
    echo_of: Iterable[str] = (),
    *,
    rules: bool = True,
) -> Signatures:
    """Rules, keys and MinHash signatures of `rows` (rules=False: earlier corpus rows)."""
    rows = as_rows(rows)
    checker = _Rules(config, kind, echo_of) if rules else None
    index = NearDuplicateIndex(config.near_duplicate_threshold)
    reasons, keys, groups = [], [], []
    hashes = np.zeros((len(rows), index.minhash("").hashvalues.shape[0]), dtype=np.uint64)
    for i, row in enumerate(rows):
        reason = checker.first_failure(row) if checker is not None else None
        reasons.append(reason)
        key = normalise(dedup_text(row, kind)) if reason is None else ""
        keys.append(key)
        groups.append(_dup_group(row, kind))
        if reason is None:
            hashes[i] = index.minhash(key).hashvalues
    return Signatures(reasons, keys, groups, hashes)


def concat_signatures(parts: Sequence[Signatures]) -> Signatures:
    """Partitions' signatures, in partition order."""
    if not parts:
        return Signatures([], [], [], np.zeros((0, 0), dtype=np.uint64))
    return Signatures(
        [r for p in parts for r in p.reasons],
        [k for p in parts for k in p.keys],
        [g for p in parts for g in p.groups],
        np.concatenate([p.hashes for p in parts]),
    )


def dedup_with_signatures(
    rows: pa.Table | Iterable[Mapping[str, Any]],
    signatures: Signatures,
    existing: Signatures | None,
    config: CriticConfig,
    kind: str,
) -> FilterResult:
    """`apply_filters`' verdicts from precomputed signatures: kept rows and rejects."""
    rows = as_rows(rows)
    index = NearDuplicateIndex(config.near_duplicate_threshold)

    def minhash(values: np.ndarray) -> Any:
        m = index.minhash("")
        m.hashvalues = values.copy()
        return m

    seen: set[str] = set()
    if existing is not None:
        for i, (key, group) in enumerate(zip(existing.keys, existing.groups, strict=True)):
            seen.add(key)
            index.add(f"e{i}", minhash(existing.hashes[i]), group)
    kept, rejects = [], []
    for i, row in enumerate(rows):
        reason = signatures.reasons[i]
        if reason is None:
            key = signatures.keys[i]
            if key in seen:
                reason = "exact_duplicate"
            else:
                m = minhash(signatures.hashes[i])
                if index.find(m, signatures.groups[i]) is not None:
                    reason = "near_duplicate"
                else:
                    index.add(f"n{i}", m, signatures.groups[i])
                    seen.add(key)
        if reason is None:
            kept.append(row)
        else:
            rejects.append(to_reject(row, kind, reason, "filter"))
    return FilterResult(kept, rejects)


def fill_embeddings(cache: Any, texts: Sequence[str], vectors: np.ndarray) -> None:
    """Put vectors computed elsewhere (a cluster's workers) into an `EmbeddingCache`."""
    for text, vector in zip(texts, vectors, strict=True):
        cache._vectors.setdefault(text, np.asarray(vector, dtype=np.float32))


__all__ = [
    "Signatures",
    "concat_signatures",
    "dedup_with_signatures",
    "fill_embeddings",
    "filter_signatures",
]
