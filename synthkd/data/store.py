"""Corpora as Delta tables: atomic appends, versions with commit messages, time travel.

Nothing here hand-rolls storage: deltalake writes the Parquet files and commits them
with one transaction-log entry, so a writer killed mid-append leaves the table at its
last committed version (the half-written Parquet file is never referenced by the log).
Every append, rescoring or deletion is a new version whose commit carries a message
(`userMetadata`, the field Spark's DESCRIBE HISTORY shows) saying what produced it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import DeltaError, TableNotFoundError

from synthkd.data.conform import conform_rows, one_line
from synthkd.data.history import (
    CorpusDiff,
    CorpusVersion,
    commit_properties,
    diff_tables,
    sorted_counts,
    version_from_history,
)
from synthkd.data.schemas import GROUP_COLUMN, kind_of_schema, record_schema, reject_schema
from synthkd.data.storage import storage_options as default_options
from synthkd.data.table_files import (
    KEEP_HISTORY,
    WRITER,
    _is_missing_version,
    _row_count,
    _stats_columns,
    check_files,
    damaged,
    is_table,
    log_damage,
)
from synthkd.errors import SynthkdError

__all__ = ["CorpusStore", "check_name", "corpus_path", "is_table", "kind_of_schema_names"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_name(name: str, what: str = "corpus name") -> str:
    """A bare name (letters, digits, . _ -): never a path, never absolute, never `..`."""
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise SynthkdError(
            f"invalid {what} {name!r}: use letters, digits, '.', '_' or '-' (no paths, no '..')"
        )
    return name


def corpus_path(root: str | Path, name: str) -> str:
    """Where the corpus called `name` lives under `root` (a folder or a URI)."""
    check_name(name)
    root = str(root)
    return f"{root.rstrip('/')}/{name}" if "://" in root else str(Path(root) / name)


def _normalize(uri: str | Path) -> str:
    text = str(uri)
    if "://" in text:
        return text
    return str(Path(text).expanduser().absolute())


class CorpusStore:
    """One Delta table of records (or of rejects) of a single kind.

    Open an existing table with `CorpusStore(uri)`; make one with `CorpusStore.create`.
    `uri` is a local path or an object-store URI (s3://, gs://, az://) with
    `storage_options` (credentials, endpoint) passed straight to deltalake.
    """

    def __init__(self, uri: str | Path, storage_options: Mapping[str, str] | None = None):
        self.uri = _normalize(uri)
        if storage_options is None:  # an object store: the environment's credentials
            storage_options = default_options(self.uri)
        self.storage_options = dict(storage_options) if storage_options else None
        try:
            self._table = DeltaTable(self.uri, storage_options=self.storage_options)
        except TableNotFoundError:
            raise SynthkdError(f"not a corpus: {uri} (no Delta table there)") from None
        except (DeltaError, OSError) as exc:
            raise SynthkdError(f"cannot open corpus {uri}: {one_line(exc)}") from None
        except Exception as exc:  # deltalake raises bare Exceptions for a garbled log entry
            raise log_damage(self.uri, exc) from None
        found = kind_of_schema_names([f.name for f in self._table.schema().fields])
        if found is None:
            raise SynthkdError(f"not a synthkd corpus: {uri} (its columns are not a record schema)")
        self.kind, self.is_rejects = found
        self.schema = reject_schema(self.kind) if self.is_rejects else record_schema(self.kind)
        self.group_column = GROUP_COLUMN[self.kind]

    @classmethod
    def create(
        cls,
        uri: str | Path,
        kind: str,
        *,
        rejects: bool = False,
        storage_options: Mapping[str, str] | None = None,
        exist_ok: bool = True,
    ) -> CorpusStore:
        """Create an empty corpus (version 0), or open it when it already has this schema."""
        schema = reject_schema(kind) if rejects else record_schema(kind)
        target = _normalize(uri)
        if storage_options is None:
            storage_options = default_options(target)
        options = dict(storage_options) if storage_options else None
        if is_table(target, options):
            if not exist_ok:
                raise SynthkdError(f"a corpus already exists at {uri}")
            store = cls(target, options)
            if (store.kind, store.is_rejects) != (kind, rejects):
                what = "rejects" if store.is_rejects else "records"
                raise SynthkdError(f"{uri} already holds {store.kind} {what}, not {kind}")
            return store
        what = "rejects" if rejects else "records"
        made = "://" not in target and not Path(target).exists()
        try:
            if made:  # deltalake panics where it cannot make the folder itself
                Path(target).mkdir(parents=True)
            DeltaTable.create(
                target,
                schema,
                mode="error",
                name=f"synthkd_{kind}_{what}",
                description=f"synthkd {kind} {what}",
                configuration={
                    "delta.dataSkippingStatsColumns": ",".join(_stats_columns(kind, rejects))
                },
                storage_options=options,
                commit_properties=commit_properties(f"create {kind} {what} table", {}),
            )
        except (DeltaError, OSError) as exc:  # a read-only or full disk, a missing bucket
            if is_table(target, options):  # another process made it first
                return cls.create(uri, kind, rejects=rejects, storage_options=options)
            if made and Path(target).is_dir() and not any(Path(target).iterdir()):
                Path(target).rmdir()
            raise SynthkdError(f"cannot create corpus {uri}: {one_line(exc)}") from None
        return cls(target, options)

    # -- reading -------------------------------------------------------------------

    def refresh(self) -> None:
        """See commits made by other writers since this store was opened."""
        try:
            self._table.update_incremental()
        except Exception as exc:  # deltalake raises bare Exceptions for a garbled log entry
            raise log_damage(self.uri, exc) from None

    def version(self) -> int:
        self.refresh()
        return self._table.version()

    def _at(self, version: int | None) -> DeltaTable:
        self.refresh()
        if version is None or version == self._table.version():
            return self._table
        latest = self._table.version()
        if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version <= latest:
            raise SynthkdError(
                f"version {version} of {self.uri} does not exist (latest is {latest})"
            )
        try:
            return DeltaTable(self.uri, version=version, storage_options=self.storage_options)
        except DeltaError as exc:
            if _is_missing_version(exc):
                raise SynthkdError(
                    f"version {version} of {self.uri} is no longer available (vacuumed)"
                ) from None
            raise SynthkdError(
                f"cannot read version {version} of {self.uri}: {one_line(exc)}"
            ) from None

    def read(self, version: int | None = None, columns: Sequence[str] | None = None) -> pa.Table:
        """The rows at `version` (default: latest), typed by the record schema."""
        table = self._at(version)
        wanted = list(columns) if columns else None
        schema = (
            self.schema if columns is None else pa.schema([self.schema.field(c) for c in columns])
        )
        try:
            if self._plain_local(table):
                # Plain Parquet files on a local disk: pyarrow reads them about 3x faster than
                # deltalake's dataset scan, and the log already told us exactly which files.
                files = table.file_uris()
                if not files:
                    return schema.empty_table()
                data = pq.read_table(files, columns=wanted)
            else:
                data = table.to_pyarrow_table(columns=wanted)
        except (OSError, pa.ArrowException, DeltaError) as exc:  # a truncated or deleted file
            raise damaged(table, self.uri, exc) from None
        return data.select(schema.names).cast(schema)

    def check(self, version: int | None = None) -> None:
        """Every data file of `version` is there and readable, or one line naming the first
        that is not (reads only Parquet footers)."""
        check_files(self._at(version), self.uri)

    def _plain_local(self, table: DeltaTable) -> bool:
        """True when file_uris() alone says what to read: local files, no deletion vectors or
        column mapping (reader protocol 1, which is what deltalake writes)."""
        local = "://" not in self.uri or self.uri.startswith("file://")
        return local and table.protocol().min_reader_version == 1

    def count(self, version: int | None = None) -> int:
        table = self._at(version)
        try:
            return _row_count(table)
        except (OSError, pa.ArrowException, DeltaError) as exc:
            raise damaged(table, self.uri, exc) from None

    def file_uris(self, version: int | None = None) -> list[str]:
        """The Parquet files of `version`: what duckdb, polars or pandas can read directly."""
        return self._at(version).file_uris()

    def ids(self, version: int | None = None) -> set[str]:
        """Ids present at `version`; what a resumed run skips."""
        return set(self.read(version, ["id"]).column("id").to_pylist())

    def sample_keys(self, version: int | None = None) -> set[str]:
        """Teacher samples already turned into rows here; a resumed run need not ask again."""
        return set(self.read(version, ["sample_key"]).column("sample_key").to_pylist())

    def counts(self, version: int | None = None) -> dict[str, int]:
        """Rows per label (labelled), relation (commonsense) or predicate (document KG)."""
        column = self.read(version, [self.group_column]).column(self.group_column)
        return sorted_counts(column.to_pylist())

    def versions(self) -> list[CorpusVersion]:
        """Every committed version, oldest first, with its message and row count; the
        latest version's data files are checked first (one line naming a damaged one)."""
        self.check()
        return [version_from_history(e, self.count(e["version"])) for e in self._history()]

    def messages(self) -> list[str]:
        """Every commit's message, oldest first: `versions` without reading each version."""
        return [version_from_history(e, 0).message for e in self._history()]

    def _history(self) -> list[dict[str, Any]]:
        return sorted(self._table.history(), key=lambda item: item["version"])

    def diff(self, v1: int, v2: int) -> CorpusDiff:
        """Records added and removed between two versions (either order), and rescored ones."""
        columns = ["id", self.group_column, "critic_score", "critic_version", "accepted"]
        return diff_tables(
            self.read(v1, columns), self.read(v2, columns), self.group_column, v1, v2
        )

    # -- writing -------------------------------------------------------------------

    def append(
        self,
        rows: pa.Table | Sequence[Mapping[str, Any]],
        message: str,
        metadata: Mapping[str, Any] | None = None,
    ) -> int:
        """Append rows as one atomic commit; returns the new version.

        Rows are checked against the schema first, so a bad row leaves the table as it
        was. Ids are not checked against the table: `BufferedWriter` is the resumable,
        exactly-once path.
        """
        table = conform_rows(rows, self.schema, self.kind, self.is_rejects)
        if table.num_rows == 0:
            return self.version()
        info = {"rows": table.num_rows, **(metadata or {})}
        self._write(table, mode="append", message=message, metadata=info)
        return self._table.version()  # the write advanced this snapshot to its own commit

    def _write(self, table: pa.Table, *, mode: str, message: str, metadata: Mapping[str, Any]):
        try:
            write_deltalake(
                self._table,  # the open snapshot: no log replay per commit
                table,
                mode=mode,
                storage_options=self.storage_options,
                commit_properties=commit_properties(message, metadata),
                post_commithook_properties=KEEP_HISTORY,
                writer_properties=WRITER,
            )
        except (DeltaError, OSError) as exc:  # a full or read-only disk
            raise SynthkdError(f"could not write to {self.uri}: {one_line(exc)}") from None

    def update_scores(
        self,
        scores: pa.Table | Mapping[str, float],
        critic_version: str,
        message: str,
        *,
        threshold: float | None = None,
    ) -> int:
        """Set critic_score, critic_version and accepted as one new version (a Delta merge).

        `scores` maps id -> score, or is a table with `id`, `critic_score` and optionally
        `accepted`; without `accepted`, it is `score >= threshold` (None if no threshold).
        Unknown ids are an error and leave the table unchanged.
        """
        if isinstance(scores, Mapping):
            scores = pa.table(
                {"id": list(scores), "critic_score": [float(v) for v in scores.values()]}
            )
        if "id" not in scores.column_names or "critic_score" not in scores.column_names:
            raise SynthkdError("scores need the columns id and critic_score")
        ids = scores.column("id").cast(pa.string())
        score = scores.column("critic_score").cast(pa.float64())
        if "accepted" in scores.column_names:
            accepted = scores.column("accepted").cast(pa.bool_())
        elif threshold is not None:
            accepted = pc.greater_equal(score, pa.scalar(float(threshold)))
        else:
            accepted = pa.nulls(len(ids), pa.bool_())
        source = pa.table(
            {
                "id": ids,
                "critic_score": score,
                "critic_version": pa.array([critic_version] * len(ids), pa.string()),
                "accepted": accepted,
            }
        )
        if pc.count_distinct(ids).as_py() != len(ids):
            raise SynthkdError("scores repeat an id; give each record one score")
        self._check_known(ids)
        extras: dict[str, Any] = {"critic_version": critic_version, "rows": len(ids)}
        if threshold is not None:
            extras["critic_threshold"] = float(threshold)
        updates = {c: f"s.{c}" for c in ("critic_score", "critic_version", "accepted")}
        self._merge(source, message, extras, lambda merger: merger.when_matched_update(updates))
        return self.version()

    def delete(self, ids: Iterable[str], message: str, metadata: Mapping[str, Any] | None = None):
        """Remove records by id as one new version (e.g. a filter pass); returns the version."""
        source = pa.table({"id": pa.array(sorted(set(ids)), pa.string())})
        self._check_known(source.column("id"))
        extras = {"rows": source.num_rows, **(metadata or {})}
        self._merge(source, message, extras, lambda merger: merger.when_matched_delete())
        return self.version()

    def compact(self, message: str = "compact small files") -> int:
        """Merge the many small files that checkpointed appends leave into a few (same rows,
        new version): later commits and reads get cheaper. Returns the version."""
        self.refresh()
        try:
            self._table.optimize.compact(
                commit_properties=commit_properties(message, {}),
                post_commithook_properties=KEEP_HISTORY,
                writer_properties=WRITER,
            )
        except (DeltaError, OSError) as exc:  # a full or read-only disk
            raise SynthkdError(f"could not compact {self.uri}: {one_line(exc)}") from None
        return self.version()

    def _check_known(self, ids: pa.ChunkedArray | pa.Array) -> None:
        present = self.read(columns=["id"]).column("id")
        unknown = pc.filter(ids, pc.invert(pc.is_in(ids, value_set=present)))
        if len(unknown):
            first = unknown[0].as_py()
            raise SynthkdError(f"{len(unknown)} id(s) are not in {self.uri} (first: {first})")

    def update_soft_labels(self, soft_labels: Mapping[str, str], message: str) -> int:
        """Set soft_labels (JSON text) of records by id, as one new version (a Delta merge)."""
        source = pa.table(
            {
                "id": pa.array(list(soft_labels), pa.string()),
                "soft_labels": pa.array(list(soft_labels.values()), pa.string()),
            }
        )
        self._check_known(source.column("id"))
        extras = {"rows": source.num_rows}
        self._merge(
            source,
            message,
            extras,
            lambda merger: merger.when_matched_update({"soft_labels": "s.soft_labels"}),
        )
        return self.version()

    def _merge(self, source: pa.Table, message: str, metadata: Mapping[str, Any], action) -> None:
        """One Delta merge on id (target t, source s); `action` adds the when-clauses."""
        properties = commit_properties(message, metadata)
        self.refresh()
        try:
            merger = self._table.merge(
                source,
                predicate="t.id = s.id",
                source_alias="s",
                target_alias="t",
                commit_properties=properties,
                post_commithook_properties=KEEP_HISTORY,
                writer_properties=WRITER,
            )
            action(merger).execute()
        except (DeltaError, OSError) as exc:  # a full or read-only disk
            raise SynthkdError(f"could not update {self.uri}: {one_line(exc)}") from None


def kind_of_schema_names(names: Sequence[str]) -> tuple[str, bool] | None:
    """(kind, is_rejects) from a Delta table's column names; None if not a synthkd table."""
    return kind_of_schema(pa.schema([pa.field(n, pa.null()) for n in names]))
