"""The dataset card: Hub metadata (YAML, written by huggingface_hub) and a lineage section.

A synthetic corpus is only worth sharing with its provenance: which teachers wrote it,
from which prompt templates, which critic kept what at which threshold, and how much
of each round survived.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from synthkd.data.history import CorpusVersion
from synthkd.data.run import RoundAcceptance

if TYPE_CHECKING:  # huggingface_hub is slow to import; only cards need it
    from huggingface_hub import DatasetCard

TASK_CATEGORIES = {
    "labelled": ["text-classification"],
    "commonsense": ["text-generation"],
    "document_kg": ["text-generation"],
}

_DESCRIPTION = {
    "labelled": "labelled text-classification examples",
    "commonsense": "commonsense knowledge triples (head, relation, tail)",
    "document_kg": "knowledge-graph triples grounded in quoted document chunks",
}


def size_category(rows: int) -> str:
    """The Hub's size_categories bucket for `rows` examples."""
    bounds = [
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
        (10_000_000, "1M<n<10M"),
        (100_000_000, "10M<n<100M"),
        (1_000_000_000, "100M<n<1B"),
    ]
    for bound, name in bounds:
        if rows < bound:
            return name
    return "n>1T" if rows >= 1_000_000_000_000 else "1B<n<10B"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _counted(values: list[Any], limit: int = 20) -> list[tuple[Any, int]]:
    counts = Counter(values)
    return sorted(counts.items(), key=lambda item: (-item[1], str(item[0])))[:limit]


def build_card(
    corpus: pa.Table,
    *,
    kind: str,
    version: int,
    split_rows: Mapping[str, int],
    history: Sequence[CorpusVersion],
    acceptance: Sequence[RoundAcceptance],
    group_column: str,
    license: str = "other",
    pretty_name: str | None = None,
    critic_threshold: float | None = None,
) -> DatasetCard:
    """A DatasetCard whose YAML block huggingface_hub renders and whose body is lineage."""
    from huggingface_hub import DatasetCard, DatasetCardData

    total = corpus.num_rows
    recipes = sorted(set(corpus.column("recipe").to_pylist()))
    name = pretty_name or f"synthkd {kind} corpus ({', '.join(recipes) or 'empty'})"
    data = DatasetCardData(
        license=license,
        pretty_name=name,
        task_categories=TASK_CATEGORIES[kind],
        size_categories=[size_category(total)],
        tags=["synthetic", "synthkd", "knowledge-distillation", kind],
        configs=[
            {
                "config_name": "default",
                "data_files": [
                    {"split": split, "path": f"data/{split}-*.parquet"} for split in split_rows
                ],
            }
        ],
    )
    sections = [f"# {name}", ""]
    sections.append(
        f"{total} {_DESCRIPTION[kind]} written by teacher LLMs and kept by synthkd's filters "
        f"and critic; exported from corpus version {version}."
    )
    sections += ["", "## Splits", "", _table(["split", "rows"], list(split_rows.items()))]
    sections += ["", "## Lineage", "", "### Teachers", ""]
    teachers = list(
        zip(
            corpus.column("teacher_backend").to_pylist(),
            corpus.column("teacher_model").to_pylist(),
            strict=True,
        )
    )
    sections.append(
        _table(["backend", "model", "rows"], [(b, m, n) for (b, m), n in _counted(teachers)])
    )
    if "meta" in corpus.column_names:  # where records came from: teacher, unlabelled pool
        sources = [_source(m) for m in corpus.column("meta").to_pylist()]
        sections += ["", "### Sources", ""]
        sections.append(_table(["meta.source", "rows"], _counted(sources)))
    sections += ["", "### Prompt templates", ""]
    templates = corpus.column("template_hash").to_pylist()
    sections.append(_table(["template hash", "rows"], _counted(templates)))
    sections += ["", "### Sampling", ""]
    sampling = [_compact(s) for s in corpus.column("sampling").to_pylist()]
    sections.append(_table(["sampling parameters", "rows"], _counted(sampling, limit=10)))
    sections += ["", "### Critic", ""]
    critic_rows = []
    versions = corpus.column("critic_version").to_pylist()
    accepted = corpus.column("accepted").to_pylist()
    for critic, count in _counted(versions):
        kept = sum(1 for v, a in zip(versions, accepted, strict=True) if v == critic and a)
        critic_rows.append((critic or "(not scored)", count, kept))
    sections.append(_table(["critic version", "rows", "accepted"], critic_rows))
    threshold = "not recorded" if critic_threshold is None else f"{critic_threshold:g}"
    sections += ["", f"Critic threshold: {threshold}."]
    sections += ["", "### Acceptance per round", ""]
    sections.append(
        _table(
            ["round", "accepted", "rejected", "acceptance rate"],
            [(a.round, a.accepted, a.rejected, f"{a.rate:.1%}") for a in acceptance],
        )
        if acceptance
        else "No rejects table was found beside the corpus."
    )
    sections += ["", f"### Distribution by {group_column}", ""]
    groups = corpus.column(group_column).to_pylist()
    sections.append(
        _table(
            [group_column, "rows", "share"],
            [(g, n, f"{n / total:.1%}") for g, n in _counted(groups, limit=50)],
        )
    )
    sections += ["", "### Corpus versions", ""]
    sections.append(
        _table(
            ["version", "committed (UTC)", "operation", "rows", "message"],
            [
                (
                    v.version,
                    v.timestamp.strftime("%Y-%m-%d %H:%M:%S"),
                    v.operation,
                    v.rows,
                    v.message,
                )
                for v in list(history)[-20:]
            ],
        )
    )
    sections += [
        "",
        "Every row keeps its lineage columns (teacher, template hash, sampling, sample key, "
        "raw completion, critic score and version), so any example can be traced back to "
        "the prompt that produced it.",
        "",
    ]
    content = f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(sections)
    return DatasetCard(content)


def _source(meta: str | None) -> str:
    """A record's `meta.source` ("unlabelled_pool", ...); "teacher" when it names none."""
    try:
        found = json.loads(meta).get("source") if meta else None
    except (TypeError, ValueError, AttributeError):
        found = None
    return str(found) if found else "teacher"


def _compact(sampling: str) -> str:
    try:
        return json.dumps(json.loads(sampling), sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        return str(sampling)
