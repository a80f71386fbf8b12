"""The typed records that flow one way through the pipeline: chunks -> utterances -> transcribed -> results.

All are frozen: a stage that adds to a record returns a new one (``dataclasses.replace``), so no stage can change
what another already holds."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SAMPLE_RATE = 16_000


@dataclass(frozen=True)
class AudioChunk:
    """A block of 16 kHz mono float32 audio from one input stream (one speaker channel).

    ``start`` is the stream position of the first sample in samples since the session started; ``wall_time`` is the
    ``time.time()`` at which that first sample was captured (live) or would have been (replay).
    """

    stream: int
    samples: np.ndarray
    start: int
    wall_time: float
    #: Set by a live source when it lost audio (queue overflow, device gone) just before this chunk.
    dropped_before: int = 0


@dataclass(frozen=True)
class EndOfStream:
    """Marks that a stream ended (file finished, device closed); ``error`` says why when it was not a clean end."""

    stream: int
    error: str = ""


@dataclass(frozen=True)
class StreamNotice:
    """Something the user should know about a stream that keeps going: its device was lost, or is back."""

    stream: int
    message: str


@dataclass(frozen=True)
class Utterance:
    """One stretch of speech cut by the segmenter.

    ``audio`` holds the speech plus a little padding (pre-roll and tail) for the ASR; ``start``/``end`` are the
    voiced span in seconds since the session started, ``wall_start``/``wall_end`` the same as ``time.time()`` values.
    ``closed_at`` is the monotonic time at which the segmenter decided the utterance had ended (for latency).
    """

    index: int
    stream: int
    speaker: str
    audio: np.ndarray
    start: float
    end: float
    wall_start: float
    wall_end: float
    closed_at: float
    #: True when the utterance was cut at ``max_utterance_s`` rather than ended by a pause.
    cut: bool = False
    #: Session time (s) of ``audio[0]`` (the pre-roll makes it earlier than ``start``); None = same as ``start``.
    audio_start: float | None = None

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def key(self) -> tuple[int, int, int]:
        """Identifies the utterance across a replay's two passes (same files, same segmenter: the same cuts):
        its stream, the sample its audio starts at, and its length."""
        start = self.start if self.audio_start is None else self.audio_start
        return self.stream, round(start * SAMPLE_RATE), len(self.audio)


@dataclass(frozen=True)
class Transcribed:
    """An utterance with its transcript and the emotion model's speech frames when the ASR pass produced them."""

    utterance: Utterance
    text: str
    words: list = field(default_factory=list)
    asr_note: str = ""  # why the ASR text was rejected (no-speech, repetitive, hallucination), if it was
    language: str = ""
    speech_frames: np.ndarray | None = None
    asr_seconds: float = 0.0
    #: the transcript's average token log-probability (the emotion model skips words it is unsure of)
    avg_logprob: float = 0.0


@dataclass(frozen=True)
class Result:
    """Everything known about one utterance: what the sinks write and show."""

    utterance: Utterance
    text: str
    emotion: str
    confidence: float
    probs: dict[str, float]
    step_emotions: dict[str, str]
    asr_note: str = ""
    language: str = ""
    asr_seconds: float = 0.0
    emotion_seconds: float = 0.0
    #: Seconds from the end of the speech (its last voiced sample, wall clock) to the row reaching the sinks; set
    #: by the session just before the sinks, and only when the audio is live or paced in real time (else None).
    latency: float | None = None
    words: list = field(default_factory=list)
