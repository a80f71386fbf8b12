"""One speaker's block on the dashboard, in every form the layout may pick: a bordered panel (5 lines, or one share
bar per class when tall) or a borderless block of 3, 2 or 1 lines.

A block shows the current emotion (colour + word + confidence) and the speaker's utterance count, a rolling timeline
(one cell per time slice, coloured by the emotion that covers most of it; each utterance starts with its class's
letter, so the timeline reads without colour too and every utterance has its mark while the cells allow; ``·`` is
silence), the share of each emotion so far, and the smoothed valence/arousal on Russell's circumplex as numbers plus
two centre-zero bars, with the smoothed negative-affect share that drives the alert.

The timeline spans the session so far (at least a minute) until the session is longer than ``timeline_minutes``,
then the last ``timeline_minutes``. A reading whose confidence (top class probability) is below ``unsure_below`` is
*unsure*: dim, its letter followed by ``?`` and its cells shaded ``░`` instead of ``█`` (and ``surprise?`` in
words), so a guess never looks like a firm reading.
"""

from __future__ import annotations

from typing import Callable

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.measure import Measurement
from rich.panel import Panel
from rich.text import Text

from emomon.config import DashboardConfig
from emomon.monitor.views.dashboard.state import Snapshot, SpeakerView
from emomon.monitor.views.dashboard.style import MAX_NAME, Palette, span


class Fit:
    """A renderable made at render time for the width it is given (so a timeline ends exactly at the right edge)."""

    def __init__(self, make: Callable[[int], Text], lines: int = 1):
        self.make, self.lines = make, lines

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.make(options.max_width)

    def __rich_measure__(self, console: Console, options: ConsoleOptions):
        return Measurement(1, options.max_width)


#: The shortest span a timeline covers (seconds): a session's first minute is not stretched over the whole width.
MIN_SPAN_S = 60.0


def _mood(v: float, a: float) -> str:
    """A word for the circumplex quadrant of a smoothed reading (display hint only)."""
    if abs(v) < 0.2 and abs(a) < 0.2:
        return "calm"
    if v >= 0.2:
        return "excited" if a >= 0.2 else "content"
    if v <= -0.2:
        return "tense" if a >= 0.2 else "low"
    return "aroused" if a >= 0.2 else "subdued"


def _bar(value: float, half: int, style: str) -> Text:
    """A centre-zero bar ``▕····│██···▏`` with ``half`` cells each side."""
    n = min(half, int(round(abs(value) * half)))
    t = Text()
    left = half - n if value < 0 else half
    t.append("▕", style="dim")
    t.append("·" * left, style="dim")
    if value < 0:
        t.append("█" * n, style=style)
    t.append("│", style="bold")
    if value > 0:
        t.append("█" * n, style=style)
    t.append("·" * (half - n if value > 0 else half), style="dim")
    t.append("▏", style="dim")
    return t


