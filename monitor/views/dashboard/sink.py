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
from typing import Any, Callable, Iterable, Sequence

from rich.console import Console, ConsoleOptions, RenderResult
from rich.live import Live
from rich.segment import Segment
from rich.text import Text

from emomon.config import DashboardConfig
from emomon.monitor.views.dashboard.layout import DashboardLayout
from emomon.monitor.views.dashboard.state import DashboardState, Snapshot
from emomon.monitor.views.alerts import AlertTracker
from emomon.records import Alert, Result


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

    When the view ran on the alternate screen, :meth:`stop` prints its final frame (every result delivered before
    it) on the normal screen, so the session's end stays visible: ``footer`` is what to leave room for below it (the
    caller's summary): a number of rows, or a callable asked then for the rows or the lines themselves.

    ``alerts`` is the session's :class:`~emomon.monitor.views.alerts.AlertTracker` (the session feeds it; the
    dashboard only reads the alerts going on from it), and ``alert`` receives each one once it has ended; without a
    tracker no alert shows.
    """

    def __init__(self, cfg: DashboardConfig, classes: Iterable[str], status: Callable[[], Any] | None = None,
                 console: Console | None = None, *, screen: bool = True, alerts: AlertTracker | None = None,
                 footer: int | Callable[[], int | Sequence[str]] = 0):
        self.cfg = cfg
        self.footer = footer
        self.classes = tuple(classes)
        self.console = console or Console()
        self.screen = screen
        self.state = DashboardState(cfg, status, alerts)
        self.layout = DashboardLayout(cfg, self.classes, self.state.window_s)
        self._live: Live | None = None
        self._on_screen = False  # the running view is on the alternate screen
        self._live_lock = threading.Lock()

    # ------------------------------------------------------------------------------------------- Sink protocol
    def write(self, result: Result) -> None:
        self.state.write(result)

    def notice(self, message: str) -> None:
        self.state.notice(message)

    def alert(self, a: Alert) -> None:
        self.state.alert(a)

    def close(self, status: str = "") -> None:
        """The session has ended (``status``: its end line, shown in the header); the view stops, leaving its final
        frame."""
        self.state.close(status)
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
                self._on_screen = screen
        return self

    def stop(self) -> None:
        """Stop the live display (idempotent); the terminal is restored, with the final frame on it.

        Rich repaints a Live in place one last time when it stops, but leaves the alternate screen without a
        trace: then the final frame is printed on the normal screen, short of the terminal's height by the
        ``footer``, so the caller's closing lines fit below it."""
        with self._live_lock:
            live, self._live = self._live, None
        if live is None:
            return
        live.stop()
        if self._on_screen:  # a screen Live is transient, whatever it was asked
            self.print_final()

    def print_final(self) -> None:
        """Print the current frame (a closed session's last) on the console, leaving the ``footer``'s rows free."""
        width, height = self.console.size
        try:
            footer = self.footer() if callable(self.footer) else self.footer
            rows = footer if isinstance(footer, int) else sum(
                max(1, -(-Text(line).cell_len // max(1, width))) for line in footer)
        except Exception:  # the footer is a nicety; the frame is what matters
            rows = 0
        # and one row for the cursor's line after them (the shell's prompt)
        self.console.print(self, height=max(8, height - max(0, rows) - 1))

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
