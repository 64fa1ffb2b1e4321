"""A recipe: one YAML file that says what to distil, from which teacher, into which student.

The recipe's sections that rooms consume are the rooms' own config classes (`task` is a
task config, `critic` a `CriticConfig`, `student` a `StudentConfig`, `teacher` a
`TeacherConfig` plus spec, weight, prompt style and sampling), so each field is declared,
defaulted, bounded and documented once (synthkd/config.py). Unknown keys are errors.
`load_recipe` turns every problem into one `SynthkdError` line naming the file, the line
and the field. YAML from users is bounded: nesting depth and alias expansion are capped
before anything walks the tree.
"""

from __future__ import annotations

import dataclasses
import glob
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from synthkd.config import Settings, settings
from synthkd.critics.config import CriticConfig
from synthkd.errors import SynthkdError
from synthkd.generators.tasks import (
    AnnotateTaskConfig,
    CommonsenseTaskConfig,
    DocumentKGTaskConfig,
    LabelledTaskConfig,
    LabelSpec,
    Sampling,
)
from synthkd.generators.teachers.config import DEFAULT_SPEC, TeacherConfig
from synthkd.recipe._yaml import (
    MAX_DEPTH,
    MAX_NODES,
    MAX_RECIPE_BYTES,
    Located,
    compose,
    validation_message,
)
from synthkd.training.config import StudentConfig

DEFAULT_TEACHER = DEFAULT_SPEC

# The sections the rooms consume ARE the rooms' configs: one declaration of each field,
# default, bound and help line (see synthkd/config.py). The old names stay as aliases.
SamplingSection = Sampling
LabelSection = LabelSpec
LabelledTaskSection = LabelledTaskConfig
CommonsenseTaskSection = CommonsenseTaskConfig
DocumentKGTaskSection = DocumentKGTaskConfig
AnnotateTaskSection = AnnotateTaskConfig
CriticSection = CriticConfig
StudentSection = StudentConfig


@settings("teacher")
class TeacherSection(TeacherConfig):
    """One teacher of a recipe: a backend spec, its share of a mix, its prompt style and
    sampling, plus every `TeacherConfig` option (concurrency, retries, timeouts ...)."""

    spec: str = field(
        default=DEFAULT_SPEC,
        metadata={
            "help": "`llamacpp:gemma-3-270m`, `openai:MODEL`, `openai:MODEL@URL`, `vllm:MODEL`."
        },
    )
    weight: Annotated[float, Field(gt=0, le=1_000_000)] = field(
        default=1.0, metadata={"help": "Share of requests in a mix of teachers."}
    )
    prompt_style: Literal["auto", "completion", "chat"] = field(
        default="auto",
        metadata={
            "help": "Few-shot completion prompts (base models) or instructions with a JSON "
            "schema (chat models); auto asks the teacher."
        },
    )
    sampling: Sampling = field(
        default_factory=Sampling, metadata={"help": "Sampling defaults for every request."}
    )

    @field_validator("spec")
    @classmethod
    def _spec_shape(cls, value: str) -> str:
        backend, _, model = value.partition(":")
        if not backend or not model:
            raise ValueError("a teacher spec looks like BACKEND:MODEL, e.g. llamacpp:gemma-3-270m")
        return value

    def options(self) -> dict[str, Any]:
        """Keyword options for `teacher_from_spec` (the `TeacherConfig` fields that are set)."""
        names = [f.name for f in dataclasses.fields(TeacherConfig)]  # type: ignore[arg-type]
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}


TaskSection = Annotated[
    LabelledTaskConfig | CommonsenseTaskConfig | DocumentKGTaskConfig | AnnotateTaskConfig,
    Field(discriminator="kind"),
]


