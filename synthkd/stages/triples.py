"""The generative triples student of commonsense and document-KG runs: its training data,
its held-out score on gold the teacher never saw, and what the next round should ask for.

Commonsense (COMET / Symbolic KD): the student learns (event, relation) -> tail from the
corpus (the critic's cut applied) plus the recipe's gold seed triples; it is scored on
`task.heldout_gold` by exact match and token-F1 against the gold tails, and by the
critic's verdict on its tails. Document KG (Distill-SynthKG): the student learns
chunk -> all of the chunk's triples in one step; a corpus record names its chunk by
`chunk_id`, which resolves to the chunk's text through the recipe's documents and
`chunk_tokens` (the same chunking the teacher was prompted with); the seed KG examples
join as real examples. It is scored by triple precision/recall/F1 on held-out chunks.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from synthkd.data import read_rows
from synthkd.errors import SynthkdError
from synthkd.stages.context import RunContext

TRIPLE_KINDS = ("commonsense", "document_kg")
FOCUS_EVENTS = 24
"""Training (event, relation) pairs the critic judges the student's tails on, per round."""
FOCUS_CHUNKS = 8
"""Training chunks the student re-reads per round to find the ones it misses most on."""


def triples_student_enabled(ctx: RunContext) -> bool:
    """A commonsense or document-KG recipe whose student is generative."""
    return ctx.task_kind in TRIPLE_KINDS and ctx.recipe.student.kind == "generative"


def read_heldout(task: Any) -> list[dict[str, Any]]:
    """The task's held-out gold as evaluation items (one line naming the problem if bad).

    Commonsense: {head, relation, tails: [...]} per (head, relation). Document KG:
    {id, chunk, triples: [(s, p, o), ...]} per chunk.
    """
    path = getattr(task, "heldout_gold", None)
    if not path:
        return []
    rows = read_rows(path, "held-out gold file")
    if not rows:
        raise SynthkdError(f"held-out gold file {path}: no rows")
    if task.kind == "commonsense":
        grouped: dict[tuple[str, str], list[str]] = {}
        for n, row in enumerate(rows, 1):
            if not all(
                isinstance(row.get(k), str) and row[k].strip() for k in ("head", "relation", "tail")
            ):
                raise SynthkdError(f"held-out gold file {path}:{n}: needs head, relation, tail")
            grouped.setdefault((row["head"].strip(), row["relation"]), []).append(
                row["tail"].strip()
            )
        return [{"head": h, "relation": r, "tails": t} for (h, r), t in grouped.items()]
    items = []
    for n, row in enumerate(rows, 1):
        text, triples = row.get("chunk", row.get("text")), row.get("triples")
        if not isinstance(text, str) or not text.strip() or not isinstance(triples, list):
            raise SynthkdError(f"held-out gold file {path}:{n}: needs chunk (or text) and triples")
        keys = ("subject", "predicate", "object")
        if not all(
            isinstance(t, dict) and all(isinstance(t.get(k), str) for k in keys) for t in triples
        ):
            raise SynthkdError(
                f"held-out gold file {path}:{n}: each triple needs subject, predicate, object"
            )
        items.append(
            {
                "id": f"heldout#{n - 1}",
                "chunk": " ".join(text.split()),
                "triples": [tuple(t[k] for k in keys) for t in triples],
            }
        )
    return items


def _corpus_rows(ctx: RunContext, round: int, use_cut: bool) -> list[dict[str, Any]]:
    table = ctx.stores().corpus.read()
    rows = sorted(table.to_pylist(), key=lambda r: r["id"])
    rows = [r for r in rows if r["round"] <= round]
    if use_cut:
        rows = [r for r in rows if r.get("accepted") is not False]
    return rows


