"""Session report: a self-contained HTML page and a PNG figure from a session CSV written by the monitor.

``write_report(csv_path)`` writes ``<stem>.html`` and ``<stem>.png`` next to the CSV (or into ``out_dir``), both
user-only (0600), replacing an earlier report of the same CSV atomically. The HTML has inline CSS and the PNG
embedded as base64: no external assets, no JavaScript; every piece of text from the CSV is HTML-escaped.

The figure (matplotlib, Agg, no pyplot state) is always **1600 x (300 + 260 * n_speakers) pixels** (16 in wide at
100 dpi; 1600 x 300 when there are no utterances). The top 300 px hold the title, the emotion colour legend, a
"who spoke when" overview (one lane per speaker) and the session's emotion shares; then each speaker gets a 260 px
band with their emotion timeline (one coloured segment per utterance, from its start to its end), their smoothed
valence and arousal (Russell's circumplex, :mod:`emomon.monitor.affect`; dots are single utterances, the lines the
duration-weighted mean over a sliding window) and their emotion shares (share of speaking time, utterance counts).
Time axes are session time (mm:ss) and are shared by all panels.

Colours are fixed per emotion (:data:`EMOTION_COLORS`: angry red, disgust green, fear purple, happy gold, neutral
grey, sad blue, surprise cyan); classes outside that set get further fixed colours in class order.

Robustness: the CSV may come from a killed session. A last row cut short (no final newline) has its last, possibly
cut, field dropped and is kept only when what remains is a usable row; rows with missing trailing fields are kept;
unknown extra columns are ignored; the class set is read from the ``p_*`` columns; a header-only file gives a report
that says there were no utterances. A file that is not a session CSV (binary, wrong header, empty) raises
:class:`~emomon.errors.InputError`; a folder that cannot be written raises :class:`~emomon.errors.OutputError`.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import html
import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from emomon.errors import InputError, OutputError
from emomon.monitor.affect import CIRCUMPLEX, AffectTracker, valence_arousal
from emomon.monitor.sinks import make_private_folder, output_error

#: Columns every session CSV has; a file without them is not one.
REQUIRED = ("session_id", "speaker", "start_s", "end_s", "emotion")

EMOTION_COLORS: dict[str, str] = {
    "angry": "#d62728",
    "disgust": "#2ca02c",
    "fear": "#9b4dca",
    "happy": "#f0b400",
    "neutral": "#9e9e9e",
    "sad": "#1f6fd1",
    "surprise": "#17becf",
}
#: Other spellings of the seven classes (other corpora's label sets), for colours and the circumplex.
ALIASES = {
    "anger": "angry", "angry": "angry", "mad": "angry",
    "disgusted": "disgust", "contempt": "disgust",
    "fearful": "fear", "scared": "fear", "afraid": "fear",
    "happiness": "happy", "joy": "happy", "excited": "happy", "pleasant_surprise": "surprise", "ps": "surprise",
    "calm": "neutral", "neu": "neutral",
    "sadness": "sad",
    "surprised": "surprise",
}
EXTRA_COLORS = ("#8c564b", "#e377c2", "#bcbd22", "#ff7f0e", "#393b79", "#637939", "#843c39", "#7b4173", "#3182bd")
VALENCE_COLOR = "#222222"
AROUSAL_COLOR = "#d9480f"

WIDTH_PX, HEADER_PX, SPEAKER_PX, DPI = 1600, 300, 260, 100


def figure_size_px(n_speakers: int) -> tuple[int, int]:
    """The PNG's pixel size: 1600 x (300 + 260 * n_speakers)."""
    return WIDTH_PX, HEADER_PX + SPEAKER_PX * max(0, n_speakers)


# --------------------------------------------------------------------------------------------------------- reading
@dataclass
class Row:
    session_id: str
    speaker: str
    start: float
    end: float
    start_time: str
    end_time: str
    transcript: str
    emotion: str
    confidence: float | None
    probs: dict[str, float]
    asr_note: str = ""
    language: str = ""

    @property
    def duration(self) -> float:
        return max(0.0, self.end - self.start)


