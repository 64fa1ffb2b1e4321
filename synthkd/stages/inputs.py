"""Every file a recipe names, read and checked once, before the first teacher call.

A malformed validation file found after generation costs every teacher request made
before it; so `check_inputs` reads all of them up front (through `synthkd.data`'s one
reader), keeps what it read for the stages, and hashes each file for the cache keys.
"""

from __future__ import annotations

import glob
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthkd.data import file_digest, read_labelled, read_rows, read_texts
from synthkd.errors import SynthkdError


@dataclass
class Inputs:
    """What the recipe's files hold, as read by `check_inputs`."""

    real: Any = None
    """DataFrame (text, label) of the user's real labelled examples: labelled seeds, or an
    annotate recipe's shots_file. The critic's seeds and part of the student's training data."""
    validation: Any = None
    """DataFrame (text, label) of the validation file; None: a stratified split is held out."""
    test: Any = None
    """DataFrame (text, label) of the untouched test file, read only by the final report."""
    texts: list[str] = field(default_factory=list)
    """An annotate recipe's input texts."""
    unlabelled: list[str] = field(default_factory=list)
    """The unlabelled pool, where the recipe names one."""
    digests: dict[str, str] = field(default_factory=dict)
    """Recipe field -> sha256 prefix of the file's bytes; part of every cache key."""


def _labels(task: Any) -> list[str] | None:
    labels = getattr(task, "labels", None)
    return [str(name) for name in labels] if isinstance(labels, dict) else None


def _texts(path: str, column: str, what: str) -> list[str]:
    texts = read_texts(path, column, what)
    if not any(text.strip() for text in texts):
        raise SynthkdError(f"{what} {path}: no texts")
    return texts


def _triples(path: str) -> None:
    rows = read_rows(path, "seed triples")
    if not rows:
        raise SynthkdError(f"seed triples {path}: no rows")
    for number, row in enumerate(rows, 1):
        for key in ("head", "relation", "tail"):
            if not isinstance(row.get(key), str) or not row[key].strip():
                raise SynthkdError(f"seed triples {path}: row {number}: {key!r} must be text")


def _documents(pattern: str) -> list[str]:
    files = sorted(p for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
    if not files:
        raise SynthkdError(f"documents {pattern}: no document matches")
    for file in files:
        try:
            Path(file).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise SynthkdError(f"document {file}: not UTF-8 text") from None
        except OSError as exc:
            raise SynthkdError(f"document {file}: cannot read ({exc.strerror or exc})") from None
    return files


def check_teachers(recipe: Any, override: str | None) -> None:
    """A bad spec, or an `api_key_env` naming an unset variable, is found now, not mid-run."""
    from synthkd.generators.teachers import parse_spec

    sections = recipe.teacher_sections()
    used = sections[:1] if override else sections
    for section in used:
        spec = override or section.spec
        try:
            parse_spec(spec)
        except SynthkdError as exc:
            raise SynthkdError(f"teacher {spec!r}: {exc}") from None
        name = getattr(section, "api_key_env", None)
        if name and spec.startswith("openai:") and not os.environ.get(name):
            raise SynthkdError(
                f"teacher {spec!r}: api_key_env names {name}, which is not set in the environment"
            )


def check_inputs(recipe: Any) -> Inputs:
    """Read and check every file the recipe names; one SynthkdError line for the first fault."""
    task = recipe.task
    found = Inputs()
    paths: dict[str, str] = {}
    labels = _labels(task)
    if task.kind == "labelled":
        text, label = task.text_column, task.label_column
        found.real = read_labelled(task.seeds, text, label, "seeds", min_labels=2)
        paths["seeds"] = task.seeds
        for name in ("validation", "test"):
            path = getattr(task, name, None)
            if path:
                setattr(found, name, read_labelled(path, text, label, name, labels=labels))
                paths[name] = path
        pool = getattr(task, "unlabelled", None)
        if pool:
            column = getattr(task, "unlabelled_text_column", "text")
            found.unlabelled = _texts(pool, column, "unlabelled pool")
            paths["unlabelled"] = pool
    elif task.kind == "annotate":
        found.texts = _texts(task.input, task.text_column, "annotate input")
        paths["input"] = task.input
        if task.shots_file:
            found.real = read_labelled(
                task.shots_file, task.text_column, task.label_column, "shots file", labels=labels
            )
            paths["shots_file"] = task.shots_file
    elif task.kind == "commonsense":
        _texts(task.seed_events, "event", "seed events")
        _triples(task.seed_triples)
        paths.update(seed_events=task.seed_events, seed_triples=task.seed_triples)
    elif task.kind == "document_kg":
        for i, file in enumerate(_documents(task.documents)):
            paths[f"documents[{i}]"] = file
        if task.seed_kg:
            if not read_rows(task.seed_kg, "seed KG"):
                raise SynthkdError(f"seed KG {task.seed_kg}: no rows")
            paths["seed_kg"] = task.seed_kg
    if getattr(task, "heldout_gold", None):  # the triples student's held-out gold (issue 14)
        from synthkd.stages.triples import read_heldout

        read_heldout(task)
        paths["heldout_gold"] = task.heldout_gold
    labels_file = getattr(recipe.critic, "labels_file", None)
    if labels_file:
        read_rows(labels_file, "critic labels file")
        paths["critic.labels_file"] = labels_file
    if recipe.templates:
        paths["templates"] = recipe.templates
    found.digests = {name: file_digest(path) for name, path in sorted(paths.items())}
    return found


_CODE_DIGEST: str | None = None


def code_version() -> str:
    """The package version plus a hash of its source: a changed room invalidates the cache."""
    global _CODE_DIGEST
    if _CODE_DIGEST is None:
        import synthkd

        root = Path(synthkd.__file__).parent
        digest = hashlib.sha256()
        for file in sorted(root.rglob("*.py")):
            digest.update(str(file.relative_to(root)).encode())
            digest.update(file.read_bytes())
        _CODE_DIGEST = f"{_package_version()}+{digest.hexdigest()[:12]}"
    return _CODE_DIGEST


def _package_version() -> str:
    try:
        from importlib.metadata import version

        return version("synthkd")
    except Exception:  # not installed (a source checkout on the path)
        import synthkd

        return getattr(synthkd, "__version__", "0")
