"""Utterance transcription with faster-whisper's CTranslate2 decoder, from encoder frames computed once.

:class:`WhisperDecoder` takes the final layer of Whisper's encoder, run in PyTorch by whoever owns the device (see
:mod:`emomon.models.asr.encoder`), so the emotion model reuses the same pass instead of encoding the audio a second
time. Utterances come from the VAD segmenter and are at most 30 s, so each is decoded in
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
from emomon.errors import ModelError
from emomon.config import AsrConfig

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


class WhisperDecoder:
    """faster-whisper (CTranslate2) decoding from Whisper encoder frames computed elsewhere.

    The frames come from the PyTorch encoder that the inference worker owns (:mod:`emomon.models.asr.encoder`), so
    this object holds no PyTorch model and can live on the ASR thread. ``silence`` is the encoder's final-layer
    output for 30 s of silence, (1500, d): the tail that completes a short utterance's decoding window.
    """

    def __init__(self, cfg: AsrConfig, model_dir: Path, silence: np.ndarray, device: str = "cpu", cpu_threads: int = 0):
        # deferred: faster_whisper pulls in CTranslate2 and tokenizers; only a session or a transcription needs them
        from faster_whisper import WhisperModel
        from faster_whisper.tokenizer import Tokenizer

        self.cfg = cfg
        self.device = str(device)
        device_type = self.device.split(":")[0]
        compute_type = cfg.compute_type if device_type == "cpu" else "float16"
        try:
            self.whisper = WhisperModel(str(model_dir), device=device_type, compute_type=compute_type, cpu_threads=cpu_threads)
        except (RuntimeError, ValueError) as exc:
            raise ModelError(f"cannot load the ASR model {cfg.model!r}: {exc}") from None
        self.multilingual = bool(self.whisper.model.is_multilingual)
        language = None if cfg.language in ("", "auto") else cfg.language
        if not self.multilingual and language not in (None, "en"):
            raise ModelError(f"asr.model {cfg.model!r} is English-only; it cannot transcribe language {cfg.language!r}")
        self.language = language or ("en" if not self.multilingual else None)
        self._tokenizer_cls = Tokenizer
        self.tokenizer = Tokenizer(self.whisper.hf_tokenizer, self.multilingual, task="transcribe", language=self.language or "en")
        self.silence = np.asarray(silence, dtype=np.float32)

    def _window(self, frames: np.ndarray):
        """The utterance's frames completed with the silence tail to one 30 s window, as a CTranslate2 array."""
        # deferred: ctranslate2 comes with faster_whisper, loaded in __init__
        import ctranslate2

        frames = np.asarray(frames, dtype=np.float32)
        n = frames.shape[0]
        window = np.concatenate([frames, self.silence[n:]]) if n < len(self.silence) else frames
        return ctranslate2.StorageView.from_array(np.ascontiguousarray(window[None]))

    def decode(self, frames: np.ndarray) -> Transcript:
        """Decode text (and word timings) from one utterance's final-layer encoder frames, shape (frames, d)."""
        if frames.shape[0] == 0:
            return Transcript("", rejected="empty")
        n_frames = frames.shape[0]
        enc = self._window(frames)
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

    def align(self, frames: np.ndarray, text: str) -> list[Word]:
        """Word timings of a known ``text`` in an utterance, from its final-layer frames (forced alignment with the
        decoder's cross-attention)."""
        if not text.strip():
            return []
        enc = self._window(frames)
        tokens = self.tokenizer.encode(" " + text.strip())[: 440]
        return self._words(self.tokenizer, tokens, enc, 2 * frames.shape[0])

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
