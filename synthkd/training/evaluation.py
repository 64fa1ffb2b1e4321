"""How good and how fast a classifier is, and which of its mistakes to send to the teacher.

Works with anything that has `labels` and `predict_proba(texts, batch_size)`: every
student kind, an exported student, or the teacher itself through `TeacherClassifier`,
so the report can put student and teacher side by side on the same figures.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from synthkd.training._examples import check_known_labels


@runtime_checkable
class Classifier(Protocol):
    """What `evaluate` and `hard_negatives` need: label names and probabilities."""

    labels: list[str]

    def predict_proba(self, texts: list[str], batch_size: int = 32) -> np.ndarray: ...


@dataclass
class EvaluationReport:
    """Quality and speed of one classifier on one labelled set."""

    examples: int
    labels: list[str]
    accuracy: float
    macro_f1: float
    per_class: dict[str, dict[str, float]]
    """label -> precision, recall, f1, support."""
    confusion: list[list[int]]
    """Rows: true label, columns: predicted label, both in `labels` order."""
    latency_ms: float
    """Mean time to classify one text alone (batch size 1)."""
    latency_ms_p95: float
    examples_per_s_batch1: float
    examples_per_s_batch32: float
    confusion_png: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> dict[str, float]:
        return {
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "latency_ms": self.latency_ms,
            "examples_per_s_batch1": self.examples_per_s_batch1,
            "examples_per_s_batch32": self.examples_per_s_batch32,
        }


@dataclass
class HardNegative:
    text: str
    true_label: str
    predicted: str
    confidence: float
    """The student's probability for its wrong answer."""


@dataclass
class ConfusedPair:
    true_label: str
    predicted: str
    count: int


@dataclass
class HardNegatives:
    """The confidently wrong validation examples and the label pairs most often mixed up."""

    examples: list[HardNegative] = field(default_factory=list)
    confused_pairs: list[ConfusedPair] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _batch1_speed(student: Classifier, texts: list[str], samples: int) -> dict[str, float]:
    sample = texts[:samples]
    if not sample:  # not measured (e.g. scoring a test file: only accuracy is read)
        return {"latency_ms": 0.0, "latency_ms_p95": 0.0, "examples_per_s_batch1": 0.0}
    student.predict_proba(sample[:2], batch_size=2)  # warm-up: first-call allocations
    timings = []
    for text in sample:
        start = time.perf_counter()
        student.predict_proba([text], batch_size=1)
        timings.append(time.perf_counter() - start)
    return {
        "latency_ms": 1000 * float(np.mean(timings)),
        "latency_ms_p95": 1000 * float(np.percentile(timings, 95)),
        "examples_per_s_batch1": len(timings) / float(np.sum(timings)),
    }


def _timed_proba(student: Classifier, texts: list[str]) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    probabilities = student.predict_proba(texts, batch_size=32)
    return probabilities, len(texts) / (time.perf_counter() - start)


