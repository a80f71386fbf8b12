"""Whisper's encoder pass for the decoder, and speech to text in one thread for training and tools.

The monitor splits the work across threads: the inference worker, which owns the device, runs
:class:`AsrEncoder` (one pass per utterance, shared with the emotion model when both read the same Whisper), and the
ASR thread decodes the frames with :class:`~emomon.models.asr.decoder.WhisperDecoder`. :class:`Transcriber` does both
in the caller's thread, for corpus transcription in training, tests and benchmarks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from emomon.config import AsrConfig
from emomon.models.asr.decoder import Transcript, WhisperDecoder, Word
from emomon.models.asr.encoder import MAX_SECONDS, SAMPLE_RATE, WhisperSpeechEncoder, resolve_whisper_model


@dataclass(frozen=True)
class EncodedUtterance:
    """One utterance's Whisper pass: the final layer for the decoder and, when the emotion model reads this very
    Whisper, its speech frames (the configured layers' mean); both (frames, dim) float32."""

    final_layer: np.ndarray
    emotion_frames: np.ndarray | None


class AsrEncoder:
    """The Whisper encoder that feeds the decoder: the emotion model's own speech encoder when it is the same
    Whisper model (one encoder in memory, one pass per utterance), else a final-layer-only encoder of its own."""

    def __init__(self, whisper: WhisperSpeechEncoder, shared: bool):
        self.whisper = whisper
        #: whether ``whisper`` is the emotion model's speech encoder (then each pass also yields its frames)
        self.shared = shared
        self.model_dir = whisper.model_dir
        self._silence: np.ndarray | None = None

    @classmethod
    def for_model(cls, model: str, emotion_encoder=None, device: str | torch.device = "cpu") -> "AsrEncoder":
        """The ASR's encoder for faster-whisper ``model``, sharing ``emotion_encoder`` when it is that very model."""
        if isinstance(emotion_encoder, WhisperSpeechEncoder) and \
                resolve_whisper_model(emotion_encoder.model_name) == resolve_whisper_model(model):
            return cls(emotion_encoder, shared=True)
        return cls(WhisperSpeechEncoder(model, layers=(-1,), device=device), shared=False)

    def hidden_states(self, audio: np.ndarray) -> tuple[list[torch.Tensor], int]:
        """All Whisper hidden states for one utterance (<= 30 s) and its frame count."""
        states, lengths = self.whisper.hidden_states([audio])
        return states, int(lengths[0])

    def encode(self, audio: np.ndarray) -> EncodedUtterance:
        states, n = self.hidden_states(audio)
        final = states[-1][0, :n].float().cpu().numpy()
        frames = self.whisper.select(states)[0, :n].cpu().numpy().astype(np.float32) if self.shared else None
        return EncodedUtterance(final, frames)

    def silence(self) -> np.ndarray:
        """Final-layer output for 30 s of silence (1500, d): the tail that completes a short utterance's window."""
        if self._silence is None:
            states, _ = self.whisper.hidden_states([np.zeros(int(MAX_SECONDS * SAMPLE_RATE), np.float32)])
            self._silence = states[-1][0].float().cpu().numpy()
        return self._silence


class Transcriber:
    """Encode and decode in the caller's thread. ``encoder``: a Whisper speech encoder to share (e.g. the one a
    training extracts emotion features with), else one of its own."""

    def __init__(self, cfg: AsrConfig, device: str | torch.device = "cpu", cpu_threads: int = 0,
                 encoder: WhisperSpeechEncoder | None = None):
        self.cfg = cfg
        self.device = torch.device(device)
        self.asr_encoder = AsrEncoder(encoder, shared=True) if encoder is not None else AsrEncoder.for_model(cfg.model, None, self.device)
        self.encoder = self.asr_encoder.whisper
        self.decoder = WhisperDecoder(cfg, self.encoder.model_dir, self.asr_encoder.silence(), device=str(self.device),
                                      cpu_threads=cpu_threads)

    def encode(self, audio: np.ndarray) -> tuple[list[torch.Tensor], int]:
        """All Whisper hidden states for one utterance (<= 30 s) and its frame count."""
        return self.asr_encoder.hidden_states(audio)

    def decode(self, final_layer: torch.Tensor) -> Transcript:
        """Decode from the encoder's final-layer output, shape (1, frames, d)."""
        return self.decoder.decode(final_layer.detach().float().cpu().numpy()[0])

    def transcribe(self, audio: np.ndarray) -> Transcript:
        states, n = self.encode(audio)
        return self.decode(states[-1][:, :n])

    def align(self, audio: np.ndarray, text: str) -> list[Word]:
        """Word timings of a known ``text`` in ``audio``."""
        if not text.strip():
            return []
        states, n = self.encode(audio)
        return self.decoder.align(states[-1][0, :n].float().cpu().numpy(), text)

