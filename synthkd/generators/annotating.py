"""The driver's annotate path: the teacher labels the user's texts, each text once.

Every input text ends as a record or a reject with its reason: an empty text
(`empty`), a text repeating an earlier one (`duplicate`: asked once, not paid twice),
a text the teacher could not score (`teacher_error: ...`, asked again by a rerun).
"""

from __future__ import annotations

from synthkd.data import Lineage, make_record, make_reject
from synthkd.errors import SynthkdError
from synthkd.generators.tasks.annotate import AnnotateTask, Annotation, normalised, raw_text
from synthkd.generators.teachers.base import LabelError


class AnnotateRun:
    """Mixed into the driver's run: uses its task, slots, writers, report and done keys."""

    async def annotate(self, limit: int | None, batch_size: int) -> None:
        task: AnnotateTask = self.task
        teacher = self.slots[0].teacher
        header, suffix, _, template_hash = task.header(self.styles[0])
        labels = list(task.labels)
        choices = [f" {label}" for label in labels] if self.styles[0] == "completion" else labels
        items = task.items(limit)
        self.requests_total = len(items)
        self._annotate_meta = (teacher, template_hash, labels)
        pending: list[tuple[Annotation, object, str]] = []
        asked: set[str] = set()
        for item in items:
            request = task.request(header, task.prepared(item.text), suffix)
            key = request.sample_key(teacher.backend, teacher.model, 0)
            if key in self.done and key not in self.retry:
                for group in self.done[key]:
                    self.per_group[group] += 1
                self.report.skipped_samples += 1
                self.report.requests += 1
                continue
            self.report.samples += 1
            if not item.text.strip():
                self._annotate_reject(item, request, key, "empty", "parse")
            elif key in asked:  # the same text again: one answer serves it, said here
                self._annotate_reject(item, request, key, "duplicate", "parse")
            else:
                asked.add(key)
                self.report.retried_teacher_errors += key in self.retry
                pending.append((item, request, key))
        for start in range(0, len(pending), batch_size):
            batch = pending[start : start + batch_size]
            texts = [task.prepared(item.text) for item, _, _ in batch]
            results = await teacher.label_distribution(header, texts, choices, suffix)
            for (item, request, key), result in zip(batch, results, strict=True):
                self._annotated(item, request, key, result, labels, choices)
            self.report.requests += len(batch)
            self._tick()

    def _annotated(self, item, request, key, result, labels, choices) -> None:
        if isinstance(result, LabelError):
            reason = "teacher_error: " + " ".join(result.reason.split())[:120]
            self._annotate_reject(item, request, key, reason, "teacher")
            return
        by_label = {label: result.get(c, 0.0) for label, c in zip(labels, choices, strict=True)}
        try:
            item.distribution = normalised(by_label, labels)
        except SynthkdError:
            self._annotate_reject(item, request, key, "empty_distribution", "parse")
            return
        content = self.task.content(item)
        lineage = self._annotate_lineage(request, raw_text(item.distribution), key)
        if self.writer.add(make_record("labelled", content, lineage)):
            self.report.records += 1
            self.report.outcomes["record"] += 1
            self.per_group[content["label"]] += 1
        else:  # the same text and label as a record already stored
            self._annotate_reject(item, request, key, "duplicate", "parse")

    def _annotate_reject(self, item, request, key, reason: str, stage: str) -> None:
        content = {"text": item.text, "meta": {"source": "annotate", "row": item.row}}
        lineage = self._annotate_lineage(request, "", key)
        self.rejects_writer.add(make_reject("labelled", content, lineage, reason, stage))
        self.report.rejects[reason.split(":")[0]] += 1
        self.report.outcomes["reject"] += 1

    def _annotate_lineage(self, request, raw: str, key: str) -> Lineage:
        teacher, template_hash, labels = self._annotate_meta
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
