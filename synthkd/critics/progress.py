"""A rich progress bar that costs nothing when nobody is watching."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def progress_bar(description: str, total: int, enabled: bool) -> Iterator[Callable[[int], None]]:
    """Yield `advance(n)`; draws a rich bar with rate and ETA when `enabled`."""
    if not enabled or total <= 0:
        yield lambda n: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task(description, total=total, rate="")

        def advance(n: int) -> None:
            speed = bar.tasks[task].speed
            bar.update(task, advance=n, rate=f"{speed:,.0f}/s" if speed else "")

        yield advance
