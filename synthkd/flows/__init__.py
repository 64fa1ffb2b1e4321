"""flows: Prefect flows whose tasks are thin wrappers around `synthkd.stages` (see
docs/architecture.md).

- `distill`: the whole performance-guided loop; the stages as flows of their own:
  `generate_corpus`, `filter_corpus`, `train_critic`, `train_student`, `publish_corpus`.
- `add_listener` / `remove_listener`: progress events for a display in this process.
- `student_rows` / `speedup`: a run summary's students and their speed against the teacher.
"""

from synthkd.flows.distill import distill
from synthkd.flows.events import add_listener, remove_listener
from synthkd.flows.report import speedup, student_rows
from synthkd.flows.standalone import (
    filter_corpus,
    generate_corpus,
    publish_corpus,
    train_critic,
    train_student,
)

__all__ = [
    "add_listener",
    "distill",
    "filter_corpus",
    "generate_corpus",
    "publish_corpus",
    "remove_listener",
    "speedup",
    "student_rows",
    "train_critic",
    "train_student",
]
