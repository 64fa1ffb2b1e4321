"""Does the critic gain from the label evidence? Old way (seeds + corruptions) vs new way
(plus records the evidence confirmed and asked-for labels it overruled), on the real tasks.

For each task of benchmarks/real_tasks with a generated corpus under runs/real_tasks/<task>
(from `synthkd generate`), the corpus and rejects are copied into a scratch run folder, the
label evidence is applied there (`stages.label_round`, as the loop does before training the
critic), and both critics are trained with `stages.fit_critic` for a few seeds. Figures:

- `auc`: critic ROC-AUC on the task's untouched test split, real texts with their true
  label (acceptable) vs the same texts with another label (not acceptable);
- `cut`, `cv_no_cut`, `cv_chosen`: the cut `choose_cut` picks by k-fold CV over the real
  examples (frozen MiniLM + logistic head on corpus + real; -log loss, higher is better);
- `test_acc`: accuracy on the test split of frozen MiniLM + logistic regression trained on
  (corpus after the chosen cut + real examples);
- `cv_cut30`, `test_acc_cut30`: the same two with the lowest-scored 30% always dropped,
  which shows whether the critic's ranking helps the student even where CV takes no cut.

    nice -n 19 .venv/bin/python benchmarks/critic_evidence.py [--seeds 3] [--test-n 300] \
        [--runs runs/real_tasks /tmp/other_runs]

Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from synthkd import stages  # noqa: E402

TASKS = ("sms_spam", "tweet_sentiment", "reuters_r8")


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _test_rows(task: str, n: int, labels: list[str], rng: np.random.Generator) -> list[dict]:
    rows = _jsonl(ROOT / "benchmarks" / "real_tasks" / task / "test.jsonl")
    rows = [rows[i] for i in sorted(rng.permutation(len(rows))[:n])]
    return [{"text": r["text"], "label": r["label"]} for r in rows if r["label"] in labels]


def _auc(critic, test: list[dict], labels: list[str], rng: np.random.Generator) -> float:
    from sklearn.metrics import roc_auc_score

    swapped = [
        {"text": r["text"], "label": str(rng.choice([x for x in labels if x != r["label"]]))}
        for r in test
    ]
    rows = [{"kind": "labelled", **r} for r in test + swapped]
    scores = critic.score(rows)
    return float(roc_auc_score([1] * len(test) + [0] * len(swapped), scores))


def _test_accuracy(kept: list[dict], real, test: list[dict], embed) -> float:
    from sklearn.linear_model import LogisticRegression

    texts = [r["text"] for r in kept] + real["text"].tolist()
    y = [r["label"] for r in kept] + real["label"].tolist()
    model = LogisticRegression(C=10.0, max_iter=2000).fit(embed(texts), y)
    predicted = model.predict(embed([r["text"] for r in test]))
    return float(np.mean([p == r["label"] for p, r in zip(predicted, test, strict=True)]))


def _corpus_source(task: str, roots: list[Path]) -> Path:
    """The first run folder with a non-empty generated corpus for `task`."""
    from synthkd.data import CorpusStore

    for root in roots:
        folder = root / task
        if (folder / "corpus").exists() and CorpusStore(folder / "corpus").count() > 0:
            return folder
    return roots[0] / task


def run_task(task: str, seeds: int, test_n: int, scratch: Path, roots: list[Path]) -> dict | None:
    from synthkd.stages.evidence import real_examples, shared_embeddings
    from synthkd.training import SelectionConfig, choose_cut

    source = _corpus_source(task, roots)
    run_dir = scratch / task
    for part in ("corpus", "rejects"):
        if (source / part).exists():
            shutil.copytree(source / part, run_dir / part)
    ctx = stages.open_context(ROOT / "benchmarks" / "real_tasks" / task / "recipe.yaml", run_dir)
    run = ctx.stores()
    table = run.corpus.read()
    if table.num_rows == 0:
        print(f"{task}: no generated corpus under {source}; skipped")
        return None
    started = time.process_time()
    evidence = {}
    if table["soft_labels"].null_count == table.num_rows:  # the evidence has not run yet
        for r in sorted(set(table["round"].to_pylist())):
            evidence[r] = stages.label_round(ctx, r)
    print(f"{task}: corpus {table.num_rows} records; evidence {evidence}")
    real = real_examples(ctx)
    embed = shared_embeddings()
    config = SelectionConfig(folds=ctx.recipe.loop.cv_folds, seed=ctx.seed)
    rows = run.corpus.read().sort_by("id").to_pylist()
    out: dict = {
        "corpus": table.num_rows,
        "corpus_after_evidence": len(rows),
        "evidence": {str(k): v for k, v in evidence.items()},
    }
    rng = np.random.default_rng(0)
    test = _test_rows(task, test_n, ctx.labels, rng)
    for seed in range(seeds):  # old and new alternate, same seed each
        for variant, flag in (("old", False), ("new", True)):
            ctx.recipe.critic.evidence_labels = flag
            t0 = time.process_time()
            critic = stages.fit_critic(ctx, rows, run_dir / f"critic-{variant}-{seed}", seed=seed)
            scores = critic.score(rows)
            cut = choose_cut(rows, scores, real, ctx.labels, embed=embed, config=config)
            threshold = cut.detail["threshold"]
            kept = [
                r for r, s in zip(rows, scores, strict=True) if threshold is None or s >= threshold
            ]
            at30 = float(np.quantile(scores, 0.3))
            kept30 = [r for r, s in zip(rows, scores, strict=True) if s >= at30]
            cv30 = [t["score"] for t in cut.detail["tried"] if t["kept"] == len(kept30)]
            result = {
                "sources": critic.metrics["label_sources"],
                "auc": round(_auc(critic, test, ctx.labels, np.random.default_rng(seed)), 4),
                "holdout_auc": round(critic.metrics["holdout_roc_auc"], 4),
                "cut": cut.accepted,
                "kept": len(kept),
                "cv_no_cut": round(cut.before, 4),
                "cv_chosen": round(cut.after, 4),
                "test_acc": round(_test_accuracy(kept, real, test, embed), 4),
                "cv_cut30": round(cv30[0], 4) if cv30 else None,
                "test_acc_cut30": round(_test_accuracy(kept30, real, test, embed), 4),
                "cpu_s": round(time.process_time() - t0, 1),
            }
            out.setdefault(variant, []).append(result)
            print(f"{task} seed {seed} {variant}: {result}")
    for variant in ("old", "new"):
        runs = out[variant]
        out[f"{variant}_mean"] = {
            key: round(float(np.mean([r[key] for r in runs])), 4)
            for key in ("auc", "cv_chosen", "test_acc", "kept", "test_acc_cut30")
        } | {"cuts_taken": sum(r["cut"] for r in runs)}
    out["cpu_s"] = round(time.process_time() - started, 1)
    print(f"{task}: old {out['old_mean']}  new {out['new_mean']}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="*", default=list(TASKS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--test-n", type=int, default=300)
    parser.add_argument(
        "--runs",
        nargs="*",
        default=[str(ROOT / "runs" / "real_tasks")],
        help="folders holding <task>/corpus (the first with a non-empty corpus is used)",
    )
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="critic-evidence-") as scratch:
        for task in args.tasks:
            roots = [Path(r) for r in args.runs]
            results[task] = run_task(task, args.seeds, args.test_n, Path(scratch), roots)
    print(json.dumps({"benchmark": "critic_evidence", "tasks": results}))


if __name__ == "__main__":
    main()
