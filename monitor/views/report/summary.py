"""What the report computes from a session's rows: emotion colours and shares of speaking time, valence and arousal
(Russell's circumplex, :mod:`emomon.monitor.views.affect`), and the session's times.

Colours are fixed per emotion (:data:`EMOTION_COLORS`: angry red, disgust green, fear purple, happy gold, neutral
grey, sad blue, surprise cyan); classes outside that set get further fixed colours in class order. Other corpora's
spellings of the seven classes (:data:`ALIASES`) share their colours and circumplex positions.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections import deque

from emomon.monitor.views.affect import CIRCUMPLEX
from emomon.monitor.views.alerts import FALLING, NEGATIVE, RISING, SILENCE
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
#: Each alert kind's colour (the figure's spans and bars, the page's alert table); a kind not listed gets the last.
ALERT_COLORS = {NEGATIVE: "#c62828", RISING: "#ef6c00", SILENCE: "#546e7a", FALLING: "#6a1b9a"}
OTHER_ALERT_COLOR = "#555555"


# ------------------------------------------------------------------------------------------------------ emotions
@functools.lru_cache(maxsize=4096)
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


def lighter(color: str, amount: float = 0.55) -> str:
    """``color`` ('#rrggbb') mixed with white: ``amount`` 0 is the colour, 1 white."""
    rgb = [int(color[i:i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(c + (255 - c) * amount):02x}" for c in rgb)


def is_unsure(row: Row, unsure_below: float) -> bool:
    """A reading the model was unsure of: its confidence is below ``unsure_below`` (``[dashboard] unsure_below``);
    a row without a confidence is not."""
    return row.confidence is not None and row.confidence < unsure_below


def shares(rows: list[Row], emotions: list[str]) -> dict[str, tuple[float, int]]:
    """emotion -> (share of speaking time, utterance count), in one pass over the rows."""
    time = dict.fromkeys(emotions, 0.0)
    count = dict.fromkeys(emotions, 0)
    total = 0.0
    for r in rows:
        d = r.end - r.start  # >= 0: the reader makes end >= start
        total += d
        if r.emotion in count:
            time[r.emotion] += d
            count[r.emotion] += 1
    if total > 0:
        return {e: (time[e] / total, count[e]) for e in emotions}
    return {e: (count[e] / len(rows) if rows else 0.0, count[e]) for e in emotions}


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


@functools.lru_cache(maxsize=256)
def _circumplex_columns(classes: tuple[str, ...]) -> tuple[tuple[int, float, float], ...]:
    """(column, valence, arousal) of each of ``classes`` on the circumplex (aliases folded in)."""
    return tuple((i, *CIRCUMPLEX[canonical(c)]) for i, c in enumerate(classes) if canonical(c) in CIRCUMPLEX)


def affect_of(row: Row) -> tuple[float, float] | None:
    """(valence, arousal) of one utterance, or None: ``valence_arousal(circumplex_probs(row))``, computed straight
    from the row's probability columns (it runs once or twice per row of a session of any size)."""
    values = row.values
    total = v = a = 0.0
    for i, cv, ca in _circumplex_columns(row.classes):
        p = values[i]
        if p is not None and p > 0:
            total += p
            v += p * cv
            a += p * ca
    if total > 0:
        return v / total, a / total
    return CIRCUMPLEX.get(canonical(row.emotion))


def smoothing_window(span_s: float) -> float:
    """Seconds of the sliding mean: a tenth of the session, between 10 s and 60 s."""
    return min(60.0, max(10.0, span_s / 10.0))


Point = tuple[float, float, float]