@dataclass
class Session:
    path: Path
    classes: list[str]
    rows: list[Row]
    notes: list[str] = field(default_factory=list)

    @property
    def speakers(self) -> list[str]:
        return list(dict.fromkeys(r.speaker for r in self.rows))

    @property
    def session_ids(self) -> list[str]:
        return [s for s in dict.fromkeys(r.session_id for r in self.rows) if s]

    @property
    def emotions(self) -> list[str]:
        """The class columns' order, then any other emotion seen, in order of appearance."""
        return list(dict.fromkeys([*self.classes, *(r.emotion for r in self.rows)]))


def _float(s: str | None) -> float | None:
    try:
        v = float(s)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _decode(path: Path, data: bytes) -> str:
    if b"\x00" in data:
        raise InputError(f"{path} is not a session CSV (it holds binary data)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if exc.start >= len(data) - 3:  # a multi-byte character cut by a killed session
            return data[: exc.start].decode("utf-8-sig")
        raise InputError(f"{path} is not a session CSV (not UTF-8 text)") from None


def read_session(csv_path: Path) -> Session:
    """Parse a session CSV tolerantly (see the module docstring); raises InputError for a file that is not one."""
    path = Path(csv_path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a directory, not a session CSV") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    text = _decode(path, data)
    if not text.strip():
        raise InputError(f"{path} is empty (not a session CSV: no header)")

    records: list[list[str]] = []
    truncated = not text.endswith(("\n", "\r"))
    try:
        for rec in csv.reader(io.StringIO(text, newline="")):
            records.append(rec)
    except csv.Error:  # e.g. a NUL or a broken quote: keep what parsed, treat the rest as cut off
        truncated = True
    if not records:
        raise InputError(f"{path} is not a session CSV (no header)")
    header = [h.strip() for h in records[0]]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise InputError(f"{path} is not an emomon session CSV (its header lacks {', '.join(missing)})")
    if truncated and len(records) == 1:
        raise InputError(f"{path} is not a complete session CSV (the header itself is cut off)")
    classes = [h[2:] for h in header if h.startswith("p_") and len(h) > 2]

    rows: list[Row] = []
    notes: list[str] = []
    bad = 0
    body = records[1:]
    for i, rec in enumerate(body):
        if not any(f.strip() for f in rec):
            continue
        partial = truncated and i == len(body) - 1
        if partial:
            rec = rec[:-1]  # the last field may have been cut mid-value
        rec = rec[: len(header)]
        d = dict(zip(header, rec))
        if (d.get("asr_note") or "").strip() == "event":  # input lost or back, how the session ended: not an utterance
            when = (d.get("start_time") or "").strip()
            notes.append(f"{when + ': ' if when else ''}{(d.get('transcript') or '').strip()}")
            continue
        row = _row(d, classes)
        if row is None:
            if partial:
                notes.append("The last row was cut off (the session was probably interrupted) and was skipped.")
            else:
                bad += 1
            continue
        if partial:
            notes.append("The last row was cut off (the session was probably interrupted); what was complete of it "
                         "is shown.")
        rows.append(row)
    if bad:
        notes.append(f"{bad} unreadable row{'s' if bad != 1 else ''} skipped.")
    rows.sort(key=lambda r: (r.start, r.end))
    return Session(path, classes, rows, notes)


def _row(d: dict[str, str], classes: list[str]) -> Row | None:
    start, end, emotion = _float(d.get("start_s")), _float(d.get("end_s")), (d.get("emotion") or "").strip()
    if start is None or end is None or not emotion:
        return None
    probs = {}
    for c in classes:
        p = _float(d.get(f"p_{c}"))
        if p is not None:
            probs[c] = p
    conf = _float(d.get("confidence"))
    return Row(
        session_id=(d.get("session_id") or "").strip(),
        speaker=(d.get("speaker") or "").strip() or "?",
        start=start, end=max(end, start),
        start_time=(d.get("start_time") or "").strip(), end_time=(d.get("end_time") or "").strip(),
        transcript=d.get("transcript") or "", emotion=emotion, confidence=conf, probs=probs,
        asr_note=(d.get("asr_note") or "").strip(), language=(d.get("language") or "").strip(),
    )


# ----------------------------------------------------------------------------------------------------- analysis
def canonical(emotion: str) -> str:
    e = emotion.strip().lower()
    return ALIASES.get(e, e)


def color_map(emotions: list[str]) -> dict[str, str]:
    out, k = {}, 0
    for e in emotions:
        c = EMOTION_COLORS.get(canonical(e))
        if c is None:
            c = EXTRA_COLORS[k % len(EXTRA_COLORS)]
            k += 1
        out[e] = c
    return out


def circumplex_probs(row: Row) -> dict[str, float] | None:
    """The row's probabilities over the circumplex classes (aliases folded in), else its label as a certainty;
    None when neither is on the circumplex."""
    probs: dict[str, float] = {}
    for c, p in row.probs.items():
        k = canonical(c)
        if k in CIRCUMPLEX and p > 0:
            probs[k] = probs.get(k, 0.0) + p
    if not probs:
        k = canonical(row.emotion)
        if k not in CIRCUMPLEX:
            return None
        probs = {k: 1.0}
    return probs


def affect_of(row: Row) -> tuple[float, float] | None:
    """(valence, arousal) of one utterance, or None (see :func:`circumplex_probs`)."""
    probs = circumplex_probs(row)
    return valence_arousal(probs) if probs else None


def smoothing_window(span_s: float) -> float:
    """Seconds of the sliding mean: a tenth of the session, between 10 s and 60 s."""
    return min(60.0, max(10.0, span_s / 10.0))


Point = tuple[float, float, float]


def affect_series(rows: list[Row], window_s: float) -> tuple[list[Point], list[Point]]:
    """(raw points, smoothed points) as (time, valence, arousal); time = the utterance's midpoint; the smoothed value
    is :class:`AffectTracker`'s duration-weighted mean over the last ``window_s`` seconds."""
    raw, smooth = [], []
    tracker = AffectTracker(window_s=window_s)
    for r in rows:
        probs = circumplex_probs(r)
        if probs is None:
            continue
        t = (r.start + r.end) / 2
        raw.append((t, *valence_arousal(probs)))
        tracker.add(t, probs, r.duration)
        v, a, _ = tracker.smoothed()
        smooth.append((t, v, a))
    return raw, smooth


def shares(rows: list[Row], emotions: list[str]) -> dict[str, tuple[float, int]]:
    """emotion -> (share of speaking time, utterance count)."""
    total = sum(r.duration for r in rows) or 0.0
    out = {}
    for e in emotions:
        sel = [r for r in rows if r.emotion == e]
        if total > 0:
            share = sum(r.duration for r in sel) / total
        else:
            share = len(sel) / len(rows) if rows else 0.0
        out[e] = (share, len(sel))
    return out


def clock(seconds: float) -> str:
    seconds = max(0.0, seconds)
    m, s = divmod(seconds, 60)
    h, m = divmod(int(m), 60)
    return f"{h:d}:{m:02d}:{s:04.1f}" if h else f"{m:02d}:{s:04.1f}"


def tick_step(span_s: float, max_ticks: int = 12) -> float:
    """A clock-friendly tick spacing (1 s ... 1 h) giving at most ``max_ticks`` intervals over ``span_s``."""
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600):
        if span_s / step <= max_ticks:
            return float(step)
    return float(math.ceil(span_s / max_ticks / 3600) * 3600)


def _parse_iso(s: str) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(s) if s else None
    except ValueError:
        return None


def time_range(session: Session) -> str:
    starts = [t for t in (_parse_iso(r.start_time) for r in session.rows) if t]
    ends = [t for t in (_parse_iso(r.end_time) for r in session.rows) if t]
    if not starts:
        return "unknown"
    a, b = min(starts), max(ends or starts)
    tz = a.strftime("%z")
    tz = f" (UTC{tz[:3]}:{tz[3:]})" if tz else ""
    if a.date() == b.date():
        return f"{a:%Y-%m-%d %H:%M:%S} – {b:%H:%M:%S}{tz}"
    return f"{a:%Y-%m-%d %H:%M:%S} – {b:%Y-%m-%d %H:%M:%S}{tz}"


# ------------------------------------------------------------------------------------------------------- figure
def _short(s: str, n: int = 18) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def _mpl(s: str) -> str:
    """Text for matplotlib without mathtext surprises ('$' in a speaker name)."""
    return s.replace("$", r"\$")


def render_png(session: Session) -> bytes:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D
        from matplotlib.patches import Patch
        from matplotlib.ticker import FuncFormatter, MultipleLocator
    except ImportError:  # pragma: no cover - depends on the install
        raise OutputError("the session report needs matplotlib (pip install matplotlib)") from None

    speakers = session.speakers
    wpx, hpx = figure_size_px(len(speakers))
    fig = Figure(figsize=(wpx / DPI, hpx / DPI), dpi=DPI, facecolor="white")
    FigureCanvasAgg(fig)

    def axes(x0: float, y_top: float, w: float, h: float):
        """An axes placed in pixels from the top-left corner."""
        return fig.add_axes((x0 / wpx, 1 - (y_top + h) / hpx, w / wpx, h / hpx))

    emotions = session.emotions
    colors = color_map(emotions)
    sid = ", ".join(session.session_ids) or session.path.stem
    fig.text(24 / wpx, 1 - 30 / hpx, _mpl(f"emomon session {sid}"), fontsize=17, fontweight="bold", va="center")
    if not session.rows:
        fig.text(0.5, 0.45, "No utterances in this session", fontsize=20, color="#666666", ha="center", va="center")
        fig.text(24 / wpx, 1 - 58 / hpx, _mpl(session.path.name), fontsize=10, color="#555555", va="center")
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI, facecolor="white")
        return buf.getvalue()

    t_end = max(r.end for r in session.rows)
    span = max(t_end, 1.0)
    when = time_range(session)
    when = "date unknown" if when == "unknown" else when
    subtitle = (f"{when}   ·   {clock(t_end)} long   ·   {len(session.rows)} utterances   ·   "
                f"{len(speakers)} speaker{'s' if len(speakers) != 1 else ''}")
    fig.text(24 / wpx, 1 - 58 / hpx, _mpl(subtitle), fontsize=11, color="#444444", va="center")
    handles = [Patch(facecolor=colors[e], edgecolor="none", label=_mpl(e)) for e in emotions]
    handles += [Line2D([], [], color=VALENCE_COLOR, lw=2, label="valence"),
                Line2D([], [], color=AROUSAL_COLOR, lw=2, ls="--", label="arousal")]
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(110 / wpx, 1 - 90 / hpx), ncol=len(handles),
               frameon=False, fontsize=11, handlelength=1.6, columnspacing=1.4)

    fmt = FuncFormatter(lambda x, _pos: clock(x)[:-2] if x >= 0 else "")  # whole seconds: ticks are >= 1 s apart
    left, main_w, right_x, right_w = 150, 1050, 1290, 270

    def time_axis(ax, show_labels: bool):
        ax.set_xlim(0, span)
        ax.xaxis.set_major_formatter(fmt)
        ax.xaxis.set_major_locator(MultipleLocator(tick_step(span)))
        ax.tick_params(axis="x", labelbottom=show_labels, labelsize=9)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)

    # overview: one lane per speaker
    lanes = axes(left, 140, main_w, 128)
    time_axis(lanes, True)
    n = len(speakers)
    for i, spk in enumerate(speakers):
        y = n - 1 - i
        for r in session.rows:
            if r.speaker == spk:
                lanes.broken_barh([(r.start, max(r.duration, span / 2000))], (y + 0.15, 0.7),
                                  facecolors=colors[r.emotion], edgecolors="none")
    lanes.set_ylim(0, n)
    lanes.set_yticks([n - 1 - i + 0.5 for i in range(n)], [_mpl(_short(s)) for s in speakers],
                     fontsize=10 if n <= 4 else 8)
    lanes.tick_params(axis="y", length=0)

    def share_bars(ax, rows: list[Row], title: str, fontsize: int = 9):
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

    share_bars(axes(right_x, 140, right_w, 128), session.rows, "All speakers: share of speaking time", 8)

    window = smoothing_window(span)
    for i, spk in enumerate(speakers):
        top = HEADER_PX + SPEAKER_PX * i
        fig.add_artist(Line2D([24 / wpx, 1 - 24 / wpx], [1 - (top + 6) / hpx] * 2, color="#dddddd", lw=1))
        rows = [r for r in session.rows if r.speaker == spk]
        tl = axes(left, top + 34, main_w, 34)
        time_axis(tl, False)
        for r in rows:
            tl.broken_barh([(r.start, max(r.duration, span / 2000))], (0, 1), facecolors=colors[r.emotion],
                           edgecolors="none")
        tl.set_ylim(0, 1)
        tl.set_yticks([])
        tl.spines["left"].set_visible(False)
        talk = sum(r.duration for r in rows)
        tl.set_title(_mpl(f"{spk}  ·  {len(rows)} utterance{'s' if len(rows) != 1 else ''}, {clock(talk)} of speech"),
                     loc="left", fontsize=12, fontweight="bold", color="#222222")
        va_ax = axes(left, top + 76, main_w, 150)
        time_axis(va_ax, True)
        raw, smooth = affect_series(rows, window)
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
            va_ax.text(span / 2, 0.5, "valence/arousal: not defined for these classes", ha="center", fontsize=9,
                       color="#777777")
        va_ax.set_ylabel("valence / arousal", fontsize=9, color="#555555")
        share_bars(axes(right_x, top + 34, right_w, 192), rows, "Share of speaking time")

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, facecolor="white")
    return buf.getvalue()


