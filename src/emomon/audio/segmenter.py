"""Voice activity segmentation of one input stream into utterances (the logic of the segmenter stage).

Audio arrives in chunks of any length. It is cut into ``frame_ms`` frames and webrtcvad marks each frame voiced or
not; a small state machine turns the marks into utterances:

* **idle**: a ring of the last frames (the start window plus ``pre_roll_ms``) is kept. When at least ``start_ms`` of
  voiced frames fall within the last ``start_window_ms``, an utterance opens. It starts at the first voiced frame of
  that window; its audio begins ``pre_roll_ms`` earlier.
* **open**: frames are collected until a run of ``hangover_ms`` unvoiced frames closes the utterance. It ends at the
  end of its last voiced frame, less the trailing 10 ms blocks that are no louder than the silence around it
  (webrtcvad keeps marking 60-150 ms as speech after speech stops). Its audio runs ``tail_ms`` further.
  An utterance that reaches ``max_utterance_s`` is cut at the quietest frame of the last ``cut_search_s`` seconds:
  the part before is emitted with ``cut=True`` and the rest stays open as a new utterance that starts at the cut
  (the two parts' audio meets at the cut, without pre-roll or tail, so no word is heard twice).

Utterances whose voiced span is shorter than ``min_utterance_ms`` are dropped. A gap in the input (``dropped_before``
or a chunk that does not follow on) closes the open utterance and starts afresh. Positions always come from
``AudioChunk.start``, never from counting samples, so times stay absolute. The audio held is bounded by the ring,
the pre-roll and ``max_utterance_s``.
"""

from __future__ import annotations

import logging
import math
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import webrtcvad

from emomon.config import SegmenterConfig
from emomon.records import SAMPLE_RATE, AudioChunk, Utterance

log = logging.getLogger("emomon")

#: Speech ends are refined in blocks of this many samples (10 ms) ...
_BLOCK = SAMPLE_RATE // 100
#: ... a trailing block counts as silence when its RMS is at most this multiple of the silence around it ...
_FLOOR_RATIO = 2.0
#: ... plus this (about 3 LSB of 16-bit audio), so that digital silence has a floor too.
_FLOOR_MIN = 1e-4


@dataclass(slots=True)
class _Frame:
    """One VAD frame: its absolute position in samples, its audio, the VAD decision and its RMS energy."""

    pos: int
    samples: np.ndarray
    voiced: bool
    rms: float

    @property
    def end(self) -> int:
        return self.pos + len(self.samples)


def _block_rms(audio: np.ndarray) -> np.ndarray:
    """RMS energy of each whole ``_BLOCK`` of ``audio``."""
    n = len(audio) // _BLOCK * _BLOCK
    return np.sqrt(np.mean(audio[:n].reshape(-1, _BLOCK).astype(np.float64) ** 2, axis=1))


def _ms(ms: float) -> int:
    """Milliseconds as a number of samples."""
    return round(ms * SAMPLE_RATE / 1000)


