"""The generation driver: plan, send in batches, parse, write records and rejects, report.

One driver serves every task and every teacher mix. Each planned intent goes to one
teacher of the mix (by weight, deterministically), follow-ups stay with the teacher that
started the chain, and every sample ends as a record or a reject with its reason, both
written through the data room's `BufferedWriter`s (which checkpoint as they go). On
resume, samples whose `sample_key` is already in the store are not asked again (except
those that ended as teacher errors: they are asked again, and counted), and the
teacher's response cache answers the rest without new calls. When a group (label,
relation, document) falls short of what was wanted, the task plans more, a few times.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from typing import Any

from synthkd.data import Lineage, make_record, make_reject
from synthkd.errors import SynthkdError
from synthkd.generators.annotating import AnnotateRun
from synthkd.generators.report import (
    GenerationProgress,
    GenerationReport,
    ProgressCallback,
    TeacherSlot,
    copy_usage,
    default_wanted,
    usage_since,
)
from synthkd.generators.resume import prune_retried
from synthkd.generators.tasks.annotate import AnnotateTask
from synthkd.generators.tasks.base import Focus, GenerationTask, Parsed
from synthkd.generators.teachers.base import Completion, SampleError, Teacher, TeacherRequest

__all__ = ["GenerationProgress", "GenerationReport", "TeacherSlot", "default_wanted", "generate"]


async def generate(
    task: GenerationTask | AnnotateTask,
    teachers: Teacher | Sequence[TeacherSlot],
    writer: Any,
    rejects_writer: Any,
    *,
    recipe: str,
    round: int = 0,
    focus: Focus | None = None,
    n: int | None = None,
    wanted: Mapping[str, int] | None = None,
    done: Mapping[str, Sequence[str]] | None = None,
    batch_size: int = 8,
    max_attempts: int = 3,
    progress: ProgressCallback | None = None,
) -> GenerationReport:
    """Generate records for `task` from `teachers`, writing them as it goes.

    writer / rejects_writer: `synthkd.data.BufferedWriter`s (anything with `add(row)`).
    n: records wanted per group (label, relation, document); `wanted` sets it per group.
    done: sample_key -> groups of the records it produced, for samples already in the
    store (a resumed run); those samples are neither asked nor written again, except the
    ones `done.retry` names (`done_samples`: earlier teacher errors), which are asked
    again; once they have their new row, their old teacher-error rejects are removed.
    """
    slots = _slots(teachers)
    done = done or {}
    run = _Run(task, slots, writer, rejects_writer, recipe, round, dict(done), progress)
    run.retry = set(getattr(done, "retry", ()))
    goal = dict(wanted) if wanted is not None else default_wanted(task, n)
    try:
        if isinstance(task, AnnotateTask):
            await run.annotate(n, batch_size)
        else:
            await run.generate(focus, goal, batch_size, max_attempts)
    finally:
        run.finish()
    if (
        run.report.retried_teacher_errors
        and hasattr(writer, "store")
        and hasattr(rejects_writer, "store")
    ):
        writer.flush()
        rejects_writer.flush()
        prune_retried(writer.store, rejects_writer.store, recipe)
    return run.report


def _slots(teachers: Teacher | Sequence[TeacherSlot]) -> list[TeacherSlot]:
    slots = list(teachers) if isinstance(teachers, Sequence) else [TeacherSlot(teachers)]
    if not slots or any(s.weight <= 0 for s in slots):
        raise SynthkdError("a teacher mix needs at least one teacher with a positive weight")
    return slots


def _pick_slot(intent_id: str, slots: list[TeacherSlot]) -> int:
    """Deterministic weighted choice: the same intent always goes to the same teacher."""
    if len(slots) == 1:
        return 0
    digest = hashlib.sha256(intent_id.encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64 * sum(s.weight for s in slots)
    for i, slot in enumerate(slots):
        point -= slot.weight
        if point < 0:
            return i
    return len(slots) - 1


class _Run(AnnotateRun):
    """One generation: its teachers, writers, report, and what a resumed run skips."""

    retry: set[str] = frozenset()

    def __init__(self, task, slots, writer, rejects_writer, recipe, round, done, progress):
        self.task = task
        self.slots = slots
        self.styles = [s.resolved_style() for s in slots]
        self.writer = writer
        self.rejects_writer = rejects_writer
        self.recipe = recipe
        self.round = round
        self.done = done
        self.progress = progress
        self.report = GenerationReport()
        self.per_group: Counter = Counter()
        self.started = time.perf_counter()
        self.usage_before = [copy_usage(s.teacher.usage) for s in slots]
        self.requests_total = 0
        self.any_success = False
        self.asked: set[str] = set()
        """Samples answered in this run (teacher errors are not: they may be asked again)."""
        self._flying: set[str] = set()
        """Samples of the batches sent and not yet taken."""
        self._memo: dict[int, tuple[TeacherRequest, list[str]]] = {}

    # ----------------------------------------------------------- generation

    async def generate(self, focus, goal, batch_size, max_attempts) -> None:
        self._input_rejects()
        wanted = dict(goal)
        for attempt in range(max_attempts):
            intents = self.task.plan(self.round, focus, wanted, attempt)
            if not intents:
                break
            queues: list[list[TeacherRequest]] = [[] for _ in self.slots]
            for intent in intents:
                i = _pick_slot(intent["id"], self.slots)
                queues[i].append(self.task.render(intent, self.styles[i], self.slots[i].sampling))
            self.requests_total += len(intents)
            await asyncio.gather(
                *(self._drain(i, queue, batch_size) for i, queue in enumerate(queues) if queue)
            )
            wanted = {g: goal[g] - self.per_group[g] for g in goal if self.per_group[g] < goal[g]}
            if not wanted:
                break

    async def _drain(self, i: int, queue: list[TeacherRequest], batch_size: int) -> None:
        """Send the queue in batches; a concurrent teacher gets the next batches while the
        answers of the first are parsed and written, so its connections never sit idle.
        Answers are taken in the order the batches were sent: for a task without follow-ups,
        the same writes in the same order as one batch at a time."""
        teacher = self.slots[i].teacher
        depth = _pipeline_depth(teacher, batch_size)
        pending: deque[tuple[list[TeacherRequest], int, asyncio.Future]] = deque()
        try:
            while queue or pending:
                # one batch first: a teacher that fails it fails fast, with nothing else in flight
                while queue and len(pending) < (depth if self.any_success else 1):
                    batch = self._next_batch(queue, teacher, batch_size)
                    if batch is None:
                        break  # it repeats a sample in flight: take that answer first
                    if batch:
                        retried = sum(
                            k in self.retry for r in batch for k in self._keys(r, teacher)
                        )
                        self._flying.update(k for r in batch for k in self._keys(r, teacher))
                        future = asyncio.ensure_future(teacher.generate(batch))
                        pending.append((batch, retried, future))
                if pending:
                    batch, retried, future = pending.popleft()
                    responses = await future
                    self._take(i, batch, retried, responses, queue)
        finally:
            for *_, future in pending:  # a failure stops the rest (answers stay cached)
                future.cancel()
            if pending:
                await asyncio.gather(*(f for *_, f in pending), return_exceptions=True)

    def _next_batch(
        self, queue: list[TeacherRequest], teacher: Teacher, batch_size: int
    ) -> list[TeacherRequest] | None:
        """Up to `batch_size` requests still to ask; None when the next one repeats a sample
        now in flight (asked again, its answer would be paid twice)."""
        batch: list[TeacherRequest] = []
        while queue and len(batch) < batch_size:
            request = queue[0]
            if self._flying and not self._flying.isdisjoint(self._keys(request, teacher)):
                return batch or None
            queue.pop(0)
            if self._asked(request, teacher) or self._already_done(request, teacher):
                self._memo.pop(id(request), None)
                continue
            batch.append(request)
        return batch

    def _keys(self, request: TeacherRequest, teacher: Teacher) -> list[str]:
        """The request's sample keys, hashed once (a key hashes the whole prompt)."""
        memo = self._memo.get(id(request))
        if memo is None or memo[0] is not request:
            keys = [request.sample_key(teacher.backend, teacher.model, i) for i in range(request.n)]
            memo = self._memo[id(request)] = (request, keys)
        return memo[1]

    def _take(self, i, batch, retried, responses, queue) -> None:
        """Parse and write one batch's answers; queue its follow-ups."""
        slot = self.slots[i]
        teacher = slot.teacher
        for request in batch:
            self._flying.difference_update(self._keys(request, teacher))
            self._memo.pop(id(request), None)
        follow_ups = []
        failures = 0
        for response in responses:
            request = response.request
            for completion in response.completions:
                key = completion.sample_key or request.sample_key(
                    teacher.backend, teacher.model, completion.index
                )
                parsed = self._parse(request, completion)
                self._write(request, completion.text, key, teacher, parsed, completion)
                self.asked.add(key)
                self.retry.discard(key)
                follow_ups.extend(parsed.follow_ups)
            errors = list(response.errors)
            answered = {c.index for c in response.completions} | {e.index for e in errors}
            errors += [SampleError(i, "no answer") for i in range(request.n) if i not in answered]
            for error in errors:
                key = error.sample_key or request.sample_key(
                    teacher.backend, teacher.model, error.index
                )
                failures += key not in self.retry
                self.retry.add(key)  # a later plan in this run, or a rerun, asks again
                reason = "teacher_error: " + " ".join(error.reason.split())[:120]
                content = self.task.reject_content(request)
                self._reject_row(request, "", key, teacher, content, reason, "teacher")
                self.report.outcomes["reject"] += 1
            self.report.samples += request.n
        self.report.requests += len(batch)
        self.report.retried_teacher_errors += retried
        fresh = sum(r.n for r in batch) - retried
        if failures and not self.any_success and failures == fresh:
            first = next((e.reason for r in responses for e in r.errors), "no answer")
            raise SynthkdError(
                f"teacher {teacher.backend}:{teacher.model} failed every sample of the "
                f"first batch: {' '.join(first.split())[:200]}"
            )
        if follow_ups:
            rendered = [self.task.render(f, self.styles[i], slot.sampling) for f in follow_ups]
            self.requests_total += len(rendered)
            # stages run in order and like prompts sit together, so llama.cpp reuses
            # the KV cache of their shared prefix
            queue.extend(rendered)
            queue.sort(key=_queue_order)
        self._tick()

    def _input_rejects(self) -> None:
        """Inputs the task could not use (an empty or binary document): rejects, not silence."""
        teacher = self.slots[0].teacher
        for content, reason in getattr(self.task, "input_rejects", ()):
            key = hashlib.sha256(json.dumps([content, reason], sort_keys=True).encode()).hexdigest()
            lineage = Lineage(
                recipe=self.recipe,
                round=self.round,
                teacher_backend=teacher.backend,
                teacher_model=teacher.model,
                template_hash="",
                sampling={},
                sample_key=key,
                raw_completion="",
            )
            self.rejects_writer.add(make_reject(self.task.kind, content, lineage, reason, "parse"))
            self.report.rejects[reason] += 1

    def _asked(self, request: TeacherRequest, teacher: Teacher) -> bool:
        """Every sample of it already answered in this run (a replan of the same intent):
        the answer would be the cached one again, so it is neither asked nor counted."""
        return all(key in self.asked for key in self._keys(request, teacher))

    def _already_done(self, request: TeacherRequest, teacher: Teacher) -> bool:
        if not self.done:
            return False
        if request.metadata.get("intent", {}).get("stage") in getattr(
            self.task, "chain_stages", ()
        ):
            return False  # its follow-ups are not in the store: replay it (from the cache)
        keys = self._keys(request, teacher)
        if not all(key in self.done and key not in self.retry for key in keys):
            return False
        for key in keys:
            for group in self.done[key]:
                self.per_group[group] += 1
        self.report.skipped_samples += request.n
        self.report.requests += 1
        return True

    def _parse(self, request: TeacherRequest, completion: Completion) -> Parsed:
        if completion.finish_reason == "length":
            salvage = getattr(self.task, "parse_truncated", None)  # complete lines of a list
            kept = salvage(request, completion) if salvage else None
            return kept or Parsed.reject(self.task.reject_content(request), "truncated")
        if not completion.ok:
            return Parsed.reject(
                self.task.reject_content(request), f"teacher_{completion.finish_reason}"
            )
        self.any_success = True
        return self.task.parse(request, completion)

    def _write(self, request, raw, key, teacher, parsed: Parsed, completion) -> None:
        stage = "teacher" if not completion.ok else "parse"
        lineage = self._lineage(request, raw, key, teacher)
        if not (parsed.records or parsed.rejects or parsed.follow_ups):
            parsed.rejects.append((self.task.reject_content(request), "no_output"))
        outcome = "record" if parsed.records else "reject" if parsed.rejects else "follow_up"
        self.report.outcomes[outcome] += 1
        for content in parsed.records:
            row = make_record(self.task.kind, content, lineage)
            if self.writer.add(row):
                self.report.records += 1
                self.per_group[self.task.group_of(content)] += 1
            elif key in self.done:
                self.per_group[self.task.group_of(content)] += 1  # stored by an earlier run
            else:  # the same record (same id) as one already written: said, not dropped
                self._reject_row(request, raw, key, teacher, content, "duplicate", "parse", lineage)
        for content, reason in parsed.rejects:
            self._reject_row(request, raw, key, teacher, content, reason, stage, lineage)

    def _reject_row(self, request, raw, key, teacher, content, reason, stage, lineage=None):
        lineage = lineage or self._lineage(request, raw, key, teacher)
        self.rejects_writer.add(make_reject(self.task.kind, content, lineage, reason, stage))
        self.report.rejects[reason.split(":")[0]] += 1

    def _lineage(self, request: TeacherRequest, raw: str, key: str, teacher: Teacher) -> Lineage:
        return Lineage(
            recipe=self.recipe,
            round=self.round,
            teacher_backend=teacher.backend,
            teacher_model=teacher.model,
            template_hash=request.metadata.get("template_hash", ""),
            sampling=request.params,
            sample_key=key,
            raw_completion=raw,
        )

    # -------------------------------------------------------------- report

    def _snapshot(self) -> GenerationProgress:
        return GenerationProgress(
            requests_done=self.report.requests,
            requests_total=max(self.requests_total, self.report.requests),
            samples=self.report.samples,
            records=self.report.records,
            rejects=self.report.rejected,
            skipped=self.report.skipped_samples,
            seconds=time.perf_counter() - self.started,
        )

    def _tick(self) -> None:
        if self.progress is not None:
            self.progress(self._snapshot())

    def finish(self) -> None:
        self.report.seconds = time.perf_counter() - self.started
        self.report.per_group = dict(self.per_group)
        self.report.usage = usage_since(self.slots, self.usage_before)
        self._tick()


def _pipeline_depth(teacher: Teacher, batch_size: int) -> int:
    """Batches in flight at once: enough to keep a concurrent teacher's connections busy
    (`concurrent_samples`, e.g. the openai backend's `concurrency`); one for an in-process
    teacher (llama.cpp, vLLM), which batches by itself."""
    concurrent = int(getattr(teacher, "concurrent_samples", 0) or 0)
    if concurrent <= 1:
        return 1
    return min(16, 1 + -(-concurrent // max(1, batch_size)))


def _queue_order(request: TeacherRequest) -> tuple[int, str]:
    intent = request.metadata.get("intent", {})
    rank = {"commonsense_events": 0, "kg_entities": 0}.get(intent.get("stage"), 1)
    return rank, str(intent.get("relation") or intent.get("chunk_id") or "")
