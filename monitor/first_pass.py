"""A replay's first pass: every speaker's whole-recording baseline, before the first utterance is judged.

It is an explicit phase of ``emomon replay`` (full speed only), run after the models load and before the session
starts: it reads its own sources (built from the same options, never the session's), and the inference worker, which
owns the model, encodes; the phase ends by setting the recognizer's reading (speeds, fixed baselines) through the
worker, so the second pass reads every utterance against them.

Live, a speaker is read against the utterances heard so far (``emomon.models.speaker_baseline.SpeakerBaseline``), so the
first few are judged mostly on the population prior. A replay has the whole recording: this pass decodes each file,
cuts it with the session's own segmenter (and diarizer, when asked), encodes every utterance with the model's speech
encoder at each reading speed, and sums each speaker's utterance means into a
:class:`~emomon.models.speaker_baseline.SessionBaseline`. The second pass (the normal pipeline) then reads every
utterance against those fixed baselines. With the stage-1 model this raised every validation and test set of
RAVDESS, nEMO and ASED; with the shipped one the gain is small (docs/MODEL_CARD.md; ``bench/inference_variants.py``,
``bench/replay_accuracy.py``).

Only means are kept (one vector per speaker and speed); no audio or transcript outlives the pass. The files are
decoded twice, which costs little next to the ASR of the second pass.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from emomon.audio.decode import duration_seconds
from emomon.audio.segmenter import Segmenter
from emomon.config import EmomonConfig
from emomon.models.speaker_baseline import SessionBaseline
from emomon.monitor.diarize import speaker_name
from emomon.progress import progress_bar
from emomon.records import AudioChunk, EndOfStream, StreamNotice

logger = logging.getLogger("emomon")

#: Recordings longer than this (seconds, all files) show a progress bar for the first pass.
PROGRESS_SECONDS = 300.0

AS_LIVE = "as live: running speaker baseline, one speed"


@dataclass(frozen=True)
class ReplayReading:
    """How the second pass reads the speakers, and what the first pass cost."""

    description: str
    first_pass_seconds: float = 0.0


def prepare_replay_reading(worker, sources: list, cfg: EmomonConfig, diarizer_factory: Callable | None = None,
                           stop: threading.Event | None = None,
                           on_progress: Callable[[float, float], None] | None = None) -> ReplayReading:
    """Set the worker's recognizer to read as ``cfg.replay`` says: extra speeds (``tta_speeds``) and, with
    ``baseline = "session"``, fixed whole-recording baselines from a first pass over ``sources`` (fresh FileSource
    objects, unpaced). ``diarizer_factory(stream_index)`` gives a fresh diarizer per input when the session diarizes,
    so the speakers get the names the second pass will give them. ``on_progress(done, total)`` (seconds of audio)
    follows the first pass, for a status line; without it, a long pass shows its own progress bar."""
    rc = cfg.replay
    if rc.tta_speeds:
        worker.call(lambda rec: rec.read_at_speeds(rc.tta_speeds)).result()
    options, speeds = worker.call(lambda rec: (rec.baselines.options if rec.baselines is not None else None, rec.speeds)).result()
    whole = rc.baseline == "session" and options is not None
    t0 = time.perf_counter()
    if whole:
        worker.keep_for_second_pass(int(rc.keep_mb * 2**20))
        baselines = whole_recording_baselines(worker, options, speeds, sources, cfg, diarizer_factory, stop,
                                              on_progress)
        worker.call(lambda rec: rec.use_session_baselines(baselines)).result()
    seconds = time.perf_counter() - t0 if whole else 0.0
    return ReplayReading(worker.call(lambda rec: reading_description(rec, whole)).result(), seconds)


def reading_description(rec, session_baseline: bool) -> str:
    speeds = "/".join(f"{f:g}x" for f in sorted(rec.speeds))
    base = "whole-recording speaker baselines" if session_baseline else (
        "running speaker baseline" if rec.baselines is not None else "no speaker baseline")
    return f"{base}, speeds {speeds} averaged" if len(rec.speeds) > 1 else f"{base}, one speed"


def whole_recording_baselines(worker, options, speeds: tuple[float, ...], sources: list, cfg: EmomonConfig,
                              diarizer_factory: Callable | None = None, stop: threading.Event | None = None,
                              on_progress: Callable[[float, float], None] | None = None
                              ) -> dict[float, SessionBaseline]:
    """One :class:`SessionBaseline` per reading speed from every utterance in ``sources``, encoded by ``worker``;
    ``on_progress(done, total)`` is told the seconds of audio read after each chunk (the total from the headers)."""
    total = sum(duration_seconds(src.path, audio_stream=getattr(src, "audio_stream", None)) or 0.0 for src in sources)
    first_pass = _FirstPass(worker, options, speeds, cfg, diarizer_factory)
    if on_progress is not None:
        on_progress(0.0, total)
        first_pass.on_progress = lambda done: on_progress(min(done, total) if total else done, total)
    bar = progress_bar("first pass: each speaker's baseline over the whole recording (seconds of audio)", int(total)) \
        if total > PROGRESS_SECONDS and on_progress is None else None
    first_pass.advance = bar.__enter__() if bar is not None else None
    try:
        for src in sources:
            first_pass.read(src, stop or threading.Event())
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    logger.debug("first pass: %d utterances of %d speaker(s) for the whole-recording baselines", first_pass.utterances,
                 len(first_pass.baselines[1.0].speakers))
    return first_pass.baselines


class _FirstPass:
    def __init__(self, worker, options, speeds: tuple[float, ...], cfg: EmomonConfig, diarizer_factory: Callable | None):
        self.worker, self.cfg, self.diarizer_factory = worker, cfg, diarizer_factory
        self.baselines = {f: SessionBaseline(options) for f in speeds}
        self.utterances = 0
        self.advance: Callable | None = None
        self.on_progress: Callable[[float], None] | None = None
        self._seconds, self._shown = 0.0, 0
        self._counter = iter(range(1, 1 << 62))

    def read(self, src, stop: threading.Event) -> None:
        """Decode, cut and encode one file source; a decoding error ends it quietly, as the second pass reports it."""
        self.streams = {info.index: info for info in src.streams}
        self.diarizers = {i: self.diarizer_factory(i) for i in self.streams} if self.diarizer_factory else None
        self.segmenters = {i: Segmenter(self.cfg.segmenter, i, info.speaker, lambda: next(self._counter))
                           for i, info in self.streams.items()}
        self.first_stream = min(self.streams)
        src.run(self._emit, stop, 0.0)

    def _emit(self, item) -> None:
        if isinstance(item, AudioChunk):
            for u in self.segmenters[item.stream].push(item):
                self._take(u)
            if item.stream == self.first_stream:
                self._progress(len(item.samples) / 16000)
        elif isinstance(item, (EndOfStream, StreamNotice)):
            for u in self.segmenters[item.stream].flush():
                self._take(u)

    def _take(self, utterance) -> None:
        speaker = utterance.speaker
        if self.diarizers is not None:
            label = self.diarizers[utterance.stream].assign(utterance.audio, utterance.duration)
            speaker = speaker_name(self.streams[utterance.stream].speaker, label)
        # every speed, on the worker's thread; kept there for the second pass, which then encodes nothing again
        speeds = tuple(self.baselines)
        frames = self.worker.call(lambda rec: self.worker.encode_speeds(utterance.audio, speeds, utterance.key)).result()
        for factor, baseline in self.baselines.items():
            baseline.add(speaker, frames[factor])
        self.utterances += 1

    def _progress(self, seconds: float) -> None:
        self._seconds += seconds
        if self.on_progress is not None:
            self.on_progress(self._seconds)
        if self.advance is not None and int(self._seconds) > self._shown:
            self.advance(int(self._seconds) - self._shown)
            self._shown = int(self._seconds)
