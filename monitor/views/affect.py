"""Valence and arousal from class probabilities, on Russell's circumplex of affect.

Each class sits at a point (valence, arousal) in [-1, 1]^2; an utterance's reading is the probability-weighted mean
of those points, so a confident 'happy' reads pleasant and activated, and an uncertain mix reads near the centre.
The positions follow Russell (1980, "A circumplex model of affect") and the NRC Valence-Arousal-Dominance lexicon
(Mohammad 2018) ratings of the emotion words, rescaled from [0, 1] to [-1, 1] and rounded; 'neutral' is the origin.
They are a display aid for trends, not a calibrated measurement.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

CIRCUMPLEX: dict[str, tuple[float, float]] = {
    "angry": (-0.65, 0.75),
    "disgust": (-0.80, 0.35),
    "fear": (-0.75, 0.65),
    "happy": (0.85, 0.50),
    "neutral": (0.0, 0.0),
    "sad": (-0.80, -0.45),
    "surprise": (0.40, 0.75),
}

#: Classes counted as negative affect for alerts.
NEGATIVE = ("angry", "disgust", "fear", "sad")


def valence_arousal(probs: dict[str, float]) -> tuple[float, float]:
    """Probability-weighted position on the circumplex."""
    total = sum(probs.get(c, 0.0) for c in CIRCUMPLEX) or 1.0
    v = sum(p * CIRCUMPLEX[c][0] for c, p in probs.items() if c in CIRCUMPLEX) / total
    a = sum(p * CIRCUMPLEX[c][1] for c, p in probs.items() if c in CIRCUMPLEX) / total
    return v, a


def negative_affect(probs: dict[str, float]) -> float:
    return sum(probs.get(c, 0.0) for c in NEGATIVE)


@dataclass
class AffectPoint:
    time: float  # session seconds (utterance end)
    valence: float
    arousal: float
    negative: float
    duration: float


class AffectTracker:
    """Per-speaker smoothed valence/arousal/negative affect over a sliding window: the duration-weighted mean of the
    utterances that ended in the last ``window_s`` seconds. (The alerts that watch these readings, sustained negative
    affect among them, are decided by :mod:`emomon.monitor.views.alerts`.)"""

    def __init__(self, window_s: float = 30.0):
        self.window_s = window_s
        self.points: deque[AffectPoint] = deque()

    def add(self, t: float, probs: dict[str, float], duration: float = 1.0) -> None:
        v, a = valence_arousal(probs)
        self.points.append(AffectPoint(t, v, a, negative_affect(probs), max(duration, 1e-3)))
        while self.points and self.points[0].time < t - self.window_s:
            self.points.popleft()

    def smoothed(self) -> tuple[float, float, float]:
        """(valence, arousal, negative affect) over the window; zeros before any utterance."""
        if not self.points:
            return 0.0, 0.0, 0.0
        w = sum(p.duration for p in self.points)
        return (sum(p.valence * p.duration for p in self.points) / w,
                sum(p.arousal * p.duration for p in self.points) / w,
                sum(p.negative * p.duration for p in self.points) / w)
