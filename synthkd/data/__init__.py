"""data room: record schemas, the versioned corpus store, dataset cards, export and publishing.

Every other room writes and reads records through these names; see docs/architecture.md.
"""

import os

# deltalake's Rust logger reads RUST_LOG once, when it loads: keep its warnings, minus
# DataFusion's notice about its own API (printed on every merge), unless the user set one.
os.environ.setdefault("RUST_LOG", "warn,datafusion_datasource_parquet=error")

from synthkd.data.export import ExportResult, export_dataset, parse_splits, publish_dataset
from synthkd.data.history import CorpusDiff, CorpusVersion
from synthkd.data.io import (
    file_digest,
    read_labelled,
    read_rows,
    read_table,
    read_texts,
    staged_dir,
    write_atomic,
)
from synthkd.data.kg_export import GraphExport, export_graph
from synthkd.data.relations import DEFAULT_RELATIONS, RELATION_PHRASES, relation_phrase
from synthkd.data.run import RoundAcceptance, RunStore
from synthkd.data.schemas import (
    CONTENT_FIELDS,
    GROUP_COLUMN,
    IDENTITY_FIELDS,
    KINDS,
    STAGES,
    Lineage,
    make_record,
    make_reject,
    record_id,
    record_schema,
    reject_schema,
)
from synthkd.data.storage import RunFolder, is_remote, storage_options
from synthkd.data.store import CorpusStore, check_name, corpus_path
from synthkd.data.writer import BufferedWriter

__all__ = [
    "CONTENT_FIELDS",
    "DEFAULT_RELATIONS",
    "GROUP_COLUMN",
    "IDENTITY_FIELDS",
    "KINDS",
    "RELATION_PHRASES",
    "STAGES",
    "BufferedWriter",
    "CorpusDiff",
    "CorpusStore",
    "CorpusVersion",
    "ExportResult",
    "GraphExport",
    "Lineage",
    "RoundAcceptance",
    "RunFolder",
    "RunStore",
    "check_name",
    "corpus_path",
    "export_dataset",
    "export_graph",
    "is_remote",
    "file_digest",
    "make_record",
    "make_reject",
    "parse_splits",
    "publish_dataset",
    "read_labelled",
    "read_rows",
    "read_table",
    "read_texts",
    "record_id",
    "record_schema",
    "relation_phrase",
    "reject_schema",
    "staged_dir",
    "storage_options",
    "write_atomic",
]
