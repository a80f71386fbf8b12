"""Progress on stderr for long work (feature extraction, a replay's first pass): one shape for every layer."""

from __future__ import annotations

import logging
import sys

logger = logging.getLogger("emomon")


class progress_bar:
    """A Rich progress bar on stderr (a plain log line every 10 % when stderr is not a terminal)."""

    def __init__(self, description: str, total: int):
        self.description, self.total = description, total

    def __enter__(self):
        # deferred: rich is only needed once something long starts
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        console = Console(stderr=True)
        self.done = 0
        self.next_log = 0.1
        if console.is_terminal and sys.stderr.isatty():
            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                     TimeRemainingColumn(), console=console, transient=False)
            self.progress.start()
            self.task = self.progress.add_task(self.description, total=self.total)
        else:
            self.progress = None
            logger.info("%s: %d items", self.description, self.total)
        return self.advance

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self.progress is not None:
            self.progress.update(self.task, advance=n)
        elif self.total and self.done / self.total >= self.next_log:
            logger.info("%s: %d/%d (%.0f%%)", self.description, self.done, self.total, 100 * self.done / self.total)
            while self.next_log <= self.done / self.total:
                self.next_log += 0.1

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.stop()
        return False
