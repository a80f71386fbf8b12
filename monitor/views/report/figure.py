"""The report's PNG figure (matplotlib, Agg, no pyplot state).

The figure is always **1600 x (300 + 260 * n) pixels**, n the number of speakers drawn (at most
:data:`MAX_SPEAKERS`; 16 in wide at 100 dpi; 1600 x 300 when there are no utterances). The top 300 px hold the
title, the emotion colour legend, a "who spoke when" overview (one lane per speaker) and the session's emotion
shares; then each speaker gets a 260 px band with their emotion timeline (each utterance coloured from its start to
its end), their smoothed valence and arousal (Russell's circumplex,
:mod:`emomon.monitor.views.affect`; dots are single utterances, the lines the duration-weighted mean over a sliding
window) and their emotion shares (share of speaking time, utterance counts). Time axes are session time (mm:ss) and
are shared by all panels. Colours come from :func:`~emomon.monitor.views.report.summary.color_map`.

**Unsure readings** (confidence below ``[dashboard] unsure_below``) are drawn in a lighter shade of their emotion's
colour, hatched, with a ``?`` on the ones wide enough to hold it; the legend says so. **Alerts** (the CSV's alert
rows) shade their span in the speaker's valence/arousal panel, labelled with their kind, and show as a thin bar of
the kind's colour under the speaker's overview lane.

**Scale.** The figure's cost does not grow with the rows beyond one pass over them: each lane's utterances of one
emotion are drawn as one collection (touching segments merged into runs); a lane of more than
:data:`MAX_SEGMENTS` utterances is drawn at pixel resolution instead (the time axis cut into :data:`BINS` bins, each
coloured by the emotion with the most speech in it); at most :data:`MAX_DOTS` valence/arousal dots are drawn
(evenly spaced in the rows) and the smoothed lines are averaged into :data:`BINS` bins. At most
:data:`MAX_SPEAKERS` speakers get a band and a lane (those who spoke longest, in order of appearance) and at most
:data:`MAX_EMOTIONS` emotions a legend entry and a share bar; the figure then says how many more there are. The
HTML page's tables keep every speaker and every row. Names are drawn on one line and shortened.
"""

from __future__ import annotations

import io
import math
import types
import warnings

import numpy as np

from emomon.errors import OutputError
from emomon.monitor.views.alerts import TITLES
from emomon.monitor.views.report.reading import Row, Session
from emomon.monitor.views.report.summary import (ALERT_COLORS, OTHER_ALERT_COLOR, affect_series, clock, color_map,
                                                 is_unsure, lighter, shares, smoothing_window, tick_step, time_range)
from emomon.records import Alert, one_line

VALENCE_COLOR = "#222222"
AROUSAL_COLOR = "#d9480f"
#: Unsure readings' hatch, and the most "?" marks one strip gets.
UNSURE_HATCH = "////"
MAX_MARKS = 400

WIDTH_PX, HEADER_PX, SPEAKER_PX, DPI = 1600, 300, 260, 100
#: Columns in pixels: time panels from LEFT, MAIN_W wide; share bars from RIGHT_X, RIGHT_W wide.
LEFT, MAIN_W, RIGHT_X, RIGHT_W = 150, 1050, 1290, 270
#: Speakers that get a band (and an overview lane); emotions that get a legend entry and a share bar.
MAX_SPEAKERS, MAX_EMOTIONS = 12, 16
#: A lane with more utterances than this is drawn in BINS time bins; at most MAX_DOTS valence/arousal dots.
MAX_SEGMENTS, BINS, MAX_DOTS = 3000, 2 * MAIN_W, 4000


def figure_size_px(n_speakers: int) -> tuple[int, int]:
    """The PNG's pixel size: 1600 x (300 + 260 * n) for n = n_speakers, at most :data:`MAX_SPEAKERS`."""
    return WIDTH_PX, HEADER_PX + SPEAKER_PX * min(MAX_SPEAKERS, max(0, n_speakers))


