"""What the dashboard knows: per-speaker emotion state (timeline, counts, smoothed affect), the session's alerts, the
transcript tail, input notices and the header's numbers, updated from :class:`~emomon.records.Result` records and the
session's status callable. No Rich here: :meth:`DashboardState.snapshot` hands the layout an immutable copy.

All times are session seconds (``Utterance.start``/``end``), and memory is bounded: a time-pruned deque per speaker
for the timeline window and a fixed-length transcript tail. Writes come from the pipeline's threads and snapshots from
Live's refresh thread, so both take the same lock.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from emomon.config import DashboardConfig
from emomon.monitor.views.affect import AffectTracker
from emomon.monitor.views.alerts import NEGATIVE, AlertTracker
from emomon.records import Alert, Result


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


@dataclass
class SpeakerState:
    """One speaker's running state (mutated under :class:`DashboardState`'s lock)."""

    name: str
    order: int
    tracker: AffectTracker
    timeline: collections.deque  # (start, end, emotion, confidence)
    counts: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    emotion: str = ""
    confidence: float = 0.0
    utterances: int = 0
    last_end: float = 0.0
    seq: int = 0  # write order of the latest result (recency)


@dataclass(frozen=True)
class SpeakerView:
    """A speaker as one paint sees it."""

    name: str
    emotion: str
    confidence: float
    utterances: int
    last_end: float
    seq: int
    shares: tuple[tuple[str, int], ...]
    timeline: tuple[tuple[float, float, str, float], ...]  # (start, end, emotion, confidence) per utterance
    valence: float
    arousal: float
    negative: float
    alert: float | None  # seconds the speaker's negative-affect alert has been going on, or None


@dataclass(frozen=True)
class TranscriptLine:
    start: float
    speaker: str
    emotion: str
    confidence: float
    text: str
    note: str


@dataclass(frozen=True)
class Snapshot:
    """Everything one paint shows, copied under the lock."""

    status: DashboardStatus
    now: float
    speakers: tuple[SpeakerView, ...]
    transcript: tuple[TranscriptLine, ...]
    notices: tuple[tuple[float, str], ...]
    notices_total: int
    closed: bool
    #: the session's alerts going on (``until_s`` None), and the latest ended ones (newest last)
    alerts: tuple[Alert, ...] = ()
    ended: tuple[Alert, ...] = ()
    end_status: str = ""  # once closed: the session's end line


class DashboardState:
    """The dashboard's state, fed by :meth:`write`/:meth:`notice`/:meth:`close` and read by :meth:`snapshot`.

    ``status`` is called on every snapshot and returns a :class:`DashboardStatus` or a dict with its fields; a
    failing one shows as a notice instead of breaking the paint. ``speakers`` and ``transcript`` are guarded by the
    lock; read them through :meth:`snapshot` while writes may arrive.
    """

    def __init__(self, cfg: DashboardConfig, status: Callable[[], Any] | None = None,
                 alerts: AlertTracker | None = None):
        self.cfg = cfg
        self._alerts = alerts  # the session's tracker (it feeds it): the alerts going on are read from it
        self._ended: collections.deque[Alert] = collections.deque(maxlen=20)
        self.window_s = float(cfg.timeline_minutes) * 60.0
        self._status_fn = status
        self._lock = threading.Lock()
        self.speakers: dict[str, SpeakerState] = {}
        self.transcript: collections.deque[TranscriptLine] = collections.deque(
            maxlen=max(1, int(cfg.transcript_lines)))
        self._notices: collections.deque[tuple[float, str]] = collections.deque(maxlen=20)
        self._notices_total = 0
        self._latest = 0.0
        self._seq = 0
        self._closed = False
        self.end_status = ""
        self._t0 = time.time()

    def write(self, result: Result) -> None:
        u = result.utterance
        with self._lock:
            sp = self.speakers.get(u.speaker)
            if sp is None:
                sp = SpeakerState(
                    u.speaker, len(self.speakers),
                    AffectTracker(self.cfg.va_window_s),
                    collections.deque(maxlen=20_000))
                self.speakers[u.speaker] = sp
            self._seq += 1
            sp.seq = self._seq
            sp.emotion, sp.confidence = result.emotion, float(result.confidence)
            sp.utterances += 1
            sp.counts[result.emotion] += 1
            sp.last_end = max(sp.last_end, u.end)
            sp.tracker.add(u.end, result.probs, u.duration)
            sp.timeline.append((u.start, u.end, result.emotion, float(result.confidence)))
            self._latest = max(self._latest, u.end)
            horizon = self._latest - self.window_s
            for s in self.speakers.values():  # bounded: only the timeline window is kept
                while s.timeline and s.timeline[0][1] < horizon:
                    s.timeline.popleft()
            if self.cfg.transcript_lines > 0:
                self.transcript.append(TranscriptLine(u.start, u.speaker, result.emotion, float(result.confidence),
                                                      (result.text or "").strip(), result.asr_note))

    def notice(self, message: str) -> None:
        with self._lock:
            self._notices.append((time.time() - self._t0, str(message)))
            self._notices_total += 1

    def close(self, status: str = "") -> None:
        """The session has ended; ``status`` is its end line (e.g. ``session complete: 11 utterances``)."""
        with self._lock:
            self._closed = True
            self.end_status = str(status)

    def status(self) -> DashboardStatus:
        if self._status_fn is None:
            return DashboardStatus(elapsed=time.time() - self._t0)
        try:
            return DashboardStatus.coerce(self._status_fn())
        except Exception as exc:  # never let a status bug kill the refresh thread
            return DashboardStatus(elapsed=time.time() - self._t0, notice=f"status unavailable: {exc}")

    def alert(self, a: Alert) -> None:
        """An alert that has ended (the session hands each one to every sink)."""
        with self._lock:
            self._ended.append(a)

    def snapshot(self) -> Snapshot:
        status = self.status()
        active = tuple(self._alerts.active()) if self._alerts is not None else ()
        with self._lock:
            now = max(self._latest, status.audio_seconds or 0.0)
            negative = {a.speaker: max(0.0, now - a.since_s) for a in active if a.kind == NEGATIVE}
            views = tuple(
                SpeakerView(
                    sp.name, sp.emotion, sp.confidence, sp.utterances, sp.last_end, sp.seq,
                    tuple(percent_shares(sp.counts)), tuple(sp.timeline), *sp.tracker.smoothed(),
                    negative.get(sp.name))
                for sp in sorted(self.speakers.values(), key=lambda s: s.order))
            return Snapshot(status, now, views, tuple(self.transcript), tuple(self._notices),
                            self._notices_total, self._closed, active, tuple(self._ended), end_status=self.end_status)
