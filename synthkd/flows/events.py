"""Progress events from flow tasks to whoever listens (the CLI's rich display), and Prefect
progress artifacts, so a run shows its round, stage, records/s and accepted share."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any
from uuid import UUID

Listener = Callable[[str, dict[str, Any]], None]

_listeners: list[Listener] = []
_lock = threading.Lock()


def add_listener(listener: Listener) -> None:
    """Receive (stage, fields) events from tasks running in this process."""
    with _lock:
        _listeners.append(listener)


def remove_listener(listener: Listener) -> None:
    with _lock, contextlib.suppress(ValueError):
        _listeners.remove(listener)


def emit(stage: str, **fields: Any) -> None:
    """Tell listeners what a task is doing; a failing listener never fails the task."""
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        with contextlib.suppress(Exception):
            listener(stage, fields)


class ProgressArtifact:
    """A Prefect progress artifact that a long task updates as it goes (0-100)."""

    def __init__(self, key: str, description: str):
        self.id: UUID | None = None
        self.last = -1.0
        with contextlib.suppress(Exception):
            from prefect.artifacts import create_progress_artifact

            self.id = create_progress_artifact(progress=0.0, key=key, description=description)

    def update(self, fraction: float) -> None:
        percent = round(max(0.0, min(1.0, fraction)) * 100, 1)
        if self.id is None or percent - self.last < 5 and percent < 100:
            return
        self.last = percent
        with contextlib.suppress(Exception):
            from prefect.artifacts import update_progress_artifact

            update_progress_artifact(artifact_id=self.id, progress=percent)
