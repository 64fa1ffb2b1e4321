"""What a resumed generation must not redo: samples already turned into rows."""

from __future__ import annotations

from typing import Any


def done_samples(corpus: Any, rejects: Any, group_column: str) -> dict[str, list[str]]:
    """sample_key -> groups of the records it produced ([] for a sample only rejected).

    `corpus` and `rejects` are `synthkd.data.CorpusStore`s (or None for a fresh run).
    """
    done: dict[str, list[str]] = {}
    if rejects is not None:
        for key in rejects.sample_keys():
            done.setdefault(key, [])
    if corpus is not None:
        table = corpus.read(columns=["sample_key", group_column])
        keys = table.column("sample_key").to_pylist()
        groups = table.column(group_column).to_pylist()
        for key, group in zip(keys, groups, strict=True):
            done.setdefault(key, []).append(group)
    return done
