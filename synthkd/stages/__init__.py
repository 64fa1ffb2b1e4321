"""stages: the one wiring layer, plain functions (no Prefect) that join the rooms for one step.

`synthkd generate|critic|train|evaluate` call these directly; the Prefect tasks of
`synthkd.flows` are thin wrappers around them. So a recipe gives the same corpus, critic
and student whichever way it is run. See docs/architecture.md.

- `open_context(recipe, run_dir, teacher=..., seed_offset=...)`: load the recipe and read
  and check every file it names, before any teacher call -> `RunContext`;
  `context_from(ctx.identity())` rebuilds it in a task (once per process).
- `generate_round`, `filter_round`: one round of teacher records, then rules and dedup.
- `critic_labels`, `fit_critic`, `score_store`, `score_round`, `load_critic`,
  `scoring_config`, `label_by_hand`: the critic.
- `training_frame`, `holdout`, `fit_student`, `fit_round_student`, `export_serving`,
  `teacher_baseline`: students and the teacher beside them; `evaluate_student`,
  `export_copy`, `merge_copy`: a trained student on a file, and its serving copies.
- `label_round`: labels from evidence (relabel, or reject with `label_disagreement`).
- `real_only_rival`, `score_test`: the student on the user's real examples only (the
  honest rival, chosen by CV), and the untouched `test:` figure.
- `open_teacher`, `teacher_request`, `local_model`: a teacher asked directly.
"""

from synthkd.stages.context import (
    FLUSH_ROWS,
    FLUSH_SECONDS,
    RunContext,
    as_config,
    context_from,
    open_context,
    remember,
)
from synthkd.stages.critic import (
    critic_labels,
    fit_critic,
    has_label_source,
    label_by_hand,
    load_critic,
    score_round,
    score_store,
    scoring_config,
)
from synthkd.stages.evaluate import (
    Evaluation,
    evaluate_student,
    export_copy,
    merge_copy,
    serving_student,
    texts_in,
)
from synthkd.stages.evidence import label_round, real_examples, shared_embeddings
from synthkd.stages.generate import filter_round, generate_round, teacher_slots
from synthkd.stages.inputs import Inputs, check_inputs, code_version
from synthkd.stages.rivals import real_only_rival, score_test
from synthkd.stages.student import (
    export_serving,
    fit_round_student,
    fit_student,
    holdout,
    teacher_baseline,
    training_frame,
)
from synthkd.stages.teacher import local_model, open_teacher, teacher_request

__all__ = [
    "FLUSH_ROWS",
    "FLUSH_SECONDS",
    "Evaluation",
    "Inputs",
    "RunContext",
    "as_config",
    "check_inputs",
    "code_version",
    "context_from",
    "critic_labels",
    "evaluate_student",
    "export_copy",
    "export_serving",
    "filter_round",
    "fit_critic",
    "fit_round_student",
    "fit_student",
    "generate_round",
    "has_label_source",
    "holdout",
    "label_by_hand",
    "label_round",
    "local_model",
    "load_critic",
    "merge_copy",
    "open_context",
    "open_teacher",
    "real_examples",
    "real_only_rival",
    "remember",
    "score_round",
    "score_store",
    "score_test",
    "scoring_config",
    "serving_student",
    "shared_embeddings",
    "teacher_baseline",
    "teacher_request",
    "teacher_slots",
    "texts_in",
    "training_frame",
]
