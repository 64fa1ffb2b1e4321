"""The run's context: the recipe loaded and checked once, its run folder and stores.

Every stage takes a `RunContext`. Prefect tasks cannot take one (it holds a parsed
recipe and open tables), so they take `ctx.identity()`, a JSON-able dict that is also
their cache key: recipe and input-file digests, code version, teacher, seed offset.
`context_from(identity)` rebuilds the context, once per process per identity.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthkd.errors import SynthkdError
from synthkd.stages.inputs import Inputs, check_inputs, check_teachers, code_version

FLUSH_ROWS = 100
"""Rows a generation writer buffers before a commit (one setting for the CLI and the flow)."""
FLUSH_SECONDS = 15.0
"""Seconds after which buffered rows are committed anyway: a kill loses at most this much."""


def _digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def as_config(cls: type, section: Any) -> Any:
    """A room's config from a recipe section (or the section itself when it is one)."""
    if isinstance(section, cls):
        return section
    return cls(**section.model_dump())


@dataclass
class RunContext:
    """One recipe run: what every stage needs, read once."""

    recipe: Any
    """The loaded `synthkd.recipe.Recipe` (paths resolved)."""
    recipe_path: str
    run_dir: Path
    """The folder stages write files to: the run folder, or the local working copy of a
    run folder on object storage (`folder.push()` uploads it)."""
    teacher: str | None = None
    """A teacher spec replacing the recipe's (--teacher)."""
    seed_offset: int = 0
    """Added to every sampling seed: a scheduled run samples anew."""
    inputs: Inputs = field(default_factory=Inputs)
    recipe_digest: str = ""
    version: str = ""
    folder: Any = None
    """The `synthkd.data.RunFolder`: the run's URI, its working copy and storage options."""
    _stores: Any = field(default=None, repr=False)

    @property
    def task_kind(self) -> str:
        return self.recipe.task.kind

    @property
    def kind(self) -> str:
        """The record kind the corpus holds (annotate records are labelled records)."""
        return "labelled" if self.task_kind == "annotate" else self.task_kind

    @property
    def name(self) -> str:
        return self.recipe.name

    @property
    def labels(self) -> list[str]:
        labels = getattr(self.recipe.task, "labels", None)
        return list(labels) if isinstance(labels, dict) else []

    @property
    def is_classifier(self) -> bool:
        """Task kinds whose student is a classifier trained by the loop."""
        return self.task_kind in ("labelled", "annotate") and self.recipe.student.kind in (
            "minilm",
            "linear",
        )

    def stores(self) -> Any:
        """The run folder's corpus and rejects tables (`synthkd.data.RunStore`), created once."""
        if self._stores is None:
            from synthkd.data import RunStore

            try:
                self.run_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise SynthkdError(
                    f"cannot create the run folder {self.run_dir}: {exc.strerror}"
                ) from None
            if self.folder is not None and self.folder.remote:
                root, options = self.folder.uri, self.folder.options
            else:
                root, options = self.run_dir, None
            self._stores = RunStore.create(root, self.kind, options)
        return self._stores

    @property
    def location(self) -> str:
        """The run folder as the user named it (a path or an object-store URI)."""
        return self.folder.uri if self.folder is not None else str(self.run_dir)

    def sync(self) -> int:
        """Upload the files written since the last sync (object storage only); how many."""
        return self.folder.push() if self.folder is not None else 0

    def wrote_nothing(self) -> bool:
        """True while the run's tables are unopened or both empty (safe to remove on failure)."""
        run = self._stores
        return run is None or (run.corpus.count() == 0 and run.rejects.count() == 0)

    def critic_config(self) -> Any:
        from synthkd.critics import CriticConfig

        return as_config(CriticConfig, self.recipe.critic)

    def student_config(self) -> Any:
        from synthkd.training import StudentConfig

        return as_config(StudentConfig, self.recipe.student)

    @property
    def seed(self) -> int:
        """The recipe's seed for splits, critic labels and students."""
        return int(self.recipe.student.seed)

    def identity(self) -> dict[str, Any]:
        """JSON-able: what a Prefect task takes, and so what its cache key sees."""
        return {
            "recipe": self.recipe_path,
            "digest": self.recipe_digest,
            "run_dir": self.location,
            "teacher": self.teacher,
            "seed_offset": self.seed_offset,
            "inputs": dict(self.inputs.digests),
            "version": self.version,
        }


def open_context(
    recipe: str | Path,
    run_dir: str | Path | None = None,
    *,
    teacher: str | None = None,
    seed_offset: int = 0,
) -> RunContext:
    """Load RECIPE and check every file it names (nothing is written, no teacher is called)."""
    from synthkd.recipe import load_recipe

    loaded = load_recipe(recipe)
    check_teachers(loaded, teacher)
    inputs = check_inputs(loaded)
    folder = _run_folder(run_dir if run_dir is not None else loaded.output_dir())
    return RunContext(
        recipe=loaded,
        recipe_path=str(Path(recipe).resolve()),
        run_dir=folder.local,
        folder=folder,
        teacher=teacher,
        seed_offset=int(seed_offset or 0),
        inputs=inputs,
        recipe_digest=_digest(recipe),
        version=code_version(),
    )


def _run_folder(target: str | Path) -> Any:
    """The run folder; on object storage, its files pulled into the working copy first, so
    a run killed elsewhere resumes here."""
    from synthkd.data import RunFolder

    folder = RunFolder.open(target)
    if folder.remote:
        folder.local.mkdir(parents=True, exist_ok=True)
        folder.pull()
    else:
        folder.local = folder.local.resolve()
        folder.uri = str(folder.local)
    return folder


_CONTEXTS: dict[str, RunContext] = {}


def context_from(identity: dict[str, Any]) -> RunContext:
    """The context an identity stands for; parsed once per process (keyed by the identity)."""
    import json

    key = json.dumps(identity, sort_keys=True)
    ctx = _CONTEXTS.get(key)
    if ctx is None:
        ctx = open_context(
            identity["recipe"],
            identity["run_dir"],
            teacher=identity.get("teacher"),
            seed_offset=identity.get("seed_offset") or 0,
        )
        if ctx.recipe_digest != identity.get("digest") or ctx.inputs.digests != identity.get(
            "inputs", ctx.inputs.digests
        ):
            raise SynthkdError(
                f"{identity['recipe']} or a file it names changed during the run; "
                "rerun the same command to start from the new files"
            )
        _CONTEXTS[key] = ctx
    return ctx


def remember(ctx: RunContext) -> RunContext:
    """Register a context opened in this process, so tasks given its identity reuse it."""
    import json

    _CONTEXTS[json.dumps(ctx.identity(), sort_keys=True)] = ctx
    return ctx
