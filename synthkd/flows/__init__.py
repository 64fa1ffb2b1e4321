"""flows: Prefect flows that wire the rooms together (see ../shared/DESIGN.md).

- `distill`: the whole performance-guided loop; the stages as flows of their own:
  `generate_corpus`, `filter_corpus`, `train_critic`, `train_student`, `publish_corpus`.
- `add_listener` / `remove_listener`: progress events for a display in this process.
"""

from synthkd.flows.distill import distill
from synthkd.flows.events import add_listener, remove_listener
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
    "train_critic",
    "train_student",
]
