"""`synthkd predict` as a user runs it, per student form, beside the teacher's fastest mode.

Each student form (torch: the PyTorch LoRA student; int8: its int8 ONNX copy; static: its
static-embedding copy) classifies the same --texts full-length news texts through the
whole `synthkd predict` process (start-up, loading, reading and writing Parquet
included), timed from outside as wall time. The input is every text of the news
examples (test articles, validation leads, seeds), repeated in order until there are
--texts of them; accuracy is read off the validation rows of the output (held out from
training when the student was trained by this script).

The teacher runs in its fastest mode: the embedded llama.cpp model as a classifier
(`TeacherClassifier`), its few-shot header evaluated once and kept in the KV cache, each
text and the label continuations evaluated per text, in-process and already loaded (its
start-up is not counted: generous to the teacher), on the first --teacher-texts texts.

Without --student, a MiniLM student is trained first on the seeds plus the test
articles (100 texts; validation untouched), and its int8 and static copies exported.
Prints a table, then one JSON object on the last line.

    .venv/bin/python benchmarks/student_vs_teacher.py --student runs/news_topics/student
    .venv/bin/python benchmarks/student_vs_teacher.py --out /tmp/bench   # trains one
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

NEWS = ROOT / "examples" / "news_topics"
LABELS = ["business", "entertainment", "politics", "sport", "tech"]
FORMS = ("torch", "int8", "static")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def input_rows(count: int) -> tuple[list[dict], int]:
    """`count` rows cycling through the news texts; how many distinct texts there are."""
    rows = []
    for split in ("test_articles", "validation", "seeds"):
        rows += [{**r, "split": split} for r in read_jsonl(NEWS / f"{split}.jsonl")]
    return [dict(rows[i % len(rows)], row=i) for i in range(count)], len(rows)


def few_shot_header(seeds: list[dict], shots_per_label: int, max_words: int) -> str:
    """Instructions plus a few short labelled articles; the text to classify follows."""
    lines = ["Each news article below is labelled with its topic: " + ", ".join(LABELS) + ".", ""]
    used = dict.fromkeys(LABELS, 0)
    for row in seeds:
        if used.get(row["label"], shots_per_label) >= shots_per_label:
            continue
        used[row["label"]] += 1
        words = row["text"].split()[:max_words]
        lines += [f"Article: {' '.join(words)}", f"Topic: {row['label']}", ""]
    lines.append("Article: ")
    return "\n".join(lines)


def train_student(out: Path) -> Path:
    """A MiniLM student on seeds + test articles, with its int8 and static copies."""
    from synthkd.training import StudentConfig, export_static, export_student
    from synthkd.training import train_student as fit

    train = read_jsonl(NEWS / "seeds.jsonl") + read_jsonl(NEWS / "test_articles.jsonl")
    validation = read_jsonl(NEWS / "validation.jsonl")
    target = out / "student"
    fit(StudentConfig(kind="minilm", max_length=128), train, validation, target, progress=False)
    export_student(target, "int8")
    export_static(target, [r["text"] for r in train], [r["label"] for r in train])
    return target


def run_predict(student: Path, fmt: str, source: Path, out: Path) -> dict:
    """Wall and CPU seconds of one whole `synthkd predict` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    command = [sys.executable, "-m", "synthkd", "predict", str(student), "--input", str(source)]
    command += ["--output", str(out), "--format", fmt]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"synthkd predict --format {fmt} failed: {done.stderr.strip()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"seconds": wall, "cpu_seconds": cpu}


def accuracy(out: Path, rows: list[dict]) -> dict:
    import pyarrow.parquet as pq

    predicted = pq.read_table(out, columns=["row", "prediction"]).to_pydict()
    seen: set[str] = set()
    right = total = 0
    for row, label in zip(predicted["row"], predicted["prediction"], strict=True):
        source = rows[row]
        if source["split"] != "validation" or source["text"] in seen:
            continue
        seen.add(source["text"])
        total += 1
        right += label == source["label"]
    return {"val_accuracy": right / total, "val_examples": total}