def chunk_texts(ctx: RunContext) -> dict[str, str]:
    """chunk_id -> chunk text, from the recipe's documents chunked as the teacher saw them."""
    from synthkd.generators import make_task

    task = make_task(ctx.recipe.task.model_dump(), ctx.recipe.templates)
    return {c.chunk_id: c.text for chunks in task.chunks.values() for c in chunks}


def _seed_kg_rows(path: str | None) -> list[dict[str, Any]]:
    rows = []
    for n, row in enumerate(read_rows(path, "seed KG file") if path else []):
        text = " ".join(str(row.get("chunk", row.get("text", ""))).split())
        for t in row.get("triples") or []:
            rows.append(
                {
                    "document_id": "seed_kg",
                    "chunk_id": f"seed_kg#{n}",
                    "chunk_text": text,
                    **{k: t[k] for k in ("subject", "predicate", "object", "quote")},
                }
            )
    return rows


def training_rows(ctx: RunContext, round: int, use_cut: bool = True) -> list[dict[str, Any]]:
    """The triples student's training records: the corpus up to ROUND plus the real examples."""
    return with_real_examples(ctx, _corpus_rows(ctx, round, use_cut))


def with_real_examples(ctx: RunContext, corpus: Any) -> list[dict[str, Any]]:
    """Corpus records (a table or rows) as the triples student's training records: document
    KG records get their chunk's text (chunk -> all its triples), and the recipe's gold
    examples (seed triples, seed KG) join them; the critic's rejects are dropped."""
    task = ctx.recipe.task
    if hasattr(corpus, "to_pylist"):
        corpus = corpus.to_pylist()
    corpus = [r for r in corpus if r.get("accepted") is not False]
    if task.kind == "commonsense":
        keys = ("head", "relation", "tail")
        real = [{k: r[k] for k in keys} for r in read_rows(task.seed_triples, "seed triples")]
        return [{k: r[k] for k in keys} for r in corpus] + real
    from synthkd.training.triples_eval import triple_key

    texts = chunk_texts(ctx)
    rows, seen = [], set()
    for r in corpus + _seed_kg_rows(task.seed_kg):
        text = r.get("chunk_text") or texts.get(r["chunk_id"])
        if not text:
            continue  # a chunk of a document no longer in the recipe
        key = (r["chunk_id"], triple_key((r["subject"], r["predicate"], r["object"])))
        if key in seen:
            continue
        seen.add(key)
        rows.append(
            {
                **{
                    k: r[k]
                    for k in ("document_id", "chunk_id", "subject", "predicate", "object", "quote")
                },
                "chunk_text": text,
            }
        )
    return rows


