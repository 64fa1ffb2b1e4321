"""The generation driver: plan, send in batches, parse, write records and rejects, report.

One driver serves every task and every teacher mix. Each planned intent goes to one
teacher of the mix (by weight, deterministically), follow-ups stay with the teacher that
started the chain, and every sample ends as a record or a reject with its reason, both
written through the data room's `BufferedWriter`s (which checkpoint as they go). On
resume, samples whose `sample_key` is already in the store are not asked again, and the
teacher's response cache answers the rest without new calls. When a group (label,
relation, document) falls short of what was wanted, the task plans more, a few times.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from synthkd.data import Lineage, make_record, make_reject
from synthkd.errors import SynthkdError
from synthkd.generators.prompting import PromptStyle, prompt_style
from synthkd.generators.tasks.annotate import AnnotateTask, normalised, raw_text
from synthkd.generators.tasks.base import Focus, GenerationTask, Parsed, Sampling
from synthkd.generators.teachers.base import Completion, Teacher, TeacherRequest, Usage


@dataclass
class TeacherSlot:
    """One teacher of a mix, with its share of the work, prompt style and sampling."""

    teacher: Teacher
    weight: float = 1.0
    style: str = "auto"
    """"completion", "chat" or "auto" (ask the teacher / guess from its name)."""
    sampling: Sampling = field(default_factory=Sampling)

    def resolved_style(self) -> PromptStyle:
        return prompt_style(self.teacher, self.style)


@dataclass
class GenerationProgress:
    """A snapshot the progress callback receives after every batch."""

    requests_done: int
    requests_total: int
    samples: int
    records: int
    rejects: int
    skipped: int
    seconds: float

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0

    @property
    def acceptance(self) -> float:
        decided = self.records + self.rejects
        return self.records / decided if decided else 0.0


@dataclass
class GenerationReport:
    """What one generation did; `rejects` counts reasons."""

    requests: int = 0
    samples: int = 0
    records: int = 0
    rejects: Counter = field(default_factory=Counter)
    skipped_samples: int = 0
    """Samples already in the store (resume): neither asked nor written again."""
    per_group: dict[str, int] = field(default_factory=dict)
    """Records per label / relation / document (skipped samples' records included)."""
    usage: Usage = field(default_factory=Usage)
    """Teacher usage during this generation, summed over the mix."""
    seconds: float = 0.0

    @property
    def rejected(self) -> int:
        return sum(self.rejects.values())

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0

    @property
    def acceptance(self) -> float:
        decided = self.records + self.rejected
        return self.records / decided if decided else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "samples": self.samples,
            "records": self.records,
            "rejects": dict(self.rejects),
            "skipped_samples": self.skipped_samples,
            "per_group": dict(self.per_group),
            "records_per_s": round(self.records_per_s, 3),
            "acceptance": round(self.acceptance, 4),
            "teacher_prompt_tokens": self.usage.prompt_tokens,
            "teacher_completion_tokens": self.usage.completion_tokens,
            "teacher_cache_hits": self.usage.cache_hits,
            "seconds": round(self.seconds, 2),
        }


ProgressCallback = Callable[[GenerationProgress], None]


