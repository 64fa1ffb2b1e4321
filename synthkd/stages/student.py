"""Students: their training data, validation, fitting, evaluation and serving copy, and the
teacher as a classifier beside them. `synthkd train` and the flow both come through here.

A classifier student learns from the corpus (the critic's cut applied, soft labels kept)
plus the user's real examples (labelled seeds, or an annotate recipe's shots_file). It is
judged on the recipe's validation file; without one, on a stratified split of that same
training data (`holdout`), drawn the same way by `synthkd train` and `synthkd run`.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pandas is imported where it is used: `synthkd predict` never needs it
    import pandas as pd

from synthkd.errors import SynthkdError
from synthkd.stages.context import RunContext
from synthkd.stages.generate import round_seconds, teacher_slots

COLUMNS = ["text", "label", "soft_labels"]


def corpus_table(
    table: Any,
    *,
    round: int | None = None,
    use_cut: bool = True,
    rounds: Sequence[int] | None = None,
    threshold: float | None = None,
) -> Any:
    """The corpus rows a student trains on, as a pyarrow table (sorted by id: the same order
    however the table was read): rows up to ROUND, only those of `rounds` when given (guided
    rounds the CV turned down are left out), the critic's cut applied when `use_cut`
    (scores below `threshold` when one was chosen on the real examples, else the critic's
    own `accepted`). The loop's student and its real-examples-only rival read the same rows."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    if not isinstance(table, pa.Table):
        table = pa.Table.from_pandas(pd.DataFrame(table), preserve_index=False)
    if round is not None and "round" in table.column_names:
        table = table.filter(pc.less_equal(table["round"], round))
    if rounds is not None and "round" in table.column_names:
        table = table.filter(pc.is_in(table["round"], pa.array(list(rounds), table["round"].type)))
    if use_cut and threshold is not None and "critic_score" in table.column_names:
        table = table.filter(pc.fill_null(pc.greater_equal(table["critic_score"], threshold), True))
    elif use_cut and "accepted" in table.column_names:
        table = table.filter(pc.fill_null(table["accepted"], True))
    if "accepted" in table.column_names:
        table = table.drop_columns(["accepted"])
    if "id" in table.column_names and table.num_rows:
        table = table.sort_by("id")
    return table


def training_frame(
    ctx: RunContext,
    table: Any,
    *,
    round: int | None = None,
    use_cut: bool = True,
    rounds: Sequence[int] | None = None,
    threshold: float | None = None,
) -> pd.DataFrame:
    """`corpus_table`'s rows, then the user's real examples."""
    import pandas as pd

    table = corpus_table(table, round=round, use_cut=use_cut, rounds=rounds, threshold=threshold)
    if table.num_rows == 0:
        raise SynthkdError("the corpus is empty: no records to train on")
    frame = table.to_pandas()
    for column in ("text", "label"):
        if column not in frame.columns:
            have = ", ".join(map(str, frame.columns))
            raise SynthkdError(f"the corpus has no {column!r} column (columns: {have})")
    if "soft_labels" not in frame.columns:
        frame["soft_labels"] = None
    frame = frame[COLUMNS]
    if ctx.inputs.real is not None:
        real = ctx.inputs.real.assign(soft_labels=None)[COLUMNS]
        frame = pd.concat([frame, real], ignore_index=True)
    return frame


def _records(examples: Any) -> dict[str, list[Any]]:
    return {"text": examples.texts, "label": examples.labels, "soft_labels": examples.soft_labels}


def holdout(ctx: RunContext, train: pd.DataFrame) -> tuple[Any, Any]:
    """(train, validation): the validation file, or a stratified split of TRAIN by the
    recipe's seed (the one split function, so `train` and `run` hold out the same rows)."""
    if ctx.inputs.validation is not None:
        return train, ctx.inputs.validation
    from synthkd.training import labelled_examples
    from synthkd.training.students import split_validation

    examples = labelled_examples(train, what="the training corpus")
    kept, held = split_validation(examples, ctx.seed)
    return _records(kept), _records(held)


