"""Near-duplicate detection: MinHash LSH over word bigrams, in numpy.

A weak teacher repeats itself with small edits; two stories that differ by a word teach
the student nothing new and make one class look bigger than it is.

The signatures, bands and verdicts are datasketch's (MinHash, scheme "affine32", seed 1;
MinHashLSH with its default weights), bit for bit (tests/test_filters.py compares them),
without its import: datasketch loads scipy, redis and aiohttp clients, over a second of
`synthkd generate`'s start-up (issue 17). Signatures are computed for many texts at once.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterable, Sequence

import numpy as np

NUM_PERM = 128
"""MinHash permutations: the Jaccard estimate's standard error is about 1/sqrt(NUM_PERM)."""
_SEED = 1
_MAX_HASH = np.uint32(0xFFFFFFFF)
_CHUNK = 32768
"""Shingles per numpy step (a chunk x NUM_PERM uint32 matrix: 16 MB)."""


def shingles(normalised: str) -> set[bytes]:
    """Word bigrams (single words for one-word texts) of an already normalised text."""
    words = normalised.split()
    if len(words) < 2:
        return {w.encode("utf-8") for w in words}
    return {f"{a} {b}".encode() for a, b in zip(words, words[1:], strict=False)}


@functools.cache
def _permutations(num_perm: int, seed: int = _SEED) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's affine32 permutations h -> a * h + b mod 2^32 (a odd)."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


def _fmix32(hv: np.ndarray) -> np.ndarray:
    """The MurmurHash3 finalizer (datasketch's one-shot pre-mix of each shingle hash)."""
    hv = hv ^ (hv >> np.uint32(16))
    hv = hv * np.uint32(0x85EBCA6B)
    hv = hv ^ (hv >> np.uint32(13))
    hv = hv * np.uint32(0xC2B2AE35)
    return hv ^ (hv >> np.uint32(16))


def signatures(texts: Sequence[str], num_perm: int = NUM_PERM) -> np.ndarray:
    """MinHash signatures of normalised texts: a (len(texts), num_perm) uint32 array."""
    a, b = _permutations(num_perm)
    out = np.full((len(texts), num_perm), _MAX_HASH, dtype=np.uint32)
    sha1 = hashlib.sha1
    start = 0
    while start < len(texts):
        counts: list[int] = []
        ids: dict[bytes, int] = {}  # a shingle shared by texts is hashed and permuted once
        owned: list[int] = []
        stop = start
        while stop < len(texts) and (stop == start or len(owned) < _CHUNK):
            found = shingles(texts[stop])
            counts.append(len(found))
            owned.extend([ids.setdefault(x, len(ids)) for x in found])
            stop += 1
        if ids:
            digests = b"".join([sha1(x).digest()[:4] for x in ids])  # datasketch's sha1_hash32
            hv = _fmix32(np.frombuffer(digests, dtype="<u4").astype(np.uint32))
            permuted = (hv[:, None] * a + b)[owned]  # uint32: wraparound is the modulo 2^32
            sizes = np.asarray(counts)
            rows = np.flatnonzero(sizes) + start
            firsts = (np.cumsum(sizes) - sizes)[sizes > 0]
            out[rows] = np.minimum.reduceat(permuted, firsts, axis=0)
        start = stop
    return out


