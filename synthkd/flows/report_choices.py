"""Report sections for the loop's CV choices and the students' accuracy/speed curve."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def fmt(value: Any, digits: int = 3) -> str:
    """A report cell: – for missing, floats to DIGITS places."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def critic_sources(run_dir: Path) -> list[str]:
    """One line: how many critic labels came from the seeds, their corruptions and the
    label evidence (read from the critic's critic.json; nothing when it has no counts)."""
    import json

    try:
        meta = json.loads((run_dir / "critic" / "critic.json").read_text())
    except (OSError, ValueError):
        return []
    sources = (meta.get("metrics") or {}).get("label_sources") or {}
    if not sources:
        return []
    names = {
        "seed_positives": "seed positives",
        "corruption_negatives": "corruption negatives",
        "evidence_positives": "evidence positives (generated records the label evidence confirmed)",
        "evidence_negatives": "evidence negatives (asked-for labels it overruled)",
    }
    parts = [f"{sources[key]} {name}" for key, name in names.items() if key in sources]
    parts += [f"{v} {k.replace('_', ' ')}" for k, v in sources.items() if k not in names]
    return [f"\nCritic trained on: {', '.join(parts)}.\n"]


def decisions_section(rounds: Sequence[dict[str, Any]]) -> list[str]:
    """Per round: did its records join (CV before/after), and which critic cut was chosen."""
    decided = [r for r in rounds if r.get("decision")]
    if not decided:
        return []
    metric = decided[0]["decision"].get("metric", "log_loss")
    shown = "−log loss" if metric == "log_loss" else metric.replace("_", " ")
    rows = [
        "\n## Choices made on your real examples\n",
        "Each round is judged by k-fold cross-validation over your real examples (frozen "
        f"MiniLM + logistic head on corpus + real, each fold deciding the corpus labels again "
        f"from its own real examples; {shown}, higher is better): a guided "
        "round's records join the training set only if the score does not drop, and the "
        "critic's cut is the one with the best score (ties: no cut).\n\n",
        "| round | records join | CV before | CV after | training rounds | cut (critic score >=) "
        "| CV no cut | CV chosen |\n|---:|---|---:|---:|---|---:|---:|---:|\n",
    ]
    for r in decided:
        d, cut = r["decision"], r["decision"].get("cut") or {}
        joins = "yes" if d["accepted"] else "no (turned down)"
        if d.get("before") is None:
            joins = "yes (first round)"
        rows.append(
            f"| {r['round']} | {joins} | {fmt(d.get('before'))} | {fmt(d.get('after'))} "
            f"| {', '.join(map(str, d['rounds']))} | {fmt(d.get('threshold'))} "
            f"| {fmt(cut.get('no_cut'))} | {fmt(cut.get('best'))} |\n"
        )
    return rows


def pool_section(rounds: Sequence[dict[str, Any]]) -> list[str]:
    """One line per round that labelled the recipe's unlabelled pool: what it added."""
    lines = []
    for r in rounds:
        pool = r.get("unlabelled_pool")
        if not pool:
            continue
        per_label = ", ".join(f"{k} {v}" for k, v in (pool.get("per_label") or {}).items())
        teacher = pool.get("teacher") or {}
        voted = (
            f"teacher voted (accuracy {fmt(teacher.get('accuracy'))} on the real examples)"
            if teacher.get("used")
            else f"classifier alone ({teacher.get('why') or 'no teacher'})"
        )
        if pool.get("cv_before") is None:
            verdict = f"left out ({pool.get('why') or 'nothing labelled confidently'})"
        else:
            metric = "−log loss" if pool.get("metric") == "log_loss" else pool.get("metric")
            metric += " (higher is better)"
            verdict = f"CV {metric} {fmt(pool['cv_before'])} -> {fmt(pool['cv_after'])}: " + (
                "joined" if pool.get("joined") else "left out (the CV dropped)"
            )
        lines.append(
            f"\nUnlabelled pool (round {r['round']}): {pool['pool_texts']} texts, "
            f"{pool.get('candidates', 0)} labelled"
            + (f" ({per_label})" if per_label else "")
            + f", {voted}; {verdict}.\n"
        )
    return lines


def speed_points(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """(name, val accuracy, examples/s) of the teacher and every student form measured."""
    points = []
    teacher = summary.get("teacher") or {}
    if teacher.get("examples_per_s"):
        points.append(
            {
                "name": "teacher",
                "val_accuracy": teacher.get("accuracy"),
                "examples_per_s": teacher["examples_per_s"],
            }
        )
    speed = summary.get("student_speed") or {}
    if speed.get("examples_per_s"):
        points.append(
            {
                "name": speed.get("name", "student"),
                "val_accuracy": summary.get("student_accuracy"),
                "examples_per_s": speed["examples_per_s"],
            }
        )
    for key, name in (("student_serving", "int8 ONNX"), ("student_static", "static")):
        row = summary.get(key) or {}
        if row.get("examples_per_s"):
            points.append({**row, "name": name})
    return [p for p in points if p.get("val_accuracy") is not None]


def plot_speed_accuracy(summary: dict[str, Any], path: Path) -> Path | None:
    """Validation accuracy against examples/s (log scale): the forms a user can pick."""
    points = speed_points(summary)
    if len(points) < 2:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for p in points:
        ax.scatter(p["examples_per_s"], p["val_accuracy"], s=40)
        ax.annotate(
            p["name"],
            (p["examples_per_s"], p["val_accuracy"]),
            textcoords="offset points",
            xytext=(5, 5),
            fontsize=8,
        )
    ax.set_xscale("log")
    ax.set_xlabel("examples/s (batch 32, this machine, log scale)")
    ax.set_ylabel("validation accuracy")
    ax.set_title("Accuracy vs speed")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
