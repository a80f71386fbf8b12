"""A replay's first pass: every speaker's whole-recording baseline, before the first utterance is judged.

Live, a speaker is read against the utterances heard so far (``models/speaker_baseline.SpeakerBaseline``), so the
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
from collections.abc import Callable

from emomon.monitor.records import AudioChunk, EndOfStream, StreamNotice

from emomon.config import EmomonConfig

logger = logging.getLogger("emomon")

#: Recordings longer than this (seconds, all files) show a progress bar for the first pass.
PROGRESS_SECONDS = 300.0


def whole_recording_baselines(recognizer, sources: list, cfg: EmomonConfig, diarizer_factory: Callable | None = None,
                              stop: threading.Event | None = None) -> dict[float, object]:
    """One :class:`SessionBaseline` per reading speed of ``recognizer`` from every utterance in ``sources``
    (FileSource objects). ``diarizer_factory(stream_index)`` gives a fresh diarizer per input when the session
    diarizes, so the speakers get the names the second pass will give them."""
    from emomon.models.features import progress_bar

    from emomon.audio import duration_seconds

    total = sum(duration_seconds(src.path) or 0.0 for src in sources)
    first_pass = _FirstPass(recognizer, cfg, diarizer_factory)
    bar = progress_bar("first pass: each speaker's baseline over the whole recording (seconds of audio)", int(total)) \
        if total > PROGRESS_SECONDS else None
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
    def __init__(self, recognizer, cfg: EmomonConfig, diarizer_factory: Callable | None):
        from emomon.models.speaker_baseline import SessionBaseline

        self.recognizer, self.cfg, self.diarizer_factory = recognizer, cfg, diarizer_factory
        self.baselines = {f: SessionBaseline(recognizer.baselines.options) for f in recognizer.speeds}
        self.utterances = 0
        self.advance: Callable | None = None
        self._seconds, self._shown = 0.0, 0
        self._counter = iter(range(1, 1 << 62))

    def read(self, src, stop: threading.Event) -> None:
        """Decode, cut and encode one file source (unpaced); a decoding error ends it quietly, as the second pass
        reports it."""
        from emomon.monitor.segmenter import Segmenter

        self.streams = {info.index: info for info in src.streams}
        self.diarizers = {i: self.diarizer_factory(i) for i in self.streams} if self.diarizer_factory else None
        self.segmenters = {i: Segmenter(self.cfg.segmenter, i, info.speaker, lambda: next(self._counter))
                           for i, info in self.streams.items()}
        self.first_stream = min(self.streams)
        realtime, src.realtime = src.realtime, False
        try:
            src.run(self._emit, stop, 0.0)
        finally:
            src.realtime, src.error = realtime, ""

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
        from emomon.models.data.augment import speed as resample_speed
        from emomon.monitor.diarize import speaker_name

        speaker = utterance.speaker
        if self.diarizers is not None:
            label = self.diarizers[utterance.stream].assign(utterance.audio, utterance.duration)
            speaker = speaker_name(self.streams[utterance.stream].speaker, label)
        # every speed of the utterance in one encoder batch
        audios = [utterance.audio if f == 1.0 else resample_speed(utterance.audio, f) for f in self.baselines]
        for baseline, frames in zip(self.baselines.values(), self.recognizer.encode_speech(audios).unbatch()):
            baseline.add(speaker, frames)
        self.utterances += 1

    def _progress(self, seconds: float) -> None:
        self._seconds += seconds
        if self.advance is not None and int(self._seconds) > self._shown:
            self.advance(int(self._seconds) - self._shown)
            self._shown = int(self._seconds)
