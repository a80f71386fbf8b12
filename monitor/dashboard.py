"""The live terminal dashboard: a Rich view of the session that fits 80x24 and uses the room of a wide terminal.

What it shows, top to bottom:

* **Header**: session time, the inputs, the model/preset and device, speed (x real time) and/or median latency,
  the queue depth, and, only when non-zero, dropped audio seconds and dropped utterances. Input problems reported
  through :meth:`Dashboard.notice` (or the status' ``notice``) show on the line below, so a dead microphone is
  never silent.
* **Alerts**: ``"<speaker>: negative affect high for 2m10s"`` for each speaker whose smoothed negative affect has
  stayed above ``alert_threshold`` for ``alert_seconds`` (:class:`~emomon.monitor.affect.AffectTracker` decides).
* **Legend** (once for the whole screen): the colour and letter of each emotion in the timelines.
* **One block per speaker** (speakers appear as their first result arrives): the current emotion (colour + word +
  confidence), a rolling timeline of the last ``timeline_minutes`` (one cell per time slice, coloured by the
  emotion that covers most of it; a run of one emotion starts with its letter, so the timeline reads without
  colour too; ``·`` is silence), the share of each emotion so far (utterance counts, rounded to sum to 100 %), and
  the smoothed valence/arousal on Russell's circumplex as numbers plus two centre-zero bars, with the smoothed
  negative-affect share that drives the alert. Wide terminals put bordered panels side by side (about 48 columns
  each), tall ones show the shares as one bar per emotion; when the height is short (many speakers on 80x24) the
  blocks lose their borders, then lines, and last the least recently active speakers are summarised as "+N more".
  The layout is chosen on every paint from the width and height Rich gives, and the output is cropped to that
  height, so the screen never scrolls.
* **Transcript tail**: up to the last ``transcript_lines`` utterances with session time, speaker, emotion (coloured)
  and text, as many as the rows the speaker panels leave (a tall terminal fills with transcript, not blank space);
  ASR text the guards rejected shows as a dim note.

Emotion words are always written out next to their colour (no-colour terminals, colour-blind users). All times
are session seconds (``Utterance.start``/``end``), and memory is bounded: a time-pruned deque per speaker for the
timeline window and a fixed-length transcript tail.

Why a fixed refresh rate: results arrive in bursts (a batch of utterances at once, or many per second in replay),
and repainting per result would spend the sink thread's time on terminal I/O and flicker. :meth:`write` only
updates state under a lock; ``rich.live.Live`` repaints ``refresh_hz`` times a second from its own thread, taking a
snapshot of that state under the same lock and rendering outside it.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.live import Live
from rich.panel import Panel
from rich.rule import Rule
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from emomon.config import DashboardConfig
from emomon.monitor.affect import AffectTracker
from emomon.monitor.records import Result

#: Fixed colour per emotion; unknown classes take the fallback palette in class order.
EMOTION_COLOURS: dict[str, str] = {
    "angry": "red",
    "disgust": "green",
    "fear": "magenta",
    "happy": "yellow",
    "neutral": "grey62",
    "sad": "blue",
    "surprise": "cyan",
}
_FALLBACK_COLOURS = ("bright_red", "bright_green", "bright_magenta", "bright_yellow", "bright_blue", "bright_cyan",
                     "white")
_DARK = {"red", "blue", "magenta", "green", "bright_blue", "bright_magenta"}

_PANEL_MIN_WIDTH = 48  # narrower columns leave the timeline too few cells
_MAX_NAME = 14
_GAP = 2  # columns between side-by-side speaker panels


@dataclass
class DashboardStatus:
    """What the header shows; the ``status`` callable returns one of these (or a dict with these keys)."""

    elapsed: float = 0.0  # wall seconds since the session started
    inputs: tuple[str, ...] = ()  # input labels, e.g. ("Mic 1 (Teacher)", "talk.wav")
    model: str = ""  # model or preset name
    device: str = ""  # "cpu", "cuda:0"
    speed: float | None = None  # audio seconds per wall second (x real time)
    latency: float | None = None  # median seconds from end of speech to the result
    queue: int = 0  # utterances waiting for ASR/emotion
    dropped_audio_s: float = 0.0
    dropped_utterances: int = 0
    #: The session clock utterance times are measured on (SessionStats.audio_seconds); it scrolls the timelines
    #: through silence. None: the latest utterance end.
    audio_seconds: float | None = None
    notice: str = ""  # an optional problem to show (e.g. a stage error)

    @classmethod
    def coerce(cls, value: Any) -> "DashboardStatus":
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, Mapping):
            names = {f.name for f in dataclasses.fields(cls)}
            kw = {k: v for k, v in value.items() if k in names}
            if "inputs" in kw:
                kw["inputs"] = tuple(kw["inputs"] or ())
            return cls(**kw)
        if dataclasses.is_dataclass(value):
            return cls.coerce(dataclasses.asdict(value))
        raise TypeError(f"dashboard status must be a DashboardStatus or a dict, not {type(value).__name__}")


# ------------------------------------------------------------------------------------------------ formatting
def clock(seconds: float) -> str:
    """``04:05`` or ``1:02:03``."""
    s = int(max(0.0, seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def span(seconds: float) -> str:
    """``45s``, ``2m10s``, ``1h05m``."""
    s = int(max(0.0, seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def percent_shares(counts: Mapping[str, int]) -> list[tuple[str, int]]:
    """Whole percentages that sum to 100 (largest remainder), most frequent first; zeros left out."""
    total = sum(counts.values())
    if total <= 0:
        return []
    raw = {k: 100.0 * v / total for k, v in counts.items() if v > 0}
    floor = {k: int(math.floor(v)) for k, v in raw.items()}
    left = 100 - sum(floor.values())
    for k in sorted(raw, key=lambda k: (raw[k] - floor[k], counts[k]), reverse=True)[:left]:
        floor[k] += 1
    return sorted(floor.items(), key=lambda kv: (-kv[1], -counts[kv[0]], kv[0]))


def _symbols(classes: Iterable[str]) -> dict[str, str]:
    """A distinct capital letter per class: its first letter, else the next unused letter of its name."""
    used: set[str] = set()
    out: dict[str, str] = {}
    for c in classes:
        cands = [ch.upper() for ch in c if ch.isalpha()] + [chr(i) for i in range(ord("A"), ord("Z") + 1)]
        sym = next((ch for ch in cands if ch not in used), "?")
        used.add(sym)
        out[c] = sym
    return out


def _mood(v: float, a: float) -> str:
    """A word for the circumplex quadrant of a smoothed reading (display hint only)."""
    if abs(v) < 0.2 and abs(a) < 0.2:
        return "calm"
    if v >= 0.2:
        return "excited" if a >= 0.2 else "content"
    if v <= -0.2:
        return "tense" if a >= 0.2 else "low"
    return "aroused" if a >= 0.2 else "subdued"


# ------------------------------------------------------------------------------------------------ state
@dataclass
class _SpeakerState:
    name: str
    order: int
    tracker: AffectTracker
    timeline: collections.deque  # (start, end, emotion)
    counts: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    emotion: str = ""
    confidence: float = 0.0
    utterances: int = 0
    last_end: float = 0.0
    seq: int = 0  # write order of the latest result (recency)


@dataclass(frozen=True)
class _SpeakerView:
    name: str
    emotion: str
    confidence: float
    utterances: int
    last_end: float
    seq: int
    shares: tuple[tuple[str, int], ...]
    timeline: tuple[tuple[float, float, str], ...]
    valence: float
    arousal: float
    negative: float
    alert: float | None


@dataclass(frozen=True)
class _Line:
    start: float
    speaker: str
    emotion: str
    confidence: float
    text: str
    note: str


@dataclass(frozen=True)
class _Snapshot:
    status: DashboardStatus
    now: float
    speakers: tuple[_SpeakerView, ...]
    transcript: tuple[_Line, ...]
    notices: tuple[tuple[float, str], ...]
    notices_total: int
    closed: bool


class _Fit:
    """A renderable made at render time for the width it is given (so a timeline ends exactly at the right edge)."""

    def __init__(self, make: Callable[[int], Text], lines: int = 1):
        self.make, self.lines = make, lines

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.make(options.max_width)

    def __rich_measure__(self, console: Console, options: ConsoleOptions):
        from rich.measure import Measurement

        return Measurement(1, options.max_width)


class Dashboard:
    """A Sink that keeps per-speaker emotion state and shows it in a ``rich.live.Live`` view.

    ``write``/``notice``/``close`` come from the pipeline's threads; ``start``/``stop`` run the Live display at
    ``cfg.refresh_hz`` (``close`` also stops it, so the terminal is restored when the session ends). The object
    itself is a Rich renderable (``console.print(dashboard.renderable(), height=24)``), sized to the console's (or
    the print's) width and height.

    ``status`` is called on every paint (from Live's thread) and returns a :class:`DashboardStatus` or a dict with
    its fields; it should only read counters. ``screen`` uses the terminal's alternate screen (like ``top``) when
    the console is a terminal. While Live runs, text written to sys.stdout/stderr is shown above the view, but a
    logging handler created earlier keeps its own stream and would scribble over the screen until the next paint:
    route logs elsewhere (a file, or ``notice``) while the dashboard is up.
    """

    def __init__(self, cfg: DashboardConfig, classes: Iterable[str], status: Callable[[], Any] | None = None,
                 console: Console | None = None, *, screen: bool = True):
        self.cfg = cfg
        self.classes = tuple(classes)
        self._status_fn = status
        self.console = console or Console()
        self.screen = screen
        self.colours = {c: EMOTION_COLOURS.get(c, _FALLBACK_COLOURS[i % len(_FALLBACK_COLOURS)])
                        for i, c in enumerate(self.classes)}
        self.symbols = _symbols(self.classes)
        self._lock = threading.Lock()
        self._speakers: dict[str, _SpeakerState] = {}
        self._transcript: collections.deque[_Line] = collections.deque(maxlen=max(1, int(cfg.transcript_lines)))
        self._notices: collections.deque[tuple[float, str]] = collections.deque(maxlen=20)
        self._notices_total = 0
        self._latest = 0.0
        self._seq = 0
        self._closed = False
        self._t0 = time.time()
        self._live: Live | None = None
        self._live_lock = threading.Lock()
        self.window_s = float(cfg.timeline_minutes) * 60.0

    # ------------------------------------------------------------------------------------------- Sink protocol
    def write(self, result: Result) -> None:
        u = result.utterance
        with self._lock:
            sp = self._speakers.get(u.speaker)
            if sp is None:
                sp = _SpeakerState(
                    u.speaker, len(self._speakers),
                    AffectTracker(self.cfg.va_window_s, self.cfg.alert_threshold, self.cfg.alert_seconds),
                    collections.deque(maxlen=20_000))
                self._speakers[u.speaker] = sp
            self._seq += 1
            sp.seq = self._seq
            sp.emotion, sp.confidence = result.emotion, float(result.confidence)
            sp.utterances += 1
            sp.counts[result.emotion] += 1
            sp.last_end = max(sp.last_end, u.end)
            sp.tracker.add(u.end, result.probs, u.duration)
            sp.timeline.append((u.start, u.end, result.emotion))
            self._latest = max(self._latest, u.end)
            horizon = self._latest - self.window_s
            for s in self._speakers.values():  # bounded: only the timeline window is kept
                while s.timeline and s.timeline[0][1] < horizon:
                    s.timeline.popleft()
            if self.cfg.transcript_lines > 0:
                self._transcript.append(_Line(u.start, u.speaker, result.emotion, float(result.confidence),
                                              (result.text or "").strip(), result.asr_note))

    def notice(self, message: str) -> None:
        with self._lock:
            self._notices.append((time.time() - self._t0, str(message)))
            self._notices_total += 1

    def close(self) -> None:
        with self._lock:
            self._closed = True
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

    def _status(self) -> DashboardStatus:
        if self._status_fn is None:
            return DashboardStatus(elapsed=time.time() - self._t0)
        try:
            return DashboardStatus.coerce(self._status_fn())
        except Exception as exc:  # never let a status bug kill the refresh thread
            return DashboardStatus(elapsed=time.time() - self._t0, notice=f"status unavailable: {exc}")

    def snapshot(self) -> _Snapshot:
        status = self._status()
        with self._lock:
            now = max(self._latest, status.audio_seconds or 0.0)
            views = tuple(
                _SpeakerView(
                    sp.name, sp.emotion, sp.confidence, sp.utterances, sp.last_end, sp.seq,
                    tuple(percent_shares(sp.counts)), tuple(sp.timeline), *sp.tracker.smoothed(),
                    sp.tracker.alert(now))
                for sp in sorted(self._speakers.values(), key=lambda s: s.order))
            return _Snapshot(status, now, views, tuple(self._transcript), tuple(self._notices),
                             self._notices_total, self._closed)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = max(20, options.max_width)
        height = options.height or console.size.height
        try:
            body = self._compose(self.snapshot(), width, height, lambda r: len(
                console.render_lines(r, options.update(width=width, height=None), pad=False)))
        except Exception as exc:  # a rendering bug must not kill Live's thread; show it instead
            body = Text(f"dashboard error: {exc!r}", style="bold red")
        lines = console.render_lines(body, options.update(width=width, height=None), pad=False)
        for line in lines[:height]:  # guarantee the screen size, whatever the content
            yield from line
            yield Segment.line()

    # ---- pieces
    def _emotion_style(self, emotion: str) -> str:
        return f"bold {self.colours.get(emotion, 'white')}"

    def _word(self, emotion: str, confidence: float | None = None, pad: int = 0) -> Text:
        t = Text(emotion.ljust(pad) if pad else emotion, style=self._emotion_style(emotion))
        if confidence is not None:
            t.append(f" {confidence:.2f}", style="bold")
        return t

    def _cell_style(self, emotion: str) -> str:
        colour = self.colours.get(emotion, "white")
        return f"bold {'white' if colour in _DARK else 'black'} on {colour}"

    def _header(self, snap: _Snapshot, width: int) -> list[Text]:
        st = snap.status
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
        out = [line]
        problems = Text(no_wrap=True, overflow="ellipsis")
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
        if problems.plain.strip():
            problems.rstrip()
            out.append(problems)
        return out

    def _alerts(self, snap: _Snapshot, max_lines: int) -> list[Text]:
        alerts = [(v.name, v.alert) for v in snap.speakers if v.alert is not None]
        if not alerts or max_lines <= 0:
            return []
        texts = []
        for name, held in alerts:
            t = Text(no_wrap=True, overflow="ellipsis")
            t.append(" ! ", style="bold white on red")
            t.append(f" {name}: negative affect high for {span(held)}", style="bold red")
            texts.append(t)
        if len(texts) > max_lines:  # join the rest on the last line
            rest = "; ".join(f"{n}: {span(h)}" for n, h in alerts[max_lines - 1:])
            last = Text(no_wrap=True, overflow="ellipsis")
            last.append(" ! ", style="bold white on red")
            last.append(f" negative affect high: {rest}", style="bold red")
            texts = texts[:max_lines - 1] + [last]
        return texts

    def _legend(self, width: int) -> Text:
        t = Text(no_wrap=True, overflow="ellipsis")
        gap = "  " if width >= 90 else " "
        t.append("key" + gap, style="dim")
        for c in self.classes:
            t.append(self.symbols[c], style=self._cell_style(c))
            t.append(" ")
            t.append(c, style=self._emotion_style(c))
            t.append(gap)
        t.append("· silence", style="dim")
        tail = f"{gap}timelines: last {self._window_label()}, newest right"
        if t.cell_len + len(tail) <= width:
            t.append(tail, style="dim")
        return t

    def _window_label(self) -> str:
        s = self.window_s
        return f"{s / 60:g}m" if s >= 60 else f"{s:g}s"

    def _timeline(self, view: _SpeakerView, now: float, cells: int) -> Text:
        cells = max(1, cells)
        t0 = now - self.window_s
        dt = self.window_s / cells
        best: list[tuple[float, str] | None] = [None] * cells
        for start, end, emotion in view.timeline:
            if end <= t0 or start >= now + 1e-9:
                continue
            i0 = max(0, int((start - t0) // dt))
            i1 = min(cells - 1, int((end - 1e-9 - t0) // dt))
            for i in range(i0, max(i0, i1) + 1):
                lo, hi = t0 + i * dt, t0 + (i + 1) * dt
                ov = min(hi, end) - max(lo, start)
                ov = max(ov, 1e-6)  # a very short utterance still marks its slice
                if best[i] is None or ov > best[i][0]:
                    best[i] = (ov, emotion)
        out = Text(no_wrap=True, overflow="crop")
        prev = None
        for i, b in enumerate(best):
            if b is None:
                before_start = t0 + (i + 1) * dt <= 0.0
                out.append(" " if before_start else "·", style="dim")
                prev = None
                continue
            emotion = b[1]
            if emotion != prev:
                out.append(self.symbols.get(emotion, "?"), style=self._cell_style(emotion))
            else:
                out.append("█", style=self.colours.get(emotion, "white"))
            prev = emotion
        return out

    def _shares(self, view: _SpeakerView, limit: int | None = None) -> Text:
        t = Text(no_wrap=True, overflow="ellipsis")
        items = view.shares if limit is None else view.shares[:limit]
        for k, (emotion, pct) in enumerate(items):
            if k:
                t.append("  ")
            t.append(emotion, style=self.colours.get(emotion, "white"))
            t.append(f" {pct}%")
        return t

    @staticmethod
    def _bar(value: float, half: int, style: str) -> Text:
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

    def _va(self, view: _SpeakerView, width: int) -> Text:
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
                    t.append_text(self._bar(value, half, style))
                t.append("  ")
            t.append(f"neg {100 * view.negative:.0f}%".ljust(8), style="bold red" if hot else "dim")
            if mood:  # padded, so every speaker's reading gets the same form and the bars line up
                t.append(f" {_mood(view.valence, view.arousal):<7}", style="italic dim")
            best = t
            if t.cell_len <= width:
                break
        return best

    def _share_bars(self, view: _SpeakerView, width: int) -> list[Text]:
        """One line per class, in class order: ``angry     ██████▏          23%``."""
        pct = dict(view.shares)
        bar_w = max(4, min(40, width - 8 - 6))
        out = []
        for c in self.classes:
            p = pct.get(c, 0)
            n = int(round(p / 100 * bar_w))
            t = Text(no_wrap=True, overflow="ellipsis")
            t.append(c[:8].ljust(8) + " ", style=self.colours.get(c, "white"))
            t.append("█" * n, style=self.colours.get(c, "white"))
            t.append("·" * (bar_w - n), style="dim")
            t.append(f" {p:3d}%", style="bold" if p else "dim")
            out.append(t)
        return out

    def _now(self, view: _SpeakerView, snap: _Snapshot) -> Text:
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append_text(self._word(view.emotion, view.confidence))
        ago = snap.now - view.last_end
        t.append(f"  {view.utterances} utt", style="dim")
        if ago >= 1.0:
            t.append(f", {span(ago)} ago", style="dim")
        return t

    def _panel(self, view: _SpeakerView, snap: _Snapshot, tall: bool = False) -> Panel:
        """A bordered block: 5 lines, or ``4 + len(classes)`` when ``tall`` (one share bar per class)."""
        label = f"{self._window_label()} "
        lines: list = [_Fit(lambda w: Text.assemble((label, "dim"), self._timeline(view, snap.now, w - len(label)),
                                                    no_wrap=True))]
        if tall:
            lines += [_Fit(lambda w: self._va(view, w)),
                      _Fit(lambda w: Text("\n").join(self._share_bars(view, w)), lines=len(self.classes))]
        else:
            lines += [Text.assemble(("mix ", "dim"), self._shares(view), no_wrap=True, overflow="ellipsis"),
                      _Fit(lambda w: self._va(view, w))]
        title = Text.assemble((f" {view.name[:_MAX_NAME * 2]} ", "bold reverse"), " ", self._now(view, snap), " ")
        alerting = view.alert is not None
        return Panel(Group(*lines), title=title, title_align="left", border_style="red" if alerting else "dim",
                     subtitle=Text(f" negative affect high for {span(view.alert)} ", style="bold red")
                     if alerting else None, subtitle_align="right", padding=(0, 1))

    def _compact(self, view: _SpeakerView, snap: _Snapshot, rows: int, name_w: int) -> list:
        """A borderless block of ``rows`` lines (3: head, timeline, shares; 2: head, timeline + shares; 1: head +
        timeline)."""
        head = Text(no_wrap=True, overflow="ellipsis")
        head.append(view.name[:name_w].ljust(name_w) + " ", style="bold red" if view.alert is not None else "bold")
        head.append_text(self._word(view.emotion, view.confidence, pad=8))
        indent, label = "  ", f"{self._window_label()} "
        if rows == 1:
            head.append(f"  V{view.valence:+.2f} A{view.arousal:+.2f} ")

            def one(w: int) -> Text:
                cells = w - head.cell_len
                return Text.assemble(head, self._timeline(view, snap.now, cells)) if cells >= 8 else head

            return [_Fit(one)]
        head.append("  ")
        first = _Fit(lambda w: Text.assemble(head, self._va(view, w - head.cell_len), no_wrap=True,
                                             overflow="ellipsis"))
        if rows == 2:
            return [first, _Fit(lambda w: Text.assemble(
                indent, (label, "dim"), self._timeline(view, snap.now, max(8, (w - len(indent) - len(label)) // 2)),
                "  ", self._shares(view), no_wrap=True, overflow="ellipsis"))]
        timeline = _Fit(lambda w: Text.assemble(indent, (label, "dim"),
                                                self._timeline(view, snap.now, w - len(indent) - len(label)),
                                                no_wrap=True))
        return [first, timeline,
                Text.assemble(indent, ("mix ", "dim"), self._shares(view), no_wrap=True, overflow="ellipsis")]

    def _transcript_tail(self, snap: _Snapshot, n: int) -> list[Text]:
        if n <= 0:
            return []
        lines = snap.transcript[-n:]
        name_w = min(_MAX_NAME, max((len(x.speaker) for x in lines), default=0))
        out = []
        for x in lines:
            t = Text(no_wrap=True, overflow="ellipsis")
            t.append(clock(x.start), style="dim")
            t.append(" ")
            t.append(x.speaker[:name_w].ljust(name_w), style="bold")
            t.append(" ")
            t.append_text(self._word(x.emotion, pad=8))
            t.append(f" {x.confidence:.2f}  ", style="dim")
            if x.text:
                t.append(x.text)
            else:
                t.append(f"(no transcript: {x.note})" if x.note else "(no transcript)", style="dim italic")
            out.append(t)
        return out

    def _speaker_blocks(self, snap: _Snapshot, width: int, budget: int) -> list:
        """Speaker blocks in the richest form that fits ``budget`` lines: tall panels, panels, then borderless
        blocks of 3, 2 and 1 lines, then the most recently active speakers and a count of the rest."""
        views = list(snap.speakers)
        if not views:
            return [Text("waiting for speech…", style="dim italic")] if budget > 0 else []
        n = len(views)
        cols = max(1, min(n, (width + _GAP) // (_PANEL_MIN_WIDTH + _GAP)))
        rows = math.ceil(n / cols)
        name_w = min(_MAX_NAME, max(len(v.name) for v in views))
        tall_h = 4 + len(self.classes)
        if len(self.classes) > 3 and rows * tall_h <= budget:
            return [self._grid([self._panel(v, snap, tall=True) for v in views], cols)]
        if rows * 5 <= budget:
            return [self._grid([self._panel(v, snap) for v in views], cols)]
        for per in (3, 2, 1):
            if rows * per <= budget:
                return [self._grid([Group(*self._compact(v, snap, per, name_w)) for v in views], cols)]
        keep_n = max(0, budget - 1) * cols
        recent = {v.name for v in sorted(views, key=lambda v: -v.seq)[:keep_n]}
        keep = [v for v in views if v.name in recent]
        out: list = [self._grid([Group(*self._compact(v, snap, 1, name_w)) for v in keep], cols)] if keep else []
        if budget >= 1:
            out.append(Text(f"+{n - len(keep)} more speakers (a larger terminal shows them)", style="dim italic",
                            no_wrap=True, overflow="ellipsis"))
        return out

    @staticmethod
    def _grid(blocks: list, cols: int):
        if cols == 1:
            return Group(*blocks)
        grid = Table.grid(expand=True, padding=(0, _GAP // 2), pad_edge=False)
        for _ in range(cols):
            grid.add_column(ratio=1)
        for i in range(0, len(blocks), cols):
            row = blocks[i:i + cols]
            grid.add_row(*row, *([""] * (cols - len(row))))
        return grid

    def _compose(self, snap: _Snapshot, width: int, height: int, measure: Callable[[Any], int]):
        header = self._header(snap, width)
        alerts = self._alerts(snap, max(1, height // 8))
        legend = self._legend(width)
        fixed = len(header) + len(alerts) + 1
        want_t = min(int(self.cfg.transcript_lines), len(snap.transcript))
        reserve_t = (1 + min(want_t, 3)) if want_t else 0
        blocks = self._speaker_blocks(snap, width, height - fixed - reserve_t)
        used = sum(measure(b) for b in blocks)
        parts: list = [*header, *alerts, legend, *blocks]
        room = height - fixed - used
        if want_t and room >= 2:
            parts.append(Rule(Text("transcript", style="dim"), align="left", style="dim"))
            parts.extend(self._transcript_tail(snap, min(want_t, room - 1)))
        return Group(*parts)
