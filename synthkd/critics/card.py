"""The critic card: what a critic was trained on, how good it is, and where it cuts."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def write_card(path: Path, critic: Any, selection: str) -> None:
    """Write the markdown card for `critic` (a trained `Critic`)."""
    m = critic.metrics
    lines = [
        "---",
        "library_name: synthkd",
        "tags: [synthkd, critic, " + critic.kind + "]",
        "---",
        "",
        f"# Critic `{critic.version}`",
        "",
        f"Binary acceptability critic for **{critic.kind}** records, "
        f"trained {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC.",
        "",
        "| setting | value |",
        "| --- | --- |",
        f"| version | `{critic.version}` |",
        f"| method | {_method(critic)} |",
        f"| encoder | {critic.encoder_dir or 'all-MiniLM-L6-v2 (bundled)'} |",
        f"| encoder backend | {critic.encoder_backend if critic.method == 'logistic' else 'torch'} |",
        f"| threshold | {critic.threshold:.4f} |",
        f"| target precision | {critic.target_precision:.2f} |",
        f"| threshold chosen on | {selection} |",
        "",
        "## Label sources",
        "",
        "| source | acceptable | unacceptable |",
        "| --- | ---: | ---: |",
    ]
    for source, counts in sorted(critic.label_counts.items()):
        lines.append(f"| {source} | {counts['accept']} | {counts['reject']} |")
    sources = m.get("label_sources") or {}
    if sources.get("evidence_positives") or sources.get("evidence_negatives"):
        lines += ["", sources_sentence(sources)]
    dropped = m.get("dropped_labels") or {}
    if dropped:
        lines += [
            "",
            "Labels not used: " + ", ".join(f"{k}: {v}" for k, v in sorted(dropped.items())),
        ]
    lines += [
        "",
        f"{m['labels']} labels: {m['train']} for training, {m['holdout']} held out.",
        "",
        "## Metrics (held-out split)",
        "",
        "| metric | value |",
        "| --- | ---: |",
        f"| ROC-AUC | {_fmt(m['holdout_roc_auc'])} |",
        f"| average precision | {_fmt(m['holdout_average_precision'])} |",
        f"| share acceptable before the cut | {_fmt(m['holdout_base_rate'])} |",
        f"| precision among kept at the threshold | {_fmt(m['holdout_precision_at_threshold'])} |",
        f"| share kept at the threshold | {_fmt(m['holdout_kept_share'])} |",
        "",
        f"On the {selection} the threshold keeps {m['selection_kept_share']:.1%} of records "
        f"at precision {m['selection_precision_at_threshold']:.3f}.",
    ]
    if m["holdout_precision_at_threshold"] < critic.target_precision:
        lines += [
            "",
            f"**On the held-out split the precision at this threshold is "
            f"{m['holdout_precision_at_threshold']:.3f}, below the target**: the critic does "
            "not separate these records reliably; check the student with and without its cut.",
        ]
    if not m["target_met"]:
        lines += [
            "",
            f"**The target precision {critic.target_precision:.2f} was not reached**; "
            "the threshold is the most precise cut available. More or better labels help.",
        ]
    lines += [
        "",
        "![precision vs share kept](precision_yield.png)",
        "",
        "## Use",
        "",
        "A critic is judged by what it does to the student: train the student with and "
        "without the cut and keep the cut only if validation does not drop. With "
        "`critic.balance`, every label (relation) keeps the same share of its records, so "
        "the cut cannot starve a hard class.",
        "",
        "```",
        f"synthkd critic score {critic.path.name if critic.path else 'CRITIC_DIR'} --corpus CORPUS",
        "```",
        "",
    ]
    path.write_text("\n".join(lines))


def sources_sentence(sources: dict[str, int]) -> str:
    """One line: what the critic learned from (seeds, corruptions, label evidence)."""
    return (
        f"Trained on {sources.get('seed_positives', 0)} seed positives, "
        f"{sources.get('corruption_negatives', 0)} corruption negatives, "
        f"{sources.get('evidence_positives', 0)} records the label evidence confirmed and "
        f"{sources.get('evidence_negatives', 0)} asked-for labels it overruled."
    )


def _method(critic: Any) -> str:
    if critic.method == "logistic":
        return (
            "MiniLM mean-pooled embeddings of both sides, logistic regression, sigmoid calibration"
        )
    return "MiniLM cross-encoder fine-tuned with LoRA, Platt-calibrated"