@settings("loop")
class LoopSection(Settings):
    """The performance-guided loop (the flows' own settings; no room reads them)."""

    rounds: Annotated[int, Field(ge=1, le=1000)] = field(
        default=3, metadata={"help": "Most generation rounds."}
    )
    patience: Annotated[int, Field(ge=0, le=1000)] = field(
        default=1, metadata={"help": "Rounds without a better score before the loop stops."}
    )
    epsilon: Annotated[float, Field(ge=0, le=1)] = field(
        default=0.005, metadata={"help": "Smallest gain in the score that counts as better."}
    )
    token_budget: Annotated[int, Field(ge=1)] | None = field(
        default=None,
        metadata={"help": "Stop once the teachers have used this many tokens (None: no cap)."},
    )
    max_cost: Annotated[float, Field(gt=0)] | None = field(
        default=None,
        metadata={
            "help": "Money one run may spend on the teachers (the prices' currency): the run "
            "stops cleanly before a round that would pass it, or after the one that did; "
            "`synthkd run --continue` goes on from there (None: no cap)."
        },
    )
    cv_folds: Annotated[int, Field(ge=2, le=100)] = field(
        default=5,
        metadata={
            "help": "k-fold cross-validation over the real examples for every choice the "
            "loop makes."
        },
    )
    rival_students: Annotated[
        tuple[Literal["frozen", "linear", "contrastive"], ...], Field(min_length=1)
    ] = field(
        default=("frozen", "linear", "contrastive"),
        metadata={
            "help": "Student kinds the real-examples-only rival is chosen from by CV: "
            "frozen MiniLM + logistic head, TF-IDF + logistic, contrastively tuned MiniLM "
            "+ logistic head (SetFit-style: the best rival on short texts, but minutes on 2 "
            "cores, and where the validation examples are written like the seeds its CV "
            "flatters it)."
        },
    )
    rival_tune_below: Annotated[float, Field(gt=0, le=1)] = field(
        default=0.95,
        metadata={
            "help": "Try the contrastively tuned rival only while the best frozen or TF-IDF "
            "rival's CV accuracy is below this (1.0: always). Where frozen MiniLM already "
            "separates your labels (news leads: 0.97), tens of examples cannot tell the "
            "tuned encoder's last points from noise, and it costs minutes."
        },
    )
    ship_real_only: bool = field(
        default=True,
        metadata={
            "help": "Let the cross-validation winner (a student of your real examples, or "
            "a corpus + real one) ship unless the loop's student is clearly better on your "
            "validation examples, against the winner's out-of-fold predictions there (see "
            "ship_alpha); off: the loop's student ships. The rival is trained and reported "
            "either way."
        },
    )
    ship_alpha: Annotated[float, Field(gt=0, le=1)] = field(
        default=0.1,
        metadata={
            "help": "How sure the run must be before the loop's student ships instead of "
            "the cross-validation winner: the largest one-sided p-value of an exact "
            "McNemar test on the validation examples both were scored on. The loop's "
            "validation figures lean optimistic (the label evidence used those examples), "
            "so a small lead is not evidence."
        },
    )
    teacher_baseline_examples: Annotated[int, Field(ge=1)] | None = field(
        default=None,
        metadata={
            "help": "Validation examples the teacher is scored on as a classifier at the "
            "end, for the report's student vs teacher (a seeded sample; None: all). Each "
            "is a teacher call, a quarter of a second on the embedded teacher."
        },
    )


# ---------------------------------------------------------------------------- recipe


