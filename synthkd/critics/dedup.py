"""Near-duplicate detection with datasketch MinHash LSH over word bigrams.

A weak teacher repeats itself with small edits; two stories that differ by a word teach
the student nothing new and make one class look bigger than it is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from datasketch import MinHash, MinHashLSH

NUM_PERM = 128
"""MinHash permutations: the Jaccard estimate's standard error is about 1/sqrt(NUM_PERM)."""
_SEED = 1


def shingles(normalised: str) -> set[bytes]:
    """Word bigrams (single words for one-word texts) of an already normalised text."""
    words = normalised.split()
    if len(words) < 2:
        return {w.encode("utf-8") for w in words}
    return {f"{a} {b}".encode() for a, b in zip(words, words[1:], strict=False)}


class NearDuplicateIndex:
    """An LSH index of kept texts; `add_if_new` keeps a text only if nothing kept is near it.

    `same_group` optionally restricts duplicates to texts of one group (a document KG
    triple is only a duplicate of a triple from the same document).
    """

    def __init__(self, threshold: float, num_perm: int = NUM_PERM) -> None:
        self.threshold = threshold
        self._lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self._template = MinHash(num_perm=num_perm, seed=_SEED)
        self._hashes: dict[str, MinHash] = {}
        self._groups: dict[str, str] = {}

    def minhash(self, normalised: str) -> MinHash:
        m = self._template.copy()  # shares the permutations: no per-record set-up
        m.update_batch(list(shingles(normalised)))
        return m

    def find(self, m: MinHash, group: str = "") -> str | None:
        """Key of a kept text whose estimated Jaccard with `m` reaches the threshold."""
        for key in self._lsh.query(m):
            if self._groups[key] != group:
                continue
            if self._hashes[key].jaccard(m) >= self.threshold:
                return key
        return None

    def add(self, key: str, m: MinHash, group: str = "") -> None:
        self._lsh.insert(key, m, check_duplication=False)
        self._hashes[key] = m
        self._groups[key] = group

    def add_if_new(self, key: str, normalised: str, group: str = "") -> str | None:
        """Insert and return None, or return the key of the near duplicate already kept."""
        m = self.minhash(normalised)
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
    for i, (text, group) in enumerate(existing):
        index.add(f"e{i}", index.minhash(text), group)
    result: list[int | None] = []
    for i, text in enumerate(texts):
        twin = index.add_if_new(f"n{i}", text, groups[i] if groups is not None else "")
        result.append(None if twin is None else (-1 if twin[0] == "e" else int(twin[1:])))
        if on_item is not None:
            on_item()
    return result