# --------------------------------------------------------------------------------------------------------- HTML
CSS = """
body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;color:#222;margin:0;
background:#f6f7f9}
main{max-width:1640px;margin:0 auto;padding:24px}
h1{font-size:24px;margin:0 0 12px}h2{font-size:19px;margin:28px 0 10px}h3{font-size:16px;margin:0 0 8px}
table{border-collapse:collapse}
.meta td{padding:2px 16px 2px 0}.meta td:first-child{color:#666}
.card{background:#fff;border:1px solid #e2e4e8;border-radius:8px;padding:16px;margin:12px 0}
.note{background:#fff7e0;border:1px solid #f0d68a;border-radius:6px;padding:8px 12px;margin:8px 0}
.empty{font-size:18px;color:#666}
img.fig{width:100%;height:auto;display:block}
.chip{display:inline-block;padding:1px 8px;border-radius:10px;color:#111;font-size:13px;white-space:nowrap}
.speakers{display:flex;flex-wrap:wrap;gap:12px}.speakers .card{flex:1 1 300px;margin:0}
.shares span{margin:0 6px 4px 0}
.tr{width:100%;background:#fff;border:1px solid #e2e4e8}
.tr th{text-align:left;background:#eef0f3;padding:6px 10px;font-weight:600;position:sticky;top:0}
.tr td{padding:5px 10px;border-top:1px solid #eceef1;vertical-align:top}
.tr td.t{white-space:nowrap;color:#555;font-variant-numeric:tabular-nums}
.tr td.c{text-align:right;font-variant-numeric:tabular-nums}
.muted{color:#888;font-style:italic}
"""


