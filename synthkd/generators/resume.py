"""What a resumed generation must not redo: samples already turned into rows.

A sample rejected with a teacher error (the teacher never answered it: errors are not
cached) is not done: a rerun asks it again, and once it has its new row the old
teacher-error reject goes (`prune_retried`), so each sample ends as one outcome.
"""

from __future__ import annotations

from typing import Any

import pyarrow.compute as pc

TEACHER_ERROR = "teacher_error"
"""Reason prefix of a sample the teacher did not answer (after retries)."""


class DoneSamples(dict):
    """sample_key -> groups of the records it produced; `retry`: keys to ask again."""

    def __init__(self) -> None:
        super().__init__()
        self.retry: set[str] = set()


def done_samples(corpus: Any, rejects: Any, group_column: str) -> DoneSamples:
    """sample_key -> groups of the records it produced ([] for a sample only rejected).

    `corpus` and `rejects` are `synthkd.data.CorpusStore`s (or None for a fresh run).
    Samples whose only rows are teacher-error rejects are listed with [] and in `retry`.
    """
    done = DoneSamples()
    answered: set[str] = set()
    if rejects is not None:
        table = rejects.read(columns=["sample_key", "reason"])
        keys = table.column("sample_key").to_pylist()
        reasons = table.column("reason").to_pylist()
        for key, reason in zip(keys, reasons, strict=True):
            done.setdefault(key, [])
            if (reason or "").startswith(TEACHER_ERROR):
                done.retry.add(key)
            else:
                answered.add(key)
    if corpus is not None:
        table = corpus.read(columns=["sample_key", group_column])
        keys = table.column("sample_key").to_pylist()
        groups = table.column(group_column).to_pylist()
        for key, group in zip(keys, groups, strict=True):
            done.setdefault(key, []).append(group)
            answered.add(key)
    done.retry -= answered
    return done


def prune_retried(corpus: Any, rejects: Any, recipe: str) -> int:
    """Delete teacher-error rejects of samples that now have another row; returns how many.

    A sample asked again after a teacher error ends with its new outcome only; one that
    failed again keeps its newest teacher-error reject. Safe to run at any time: it only
    removes a reject another row of the same sample supersedes.
    """
    table = rejects.read(columns=["id", "sample_key", "reason", "created_at"])
    if table.num_rows == 0:
        return 0
    is_error = pc.starts_with(pc.fill_null(table.column("reason"), ""), TEACHER_ERROR)
    errors = table.filter(is_error)
    if errors.num_rows == 0:
        return 0
    answered = corpus.sample_keys() | set(
        table.filter(pc.invert(is_error)).column("sample_key").to_pylist()
    )
    newest: dict[str, tuple[Any, str]] = {}
    stale: list[str] = []
    for row in errors.select(["id", "sample_key", "created_at"]).to_pylist():
        key = row["sample_key"]
        if key in answered:
            stale.append(row["id"])
            continue
        mark = (row["created_at"], row["id"])
        kept = newest.get(key)
        if kept is None:
            newest[key] = mark
        else:
            stale.append(min(kept, mark)[1])
            newest[key] = max(kept, mark)
    if stale:
        rejects.delete(
            stale,
            f"remove {len(stale)} teacher-error rejects superseded by a retry",
            {"recipe": recipe, "stage": "retry"},
        )
    return len(stale)
