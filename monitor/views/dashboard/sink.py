"""The Dashboard sink: feeds the pipeline's results into :class:`~.state.DashboardState` and paints
:class:`~.layout.DashboardLayout` in a ``rich.live.Live`` view at a fixed rate.

Why a fixed refresh rate: results arrive in bursts (a batch of utterances at once, or many per second in replay),
and repainting per result would spend the sink thread's time on terminal I/O and flicker. :meth:`Dashboard.write`
only updates state under a lock; ``rich.live.Live`` repaints ``refresh_hz`` times a second from its own thread,
taking a snapshot of that state under the same lock and rendering outside it.
"""

from __future__ import annotations

import io
import threading
from typing import Any, Callable, Iterable

from rich.console import Console, ConsoleOptions, RenderResult
from rich.live import Live
from rich.segment import Segment
from rich.text import Text

from emomon.config import DashboardConfig
from emomon.monitor.views.dashboard.layout import DashboardLayout
from emomon.monitor.views.dashboard.state import DashboardState, Snapshot
from emomon.records import Result


class Dashboard:
    """A Sink that keeps per-speaker emotion state and shows it in a ``rich.live.Live`` view.

    ``write``/``notice``/``close`` come from the pipeline's threads; ``start``/``stop`` run the Live display at
    ``cfg.refresh_hz`` (``close`` also stops it, so the terminal is restored when the session ends). The object
    itself is a Rich renderable (``console.print(dashboard.renderable(), height=24)``), sized to the console's (or
    the print's) width and height.

    ``status`` is called on every paint (from Live's thread) and returns a :class:`~.state.DashboardStatus` or a
    dict with its fields; it should only read counters. ``screen`` uses the terminal's alternate screen (like
    ``top``) when the console is a terminal. While Live runs, text written to sys.stdout/stderr is shown above the
    view, but a logging handler created earlier keeps its own stream and would scribble over the screen until the
    next paint: route logs elsewhere (a file, or ``notice``) while the dashboard is up.
    """

    def __init__(self, cfg: DashboardConfig, classes: Iterable[str], status: Callable[[], Any] | None = None,
                 console: Console | None = None, *, screen: bool = True):
        self.cfg = cfg
        self.classes = tuple(classes)
        self.console = console or Console()
        self.screen = screen
        self.state = DashboardState(cfg, status)
        self.layout = DashboardLayout(cfg, self.classes, self.state.window_s)
        self._live: Live | None = None
        self._live_lock = threading.Lock()

    # ------------------------------------------------------------------------------------------- Sink protocol
    def write(self, result: Result) -> None:
        self.state.write(result)

    def notice(self, message: str) -> None:
        self.state.notice(message)

    def close(self) -> None:
        self.state.close()
        self.stop()

    # ------------------------------------------------------------------------------------------- Live
    def start(self) -> "Dashboard":
        """Start the live display (idempotent); it repaints ``refresh_hz`` times a second, never per result."""
        with self._live_lock:
            if self._live is None:
                # The alternate screen only on a terminal: Rich makes a screen Live transient, which would leave
                # a pipe or file without the final frame.
                screen = self.screen and self.console.is_terminal
                self._live = Live(self, console=self.console, screen=screen, auto_refresh=True,
                                  refresh_per_second=float(self.cfg.refresh_hz), transient=False)
                self._live.start()
        return self

    def stop(self) -> None:
        """Stop the live display (idempotent); the terminal is restored."""
        with self._live_lock:
            live, self._live = self._live, None
        if live is not None:
            live.stop()

    def __enter__(self) -> "Dashboard":
        return self.start()

    def __exit__(self, *exc) -> bool:
        self.stop()
        return False

    # ------------------------------------------------------------------------------------------- rendering
    def renderable(self) -> "Dashboard":
        return self

    def render_text(self, width: int = 80, height: int = 24) -> str:
        """The screen as plain text (for logs, tests and debugging)."""
        con = Console(file=io.StringIO(), record=True, width=width, height=height, color_system=None)
        con.print(self, height=height)
        return con.export_text()

    def snapshot(self) -> Snapshot:
        return self.state.snapshot()

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = max(20, options.max_width)
        height = options.height or console.size.height
        try:
            body = self.layout.compose(self.snapshot(), width, height, lambda r: len(
                console.render_lines(r, options.update(width=width, height=None), pad=False)))
        except Exception as exc:  # a rendering bug must not kill Live's thread; show it instead
            body = Text(f"dashboard error: {exc!r}", style="bold red")
        lines = console.render_lines(body, options.update(width=width, height=None), pad=False)
        for line in lines[:height]:  # guarantee the screen size, whatever the content
            yield from line
            yield Segment.line()
