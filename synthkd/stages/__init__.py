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
- `round_decision`: whether a guided round's records join, and the critic's cut, by CV
  over the real examples; `FoldEvidence`: the corpus as each CV fold's own label evidence
  decides it (what every corpus + real CV score sees).
- `label_round`: labels from evidence (relabel, or reject with `label_disagreement`).
  It, `generate_round`, `filter_round` and `score_round` split their work over a Dask
  cluster's workers when one runs them (`stages/scale.py`).
- `pool_round`: the recipe's `unlabelled:` texts labelled by self-training (classifier +
  teacher agree), joining the first round only if CV does not drop.
- `real_only_rival`, `score_test`: the student on the user's real examples only (the
  honest rival, chosen by CV), and the untouched `test:` figure.
- `open_teacher`, `teacher_request`, `local_model`: a teacher asked directly.
- `prepare_models`: the embedded models made once into synthkd's cache (`synthkd prepare`).
- `fit_triples_student`, `read_heldout`, `triples_focus`, `triples_teacher_baseline`: the
  generative student of commonsense and document-KG runs, its held-out gold, the guided
  round's focus, and the teacher on the same gold.
- `check_continue`, `start_run`, `save_round`, `finish_run`: a run that continues the loop of earlier runs
  in its folder; `teacher_prices`, `check_budget`, `round_cost`, `budget_stop`,
  `cost_summary`, `cost_section`, `estimate_round0`: what a run costs, before and after.
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
from synthkd.stages.continuing import (
    LoopStart,
    check_continue,
    finish_run,
    save_round,
    start_run,
)
from synthkd.stages.cost import (
    budget_stop,
    check_budget,
    cost_section,
    cost_summary,
    parse_price,
    round_cost,
    teacher_prices,
)
from synthkd.stages.critic import (
    critic_labels,
    fit_critic,
    has_label_source,
    label_by_hand,
    load_critic,
    score_store,
    scoring_config,
)
from synthkd.stages.decisions import round_decision
from synthkd.stages.estimate import estimate_round0
from synthkd.stages.evaluate import (
    Evaluation,
    evaluate_student,
    export_copy,
    merge_copy,
    serving_student,
    texts_in,
)
from synthkd.stages.evidence import real_examples, shared_embeddings
from synthkd.stages.fold_evidence import FoldEvidence
from synthkd.stages.generate import filter_round, generate_round, teacher_slots
from synthkd.stages.inputs import Inputs, check_inputs, code_version
from synthkd.stages.pool import pool_round
from synthkd.stages.prepare import prepare_models
from synthkd.stages.rivals import real_only_rival, score_test
from synthkd.stages.scale import label_round, score_round  # partitioned on a Dask cluster
from synthkd.stages.student import (
    export_serving,
    fit_round_student,
    fit_student,
    holdout,
    install_student,
    speed_texts,
    teacher_baseline,
    training_frame,
)
from synthkd.stages.teacher import local_model, open_teacher, teacher_request
from synthkd.stages.triples import fit_triples_student, read_heldout, triples_focus
from synthkd.stages.triples_teacher import triples_teacher_baseline

__all__ = [
    "FLUSH_ROWS",
    "FLUSH_SECONDS",
    "Evaluation",
    "Inputs",
    "LoopStart",
    "RunContext",
    "as_config",
    "budget_stop",
    "check_budget",
    "check_continue",
    "check_inputs",
    "code_version",
    "context_from",
    "cost_section",
    "cost_summary",
    "critic_labels",
    "estimate_round0",
    "evaluate_student",
    "export_copy",
    "export_serving",
    "filter_round",
    "finish_run",
    "fit_critic",
    "fit_round_student",
    "fit_student",
    "generate_round",
    "has_label_source",
    "holdout",
    "install_student",
    "label_by_hand",
    "label_round",
    "local_model",
    "load_critic",
    "merge_copy",
    "open_context",
    "open_teacher",
    "parse_price",
    "pool_round",
    "prepare_models",
    "real_examples",
    "real_only_rival",
    "remember",
    "round_cost",
    "round_decision",
    "FoldEvidence",
    "save_round",
    "score_round",
    "score_store",
    "score_test",
    "scoring_config",
    "serving_student",
    "shared_embeddings",
    "speed_texts",
    "start_run",
    "teacher_baseline",
    "teacher_prices",
    "teacher_request",
    "teacher_slots",
    "texts_in",
    "training_frame",
    "fit_triples_student",
    "read_heldout",
    "triples_focus",
    "triples_teacher_baseline",
]