def fit_student(
    ctx: RunContext,
    table: Any,
    out: str | Path,
    *,
    round: int | None = None,
    use_cut: bool = True,
    rounds: Sequence[int] | None = None,
    threshold: float | None = None,
    progress: bool = False,
) -> tuple[Any, dict[str, Any]]:
    """Train the recipe's student into OUT and evaluate it; (TrainResult, JSON-able summary).

    The summary has validation accuracy and macro-F1, per-class F1, speed, the
    frozen-encoder baseline and the hard negatives the next round is shown.
    """

    from synthkd.training import hard_negatives, train_student

    started = time.perf_counter()
    config = ctx.student_config()
    out = Path(out)
    if config.kind == "generative":
        if ctx.task_kind in ("commonsense", "document_kg"):  # chunk text and gold examples
            from synthkd.stages.triples import with_real_examples

            table = with_real_examples(ctx, table)
        result = train_student(config, table, None, out, progress=progress)
        return result, {"path": str(out), "metrics": result.metrics, "seconds": result.seconds}
    frame = training_frame(
        ctx, table, round=round, use_cut=use_cut, rounds=rounds, threshold=threshold
    )
    train, validation = holdout(ctx, frame)
    from synthkd.stages.evidence import shared_embeddings

    # the run's MiniLM encodings of these texts serve the frozen baseline (a MiniLM base)
    embed = shared_embeddings() if config.kind == "minilm" else None
    result = train_student(config, train, validation, out, progress=progress, embed=embed)
    report = result.report  # the saved student's own scoring pass (and out/confusion.png)
    texts, labels, probabilities = result.validation
    # hard negatives read only the student's label order, which the result carries
    negatives = hard_negatives(result, texts, labels, k=20, probabilities=probabilities)
    return result, {
        "path": str(out),
        "train_rows": result.train_examples,
        "validation_rows": result.validation_examples,
        "train_seconds": float(f"{result.seconds:.2f}"),
        "val_accuracy": report.accuracy,
        "val_macro_f1": report.macro_f1,
        "per_class_f1": {k: v["f1"] for k, v in report.per_class.items()},
        "examples_per_s": report.examples_per_s_batch32,
        "baseline": result.baseline,
        "hard_negatives": asdict(negatives),
        "val_correct": validation_correct(ctx, result.labels, texts, labels, probabilities),
        "seconds": round_seconds(started),
    }


def validation_correct(
    ctx: RunContext, names: Sequence[str], texts: Sequence[str], labels, probabilities
) -> list[int | None] | None:
    """1/0 per row of the recipe's validation file: was the student right on it? What the
    ship rule pairs with the rivals' out-of-fold predictions (`on_validation_rows`)."""
    return on_validation_rows(
        ctx,
        {
            text: int(names[int(row.argmax())] == label)
            for text, label, row in zip(texts, labels, probabilities, strict=True)
        },
    )


def on_validation_rows(ctx: RunContext, by_text: dict[str, Any]) -> list[Any] | None:
    """BY_TEXT's values in the order of the recipe's validation file (None for a row it
    lacks): the one alignment every per-example record of the ship rule uses. None without
    a validation file (the loop then validates on a split of its own corpus)."""
    if ctx.inputs.validation is None:
        return None
    return [by_text.get(text) for text in ctx.inputs.validation["text"]]


def fit_round_student(
    ctx: RunContext,
    round: int,
    use_cut: bool,
    name: str = "student",
    rounds: Sequence[int] | None = None,
    threshold: float | None = None,
) -> dict[str, Any]:
    """The loop's student for ROUND, in RUN/rounds/round-N/NAME (replaced whole), trained
    on the corpus of `rounds` (default: every round up to ROUND) cut at `threshold`."""
    out = ctx.run_dir / "rounds" / f"round-{round}" / name
    if out.exists():
        shutil.rmtree(out)
    table = ctx.stores().corpus.read()
    _, summary = fit_student(
        ctx, table, out, round=round, use_cut=use_cut, rounds=rounds, threshold=threshold
    )
    return summary