def affect_series(rows: list[Row], window_s: float) -> tuple[list[Point], list[Point]]:
    """(raw points, smoothed points) as (time, valence, arousal); time = the utterance's midpoint; the smoothed value
    is :class:`~emomon.monitor.views.affect.AffectTracker`'s duration-weighted mean over the last ``window_s``
    seconds (the same window, kept here as running sums, so that a window holding many utterances costs no more than
    one holding few)."""
    raw, smooth = [], []
    window: deque[tuple[float, float, float, float]] = deque()  # (time, weight, weight * valence, weight * arousal)
    w_sum = v_sum = a_sum = 0.0
    for r in rows:
        va = affect_of(r)
        if va is None:
            continue
        t = (r.start + r.end) / 2
        v, a = va
        raw.append((t, v, a))
        w = max(r.duration, 1e-3)  # as AffectTracker weighs
        window.append((t, w, w * v, w * a))
        w_sum, v_sum, a_sum = w_sum + w, v_sum + w * v, a_sum + w * a
        while window and window[0][0] < t - window_s:
            _, w0, v0, a0 = window.popleft()
            w_sum, v_sum, a_sum = w_sum - w0, v_sum - v0, a_sum - a0
        if len(window) == 1:  # start again from exact values: no rounding left over from points gone
            _, w_sum, v_sum, a_sum = window[0]
        smooth.append((t, v_sum / w_sum, a_sum / w_sum))
    return raw, smooth


# -------------------------------------------------------------------------------------------------------- times
def clock(seconds: float) -> str:
    """``mm:ss.s``, or ``h:mm:ss.s`` from an hour on (rounded to tenths first: 59.96 s is ``01:00.0``, not
    ``00:60.0``); negative is ``00:00.0``; ``?`` for a value that is not a finite number (or beyond 1e15 s)."""
    if not seconds <= 1e15:  # nan, inf
        return "?"
    m, t = divmod(round(seconds * 10) if seconds > 0 else 0, 600)
    h, m = divmod(m, 60)
    s, d = divmod(t, 10)
    return f"{h}:{m:02d}:{s:02d}.{d}" if h else f"{m:02d}:{s:02d}.{d}"


def tick_step(span_s: float, max_ticks: int = 12) -> float:
    """A clock-friendly tick spacing (1 s ... 1 h) giving at most ``max_ticks`` intervals over ``span_s``."""
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600):
        if span_s / step <= max_ticks:
            return float(step)
    return float(math.ceil(span_s / max_ticks / 3600) * 3600)


def parse_iso(s: str) -> dt.datetime | None:
    """A row's wall-clock time (ISO 8601) with its time zone (a time without one is local time), or None when it is
    missing, unreadable or cannot be placed in time (out of range once its offset is applied)."""
    if not s:
        return None
    try:
        t = dt.datetime.fromisoformat(s)
        t = t if t.tzinfo is not None and t.utcoffset() is not None else t.astimezone()
        if t.year in (dt.MINYEAR, dt.MAXYEAR):
            t.astimezone(dt.timezone.utc)  # comparable with the others (OverflowError at the ends of time)
        return t
    except (ValueError, OverflowError, OSError):
        return None


def time_range(session: Session) -> str:
    """The wall-clock span of the utterances, e.g. ``2026-11-22 14:30:05 – 15:20:41 (UTC+01:00)``, or ``unknown``."""
    if "time_range" not in session.memo:
        session.memo["time_range"] = _time_range(session)
    return session.memo["time_range"]


def _time_range(session: Session) -> str:
    a = min((t for t in (parse_iso(r.start_time) for r in session.rows) if t), default=None)
    if a is None:
        return "unknown"
    b = max((t for t in (parse_iso(r.end_time) for r in session.rows) if t), default=None)
    b = a if b is None or b < a else b
    try:
        b = b.astimezone(a.tzinfo)  # one zone: the first utterance's
    except (OverflowError, ValueError, OSError):
        pass
    minutes = round(a.utcoffset().total_seconds() / 60)  # type: ignore[union-attr]
    tz = f" (UTC{'-' if minutes < 0 else '+'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d})"
    if a.date() == b.date():
        return f"{a:%Y-%m-%d %H:%M:%S} – {b:%H:%M:%S}{tz}"
    return f"{a:%Y-%m-%d %H:%M:%S} – {b:%Y-%m-%d %H:%M:%S}{tz}"
