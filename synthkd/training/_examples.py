"""Turning a corpus (Arrow table, `datasets` dataset, DataFrame, rows) into training lists.

Every student kind reads its data through here, so a missing column or an empty corpus
is the same one-line error whichever student the user picked.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from synthkd.errors import SynthkdError


@dataclass
class LabelledExamples:
    """Texts with their hard label and, where the teacher gave one, its label distribution."""

    texts: list[str]
    labels: list[str]
    soft_labels: list[dict[str, float] | None]

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def label_set(self) -> list[str]:
        """Every label named by a hard label or a soft distribution, sorted."""
        names = set(self.labels)
        for dist in self.soft_labels:
            if dist:
                names.update(dist)
        return sorted(names)

    def targets(self, labels: list[str], use_soft_labels: bool) -> list[list[float]]:
        """One probability vector per example over `labels` (one-hot when no soft label)."""
        index = {name: i for i, name in enumerate(labels)}
        rows = []
        for label, dist in zip(self.labels, self.soft_labels, strict=True):
            row = [0.0] * len(labels)
            if use_soft_labels and dist:
                for name, prob in dist.items():
                    if name in index:
                        row[index[name]] = prob
                total = sum(row)
                row = [p / total for p in row] if total > 0 else row
            if not use_soft_labels or not dist or sum(row) == 0:
                row = [0.0] * len(labels)
                row[index[label]] = 1.0
            rows.append(row)
        return rows


def rows_of(data: Any, what: str) -> dict[str, list[Any]]:
    """Columns of `data` as a dict of lists, whatever tabular type it came as."""
    if data is None:
        raise SynthkdError(f"{what} is missing")
    if hasattr(data, "to_pydict"):  # pyarrow.Table / RecordBatch
        return data.to_pydict()
    if hasattr(data, "to_dict") and hasattr(data, "column_names"):  # datasets.Dataset
        return data.to_dict()
    if hasattr(data, "to_dict") and hasattr(data, "columns"):  # pandas.DataFrame
        return data.to_dict(orient="list")
    if isinstance(data, dict):
        return {k: list(v) for k, v in data.items()}
    if isinstance(data, list):
        columns: dict[str, list[Any]] = {}
        for i, row in enumerate(data):
            if not isinstance(row, dict):
                raise SynthkdError(f"{what} row {i} is not a record (got {type(row).__name__})")
            for key in row:
                columns.setdefault(key, [None] * i)
            for key, values in columns.items():
                values.append(row.get(key))
        return columns
    raise SynthkdError(f"{what} must be a table of records, not {type(data).__name__}")


def accepted_only(columns: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """Drop rows the critic marked accepted == False (null means not judged: kept)."""
    flags = columns.get("accepted")
    if flags is None or all(flag is not False for flag in flags):
        return columns
    keep = [i for i, flag in enumerate(flags) if flag is not False]
    return {k: [v[i] for i in keep] for k, v in columns.items()}


def _parse_soft(value: Any, row: int, what: str) -> dict[str, float] | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise SynthkdError(f"{what} row {row}: soft_labels is not JSON ({exc.msg})") from exc
    if not isinstance(value, dict) or not value:
        raise SynthkdError(f"{what} row {row}: soft_labels must be a JSON object {{label: prob}}")
    try:
        dist = {str(k): float(v) for k, v in value.items()}
    except (TypeError, ValueError) as exc:
        raise SynthkdError(f"{what} row {row}: soft_labels probabilities must be numbers") from exc
    if any(p < 0 or math.isnan(p) for p in dist.values()) or sum(dist.values()) <= 0:
        raise SynthkdError(f"{what} row {row}: soft_labels must be non-negative and sum above 0")
    return dist


def labelled_examples(
    data: Any,
    *,
    what: str = "training data",
    text_column: str = "text",
    label_column: str = "label",
    soft_column: str = "soft_labels",
) -> LabelledExamples:
    """Read texts, hard labels and optional soft labels; one clear error for bad input."""
    columns = accepted_only(rows_of(data, what))
    if not any(columns.values()):
        raise SynthkdError(f"{what} is empty: no records to train or evaluate on")
    for name in (text_column, label_column):
        if name not in columns:
            have = ", ".join(sorted(columns)) or "none"
            raise SynthkdError(f"{what} has no {name!r} column (columns: {have})")
    texts, labels = columns[text_column], columns[label_column]
    if not texts:
        raise SynthkdError(f"{what} is empty: no records to train or evaluate on")
    softs = columns.get(soft_column) or [None] * len(texts)
    out = LabelledExamples([], [], [])
    for i, (text, label, soft) in enumerate(zip(texts, labels, softs, strict=True)):
        if not isinstance(text, str) or not text.strip():
            raise SynthkdError(f"{what} row {i}: {text_column!r} is empty or not a string")
        if label is None or str(label).strip() == "":
            raise SynthkdError(f"{what} row {i}: {label_column!r} is empty")
        out.texts.append(text)
        out.labels.append(str(label))
        out.soft_labels.append(_parse_soft(soft, i, what))
    return out


def texts_of(data: Any, *, what: str = "input", text_column: str = "text") -> list[str]:
    """The text column of `data`, for prediction (no labels needed)."""
    columns = rows_of(data, what)
    if not any(columns.values()):
        raise SynthkdError(f"{what} is empty: no texts to predict")
    if text_column not in columns:
        have = ", ".join(sorted(columns)) or "none"
        raise SynthkdError(f"{what} has no {text_column!r} column (columns: {have})")
    texts = columns[text_column]
    if not texts:
        raise SynthkdError(f"{what} is empty: no texts to predict")
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise SynthkdError(f"{what} row {bad[0]}: {text_column!r} is not a string")
    return list(texts)


def check_known_labels(labels: list[str], known: list[str], what: str) -> None:
    """Refuse labels the student was not trained on: its report would be meaningless."""
    unknown = sorted(set(labels) - set(known))
    if unknown:
        raise SynthkdError(
            f"{what} has labels the student was not trained on: {', '.join(unknown)} "
            f"(student labels: {', '.join(known)})"
        )


def weighted_rows(targets: list[list[float]]) -> tuple[list[int], list[int], list[float]]:
    """Expand probability targets into (row, class, weight) triples for sklearn.

    A logistic regression fitted on every (example, label) pair weighted by the
    teacher's probability minimises exactly the soft-label cross-entropy.
    """
    rows, classes, weights = [], [], []
    for i, target in enumerate(targets):
        for j, prob in enumerate(target):
            if prob > 0:
                rows.append(i)
                classes.append(j)
                weights.append(float(prob))
    return rows, classes, weights
