"""Progress bars for the steps that take more than a few seconds (bootstraps, excess risk, report, decks, convert).

A bar is shown on a terminal only (stderr is a TTY, and ``LOWVALUE_PROGRESS`` is not ``0``); piped, logged or in a
notebook the same code runs without a sound. One bar display per process: a step inside another step (a bootstrap
inside ``risk train``) adds its line to the bar already shown, and removes it when done. rich is imported only when a
bar is shown.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")

_shown: Any = None
"""The ``rich.progress.Progress`` on screen now, if any."""


def on_terminal() -> bool:
    """Whether bars are shown: stderr is a terminal and ``LOWVALUE_PROGRESS=0`` is not set."""
    return os.environ.get("LOWVALUE_PROGRESS") != "0" and sys.stderr.isatty()


@contextmanager
def bar(description: str, total: int | None = None) -> Iterator[Callable[..., None]]:
    """A bar for one step; yields ``advance(n=1, description=None)``. ``total=None`` shows a bar that moves without
    a count, for a step that cannot say how far it is."""
    global _shown
    if not on_terminal():
        yield lambda n=1, description=None: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    own = _shown is None
    if own:
        _shown = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TimeElapsedColumn(), console=Console(stderr=True), transient=True)
        _shown.start()
    progress = _shown
    task = progress.add_task(description, total=total)

    def advance(n: int = 1, description: str | None = None) -> None:
        progress.update(task, advance=n, **({"description": description} if description else {}))

    try:
        yield advance
    finally:
        progress.remove_task(task)
        if own:
            progress.stop()
            _shown = None


def steps(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """``items``, one at a time, with a bar (``total`` defaults to ``len(items)``)."""
    if not on_terminal():
        yield from items
        return
    n = total if total is not None else len(items) if hasattr(items, "__len__") else None  # type: ignore[arg-type]
    with bar(description, n) as advance:
        for item in items:
            yield item
            advance()
