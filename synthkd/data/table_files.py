"""The Delta table's files: how they are written, counted, and checked for damage.

A corpus folder is a user's file like any other: a truncated or deleted Parquet file, or
garbage in a `_delta_log` entry, must end as one line naming the file, not a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, urlparse

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import ColumnProperties, DeltaTable, PostCommitHookProperties, WriterProperties

from synthkd.data.conform import one_line
from synthkd.data.schemas import GROUP_COLUMN
from synthkd.errors import SynthkdError


def is_table(uri: str, storage_options: Mapping[str, str] | None = None) -> bool:
    """Whether a Delta table is at `uri`, without side effects: deltalake's own check
    makes a missing local folder as it looks."""
    if "://" not in uri and not (Path(uri) / "_delta_log").is_dir():
        return False
    try:
        options = dict(storage_options) if storage_options else None
        return DeltaTable.is_deltatable(uri, storage_options=options)
    except Exception:  # an unreachable store or an odd path is simply "not a table" here
        return False


def _is_missing_version(exc: Exception) -> bool:
    text = str(exc)
    return "version" in text.lower() and ("not the same" in text or "not found" in text.lower())


KEEP_HISTORY = PostCommitHookProperties(create_checkpoint=True, cleanup_expired_logs=False)
"""Checkpoints, but no log cleanup: delta-rs would drop the log of versions older than 30
days, and every past version of a corpus must stay readable (a scheduled run appends
one a day)."""

_ONE_PER_ROW = (
    "created_at",
    "critic_score",
    "teacher_confidence",
    "head",
    "tail",
    "subject",
    "object",
)
"""Columns whose values rarely repeat: a dictionary page there is pure overhead."""

_FREE_TEXT = ("id", "sample_key", "raw_completion", "text", "soft_labels", "meta", "quote")
"""Hashes and free text: values never repeat and their min/max skips no file either."""

_REPEATING = ColumnProperties(dictionary_enabled=True, statistics_enabled="CHUNK")
WRITER = WriterProperties(
    compression="SNAPPY",
    default_column_properties=_REPEATING,
    column_properties={
        **dict.fromkeys(
            _ONE_PER_ROW, ColumnProperties(dictionary_enabled=False, statistics_enabled="CHUNK")
        ),
        **dict.fromkeys(
            _FREE_TEXT, ColumnProperties(dictionary_enabled=False, statistics_enabled="NONE")
        ),
    },
)
"""Snappy, as pyarrow writes Parquet (deltalake's WriterProperties default is uncompressed:
files 3.6x larger); dictionaries only where values repeat (labels, lineage), which makes
an append about 35% cheaper than dictionary-encoding every id and text; column-chunk
statistics, as pyarrow writes them (page-level ones cost about 10% of an append and help
no reader of a corpus, which reads whole files), except on hashes and free text."""


def _row_count(table: DeltaTable) -> int:
    """Rows at a snapshot from each file's numRecords in the log: no data is read."""
    if not table.file_uris():
        return 0
    actions = pa.table(table.get_add_actions(flatten=True))
    if "num_records" not in actions.column_names or actions["num_records"].null_count:
        return table.to_pyarrow_dataset().count_rows()  # files logged without stats
    return pc.sum(actions["num_records"]).as_py()


def _stats_columns(kind: str, rejects: bool) -> list[str]:
    """Columns worth min/max statistics (what people filter on). Stats on every column
    (the Delta default) make each append about 1.3x slower for no reader benefit."""
    columns = ["round", GROUP_COLUMN[kind], "accepted", "critic_score"]
    return [*columns, "stage"] if rejects else columns


def local_path(uri: str) -> Path | None:
    """The local file a table file URI names, or None for an object store."""
    if "://" not in uri:
        return Path(uri)
    parsed = urlparse(uri)
    return Path(unquote(parsed.path)) if parsed.scheme == "file" else None


def log_damage(uri: str, exc: BaseException) -> SynthkdError:
    """One line for a transaction log deltalake could not read, naming the bad entry."""
    root = local_path(uri)
    entries = sorted((root / "_delta_log").glob("*.json")) if root is not None else []
    for entry in entries:
        try:
            for line in entry.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    json.loads(line)
        except (OSError, ValueError):
            return SynthkdError(f"corpus {uri} is damaged: log entry {entry} is not valid JSON")
    return SynthkdError(f"corpus {uri} is damaged: its _delta_log ({one_line(exc)[:160]})")


def check_files(table: DeltaTable, where: str) -> None:
    """Every data file of this snapshot is there and has a Parquet footer (local tables).

    Reads only each file's footer; SynthkdError names the first damaged file.
    """
    for uri in table.file_uris():
        path = local_path(uri)
        if path is None:
            continue
        if not path.is_file():
            raise SynthkdError(f"corpus {where} is damaged: its data file {path} is missing")
        try:
            pq.read_metadata(path)
        except (OSError, pa.ArrowException) as exc:
            raise SynthkdError(
                f"corpus {where} is damaged: {path} is not a readable Parquet file "
                f"({one_line(exc)[:120]})"
            ) from None


def damaged(table: DeltaTable, where: str, exc: BaseException) -> SynthkdError:
    """The error to raise when reading a snapshot failed: the damaged file if one is found."""
    try:
        check_files(table, where)
    except SynthkdError as found:
        return found
    return SynthkdError(f"cannot read corpus {where}: {one_line(exc)[:200]}")