def fit_triples_student(
    ctx: RunContext,
    round: int,
    use_cut: bool = True,
    name: str = "student",
    previous: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train the round's triples student into RUN/rounds/round-N/NAME, score it on the
    held-out gold, and find what it gets wrong on the training data (for the next round).
    A round that added no training row keeps PREVIOUS (the last round's result): the same
    rows would train the same student, at minutes of CPU for nothing."""
    from synthkd.training import load_student, train_student

    started = time.perf_counter()
    rows = training_rows(ctx, round, use_cut)
    digest = _rows_digest(rows)
    if previous and previous.get("rows_digest") == digest and Path(previous["path"]).exists():
        return {**previous, "reused": True, "seconds": round_seconds(started)}
    out = ctx.run_dir / "rounds" / f"round-{round}" / name
    if out.exists():
        shutil.rmtree(out)
    result = train_student(ctx.student_config(), rows, None, out, progress=False)
    student = load_student(out)
    train_seconds = time.perf_counter() - started
    items = read_heldout(ctx.recipe.task)
    if ctx.task_kind == "commonsense":
        scores = _score_commonsense(ctx, student, items, rows)
    else:
        scores = _score_kg(student, items, rows)
    _card_section(out, ctx.task_kind, scores)
    return {
        "path": str(out),
        "train_rows": len(rows),
        "train_seconds": float(f"{train_seconds:.2f}"),
        "train_loss": result.metrics.get("train_loss"),
        "val_loss": result.metrics.get("val_loss"),
        **scores,
        "rows_digest": digest,
        "reused": False,
        "seconds": round_seconds(started),
    }


def round_seconds(started: float) -> float:
    return float(f"{time.perf_counter() - started:.2f}")


def _rows_digest(rows: list[dict[str, Any]]) -> str:
    import hashlib
    import json

    lines = sorted(json.dumps(r, sort_keys=True, default=str, ensure_ascii=False) for r in rows)
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()[:16]


def _card_section(out: Path, kind: str, scores: dict[str, Any]) -> None:
    """The held-out figures, appended to the student's model card (README.md)."""
    card = out / "README.md"
    if not scores or not card.exists():
        return
    keys = [k for k in scores if k.startswith("val_") and scores[k] is not None]
    lines = ["", "## Held-out gold (never shown to the teacher)", ""]
    lines += [f"- {k[4:].replace('_', ' ')}: {scores[k]:.3f}" for k in keys]
    lines.append(
        f"- items: {scores.get('heldout_items')}; triples/s: {scores['triples_per_s']:.2f}"
    )
    if kind == "document_kg":
        lines.append(f"- triple matching: {scores.get('normalisation')}")
    card.write_text(card.read_text().rstrip() + "\n" + "\n".join(lines) + "\n")


def judge_tails(
    ctx: RunContext, heads: list[str], relations: list[str], tails: list[str]
) -> list[bool] | None:
    """The run's critic on (head, relation, tail) triples: accepted or not (None: no critic)."""
    path = ctx.run_dir / "critic"
    if not (path / "critic.json").exists() or not tails:
        return None
    from synthkd.stages.critic import load_critic

    critic = load_critic(path)
    rows = [
        {"head": h, "relation": r, "tail": t or "-"}
        for h, r, t in zip(heads, relations, tails, strict=True)
    ]
    return [bool(s >= critic.threshold) for s in critic.score(rows)]


def _score_commonsense(ctx, student, items, rows) -> dict[str, Any]:
    from synthkd.training import evaluate_tails

    if not items:
        return {}
    report = evaluate_tails(student, items)
    predictions = report.pop("predictions")
    verdict = judge_tails(
        ctx, [i["head"] for i in items], [i["relation"] for i in items], predictions
    )
    per = report["per_relation_token_f1"]
    # training events whose generated tails the critic rejects: the next round asks again
    seen, probes = set(), []
    for r in rows:
        if (r["head"], r["relation"]) not in seen and len(probes) < FOCUS_EVENTS:
            seen.add((r["head"], r["relation"]))
            probes.append(r)
    probes = probes[:: max(1, len(probes) // FOCUS_EVENTS)][:FOCUS_EVENTS]
    from synthkd.training._triples import commonsense_prompt

    probe_tails = student.generate(
        [commonsense_prompt(p["head"], p["relation"]) for p in probes], max_new_tokens=16
    )
    probe_ok = judge_tails(
        ctx, [p["head"] for p in probes], [p["relation"] for p in probes], probe_tails
    )
    rejected = [
        {"text": p["head"], "label": p["relation"], "predicted": tail, "confidence": 1.0}
        for p, tail, ok in zip(probes, probe_tails, probe_ok or [True] * len(probes), strict=True)
        if not ok
    ]
    return {
        "val_exact_match": report["exact_match"],
        "val_token_f1": report["token_f1"],
        "val_critic_accuracy": sum(verdict) / len(verdict) if verdict else None,
        "per_relation": per,
        "heldout_items": len(items),
        "triples_per_s": report["triples_per_s"],
        "samples": [
            {"head": i["head"], "relation": i["relation"], "generated": p, "gold": i["tails"]}
            for i, p in list(zip(items, predictions, strict=True))[:6]
        ],
        "critic_rejected_events": rejected[:10],
    }


def _score_kg(student, items, rows) -> dict[str, Any]:
    from synthkd.training import evaluate_kg

    if not items:
        return {}
    report = evaluate_kg(student, items)
    # training chunks the student misses most triples of (against the corpus): asked again
    by_chunk: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r["document_id"] == "seed_kg":
            continue
        entry = by_chunk.setdefault(
            r["chunk_id"],
            {
                "id": r["chunk_id"],
                "document_id": r["document_id"],
                "chunk": r["chunk_text"],
                "triples": [],
            },
        )
        entry["triples"].append((r["subject"], r["predicate"], r["object"]))
    probes = sorted(by_chunk.values(), key=lambda e: -len(e["triples"]))[:FOCUS_CHUNKS]
    missed = []
    if probes:
        probe = evaluate_kg(student, probes)
        missed = sorted(
            (
                {
                    "chunk_id": p["id"],
                    "document_id": p["document_id"],
                    "missed": m,
                    "of": len(p["triples"]),
                }
                for p, m in zip(probes, probe["missed_per_item"], strict=True)
            ),
            key=lambda x: -x["missed"],
        )
    return {
        "val_kg_precision": report["precision"],
        "val_kg_recall": report["recall"],
        "val_kg_f1": report["f1"],
        "val_kg_pair_f1": report["pair_f1"],
        "per_relation": report["per_relation_recall"],
        "heldout_items": len(items),
        "heldout_gold_triples": report["gold_triples"],
        "predicted_triples": report["predicted_triples"],
        "triples_per_s": report["triples_per_s"],
        "normalisation": report["normalisation"],
        "samples": report["samples"],
        "missed_chunks": missed,
    }


def primary_score(kind: str, student: dict[str, Any]) -> float:
    """The number round selection and early stopping compare (higher is better)."""
    key = "val_token_f1" if kind == "commonsense" else "val_kg_f1"
    value = student.get(key)
    if kind == "document_kg" and not value:
        value = 0.5 * (student.get("val_kg_pair_f1") or 0.0)  # ties broken by entity pairs
    return float(value or 0.0)


def triples_focus(
    kind: str, student: dict[str, Any], per_label: int, groups: list[str]
) -> tuple[dict[str, Any], dict[str, int]]:
    """What the next round asks for: the weakest relations first (commonsense: more tails of
    them, and tails for the training events whose student tails the critic rejected;
    document KG: the chunks with the most missed triples, shown seed examples of the
    weakest relations)."""
    per = student.get("per_relation") or {}
    mean = sum(per.values()) / len(per) if per else 0.0
    weak = sorted((r for r, s in per.items() if s <= mean), key=lambda r: (per[r], r))
    report = "Held-out scores per relation: " + ", ".join(
        f"{r} {s:.2f}" for r, s in sorted(per.items(), key=lambda x: (x[1], x[0]))
    )
    if kind == "commonsense":
        weights = {g: (1.0 - per.get(g, mean)) + 0.05 for g in groups}
        total = per_label * len(groups) // 2
        wanted = {
            g: max(1, int(0.5 + total * w / sum(weights.values()))) for g, w in weights.items()
        }
        asked = [r for r in weak if r in groups] or None
        focus = {
            "labels": asked,
            "hard_negatives": student.get("critic_rejected_events") or [],
            "report": report,
        }
        return focus, wanted
    missed = [m for m in student.get("missed_chunks") or [] if m["missed"] > 0]
    chunks = [m["chunk_id"] for m in missed[:4]]
    documents = sorted({m["document_id"] for m in missed[:4]}) or list(groups)
    wanted = {g: (per_label if g in documents else 0) for g in groups}
    focus = {
        "labels": weak[:5] or None,
        "hard_negatives": [
            {"text": c, "label": "chunk", "predicted": "", "confidence": float(m["missed"])}
            for c, m in zip(chunks, missed, strict=False)
        ],
        "report": report,
    }
    return focus, wanted
