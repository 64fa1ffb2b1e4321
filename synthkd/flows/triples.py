"""The triples half of `distill`: a generative LoRA student for commonsense and document-KG
recipes, scored every round on held-out gold, steering the next round, kept at its best.

`distill` holds one `TriplesLoop` (None for other runs) and calls it once per round and
once at the end; the work is done by `synthkd.stages` (triples, triples_teacher) inside
the Prefect tasks below, cached and resumable like the classifier's.
"""

from __future__ import annotations

from typing import Any

from prefect import task

from synthkd import stages
from synthkd.flows.events import emit
from synthkd.flows.steps import CACHED, Identity
from synthkd.stages.triples import (
    primary_score,
    read_heldout,
    triples_focus,
    triples_student_enabled,
)
from synthkd.stages.triples_teacher import triples_teacher_baseline

VAL_KEYS = {
    "commonsense": ("val_exact_match", "val_token_f1", "val_critic_accuracy"),
    "document_kg": ("val_kg_precision", "val_kg_recall", "val_kg_f1", "val_kg_pair_f1"),
}
"""The held-out figures each round's metrics.json row gets."""


@task(name="train-triples-student", **CACHED)
def fit_triples_student(
    ident: Identity, round: int, use_cut: bool, name: str, previous: dict | None = None
) -> dict:
    """Train the generative student on the corpus up to ROUND (or keep PREVIOUS, the last
    round's, when the round added no training row); score it on held-out gold."""
    from synthkd.stages.triples import fit_triples_student as fit

    emit("student", round=round, action=f"train {name} (generative)")
    return fit(stages.context_from(ident), round, use_cut, name, previous)


@task(name="triples-teacher-baseline", **CACHED)
def triples_teacher(ident: Identity) -> dict | None:
    """The teacher on the same held-out gold (quality and triples/s)."""
    emit("teacher", action="score held-out gold")
    return triples_teacher_baseline(stages.context_from(ident))


class TriplesLoop:
    """Per-round student, scores, focus and the end-of-run choice for triples recipes."""

    def __init__(self, ctx: Any):
        self.ctx = ctx
        self.kind = ctx.task_kind
        self.students: dict[int, dict[str, Any]] = {}
        self.best_round: int | None = None
        self.best = -1.0
        self.stale = 0
        self.focus: dict | None = None
        self.wanted: dict | None = None
        self.focus_asked: dict[int, dict] = {}
        read_heldout(ctx.recipe.task)  # a bad gold file stops the run before any teacher call

    @classmethod
    def start(cls, ctx: Any) -> TriplesLoop | None:
        return cls(ctx) if triples_student_enabled(ctx) else None

    def round(self, r: int, row: dict[str, Any], stage_seconds: dict[str, float]) -> None:
        """Train and score round R's student; fill the round's metrics row."""
        previous = self.students.get(r - 1)
        student = fit_triples_student.submit(
            self.ctx.identity(), r, True, "student", previous
        ).result()
        self.students[r] = student
        stage_seconds["student"] = student["seconds"]
        row.update({k: student.get(k) for k in VAL_KEYS[self.kind]})
        row.update(
            val_score=primary_score(self.kind, student),
            per_relation=student.get("per_relation"),
            student_train_rows=student["train_rows"],
            # no new training row this round: the last round's student, not retrained
            student_reused=student.get("reused", False),
            student_triples_per_s=student.get("triples_per_s"),
        )
        if self.focus is not None:
            row["focus"] = self.focus

    def after_round(self, r: int, epsilon: float, patience: int, per_label: int) -> str | None:
        """Round selection and early stopping; sets the next round's focus. A stop reason, or None."""
        score = primary_score(self.kind, self.students[r])
        if self.best_round is None or score > self.best + epsilon:
            self.best_round, self.best, self.stale = r, score, 0
        else:
            self.stale += 1
            if self.stale >= max(1, patience):
                return f"no improvement above epsilon for {self.stale} round(s)"
        groups = list(self.ctx.recipe.task.relations) if self.kind == "commonsense" else None
        if groups is None:
            from synthkd.stages.triples import chunk_texts

            groups = sorted({c.split("#")[0] for c in chunk_texts(self.ctx)})
        self.focus, self.wanted = triples_focus(self.kind, self.students[r], per_label, groups)
        self.focus_asked[r + 1] = self.focus
        return None

    def finish(self) -> dict[str, Any]:
        """Install the best round's student as RUN/student; student vs teacher."""
        run_dir = self.ctx.run_dir
        best = self.students[self.best_round]
        stages.install_student(best["path"], run_dir / "student")
        teacher = triples_teacher.submit(self.ctx.identity()).result()
        keys = VAL_KEYS[self.kind]
        return {
            "best_round": self.best_round,
            "triples_student": {
                "kind": self.kind,
                "path": str(run_dir / "student"),
                "round": self.best_round,
                "score": primary_score(self.kind, best),
                **{k: best.get(k) for k in keys},
                "triples_per_s": best.get("triples_per_s"),
                "heldout_items": best.get("heldout_items"),
                "normalisation": best.get("normalisation"),
                "samples": best.get("samples"),
            },
            "student": "generative LoRA student (SmolLM2-135M-Instruct base unless the recipe names one)",
            "teacher": teacher,
            # the focus set after the last round steered no round: left out
            "guided_focus": {str(k): v for k, v in self.focus_asked.items() if k in self.students},
            "per_round": {
                str(r): {k: s.get(k) for k in keys} for r, s in sorted(self.students.items())
            },
        }