class SpeakerBlocks:
    """Builds speakers' blocks from :class:`~.state.SpeakerView` s, with the classes' colours and letters."""

    def __init__(self, cfg: DashboardConfig, palette: Palette, window_s: float):
        self.cfg, self.palette, self.window_s = cfg, palette, window_s

    def span_s(self, now: float) -> float:
        """Seconds a timeline covers at session time ``now``: the session so far (at least :data:`MIN_SPAN_S`),
        at most ``timeline_minutes``."""
        return min(self.window_s, max(now, MIN_SPAN_S))

    def window_label(self, now: float | None = None) -> str:
        s = self.window_s if now is None else self.span_s(now)
        if s >= 60 and int(s) % 60 == 0:
            return f"{int(s) // 60}m"
        return span(s)

    def unsure(self, confidence: float) -> bool:
        """A reading the model is unsure of (top class probability below ``unsure_below``)."""
        return confidence < self.cfg.unsure_below

    # ------------------------------------------------------------------------------------------- lines
    def timeline(self, view: SpeakerView, now: float, cells: int) -> Text:
        """One cell per time slice over :meth:`span_s`, newest right. Each cell is coloured by the utterance covering
        most of it; each utterance's first free cell holds its class's letter (a mark per utterance while the cells
        allow), followed by ``?`` when the reading is unsure; ``·`` is silence, blank is before the session began."""
        cells = max(1, cells)
        width = self.span_s(now)
        t0 = now - width
        dt = width / cells
        items = [x for x in view.timeline if x[1] > t0 and x[0] < now + 1e-9]
        best: list[tuple[float, int] | None] = [None] * cells  # (overlap, utterance) per cell
        marks: dict[int, int] = {}  # cell -> the utterance whose letter it holds
        query: dict[int, int] = {}  # cell -> the unsure utterance whose "?" it holds
        for k, (start, end, _emotion, confidence) in enumerate(items):
            i0 = max(0, int((start - t0) // dt))
            i1 = max(i0, min(cells - 1, int((end - 1e-9 - t0) // dt)))
            for i in range(i0, i1 + 1):
                lo, hi = t0 + i * dt, t0 + (i + 1) * dt
                ov = max(min(hi, end) - max(lo, start), 1e-6)  # a very short utterance still marks its slice
                if best[i] is None or ov > best[i][0]:
                    best[i] = (ov, k)
            free = [i for i in range(i0, i1 + 1) if i not in marks]
            if free:
                marks[free[0]] = k
                query.pop(free[0], None)
                if self.unsure(confidence) and len(free) > 1:
                    query[free[1]] = k
        out = Text(no_wrap=True, overflow="crop")
        for i, b in enumerate(best):
            if i in marks:
                _, _, emotion, confidence = items[marks[i]]
                sure = not self.unsure(confidence)
                out.append(self.palette.symbols.get(emotion, "?"),
                           style=self.palette.cell_style(emotion) if sure else self.palette.unsure_style(emotion))
            elif i in query and i not in marks:
                out.append("?", style=self.palette.unsure_style(items[query[i]][2]))
            elif b is None:
                before_start = t0 + (i + 1) * dt <= 0.0
                out.append(" " if before_start else "·", style="dim")
            else:
                _, _, emotion, confidence = items[b[1]]
                if self.unsure(confidence):
                    out.append("░", style=self.palette.unsure_style(emotion))
                else:
                    out.append("█", style=self.palette.colours.get(emotion, "white"))
        return out

    def shares(self, view: SpeakerView, limit: int | None = None) -> Text:
        t = Text(no_wrap=True, overflow="ellipsis")
        items = view.shares if limit is None else view.shares[:limit]
        for k, (emotion, pct) in enumerate(items):
            if k:
                t.append("  ")
            t.append(emotion, style=self.palette.colours.get(emotion, "white"))
            t.append(f" {pct}%")
        return t

    def va(self, view: SpeakerView, width: int) -> Text:
        """``valence +0.42 ▕····│██···▏  arousal +0.31 ▕····│█····▏  neg 12%  excited``: the richest form that
        fits ``width`` (then short labels, shorter bars, no mood word, no bars)."""
        hot = view.negative >= self.cfg.alert_threshold
        best = None
        for long, half, mood in ((True, 5, True), (False, 5, True), (False, 4, True), (False, 3, True),
                                 (False, 3, False), (False, 2, False), (False, 0, False)):
            t = Text(no_wrap=True, overflow="ellipsis")
            for label, value, style in (("valence", view.valence, "green" if view.valence >= 0 else "red"),
                                        ("arousal", view.arousal, "yellow")):
                t.append((label if long else label[0].upper()) + " ", style="dim")
                t.append(f"{value:+.2f}", style="bold")
                if half:
                    t.append(" ")
                    t.append_text(_bar(value, half, style))
                t.append("  ")
            t.append(f"neg {100 * view.negative:.0f}%".ljust(8), style="bold red" if hot else "dim")
            if mood:  # padded, so every speaker's reading gets the same form and the bars line up
                t.append(f" {_mood(view.valence, view.arousal):<7}", style="italic dim")
            best = t
            if t.cell_len <= width:
                break
        return best

    def share_bars(self, view: SpeakerView, width: int) -> list[Text]:
        """One line per class, in class order: ``angry     ██████▏          23%``."""
        pct = dict(view.shares)
        bar_w = max(4, min(40, width - 8 - 6))
        out = []
        for c in self.palette.classes:
            p = pct.get(c, 0)
            n = int(round(p / 100 * bar_w))
            t = Text(no_wrap=True, overflow="ellipsis")
            t.append(c[:8].ljust(8) + " ", style=self.palette.colours.get(c, "white"))
            t.append("█" * n, style=self.palette.colours.get(c, "white"))
            t.append("·" * (bar_w - n), style="dim")
            t.append(f" {p:3d}%", style="bold" if p else "dim")
            out.append(t)
        return out

    def now(self, view: SpeakerView, snap: Snapshot) -> Text:
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append_text(self.palette.word(view.emotion, view.confidence, unsure=self.unsure(view.confidence)))
        ago = snap.now - view.last_end
        t.append(f"  {view.utterances} utt", style="dim")
        if ago >= 1.0:
            t.append(f", {span(ago)} ago", style="dim")
        return t

    # ------------------------------------------------------------------------------------------- blocks
    def panel(self, view: SpeakerView, snap: Snapshot, tall: bool = False) -> Panel:
        """A bordered block: 5 lines, or ``4 + len(classes)`` when ``tall`` (one share bar per class)."""
        label = f"{self.window_label(snap.now)} "
        lines: list = [Fit(lambda w: Text.assemble((label, "dim"), self.timeline(view, snap.now, w - len(label)),
                                                   no_wrap=True))]
        if tall:
            lines += [Fit(lambda w: self.va(view, w)),
                      Fit(lambda w: Text("\n").join(self.share_bars(view, w)), lines=len(self.palette.classes))]
        else:
            lines += [Text.assemble(("mix ", "dim"), self.shares(view), no_wrap=True, overflow="ellipsis"),
                      Fit(lambda w: self.va(view, w))]
        title = Text.assemble((f" {view.name[:MAX_NAME * 2]} ", "bold reverse"), " ", self.now(view, snap), " ")
        alerting = view.alert is not None
        return Panel(Group(*lines), title=title, title_align="left", border_style="red" if alerting else "dim",
                     subtitle=Text(f" negative affect high for {span(view.alert)} ", style="bold red")
                     if alerting else None, subtitle_align="right", padding=(0, 1))

    def compact(self, view: SpeakerView, snap: Snapshot, rows: int, name_w: int) -> list:
        """A borderless block of ``rows`` lines (3: head, timeline, shares; 2: head, timeline + shares; 1: head +
        timeline)."""
        head = Text(no_wrap=True, overflow="ellipsis")
        head.append(view.name[:name_w].ljust(name_w) + " ", style="bold red" if view.alert is not None else "bold")
        head.append_text(self.palette.word(view.emotion, view.confidence, pad=9, unsure=self.unsure(view.confidence)))
        head.append(f" {view.utterances:>3} utt", style="dim")
        indent, label = "  ", f"{self.window_label(snap.now)} "
        if rows == 1:
            head.append(f"  V{view.valence:+.2f} A{view.arousal:+.2f} ")

            def one(w: int) -> Text:
                cells = w - head.cell_len
                return Text.assemble(head, self.timeline(view, snap.now, cells)) if cells >= 8 else head

            return [Fit(one)]
        head.append("  ")
        first = Fit(lambda w: Text.assemble(head, self.va(view, w - head.cell_len), no_wrap=True,
                                            overflow="ellipsis"))
        if rows == 2:
            return [first, Fit(lambda w: Text.assemble(
                indent, (label, "dim"), self.timeline(view, snap.now, max(8, (w - len(indent) - len(label)) // 2)),
                "  ", self.shares(view), no_wrap=True, overflow="ellipsis"))]
        timeline = Fit(lambda w: Text.assemble(indent, (label, "dim"),
                                               self.timeline(view, snap.now, w - len(indent) - len(label)),
                                               no_wrap=True))
        return [first, timeline,
                Text.assemble(indent, ("mix ", "dim"), self.shares(view), no_wrap=True, overflow="ellipsis")]