class Recipe(BaseModel):
    """A whole recipe. Paths are absolute after `load_recipe` (relative ones are taken
    relative to the recipe file)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    task: TaskSection
    teacher: TeacherSection | None = None
    teachers: list[TeacherSection] | None = Field(None, min_length=1)
    templates: str | None = Field(None, description="Directory of Jinja templates overriding ours.")
    critic: CriticConfig = Field(default_factory=CriticConfig)
    student: StudentConfig = Field(default_factory=StudentConfig)
    loop: LoopSection = Field(default_factory=LoopSection)
    output: str | None = Field(None, description="Run folder; default runs/<name>.")
    _source: str | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _one_teacher_key(self) -> Recipe:
        if self.teacher is not None and self.teachers is not None:
            raise ValueError("give either teacher or teachers, not both")
        return self

    def teacher_sections(self) -> list[TeacherSection]:
        """The teacher mix (one default teacher when the recipe names none)."""
        if self.teachers:
            return list(self.teachers)
        return [self.teacher or TeacherSection()]

    @property
    def source(self) -> str | None:
        """The recipe file this was loaded from (None when built in code)."""
        return self._source

    def output_dir(self) -> Path:
        return Path(self.output) if self.output else Path("runs") / self.name


# ------------------------------------------------------------------------ loading


_FILE_FIELDS: dict[str, tuple[tuple[str, ...], ...]] = {
    "labelled": (("seeds",), ("validation",), ("test",), ("unlabelled",)),
    "commonsense": (("seed_events",), ("seed_triples",), ("heldout_gold",)),
    "document_kg": (("seed_kg",), ("heldout_gold",)),
    "annotate": (("input",), ("shots_file",)),
}


def _resolve(base: Path, value: str) -> str:
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


def _resolve_paths(recipe: Recipe, base: Path, located: Located, where: str) -> None:
    def missing(loc: tuple[str, ...], path: str, what: str = "file not found") -> SynthkdError:
        field = ".".join(loc)
        return SynthkdError(f"{where}:{located.line(loc)}: {field}: {what}: {path}")

    task = recipe.task
    for (name,) in _FILE_FIELDS[task.kind]:
        value = getattr(task, name)
        if value is None:
            continue
        path = _resolve(base, value)
        if not Path(path).is_file():
            raise missing(("task", name), path)
        setattr(task, name, path)
    if task.kind == "document_kg":
        pattern = _resolve(base, task.documents)
        if not sorted(p for p in glob.glob(pattern, recursive=True) if Path(p).is_file()):
            raise missing(("task", "documents"), pattern, "no document matches")
        task.documents = pattern
    if recipe.templates is not None:
        path = _resolve(base, recipe.templates)
        if not Path(path).is_dir():
            raise missing(("templates",), path, "template directory not found")
        recipe.templates = path
    if recipe.critic.labels_file is not None:
        path = _resolve(base, recipe.critic.labels_file)
        if not Path(path).is_file():
            raise missing(("critic", "labels_file"), path)
        recipe.critic.labels_file = path
    if recipe.student.base_model is not None:
        path = _resolve(base, recipe.student.base_model)
        if not Path(path).is_dir():
            raise missing(("student", "base_model"), path, "model directory not found")
        recipe.student.base_model = path
    for section in recipe.teacher_sections():
        if section.cache_path is not None:
            section.cache_path = _resolve(base, str(section.cache_path))
    if recipe.output is not None:
        recipe.output = _resolve(base, recipe.output)


def load_recipe(path: str | Path) -> Recipe:
    """Read, validate and resolve a recipe; any problem is one SynthkdError line."""
    file = Path(path)
    where = str(path)
    if not file.is_file():
        raise SynthkdError(f"recipe not found: {where}")
    size = file.stat().st_size
    if size > MAX_RECIPE_BYTES:
        raise SynthkdError(
            f"{where}: {size} bytes is over the {MAX_RECIPE_BYTES} byte limit for a recipe"
        )
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SynthkdError(f"{where}: cannot read the recipe ({exc})") from None
    node, data = compose(text, where)
    located = Located(node)
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        raise SynthkdError(validation_message(exc, located, data, where)) from None
    _resolve_paths(recipe, file.resolve().parent, located, where)
    recipe._source = str(file.resolve())
    return recipe


__all__ = [
    "DEFAULT_TEACHER",
    "MAX_DEPTH",
    "MAX_NODES",
    "MAX_RECIPE_BYTES",
    "AnnotateTaskSection",
    "CommonsenseTaskSection",
    "CriticSection",
    "DocumentKGTaskSection",
    "LabelSection",
    "LabelledTaskSection",
    "LoopSection",
    "Recipe",
    "SamplingSection",
    "StudentSection",
    "TaskSection",
    "TeacherSection",
    "load_recipe",
]
