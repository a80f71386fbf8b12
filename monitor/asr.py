"""The ASR stage: each utterance's Whisper pass from the inference worker, then CTranslate2 decoding here.

The worker owns the device and the one Whisper encoder in the process; it answers an utterance with the final layer
(for the decoder) and, when the emotion model reads this very Whisper, that model's speech frames, which ride along
in the :class:`Transcribed` record so the utterance is encoded once for both.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from emomon.config import AsrConfig
from emomon.models.asr.decoder import WhisperDecoder
from emomon.records import Transcribed, Utterance

logger = logging.getLogger("emomon")


class AsrStage:
    """Not a thread itself: the pipeline's ASR thread calls :meth:`process` for each utterance. ``worker`` is the
    ready :class:`~emomon.monitor.worker.InferenceWorker` (built with the ASR model)."""

    def __init__(self, cfg: AsrConfig, worker, device: str = "cpu", cpu_threads: int = 0,
                 decoder: WhisperDecoder | None = None):
        self.worker = worker
        encoder = worker.asr_encoder
        #: ``decoder``: one an earlier session of this process loaded (``LoadedModels``), else a new one
        self.decoder = decoder or WhisperDecoder(cfg, encoder.model_dir, encoder.silence(), device=device, cpu_threads=cpu_threads)

    def process(self, u: Utterance) -> Transcribed:
        """Transcribe one utterance (raises ``CancelledError`` when the session is aborting)."""
        t0 = time.perf_counter()
        encoded = self.worker.encode(u.audio, u.key).result()  # a replay's first pass may have kept it
        tr = self.decoder.decode(encoded.final_layer)
        # Word times are relative to the utterance audio, which starts pre-roll before u.start.
        offset = u.start if u.audio_start is None else u.audio_start
        words = [(w.word, round(offset + w.start, 2), round(offset + w.end, 2)) for w in tr.words]
        return Transcribed(u, tr.text, words=words, asr_note=tr.rejected, language=tr.language,
                           speech_frames=encoded.emotion_frames, asr_seconds=time.perf_counter() - t0,
                           avg_logprob=tr.avg_logprob)

    def warm_up(self) -> None:
        """One decode of a second of noise so the first real utterance does not pay for lazy initialisation."""
        rng = np.random.default_rng(0)
        self.decoder.decode(self.worker.encode(rng.normal(0, 0.01, 16000).astype(np.float32)).result().final_layer)
