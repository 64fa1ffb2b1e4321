"""A recipe: one YAML file that says what to distil, from which teacher, into which student.

The pydantic models below are the recipe's schema (unknown keys are errors). The
sections that rooms consume (`task`, `critic`, `student`, `loop`) have the same field
names as the rooms' own dataclass configs, so flows can hand them over with
`Config(**section.model_dump())`. `load_recipe` turns every problem into one
`SynthkdError` line naming the file, the line and the field.
"""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from synthkd.errors import SynthkdError

DEFAULT_TEACHER = "llamacpp:gemma-3-270m"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------- teacher


class SamplingSection(_Section):
    """Sampling defaults for every request; tasks set stop strings and per-stage budgets."""

    temperature: float = Field(0.9, ge=0, le=2, description="Softmax temperature; 0 is greedy.")
    top_p: float = Field(0.95, gt=0, le=1, description="Nucleus sampling mass.")
    max_tokens: int | None = Field(
        None,
        ge=1,
        le=32768,
        description="Completion budget; None lets each task stage choose its own.",
    )
    seed: int | None = Field(0, description="Base seed; sample i of a request uses seed + i.")


class TeacherSection(_Section):
    """One teacher: a backend spec string plus its limits."""

    spec: str = Field(
        DEFAULT_TEACHER,
        description="`llamacpp:gemma-3-270m`, `openai:MODEL`, `openai:MODEL@URL`, `vllm:MODEL`.",
    )
    weight: float = Field(1.0, gt=0, description="Share of requests in a mix of teachers.")
    base_urls: list[str] | None = Field(None, description="Replicas of an OpenAI-compatible API.")
    api_key_env: str | None = Field(None, description="Environment variable holding the API key.")
    concurrency: int = Field(4, ge=1, le=1024, description="Requests in flight at once.")
    requests_per_minute: int | None = Field(None, ge=1)
    tokens_per_minute: int | None = Field(None, ge=1)
    max_retries: int = Field(3, ge=0, le=100)
    timeout_s: float = Field(120.0, gt=0)
    prompt_style: Literal["auto", "completion", "chat"] = Field(
        "auto",
        description="Few-shot completion prompts (base models) or instructions with a JSON "
        "schema (chat models); auto asks the teacher.",
    )
    sampling: SamplingSection = Field(default_factory=SamplingSection)

    @field_validator("spec")
    @classmethod
    def _spec_shape(cls, value: str) -> str:
        backend, _, model = value.partition(":")
        if not backend or not model:
            raise ValueError("a teacher spec looks like BACKEND:MODEL, e.g. llamacpp:gemma-3-270m")
        return value

    def options(self) -> dict[str, Any]:
        """Keyword options for `teacher_from_spec` (everything but spec, weight, style, sampling)."""
        return self.model_dump(exclude={"spec", "weight", "prompt_style", "sampling"})


# ----------------------------------------------------------------------------- tasks


class LabelSection(_Section):
    description: str = Field("", description="What the label means, in a few words.")
    subtopics: list[str] = Field(default_factory=list, description="Diversity axis per label.")


def _label_dict(value: Any) -> Any:
    """Accept `labels: [a, b]` and `labels: {a: "description"}` as shorthands."""
    if isinstance(value, list):
        return {str(name): {} for name in value}
    if isinstance(value, dict):
        return {k: ({"description": v} if isinstance(v, str) else v) for k, v in value.items()}
    return value


class LabelledTaskSection(_Section):
    """Labelled examples written per label (text classification)."""

    kind: Literal["labelled"]
    labels: dict[str, LabelSection] = Field(min_length=2)
    seeds: str = Field(description="JSONL or CSV of a few real examples per label.")
    validation: str | None = Field(None, description="Held-out examples that judge the student.")
    text_column: str = "text"
    label_column: str = "label"
    styles: list[str] = Field(default_factory=list, description="Diversity axis: writing styles.")
    lengths: list[str] = Field(default_factory=list, description="Diversity axis: lengths.")
    per_label: int = Field(
        50, ge=1, le=100_000, description="Records asked for per label per round."
    )
    shots: int = Field(4, ge=0, le=64, description="Few-shot examples per prompt (rotating).")
    samples_per_prompt: int = Field(4, ge=1, le=64, description="Samples drawn from one prompt.")
    item_name: str = Field("Story", description="What one example is called in the prompts.")
    label_name: str = Field("Section", description="What the label is called in the prompts.")
    document_title: str = Field("Latest stories", description="First line of base-model prompts.")
    headline: bool = Field(
        False, description="Items start with a headline (the first line of a multi-line seed)."
    )

    _labels_shorthand = field_validator("labels", mode="before")(_label_dict)


