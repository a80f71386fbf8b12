"""Building features: every corpus clip and sentence encoded (speech, text, espeak-ng renderings), transcribed and
word-aligned as a preset's training or evaluation needs it, through the disk cache, into a :class:`FeatureBank`."""

from __future__ import annotations

import json
import logging
from collections import defaultdict

import numpy as np

from emomon.audio.decode import load_audio
from emomon.audio.segmenter import cut_like_monitor
from emomon.config import EmomonConfig
from emomon.errors import InputError
from emomon.models.asr.decoder import DECODER_VERSION
from emomon.models.asr.transcriber import Transcriber
from emomon.models.asr.encoder import WhisperSpeechEncoder
from emomon.models.encoders import build_speech_encoder, build_text_encoder
from emomon.training.data import Item
from emomon.training.data import synth  # used as synth.speak(...), so a test can stand in for espeak-ng
from emomon.training.data.augment import augment, seed_for
from emomon.training.feature_bank import FeatureBank
from emomon.training.features import FeatureStore, file_key, text_key
from emomon.training.sources import Source, stable_hash

logger = logging.getLogger("emomon")

MAX_CLIP_SECONDS = 30.0


class FeatureBuilder:
    """Computes (or loads from the cache) everything a preset's training or evaluation needs."""

    def __init__(self, cfg: EmomonConfig, store: FeatureStore | None = None, device: str = "cpu", text_layers=None):
        self.cfg = cfg
        self.store = store or FeatureStore()
        self.device = device
        self.text_layers = text_layers  # tuned text encoder layers (models/text_tuning.py), when the preset tunes them
        self._speech = self._text = self._asr = None

    @property
    def speech_encoder(self):
        if self._speech is None:
            self._speech = build_speech_encoder(self.cfg.encoders.speech, self.device)
        return self._speech

    @property
    def text_encoder(self):
        if self._text is None:
            self._text = build_text_encoder(self.cfg.encoders.text, self.device, self.text_layers)
        return self._text

    @property
    def transcriber(self):
        if self._asr is None:
            shared = self.speech_encoder if isinstance(self.speech_encoder, WhisperSpeechEncoder) and self.speech_encoder.model_name == self.cfg.asr.model else None
            self._asr = Transcriber(self.cfg.asr, device=self.device, encoder=shared)
        return self._asr

    def fingerprints(self) -> dict[str, str]:
        return {"text": self.text_encoder.fingerprint, "speech": self.speech_encoder.fingerprint}

    # ------------------------------------------------------------------------------------------- audio
    @staticmethod
    def _load(item: Item) -> np.ndarray | None:
        try:
            audio = load_audio(item.audio, start=item.start, end=item.end, max_seconds=MAX_CLIP_SECONDS)
        except InputError as exc:
            logger.warning("skipping %s: %s", item.id, exc)
            return None
        return audio if len(audio) >= 1600 else None  # < 0.1 s is not an utterance

    def clip_audio(self, item: Item) -> np.ndarray | None:
        """A clip's audio as the speech encoder gets it: decoded, and cut as the monitor would hand it over when the
        preset says ``data.cut_like_monitor`` (before any augmentation: a room adds to all of it)."""
        audio = self._load(item)
        if audio is not None and self.cfg.data.cut_like_monitor:
            audio = cut_like_monitor(audio, self.cfg.segmenter)
        return audio

    def speech_features(self, source: Source, bank: FeatureBank, copies: int) -> None:
        """Clean features for every clip, plus ``copies`` augmented ones for training clips of augmented sources."""
        enc = self.speech_encoder
        items = [it for it in source.items if it.audio is not None]
        if not items:
            return
        train = [it for it in items if it.split == "train"]
        cut = self.cfg.data.cut_like_monitor
        by_key: dict[str, tuple[Item, int]] = {}
        per_item: dict[str, list[str]] = defaultdict(list)
        for it in items:
            n_copies = copies if (it.split == "train" and source.config.augment) else 0
            for v in range(n_copies + 1):
                try:
                    key = file_key(it.audio, f"{it.start}-{it.end}#v{v}" + ("#cut" if cut else ""))
                except OSError:
                    logger.warning("skipping %s: cannot stat %s", it.id, it.audio)
                    break
                by_key[key] = (it, v)
                per_item[it.id].append(key)
                bank.speaker_of[key] = f"{source.name}:{it.speaker}#v{v}"
        babble_pool = train or items

        def compute(keys: list[str]) -> list[np.ndarray]:
            audios = []
            for k in keys:
                it, v = by_key[k]
                audio = self.clip_audio(it)
                if audio is None:
                    audios.append(None)
                    continue
                if v > 0:
                    other = babble_pool[seed_for(it.id, v) % len(babble_pool)]
                    babble = self._load(other) if other.speaker != it.speaker else None
                    audio = augment(audio, seed_for(it.id, v), babble=babble)
                audios.append(audio)
            ok = [a for a in audios if a is not None]
            frames = enc.encode(ok).unbatch() if ok else []
            it_frames = iter(frames)
            return [next(it_frames) if a is not None else np.zeros((0, enc.dim), np.float32) for a in audios]

        arrays = self.store.arrays(enc.fingerprint, f"speech-{source.name}", list(by_key), compute, batch_size=8,
                                   description=f"speech features {source.name}")
        bank.speech.update(arrays)
        for item_id, keys in per_item.items():
            keys = [k for k in keys if arrays[k].shape[0] > 0]
            if keys:
                bank.speech_keys[item_id] = keys

    # ------------------------------------------------------------------------------------------- text
    def transcripts(self, source: Source) -> dict[str, tuple[str, float]]:
        """ASR transcripts of the source's clips, cached: item id -> (text, '' when the ASR heard no speech; the
        transcript's average token log-probability, which ``model.min_asr_logprob`` reads)."""
        items = [it for it in source.items if it.audio is not None]
        keys = {file_key(it.audio, f"{it.start}-{it.end}"): it for it in items}
        asr = self.transcriber

        def compute(ks: list[str]) -> list[str]:
            out = []
            for k in ks:
                audio = self._load(keys[k])
                tr = asr.transcribe(audio) if audio is not None else None
                out.append(json.dumps([tr.text, round(tr.avg_logprob, 4)] if tr is not None else ["", 0.0]))
            return out

        # ":lp": entries are [text, avg_logprob] (the text-only entries before them lack what the threshold reads)
        fp = f"asr:{asr.encoder.model_fingerprint}:{self.cfg.asr.language}:{self.cfg.asr.beam_size}:v{DECODER_VERSION}:lp"
        got = self.store.strings(fp, f"asr-{source.name}", list(keys), compute, description=f"transcribing {source.name}")
        return {keys[k].id: tuple(json.loads(v)) for k, v in got.items()}

    def text_features(self, texts: list[str], bank: FeatureBank) -> None:
        unique = sorted({t for t in texts if t})
        if not unique:  # speech-only sources: the text encoder is not even loaded
            return
        enc = self.text_encoder
        keys = [text_key(t) for t in unique]
        lookup = dict(zip(keys, unique))

        def compute(ks: list[str]) -> list[np.ndarray]:
            return enc.encode([lookup[k] for k in ks]).unbatch()

        bank.text.update(self.store.arrays(enc.fingerprint, "text", keys, compute, batch_size=64, description="text features"))
        bank.texts.update(lookup)

    def synth_features(self, items: list[Item], bank: FeatureBank, voice: str | None = None) -> None:
        """espeak-ng renderings of text-only items (flat voice), encoded like any clip.

        ``voice=None`` varies voice, rate and pitch per sentence (training); a voice name reads all with it.
        """
        enc = self.speech_encoder
        tag = f"synth-{voice}" if voice else "synth"
        key_of = {it.id: f"{tag}:{text_key(it.text)}" for it in items if it.text}
        sentence = {key_of[it.id]: it.text for it in items if it.id in key_of}  # a sentence items share is read once

        def compute(ks: list[str]) -> list[np.ndarray]:
            audios = [synth.speak(sentence[k], voice=voice) if voice else synth.speak_varied(sentence[k], k) for k in ks]
            return enc.encode(audios).unbatch()

        arrays = self.store.arrays(enc.fingerprint, tag, list(sentence), compute, batch_size=8, description="espeak-ng renderings")
        bank.speech.update(arrays)
        bank.synth_key.update(key_of)  # every item gets its sentence's reading, shared or not
        for k in sentence:
            bank.speaker_of[k] = f"espeak:{voice or synth.varied_voice(k)[0]}"

    def alignments(self, sources: list[Source], bank: FeatureBank) -> None:
        """Word timings of each clip's own text (clean audio and espeak-ng renderings), by forced alignment."""
        jobs: dict[str, tuple] = {}
        for src in sources:
            for it in src.items:
                text = bank.text_of.get(it.id)
                keys = bank.speech_keys.get(it.id)
                if text and keys:
                    jobs[keys[0]] = ("clip", it, text)
                elif it.id in bank.synth_key and it.text:
                    jobs[bank.synth_key[it.id]] = ("synth", it, it.text)
        asr = self.transcriber

        def compute(ks: list[str]) -> list[str]:
            out = []
            for k in ks:
                kind, it, text = jobs[k]
                if kind == "clip":
                    audio = self._load(it)
                else:
                    voice = k.split(":", 1)[0].removeprefix("synth-") if k.startswith("synth-") else None
                    audio = synth.speak(text, voice=voice) if voice else synth.speak_varied(text, k)
                words = asr.align(audio, text) if audio is not None else []
                out.append(json.dumps([[w.word, w.start, w.end] for w in words]))
            return out

        fp = f"align:{asr.encoder.model_fingerprint}:v{DECODER_VERSION}"
        got = self.store.strings(fp, "align", list(jobs), compute, description="aligning words")
        bank.word_times.update({k: [tuple(w) for w in json.loads(v)] for k, v in got.items()})
        texts = sorted({t for _, _, t in jobs.values()})
        for t, spans in zip(texts, self.text_encoder.token_spans(texts)):
            bank.token_spans[text_key(t)] = spans

    # ------------------------------------------------------------------------------------------- all
    def build(self, sources: list[Source], *, train: bool = True, word_times: bool = False) -> FeatureBank:
        bank = FeatureBank()
        copies = self.cfg.data.augment_copies if train else 0
        for src in sources:
            if src.has_audio:
                self.speech_features(src, bank, copies)
            asr_text = self.transcripts(src) if src.config.text == "asr" and src.has_audio else {}
            for it in src.items:
                if src.config.text == "none":
                    bank.text_of[it.id] = None
                elif src.config.text == "asr" and it.audio is not None:
                    text, avg_logprob = asr_text.get(it.id, ("", 0.0))
                    bank.text_of[it.id] = text if self.cfg.model.reads_transcript(text, avg_logprob) else None
                else:
                    bank.text_of[it.id] = it.text or None
        if train and self.cfg.data.synth_sentences:
            pool = []
            for s in sources:  # the same number from each text corpus, so a big one does not crowd out the others
                if not s.has_audio:
                    mine = sorted((it for it in s.items if it.split == "train" and it.text), key=lambda it: stable_hash(it.id))
                    pool += mine[: self.cfg.data.synth_sentences]
            self.synth_features(pool, bank)
        self.text_features([t for t in bank.text_of.values() if t], bank)
        if word_times:
            self.alignments(sources, bank)
        return bank