def measure_teacher(spec: str, texts: list[str], seeds: list[dict]) -> dict:
    from synthkd.generators.teachers import teacher_from_spec
    from synthkd.training import TeacherClassifier

    teacher = teacher_from_spec(spec, cache=False)
    classifier = TeacherClassifier(teacher, LABELS, few_shot_header(seeds, 1, 40), "\nTopic:")
    try:
        classifier.predict_proba([seeds[0]["text"]])  # warm-up: evaluates the header once
        cpu, start = time.process_time(), time.perf_counter()
        probs = classifier.predict_proba(texts, batch_size=8)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    finally:
        classifier.close()
    return {
        "texts": len(texts),
        "seconds": seconds,
        "cpu_seconds": cpu,
        "mean_chars": sum(map(len, texts)) / len(texts),
        "predicted": probs.argmax(axis=1).tolist(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--student", default=None, help="a MiniLM student folder (else: train)")
    parser.add_argument("--out", default=None, help="work folder (default: a temp dir)")
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--teacher", default="llamacpp:gemma-3-270m")
    parser.add_argument("--teacher-texts", type=int, default=40)
    parser.add_argument("--forms", default=",".join(FORMS), help="student forms to time")
    parser.add_argument("--skip-teacher", action="store_true")
    args = parser.parse_args()

    out = Path(args.out or tempfile.mkdtemp(prefix="synthkd-bench-"))
    out.mkdir(parents=True, exist_ok=True)
    student = Path(args.student) if args.student else train_student(out)
    rows, distinct = input_rows(args.texts)
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = out / "texts.parquet"
    pq.write_table(
        pa.Table.from_pylist([{"row": r["row"], "text": r["text"]} for r in rows]), source
    )
    chars = sum(len(r["text"]) for r in rows) / len(rows)

    forms: dict[str, dict] = {}
    for fmt in args.forms.split(","):
        timing = run_predict(student, fmt, source, out / f"pred_{fmt}.parquet")
        forms[fmt] = {
            **timing,
            "ms_per_text": 1000 * timing["seconds"] / len(rows),
            "cpu_ms_per_text": 1000 * timing["cpu_seconds"] / len(rows),
            **accuracy(out / f"pred_{fmt}.parquet", rows),
        }
        print(
            f"{fmt}: {timing['seconds']:.1f} s wall, {timing['cpu_seconds']:.1f} s CPU", flush=True
        )

    teacher = None
    if not args.skip_teacher:
        # spread over the input, so its texts are as long as the students' on average
        sample = rows[
            : args.teacher_texts * (len(rows) // args.teacher_texts) : len(rows)
            // args.teacher_texts
        ]
        measured = measure_teacher(
            args.teacher, [r["text"] for r in sample], read_jsonl(NEWS / "seeds.jsonl")
        )
        right = sum(
            LABELS[p] == r["label"] for p, r in zip(measured.pop("predicted"), sample, strict=True)
        )
        teacher = {**measured, "ms_per_text": 1000 * measured["seconds"] / len(sample)}
        teacher["cpu_ms_per_text"] = 1000 * measured["cpu_seconds"] / len(sample)
        teacher["accuracy_on_sample"] = right / len(sample)
        for form in forms.values():
            form["x_teacher"] = teacher["ms_per_text"] / form["ms_per_text"]
            form["x_teacher_cpu"] = teacher["cpu_ms_per_text"] / form["cpu_ms_per_text"]

    print(
        f"\n{len(rows)} texts ({distinct} distinct news texts repeated in order), mean {chars:.0f} chars"
    )
    print(
        f"{'form':<10}{'ms/text':>10}{'x teacher':>11}{'CPU ms/text':>13}{'x (CPU)':>9}"
        f"{'val acc':>9}{'wall s':>9}"
    )
    if teacher:
        print(
            f"{'teacher':<10}{teacher['ms_per_text']:>10.1f}{1.0:>11.1f}"
            f"{teacher['cpu_ms_per_text']:>13.1f}{1.0:>9.1f}"
            f"{teacher['accuracy_on_sample']:>9.3f}{teacher['seconds']:>9.1f}"
            f"  (in-process, loaded; accuracy on its {teacher['texts']} texts,"
            f" mean {teacher['mean_chars']:.0f} chars)"
        )
    for fmt, r in forms.items():
        print(
            f"{fmt:<10}{r['ms_per_text']:>10.2f}{r.get('x_teacher', float('nan')):>11.1f}"
            f"{r['cpu_ms_per_text']:>13.2f}{r.get('x_teacher_cpu', float('nan')):>9.1f}"
            f"{r['val_accuracy']:>9.3f}{r['seconds']:>9.1f}"
        )
    summary = {
        "benchmark": "student_vs_teacher",
        "student": str(student),
        "texts": len(rows),
        "distinct_texts": distinct,
        "mean_chars": round(chars, 1),
        "cores": len(os.sched_getaffinity(0)),
        "load_average": [round(x, 2) for x in os.getloadavg()],  # others share the cores
        "teacher": teacher,
        "forms": forms,
        "targets": None
        if not teacher
        else {
            "int8_30x": forms.get("int8", {}).get("x_teacher", 0) >= 30,
            "static_100x": forms.get("static", {}).get("x_teacher", 0) >= 100,
        },
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
