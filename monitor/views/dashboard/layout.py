"""The dashboard's screen: Rich renderables built from a :class:`~.state.Snapshot` for the width and height Rich
gives, so it fits 80x24 and uses the room of a wide terminal.

Top to bottom: the header (session time, inputs, model and device, speed and/or latency, queue depth, drops only
when non-zero, then a line of input problems and notices), alerts, the emotion legend (once for the whole screen),
one block per speaker (:mod:`.speaker`) and the transcript tail. Wide terminals put bordered panels side by side
(about 48 columns each), tall ones show the shares as one bar per emotion; when the height is short (many speakers
on 80x24) the blocks lose their borders, then lines, and last the least recently active speakers are summarised as
"+N more". The transcript gets the rows the speaker blocks leave (a tall terminal fills with transcript, not blank
space).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable

from rich.console import Group
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from emomon.config import DashboardConfig
from emomon.monitor.views.alerts import NEGATIVE, SILENCE, TITLES
from emomon.monitor.views.dashboard.speaker import SpeakerBlocks
from emomon.monitor.views.dashboard.state import DashboardStatus, Snapshot
from emomon.monitor.views.dashboard.style import MAX_NAME, Palette, clock, span
from emomon.records import Alert


def _going_on(a: Alert, now: float) -> str:
    """What an alert going on says: ``negative affect high for 2m10s``, ``silent for 1m30s`` ..."""
    held = span(max(0.0, now - a.since_s))
    if a.kind == NEGATIVE:
        return f"negative affect high for {held}"
    if a.kind == SILENCE:
        return f"silent for {held}"
    return f"{TITLES.get(a.kind, a.kind)} since {clock(a.since_s)}: {a.detail}"


_PANEL_MIN_WIDTH = 48  # narrower columns leave the timeline too few cells
_GAP = 2  # columns between side-by-side speaker panels


class DashboardLayout:
    """Composes the screen from a snapshot; holds no session state of its own."""

    def __init__(self, cfg: DashboardConfig, classes: Iterable[str], window_s: float):
        self.cfg = cfg
        self.palette = Palette(classes)
        self.blocks = SpeakerBlocks(cfg, self.palette, window_s)

    def compose(self, snap: Snapshot, width: int, height: int, measure: Callable[[Any], int]) -> Group:
        """The whole screen; ``measure`` gives a renderable's height in lines at ``width``."""
        header = self.header(snap, width)
        alerts = self.alerts(snap, max(1, height // 8))
        legend = self.legend(width, snap.now)
        fixed = len(header) + len(alerts) + 1
        want_t = min(int(self.cfg.transcript_lines), len(snap.transcript))
        reserve_t = (1 + min(want_t, 3)) if want_t else 0
        blocks = self.speaker_blocks(snap, width, height - fixed - reserve_t)
        used = sum(measure(b) for b in blocks)
        parts: list = [*header, *alerts, legend, *blocks]
        room = height - fixed - used
        if want_t and room >= 2:
            parts.append(Rule(Text("transcript", style="dim"), align="left", style="dim"))
            parts.extend(self.transcript_tail(snap, min(want_t, room - 1)))
        return Group(*parts)

    # ------------------------------------------------------------------------------------------- header
    def header(self, snap: Snapshot, width: int) -> list[Text]:
        """The status line, and a line of problems (drops, notices) only when there are any."""
        out = [self._status_line(snap, width)]
        problems = self._problems(snap)
        if problems.plain.strip():
            problems.rstrip()
            out.append(problems)
        return out

    @staticmethod
    def _status_line(snap: Snapshot, width: int) -> Text:
        st: DashboardStatus = snap.status
        line = Text(no_wrap=True, overflow="ellipsis")
        line.append(" emomon ", style="bold reverse")
        line.append(f" {clock(st.elapsed)}", style="bold")
        if st.audio_seconds is not None and abs(st.audio_seconds - st.elapsed) > 2.0:
            line.append(f" (audio {clock(st.audio_seconds)})", style="dim")
        if snap.closed:
            line.append(" ended", style="bold yellow")
        sep = ("  ", "dim")
        if st.model or st.device:
            line.append(*sep)
            line.append(st.model or "model", style="bold cyan")
            if st.device:
                line.append(f" on {st.device}")
        if st.speed is not None:
            line.append(*sep)
            line.append(f"{st.speed:.1f}x real time" if width >= 100 else f"{st.speed:.1f}x RT")
        if st.latency is not None:
            line.append(*sep)
            line.append(f"latency {st.latency:.1f}s")
        line.append(*sep)
        line.append(f"queue {st.queue}", style="bold red" if st.queue >= 5 else "")
        if st.inputs:
            line.append(*sep)
            line.append("in: ", style="dim")
            line.append(", ".join(st.inputs))
        return line

    @staticmethod
    def _problems(snap: Snapshot) -> Text:
        st = snap.status
        problems = Text(no_wrap=True, overflow="ellipsis")
        if snap.end_status:  # the final frame says how the session ended
            problems.append(f" {snap.end_status} ", style="bold")
            problems.append(" ")
        if st.dropped_audio_s > 0 or st.dropped_utterances > 0:
            problems.append(
                f" dropped {st.dropped_audio_s:.1f}s audio, {st.dropped_utterances} utterance"
                f"{'' if st.dropped_utterances == 1 else 's'} ", style="bold white on red")
            problems.append(" ")
        msgs = ([st.notice] if st.notice else []) + [m for _, m in snap.notices[-1:]]
        for m in msgs:
            problems.append("⚠ ", style="bold yellow")
            problems.append(m, style="yellow")
            problems.append("  ")
        if snap.notices_total > 1:
            problems.append(f"(+{snap.notices_total - 1} earlier)", style="dim")
        return problems

    @staticmethod
    def alerts(snap: Snapshot, max_lines: int) -> list[Text]:
        """One line per alert going on (``Bob: negative affect high for 2m10s``), then one dim line naming the
        latest that ended; past ``max_lines``, the last line counts the rest."""
        if max_lines <= 0:
            return []
        texts = []
        order = {k: i for i, k in enumerate(TITLES)}  # the most pressing kinds first: negative affect, rising arousal ...
        for a in sorted(snap.alerts, key=lambda a: (order.get(a.kind, len(order)), a.since_s)):
            t = Text(no_wrap=True, overflow="ellipsis")
            t.append(" ! ", style="bold white on red")
            t.append(f" {a.speaker}: {_going_on(a, snap.now)}", style="bold red")
            texts.append(t)
        if len(texts) > max_lines:  # the rest as a count on the last line
            last = Text(no_wrap=True, overflow="ellipsis")
            last.append(" ! ", style="bold white on red")
            last.append(f" +{len(texts) - max_lines + 1} more alerts going on", style="bold red")
            texts = texts[:max_lines - 1] + [last]
        if snap.ended and len(texts) < max_lines:
            a = snap.ended[-1]
            more = f" (+{len(snap.ended) - 1} earlier)" if len(snap.ended) > 1 else ""
            texts.append(Text(f" ended: {a.speaker}: {TITLES.get(a.kind, a.kind)} {clock(a.since_s)}–"
                              f"{clock(a.until_s or a.since_s)}{more}", style="dim", no_wrap=True, overflow="ellipsis"))
        return texts

    def legend(self, width: int, now: float | None = None) -> Text:
        t = Text(no_wrap=True, overflow="ellipsis")
        gap = "  " if width >= 90 else " "
        if width >= 90:
            t.append("key" + gap, style="dim")
        for c in self.palette.classes:
            t.append(self.palette.symbols[c], style=self.palette.cell_style(c))
            t.append(" ")
            t.append(c, style=self.palette.emotion_style(c))
            t.append(gap)
        t.append("· silence", style="dim")
        t.append(gap)
        t.append("?", style="dim")
        t.append(f" unsure (<{self.cfg.unsure_below:.2f})" if width >= 90 else " unsure", style="dim")
        tail = f"{gap}timelines: last {self.blocks.window_label(now)}, newest right"
        if t.cell_len + len(tail) <= width:
            t.append(tail, style="dim")
        return t

    # ------------------------------------------------------------------------------------------- body
    def speaker_blocks(self, snap: Snapshot, width: int, budget: int) -> list:
        """Speaker blocks in the richest form that fits ``budget`` lines: tall panels, panels, then borderless
        blocks of 3, 2 and 1 lines, then the most recently active speakers and a count of the rest."""
        views = list(snap.speakers)
        if not views:
            return [Text("waiting for speech…", style="dim italic")] if budget > 0 else []
        blocks = self.blocks
        n = len(views)
        cols = max(1, min(n, (width + _GAP) // (_PANEL_MIN_WIDTH + _GAP)))
        rows = math.ceil(n / cols)
        name_w = min(MAX_NAME, max(len(v.name) for v in views))
        tall_h = 4 + len(self.palette.classes)
        if len(self.palette.classes) > 3 and rows * tall_h <= budget:
            return [self.grid([blocks.panel(v, snap, tall=True) for v in views], cols)]
        if rows * 5 <= budget:
            return [self.grid([blocks.panel(v, snap) for v in views], cols)]
        for per in (3, 2, 1):
            if rows * per <= budget:
                return [self.grid([Group(*blocks.compact(v, snap, per, name_w)) for v in views], cols)]
        keep_n = max(0, budget - 1) * cols
        recent = {v.name for v in sorted(views, key=lambda v: -v.seq)[:keep_n]}
        keep = [v for v in views if v.name in recent]
        out: list = [self.grid([Group(*blocks.compact(v, snap, 1, name_w)) for v in keep], cols)] if keep else []
        if budget >= 1:
            out.append(Text(f"+{n - len(keep)} more speakers (a larger terminal shows them)", style="dim italic",
                            no_wrap=True, overflow="ellipsis"))
        return out

    @staticmethod
    def grid(blocks: list, cols: int):
        if cols == 1:
            return Group(*blocks)
        grid = Table.grid(expand=True, padding=(0, _GAP // 2), pad_edge=False)
        for _ in range(cols):
            grid.add_column(ratio=1)
        for i in range(0, len(blocks), cols):
            row = blocks[i:i + cols]
            grid.add_row(*row, *([""] * (cols - len(row))))
        return grid

    def transcript_tail(self, snap: Snapshot, n: int) -> list[Text]:
        """The last ``n`` utterances: session time, speaker, emotion, confidence and text (or why there is none)."""
        if n <= 0:
            return []
        lines = snap.transcript[-n:]
        name_w = min(MAX_NAME, max((len(x.speaker) for x in lines), default=0))
        out = []
        for x in lines:
            t = Text(no_wrap=True, overflow="ellipsis")
            t.append(clock(x.start), style="dim")
            t.append(" ")
            t.append(x.speaker[:name_w].ljust(name_w), style="bold")
            t.append(" ")
            t.append_text(self.palette.word(x.emotion, pad=9, unsure=self.blocks.unsure(x.confidence)))
            t.append(f" {x.confidence:.2f}  ", style="dim")
            if x.text:
                t.append(x.text)
            else:
                t.append(f"(no transcript: {x.note})" if x.note else "(no transcript)", style="dim italic")
            out.append(t)
        return out