def _ink(color: str) -> str:
    """Black or white text, whichever reads better on ``color`` ('#rrggbb')."""
    r, g, b = (int(color[i:i + 2], 16) / 255 for i in (1, 3, 5))
    return "#111" if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.45 else "#fff"


def _chip(emotion: str, color: str) -> str:
    return f'<span class="chip" style="background:{color};color:{_ink(color)}">{html.escape(emotion)}</span>'


def render_html(session: Session, png: bytes, png_size: tuple[int, int]) -> str:
    e = html.escape
    emotions = session.emotions
    colors = color_map(emotions)
    speakers = session.speakers
    sid = ", ".join(session.session_ids) or session.path.stem
    t_end = max((r.end for r in session.rows), default=0.0)
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>emomon session {e(sid)}</title><style>{CSS}</style></head><body><main>",
        f"<h1>emomon session <code>{e(sid)}</code></h1>",
        '<table class="meta">',
        f"<tr><td>Session</td><td>{e(sid)}</td></tr>",
        f"<tr><td>Date / time</td><td>{e(time_range(session))}</td></tr>",
        f"<tr><td>Duration</td><td>{e(clock(t_end))} (session time to the end of the last utterance)</td></tr>",
        f"<tr><td>Utterances</td><td>{len(session.rows)}</td></tr>",
        f"<tr><td>Speakers</td><td>{len(speakers)}{': ' + e(', '.join(speakers)) if speakers else ''}</td></tr>",
        f"<tr><td>Source</td><td>{e(session.path.name)}</td></tr>",
        "</table>",
    ]
    for note in session.notes:
        out.append(f'<div class="note">{e(note)}</div>')
    if not session.rows:
        out.append('<div class="card empty">No utterances were recorded in this session (the CSV has no rows).</div>')
    b64 = base64.b64encode(png).decode("ascii")
    alt = "Emotion timeline, valence and arousal, and emotion shares per speaker"
    out.append(f'<div class="card"><img class="fig" width="{png_size[0]}" height="{png_size[1]}" alt="{e(alt)}" '
               f'src="data:image/png;base64,{b64}"></div>')
    if session.rows:
        out.append("<h2>Speakers</h2><div class=\"speakers\">")
        for spk in speakers:
            rows = [r for r in session.rows if r.speaker == spk]
            sh = shares(rows, emotions)
            vas = [va for va in (affect_of(r) for r in rows) if va]
            chips = " ".join(
                f'<span>{_chip(em, colors[em])} {sh[em][0] * 100:.0f}% ({sh[em][1]})</span>'
                for em in sorted(emotions, key=lambda x: -sh[x][0]) if sh[em][1])
            mean = ""
            if vas:
                mv = sum(v for v, _ in vas) / len(vas)
                ma = sum(a for _, a in vas) / len(vas)
                mean = f"<div>Mean valence {mv:+.2f}, arousal {ma:+.2f}</div>"
            talk = sum(r.duration for r in rows)
            out.append(f'<div class="card"><h3>{e(spk)}</h3><div>{len(rows)} utterances, {e(clock(talk))} of speech'
                       f"</div>{mean}<div class=\"shares\">Share of speaking time: {chips}</div></div>")
        out.append("</div>")
        out.append("<h2>Transcript</h2>")
        out.append('<table class="tr"><thead><tr><th>Time</th><th>Speaker</th><th>Emotion</th><th>Confidence</th>'
                   "<th>Transcript</th></tr></thead><tbody>")
        for r in session.rows:
            wall = _parse_iso(r.start_time)
            when = f"{clock(r.start)}–{clock(r.end)}" + (f"<br><small>{wall:%H:%M:%S}</small>" if wall else "")
            conf = f"{r.confidence:.2f}" if r.confidence is not None else "–"
            if r.transcript.strip():
                text = e(r.transcript)
            else:
                text = f'<span class="muted">({e(r.asr_note or "no transcript")})</span>'
            out.append(f'<tr><td class="t">{when}</td><td>{e(r.speaker)}</td><td>{_chip(r.emotion, colors[r.emotion])}'
                       f'</td><td class="c">{conf}</td><td>{text}</td></tr>')
        out.append("</tbody></table>")
    out.append(f'<p class="muted">Made by emomon from {e(session.path.name)}. Valence and arousal are a display aid '
               "derived from the class probabilities (Russell's circumplex), not a calibrated measurement.</p>")
    out.append("</main></body></html>\n")
    return "\n".join(out)


# -------------------------------------------------------------------------------------------------------- writing
def _write_private(path: Path, data: bytes) -> None:
    """Write ``path`` user-only (0600), replacing an earlier file atomically (temp file + rename)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:
        raise output_error(path, exc, "create") from None
    try:
        try:
            os.fchmod(fd, 0o600)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise output_error(path, exc, "write") from None


def write_report(csv_path: Path, out_dir: Path | None = None) -> tuple[Path, Path]:
    """Write ``<stem>.html`` and ``<stem>.png`` for a session CSV (next to it, or in ``out_dir``); returns
    (html_path, png_path)."""
    csv_path = Path(csv_path)
    session = read_session(csv_path)
    folder = Path(out_dir) if out_dir is not None else csv_path.parent
    if not folder.exists():
        make_private_folder(folder)
    elif not folder.is_dir():
        raise OutputError(f"cannot write the report into {folder}: it is not a folder")
    html_path = folder / f"{csv_path.stem}.html"
    png_path = folder / f"{csv_path.stem}.png"
    png = render_png(session)
    page = render_html(session, png, figure_size_px(len(session.speakers)))
    _write_private(png_path, png)
    _write_private(html_path, page.encode("utf-8"))
    return html_path, png_path
