"""The report's PNG figure (matplotlib, Agg, no pyplot state).

The figure is always **1600 x (300 + 260 * n_speakers) pixels** (16 in wide at 100 dpi; 1600 x 300 when there are
no utterances). The top 300 px hold the title, the emotion colour legend, a "who spoke when" overview (one lane per
speaker) and the session's emotion shares; then each speaker gets a 260 px band with their emotion timeline (one
coloured segment per utterance, from its start to its end), their smoothed valence and arousal (Russell's circumplex,
:mod:`emomon.monitor.views.affect`; dots are single utterances, the lines the duration-weighted mean over a sliding
window) and their emotion shares (share of speaking time, utterance counts). Time axes are session time (mm:ss) and
are shared by all panels. Colours come from :func:`~emomon.monitor.views.report.summary.color_map`.
"""

from __future__ import annotations

import io
import types

from emomon.errors import OutputError
from emomon.monitor.views.report.reading import Row, Session
from emomon.monitor.views.report.summary import (affect_series, clock, color_map, shares, smoothing_window, tick_step,
                                                 time_range)

VALENCE_COLOR = "#222222"
AROUSAL_COLOR = "#d9480f"

WIDTH_PX, HEADER_PX, SPEAKER_PX, DPI = 1600, 300, 260, 100
#: Columns in pixels: time panels from LEFT, MAIN_W wide; share bars from RIGHT_X, RIGHT_W wide.
LEFT, MAIN_W, RIGHT_X, RIGHT_W = 150, 1050, 1290, 270


def figure_size_px(n_speakers: int) -> tuple[int, int]:
    """The PNG's pixel size: 1600 x (300 + 260 * n_speakers)."""
    return WIDTH_PX, HEADER_PX + SPEAKER_PX * max(0, n_speakers)


def render_png(session: Session) -> bytes:
    """The session figure as PNG bytes (see the module docstring for its layout)."""
    drawing = _Drawing(session, _matplotlib())
    drawing.title()
    if not session.rows:
        drawing.empty()
    else:
        drawing.subtitle_and_legend()
        drawing.overview()
        for i, spk in enumerate(session.speakers):
            drawing.speaker(i, spk)
    return drawing.png()


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


def _mpl(s: str) -> str:
    """Text for matplotlib without mathtext surprises ('$' in a speaker name)."""
    return s.replace("$", r"\$")


class _Drawing:
    """One figure being drawn: axes placed in pixels, a time axis shared by all panels, fixed emotion colours."""

    def __init__(self, session: Session, mpl: types.SimpleNamespace):
        self.session, self.mpl = session, mpl
        self.wpx, self.hpx = figure_size_px(len(session.speakers))
        self.fig = mpl.Figure(figsize=(self.wpx / DPI, self.hpx / DPI), dpi=DPI, facecolor="white")
        mpl.FigureCanvasAgg(self.fig)
        self.emotions = session.emotions
        self.colors = color_map(self.emotions)
        self.t_end = max((r.end for r in session.rows), default=0.0)
        self.span = max(self.t_end, 1.0)
        # whole seconds: ticks are >= 1 s apart
        self.fmt = mpl.FuncFormatter(lambda x, _pos: clock(x)[:-2] if x >= 0 else "")

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
        sid = ", ".join(session.session_ids) or session.path.stem
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
        self.fig.text(24 / self.wpx, 1 - 58 / self.hpx, _mpl(subtitle), fontsize=11, color="#444444", va="center")
        Line2D = self.mpl.Line2D
        handles = [self.mpl.Patch(facecolor=self.colors[e], edgecolor="none", label=_mpl(e)) for e in self.emotions]
        handles += [Line2D([], [], color=VALENCE_COLOR, lw=2, label="valence"),
                    Line2D([], [], color=AROUSAL_COLOR, lw=2, ls="--", label="arousal")]
        self.fig.legend(handles=handles, loc="center left", bbox_to_anchor=(110 / self.wpx, 1 - 90 / self.hpx),
                        ncol=len(handles), frameon=False, fontsize=11, handlelength=1.6, columnspacing=1.4)

    def overview(self) -> None:
        """Who spoke when (one lane per speaker), and the emotion shares of all speakers."""
        speakers, span = self.session.speakers, self.span
        lanes = self.axes(LEFT, 140, MAIN_W, 128)
        self.time_axis(lanes, True)
        n = len(speakers)
        for i, spk in enumerate(speakers):
            y = n - 1 - i
            for r in self.session.rows:
                if r.speaker == spk:
                    lanes.broken_barh([(r.start, max(r.duration, span / 2000))], (y + 0.15, 0.7),
                                      facecolors=self.colors[r.emotion], edgecolors="none")
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
        ax.set_yticks(ys, [_mpl(e) for e in emotions], fontsize=fontsize if len(emotions) <= 8 else 7)
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
        rows = [r for r in self.session.rows if r.speaker == spk]
        self.emotion_strip(spk, rows, top)
        self.affect(rows, top)
        self.share_bars(self.axes(RIGHT_X, top + 34, RIGHT_W, 192), rows, "Share of speaking time")

    def emotion_strip(self, spk: str, rows: list[Row], top: float) -> None:
        tl = self.axes(LEFT, top + 34, MAIN_W, 34)
        self.time_axis(tl, False)
        for r in rows:
            tl.broken_barh([(r.start, max(r.duration, self.span / 2000))], (0, 1), facecolors=self.colors[r.emotion],
                           edgecolors="none")
        tl.set_ylim(0, 1)
        tl.set_yticks([])
        tl.spines["left"].set_visible(False)
        talk = sum(r.duration for r in rows)
        tl.set_title(_mpl(f"{spk}  ·  {len(rows)} utterance{'s' if len(rows) != 1 else ''}, {clock(talk)} of speech"),
                     loc="left", fontsize=12, fontweight="bold", color="#222222")

    def affect(self, rows: list[Row], top: float) -> None:
        """Valence and arousal: single utterances as dots, the sliding mean as lines."""
        va_ax = self.axes(LEFT, top + 76, MAIN_W, 150)
        self.time_axis(va_ax, True)
        raw, smooth = affect_series(rows, smoothing_window(self.span))
        va_ax.axhline(0, color="#bbbbbb", lw=0.8)
        va_ax.set_ylim(-1.05, 1.05)
        va_ax.set_yticks([-1, 0, 1], ["−1", "0", "+1"], fontsize=9)
        va_ax.grid(axis="x", color="#eeeeee", lw=0.8)
        if raw:
            t, v, a = zip(*raw)
            va_ax.scatter(t, v, s=9, color=VALENCE_COLOR, alpha=0.35, lw=0)
            va_ax.scatter(t, a, s=9, color=AROUSAL_COLOR, alpha=0.35, lw=0)
            ts, vs, as_ = zip(*smooth)
            mk = dict(marker="o", ms=4) if len(ts) <= 3 else {}
            va_ax.plot(ts, vs, color=VALENCE_COLOR, lw=2, **mk)
            va_ax.plot(ts, as_, color=AROUSAL_COLOR, lw=2, ls="--", **mk)
        else:
            va_ax.text(self.span / 2, 0.5, "valence/arousal: not defined for these classes", ha="center", fontsize=9,
                       color="#777777")
        va_ax.set_ylabel("valence / arousal", fontsize=9, color="#555555")
