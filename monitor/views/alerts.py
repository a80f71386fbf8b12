"""Alerts that last: what one speaker's stream of results shows over time, decided in one place.

:class:`AlertTracker` is fed a session's :class:`~emomon.records.Result` records one at a time, in order (the session
does it in ``Session._deliver``; its clock is session time, the utterances' ends, so a replay gives the same alerts
every time). Each alert is an :class:`~emomon.records.Alert`: ``speaker``, ``kind``, ``since_s``, ``until_s``,
``detail``. While one lasts, :meth:`AlertTracker.active` lists it (``until_s`` None: what the dashboard shows); once it
has ended, :meth:`AlertTracker.add` (or :meth:`AlertTracker.close`, at the session's end) returns it, and the session
hands it to every sink (``sink.alert(a)``): the CSV writes it as an alert row, which ``emomon report`` reads back
as it is, never deciding again.

The kinds (``[alerts] kinds``), each on the speaker's own readings (valence, arousal and the negative-affect share of
:mod:`emomon.monitor.views.affect`, smoothed by :class:`~emomon.monitor.views.affect.AffectTracker` over
``[dashboard] va_window_s``, as the dashboard shows them):

* ``negative-affect``: the smoothed negative share stays at or above ``[dashboard] alert_threshold`` for
  ``alert_seconds``; since = the first utterance of the high stretch, until = the first utterance below it (or a gap
  in the speaker's speech longer than the window: until = their last utterance before it).
* ``rising-arousal`` (escalation): the smoothed arousal rises by more than ``rise`` above its lowest point of the
  last ``rise_minutes``; since = that lowest point, until = the first utterance back below low + rise/2.
* ``silence``: a speaker with at least ``silence_after`` utterances (since the start, or since their last silence)
  says nothing for ``silence_seconds`` while the session goes on; since = the end of their last utterance, until =
  the start of their next one (or the session's end). It starts when another speaker's utterance (or the end) shows
  the gap; if the speaker's next utterance turns out to have started within ``silence_seconds`` (overlapping speech
  on another input, reported first), the silence was shorter and is dropped, never written.
* ``falling-valence``: the least-squares line through the speaker's utterance valences (at utterance ends) falls by
  at least ``falling_drop`` from their first to their latest utterance, over at least ``falling_min_utterances``
  spanning ``falling_min_minutes``; since = the first utterance of the trend, until = the first utterance at which the
  fall is under half of that (the trend then starts again from there) or the speaker's last utterance.

At the session's end (:meth:`AlertTracker.close`) every alert still going on ends: at the speaker's last utterance,
or for a silence, at the session's end. All times are rounded to the millisecond, as the CSV writes them.

The tracker is thread-safe: the session's sink thread feeds it while the dashboard's paint thread reads
:meth:`AlertTracker.active`.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

from emomon.config import ALERT_KINDS, AlertsConfig, DashboardConfig
from emomon.monitor.views.affect import AffectTracker, valence_arousal
from emomon.records import Alert, Result

NEGATIVE, RISING, SILENCE, FALLING = ALERT_KINDS
#: What each kind is called in a sentence (dashboard, report).
TITLES = {NEGATIVE: "negative affect", RISING: "rising arousal", SILENCE: "silence", FALLING: "falling valence"}


def span(seconds: float) -> str:
    """``45s``, ``2m10s``, ``1h05m``."""
    s = int(max(0.0, seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def _ms(t: float) -> float:
    return float(round(t, 3))


@dataclass
class _Open:
    """An alert going on: its start and what its detail will say."""

    since: float
    #: kind-specific readings: the level it rose from, the peak, the largest fall ...
    data: dict = field(default_factory=dict)


@dataclass
class _Fit:
    """Running least-squares sums of (time, valence), time relative to the first point."""

    t0: float = 0.0
    first_start: float = 0.0
    n: int = 0
    st: float = 0.0
    sv: float = 0.0
    stt: float = 0.0
    stv: float = 0.0
    last: float = 0.0

    def add(self, t: float, v: float, start: float) -> None:
        if self.n == 0:
            self.t0, self.first_start = t, start
        x = t - self.t0
        self.n += 1
        self.st += x
        self.sv += v
        self.stt += x * x
        self.stv += x * v
        self.last = t

    @property
    def minutes(self) -> float:
        return (self.last - self.t0) / 60.0

    def slope(self) -> float | None:
        """Valence per second, or None with fewer than two distinct times."""
        den = self.n * self.stt - self.st * self.st
        if self.n < 2 or den <= 1e-12 * max(1.0, self.n * self.stt):
            return None
        return (self.n * self.stv - self.st * self.sv) / den


@dataclass
class _Speaker:
    name: str
    affect: AffectTracker
    last_end: float | None = None
    talking: int = 0  # utterances since the start or the last silence
    high_since: float | None = None
    arousal: deque = field(default_factory=deque)  # (utterance end, smoothed arousal) over rise_minutes
    fit: _Fit = field(default_factory=_Fit)
    open: dict[str, _Open] = field(default_factory=dict)


class AlertTracker:
    """Decides every alert of a session from its results, fed in order (see the module docstring).

    ``add(result)`` returns the alerts that ended with it; ``tick(now)`` advances the session clock without a result
    (a silence can start); ``close(end_s)`` ends the session and returns every alert still going on, ended;
    ``active()`` lists the alerts going on (``until_s`` None); ``ended`` holds every ended alert, in the order returned.
    """

    def __init__(self, alerts: AlertsConfig | None = None, dashboard: DashboardConfig | None = None):
        self.cfg = alerts or AlertsConfig()
        dash = dashboard or DashboardConfig()
        self.window_s = float(dash.va_window_s)
        self.negative_share = float(dash.alert_threshold)
        self.negative_s = float(dash.alert_seconds)
        self.kinds = frozenset(self.cfg.kinds)
        self.speakers: dict[str, _Speaker] = {}
        self.clock = 0.0
        self.ended: list[Alert] = []
        self.closed = False
        self._lock = threading.Lock()

    # --------------------------------------------------------------------------------------------------- feeding
    def add(self, result: Result) -> list[Alert]:
        """Take one result (in session order); the alerts that ended with it."""
        u = result.utterance
        out: list[Alert] = []
        with self._lock:
            if self.closed:
                return out
            sp = self.speakers.get(u.speaker)
            if sp is None:
                sp = self.speakers[u.speaker] = _Speaker(u.speaker, AffectTracker(self.window_s))
            gap_from = sp.last_end
            self._silence_ends(sp, u.start, out)
            sp.talking += 1
            sp.last_end = u.end if sp.last_end is None else max(sp.last_end, u.end)
            if self.kinds & {NEGATIVE, RISING, FALLING}:
                sp.affect.add(u.end, result.probs, u.duration)
                valence, arousal, negative = sp.affect.smoothed()
                # the speaker's window emptied since their last utterance: a new stretch of readings begins
                fresh = gap_from is not None and u.end - self.window_s > gap_from
                if NEGATIVE in self.kinds:
                    self._negative(sp, u.end, negative, fresh, gap_from, out)
                if RISING in self.kinds:
                    self._rising(sp, u.end, arousal, out)
                if FALLING in self.kinds:
                    self._falling(sp, u.end, u.start, valence_arousal(result.probs)[0], out)
            self._tick(u.end)
            self.ended.extend(out)
        return out

    def tick(self, now: float) -> None:
        """Advance the session clock to ``now`` (session seconds) without a result: a speaker's silence can start."""
        with self._lock:
            if not self.closed:
                self._tick(now)

    def close(self, end_s: float | None = None) -> list[Alert]:
        """The session ended at ``end_s`` (session seconds; None: the latest utterance end): every alert going on ends
        (a silence at the end, the others at the speaker's last utterance) and is returned, in order of start."""
        out: list[Alert] = []
        with self._lock:
            if self.closed:
                return out
            end = max(self.clock, end_s if end_s is not None else self.clock)
            self._tick(end)
            for sp in self.speakers.values():
                for kind, op in list(sp.open.items()):
                    until = end if kind == SILENCE else max(op.since, sp.last_end or op.since)
                    out.append(self._end(sp, kind, until, at_end=True))
            self.closed = True
            out.sort(key=lambda a: (a.since_s, a.until_s, a.speaker, a.kind))
            self.ended.extend(out)
        return out

    def active(self) -> list[Alert]:
        """The alerts going on now (``until_s`` None), in order of start."""
        with self._lock:
            out = [Alert(sp.name, kind, _ms(op.since), None, self._detail(sp, kind, op, None))
                   for sp in self.speakers.values() for kind, op in sp.open.items()]
        return sorted(out, key=lambda a: (a.since_s, a.speaker, a.kind))

    # --------------------------------------------------------------------------------------------------- kinds
    def _tick(self, now: float) -> None:
        self.clock = max(self.clock, now)
        if SILENCE not in self.kinds:
            return
        need, quiet = self.cfg.silence_after, self.cfg.silence_seconds
        for sp in self.speakers.values():
            if (sp.last_end is not None and SILENCE not in sp.open and sp.talking >= need
                    and self.clock - sp.last_end >= quiet):
                sp.open[SILENCE] = _Open(sp.last_end, {"after": sp.talking})

    def _silence_ends(self, sp: _Speaker, start: float, out: list[Alert]) -> None:
        """The speaker speaks again at ``start``: a silence going on ends there (or is dropped, when it turns out
        shorter than ``silence_seconds``); one nobody saw (no other speaker) is found and ended at once."""
        if SILENCE not in self.kinds or sp.last_end is None:
            return
        quiet = self.cfg.silence_seconds
        op = sp.open.get(SILENCE)
        if op is None and sp.talking >= self.cfg.silence_after and start - sp.last_end >= quiet:
            op = sp.open[SILENCE] = _Open(sp.last_end, {"after": sp.talking})
        if op is None:
            return
        if start - op.since >= quiet:
            out.append(self._end(sp, SILENCE, start))
            sp.talking = 0
        else:
            del sp.open[SILENCE]

    def _negative(self, sp: _Speaker, t: float, negative: float, fresh: bool, before: float | None,
                  out: list[Alert]) -> None:
        if fresh and sp.high_since is not None:  # a gap longer than the window: the high stretch ends
            if NEGATIVE in sp.open:
                out.append(self._end(sp, NEGATIVE, before if before is not None else t))
            sp.high_since = None
        if negative >= self.negative_share:
            if sp.high_since is None:
                sp.high_since = t
            op = sp.open.get(NEGATIVE)
            if op is not None:
                op.data["peak"] = max(op.data["peak"], negative)
            elif t - sp.high_since >= self.negative_s:
                sp.open[NEGATIVE] = _Open(sp.high_since, {"peak": negative})
        else:
            sp.high_since = None
            if NEGATIVE in sp.open:
                out.append(self._end(sp, NEGATIVE, t))

    def _rising(self, sp: _Speaker, t: float, arousal: float, out: list[Alert]) -> None:
        rise, within = self.cfg.rise, self.cfg.rise_minutes * 60.0
        op = sp.open.get(RISING)
        if op is not None:
            op.data["peak"] = max(op.data["peak"], arousal)
            if arousal < op.data["low"] + rise / 2:
                out.append(self._end(sp, RISING, t))
                sp.arousal.clear()  # a new rise is measured from here
                sp.arousal.append((t, arousal))
            return
        hist = sp.arousal
        hist.append((t, arousal))
        while hist and hist[0][0] < t - within:
            hist.popleft()
        low_t, low = min(hist, key=lambda p: (p[1], -p[0]))  # the lowest point (the latest of equal ones)
        if arousal - low > rise:
            sp.open[RISING] = _Open(low_t, {"low": low, "peak": arousal, "took": t - low_t})

    def _falling(self, sp: _Speaker, t: float, start: float, valence: float, out: list[Alert]) -> None:
        cfg = self.cfg
        fit = sp.fit
        fit.add(t, valence, start)
        slope = fit.slope()
        drop = -slope * (fit.last - fit.t0) if slope is not None else 0.0
        op = sp.open.get(FALLING)
        if op is not None:
            if drop > op.data["drop"]:
                op.data.update(drop=drop, per_min=slope * 60.0, n=fit.n, minutes=fit.minutes)
            if drop < cfg.falling_drop / 2:
                out.append(self._end(sp, FALLING, t))
                sp.fit = _Fit()
                sp.fit.add(t, valence, start)
            return
        if fit.n >= cfg.falling_min_utterances and fit.minutes >= cfg.falling_min_minutes and drop >= cfg.falling_drop:
            sp.open[FALLING] = _Open(fit.first_start, {"drop": drop, "per_min": slope * 60.0, "n": fit.n,
                                                       "minutes": fit.minutes})

    # --------------------------------------------------------------------------------------------------- records
    def _end(self, sp: _Speaker, kind: str, until: float, at_end: bool = False) -> Alert:
        op = sp.open.pop(kind)
        until = max(until, op.since)
        return Alert(sp.name, kind, _ms(op.since), _ms(until), self._detail(sp, kind, op, until, at_end))

    def _detail(self, sp: _Speaker, kind: str, op: _Open, until: float | None, at_end: bool = False) -> str:
        d = op.data
        held = (until if until is not None else self.clock) - op.since
        if kind == NEGATIVE:
            return (f"smoothed negative affect at or above {self.negative_share:.0%} for {span(held)} "
                    f"(peak {d['peak']:.0%})")
        if kind == RISING:
            return (f"smoothed arousal up from {d['low']:+.2f} by more than {self.cfg.rise:.2f} in {span(d['took'])} "
                    f"(peak {d['peak']:+.2f})")
        if kind == SILENCE:
            tail = " (until the session ended)" if at_end else ""
            return f"silent for {span(held)} after {d['after']} utterance{'s' if d['after'] != 1 else ''}{tail}"
        return (f"valence trend down {d['drop']:.2f} over {span(d['minutes'] * 60)} ({d['per_min']:+.3f}/min, "
                f"{d['n']} utterances)")

