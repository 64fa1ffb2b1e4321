"""Students against their teacher on the news-topics validation set: quality and speed.

The teacher runs as a classifier in its fastest mode: `label_distribution` of the
embedded llama.cpp teacher keeps the few-shot header in its KV cache and evaluates only
each text and the label continuations. The students (MiniLM + LoRA, its ONNX and int8
exports, and the linear TF-IDF student) train on the seeds plus the corpora given with
--corpus, never on the validation items they are measured on.

Prints a table, then one JSON object on the last line.

    python benchmarks/student_vs_teacher.py --corpus runs/news_topics/corpus
    python benchmarks/student_vs_teacher.py --student runs/news_topics/student \
        --corpus runs/news_topics/corpus --teacher-examples 250
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _threads_from_argv() -> str:
    """--threads N, read before torch and llama.cpp are imported (they size pools early)."""
    if "--threads" in sys.argv[:-1]:
        return sys.argv[sys.argv.index("--threads") + 1]
    return str(len(os.sched_getaffinity(0)))


os.environ["SYNTHKD_THREADS"] = os.environ["SYNTHKD_LLAMA_THREADS"] = _threads_from_argv()

import numpy as np  # noqa: E402
from sklearn.metrics import accuracy_score, f1_score  # noqa: E402

from synthkd.commands.student import read_table  # noqa: E402
from synthkd.training import (  # noqa: E402
    StudentConfig,
    TeacherClassifier,
    evaluate,
    export_student,
    labelled_examples,
    load_student,
    train_student,
)

NEWS = ROOT / "examples" / "news_topics"
LABELS = ["business", "entertainment", "politics", "sport", "tech"]


def load_rows(path: Path, what: str) -> list[dict]:
    data = labelled_examples(read_table(path, what), what=what)
    return [
        {"text": t, "label": y, "soft_labels": json.dumps(s) if s else None}
        for t, y, s in zip(data.texts, data.labels, data.soft_labels, strict=True)
    ]


def few_shot_header(seeds: list[dict], shots_per_label: int, max_words: int) -> str:
    """Instructions plus a few short labelled articles; the text to classify follows."""
    lines = [
        "Each news article below is labelled with its topic: " + ", ".join(LABELS) + ".",
        "",
    ]
    used = {label: 0 for label in LABELS}
    for row in seeds:
        if used.get(row["label"], shots_per_label) >= shots_per_label:
            continue
        used[row["label"]] += 1
        words = row["text"].split()[:max_words]
        lines += [f"Article: {' '.join(words)}", f"Topic: {row['label']}", ""]
    lines.append("Article: ")
    return "\n".join(lines)


def scores(truth: list[str], predicted: list[str]) -> dict[str, float]:
    return {
        "accuracy": float(accuracy_score(truth, predicted)),
        "macro_f1": float(f1_score(truth, predicted, average="macro", zero_division=0)),
    }


def measure_teacher(args, seeds, texts, labels) -> dict:
    from synthkd.generators.teachers import teacher_from_spec

    teacher = teacher_from_spec(args.teacher, cache=False)
    classifier = TeacherClassifier(
        teacher, LABELS, few_shot_header(seeds, args.shots, args.shot_words), "\nTopic:"
    )
    try:
        classifier.predict_proba([seeds[0]["text"]])  # warm-up: evaluates the header once
        start = time.perf_counter()
        probs = classifier.predict_proba(texts, batch_size=8)
        seconds = time.perf_counter() - start
    finally:
        classifier.close()
    predicted = [LABELS[i] for i in probs.argmax(axis=1)]
    return {
        "examples": len(texts),
        **scores(labels, predicted),
        "examples_per_s": len(texts) / seconds,
        "seconds": seconds,
    }


def measure_student(name: str, path: Path, texts, labels, subset: int) -> dict:
    student = load_student(path)
    report = evaluate(student, texts, labels, latency_samples=min(64, len(texts)))
    probs = student.predict_proba(texts[:subset])
    predicted = [student.labels[i] for i in probs.argmax(axis=1)]
    on_subset = scores(labels[:subset], predicted)
    return {
        "examples": report.examples,
        "accuracy": report.accuracy,
        "macro_f1": report.macro_f1,
        "accuracy_on_teacher_subset": on_subset["accuracy"],
        "examples_per_s": report.examples_per_s_batch32,
        "examples_per_s_batch1": report.examples_per_s_batch1,
        "latency_ms": report.latency_ms,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", action="append", default=[], help="extra training data")
    parser.add_argument("--validation", default=str(NEWS / "validation.jsonl"))
    parser.add_argument("--seeds", default=str(NEWS / "seeds.jsonl"))
    parser.add_argument("--teacher", default="llamacpp:gemma-3-270m")
    parser.add_argument("--teacher-examples", type=int, default=60, help="validation items")
    parser.add_argument("--shots", type=int, default=1, help="few-shot examples per label")
    parser.add_argument("--shot-words", type=int, default=40, help="words kept per shot")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument(
        "--max-length", type=int, default=64, help="student tokens per text (a serving choice)"
    )
    parser.add_argument("--threads", type=int, default=None, help="teacher and student threads")
    parser.add_argument("--out", default=None, help="where students go (default: a temp dir)")
    parser.add_argument(
        "--student",
        default=None,
        help="measure this MiniLM student (e.g. runs/news_topics/student) instead of training one",
    )
    parser.add_argument("--skip-teacher", action="store_true")
    parser.add_argument(
        "--reuse", action="store_true", help="measure the students already in --out (no training)"
    )
    args = parser.parse_args()

    seeds = load_rows(Path(args.seeds), "seeds")
    train = list(seeds)
    for corpus in args.corpus:
        train += load_rows(Path(corpus), f"corpus {corpus}")
    validation = load_rows(Path(args.validation), "validation set")
    texts = [r["text"] for r in validation]
    labels = [r["label"] for r in validation]
    overlap = {r["text"] for r in train} & set(texts)
    if overlap:
        raise SystemExit(f"{len(overlap)} validation texts are also in the training data")
    subset = min(args.teacher_examples, len(texts))

    out = Path(args.out or tempfile.mkdtemp(prefix="synthkd-bench-"))
    results: dict[str, dict] = {}
    timings: dict[str, float] = {}
    kinds = ("minilm", "linear")
    if args.student:
        kinds = ("linear",)
        shutil.copytree(args.student, out / "minilm", dirs_exist_ok=True)
    for kind in () if args.reuse else kinds:
        config = StudentConfig(kind=kind, epochs=args.epochs, max_length=args.max_length)
        start = time.perf_counter()
        # students hold out part of their own training data for early stopping
        trained = train_student(config, train, None, out / kind, progress=sys.stderr.isatty())
        timings[kind] = time.perf_counter() - start
        if trained.baseline:
            results["minilm_frozen_baseline_holdout"] = trained.baseline
    for fmt in () if args.reuse else ("onnx", "int8"):
        export_student(out / "minilm", fmt, out / f"minilm_{fmt}")
    for name, path in (
        ("minilm", out / "minilm"),
        ("minilm_onnx", out / "minilm_onnx"),
        ("minilm_int8", out / "minilm_int8"),
        ("linear", out / "linear"),
    ):
        results[name] = measure_student(name, path, texts, labels, subset)

    teacher = None
    if not args.skip_teacher:
        teacher = measure_teacher(args, seeds, texts[:subset], labels[:subset])
        for name in ("minilm", "minilm_onnx", "minilm_int8", "linear"):
            results[name]["speedup_vs_teacher"] = (
                results[name]["examples_per_s"] / teacher["examples_per_s"]
            )

    print(f"training data: {len(train)} examples (seeds + {len(args.corpus)} corpora)")
    print(f"validation: {len(texts)} examples; teacher measured on the first {subset}")
    print(
        f"{'model':<14}{'acc':>7}{'macroF1':>9}{'acc@sub':>9}{'ex/s':>10}{'ex/s b1':>9}"
        f"{'x teacher':>11}"
    )
    if teacher:
        print(
            f"{'teacher':<14}{teacher['accuracy']:>7.3f}{teacher['macro_f1']:>9.3f}"
            f"{teacher['accuracy']:>9.3f}{teacher['examples_per_s']:>10.1f}{'':>9}{1.0:>11.1f}"
        )
    for name in ("minilm", "minilm_onnx", "minilm_int8", "linear"):
        r = results[name]
        print(
            f"{name:<14}{r['accuracy']:>7.3f}{r['macro_f1']:>9.3f}"
            f"{r['accuracy_on_teacher_subset']:>9.3f}{r['examples_per_s']:>10.1f}"
            f"{r['examples_per_s_batch1']:>9.1f}{r.get('speedup_vs_teacher', float('nan')):>11.1f}"
        )
    summary = {
        "benchmark": "student_vs_teacher",
        "threads": int(os.environ["SYNTHKD_THREADS"]),
        "student": args.student or "trained here",
        "student_max_length": load_student(out / "minilm").max_length,
        "train_examples": len(train),
        "validation_examples": len(texts),
        "teacher": teacher,
        "students": results,
        "train_seconds": timings,
        "targets": None
        if teacher is None
        else {
            "minilm_30x": results["minilm"]["speedup_vs_teacher"] >= 30,
            "minilm_best_export_30x": max(
                results[n]["speedup_vs_teacher"] for n in ("minilm_onnx", "minilm_int8")
            )
            >= 30,
            "linear_1000x": results["linear"]["speedup_vs_teacher"] >= 1000,
        },
    }
    print(json.dumps(summary, default=float))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
