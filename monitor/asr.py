"""The ASR stage: transcribes each utterance and, when the emotion model's speech encoder is this very Whisper
model, hands it the encoder frames computed for the transcript (one encoder pass per utterance)."""

from __future__ import annotations

import logging
import time

import numpy as np

from emomon.config import AsrConfig, SpeechEncoderConfig
from emomon.monitor.records import Transcribed, Utterance

logger = logging.getLogger("emomon")


class AsrStage:
    """Not a thread itself: the pipeline's ASR thread calls :meth:`process` for each utterance."""

    def __init__(self, asr: AsrConfig, emotion_speech: SpeechEncoderConfig, device: str = "cpu", cpu_threads: int = 0):
        from emomon.models.encoders.whisper import WhisperSpeechEncoder, resolve_whisper_model
        from emomon.transcribe import Transcriber

        self.shared = False
        encoder = None
        if emotion_speech.name == "whisper-encoder" and resolve_whisper_model(emotion_speech.model) == resolve_whisper_model(asr.model):
            encoder = WhisperSpeechEncoder(emotion_speech.model, layers=emotion_speech.layers, device=device)
            self.shared = True
        self.transcriber = Transcriber(asr, device=device, cpu_threads=cpu_threads, encoder=encoder)
        self.encoder = self.transcriber.encoder

    def process(self, u: Utterance) -> Transcribed:
        t0 = time.perf_counter()
        states, n = self.transcriber.encode(u.audio)
        tr = self.transcriber.decode(states[-1][:, :n])
        frames = self.encoder.select(states)[0, :n].numpy().astype(np.float32) if self.shared else None
        # Word times are relative to the utterance audio, which starts pre-roll before u.start.
        offset = u.start if u.audio_start is None else u.audio_start
        words = [(w.word, round(offset + w.start, 2), round(offset + w.end, 2)) for w in tr.words]
        return Transcribed(u, tr.text, words=words, asr_note=tr.rejected, language=tr.language, speech_frames=frames,
                           asr_seconds=time.perf_counter() - t0, avg_logprob=tr.avg_logprob)

    def warm_up(self) -> None:
        """One pass on a second of noise so the first real utterance does not pay for lazy initialisation."""
        rng = np.random.default_rng(0)
        states, n = self.transcriber.encode(rng.normal(0, 0.01, 16000).astype(np.float32))
        self.transcriber.decode(states[-1][:, :n])
