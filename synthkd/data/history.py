"""Commit metadata and what it tells: versions with messages, and diffs between versions.

A version's message is the commit's `userMetadata` (what Spark's DESCRIBE HISTORY
shows); synthkd's own keys (round, rows, critic threshold...) sit beside it as
`synthkd.<key>`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties

from synthkd.errors import SynthkdError

MESSAGE_KEY = "userMetadata"
PREFIX = "synthkd."


@dataclass(frozen=True)
class CorpusVersion:
    """One committed version of a corpus, as `synthkd corpus versions` lists it."""

    version: int
    timestamp: dt.datetime
    """Commit time, UTC."""
    operation: str
    """Delta operation: CREATE TABLE, WRITE, MERGE, DELETE..."""
    message: str
    """What produced it (the commit's userMetadata)."""
    rows: int
    """Rows in the table at this version."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """synthkd.* keys of the commit (round, stage, critic threshold...)."""


@dataclass(frozen=True)
class CorpusDiff:
    """What changed between two versions, counted by label / relation / predicate."""

    v1: int
    v2: int
    group_column: str
    added: list[str]
    """Ids present in v2 and not in v1."""
    removed: list[str]
    """Ids present in v1 and not in v2."""
    rescored: list[str]
    """Ids in both whose critic_score, critic_version or accepted changed."""
    counts_v1: dict[str, int]
    counts_v2: dict[str, int]
    added_counts: dict[str, int]
    removed_counts: dict[str, int]


def sorted_counts(values: Iterable[Any]) -> dict[str, int]:
    counts = Counter("" if v is None else str(v) for v in values)
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def commit_properties(message: str, metadata: Mapping[str, Any]) -> CommitProperties:
    """A commit's message and synthkd metadata; every version must say what produced it."""
    if not isinstance(message, str) or not message.strip():
        raise SynthkdError("every corpus version needs a commit message saying what produced it")
    custom = {MESSAGE_KEY: " ".join(message.split())}
    for key, value in metadata.items():
        custom[f"{PREFIX}{key}"] = json.dumps(value, sort_keys=True, default=str)
    return CommitProperties(custom_metadata=custom)


def _decode(value: Any) -> Any:
    """A metadata value as it was given. The log holds them as JSON text (deltalake 1.1
    takes only strings), so a round comes back as 3 and a recipe named "3" as "3"; a value
    already typed, or not JSON, is kept as it is."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def version_from_history(entry: Mapping[str, Any], rows: int) -> CorpusVersion:
    """One entry of DeltaTable.history() as a CorpusVersion."""
    stamp = dt.datetime.fromtimestamp(entry["timestamp"] / 1000, tz=dt.timezone.utc)
    extras = {k[len(PREFIX) :]: _decode(v) for k, v in entry.items() if k.startswith(PREFIX)}
    return CorpusVersion(
        version=entry["version"],
        timestamp=stamp,
        operation=str(entry.get("operation", "")),
        message=str(entry.get(MESSAGE_KEY, "")),
        rows=rows,
        metadata=extras,
    )


def diff_tables(old: pa.Table, new: pa.Table, group: str, v1: int, v2: int) -> CorpusDiff:
    """Added, removed and rescored ids between two reads (id, group, critic columns)."""
    added_mask = pc.invert(pc.is_in(new.column("id"), value_set=old.column("id")))
    removed_mask = pc.invert(pc.is_in(old.column("id"), value_set=new.column("id")))
    added, removed = new.filter(added_mask), old.filter(removed_mask)
    joined = old.join(new, "id", join_type="inner", right_suffix="_new")
    changed = None
    for name in ("critic_score", "critic_version", "accepted"):
        differs = pc.fill_null(pc.not_equal(joined[name], joined[f"{name}_new"]), True)
        both_null = pc.and_(pc.is_null(joined[name]), pc.is_null(joined[f"{name}_new"]))
        differs = pc.and_(differs, pc.invert(both_null))
        changed = differs if changed is None else pc.or_(changed, differs)
    rescored = joined.filter(changed) if joined.num_rows else joined
    return CorpusDiff(
        v1=v1,
        v2=v2,
        group_column=group,
        added=added.column("id").to_pylist(),
        removed=removed.column("id").to_pylist(),
        rescored=rescored.column("id").to_pylist(),
        counts_v1=sorted_counts(old.column(group).to_pylist()),
        counts_v2=sorted_counts(new.column(group).to_pylist()),
        added_counts=sorted_counts(added.column(group).to_pylist()),
        removed_counts=sorted_counts(removed.column(group).to_pylist()),
    )