class CommonsenseTaskSection(_Section):
    """ATOMIC-style (head, relation, tail) triples, Symbolic Knowledge Distillation style."""

    kind: Literal["commonsense"]
    seed_events: str = Field(description="Text file, one 'PersonX ...' event per line.")
    seed_triples: str = Field(description="JSONL of gold {head, relation, tail} examples.")
    relations: dict[str, str] = Field(
        min_length=1,
        description="Relation name -> natural-language template, e.g. 'As a result, PersonX'.",
    )
    per_relation: int = Field(
        20, ge=1, le=100_000, description="Triples asked for per relation per round."
    )
    tails_per_event: int = Field(2, ge=1, le=64, description="Tails sampled per (event, relation).")
    event_shots: int = Field(
        10, ge=1, le=100, description="Seed events shown when writing new ones."
    )
    tail_shots: int = Field(6, ge=1, le=100, description="Gold triples shown per relation.")


class DocumentKGTaskSection(_Section):
    """Knowledge-graph triples grounded in quotes of the user's documents."""

    kind: Literal["document_kg"]
    documents: str = Field(description="Glob of plain-text documents, relative to the recipe.")
    seed_kg: str | None = Field(None, description="JSONL of few-shot {text, entities, triples}.")
    chunk_tokens: int = Field(160, ge=20, le=100_000, description="Token budget of one chunk.")
    per_document: int = Field(
        10, ge=1, le=100_000, description="Triples wanted per document per round."
    )
    max_entities: int = Field(12, ge=2, le=200, description="Entities kept per chunk.")
    samples_per_chunk: int = Field(2, ge=1, le=64, description="Triple samples per chunk.")
    min_quote_chars: int = Field(12, ge=1, description="Shorter quotes support nothing.")


class AnnotateTaskSection(_Section):
    """The teacher labels the user's own texts; records keep its full label distribution."""

    kind: Literal["annotate"]
    input: str = Field(description="CSV or Parquet file of unlabelled texts.")
    text_column: str = "text"
    labels: dict[str, LabelSection] = Field(min_length=2)
    shots_file: str | None = Field(
        None, description="JSONL/CSV of labelled examples for the header."
    )
    shots: int = Field(2, ge=0, le=64, description="Examples per label in the few-shot header.")
    label_column: str = Field("label", description="Label column of shots_file.")

    _labels_shorthand = field_validator("labels", mode="before")(_label_dict)


TaskSection = Annotated[
    LabelledTaskSection | CommonsenseTaskSection | DocumentKGTaskSection | AnnotateTaskSection,
    Field(discriminator="kind"),
]


# -------------------------------------------------- sections consumed by other rooms


class CriticSection(_Section):
    target_precision: float = Field(0.9, gt=0, le=1)
    min_chars: int = Field(20, ge=0, le=1_000_000)
    max_chars: int = Field(1500, ge=1, le=10_000_000)
    forbid_label_word: bool = False
    banned_patterns: list[str] = Field(default_factory=list)
    near_duplicate_threshold: float = Field(0.85, gt=0, le=1, description="MinHash Jaccard.")
    labels_file: str | None = None
    judge: str | None = Field(None, description="A teacher spec for an LLM judge.")
    judge_rubric: str | None = None
    enabled: bool = Field(True, description="Apply the trained critic's cut (filters always do).")
    balance: bool = Field(True, description="Keep label balance: per-label thresholds/quotas.")


class StudentSection(_Section):
    kind: Literal["minilm", "linear", "generative"] = "minilm"
    base_model: str | None = None
    lora_r: int = Field(8, ge=1, le=1024)
    lora_alpha: int = Field(16, ge=1, le=4096)
    lora_dropout: float = Field(0.1, ge=0, lt=1)
    target_modules: list[str] | None = None
    epochs: int = Field(4, ge=1, le=1000)
    learning_rate: float = Field(5e-4, gt=0)
    batch_size: int = Field(16, ge=1, le=65536)
    max_length: int = Field(128, ge=8, le=8192)
    seed: int = 0
    early_stopping_patience: int = Field(2, ge=0)
    use_soft_labels: bool = True


class LoopSection(_Section):
    rounds: int = Field(3, ge=1, le=1000)
    patience: int = Field(1, ge=0, le=1000)
    epsilon: float = Field(0.005, ge=0)
    token_budget: int | None = Field(None, ge=1)


# ---------------------------------------------------------------------------- recipe