def render_png(session: Session, unsure_below: float = 0.0) -> bytes:
    """The session figure as PNG bytes (see the module docstring for its layout); readings with a confidence below
    ``unsure_below`` are drawn as unsure."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # e.g. "Glyph ... missing from font": a box is drawn instead
        drawing = _Drawing(session, _matplotlib(), unsure_below)
        drawing.title()
        if not session.rows:
            drawing.empty()
        else:
            drawing.subtitle_and_legend()
            drawing.overview()
            for i, spk in enumerate(drawing.speakers):
                drawing.speaker(i, spk)
        return drawing.png()


def drawn_speakers(session: Session) -> list[str]:
    """The speakers the figure draws: all, or the :data:`MAX_SPEAKERS` who spoke longest (in order of appearance)."""
    groups = session.by_speaker
    if len(groups) <= MAX_SPEAKERS:
        return list(groups)
    talk = {s: math.fsum(r.duration for r in rows) for s, rows in groups.items()}
    keep = set(sorted(groups, key=lambda s: (-talk[s], -len(groups[s])))[:MAX_SPEAKERS])
    return [s for s in groups if s in keep]


def drawn_emotions(session: Session) -> list[str]:
    """The emotions in the legend and share bars: all, or the :data:`MAX_EMOTIONS` with the most speech (the class
    columns first), in the session's order."""
    emotions = session.emotions
    if len(emotions) <= MAX_EMOTIONS:
        return emotions
    talk: dict[str, float] = {}
    for r in session.rows:
        talk[r.emotion] = talk.get(r.emotion, 0.0) + r.duration
    classes = set(session.classes)
    keep = set(sorted(emotions, key=lambda e: (e not in classes, -talk.get(e, 0.0)))[:MAX_EMOTIONS])
    return [e for e in emotions if e in keep]


def lane_runs(rows: list[Row], span: float, unsure_below: float = 0.0) -> dict[tuple[str, bool], list[tuple[float, float]]]:
    """(emotion, unsure) -> its (start, width) runs in one lane, for one ``broken_barh`` each: every utterance (at
    least span/2000 wide), touching ones merged; more than :data:`MAX_SEGMENTS` utterances: :data:`BINS` time bins,
    each given to the emotion with the most speech in it (unsure when most of that emotion's speech there is),
    runs merged. ``unsure``: the confidence is below ``unsure_below`` (:func:`is_unsure`)."""
    min_w = span / 2000
    if len(rows) <= MAX_SEGMENTS:
        spans: dict[tuple[str, bool], list[tuple[float, float]]] = {}
        for r in rows:
            spans.setdefault((r.emotion, is_unsure(r, unsure_below)), []).append(
                (r.start, r.start + max(r.duration, min_w)))
        return {key: _merge(sorted(segs)) for key, segs in spans.items()}
    edges = np.linspace(0.0, span, BINS + 1)
    emotions = list(dict.fromkeys(r.emotion for r in rows))
    cover = np.zeros((len(emotions), 2, BINS))  # [emotion, unsure]
    index = {e: k for k, e in enumerate(emotions)}
    which = np.fromiter((index[r.emotion] for r in rows), dtype=np.int64, count=len(rows))
    unsure = np.fromiter((is_unsure(r, unsure_below) for r in rows), dtype=bool, count=len(rows))
    starts = np.fromiter((r.start for r in rows), dtype=np.float64, count=len(rows))
    ends = np.fromiter((r.end for r in rows), dtype=np.float64, count=len(rows))
    ends = np.maximum(ends, starts + min_w)
    for k in range(len(emotions)):
        for u in (0, 1):
            sel = (which == k) & (unsure == bool(u))
            if sel.any():
                cover[k, u] = _coverage(starts[sel], ends[sel], edges)
    total = cover.sum(axis=1)
    winner = total.argmax(axis=0)
    spoken = total.max(axis=0) > 0
    runs: dict[tuple[str, bool], list[tuple[float, float]]] = {}
    for k in range(len(emotions)):
        mostly_unsure = cover[k, 1] > cover[k, 0]
        for u in (False, True):
            on = spoken & (winner == k) & (mostly_unsure == u)
            if on.any():
                runs[(emotions[k], u)] = _merge([(edges[i], edges[i + 1]) for i in np.flatnonzero(on)])
    return runs


