"""Corpus store throughput beside plain Parquet, on the same rows in the same run.

Appends N short labelled records in batches (each a Delta commit) and reads them back,
interleaved batch by batch with `pyarrow.parquet.write_table` of the same batch to a
plain folder, so load from other processes hits both alike. Also times the resumable
BufferedWriter path (dict rows, id dedupe) on a smaller slice.

Usage: python benchmarks/store.py [--rows 1000000] [--batch 10000] [--writer-rows 100000]
The last line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import tempfile
import time
from pathlib import Path

import deltalake
import pyarrow as pa
import pyarrow.parquet as pq

from synthkd.data import BufferedWriter, CorpusStore, Lineage, make_record, record_id

LABELS = ("sports", "politics", "science", "business", "health")


def batch_table(schema: pa.Schema, start: int, size: int) -> pa.Table:
    """`size` short labelled records with full lineage (ids are real content hashes)."""
    now = dt.datetime.now(dt.timezone.utc)
    labels = [LABELS[i % len(LABELS)] for i in range(start, start + size)]
    numbers = range(start, start + size)
    texts = [f"Short synthetic headline number {i} about {labels[i - start]}." for i in numbers]
    pairs = list(zip(texts, labels, strict=True))
    ids = [record_id("labelled", {"text": t, "label": lab}) for t, lab in pairs]
    constant = {
        "kind": "labelled",
        "recipe": "bench",
        "round": 0,
        "teacher_backend": "llamacpp",
        "teacher_model": "gemma-3-270m",
        "template_hash": "tmpl0001",
        "sampling": '{"max_tokens": 64, "temperature": 0.8}',
        "created_at": now,
    }
    columns = {
        "id": ids,
        **{name: [value] * size for name, value in constant.items()},
        "sample_key": [f"key-{i}" for i in range(start, start + size)],
        "raw_completion": [f"Label: {lab}\nText: {t}" for t, lab in pairs],
        "critic_score": [None] * size,
        "critic_version": [None] * size,
        "accepted": [None] * size,
        "text": texts,
        "label": labels,
        "soft_labels": [None] * size,
        "teacher_confidence": [None] * size,
        "meta": [None] * size,
    }
    return pa.table(columns, schema=schema)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--writer-rows", type=int, default=100_000)
    parser.add_argument("--dir", type=Path, default=None, help="scratch folder (default: temp)")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="synthkd-bench-", dir=args.dir))
    try:
        figures = run(scratch, args.rows, args.batch, args.writer_rows)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(json.dumps(figures))


def run(scratch: Path, rows: int, batch: int, writer_rows: int) -> dict:
    """Time the store and plain Parquet on the same batches; returns the figures."""
    store = CorpusStore.create(scratch / "corpus", "labelled")
    plain = scratch / "plain"
    plain.mkdir()
    print(f"building {rows} rows in batches of {batch} ...", flush=True)
    batches = [batch_table(store.schema, s, min(batch, rows - s)) for s in range(0, rows, batch)]

    # wall time is the target's measure; CPU time (all threads) is what other processes on
    # a busy machine cannot inflate, so both are reported
    delta_write = parquet_write = delta_cpu = parquet_cpu = 0.0
    for index, table in enumerate(batches):
        start, cpu = time.perf_counter(), time.process_time()
        store.append(table, f"bench batch {index}")
        delta_write += time.perf_counter() - start
        delta_cpu += time.process_time() - cpu
        start, cpu = time.perf_counter(), time.process_time()
        pq.write_table(table, plain / f"part-{index:05d}.parquet")
        parquet_write += time.perf_counter() - start
        parquet_cpu += time.process_time() - cpu

    # reads: best of three, interleaved, so a burst of load elsewhere does not pick a winner
    delta_read = parquet_read = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        delta_rows = store.read().num_rows
        delta_read = min(delta_read, time.perf_counter() - start)
        start = time.perf_counter()
        parquet_rows = pq.read_table(plain).num_rows
        parquet_read = min(parquet_read, time.perf_counter() - start)
    assert delta_rows == parquet_rows == rows, (delta_rows, parquet_rows)

    writer_store = CorpusStore.create(scratch / "buffered", "labelled")
    lineage = Lineage(
        "bench", 0, "llamacpp", "gemma-3-270m", "tmpl0001", {"temperature": 0.8}, "k", "raw"
    )
    start = time.perf_counter()
    dict_rows = [
        make_record("labelled", {"text": f"headline {i}", "label": LABELS[i % 5]}, lineage)
        for i in range(writer_rows)
    ]
    make_seconds = time.perf_counter() - start
    start = time.perf_counter()
    with BufferedWriter(writer_store, "bench buffered", flush_rows=batch) as writer:
        writer.extend(dict_rows)
    writer_seconds = time.perf_counter() - start

    delta_bytes = sum(f.stat().st_size for f in (scratch / "corpus").glob("*.parquet"))
    parquet_bytes = sum(f.stat().st_size for f in plain.glob("*.parquet"))
    figures = {
        "deltalake": deltalake.__version__,
        "rows": rows,
        "batch_rows": batch,
        "commits": len(batches),
        "delta_append_rows_per_s": round(rows / delta_write),
        "parquet_write_rows_per_s": round(rows / parquet_write),
        "append_slowdown_vs_parquet": round(delta_write / parquet_write, 2),
        "append_cpu_slowdown_vs_parquet": round(delta_cpu / parquet_cpu, 2),
        "delta_read_rows_per_s": round(rows / delta_read),
        "parquet_read_rows_per_s": round(rows / parquet_read),
        "read_slowdown_vs_parquet": round(delta_read / parquet_read, 2),
        "delta_mib": round(delta_bytes / 2**20, 1),
        "parquet_mib": round(parquet_bytes / 2**20, 1),
        "make_record_rows_per_s": round(writer_rows / make_seconds),
        "buffered_writer_rows_per_s": round(writer_rows / writer_seconds),
        "buffered_writer_rows": writer_rows,
    }
    figures["within_2x_of_parquet"] = (
        figures["append_slowdown_vs_parquet"] <= 2 and figures["read_slowdown_vs_parquet"] <= 2
    )
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}")
    return figures


if __name__ == "__main__":
    main()