def default_wanted(task: GenerationTask | AnnotateTask, n: int | None) -> dict[str, int]:
    """Records wanted per group: `n`, or the task's own per-round setting."""
    config = task.config
    if n is None:
        n = (
            getattr(config, "per_label", None)
            or getattr(config, "per_relation", None)
            or getattr(config, "per_document", None)
            or 30
        )
    return {group: n for group in task.groups}


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
    store (a resumed run); those samples are neither asked nor written again.
    """
    slots = _slots(teachers)
    run = _Run(task, slots, writer, rejects_writer, recipe, round, dict(done or {}), progress)
    goal = dict(wanted) if wanted is not None else default_wanted(task, n)
    try:
        if isinstance(task, AnnotateTask):
            await run.annotate(n, batch_size)
        else:
            await run.generate(focus, goal, batch_size, max_attempts)
    finally:
        run.finish()
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


class _Run:
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
        self.usage_before = [_copy_usage(s.teacher.usage) for s in slots]
        self.requests_total = 0
        self.any_success = False

    # ----------------------------------------------------------- generation

    async def generate(self, focus, goal, batch_size, max_attempts) -> None:
        import asyncio

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
        slot = self.slots[i]
        teacher = slot.teacher
        while queue:
            batch: list[TeacherRequest] = []
            while queue and len(batch) < batch_size:
                request = queue.pop(0)
                if self._already_done(request, teacher):
                    continue
                batch.append(request)
            if not batch:
                continue
            responses = await teacher.generate(batch)
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
                    follow_ups.extend(parsed.follow_ups)
                for error in response.errors:
                    failures += 1
                    key = error.sample_key or request.sample_key(
                        teacher.backend, teacher.model, error.index
                    )
                    reason = "teacher_error: " + " ".join(error.reason.split())[:120]
                    content = self.task.reject_content(request)
                    self._reject_row(request, "", key, teacher, content, reason, "teacher")
                self.report.samples += request.n
            self.report.requests += len(batch)
            if failures and not self.any_success and failures == sum(r.n for r in batch):
                first = next(e for r in responses for e in r.errors)
                raise SynthkdError(
                    f"teacher {teacher.backend}:{teacher.model} failed every sample of the "
                    f"first batch: {' '.join(first.reason.split())[:200]}"
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

    def _already_done(self, request: TeacherRequest, teacher: Teacher) -> bool:
        if not self.done:
            return False
        if request.metadata.get("intent", {}).get("stage") in getattr(
            self.task, "chain_stages", ()
        ):
            return False  # its follow-ups are not in the store: replay it (from the cache)
        keys = [request.sample_key(teacher.backend, teacher.model, i) for i in range(request.n)]
        if not all(key in self.done for key in keys):
            return False
        for key in keys:
            for group in self.done[key]:
                self.per_group[group] += 1
        self.report.skipped_samples += request.n
        self.report.requests += 1
        return True

    def _parse(self, request: TeacherRequest, completion: Completion) -> Parsed:
        if completion.finish_reason == "length":
            return Parsed.reject(self.task.reject_content(request), "truncated")
        if not completion.ok:
            return Parsed.reject(
                self.task.reject_content(request), f"teacher_{completion.finish_reason}"
            )
        self.any_success = True
        return self.task.parse(request, completion)

    def _write(self, request, raw, key, teacher, parsed: Parsed, completion) -> None:
        stage = "teacher" if not completion.ok else "parse"
        lineage = self._lineage(request, raw, key, teacher)
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

    # ------------------------------------------------------------- annotate

    async def annotate(self, limit: int | None, batch_size: int) -> None:
        task: AnnotateTask = self.task
        slot = self.slots[0]
        teacher = slot.teacher
        style = self.styles[0]
        header, suffix, _, template_hash = task.header(style)
        labels = list(task.labels)
        choices = [f" {label}" for label in labels] if style == "completion" else labels
        items = task.items(limit)
        self.requests_total = len(items)
        pending = []
        for item in items:
            request = task.request(header, task.prepared(item.text), suffix)
            key = request.sample_key(teacher.backend, teacher.model, 0)
            if key in self.done:
                for group in self.done[key]:
                    self.per_group[group] += 1
                self.report.skipped_samples += 1
                self.report.requests += 1
                continue
            if not item.text.strip():
                lineage = self._annotate_lineage(request, "", key, teacher, template_hash, labels)
                self.rejects_writer.add(make_reject("labelled", None, lineage, "empty", "parse"))
                self.report.rejects["empty"] += 1
                continue
            pending.append((item, request, key))
        for start in range(0, len(pending), batch_size):
            batch = pending[start : start + batch_size]
            texts = [task.prepared(item.text) for item, _, _ in batch]
            distributions = await teacher.label_distribution(header, texts, choices, suffix)
            for (item, request, key), dist in zip(batch, distributions, strict=True):
                by_label = {
                    label: dist.get(choice, 0.0)
                    for label, choice in zip(labels, choices, strict=True)
                }
                item.distribution = normalised(by_label, labels)
                raw = raw_text(item.distribution)
                lineage = self._annotate_lineage(request, raw, key, teacher, template_hash, labels)
                content = task.content(item)
                self.writer.add(make_record("labelled", content, lineage))
                self.report.records += 1
                self.per_group[content["label"]] += 1
            self.report.requests += len(batch)
            self.report.samples += len(batch)
            self._tick()

    def _annotate_lineage(self, request, raw, key, teacher, template_hash, labels) -> Lineage:
        return Lineage(
            recipe=self.recipe,
            round=self.round,
            teacher_backend=teacher.backend,
            teacher_model=teacher.model,
            template_hash=template_hash,
            sampling={"method": "label_distribution", "labels": labels},
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
        total = Usage()
        for slot, before in zip(self.slots, self.usage_before, strict=True):
            now = slot.teacher.usage
            for name in (
                "requests",
                "prompt_tokens",
                "completion_tokens",
                "retries",
                "cache_hits",
                "failures",
            ):
                setattr(
                    total, name, getattr(total, name) + getattr(now, name) - getattr(before, name)
                )
            total.seconds += now.seconds - before.seconds
        self.report.usage = total
        self._tick()


def _copy_usage(usage: Usage) -> Usage:
    return Usage(**usage.to_dict())


def _queue_order(request: TeacherRequest) -> tuple[int, str]:
    intent = request.metadata.get("intent", {})
    rank = {"commonsense_events": 0, "kg_entities": 0}.get(intent.get("stage"), 1)
    return rank, str(intent.get("relation") or intent.get("chunk_id") or "")