def _merge(segs: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Sorted (start, end) segments -> (start, width) runs, overlapping or touching segments joined."""
    out: list[list[float]] = []
    for a, b in segs:
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b - a) for a, b in out]


def _coverage(starts: np.ndarray, ends: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Seconds of the segments [start, end) inside each bin between ``edges``: the differences of
    F(x) = sum(clip(x - start, 0, end - start)), computed with sorted cumulative sums."""
    s, e = np.sort(starts), np.sort(ends)
    cs, ce = np.concatenate(([0.0], np.cumsum(s))), np.concatenate(([0.0], np.cumsum(e)))
    i, j = np.searchsorted(s, edges), np.searchsorted(e, edges)
    f = (i * edges - cs[i]) - (j * edges - ce[j])
    return np.maximum(np.diff(f), 0.0)


def thin_dots(points: list, n: int = MAX_DOTS) -> list:
    """At most ``n`` of ``points``, evenly spaced (every k-th)."""
    return points if len(points) <= n else points[:: math.ceil(len(points) / n)]


def bin_means(points: list[tuple[float, float, float]], span: float, bins: int = BINS) -> list[tuple[float, ...]]:
    """(time, valence, arousal) points averaged into ``bins`` time bins over [0, span] (the mean time, valence and
    arousal of each bin that holds points), when there are more points than bins; else the points."""
    if len(points) <= bins:
        return points
    t, v, a = np.asarray(points, dtype=np.float64).T
    k = np.clip((t / max(span, 1e-9) * bins).astype(np.int64), 0, bins - 1)
    n = np.bincount(k, minlength=bins)
    keep = n > 0
    means = [np.bincount(k, weights=x, minlength=bins)[keep] / n[keep] for x in (t, v, a)]
    return np.stack(means, axis=1).tolist()


def _matplotlib() -> types.SimpleNamespace:
    """matplotlib's classes, imported here on first use rather than at the top: matplotlib takes about half a second
    to import (only ``emomon report`` draws), and a missing install is then an OutputError, not a failed import."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D
        from matplotlib.patches import Patch
        from matplotlib.ticker import FuncFormatter, MultipleLocator
    except ImportError:  # pragma: no cover - depends on the install
        raise OutputError("the session report needs matplotlib (pip install matplotlib)") from None
    return types.SimpleNamespace(FigureCanvasAgg=FigureCanvasAgg, Figure=Figure, Line2D=Line2D, Patch=Patch,
                                 FuncFormatter=FuncFormatter, MultipleLocator=MultipleLocator)


def _short(s: str, n: int = 18) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def _mpl(s: str, n: int = 200) -> str:
    """Text for matplotlib: one line, at most ``n`` characters, without mathtext surprises ('$' in a speaker name)."""
    return _short(one_line(s), n).replace("$", r"\$")


class _Drawing:
    """One figure being drawn: axes placed in pixels, a time axis shared by all panels, fixed emotion colours."""

    def __init__(self, session: Session, mpl: types.SimpleNamespace, unsure_below: float = 0.0):
        self.session, self.mpl, self.unsure_below = session, mpl, unsure_below
        self.wpx, self.hpx = figure_size_px(len(session.speakers))
        self.fig = mpl.Figure(figsize=(self.wpx / DPI, self.hpx / DPI), dpi=DPI, facecolor="white")
        mpl.FigureCanvasAgg(self.fig)
        self.emotions = drawn_emotions(session)
        self.colors = color_map(session.emotions)
        self.speakers = drawn_speakers(session)
        self._runs: dict[str, dict[tuple[str, bool], list[tuple[float, float]]]] = {}
        self.t_end = max((r.end for r in session.rows), default=0.0)
        self.alerts: dict[str, list[Alert]] = {}
        for a in session.alerts:
            self.alerts.setdefault(a.speaker, []).append(a)
        # an alert may last past the last utterance (a silence until the session's end)
        self.span = max(self.t_end, max((a.until_s or a.since_s for a in session.alerts), default=0.0), 1.0)
        # whole seconds: ticks are >= 1 s apart
        self.fmt = mpl.FuncFormatter(lambda x, _pos: clock(x)[:-2] if x >= 0 else "")

    def runs(self, speaker: str) -> dict[tuple[str, bool], list[tuple[float, float]]]:
        """The speaker's :func:`lane_runs` (drawn twice: in the overview and in their band)."""
        if speaker not in self._runs:
            self._runs[speaker] = lane_runs(self.session.by_speaker[speaker], self.span, self.unsure_below)
        return self._runs[speaker]

    def lane(self, ax, speaker: str, y: float, height: float) -> None:
        """The speaker's utterances as bars between ``y`` and ``y + height``: firm readings in their emotion's colour,
        unsure ones lighter and hatched."""
        for (emotion, unsure), runs in self.runs(speaker).items():
            color = self.colors[emotion]
            if unsure:
                ax.broken_barh(runs, (y, height), facecolors=lighter(color), edgecolors=color, hatch=UNSURE_HATCH,
                               linewidth=0)
            else:
                ax.broken_barh(runs, (y, height), facecolors=color, edgecolors="none")

    def png(self) -> bytes:
        buf = io.BytesIO()
        self.fig.savefig(buf, format="png", dpi=DPI, facecolor="white")
        return buf.getvalue()

    def axes(self, x0: float, y_top: float, w: float, h: float):
        """An axes placed in pixels from the top-left corner."""
        return self.fig.add_axes((x0 / self.wpx, 1 - (y_top + h) / self.hpx, w / self.wpx, h / self.hpx))

    def time_axis(self, ax, show_labels: bool) -> None:
        ax.set_xlim(0, self.span)
        ax.xaxis.set_major_formatter(self.fmt)
        ax.xaxis.set_major_locator(self.mpl.MultipleLocator(tick_step(self.span)))
        ax.tick_params(axis="x", labelbottom=show_labels, labelsize=9)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)

    # ------------------------------------------------------------------------------------------------- header
    def title(self) -> None:
        session = self.session
        ids = session.session_ids
        sid = ", ".join(_short(s, 40) for s in ids[:3]) + (f" (+{len(ids) - 3} more)" if len(ids) > 3 else "")
        sid = sid or _short(session.path.stem, 80)
        self.fig.text(24 / self.wpx, 1 - 30 / self.hpx, _mpl(f"emomon session {sid}"), fontsize=17, fontweight="bold",
                      va="center")

    def empty(self) -> None:
        self.fig.text(0.5, 0.45, "No utterances in this session", fontsize=20, color="#666666", ha="center",
                      va="center")
        self.fig.text(24 / self.wpx, 1 - 58 / self.hpx, _mpl(self.session.path.name), fontsize=10, color="#555555",
                      va="center")

    def subtitle_and_legend(self) -> None:
        session, speakers = self.session, self.session.speakers
        when = time_range(session)
        when = "date unknown" if when == "unknown" else when
        subtitle = (f"{when}   ·   {clock(self.t_end)} long   ·   {len(session.rows)} utterances   ·   "
                    f"{len(speakers)} speaker{'s' if len(speakers) != 1 else ''}")
        if len(self.speakers) < len(speakers):
            subtitle += f" ({len(self.speakers)} who spoke longest drawn; every speaker is in the page's tables)"
        self.fig.text(24 / self.wpx, 1 - 58 / self.hpx, _mpl(subtitle, 400), fontsize=11, color="#444444", va="center")
        Line2D = self.mpl.Line2D
        handles = [self.mpl.Patch(facecolor=self.colors[e], edgecolor="none", label=_mpl(e, 24)) for e in self.emotions]
        handles += [Line2D([], [], color=VALENCE_COLOR, lw=2, label="valence"),
                    Line2D([], [], color=AROUSAL_COLOR, lw=2, ls="--", label="arousal")]
        more = len(session.emotions) - len(self.emotions)
        if more:
            handles.append(self.mpl.Patch(facecolor="none", edgecolor="none", label=f"+{more} more"))
        self.fig.legend(handles=handles, loc="center left", bbox_to_anchor=(110 / self.wpx, 1 - 90 / self.hpx),
                        ncol=len(handles), frameon=False, fontsize=11 if len(handles) <= 11 else 8, handlelength=1.6,
                        columnspacing=1.4)
        marks = []  # a second row: what the hatching and the alert colours mean, when the figure has them
        if any(is_unsure(r, self.unsure_below) for r in session.rows):
            marks.append(self.mpl.Patch(facecolor="#e4e4e4", edgecolor="#666666", hatch=UNSURE_HATCH, linewidth=0,
                                        label=f"? unsure: confidence below {self.unsure_below:.2f}"))
        drawn = {a.kind for spk in self.speakers for a in self.alerts.get(spk, ())}
        for kind, color in ALERT_COLORS.items():
            if kind in drawn:
                marks.append(self.mpl.Patch(facecolor=color, alpha=0.35, edgecolor="none",
                                            label=f"alert: {TITLES[kind]}"))
        if drawn - set(ALERT_COLORS):
            marks.append(self.mpl.Patch(facecolor=OTHER_ALERT_COLOR, alpha=0.35, edgecolor="none", label="alert: other"))
        if marks:
            self.fig.legend(handles=marks, loc="center left", bbox_to_anchor=(110 / self.wpx, 1 - 117 / self.hpx),
                            ncol=len(marks), frameon=False, fontsize=9, handlelength=1.6, columnspacing=1.4)

    def overview(self) -> None:
        """Who spoke when (one lane per speaker), and the emotion shares of all speakers."""
        speakers, span = self.speakers, self.span
        lanes = self.axes(LEFT, 140, MAIN_W, 128)
        self.time_axis(lanes, True)
        n = len(speakers)
        for i, spk in enumerate(speakers):
            self.lane(lanes, spk, n - 1 - i + 0.15, 0.7)
            # a thin bar of each alert's colour under the lane, the longest first (a shorter one stays on top)
            for a in sorted(self.alerts.get(spk, ()), key=lambda a: a.since_s - (a.until_s or a.since_s)):
                until = a.until_s if a.until_s is not None else a.since_s
                lanes.broken_barh([(a.since_s, max(until - a.since_s, span / 1000))], (n - 1 - i + 0.02, 0.1),
                                  facecolors=ALERT_COLORS.get(a.kind, OTHER_ALERT_COLOR), edgecolors="none")
        lanes.set_ylim(0, n)
        lanes.set_yticks([n - 1 - i + 0.5 for i in range(n)], [_mpl(_short(s)) for s in speakers],
                         fontsize=10 if n <= 4 else 8)
        lanes.tick_params(axis="y", length=0)
        self.share_bars(self.axes(RIGHT_X, 140, RIGHT_W, 128), self.session.rows,
                        "All speakers: share of speaking time", 8)

    # ------------------------------------------------------------------------------------------------ panels
    def share_bars(self, ax, rows: list[Row], title: str, fontsize: int = 9) -> None:
        emotions, colors = self.emotions, self.colors
        sh = shares(rows, emotions)
        ys = list(range(len(emotions)))[::-1]
        vals = [sh[e][0] * 100 for e in emotions]
        ax.barh(ys, vals, color=[colors[e] for e in emotions], height=0.72)
        ax.set_yticks(ys, [_mpl(e, 16) for e in emotions], fontsize=fontsize if len(emotions) <= 8 else 7)
        ax.set_xlim(0, 118)
        ax.set_xticks([])
        for y, e, v in zip(ys, emotions, vals):
            if sh[e][1]:
                ax.text(v + 2, y, f"{v:.0f}% ({sh[e][1]})", va="center", fontsize=8, color="#333333")
        for side in ("top", "right", "bottom"):
            ax.spines[side].set_visible(False)
        ax.tick_params(axis="y", length=0)
        ax.set_title(_mpl(title), loc="left", fontsize=10, color="#333333")

    def speaker(self, i: int, spk: str) -> None:
        """Speaker ``i``'s band: a separator, the emotion timeline, valence/arousal and the emotion shares."""
        top = HEADER_PX + SPEAKER_PX * i
        self.fig.add_artist(self.mpl.Line2D([24 / self.wpx, 1 - 24 / self.wpx], [1 - (top + 6) / self.hpx] * 2,
                                            color="#dddddd", lw=1))
        rows = self.session.by_speaker[spk]
        self.emotion_strip(spk, rows, top)
        self.affect(rows, top, self.alerts.get(spk, []))
        self.share_bars(self.axes(RIGHT_X, top + 34, RIGHT_W, 192), rows, "Share of speaking time")

    def emotion_strip(self, spk: str, rows: list[Row], top: float) -> None:
        tl = self.axes(LEFT, top + 34, MAIN_W, 34)
        self.time_axis(tl, False)
        self.lane(tl, spk, 0, 1)
        if len(rows) <= MAX_SEGMENTS:  # a "?" on each unsure utterance wide enough to hold one
            wide = 12 * self.span / MAIN_W
            marks = [r for r in rows if is_unsure(r, self.unsure_below) and r.duration >= wide]
            for r in marks[:MAX_MARKS]:
                tl.text((r.start + r.end) / 2, 0.5, "?", ha="center", va="center", fontsize=10, fontweight="bold",
                        color="#222222")
        tl.set_ylim(0, 1)
        tl.set_yticks([])
        tl.spines["left"].set_visible(False)
        talk = math.fsum(r.duration for r in rows)
        title = (f"{_short(one_line(spk), 60)}  ·  {len(rows)} utterance{'s' if len(rows) != 1 else ''}, "
                 f"{clock(talk)} of speech")
        tl.set_title(_mpl(title), loc="left", fontsize=12, fontweight="bold", color="#222222")

    def affect(self, rows: list[Row], top: float, alerts: list[Alert]) -> None:
        """Valence and arousal: single utterances as dots, the sliding mean as lines; the speaker's alerts as shaded,
        labelled spans."""
        va_ax = self.axes(LEFT, top + 76, MAIN_W, 150)
        self.time_axis(va_ax, True)
        self.alert_spans(va_ax, alerts)
        raw, smooth = affect_series(rows, smoothing_window(self.span))
        va_ax.axhline(0, color="#bbbbbb", lw=0.8)
        va_ax.set_ylim(-1.05, 1.05)
        va_ax.set_yticks([-1, 0, 1], ["−1", "0", "+1"], fontsize=9)
        va_ax.grid(axis="x", color="#eeeeee", lw=0.8)
        if raw:
            t, v, a = zip(*thin_dots(raw))
            va_ax.scatter(t, v, s=9, color=VALENCE_COLOR, alpha=0.35, lw=0)
            va_ax.scatter(t, a, s=9, color=AROUSAL_COLOR, alpha=0.35, lw=0)
            ts, vs, as_ = zip(*bin_means(smooth, self.span))
            mk = dict(marker="o", ms=4) if len(ts) <= 3 else {}
            va_ax.plot(ts, vs, color=VALENCE_COLOR, lw=2, **mk)
            va_ax.plot(ts, as_, color=AROUSAL_COLOR, lw=2, ls="--", **mk)
        else:
            va_ax.text(self.span / 2, 0.5, "valence/arousal: not defined for these classes", ha="center", fontsize=9,
                       color="#777777")
        va_ax.set_ylabel("valence / arousal", fontsize=9, color="#555555")

    def alert_spans(self, ax, alerts: list[Alert]) -> None:
        """Each alert as a shaded span from its since to its until, with a line at its start and its kind written
        there (one height per kind, so that alerts of different kinds at one time stay readable)."""
        kinds = list(ALERT_COLORS)
        for a in alerts:
            color = ALERT_COLORS.get(a.kind, OTHER_ALERT_COLOR)
            until = a.until_s if a.until_s is not None else a.since_s
            ax.axvspan(a.since_s, max(until, a.since_s + self.span / 1000), color=color, alpha=0.13, lw=0, zorder=0)
            ax.axvline(a.since_s, color=color, lw=1.2, alpha=0.9, zorder=1)
            level = kinds.index(a.kind) if a.kind in kinds else len(kinds)
            ax.text(a.since_s + self.span / 400, 0.98 - 0.2 * level, _mpl(TITLES.get(a.kind, a.kind), 40), fontsize=8,
                    color=color, ha="left", va="top", fontweight="bold", clip_on=True, zorder=3,
                    bbox=dict(facecolor="white", alpha=0.75, edgecolor="none", pad=1))
