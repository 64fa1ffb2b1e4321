"""Export a triples corpus as a knowledge graph a user can load: a `datasets` dataset and
an edge list (Parquet: head, relation, tail, quote, document), with a card.

Only the critic's accepted records (or records it has not judged) become edges, so the
graph is what the run vouches for. The folder loads as `datasets.load_dataset(folder)`
(the card's `configs` point at `edges.parquet`), as a pandas/networkx edge list
(`networkx.from_pandas_edgelist(df, "head", "tail", edge_attr=True,
create_using=networkx.MultiDiGraph)`), or into a graph database's CSV/Parquet loader.
It appears complete or not at all (written beside it, then renamed).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from synthkd.data.io import staged_dir
from synthkd.data.run import RunStore
from synthkd.errors import SynthkdError

EDGE_COLUMNS = (
    "head",
    "relation",
    "tail",
    "quote",
    "document",
    "chunk_id",
    "id",
    "round",
    "critic_score",
)


@dataclass(frozen=True)
class GraphExport:
    """Where a KG export went and what it holds."""

    path: Path
    version: int
    edges: int
    nodes: int
    relations: int


def _edges(table: pa.Table, kind: str) -> pa.Table:
    n = table.num_rows
    nulls = pa.nulls(n, pa.string())
    if kind == "document_kg":
        cols = {
            "head": table["subject"],
            "relation": table["predicate"],
            "tail": table["object"],
            "quote": table["quote"],
            "document": table["document_id"],
            "chunk_id": table["chunk_id"],
        }
    elif kind == "commonsense":
        cols = {
            "head": table["head"],
            "relation": table["relation"],
            "tail": table["tail"],
            "quote": nulls,
            "document": nulls,
            "chunk_id": nulls,
        }
    else:
        raise SynthkdError(
            f"a {kind} corpus holds no triples: export it with `synthkd corpus export`"
        )
    cols.update(id=table["id"], round=table["round"], critic_score=table["critic_score"])
    return pa.table(cols)


def _card(name: str, kind: str, version: int, edges: pa.Table, nodes: int) -> str:
    relations = pc.value_counts(edges["relation"]).to_pylist()
    top = sorted(relations, key=lambda r: -r["counts"])[:15]
    rows = "\n".join(f"| {r['values']} | {r['counts']} |" for r in top)
    grounded = (
        "Each edge is grounded: `quote` is a verbatim span of the source chunk of `document` "
        "(`chunk_id`), checked when the teacher wrote it."
        if kind == "document_kg"
        else "Commonsense edges (ATOMIC style): `head` is an event, `tail` an inference; "
        "they have no quote or document."
    )
    return f"""---
configs:
- config_name: default
  data_files:
  - split: train
    path: edges.parquet
tags:
- knowledge-graph
- synthetic
- synthkd
---

# {name}: knowledge graph (edge list)

Triples from corpus version {version} ({kind}), the critic's accepted records only:
{edges.num_rows} edges, {nodes} nodes, {len(relations)} relations. {grounded}

## Columns

| column | what |
|---|---|
| head | the subject entity (or event) |
| relation | the predicate (or ATOMIC relation) |
| tail | the object entity (or inference) |
| quote | the supporting span of the chunk (document KG) |
| document | the source document id (document KG) |
| chunk_id | the chunk of the document the quote is in (document KG) |
| id | the record id in the corpus (lineage: `synthkd corpus show`) |
| round | the generation round |
| critic_score | the critic's P(acceptable) |

## Load it

```python
import datasets, networkx, pandas
edges = datasets.load_dataset("PATH/TO/THIS/FOLDER", split="train")
df = pandas.read_parquet("PATH/TO/THIS/FOLDER/edges.parquet")
graph = networkx.from_pandas_edgelist(
    df, "head", "tail", edge_attr=True, create_using=networkx.MultiDiGraph
)
```

## Most frequent relations

| relation | edges |
|---|---:|
{rows}
"""


def export_graph(
    corpus: RunStore | str | Path,
    out_dir: str | Path,
    *,
    version: int | None = None,
    overwrite: bool = False,
) -> GraphExport:
    """Write the corpus's accepted triples as `edges.parquet` plus a card (README.md)."""
    run = corpus if isinstance(corpus, RunStore) else RunStore.open(corpus)
    store = run.corpus
    target = Path(out_dir).expanduser().absolute()
    if target.exists() and (not target.is_dir() or any(target.iterdir())) and not overwrite:
        raise SynthkdError(
            f"{out_dir} already exists and is not empty (use --overwrite to replace it)"
        )
    version = store.version() if version is None else version
    table = store.read(version)
    if "accepted" in table.column_names:
        table = table.filter(pc.fill_null(table["accepted"], True))
    edges = _edges(table.sort_by("id"), store.kind)
    nodes = len(set(edges["head"].to_pylist()) | set(edges["tail"].to_pylist()))
    with staged_dir(target) as staging:
        pq.write_table(edges, staging / "edges.parquet")
        name = Path(str(store.uri).rstrip("/")).parent.name or "corpus"
        (staging / "README.md").write_text(
            _card(name, store.kind, version, edges, nodes), encoding="utf-8"
        )
    return GraphExport(
        path=target,
        version=version,
        edges=edges.num_rows,
        nodes=nodes,
        relations=len(set(edges["relation"].to_pylist())),
    )
