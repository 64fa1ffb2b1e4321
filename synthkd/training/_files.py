"""What a student directory holds, and the one rule about weights: safetensors only.

A student directory has `student.json` (kind, labels, base model, metrics) beside the
weights; `load_student` reads that first, so any directory without it is "not a student".
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from synthkd.data import staged_dir, write_atomic
from synthkd.errors import SynthkdError

MANIFEST = "student.json"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib")


def write_json(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest of a student directory, or one line saying why it is not a student."""
    root = Path(path)
    if not root.exists():
        raise SynthkdError(f"student directory does not exist: {root}")
    if not root.is_dir():
        raise SynthkdError(f"not a student directory (a file, not a directory): {root}")
    manifest = root / MANIFEST
    if not manifest.exists():
        refuse_pickle_only(root)
        raise SynthkdError(f"not a student directory (no {MANIFEST}; train one first): {root}")
    try:
        data = json.loads(manifest.read_text())
    except json.JSONDecodeError as exc:
        raise SynthkdError(f"{manifest} is not valid JSON: {exc.msg}") from exc
    if not isinstance(data, dict) or "kind" not in data:
        raise SynthkdError(f"{manifest} has no 'kind': not a synthkd student")
    labels = data.get("labels")
    if data["kind"] != "generative" and not (
        isinstance(labels, list) and labels and all(isinstance(x, str) for x in labels)
    ):
        raise SynthkdError(f"{manifest} has no 'labels' list: the student folder is damaged")
    return data


def damaged_student(root: Path, exc: BaseException) -> SynthkdError:
    """One line for a student file a loader could not read, naming the likely file."""
    text = " ".join(str(exc).split())[:160] or type(exc).__name__
    origin = f"{type(exc).__module__} {text}".lower()
    for suffix in (".safetensors", ".onnx", ".npz", ".json"):
        if suffix.strip(".") in origin:
            files = sorted(root.rglob(f"*{suffix}"))
            named = [f for f in files if f.name in text] or files
            if named:
                return SynthkdError(f"damaged student file {named[0]}: {text}")
    return SynthkdError(f"cannot load the student in {root} (a damaged file?): {text}")


