"""What the report computes from a session's rows: emotion colours and shares of speaking time, valence and arousal
(Russell's circumplex, :mod:`emomon.monitor.views.affect`), and the session's times.

Colours are fixed per emotion (:data:`EMOTION_COLORS`: angry red, disgust green, fear purple, happy gold, neutral
grey, sad blue, surprise cyan); classes outside that set get further fixed colours in class order. Other corpora's
spellings of the seven classes (:data:`ALIASES`) share their colours and circumplex positions.
"""

from __future__ import annotations

import datetime as dt
import math

from emomon.monitor.views.affect import CIRCUMPLEX, AffectTracker, valence_arousal
from emomon.monitor.views.report.reading import Row, Session

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


# ------------------------------------------------------------------------------------------------------ emotions
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


# ------------------------------------------------------------------------------------------------------- affect
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


# -------------------------------------------------------------------------------------------------------- times
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


def parse_iso(s: str) -> dt.datetime | None:
    """A row's wall-clock time (ISO 8601), or None when it is missing or unreadable."""
    try:
        return dt.datetime.fromisoformat(s) if s else None
    except ValueError:
        return None


def time_range(session: Session) -> str:
    starts = [t for t in (parse_iso(r.start_time) for r in session.rows) if t]
    ends = [t for t in (parse_iso(r.end_time) for r in session.rows) if t]
    if not starts:
        return "unknown"
    a, b = min(starts), max(ends or starts)
    tz = a.strftime("%z")
    tz = f" (UTC{tz[:3]}:{tz[3:]})" if tz else ""
    if a.date() == b.date():
        return f"{a:%Y-%m-%d %H:%M:%S} – {b:%H:%M:%S}{tz}"
    return f"{a:%Y-%m-%d %H:%M:%S} – {b:%Y-%m-%d %H:%M:%S}{tz}"
