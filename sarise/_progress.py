"""One progress bar for long work: rich on a terminal, periodic log lines otherwise
(Snakemake's ``log:`` files stay readable)."""

from __future__ import annotations

import logging
import sys
import time
from contextlib import contextmanager

__all__ = ["progress"]


class _Bar:
    def __init__(self, total: int, description: str, logger: logging.Logger, rich_bar):
        self.total, self.description, self.logger, self._rich = total, description, logger, rich_bar
        self.done = 0
        self._task = rich_bar.add_task(description, total=total) if rich_bar else None
        self._start = self._last = time.monotonic()

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self._rich is not None:
            self._rich.advance(self._task, n)
            return
        now = time.monotonic()
        if now - self._last >= 10.0 or self.done == self.total:
            self._last = now
            rate = self.done / max(now - self._start, 1e-9)
            self.logger.info("%s: %d/%d (%.0f/s)", self.description, self.done, self.total, rate)


@contextmanager
def progress(total: int, description: str, *, enabled: bool = True, logger: logging.Logger):
    """Yield an object with ``advance(n)``; a rich bar when stderr is a terminal."""
    if enabled and sys.stderr.isatty():
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )  # fmt: skip

        with Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TimeRemainingColumn(), transient=False,
        ) as bar:  # fmt: skip
            yield _Bar(total, description, logger, bar)
    else:
        yield _Bar(total, description, logger, None)
