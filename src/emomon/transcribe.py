"""Utterance transcription with faster-whisper, decoding from encoder frames computed once.

:class:`Transcriber` runs Whisper's encoder in PyTorch (see :mod:`emomon.models.encoders.whisper`), hands the final
layer to CTranslate2's decoder, and returns the hidden states too, so the emotion model reuses them instead of
encoding the audio a second time. Utterances come from the VAD segmenter and are at most 30 s, so each is decoded in
one window.

Whisper's decoder was trained on 30 s windows: decoding from the frames of a 3 s clip alone makes tiny.en loop and
mis-hear (RAVDESS actors 19-24, real speech: WER 0.59, against 0.01 when the waveform is padded to 30 s). Encoding
30 s per utterance costs far more, so instead the utterance is encoded alone and its frames are followed by the
encoder's output for silence (computed once): WER 0.01 in about a third of the time per utterance (on espeak-ng
readings of MELD sentences: 0.22, against 0.24 padded and 0.30 alone; ``bench/asr_padding.py``).

Guards against Whisper's known failure on silence and noise (hallucinated "Thank you." and repetition loops) follow
openai/whisper's rules: a window whose no-speech probability is high *and* whose average log-probability is low is
dropped, and so is text that compresses too well (repetitive) or that is a known hallucination on non-speech.
"""

from __future__ import annotations

import logging
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from emomon.errors import ModelError
from emomon.config import AsrConfig
from emomon.models.encoders.whisper import SAMPLE_RATE, WhisperSpeechEncoder

logger = logging.getLogger("emomon")

#: Bumped whenever decoding changes what text comes out, so cached training transcripts are recomputed.
DECODER_VERSION = 2

# Phrases Whisper produces from silence or noise (subtitle credits, politeness): kept only when the decoder is
# confident the window holds speech.
_HALLUCINATIONS = re.compile(
    r"^\s*(thank you( very much)?( for watching| for listening)?|thanks( for watching)?|you|bye\.?|"
    r"please subscribe.*|subtitles by.*|\.+|\s*)\s*[.!?]*\s*$",
    re.IGNORECASE,
)


@dataclass
class Word:
    word: str
    start: float
    end: float
    probability: float


@dataclass
class Transcript:
    """What the ASR made of one utterance. ``text`` is empty when the guards rejected it (``rejected`` says why)."""

    text: str
    words: list[Word] = field(default_factory=list)
    language: str = ""
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    compression_ratio: float = 0.0
    rejected: str = ""


def compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / max(1, len(zlib.compress(data))) if data else 0.0


