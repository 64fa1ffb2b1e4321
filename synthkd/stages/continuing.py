"""A run that continues the loop of earlier runs in the same run folder.

A scheduled run (or `synthkd run --continue`) on a folder that holds a finished run
does not start over: it numbers its rounds after the last one, samples with new seeds
(so it appends a new corpus version of new records), starts from the kept student and
that student's focus (its weak classes, confusions and hard negatives), must beat that
student to replace it, and reuses the critic when the recipe and its files are unchanged.
Filtering and label evidence work on a round's own rows, with every earlier round's rows
as the dedup reference, so rows already in the corpus are never filtered again.

`<run>/loop_state.json` records each run (id, seed offset, first round, whether it
finished) and what the next run starts from. A killed run, continued or not, is resumed
by rerunning: the unfinished run is taken up again with its own seed offset and start,
so Prefect's task cache replays what it finished.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from synthkd.errors import SynthkdError
from synthkd.stages.context import RunContext

STATE = "loop_state.json"
SEED_STRIDE = 100_003
"""Seed offset of the k-th run of a folder: k * SEED_STRIDE (the first run samples as a
plain `synthkd run` does). Every sampling seed is hashed with its intent, so any offset
gives new samples."""


@dataclass
class LoopStart:
    """Where this run's loop starts: from scratch, or from the runs before it."""

    run_id: str
    seed_offset: int = 0
    first_round: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    """metrics.json rows of earlier runs (kept, this run's rows come after them)."""
    best_round: int | None = None
    best: dict[str, Any] | None = None
    """The kept student of earlier runs (its fit_student summary), or None."""
    focus: dict[str, Any] | None = None
    wanted: dict[str, int] | None = None
    critic: dict[str, Any] | None = None
    """The earlier runs' critic (train-critic result), reused when the inputs are unchanged."""

    @property
    def continued(self) -> bool:
        return self.first_round > 0

    @property
    def students(self) -> dict[int, dict[str, Any]]:
        return {self.best_round: self.best} if self.best is not None else {}

    @property
    def included(self) -> list[int]:
        """The rounds whose records train the student: the kept student's, else all earlier."""
        if self.best is not None and self.best.get("rounds") is not None:
            return list(self.best["rounds"])
        return list(range(self.first_round))

    @property
    def best_f1(self) -> float:
        return float(self.best["val_macro_f1"]) if self.best is not None else -1.0


def read_state(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / STATE
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        raise SynthkdError(f"{path} is damaged; remove it to start the loop afresh") from None


def _write_state(run_dir: Path, state: dict[str, Any]) -> None:
    from synthkd.data import write_atomic

    write_atomic(Path(run_dir) / STATE, json.dumps(state, indent=2, default=str) + "\n")


def _metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / "metrics.json"
    try:
        rows = json.loads(path.read_text()) if path.exists() else []
    except (OSError, ValueError):
        return []
    return rows if isinstance(rows, list) else []


def _fingerprint(ctx: RunContext) -> dict[str, Any]:
    return {"recipe_digest": ctx.recipe_digest, "inputs": dict(ctx.inputs.digests)}


def _start_of(record: dict[str, Any], metrics: list[dict[str, Any]]) -> LoopStart:
    start = record.get("start") or {}
    earlier = [r for r in metrics if r.get("round", 0) < record["first_round"]]
    return LoopStart(
        run_id=record["run_id"],
        seed_offset=record["seed_offset"],
        first_round=record["first_round"],
        history=earlier,
        best_round=start.get("best_round"),
        best=start.get("best"),
        focus=start.get("focus"),
        wanted=start.get("wanted"),
        critic=start.get("critic"),
    )


def check_continue(run_dir: Path, continue_loop: bool) -> None:
    """Refuse, before anything is written, a plain run on a folder several runs grew (it
    would replay the first run only); an unfinished run is resumed either way."""
    runs = read_state(run_dir).get("runs", [])
    if continue_loop or len(runs) < 2 or not runs[-1].get("finished_at"):
        return
    raise SynthkdError(
        f"{run_dir} holds {len(runs)} runs of the loop; add rounds with "
        "`synthkd run --continue`, or give a new --out for a run from scratch"
    )


def start_run(
    ctx: RunContext, continue_loop: bool, run_id: str | None = None
) -> tuple[RunContext, LoopStart]:
    """This run's start, and the context with its seed offset; recorded in loop_state.json.

    An unfinished run in the folder is resumed whatever was asked. Otherwise a plain run
    replays the folder's only run (Prefect's cache answers it), a continued one starts a
    new run after the last round. A plain run on a folder that several runs grew is
    refused: it would replay the first one only.
    """
    run_dir = ctx.run_dir
    state = read_state(run_dir)
    runs: list[dict[str, Any]] = state.get("runs", [])
    metrics = _metrics(run_dir)
    last = runs[-1] if runs else None
    check_continue(run_dir, continue_loop)
    if last is not None and not last.get("finished_at"):
        record = last
    elif not continue_loop and runs:
        record = runs[0]
        record["finished_at"] = None
    elif continue_loop and (runs or metrics):
        k = max(len(runs), 1)
        current = state.get("current") or {}
        if current.get("fingerprint") != _fingerprint(ctx):
            current = {**current, "critic": None}  # the recipe or its files changed: retrain
        record = {
            "run_id": run_id or uuid.uuid4().hex,
            "seed_offset": k * SEED_STRIDE,
            "first_round": max((int(r.get("round", -1)) for r in metrics), default=-1) + 1,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "finished_at": None,
            "start": {
                k: current.get(k) for k in ("best_round", "best", "focus", "wanted", "critic")
            },
        }
        runs.append(record)
    else:
        record = {
            "run_id": run_id or uuid.uuid4().hex,
            "seed_offset": 0,
            "first_round": 0,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "finished_at": None,
            "start": {},
        }
        runs = [record]
    state["runs"] = runs
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_state(run_dir, state)
    start = _start_of(record, metrics)
    return replace(ctx, seed_offset=start.seed_offset, _stores=None), start


def save_round(
    ctx: RunContext,
    start: LoopStart,
    best_round: int | None,
    best: dict[str, Any] | None,
    focus: tuple[dict, dict] | None,
    critic: dict[str, Any] | None,
) -> None:
    """After each round: what the next run starts from (the kept student and its focus)."""
    state = read_state(ctx.run_dir)
    state["current"] = {
        "best_round": best_round,
        "best": best,
        "focus": focus[0] if focus else None,
        "wanted": focus[1] if focus else None,
        "critic": critic,
        "fingerprint": _fingerprint(ctx),
    }
    _write_state(ctx.run_dir, state)


def finish_run(ctx: RunContext, start: LoopStart, stop_reason: str, rounds: int) -> None:
    """Mark this run finished: the next --continue starts a new one."""
    state = read_state(ctx.run_dir)
    for record in state.get("runs", []):
        if record["run_id"] == start.run_id:
            record["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            record["stop_reason"] = stop_reason
            record["rounds"] = rounds
    _write_state(ctx.run_dir, state)
