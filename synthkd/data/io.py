"""One reader of user files and one atomic writer, for every room.

A user names seed, validation, test, label, document and pool files in a recipe or on
the command line; they all come in here, so every format behaves the same and every
failure is one line naming the file (and the line, where there is one). Writes that
must never be seen half-done (reports, metrics, model folders) go through
`write_atomic` and `staged_dir`.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from synthkd.errors import SynthkdError

FORMATS = (".jsonl", ".json", ".csv", ".tsv", ".parquet", ".pq")
MAX_FILE_BYTES = int(os.environ.get("SYNTHKD_MAX_FILE_BYTES", 2 * 1024**3))
"""Files larger than this are refused with one line instead of filling memory."""


def _check_file(path: Path, what: str) -> None:
    if not path.exists():
        raise SynthkdError(f"{what} {path}: not found")
    if not path.is_file():
        raise SynthkdError(f"{what} {path}: not a file")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise SynthkdError(
            f"{what} {path}: {size / 1024**2:.0f} MiB is over the "
            f"{MAX_FILE_BYTES / 1024**2:.0f} MiB limit (SYNTHKD_MAX_FILE_BYTES)"
        )


def read_rows(path: str | Path, what: str = "file") -> list[dict[str, Any]]:
    """Rows of a JSONL, JSON (a list of objects), CSV, TSV or Parquet file, as dicts."""
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in FORMATS:
        raise SynthkdError(
            f"{what} {file}: unsupported file type {suffix or '(none)'!r} "
            "(jsonl, json, csv, tsv, parquet)"
        )
    _check_file(file, what)
    try:
        if suffix == ".jsonl":
            rows = []
            with file.open(encoding="utf-8") as handle:
                for number, line in enumerate(handle, 1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except (ValueError, RecursionError):
                        raise SynthkdError(f"{what} {file}:{number}: not valid JSON") from None
                    if not isinstance(row, dict):
                        raise SynthkdError(
                            f"{what} {file}:{number}: each line must be a JSON object"
                        )
                    rows.append(row)
            return rows
        if suffix == ".json":
            try:
                data = json.loads(file.read_text(encoding="utf-8"))
            except (ValueError, RecursionError):
                raise SynthkdError(f"{what} {file}: not valid JSON") from None
            if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
                raise SynthkdError(f"{what} {file}: expected a JSON list of objects")
            return data
        if suffix in (".csv", ".tsv"):
            with file.open(newline="", encoding="utf-8") as handle:
                reader = csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ",")
                rows = list(reader)
            if any(None in row for row in rows):
                raise SynthkdError(f"{what} {file}: a row has more fields than the header")
            return rows
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            return pq.read_table(file).to_pylist()
        except (pa.ArrowInvalid, OSError) as exc:
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise SynthkdError(f"{what} {file}: not a readable Parquet file ({first})") from None
    except UnicodeDecodeError:
        raise SynthkdError(f"{what} {file}: not UTF-8 text") from None
    except csv.Error as exc:
        raise SynthkdError(f"{what} {file}: malformed CSV ({exc})") from None
    except OSError as exc:
        raise SynthkdError(f"{what} {file}: cannot read ({exc.strerror or exc})") from None


def read_table(path: str | Path, what: str = "file"):
    """A file of rows as a pyarrow Table (columns as the file has them)."""
    import pyarrow as pa

    file = Path(path)
    if file.suffix.lower() in (".parquet", ".pq"):
        _check_file(file, what)
        import pyarrow.parquet as pq

        try:
            return pq.read_table(file)
        except (pa.ArrowInvalid, OSError) as exc:
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise SynthkdError(f"{what} {file}: not a readable Parquet file ({first})") from None
    rows = read_rows(file, what)
    try:
        return pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise SynthkdError(f"{what} {file}: columns of mixed types ({first})") from None


def read_labelled(
    path: str | Path,
    text_column: str = "text",
    label_column: str = "label",
    what: str = "labelled file",
    *,
    labels: list[str] | None = None,
    min_labels: int = 1,
):
    """A labelled file as a DataFrame with `text` and `label` columns, checked.

    Every text must be a non-empty string and every label a non-empty value; with
    `labels`, every label must be one of them; with `min_labels`, at least that many
    distinct labels must appear.
    """
    import pandas as pd

    file = Path(path)
    rows = read_rows(file, what)
    if not rows:
        raise SynthkdError(f"{what} {file}: no rows")
    for column in (text_column, label_column):
        if column not in rows[0]:
            raise SynthkdError(
                f"{what} {file}: no column {column!r} (columns: {', '.join(map(str, rows[0]))})"
            )
    texts, targets = [], []
    for number, row in enumerate(rows, 1):
        text, label = row.get(text_column), row.get(label_column)
        if not isinstance(text, str) or not text.strip():
            raise SynthkdError(
                f"{what} {file}: row {number}: {text_column!r} must be non-empty text, "
                f"got {type(text).__name__}"
            )
        if label is None or isinstance(label, (dict, list)) or not str(label).strip():
            raise SynthkdError(f"{what} {file}: row {number}: {label_column!r} is empty")
        label = str(label).strip()
        if labels is not None and label not in labels:
            raise SynthkdError(
                f"{what} {file}: row {number}: label {label!r} is not one of the recipe's "
                f"labels ({', '.join(labels)})"
            )
        texts.append(text)
        targets.append(label)
    distinct = len(set(targets))
    if distinct < min_labels:
        raise SynthkdError(
            f"{what} {file}: {distinct} distinct label(s); at least {min_labels} are needed"
        )
    return pd.DataFrame({"text": texts, "label": targets})


def read_texts(path: str | Path, text_column: str = "text", what: str = "text file") -> list[str]:
    """The texts of a file's column (an unlabelled pool, annotate input); empty ones kept."""
    file = Path(path)
    if file.suffix.lower() == ".txt":
        _check_file(file, what)
        try:
            return [line for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
        except UnicodeDecodeError:
            raise SynthkdError(f"{what} {file}: not UTF-8 text") from None
    rows = read_rows(file, what)
    if rows and text_column not in rows[0]:
        raise SynthkdError(
            f"{what} {file}: no column {text_column!r} (columns: {', '.join(map(str, rows[0]))})"
        )
    return ["" if row.get(text_column) is None else str(row.get(text_column)) for row in rows]


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes (a directory: of its files' names and bytes), for cache keys."""
    import hashlib

    digest = hashlib.sha256()
    target = Path(path)
    files = sorted(p for p in target.rglob("*") if p.is_file()) if target.is_dir() else [target]
    for file in files:
        digest.update(str(file.relative_to(target) if target.is_dir() else "").encode())
        with contextlib.suppress(OSError), file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Write a file so that readers see the old content or the new, never a part."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return target


@contextlib.contextmanager
def staged_dir(target: str | Path) -> Iterator[Path]:
    """A folder written in a staging place and swapped in whole when the block ends.

    If the block fails, the staging folder is removed and `target` is as it was.
    """
    final = Path(target)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = final.with_name(f".{final.name}.old")
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    staging.rename(final)
    shutil.rmtree(old, ignore_errors=True)
