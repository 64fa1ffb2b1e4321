"""What the label evidence decided, per record and per label, and how to apply it."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from synthkd.errors import SynthkdError

REASON = "label_disagreement"
DECISIONS = ("kept", "relabelled", "rejected")


@dataclass
class LabelEvidence:
    """Per record: decision, final label, agreed distribution; plus counts for the report."""

    labels: list[str]
    """The label set, in column order of `signals`."""
    decisions: list[str]
    """"kept" | "relabelled" | "rejected", per record."""
    final_labels: list[str]
    """The label each record trains with (the asked-for one for rejected records)."""
    soft_labels: list[dict[str, float] | None]
    """The agreed distribution ({label: p}); None for rejected records."""
    reasons: list[str | None]
    """`label_disagreement` for rejected records, else None."""
    asked: list[str]
    """The label each record was asked for."""
    weights: dict[str, float]
    """Signal name -> weight used (chance-corrected balanced accuracy on real examples)."""
    signals: dict[str, np.ndarray] = field(repr=False, default_factory=dict)
    """Signal name -> (n, len(labels)) probabilities; NaN rows where a signal is absent."""
    label_issues: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, bool))
    """cleanlab's flags (True: the asked-for label is likely wrong)."""

    def counts(self) -> dict[str, dict[str, int]]:
        """Per label: kept, relabelled (away from it), dropped, relabelled_in (to it)."""
        out = {
            name: {"kept": 0, "relabelled": 0, "dropped": 0, "relabelled_in": 0}
            for name in self.labels
        }
        for asked, final, decision in zip(
            self.asked, self.final_labels, self.decisions, strict=True
        ):
            if decision == "kept":
                out[asked]["kept"] += 1
            elif decision == "relabelled":
                out[asked]["relabelled"] += 1
                out[final]["relabelled_in"] += 1
            else:
                out[asked]["dropped"] += 1
        return out

    def summary(self) -> dict[str, Any]:
        """Totals, per-label counts and signal weights, ready for metrics.json/report.md."""
        totals = {d: self.decisions.count(d) for d in DECISIONS}
        return {**totals, "per_label": self.counts(), "weights": dict(self.weights)}

    def apply(self, records: Sequence[Mapping[str, Any]]) -> tuple[list[dict], list[dict]]:
        """(accepted, rejects): accepted rows carry the final label and soft_labels (JSON),
        rejects carry reason `label_disagreement`; both keep every other column."""
        if len(records) != len(self.decisions):
            raise SynthkdError(
                f"label evidence covers {len(self.decisions)} records, not {len(records)}"
            )
        accepted, rejects = [], []
        for i, row in enumerate(records):
            out = dict(row)
            if self.decisions[i] == "rejected":
                out["reason"] = REASON
                rejects.append(out)
                continue
            out["label"] = self.final_labels[i]
            out["soft_labels"] = json.dumps(self.soft_labels[i], sort_keys=True)
            out["teacher_confidence"] = out.get("teacher_confidence")
            accepted.append(out)
        return accepted, rejects

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("signals")
        data["label_issues"] = self.label_issues.tolist()
        return data


__all__ = ["DECISIONS", "REASON", "LabelEvidence"]
