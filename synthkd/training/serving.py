"""Serving a student fast: pick its quickest copy, use every core, start without torch.

A trained MiniLM student folder may hold exported serving copies beside its adapter:
`int8/` and `onnx/` (ONNX graphs) and `static/` (static token embeddings plus a linear
head, see `static.py`). `synthkd predict` serves the int8 copy by default when there is
one. The ONNX and static paths load onnxruntime or numpy with the Rust `tokenizers`
package only: no torch, no transformers, so a process serving 2,000 texts does not
spend seconds importing what it never runs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from synthkd.assets import cpu_threads
from synthkd.data.onnx import cpu_session
from synthkd.errors import SynthkdError
from synthkd.training._files import damaged_student, read_manifest

SERVING_FORMATS = ("auto", "torch", "onnx", "int8", "static")
"""What `load_serving_student` accepts; "auto": int8, else onnx, else the folder itself."""
AUTO_ORDER = ("int8", "onnx")
"""Exported copies "auto" prefers, fastest first. The static copy is never picked by
itself: it trades accuracy for speed, so the user asks for it."""
ONNX_BATCH = 64
"""Texts per onnxruntime call. Texts are sorted by token length first, so a batch pads
to the length of its longest text, not to the longest of the whole file (64 beat 32 by
~10% on 2,000 news texts, 2 cores)."""


def serving_copies(student_dir: str | Path) -> dict[str, Path]:
    """The exported copies a student folder holds, by format (int8, onnx, static)."""
    root = Path(student_dir)
    found = {}
    for fmt in ("int8", "onnx", "static"):
        if (root / fmt / "student.json").is_file():
            found[fmt] = root / fmt
    return found


def _own_format(manifest: dict[str, Any]) -> str:
    """What a folder is by itself: an exported copy (int8/onnx/static) or "torch"."""
    if manifest["kind"] == "onnx":
        return str(manifest.get("format", "onnx"))
    if manifest["kind"] == "static":
        return "static"
    return "torch"


def resolve_serving_copy(student_dir: str | Path, fmt: str = "auto") -> tuple[str, Path]:
    """(format, folder) that `load_serving_student` would serve, or one line saying why not."""
    if fmt not in SERVING_FORMATS:
        raise SynthkdError(f"--format must be one of {', '.join(SERVING_FORMATS)}, not {fmt!r}")
    root = Path(student_dir)
    manifest = read_manifest(root)
    own = _own_format(manifest)
    if fmt == own:
        return own, root
    copies = serving_copies(root)
    if fmt == "auto":
        if own != "torch":
            return own, root
        for candidate in AUTO_ORDER:
            if candidate in copies:
                return candidate, copies[candidate]
        return "torch", root
    if fmt in copies:
        return fmt, copies[fmt]
    if fmt == "torch":
        source = manifest.get("exported_from")
        if source and Path(source).is_dir():
            return "torch", Path(source)
        raise SynthkdError(f"{root} is an exported {own} copy; point --format torch at its source")
    hint = (
        f"synthkd export {root} --format {fmt}"
        if fmt != "static"
        else "export_static(student_dir, train_texts, train_labels)"
    )
    raise SynthkdError(f"{root} has no {fmt} copy ({root / fmt} is missing; make it with {hint})")


def load_serving_student(student_dir: str | Path, fmt: str = "auto") -> Any:
    """A classifier (`labels`, `predict_proba`, `format`) ready to serve a folder's `fmt` copy.

    "torch" loads the student with PyTorch (`load_student`); the other formats never
    import torch.
    """
    chosen, root = resolve_serving_copy(student_dir, fmt)
    if chosen == "torch":
        from synthkd.training.students import load_student

        student = load_student(root)
        _torch_threads()
        student.format = "torch"
        return student
    manifest = read_manifest(root)
    try:
        if chosen == "static":
            from synthkd.training.static import StaticStudent

            return StaticStudent.load(root, manifest)
        return OnnxServingStudent.load(root, manifest, chosen)
    except SynthkdError:
        raise
    except Exception as exc:  # a damaged file: one line naming it, not a loader traceback
        raise damaged_student(root, exc) from None


def _torch_threads() -> None:
    """Every core for a PyTorch student (a linear one never imports torch: leave it out)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(cpu_threads())


def load_fast_tokenizer(root: Path, max_length: int) -> Any:
    """The student's `tokenizer.json` through the Rust tokenizers package, truncating."""
    from tokenizers import Tokenizer

    path = root / "tokenizer.json"
    if not path.is_file():
        raise SynthkdError(f"{root} has no tokenizer.json: re-export the student")
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length)
    return tokenizer


def length_buckets(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Index arrays of at most `batch_size` items of similar length (shortest first)."""
    order = np.argsort(lengths, kind="stable")
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def softmax(logits: np.ndarray) -> np.ndarray:
    logits = logits.astype(np.float64)
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    return probs / probs.sum(axis=1, keepdims=True)


class OnnxServingStudent:
    """An exported (fp32 or int8) MiniLM student run by onnxruntime on every core."""

    kind = "onnx"

    def __init__(
        self, session: Any, tokenizer: Any, labels: list[str], path: Path, fmt: str
    ) -> None:
        self.session = session
        self.tokenizer = tokenizer
        self.labels = list(labels)
        self.path = path
        self.format = fmt
        self.pad_id = int(tokenizer.token_to_id("[PAD]") or 0)
        self.input_names = {i.name for i in session.get_inputs()}

    @classmethod
    def load(cls, root: Path, manifest: dict[str, Any], fmt: str) -> OnnxServingStudent:
        model = root / "model.onnx"
        if not model.is_file():
            raise SynthkdError(f"{root} has no model.onnx: not an exported student")
        session = cpu_session(model, cpu_threads())
        max_length = int(manifest.get("config", {}).get("max_length", 128))
        tokenizer = load_fast_tokenizer(root, max_length)
        return cls(session, tokenizer, manifest["labels"], root, fmt)

    def predict_proba(self, texts: list[str], batch_size: int = ONNX_BATCH) -> np.ndarray:
        """Label probabilities, one row per text, in the order given."""
        out = np.empty((len(texts), len(self.labels)), dtype=np.float64)
        if not texts:
            return out
        encodings = self.tokenizer.encode_batch(list(texts))
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(texts))
        for idx in length_buckets(lengths, max(1, batch_size)):
            width = int(lengths[idx].max())
            ids = np.full((len(idx), width), self.pad_id, dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                n = lengths[i]
                ids[row, :n] = encodings[i].ids
                mask[row, :n] = 1
            feeds = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self.input_names:
                feeds["token_type_ids"] = np.zeros_like(ids)
            out[idx] = softmax(self.session.run(None, feeds)[0])
        return out
