"""Checking rows against a record schema before anything is written.

Every check happens before the commit, so a bad batch leaves the table exactly as it
was; deltalake's own nullability invariants are the second line of defence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from synthkd.data.schemas import STAGES
from synthkd.errors import SynthkdError


def one_line(exc: BaseException) -> str:
    """An exception as one short line for a SynthkdError message."""
    return " ".join(str(exc).split())[:300] or type(exc).__name__


def conform_rows(
    rows: pa.Table | Sequence[Mapping[str, Any]], schema: pa.Schema, kind: str, rejects: bool
) -> pa.Table:
    """Rows as a table of exactly `schema`, or one SynthkdError naming what does not fit."""
    if isinstance(rows, pa.Table):
        table = rows
    else:
        rows = list(rows)
        names = set(schema.names)
        for index, row in enumerate(rows):
            extra = set(row) - names
            if extra:
                raise SynthkdError(
                    f"row {index} does not fit the {kind} schema: "
                    f"unknown column(s): {', '.join(sorted(extra))}"
                )
        try:
            table = pa.Table.from_pylist(rows, schema=schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
            raise SynthkdError(f"rows do not fit the {kind} schema: {one_line(exc)}") from None
    missing = [n for n in schema.names if n not in table.column_names]
    extra = [n for n in table.column_names if n not in schema.names]
    if missing or extra:
        parts = [
            f"missing {', '.join(missing)}" if missing else "",
            f"unknown {', '.join(extra)}" if extra else "",
        ]
        raise SynthkdError(f"rows do not fit the {kind} schema: {'; '.join(p for p in parts if p)}")
    for f in schema:
        if not f.nullable and table.column(f.name).null_count:
            raise SynthkdError(f"rows do not fit the {kind} schema: {f.name} has empty values")
    try:
        table = table.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, ValueError) as exc:
        raise SynthkdError(f"rows do not fit the {kind} schema: {one_line(exc)}") from None
    kinds = pc.unique(table.column("kind")).to_pylist()
    if table.num_rows and kinds != [kind]:
        raise SynthkdError(f"rows of kind {kinds} cannot go into a {kind} corpus")
    if len(pc.unique(table.column("id"))) != table.num_rows:  # 2x cheaper than count_distinct
        raise SynthkdError("rows to append repeat an id; each record may appear once")
    if rejects:
        stages = set(pc.unique(table.column("stage")).to_pylist())
        bad = stages - set(STAGES)
        if bad:
            raise SynthkdError(f"unknown reject stage(s): {', '.join(sorted(bad))}")
    return table
