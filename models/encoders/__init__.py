"""Text and speech encoders behind one interface (:class:`Frames` out), built from config."""

from __future__ import annotations

from typing import TYPE_CHECKING

from emomon.errors import ModelError
from emomon.models.asr.encoder import WhisperSpeechEncoder
from emomon.models.encoders.spectral import SpectralSpeechEncoder
from emomon.models.encoders.speech_hf import TransformersSpeechEncoder
from emomon.models.encoders.text import TransformersTextEncoder
from emomon.models.frames import SAMPLE_RATE, Frames, SpeechEncoder, TextEncoder, pick_device

if TYPE_CHECKING:
    from emomon.config import SpeechEncoderConfig, TextEncoderConfig

__all__ = ["SAMPLE_RATE", "Frames", "SpeechEncoder", "TextEncoder", "build_speech_encoder", "build_text_encoder", "pick_device"]


def build_text_encoder(cfg: "TextEncoderConfig", device="cpu", tuned_layers=None) -> TextEncoder:
    """``minilm`` / ``mpnet`` (packaged) or any transformers text checkpoint by name/path; with ``cfg.tune_layers``, the tuned
    top layers (a ``text_encoder.safetensors`` file, see emomon.training.text_tuning) are loaded over it."""
    if cfg.tune_layers and tuned_layers is None:
        raise ModelError("encoders.text.tune_layers is set, but no tuned text layers were given (text_encoder.safetensors)")
    return TransformersTextEncoder(cfg.name, layer=cfg.layer, max_tokens=cfg.max_tokens, device=device,
                                   tuned_layers=tuned_layers if cfg.tune_layers else None)


def build_speech_encoder(cfg: "SpeechEncoderConfig", device="cpu") -> SpeechEncoder:
    """``whisper-encoder`` (faster-whisper model), ``mfcc``/``logmel``, or a transformers speech checkpoint."""
    if cfg.name == "whisper-encoder":
        return WhisperSpeechEncoder(cfg.model, layers=cfg.layers, device=device)
    if cfg.name in ("mfcc", "logmel"):
        return SpectralSpeechEncoder(cfg.name, n_mfcc=cfg.n_mfcc)
    return TransformersSpeechEncoder(cfg.name, layers=cfg.layers, device=device)