class Recipe(_Section):
    """A whole recipe. Paths are absolute after `load_recipe` (relative ones are taken
    relative to the recipe file)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    task: TaskSection
    teacher: TeacherSection | None = None
    teachers: list[TeacherSection] | None = Field(None, min_length=1)
    templates: str | None = Field(None, description="Directory of Jinja templates overriding ours.")
    critic: CriticSection = Field(default_factory=CriticSection)
    student: StudentSection = Field(default_factory=StudentSection)
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
    "labelled": (("seeds",), ("validation",)),
    "commonsense": (("seed_events",), ("seed_triples",)),
    "document_kg": (("seed_kg",),),
    "annotate": (("input",), ("shots_file",)),
}


class _Located:
    """The YAML node tree, to map a field path to the line it was written on."""

    def __init__(self, root: yaml.Node):
        self.root = root

    def node(self, loc: tuple[Any, ...]) -> yaml.Node:
        node = self.root
        for part in loc:
            child = self._child(node, part)
            if child is None:
                continue  # a union tag (e.g. the task's kind) or a missing key: stay put
            node = child
        return node

    @staticmethod
    def _child(node: yaml.Node, part: Any) -> yaml.Node | None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    return value
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            return node.value[part]
        return None

    def key_node(self, loc: tuple[Any, ...]) -> yaml.Node:
        """The key's own node for an unknown key (so the line is the key's line)."""
        parent = self.node(loc[:-1])
        if isinstance(parent, yaml.MappingNode):
            for key, _ in parent.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(loc[-1]):
                    return key
        return parent

    def line(self, loc: tuple[Any, ...], *, key: bool = False) -> int:
        node = self.key_node(loc) if key else self.node(loc)
        return node.start_mark.line + 1


def _field_name(loc: tuple[Any, ...], data: Any) -> str:
    """Dotted field path without pydantic's union tags."""
    parts: list[str] = []
    node = data
    for part in loc:
        if (
            isinstance(node, dict)
            and part in node
            or isinstance(node, list)
            and isinstance(part, int)
            and part < len(node)
        ):
            node = node[part]
        elif isinstance(node, dict) and node.get("kind") == part:
            continue
        parts.append(f"[{part}]" if isinstance(part, int) else str(part))
    return ".".join(parts).replace(".[", "[") or "recipe"


def _check_duplicate_keys(node: yaml.Node, where: str) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen:
                    raise SynthkdError(
                        f"{where}:{key.start_mark.line + 1}: key {key.value!r} appears twice"
                    )
                seen.add(key.value)
            _check_duplicate_keys(value, where)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _check_duplicate_keys(item, where)


def _compose(text: str, where: str) -> tuple[yaml.Node, Any]:
    loader = None
    try:
        loader = yaml.SafeLoader(text)
        node = loader.get_single_node()
        if node is None:
            raise SynthkdError(f"{where}:1: the recipe is empty")
        _check_duplicate_keys(node, where)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        problem = " ".join(str(exc.problem or exc).split())
        raise SynthkdError(f"{where}:{line}: not valid YAML: {problem}") from None
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        char = chr(exc.character) if isinstance(exc.character, int) else exc.character
        raise SynthkdError(
            f"{where}:{line}: not valid YAML: character {char!r} is not allowed"
        ) from None
    except yaml.YAMLError as exc:
        raise SynthkdError(f"{where}: not valid YAML: {' '.join(str(exc).split())}") from None
    finally:
        if loader is not None:
            loader.dispose()
    if not isinstance(data, dict):
        raise SynthkdError(f"{where}:1: a recipe is a YAML mapping (name:, task:, teacher: ...)")
    return node, data


def _validation_message(exc: ValidationError, located: _Located, data: Any, where: str) -> str:
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = tuple(first["loc"])
    kind = first["type"]
    field = _field_name(loc, data)
    if kind == "extra_forbidden":
        line = located.line(loc, key=True)
        message = "unknown field"
    elif kind == "missing":
        line = located.line(loc[:-1])
        message = "required field is missing"
    elif kind == "union_tag_invalid":
        line = located.line((*loc, "kind"))
        message = f"unknown task kind; expected one of {first['ctx']['expected_tags']}"
        field = f"{field}.kind"
    elif kind == "union_tag_not_found":
        line = located.line(loc)
        message = "a task needs a kind: labelled, commonsense, document_kg or annotate"
        field = f"{field}.kind"
    else:
        line = located.line(loc)
        message = first["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return f"{where}:{line}: {field}: {message}{more}"


def _resolve(base: Path, value: str) -> str:
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


def _resolve_paths(recipe: Recipe, base: Path, located: _Located, where: str) -> None:
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
    if recipe.output is not None:
        recipe.output = _resolve(base, recipe.output)


def load_recipe(path: str | Path) -> Recipe:
    """Read, validate and resolve a recipe; any problem is one SynthkdError line."""
    file = Path(path)
    where = str(path)
    if not file.is_file():
        raise SynthkdError(f"recipe not found: {where}")
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SynthkdError(f"{where}: cannot read the recipe ({exc})") from None
    node, data = _compose(text, where)
    located = _Located(node)
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        raise SynthkdError(_validation_message(exc, located, data, where)) from None
    _resolve_paths(recipe, file.resolve().parent, located, where)
    recipe._source = str(file.resolve())
    return recipe
