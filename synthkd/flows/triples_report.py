"""report.md of a commonsense or document-KG run: rounds with held-out scores, plots,
student vs teacher on the same held-out gold, what each guided round asked for, and the
reject reasons with their share (the yield of the teacher's prompts and parser)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from synthkd.flows.report_choices import fmt as _fmt  # noqa: E402


def _rate(value: float | None) -> str:
    """Three significant figures: a teacher that yields two triples in a minute is not 0.0/s."""
    return "–" if value is None else f"{value:.3g}"


LABELS = {
    "val_exact_match": "exact match",
    "val_token_f1": "token-F1",
    "val_critic_accuracy": "critic-judged accuracy",
    "val_kg_precision": "triple precision",
    "val_kg_recall": "triple recall",
    "val_kg_f1": "triple F1",
    "val_kg_pair_f1": "entity-pair F1",
}


def _keys(rounds: Sequence[dict[str, Any]]) -> list[str]:
    return [k for k in LABELS if any(k in r for r in rounds)]


def _plots(run_dir: Path, rounds: Sequence[dict[str, Any]], keys: list[str]) -> list[str]:
    plots = run_dir / "plots"
    plots.mkdir(exist_ok=True)
    xs = [r["round"] for r in rounds]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for key in keys:
        ax.plot(xs, [r.get(key) or 0.0 for r in rounds], marker="o", label=LABELS[key])
    ax.set_xlabel("round")
    ax.set_ylabel("held-out score")
    ax.set_ylim(0, 1)
    ax.set_xticks(xs)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(plots / "heldout_per_round.png", dpi=100)
    plt.close(fig)
    relations = sorted({k for r in rounds for k in (r.get("per_relation") or {})})
    parts = ["\n![held-out scores per round](plots/heldout_per_round.png)\n"]
    if relations:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        width = 0.8 / max(1, len(rounds))
        for i, r in enumerate(rounds):
            values = [(r.get("per_relation") or {}).get(rel, 0.0) for rel in relations]
            ax.bar(
                [j + i * width for j in range(len(relations))],
                values,
                width,
                label=f"round {r['round']}",
            )
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(relations))])
        ax.set_xticklabels(relations, rotation=45, ha="right", fontsize=7)
        ax.set_ylim(0, 1)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(plots / "per_relation_per_round.png", dpi=100)
        plt.close(fig)
        parts.append("![per-relation held-out score per round](plots/per_relation_per_round.png)\n")
    return parts


def _teacher_rows(summary: dict[str, Any]) -> list[str]:
    student, teacher = summary["triples_student"], summary.get("teacher") or {}
    if student["kind"] == "commonsense":
        cols = [
            ("val_exact_match", "exact_match"),
            ("val_token_f1", "token_f1"),
            ("val_critic_accuracy", "critic_accuracy"),
        ]
    else:
        cols = [
            ("val_kg_precision", "kg_precision"),
            ("val_kg_recall", "kg_recall"),
            ("val_kg_f1", "kg_f1"),
            ("val_kg_pair_f1", "kg_pair_f1"),
        ]
    head = "| model | " + " | ".join(LABELS[c] for c, _ in cols) + " | triples/s |\n"
    lines = [head, "|---|" + "---:|" * (len(cols) + 1) + "\n"]
    lines.append(
        f"| student (generative LoRA, round {student['round']}) | "
        + " | ".join(_fmt(student.get(c)) for c, _ in cols)
        + f" | {_rate(student.get('triples_per_s'))} |\n"
    )
    if teacher:
        lines.append(
            f"| teacher ({teacher.get('name', '?')}, its own prompts and checks) | "
            + " | ".join(_fmt(teacher.get(t)) for _, t in cols)
            + f" | {_rate(teacher.get('triples_per_s'))} |\n"
        )
    return lines


def _rejects(rounds: Sequence[dict[str, Any]]) -> list[str]:
    parts = [
        "\n## Why samples were rejected\n",
        "| round | reason | count | share of generated |\n|---:|---|---:|---:|\n",
    ]
    for r in rounds:
        total = max(1, r.get("generated") or 0)
        for reason, count in sorted((r.get("reject_reasons") or {}).items(), key=lambda x: -x[1]):
            parts.append(f"| {r['round']} | {reason} | {count} | {count / total:.1%} |\n")
    return parts


def triples_report(
    run_dir: Path, recipe_name: str, rounds: Sequence[dict[str, Any]], summary: dict[str, Any]
) -> str:
    student = summary["triples_student"]
    keys = _keys(rounds)
    parts = [f"# synthkd run report: {recipe_name}\n"]
    parts.append(
        f"Best student: round {student['round']} (generative LoRA), held-out "
        + ", ".join(f"{LABELS[k]} {_fmt(student.get(k))}" for k in keys)
        + f" on {student.get('heldout_items')} held-out items. "
        f"Stopped: {summary.get('stop_reason', '–')}.\n"
    )
    parts.append("\n## Rounds\n")
    parts.append(
        "| round | generated | accepted | critic accepted | train rows | "
        + " | ".join(LABELS[k] for k in keys)
        + " | seconds |\n|---:|---:|---:|---:|---:|"
        + "---:|" * (len(keys) + 1)
        + "\n"
    )
    for r in rounds:
        parts.append(
            f"| {r['round']} | {r['generated']} | {r['accepted']} | {_fmt(r.get('critic_accepted'))} "
            f"| {_fmt(r.get('student_train_rows'))}{' (no new row: kept)' if r.get('student_reused') else ''} | "
            + " | ".join(_fmt(r.get(k)) for k in keys)
            + f" | {_fmt(r.get('seconds'), 1)} |\n"
        )
    if keys:
        parts.extend(_plots(run_dir, rounds, keys))
    if student.get("normalisation"):
        parts.append(f"\nTriple matching: {student['normalisation']}.\n")
    parts.append("\n## Student vs teacher (same held-out items)\n\n")
    parts.extend(_teacher_rows(summary))
    parts.append(
        "\ntriples/s on this machine; the student writes all of an item's triples in one "
        "generation, the teacher answers through its prompts (and the response cache).\n"
    )
    focus = summary.get("guided_focus") or {}
    if focus:
        parts.append("\n## Guided rounds\n")
        for r, f in focus.items():
            asked = ", ".join(f.get("labels") or []) or "every relation"
            extra = len(f.get("hard_negatives") or [])
            what = "chunks re-read" if student["kind"] == "document_kg" else "events asked again"
            parts.append(
                f"- round {r}: weakest relations {asked}; {extra} {what}. {f.get('report', '')}\n"
            )
    parts.extend(_rejects(rounds))
    samples = student.get("samples") or []
    if samples:
        parts.append("\n## Student samples (held-out)\n\n")
        for s in samples[:4]:
            gold = s.get("gold")
            parts.append(
                f"- `{(s.get('chunk') or s.get('head', '') + ' / ' + s.get('relation', ''))[:120]}` -> `{s.get('generated')}` (gold: `{gold}`)\n"
            )
    if (run_dir / "critic" / "precision_yield.png").exists():
        parts.append("\n## Critic precision-yield curve\n\n![critic](critic/precision_yield.png)\n")
    return "".join(parts)