class Transcriber:
    """faster-whisper decoding on top of a (shared) PyTorch Whisper encoder."""

    def __init__(self, cfg: AsrConfig, device: str | torch.device = "cpu", cpu_threads: int = 0,
                 encoder: WhisperSpeechEncoder | None = None):
        from faster_whisper import WhisperModel
        from faster_whisper.tokenizer import Tokenizer

        self.cfg = cfg
        self.device = torch.device(device)
        # The emotion model's speech encoder is reused when it is this very Whisper model: one encoder pass.
        self.encoder = encoder or WhisperSpeechEncoder(cfg.model, layers=(-1,), device=self.device)
        model_dir: Path = self.encoder.model_dir
        compute_type = cfg.compute_type if self.device.type == "cpu" else "float16"
        try:
            self.whisper = WhisperModel(str(model_dir), device=self.device.type, compute_type=compute_type, cpu_threads=cpu_threads)
        except (RuntimeError, ValueError) as exc:
            raise ModelError(f"cannot load the ASR model {cfg.model!r}: {exc}") from None
        self.multilingual = bool(self.whisper.model.is_multilingual)
        language = None if cfg.language in ("", "auto") else cfg.language
        if not self.multilingual and language not in (None, "en"):
            raise ModelError(f"asr.model {cfg.model!r} is English-only; it cannot transcribe language {cfg.language!r}")
        self.language = language or ("en" if not self.multilingual else None)
        self._tokenizer_cls = Tokenizer
        self.tokenizer = Tokenizer(self.whisper.hf_tokenizer, self.multilingual, task="transcribe", language=self.language or "en")
        self._silence: np.ndarray | None = None

    # ------------------------------------------------------------------------------------------------ API
    def encode(self, audio: np.ndarray) -> tuple[list[torch.Tensor], int]:
        """All Whisper hidden states for one utterance (<= 30 s) and its frame count."""
        states, lengths = self.encoder.hidden_states([audio])
        return states, int(lengths[0])

    def transcribe(self, audio: np.ndarray) -> Transcript:
        states, n = self.encode(audio)
        return self.decode(states[-1][:, :n])

    def _silence_frames(self) -> np.ndarray:
        """Encoder output of 30 s of silence (1500, d): the tail that completes a short utterance's window."""
        if self._silence is None:
            from emomon.models.encoders.whisper import MAX_SECONDS

            states, _ = self.encoder.hidden_states([np.zeros(int(MAX_SECONDS * SAMPLE_RATE), np.float32)])
            self._silence = states[-1][0].float().cpu().numpy()
        return self._silence

    def decode(self, final_layer: torch.Tensor) -> Transcript:
        """Decode text (and word timings) from the encoder's final-layer output, shape (1, frames, d)."""
        import ctranslate2

        frames = final_layer.detach().float().cpu().numpy()
        if frames.shape[1] == 0:
            return Transcript("", rejected="empty")
        silence = self._silence_frames()
        n_frames = frames.shape[1]
        window = np.concatenate([frames[0], silence[n_frames:]])[None] if n_frames < len(silence) else frames
        enc = ctranslate2.StorageView.from_array(np.ascontiguousarray(window))
        tokenizer = self.tokenizer
        language = self.language or "en"
        if self.multilingual and self.language is None:
            lang_token, _prob = self.whisper.model.detect_language(enc)[0][0]
            language = lang_token[2:-2]
            tokenizer = self._tokenizer_cls(self.whisper.hf_tokenizer, True, task="transcribe", language=language)
        prompt = list(tokenizer.sot_sequence) + [tokenizer.no_timestamps]
        result = None
        text = ""
        avg_logprob = cr = 0.0
        for temperature in (0.0, 0.4, 0.8):  # fallback on repetition / low confidence, as faster-whisper does
            kwargs = {"beam_size": self.cfg.beam_size} if temperature == 0 else {"beam_size": 1, "sampling_temperature": temperature, "sampling_topk": 0}
            result = self.whisper.model.generate(
                enc, [prompt], max_length=min(448, 32 + n_frames), return_scores=True, return_no_speech_prob=True,
                suppress_blank=True, suppress_tokens=[-1], **kwargs,
            )[0]
            tokens = result.sequences_ids[0]
            text = tokenizer.decode(tokens).strip()
            avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1) if tokens else -10.0
            cr = compression_ratio(text)
            if cr <= self.cfg.compression_ratio_threshold and avg_logprob >= self.cfg.log_prob_threshold:
                break
            if result.no_speech_prob > self.cfg.no_speech_threshold:
                break  # silence: no point in sampling
        assert result is not None
        tr = Transcript(text, language=language, avg_logprob=float(avg_logprob), no_speech_prob=float(result.no_speech_prob), compression_ratio=cr)
        reason = self._reject_reason(tr)
        if reason:
            tr.rejected, tr.text = reason, ""
            return tr
        if self.cfg.word_timestamps and text:
            tr.words = self._words(tokenizer, result.sequences_ids[0], enc, 2 * n_frames)
        return tr

    def align(self, audio: np.ndarray, text: str) -> list[Word]:
        """Word timings of a known ``text`` in ``audio`` (forced alignment with the decoder's cross-attention)."""
        import ctranslate2

        if not text.strip():
            return []
        states, n = self.encode(audio)
        frames = states[-1][:, :n].float().cpu().numpy()
        silence = self._silence_frames()
        window = np.concatenate([frames[0], silence[n:]])[None] if n < len(silence) else frames
        enc = ctranslate2.StorageView.from_array(np.ascontiguousarray(window))
        tokens = self.tokenizer.encode(" " + text.strip())[: 440]
        return self._words(self.tokenizer, tokens, enc, 2 * n)

    def _reject_reason(self, tr: Transcript) -> str:
        c = self.cfg
        if not tr.text:
            return "empty"
        if tr.no_speech_prob > c.no_speech_threshold and tr.avg_logprob < c.log_prob_threshold:
            return "no-speech"
        if tr.compression_ratio > c.compression_ratio_threshold:
            return "repetitive"
        if _HALLUCINATIONS.match(tr.text) and (tr.no_speech_prob > 0.3 or tr.avg_logprob < -0.7):
            return "hallucination"
        return ""

    def _words(self, tokenizer, tokens: list[int], enc, n_frames: int) -> list[Word]:
        from faster_whisper.transcribe import merge_punctuations

        text_tokens = [t for t in tokens if t < tokenizer.eot]
        try:
            alignment = self.whisper.find_alignment(tokenizer, [text_tokens], enc, n_frames)[0]
        except (RuntimeError, ValueError, IndexError) as exc:  # alignment is a nicety; the text stands without it
            logger.debug("word alignment failed: %s", exc)
            return []
        merge_punctuations(alignment, "\"'“¿([{-", "\"'.。,，!！?？:：”)]}、")
        return [Word(w["word"].strip(), round(float(w["start"]), 2), round(float(w["end"]), 2), float(w["probability"]))
                for w in alignment if w["word"].strip()]


def seconds(samples: int) -> float:
    return samples / SAMPLE_RATE