@functools.cache
def lsh_params(threshold: float, num_perm: int = NUM_PERM) -> tuple[int, int]:
    """(bands, rows per band) minimising false positives + false negatives around
    `threshold`, equally weighted: datasketch's `_optimal_param`. Its integrands are
    polynomials of degree <= num_perm, so Gauss-Legendre with num_perm/2 + 1 nodes is exact
    (datasketch integrates them with scipy's quad)."""
    nodes, weights = np.polynomial.legendre.leggauss(num_perm // 2 + 1)

    def points(lo: float, hi: float) -> tuple[np.ndarray, float]:
        return (hi - lo) / 2 * nodes + (hi + lo) / 2, (hi - lo) / 2

    low, low_scale = points(0.0, threshold)
    high, high_scale = points(threshold, 1.0)
    best, params = float("inf"), (0, 0)
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            fp = low_scale * float(weights @ (1 - (1 - low ** float(rows)) ** float(bands)))
            fn = high_scale * float(weights @ ((1 - high ** float(rows)) ** float(bands)))
            error = fp * 0.5 + fn * 0.5
            if error < best:
                best, params = error, (bands, rows)
    return params


class MinHash:
    """One text's signature (`hashvalues`), as the index stores and compares it."""

    __slots__ = ("hashvalues",)

    def __init__(self, hashvalues: np.ndarray) -> None:
        self.hashvalues = hashvalues

    def jaccard(self, other: MinHash) -> float:
        """Estimated Jaccard similarity: the share of equal signature slots."""
        same = np.count_nonzero(self.hashvalues == other.hashvalues)
        return float(same) / float(len(self.hashvalues))


class NearDuplicateIndex:
    """An LSH index of kept texts; `add_if_new` keeps a text only if nothing kept is near it.

    `same_group` optionally restricts duplicates to texts of one group (a document KG
    triple is only a duplicate of a triple from the same document).
    """

    def __init__(self, threshold: float, num_perm: int = NUM_PERM) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError("threshold must be in [0.0, 1.0]")
        self.threshold = threshold
        self.num_perm = num_perm
        bands, rows = lsh_params(float(threshold), num_perm)
        if bands < 2:
            raise ValueError("The number of bands are too small (b < 2)")
        self._ranges = [(i * rows, (i + 1) * rows) for i in range(bands)]
        self._tables: list[dict[bytes, list[str]]] = [{} for _ in range(bands)]
        self._hashes: dict[str, MinHash] = {}
        self._groups: dict[str, str] = {}

    def minhash(self, normalised: str) -> MinHash:
        return MinHash(signatures([normalised], self.num_perm)[0])

    def minhashes(self, normalised: Sequence[str]) -> list[MinHash]:
        """`minhash` of many texts at once (one numpy pass: much cheaper per text)."""
        return [MinHash(row) for row in signatures(normalised, self.num_perm)]

    def _bands(self, m: MinHash) -> list[bytes]:
        values = np.asarray(m.hashvalues).astype(np.uint32, copy=False)  # any int dtype
        return [values[start:end].tobytes() for start, end in self._ranges]

    def find(self, m: MinHash, group: str = "") -> str | None:
        """Key of a kept text whose estimated Jaccard with `m` reaches the threshold."""
        checked: set[str] = set()
        for table, band in zip(self._tables, self._bands(m), strict=True):
            for key in table.get(band, ()):
                if key in checked:
                    continue
                checked.add(key)
                if self._groups[key] == group and self._hashes[key].jaccard(m) >= self.threshold:
                    return key
        return None

    def add(self, key: str, m: MinHash, group: str = "") -> None:
        for table, band in zip(self._tables, self._bands(m), strict=True):
            table.setdefault(band, []).append(key)
        self._hashes[key] = m
        self._groups[key] = group

    def add_if_new(self, key: str, normalised: str | MinHash, group: str = "") -> str | None:
        """Insert and return None, or return the key of the near duplicate already kept."""
        m = normalised if isinstance(normalised, MinHash) else self.minhash(normalised)
        twin = self.find(m, group)
        if twin is None:
            self.add(key, m, group)
        return twin

    def __len__(self) -> int:
        return len(self._hashes)


def near_duplicates(
    texts: Sequence[str],
    threshold: float,
    groups: Sequence[str] | None = None,
    existing: Iterable[tuple[str, str]] = (),
    on_item: Callable[[], None] | None = None,
) -> list[int | None]:
    """For each normalised text, the index of an earlier kept near duplicate (-1: one in
    `existing`, given as (text, group) pairs), or None when it is new."""
    index = NearDuplicateIndex(threshold)
    existing = list(existing)
    for i, (m, (_, group)) in enumerate(
        zip(index.minhashes([t for t, _ in existing]), existing, strict=True)
    ):
        index.add(f"e{i}", m, group)
    result: list[int | None] = []
    for i, m in enumerate(index.minhashes(texts)):
        twin = index.add_if_new(f"n{i}", m, groups[i] if groups is not None else "")
        result.append(None if twin is None else (-1 if twin[0] == "e" else int(twin[1:])))
        if on_item is not None:
            on_item()
    return result
