"""Progress on stderr for long work (feature extraction, training epochs: :class:`progress_bar`) and the status line
of a monitoring session from its first second (loading models, a replay's first pass, the replay:
:class:`StatusLine`): one shape for every layer."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable

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


@dataclass(frozen=True)
class Activity:
    """What a command is doing now, for :class:`StatusLine`: a phrase and, for work with a size, how much of it is
    done (``done`` of ``total`` ``unit``; ``"s"``: seconds of audio)."""

    text: str
    done: float | None = None
    total: float | None = None
    unit: str = "s"

    @property
    def fraction(self) -> float | None:
        """Done share in [0, 1], or None for work without a size."""
        if self.done is None or not self.total or self.total <= 0:
            return None
        return min(1.0, max(0.0, self.done / self.total))

    def describe(self) -> str:
        """``first pass 37 % of 48 s`` (or the bare phrase for work without a size)."""
        f = self.fraction
        if f is None:
            return self.text
        return f"{self.text} {100 * f:.0f} % of {amount(self.total, self.unit)}"


def amount(value: float, unit: str) -> str:
    """``48 s``, ``12:05`` (minutes), ``1:02:03``; other units as ``120 items``."""
    if unit != "s":
        return f"{value:.0f} {unit}"
    if value < 100:
        return f"{value:.0f} s"
    return clock(value)


def clock(seconds: float) -> str:
    """``4:05`` or ``1:02:03``."""
    s = int(max(0.0, seconds) + 0.5)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class _Eta:
    """Time left for sized work, from the rate seen since the work (its phrase) began."""

    def __init__(self):
        self.key: tuple | None = None
        self.t0 = self.done0 = 0.0

    def left(self, act: Activity, now: float) -> float | None:
        key = (act.text, act.total)
        if key != self.key or act.done is None or act.done < self.done0:
            self.key, self.t0, self.done0 = key, now, act.done or 0.0
            return None
        elapsed, gained = now - self.t0, act.done - self.done0
        if elapsed < 1.0 or gained <= 0 or act.total is None:
            return None
        return max(0.0, (act.total - act.done) * elapsed / gained)


class StatusLine:
    """One line on stderr that says what a command is doing, from its first second until it hands the terminal over
    (to the dashboard, or to the per-utterance lines).

    :meth:`show` sets what it says: an :class:`Activity`, a phrase, or a callable returning either, called on every
    repaint from the status thread (so it must only read counters). :meth:`stop` ends it (idempotent).

    On a terminal (stderr is one, or an injected ``console`` says it is one), and unless logging is quieter than
    INFO: a transient Rich line, repainted ``refresh_hz`` times a second: a spinner, the phrase and, for sized work,
    ``37 % of 48 s``, a bar and the time left. Meanwhile emomon's log lines (and, when stdout is the same terminal,
    what is printed there) show above it. Elsewhere (a pipe, a file, a test's capture) nothing but log lines: each
    new phrase at DEBUG, and for work of at least ``log_above`` units a line at INFO every 10 %.
    """

    def __init__(self, console=None, *, refresh_hz: float = 8.0, log_above: float = 300.0,
                 redirect_stdout: bool | None = None):
        self._console = console
        self.refresh_hz = refresh_hz
        self.log_above = log_above
        self.redirect_stdout = redirect_stdout
        self._what: Activity | str | Callable[[], Activity | str] = ""
        self._live = None
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self._streams: list = []  # (log handler, the stream it had) while the line is up
        self._eta = _Eta()
        self._spinner = None
        self.started = False
        #: every phrase shown so far, in order (what a test, or a log, can check)
        self.shown: list[str] = []

    # ------------------------------------------------------------------------------------------------ callers
    def show(self, what: Activity | str | Callable[[], Activity | str]) -> None:
        """Say ``what`` from now on (a callable is asked again on every repaint)."""
        self._what = what
        self.current()

    def current(self) -> Activity:
        """What the line says now (a failing callable says nothing rather than breaking the command)."""
        what = self._what
        try:
            act = what() if callable(what) else what
        except Exception as exc:  # a status bug must never end a session
            logger.debug("status line: %s", exc)
            act = ""
        act = act if isinstance(act, Activity) else Activity(str(act))
        if act.text and (not self.shown or self.shown[-1] != act.text):
            self.shown.append(act.text)
        return act

    def start(self, what: Activity | str | Callable[[], Activity | str] = "") -> "StatusLine":
        if self.started:
            return self
        self.started = True
        self._what = what
        terminal = self._terminal_console()
        if terminal is not None:
            self._start_live(terminal)
        else:
            self._thread = threading.Thread(target=self._log_loop, name="emomon-status", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Take the line away (the terminal is as before it); idempotent."""
        self._stopped.set()
        live, self._live = self._live, None
        if live is not None:
            for handler, stream in self._streams:
                handler.setStream(stream)
            self._streams = []
            live.stop()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(2.0)
            self._thread = None

    def __enter__(self) -> "StatusLine":
        return self.start(self._what)

    def __exit__(self, *exc) -> bool:
        self.stop()
        return False

    # ------------------------------------------------------------------------------------------------ terminal
    def _terminal_console(self):
        if not logger.isEnabledFor(logging.INFO):  # --quiet: no status either
            return None
        if self._console is not None:
            return self._console if self._console.is_terminal and not self._console.is_dumb_terminal else None
        if not sys.stderr.isatty():
            return None
        from rich.console import Console  # deferred: only a terminal needs Rich

        # soft wrap: lines printed above the status keep their length (the terminal wraps them, as it would)
        console = Console(stderr=True, soft_wrap=True)
        return console if console.is_terminal and not console.is_dumb_terminal else None

    def _start_live(self, console) -> None:
        from rich.live import Live  # deferred: only a terminal needs Rich

        stdout_too = self.redirect_stdout
        if stdout_too is None:  # lines printed on the same terminal go above the status, not through it
            stdout_too = self._console is None and _same_terminal(sys.stdout, sys.stderr)
        self._live = Live(console=console, get_renderable=self._render, refresh_per_second=self.refresh_hz,
                          transient=True, redirect_stdout=stdout_too, redirect_stderr=True)
        self._live.start(refresh=True)
        # emomon's log handlers hold the stderr they were made with: point them at Live's proxy meanwhile
        real_stderr = getattr(sys.stderr, "rich_proxied_file", None)
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is real_stderr:
                self._streams.append((handler, handler.setStream(sys.stderr)))

    def _render(self):
        from rich.progress_bar import ProgressBar
        from rich.spinner import Spinner
        from rich.table import Table
        from rich.text import Text

        act = self.current()
        now = time.monotonic()
        row: list = [Text(act.describe(), no_wrap=True, overflow="ellipsis")]
        f = act.fraction
        if f is not None:
            left = self._eta.left(act, now)
            row += [ProgressBar(total=1.0, completed=f, width=24),
                    Text(f"{clock(left)} left" if left is not None else "", style="dim", no_wrap=True)]
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True)
        grid.add_column(no_wrap=True)
        for _ in row[1:]:
            grid.add_column(no_wrap=True)
        if self._spinner is None:
            self._spinner = Spinner("dots", style="cyan")
        grid.add_row(self._spinner, *row)
        return grid

    # ------------------------------------------------------------------------------------------------ no terminal
    def _log_loop(self) -> None:
        said, logged_tenth = "", {}
        while True:
            act = self.current()
            f = act.fraction
            long_work = f is not None and (act.total or 0) >= self.log_above
            if act.text and act.text != said:
                logger.log(logging.INFO if long_work else logging.DEBUG, "%s", act.describe())
                said = act.text
                logged_tenth.setdefault(act.text, int(10 * f + 1e-9) if long_work else 0)
            if long_work:
                tenth = int(10 * f + 1e-9)
                if tenth > logged_tenth.get(act.text, 0):
                    logged_tenth[act.text] = tenth
                    logger.info("%s", act.describe())
            if self._stopped.wait(0.5):
                return


def _same_terminal(a, b) -> bool:
    """Whether two streams write to one terminal (stdout and stderr both on the user's screen)."""
    try:
        if not (a.isatty() and b.isatty()):
            return False
        sa, sb = os.fstat(a.fileno()), os.fstat(b.fileno())
        return (sa.st_dev, sa.st_ino, sa.st_rdev) == (sb.st_dev, sb.st_ino, sb.st_rdev)
    except (AttributeError, OSError, ValueError):
        return False