def export_serving(
    ctx: RunContext,
    student_dir: str | Path,
    round: int,
    use_cut: bool,
    fmt: str = "int8",
    rounds: Sequence[int] | None = None,
    threshold: float | None = None,
) -> dict[str, Any]:
    """A serving copy of a student (int8 ONNX, or the static-embedding student distilled
    from it), measured on the validation the student was judged on, in examples/s."""
    import pandas as pd

    from synthkd.training import evaluate, export_static, export_student, load_student

    table = ctx.stores().corpus.read()
    frame = training_frame(
        ctx, table, round=round, use_cut=use_cut, rounds=rounds, threshold=threshold
    )
    train, validation = holdout(ctx, frame)
    val = pd.DataFrame(validation)
    texts, labels = val["text"].tolist(), val["label"].astype(str).tolist()
    if fmt == "static":
        train = pd.DataFrame(train)
        target = export_static(
            student_dir,
            train["text"].tolist(),
            train["label"].astype(str).tolist(),
            validation=(texts, labels),
        )
    else:
        target = export_student(student_dir, fmt)
    report = evaluate(load_student(target), texts, labels)
    return {
        "path": str(target),
        "format": fmt,
        "val_accuracy": report.accuracy,
        "val_macro_f1": report.macro_f1,
        "examples_per_s": report.examples_per_s_batch32,
    }


def _dump(section: Any) -> dict[str, Any]:
    if hasattr(section, "model_dump"):
        return section.model_dump()
    return asdict(section)


def install_student(source: str | Path, target: Path) -> None:
    """Copy the kept student into TARGET (e.g. RUN/student) whole: staged, then renamed."""
    import os

    staging = target.with_name(".student.tmp")
    if staging.exists():
        shutil.rmtree(staging)
    shutil.copytree(source, staging)
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)


def speed_texts(ctx: RunContext) -> dict[str, Any] | None:
    """What the report's examples/s were measured on: how many validation texts, how long."""
    validation = ctx.inputs.validation
    if validation is None or not len(validation):
        return None
    chars = validation["text"].astype(str).str.len()
    return {"examples": len(validation), "mean_chars": float(chars.mean())}


def teacher_baseline(ctx: RunContext, limit: int | None = None) -> dict[str, Any] | None:
    """The teacher as a classifier on the validation file, in its fastest honest mode
    (few-shot header in the KV cache, only the labels scored); None without validation.

    Answers go through the response cache, so a rerun pays for none of them again; the
    speed is that of the answers the teacher gave in this call, or, when every answer came
    from the cache, the speed measured when they were first asked (kept beside the cache).
    """
    from synthkd.generators import make_task, prompt_style
    from synthkd.training import TeacherClassifier, evaluate_teacher

    task = ctx.recipe.task
    validation = ctx.inputs.validation
    if task.kind != "labelled" or validation is None:
        return None
    slot = teacher_slots(ctx)[0]
    annotate = make_task(
        {
            "kind": "annotate",
            "input": task.validation,
            "text_column": task.text_column,
            "labels": {name: _dump(spec) for name, spec in task.labels.items()},
            "shots_file": task.seeds,
            "label_column": task.label_column,
        },
        ctx.recipe.templates,
    )
    header, suffix, *_ = annotate.header(prompt_style(slot.teacher, slot.style))
    if limit:
        validation = validation.sample(n=min(limit, len(validation)), random_state=0)
    name = f"{slot.teacher.backend}:{slot.teacher.model}"
    classifier = TeacherClassifier(slot.teacher, list(task.labels), header, suffix)
    try:
        report = evaluate_teacher(
            classifier, validation["text"].tolist(), validation["label"].tolist()
        )
    finally:
        classifier.close()
    speed = _teacher_speed(name, header, report.examples_per_s_batch32)
    return {
        "name": name,
        "accuracy": report.accuracy,
        "macro_f1": report.macro_f1,
        "examples_per_s": speed,
        "examples": len(validation),
    }


def _teacher_speed(name: str, header: str, measured: float) -> float:
    """Remember the teacher's measured speed per (teacher, header), for all-cached reruns."""
    import hashlib
    import json

    from synthkd.assets import cache_dir
    from synthkd.data import write_atomic

    path = cache_dir() / "teacher_speed.json"
    key = hashlib.sha256(f"{name}\n{header}".encode()).hexdigest()[:16]
    try:
        known = json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError):
        known = {}
    if measured > 0:
        known[key] = measured
        with contextlib.suppress(OSError):
            write_atomic(path, json.dumps(known, indent=1))
        return measured
    return float(known.get(key, 0.0))