def plot_confusion(confusion: list[list[int]], labels: list[str], path: str | Path) -> Path:
    """The confusion matrix as a PNG (rows true, columns predicted)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.asarray(confusion)
    size = max(4.0, 0.8 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = matrix.max() / 2 if matrix.size else 0
    for (i, j), count in np.ndenumerate(matrix):
        color = "white" if count > threshold else "black"
        ax.text(j, i, str(count), ha="center", va="center", color=color)
    ax.set_title("confusion matrix")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def evaluate(
    student: Classifier,
    texts: list[str],
    labels: list[str],
    *,
    plot_path: str | Path | None = None,
    latency_samples: int = 32,
    probabilities: np.ndarray | None = None,
) -> EvaluationReport:
    """Accuracy, macro-F1, per-class P/R/F1, confusion matrix and speed on (texts, labels).

    Labels the student was never trained on are refused: its scores would mean nothing.
    `latency_samples=0` skips the batch-1 timing (its figures are then 0).
    """
    check_known_labels(labels, student.labels, "the evaluation set")
    speed = _batch1_speed(student, texts, latency_samples)
    if probabilities is None:  # the scoring pass is also the batch-32 measurement
        probabilities, speed["examples_per_s_batch32"] = _timed_proba(student, texts)
    elif latency_samples > 0:
        _, speed["examples_per_s_batch32"] = _timed_proba(student, texts[: 4 * latency_samples])
    else:
        speed["examples_per_s_batch32"] = 0.0
    return _report(student, texts, labels, probabilities, speed, plot_path)


def _report(student, texts, labels, probabilities, speed, plot_path) -> EvaluationReport:
    """The figures from probabilities already computed, with the speed measured."""
    check_known_labels(labels, student.labels, "the evaluation set")
    names = student.labels
    truth = np.asarray([names.index(label) for label in labels])
    predicted = probabilities.argmax(axis=1)
    present = sorted(set(truth.tolist()) | set(predicted.tolist()))
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=list(range(len(names))), zero_division=0
    )
    per_class = {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(names)
    }
    macro_f1 = float(np.mean([f1[i] for i in present]))
    confusion = confusion_matrix(truth, predicted, labels=list(range(len(names)))).tolist()
    report = EvaluationReport(
        examples=len(texts),
        labels=list(names),
        accuracy=float(accuracy_score(truth, predicted)),
        macro_f1=macro_f1,
        per_class=per_class,
        confusion=confusion,
        **speed,
    )
    if plot_path is not None:
        report.confusion_png = str(plot_confusion(confusion, names, plot_path))
    return report


def hard_negatives(
    student: Classifier,
    texts: list[str],
    labels: list[str],
    k: int = 20,
    *,
    probabilities: np.ndarray | None = None,
) -> HardNegatives:
    """The k wrong examples the student was surest of, and the most confused label pairs.

    This is what the performance-guided loop shows the teacher for the next round.
    """
    check_known_labels(labels, student.labels, "the hard-negative set")
    if probabilities is None:
        probabilities = student.predict_proba(texts, batch_size=32)
    names = student.labels
    predicted = probabilities.argmax(axis=1)
    wrong = [i for i, label in enumerate(labels) if names[predicted[i]] != label]
    wrong.sort(key=lambda i: -probabilities[i, predicted[i]])
    examples = [
        HardNegative(
            text=texts[i],
            true_label=labels[i],
            predicted=names[predicted[i]],
            confidence=float(probabilities[i, predicted[i]]),
        )
        for i in wrong[:k]
    ]
    pairs = Counter((labels[i], names[predicted[i]]) for i in wrong)
    confused = [ConfusedPair(t, p, n) for (t, p), n in pairs.most_common()]
    return HardNegatives(examples=examples, confused_pairs=confused)


class TeacherClassifier:
    """The teacher as a classifier, through its `label_distribution` (duck-typed).

    The header (instructions, few-shot examples) is fixed so a base-model teacher keeps it
    in its KV cache and computes only each text and the label continuations. Answers go
    through the teacher's response cache (build it with `cache=True`): a failed or killed
    baseline keeps what was answered and a rerun pays only for the rest. Speed is timed on
    the texts the teacher answered itself, never on cache hits (`timed_texts`,
    `timed_seconds`). A text the teacher could not score (`LabelError`) gets all-zero
    probabilities and is listed in `failed`.
    """

    def __init__(self, teacher: Any, labels: list[str], header: str, suffix: str = "") -> None:
        self.teacher = teacher
        self.labels = list(labels)
        self.header = header
        self.suffix = suffix
        self.timed_texts = 0
        """Texts the teacher answered itself (not from its cache) in predict_proba calls."""
        self.timed_seconds = 0.0
        """Wall time of the calls that answered them (cache lookups in them included)."""
        self.failed: dict[str, str] = {}
        """Text -> why the teacher could not score it."""
        self._loop = asyncio.new_event_loop()
        self._lock = threading.Lock()

    @property
    def examples_per_s(self) -> float | None:
        """Texts per second the teacher itself classified; None if every answer was cached."""
        return self.timed_texts / self.timed_seconds if self.timed_texts else None

    def _run(self, texts: list[str]) -> list[Any]:
        usage = getattr(self.teacher, "usage", None)
        hits = getattr(usage, "cache_hits", 0)
        started = time.perf_counter()
        coroutine = self.teacher.label_distribution(self.header, texts, self.labels, self.suffix)
        with self._lock:
            dists = self._loop.run_until_complete(coroutine)
        seconds = time.perf_counter() - started
        answered = len(texts) - (getattr(usage, "cache_hits", 0) - hits)
        if answered > 0:
            self.timed_texts += answered
            self.timed_seconds += seconds
        return dists

    def predict_proba(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        out = np.zeros((len(texts), len(self.labels)))
        for start in range(0, len(texts), batch_size):
            chunk = texts[start : start + batch_size]
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                dists = self._run(chunk)
            else:  # called from async code: the teacher's loop runs in a worker thread
                with concurrent.futures.ThreadPoolExecutor(1) as pool:
                    dists = pool.submit(self._run, chunk).result()
            for row, dist in enumerate(dists):
                if isinstance(dist, dict):
                    out[start + row] = [dist.get(label, 0.0) for label in self.labels]
                else:  # a LabelError: no answer for this text
                    self.failed[chunk[row]] = getattr(dist, "reason", str(dist))
        return out

    def close(self) -> None:
        if hasattr(self.teacher, "aclose"):
            with self._lock:
                self._loop.run_until_complete(self.teacher.aclose())
        self._loop.close()


def evaluate_teacher(
    classifier: TeacherClassifier, texts: list[str], labels: list[str]
) -> EvaluationReport:
    """`evaluate` for the teacher: scored once through its cache, timed honestly.

    Every text is scored once (cached answers reused, so nothing is paid twice); the speed
    figures come from the texts the teacher answered in this call only, as throughput in
    batches (`examples_per_s_batch32`; batch-1 latency is not measured separately: it is
    the mean time per uncached text). All zero when every answer came from the cache.
    Texts the teacher could not score count as wrong answers (all-zero probabilities).
    """
    before_texts, before_seconds = classifier.timed_texts, classifier.timed_seconds
    probabilities = classifier.predict_proba(texts, batch_size=32)
    names = classifier.labels
    for i, (text, label) in enumerate(zip(texts, labels, strict=True)):
        if text in classifier.failed and label in names:  # unscored: counted as a miss
            probabilities[i, (names.index(label) + 1) % len(names)] = 1.0
    timed = classifier.timed_texts - before_texts
    seconds = classifier.timed_seconds - before_seconds
    rate = timed / seconds if timed and seconds > 0 else 0.0
    per_text_ms = 1000 / rate if rate else 0.0
    speed = {
        "latency_ms": per_text_ms,
        "latency_ms_p95": per_text_ms,
        "examples_per_s_batch1": rate,
        "examples_per_s_batch32": rate,
    }
    return _report(classifier, texts, labels, probabilities, speed, None)