class Segmenter:
    """Cuts one stream's audio into utterances with webrtcvad; fed by :meth:`push`, ended by :meth:`flush`.

    Not thread-safe: one thread drives it. ``next_index`` numbers the utterances (share one counter between the
    segmenters of a session); ``clock`` stamps ``Utterance.closed_at``.
    """

    def __init__(
        self,
        cfg: SegmenterConfig,
        stream: int,
        speaker: str,
        next_index: Callable[[], int],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cfg = cfg
        self.stream = stream
        self.speaker = speaker
        self._next_index = next_index
        self._clock = clock
        self._frame_len = _ms(cfg.frame_ms)
        self._start_frames = math.ceil(cfg.start_ms / cfg.frame_ms)
        # A window shorter than start_ms could never open an utterance: it is then start_ms long.
        self._window_frames = max(round(cfg.start_window_ms / cfg.frame_ms), self._start_frames)
        self._pre_roll = _ms(cfg.pre_roll_ms)
        self._ring = self._window_frames * self._frame_len + self._pre_roll
        self._hangover = _ms(cfg.hangover_ms)
        self._tail = _ms(cfg.tail_ms)
        self._min_len = _ms(cfg.min_utterance_ms)
        self._max_len = _ms(cfg.max_utterance_s * 1000)
        self._cut_search = _ms(cfg.cut_search_s * 1000)
        self._reset()

    def _reset(self) -> None:
        """Forget all audio and state, as at the start of a stream."""
        self._vad = webrtcvad.Vad(self.cfg.aggressiveness)
        self._pending = np.zeros(0, np.float32)  # the part of a frame not yet complete
        self._next_pos: int | None = None  # absolute position of the next sample expected
        self._frames: deque[_Frame] = deque()
        self._window: deque[_Frame] = deque(maxlen=self._window_frames)
        self._walls: list[tuple[int, float]] = []  # (chunk start, its wall_time), oldest first
        self._start: int | None = None  # start of the open utterance; None while idle
        self._audio_from = 0
        self._last_voiced_end = 0

    def push(self, chunk: AudioChunk) -> list[Utterance]:
        """Feed one chunk of this stream; returns the utterances that closed (usually none)."""
        out: list[Utterance] = []
        if self._next_pos is not None and (chunk.dropped_before > 0 or chunk.start != self._next_pos):
            lost = chunk.dropped_before or chunk.start - self._next_pos
            log.warning(
                "stream %d: %d samples lost before %.2f s; closing the open utterance",
                self.stream, lost, chunk.start / SAMPLE_RATE,
            )
            out += self.flush()
        if self._next_pos is None:
            self._next_pos = chunk.start
        self._walls.append((chunk.start, chunk.wall_time))

        samples = np.concatenate([self._pending, np.asarray(chunk.samples, np.float32)])
        pos = self._next_pos - len(self._pending)
        n = len(samples) // self._frame_len * self._frame_len
        frames = samples[:n].reshape(-1, self._frame_len)
        pcm = (np.clip(frames, -1.0, 1.0) * 32767).astype(np.int16)
        rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))
        for i in range(len(frames)):
            voiced = self._vad.is_speech(pcm[i].tobytes(), SAMPLE_RATE)
            out += self._step(_Frame(pos + i * self._frame_len, frames[i], voiced, float(rms[i])))
        self._pending = samples[n:].copy()
        self._next_pos = chunk.start + len(chunk.samples)

        oldest = self._frames[0].pos if self._frames else self._next_pos - len(self._pending)
        while len(self._walls) > 1 and self._walls[1][0] <= oldest:
            self._walls.pop(0)
        return out

    def flush(self) -> list[Utterance]:
        """End of the stream: close the open utterance (kept if long enough) and start afresh."""
        out = self._close() if self._start is not None else []
        self._reset()
        return out

    # ------------------------------------------------------------------------------------------ state machine
    def _step(self, frame: _Frame) -> list[Utterance]:
        """Advance the state machine by one frame."""
        self._frames.append(frame)
        out: list[Utterance] = []
        if self._start is None:
            self._window.append(frame)
            voiced = [f for f in self._window if f.voiced]
            if len(voiced) >= self._start_frames:
                self._start = voiced[0].pos
                self._audio_from = self._start - self._pre_roll
                self._last_voiced_end = frame.end
                log.debug("stream %d: utterance opens at %.2f s", self.stream, self._start / SAMPLE_RATE)
        elif frame.voiced:
            self._last_voiced_end = frame.end
        elif frame.end - self._last_voiced_end >= self._hangover:
            out = self._close()
        if self._start is not None and frame.end - self._start >= self._max_len:
            out.append(self._cut())

        keep_from = self._audio_from if self._start is not None else frame.end - self._ring
        while self._frames[0].end <= keep_from:
            self._frames.popleft()
        return out

    def _close(self) -> list[Utterance]:
        """Close the open utterance; returns it unless its voiced span is too short."""
        start, end = self._start, self._speech_end()
        self._start = None
        self._window.clear()
        if end - start < self._min_len:
            log.debug("stream %d: dropped %d samples of voice at %.2f s", self.stream, end - start, start / SAMPLE_RATE)
            return []
        return [self._emit(start, end, self._audio_from, min(end + self._tail, self._frames[-1].end), cut=False)]

    def _speech_end(self) -> int:
        """End of the last voiced frame, less the trailing 10 ms blocks no louder than the unvoiced frames held
        around the utterance (the silence that closed it, else its pre-roll)."""
        end = self._last_voiced_end
        quiet = [f.rms for f in self._frames if not f.voiced and (f.pos >= end or f.end <= self._start)]
        if not quiet:
            return end
        floor = _FLOOR_RATIO * float(np.median(quiet)) + _FLOOR_MIN
        backwards = _block_rms(self._audio(self._start, end)[::-1])
        loud = np.flatnonzero(backwards > floor)
        return end - _BLOCK * int(loud[0] if len(loud) else len(backwards))

    def _cut(self) -> Utterance:
        """Cut the open utterance at the quietest frame near its end; it goes on from the cut."""
        lo = max(self._start, self._frames[-1].end - self._cut_search)
        quiet = min((f for f in self._frames if f.pos >= lo), key=lambda f: (f.voiced, f.rms))
        cut = quiet.pos + len(quiet.samples) // 2
        piece = self._emit(self._start, cut, self._audio_from, cut, cut=True)
        self._start = self._audio_from = cut
        self._last_voiced_end = max(self._last_voiced_end, cut)
        return piece

    # ------------------------------------------------------------------------------------------ output
    def _emit(self, start: int, end: int, audio_from: int, audio_to: int, *, cut: bool) -> Utterance:
        """The utterance with voiced span ``start``..``end`` and the audio held within ``audio_from``..``audio_to``."""
        log.debug("stream %d: utterance %.2f-%.2f s, cut=%s", self.stream, start / SAMPLE_RATE, end / SAMPLE_RATE, cut)
        audio_from = max(audio_from, self._frames[0].pos)
        return Utterance(
            index=self._next_index(),
            stream=self.stream,
            speaker=self.speaker,
            audio=self._audio(audio_from, audio_to),
            start=start / SAMPLE_RATE,
            end=end / SAMPLE_RATE,
            wall_start=self._wall(start),
            wall_end=self._wall(end),
            closed_at=self._clock(),
            cut=cut,
            audio_start=audio_from / SAMPLE_RATE,
        )

    def _audio(self, lo: int, hi: int) -> np.ndarray:
        """The held audio between absolute positions ``lo`` and ``hi`` (clipped to what is held)."""
        frames = [f for f in self._frames if f.end > lo and f.pos < hi]
        if not frames:
            return np.zeros(0, np.float32)
        base = frames[0].pos
        return np.concatenate([f.samples for f in frames])[max(lo - base, 0) : hi - base]

    def _wall(self, pos: int) -> float:
        """``time.time()`` of the sample at ``pos``: its chunk's wall_time plus the offset within the chunk."""
        i = max(bisect_right(self._walls, pos, key=lambda w: w[0]) - 1, 0)
        start, wall = self._walls[i]
        return wall + (pos - start) / SAMPLE_RATE


def cut_like_monitor(audio: np.ndarray, cfg: SegmenterConfig) -> np.ndarray:
    """The audio the monitor would hand over for a recorded clip: cut by a :class:`Segmenter` from the first
    utterance's audio start (pre-roll included) to the last one's end (tail included), so a clip with a pause stays
    one piece. Why: corpus clips come with their own silences (RAVDESS about 1 s before and 0.8 s after the words,
    nEMO almost none); a model trained on them judges the monitor's tighter cuts worse. A clip in which the
    segmenter hears no utterance is returned whole."""
    pad = np.zeros(_ms(500), np.float32)  # room for the pre-roll and the closing silence
    padded = np.concatenate([pad, np.asarray(audio, np.float32), pad])
    seg = Segmenter(cfg, 0, "clip", iter(range(1, 1 << 62)).__next__)
    utterances = seg.push(AudioChunk(0, padded, 0, 0.0)) + seg.flush()
    if not utterances:
        return np.asarray(audio, np.float32)
    lo = min(round(u.audio_start * SAMPLE_RATE) for u in utterances)
    hi = max(round(u.audio_start * SAMPLE_RATE) + len(u.audio) for u in utterances)
    return padded[lo:hi]
