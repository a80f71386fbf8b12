"""The typed records that flow one way through the pipeline: chunks -> utterances -> transcribed -> results.

All are frozen: a stage that adds to a record returns a new one (``dataclasses.replace``), so no stage can change
what another already holds."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from emomon.errors import ConfigError

SAMPLE_RATE = 16_000


@dataclass(frozen=True)
class AudioChunk:
    """A block of 16 kHz mono float32 audio from one input stream (one speaker channel).

    ``start`` is the stream position of the first sample in samples since the session started; ``wall_time`` is the
    ``time.time()`` at which that first sample was captured (live), or would have been had the file played from the
    session's start (replay): a pacing and latency clock, not when a recording was made (the session CSV's time
    columns are :class:`emomon.monitor.sinks.RowTimes`').
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
    voiced span in seconds since the session started, ``wall_start``/``wall_end`` the same as ``time.time()`` values
    on the chunks' clock (:attr:`AudioChunk.wall_time`: the capture time live; for a replay, the session start plus the
    offset, which only ``--realtime`` makes a real time).
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


@dataclass(frozen=True)
class Alert:
    """Something about one speaker that lasted: sustained negative affect, rising arousal, a long silence, a valence
    that keeps falling (:mod:`emomon.monitor.views.alerts` decides; ``kind`` names which).

    ``since_s``/``until_s`` are session seconds, to the millisecond (as the CSV writes them); ``until_s`` is None
    while the alert is still going on (what the dashboard shows), set once it has ended (what the sinks receive, the
    CSV keeps and the report reads back). ``detail`` is one line of plain text."""

    speaker: str
    kind: str
    since_s: float
    until_s: float | None
    detail: str = ""


# ------------------------------------------------------------------------------------------ spreadsheet-safe cells
#: First characters that make a spreadsheet read a cell as a formula (OWASP, "CSV Injection"): ``=``, ``+``, ``-``,
#: ``@``, tab and carriage return.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_QUOTE = "'"
_ESCAPED_STARTS = (*FORMULA_STARTS, _QUOTE)


def spreadsheet_safe(cell: str) -> str:
    """A text cell as the session CSV stores it: one ``'`` put in front when the text starts with a formula
    character (:data:`FORMULA_STARTS`) or with ``'`` itself, so a spreadsheet shows it as text and never runs it.

    Only free text goes through here (speaker names, transcripts, event notes, labels); numbers emomon writes
    (``-0.5``) stay plain numbers. :func:`from_spreadsheet_safe` reverses it exactly: for every string ``s``,
    ``from_spreadsheet_safe(spreadsheet_safe(s)) == s``.
    """
    return _QUOTE + cell if cell.startswith(_ESCAPED_STARTS) else cell


def from_spreadsheet_safe(cell: str) -> str:
    """The text :func:`spreadsheet_safe` was given: one leading ``'`` is removed when what follows it starts with a
    formula character or ``'``; any other cell (numbers, a ``'`` before ordinary text) is returned as it is."""
    return cell[1:] if cell.startswith(_QUOTE) and cell[1:].startswith(_ESCAPED_STARTS) else cell


#: Characters that break a name out of its line or reorder what follows it on a terminal: the C0 and C1 controls
#: (newline, carriage return, escape, ...), the Unicode line and paragraph separators and the bidirectional overrides.
LINE_BREAKERS = frozenset([*map(chr, range(0x20)), *map(chr, range(0x7F, 0xA0)), "\u2028", "\u2029",
                           *map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A))])
_ONE_LINE = {ord(c): " " for c in LINE_BREAKERS}


def one_line(text: str) -> str:
    """``text`` with every :data:`LINE_BREAKERS` character replaced by a space: safe to print as one line."""
    return text.translate(_ONE_LINE)


def parse_speaker_names(specs: list[str]) -> dict[int, str]:
    """``["0=Teacher", "1=Student"]`` -> {0: "Teacher", 1: "Student"} (stream indices start at 0).

    A name is one line of text: one holding a control character (newline, carriage return, tab, escape, ...), a
    Unicode line or paragraph separator or a bidirectional override (:data:`emomon.records.LINE_BREAKERS`) is refused,
    since every output prints it as it is (lines, dashboard, summary; the CSV keeps it spreadsheet-safe)."""
    out = {}
    for spec in specs:
        key, sep, name = spec.partition("=")
        if not sep or not key.strip().isdigit() or not name.strip():
            raise ConfigError(f"--speaker {spec!r}: expected INDEX=NAME, e.g. 0=Teacher")
        bad = next((c for c in name if c in LINE_BREAKERS), None)
        if bad is not None:
            raise ConfigError(f"--speaker {spec!r}: a name must be one line of plain text (it holds {bad!r})")
        if int(key) in out:
            raise ConfigError(f"--speaker {spec!r}: input {int(key)} is already named {out[int(key)]!r}")
        out[int(key)] = name.strip()
    return out