def refuse_pickle_only(root: Path) -> None:
    """A checkpoint in a pickle format only is refused: unpickling can run arbitrary code."""
    if any(root.glob("*.safetensors")):
        return
    pickles = sorted(p.name for p in root.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise SynthkdError(
            f"{root} holds only pickle weights ({', '.join(pickles)}); synthkd loads "
            "safetensors only (convert with transformers' save_pretrained)"
        )


def require_model_dir(path: str | Path, what: str) -> Path:
    """A local Hugging Face model directory with safetensors weights."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise SynthkdError(f"{what} is not a local model directory: {root}")
    if not (root / "config.json").exists():
        raise SynthkdError(f"{what} is not a model directory (no config.json): {root}")
    refuse_pickle_only(root)
    if not any(root.glob("*.safetensors")):
        raise SynthkdError(f"{what} has no safetensors weights: {root}")
    return root


atomic_dir = staged_dir
"""A student folder written aside and swapped in whole (the data room's one helper)."""


def now_utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _metric_rows(metrics: dict[str, Any]) -> list[str]:
    rows = []
    for key, value in metrics.items():
        if isinstance(value, float):
            rows.append(f"| {key} | {value:.4f} |")
        elif isinstance(value, (int, str)):
            rows.append(f"| {key} | {value} |")
    return rows


_USE = [
    "## Use",
    "",
    "```bash",
    "synthkd predict THIS_DIR --input texts.parquet --text-column text --output out.parquet",
    "```",
    "",
]
"""A student card's last section: how to run it."""


def _card_header(library: str, pipeline: str, tags: list[str]) -> list[str]:
    """The Hub's YAML block of a student card, as huggingface_hub writes it."""
    from huggingface_hub import ModelCardData

    data = ModelCardData(library_name=library, pipeline_tag=pipeline, tags=tags)
    return ["---", data.to_yaml(), "---", ""]


def write_model_card(root: Path, manifest: dict[str, Any]) -> None:
    """README.md with the Hub's YAML header, what the student is and how it scored."""
    kind = manifest["kind"]
    labels = manifest.get("labels") or []
    base = manifest.get("base_model") or manifest.get("base_model_name") or "none"
    lines = [
        *_card_header(
            "peft" if kind in ("minilm", "generative") else "synthkd",
            "text-generation" if kind == "generative" else "text-classification",
            ["synthkd", "distillation"] + (["lora"] if kind != "linear" else []),
        ),
        f"# synthkd student ({kind})",
        "",
        f"Distilled by synthkd from a teacher LLM's synthetic corpus. Base model: `{base}`.",
        f"Trained {manifest.get('created_at', '')} on {manifest.get('train_examples', '?')} "
        f"examples, validated on {manifest.get('validation_examples', '?')}.",
        "",
    ]
    if labels:
        lines += ["Labels: " + ", ".join(f"`{label}`" for label in labels), ""]
    metrics = manifest.get("metrics") or {}
    if metrics:
        lines += ["## Validation", "", "| metric | value |", "| --- | --- |"]
        lines += _metric_rows(metrics) + [""]
    baseline = manifest.get("baseline") or {}
    if baseline:
        lines += [
            "## Frozen-encoder baseline",
            "",
            "Mean-pooled embeddings of the frozen base encoder + logistic regression, "
            "trained on the same data; the LoRA student is worth its training time only "
            "if it beats this.",
            "",
            "| metric | value |",
            "| --- | --- |",
        ]
        lines += _metric_rows(baseline) + [""]
    config = manifest.get("config") or {}
    if config:
        lines += ["## Training settings", "", "```json", json.dumps(config, indent=2), "```", ""]
    lines += _USE
    lines += _PROMPT_FORMS.get(manifest.get("layout"), [])
    write_atomic(root / "README.md", "\n".join(lines))


_SELECTED_KINDS = {
    "frozen": "frozen all-MiniLM-L6-v2 embeddings + a logistic regression head",
    "contrastive": "all-MiniLM-L6-v2 tuned on same/other-label pairs of the real examples "
    "(SetFit-style) + a logistic regression head",
    "linear": "TF-IDF + logistic regression",
}
_SELECTED_DATA = {
    "real": "the user's real examples only",
    "real+pool": "the user's real examples, then self-trained on their unlabelled texts",
    "corpus+real": "the synthetic corpus + the user's real examples",
}


def write_selection_card(root: Path, manifest: dict[str, Any], train_examples: int) -> None:
    """README.md for a student chosen by cross-validation (`fit_best`): what it is, what it
    was trained on and the CV ranking that chose it, so a shipped student of the user's own
    texts says so."""
    selected = manifest.get("selected_by") or {}
    ranking = [c for c in selected.get("ranking") or [] if not c.get("skipped")]
    best = ranking[0] if ranking else {"kind": manifest["kind"], "data": "real"}
    kind, data = best["kind"], best["data"]
    tags = ["synthkd"] + (["distillation"] if data == "corpus+real" else [])
    what = _SELECTED_KINDS.get(kind, kind)
    lines = [
        *_card_header("synthkd", "text-classification", tags),
        f"# synthkd student ({kind}, chosen by cross-validation)",
        "",
        f"{what[:1].upper()}{what[1:]}, trained on "
        f"{_SELECTED_DATA.get(data, data)} ({train_examples} examples) on {now_utc()}.",
        "",
        "Labels: " + ", ".join(f"`{label}`" for label in manifest.get("labels") or []),
        "",
    ]
    if ranking:
        lines += [
            "## Cross-validation over the real examples",
            "",
            f"Ranked by CV {selected.get('metric') or 'macro_f1'}; the first was refitted on "
            "all its data.",
            "",
            "| candidate | trained on | CV accuracy | CV macro-F1 |",
            "| --- | --- | ---: | ---: |",
        ]
        lines += [
            f"| {c['kind']} | {c['data']} | {c['accuracy']:.4f} | {c['macro_f1']:.4f} |"
            for c in ranking
        ] + [""]
    lines += _USE
    write_atomic(root / "README.md", "\n".join(lines))


_PROMPT_FORMS = {
    "commonsense": [
        "Each text is a prompt in the form the student was trained on: the event, the "
        "relation's phrase, then `[GEN]`, e.g. `PersonX repairs a bicycle before that, "
        "PersonX needed [GEN]`; the prediction is the generated tail.",
        "",
    ],
    "document_kg": [
        "Each text is a document chunk followed by ` [GEN]`; the prediction is its triples "
        "as `subject | predicate | object ; ...`.",
        "",
    ],
}
"""How a generative student's input texts are written, by training layout."""
