"""A run folder's two tables side by side: `corpus/` (accepted records) and `rejects/`.

Keeping them together is what lets a resumed run skip every sample it already turned
into a record or a reject, and lets a card report acceptance per round.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from synthkd.data.storage import storage_options as default_options
from synthkd.data.store import CorpusStore, _normalize, is_table
from synthkd.errors import SynthkdError

CORPUS_DIR = "corpus"
REJECTS_DIR = "rejects"


@dataclass(frozen=True)
class RoundAcceptance:
    """How much of one round's teacher output survived."""

    round: int
    accepted: int
    """Records in the corpus from this round (minus any marked accepted=False)."""
    rejected: int
    """Rejects from this round, every stage."""

    @property
    def rate(self) -> float:
        total = self.accepted + self.rejected
        return self.accepted / total if total else 0.0


def _join(root: str, name: str) -> str:
    return f"{root.rstrip('/')}/{name}" if "://" in root else str(Path(root) / name)


class RunStore:
    """`corpus/` and `rejects/` of one run folder (a local path or URI)."""

    def __init__(self, corpus: CorpusStore, rejects: CorpusStore | None):
        self.corpus = corpus
        self.rejects = rejects

    @classmethod
    def create(
        cls, run_dir: str | Path, kind: str, storage_options: Mapping[str, str] | None = None
    ) -> RunStore:
        """Create both tables (or open them when a previous run made them)."""
        root = _normalize(run_dir)
        if storage_options is None:
            storage_options = default_options(root)
        corpus = CorpusStore.create(_join(root, CORPUS_DIR), kind, storage_options=storage_options)
        rejects = CorpusStore.create(
            _join(root, REJECTS_DIR), kind, rejects=True, storage_options=storage_options
        )
        return cls(corpus, rejects)

    @classmethod
    def open(cls, path: str | Path, storage_options: Mapping[str, str] | None = None) -> RunStore:
        """Open a run folder, or a corpus table directly (its `rejects/` sibling if any)."""
        target = _normalize(path)
        if storage_options is None:  # an object store: the environment's credentials
            storage_options = default_options(target)
        options = dict(storage_options) if storage_options else None
        if is_table(target, options):
            corpus = CorpusStore(target, options)
            if corpus.is_rejects:
                raise SynthkdError(f"{path} is a rejects table, not a corpus")
            parent = target.rstrip("/").rsplit("/", 1)[0]
            sibling = _join(parent, REJECTS_DIR)
        elif is_table(_join(target, CORPUS_DIR), options):
            corpus = CorpusStore(_join(target, CORPUS_DIR), options)
            sibling = _join(target, REJECTS_DIR)
        else:
            raise SynthkdError(
                f"not a corpus: {path} (no Delta table there, and no {CORPUS_DIR}/ table inside)"
            )
        rejects = None
        if sibling != target and is_table(sibling, options):
            candidate = CorpusStore(sibling, options)
            if candidate.is_rejects and candidate.kind == corpus.kind:
                rejects = candidate
        return cls(corpus, rejects)

    def done_sample_keys(self) -> set[str]:
        """Samples already stored as a record or a reject: a resumed run skips them."""
        keys = self.corpus.sample_keys()
        if self.rejects is not None:
            keys |= self.rejects.sample_keys()
        return keys

    def acceptance(self, version: int | None = None) -> list[RoundAcceptance]:
        """Accepted vs rejected per round (corpus at `version`, rejects at their latest)."""
        corpus = self.corpus.read(version, ["round", "accepted"])
        rejects = self.rejects.read(columns=["round"]) if self.rejects is not None else None
        return acceptance_by_round(corpus, rejects)


def acceptance_by_round(corpus: pa.Table, rejects: pa.Table | None) -> list[RoundAcceptance]:
    """Per-round acceptance from a corpus (round, accepted) and a rejects (round) table."""
    accepted_mask = pc.fill_null(corpus.column("accepted"), True)
    kept = corpus.filter(accepted_mask).column("round").to_pylist()
    dropped = corpus.filter(pc.invert(accepted_mask)).column("round").to_pylist()
    rejected = (rejects.column("round").to_pylist() if rejects is not None else []) + dropped
    kept_counts, rejected_counts = Counter(kept), Counter(rejected)
    rounds = sorted(set(kept_counts) | set(rejected_counts))
    return [RoundAcceptance(r, kept_counts[r], rejected_counts[r]) for r in rounds]
