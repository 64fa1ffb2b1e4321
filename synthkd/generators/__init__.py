"""generators room: teachers, prompt templates, and tasks that turn prompts into records.

Public names:
- `make_task(config, templates=None)`: a task from its config (a dataclass or the
  recipe's `task.model_dump()`): labelled, commonsense, document_kg or annotate.
- `generate(task, teachers, writer, rejects_writer, *, recipe, round, focus, n, ...)`
  (async): plan, sample, parse, write records and rejects; returns a `GenerationReport`.
- `teacher_mix(sections, spec=None)`: recipe teacher sections -> `TeacherSlot`s;
  `teacher_from_spec(spec, **options)`: one teacher.
- `done_samples(corpus, rejects, group_column)`: what a resumed run must not redo.
- `Focus`, `HardNegative`: what the performance-guided loop asks a round to work on.
"""

from synthkd.generators.driver import (
    GenerationProgress,
    GenerationReport,
    TeacherSlot,
    default_wanted,
    generate,
)
from synthkd.generators.mix import teacher_mix
from synthkd.generators.prompting import Templates, prompt_style
from synthkd.generators.resume import done_samples
from synthkd.generators.tasks import (
    AnnotateTaskConfig,
    CommonsenseTaskConfig,
    DocumentKGTaskConfig,
    Focus,
    HardNegative,
    LabelledTaskConfig,
    LabelSpec,
    Sampling,
    make_task,
)
from synthkd.generators.teachers import Teacher, teacher_from_spec

__all__ = [
    "AnnotateTaskConfig",
    "CommonsenseTaskConfig",
    "DocumentKGTaskConfig",
    "Focus",
    "GenerationProgress",
    "GenerationReport",
    "HardNegative",
    "LabelSpec",
    "LabelledTaskConfig",
    "Sampling",
    "Teacher",
    "TeacherSlot",
    "Templates",
    "default_wanted",
    "done_samples",
    "generate",
    "make_task",
    "prompt_style",
    "teacher_from_spec",
    "teacher_mix",
]
