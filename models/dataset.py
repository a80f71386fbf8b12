"""Training data: corpora -> cached encoder features -> examples, with the recipe that pairs unpaired corpora.

The corpora here are unpaired: emotional speech whose words are neutral (RAVDESS, nEMO) or withheld (ASED), and
emotional text without audio (MELD, GoEmotions). Each training example still needs both modalities, so an epoch is
drawn as follows (settings in ``[data]``):

- a clip with its own text (transcript or ASR) keeps it; a clip without text gets, with ``p_label_pair``, a random
  sentence of the same label from the text corpora, otherwise a random *neutral* sentence;
- a sentence without audio gets its espeak-ng rendering when one was made (``synth_sentences``: a flat voice says
  nothing about emotion), otherwise, with ``p_label_pair``, a random clip of the same label, or else a random
  *neutral* clip;
- then modality dropout: the text is removed with ``p_text_drop``, or the speech with ``p_speech_drop``.

Each example also records which of its modalities itself expresses the label (``text_labelled``/``speech_labelled``):
a clip's own audio, a corpus text whose source says ``text_labelled`` (not RAVDESS's or nEMO's fixed sentences), and a
same-label partner do; a neutral partner and an espeak-ng rendering do not. The fused output learns from every
example; with ``train.branch_label_mask`` a single-modality branch (``models/branches.py``) learns only from the
examples whose modality carries the label, since it cannot see the other modality that explains it.

So the label always follows the modality that carries emotion, both agree when both carry it, and either may be
missing - which is what the monitor meets live (flat delivery of emotional words, emotional delivery of neutral
words, utterances the ASR rejected).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field, replace

import numpy as np

from emomon.errors import ConfigError, InputError
from emomon.config import EmomonConfig, SourceConfig
from emomon.models.data import Item
from emomon.models.data.corpora import assign_splits, read_corpus
from emomon.models.features import FeatureStore, file_key, text_key

logger = logging.getLogger("emomon")

MAX_CLIP_SECONDS = 30.0


@dataclass
class Source:
    name: str
    config: SourceConfig
    items: list[Item]

    @property
    def has_audio(self) -> bool:
        return any(i.audio is not None for i in self.items)


def _stable_hash(s: str) -> int:
    return int.from_bytes(hashlib.sha1(s.encode()).digest()[:8], "little")


def load_sources(cfg: EmomonConfig, splits: tuple[str, ...] = ("train", "val", "test")) -> list[Source]:
    """Read every ``[[data.sources]]`` corpus, assign speaker-held-out splits and apply ``max_items``."""
    if not cfg.data.sources:
        raise ConfigError("data.sources: the preset names no corpora to train on")
    out, names = [], set()
    for i, src in enumerate(cfg.data.sources):
        path = cfg.source_path(src)
        try:
            items = read_corpus(src.corpus, path)
        except InputError as exc:
            if src.required:
                raise
            logger.warning("skipping %s: %s", src.corpus, exc)
            continue
        items = assign_splits(items, src.test_speakers, src.val_speakers, src.test_fraction, src.val_fraction,
                              where=f"data.sources[{i}].")
        if src.text == "none":
            items = [replace(it, text=None) for it in items]
        items = [it for it in items if it.split in splits]
        if src.max_items:
            kept = []
            by_split = defaultdict(list)
            for it in items:
                by_split[it.split].append(it)
            for split_items in by_split.values():
                kept += sorted(split_items, key=lambda it: _stable_hash(it.id))[: src.max_items]
            items = kept
        name = src.corpus if src.corpus not in names else f"{src.corpus}#{i}"
        names.add(name)
        out.append(Source(name, src, items))
    return out


# ------------------------------------------------------------------------------------------------ features
@dataclass
class FeatureBank:
    """Encoder outputs by key, and each item's keys."""

    speech: dict[str, np.ndarray] = field(default_factory=dict)  # key -> (frames, dim) float16
    text: dict[str, np.ndarray] = field(default_factory=dict)  # key -> (tokens, dim) float16
    speech_keys: dict[str, list[str]] = field(default_factory=dict)  # item id -> [clean, aug1, ...]
    text_of: dict[str, str | None] = field(default_factory=dict)  # item id -> text (None = none)
    synth_key: dict[str, str] = field(default_factory=dict)  # text-only item id -> speech key of its rendering
    #: For architectures with a word-frame graph: speech key -> [(word, start s, end s)] of its own text, and
    #: text key -> each token's character span.
    word_times: dict[str, list] = field(default_factory=dict)
    token_spans: dict[str, list] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)  # text key -> the text
    frame_rate: float = 50.0  # speech frames per second (set from the encoder)
    #: Speaker baseline normalisation (models/speaker_baseline.py): who speaks in each speech key (one id per
    #: corpus speaker and augmentation copy, or per espeak-ng voice), and the offset each key's frames get added.
    speaker_of: dict[str, str] = field(default_factory=dict)
    offsets: dict[str, np.ndarray] = field(default_factory=dict)
    offsets_owner: object = None  # the SpeakerBaselineOptions the offsets were computed with

    means: dict[str, np.ndarray] = field(default_factory=dict)  # speech key -> its mean frame, computed once

    def utterance_mean(self, key: str) -> np.ndarray:
        if key not in self.means:
            self.means[key] = self.speech[key].astype(np.float32).mean(0)
        return self.means[key]

    def speech_frames(self, key: str) -> np.ndarray:
        """A speech key's frames with its speaker-baseline offset applied (when one is set)."""
        x = self.speech[key]
        off = self.offsets.get(key)
        return x if off is None else x.astype(np.float32) + off


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
            from emomon.models.encoders import build_speech_encoder

            self._speech = build_speech_encoder(self.cfg.encoders.speech, self.device)
        return self._speech

    @property
    def text_encoder(self):
        if self._text is None:
            from emomon.models.encoders import build_text_encoder

            self._text = build_text_encoder(self.cfg.encoders.text, self.device, self.text_layers)
        return self._text

    @property
    def transcriber(self):
        if self._asr is None:
            from emomon.models.encoders.whisper import WhisperSpeechEncoder
            from emomon.transcribe import Transcriber

            shared = self.speech_encoder if isinstance(self.speech_encoder, WhisperSpeechEncoder) and self.speech_encoder.model_name == self.cfg.asr.model else None
            self._asr = Transcriber(self.cfg.asr, device=self.device, encoder=shared)
        return self._asr

    def fingerprints(self) -> dict[str, str]:
        return {"text": self.text_encoder.fingerprint, "speech": self.speech_encoder.fingerprint}

    # ------------------------------------------------------------------------------------------- audio
    @staticmethod
    def _load(item: Item) -> np.ndarray | None:
        from emomon.audio import load_audio

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
            from emomon.monitor.segmenter import cut_like_monitor

            audio = cut_like_monitor(audio, self.cfg.segmenter)
        return audio

    def speech_features(self, source: Source, bank: FeatureBank, copies: int) -> None:
        """Clean features for every clip, plus ``copies`` augmented ones for training clips of augmented sources."""
        from emomon.models.data.augment import augment, seed_for

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

        from emomon.transcribe import DECODER_VERSION

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
        from emomon.models.data.synth import speak, speak_varied, varied_voice

        enc = self.speech_encoder
        tag = f"synth-{voice}" if voice else "synth"
        key_of = {it.id: f"{tag}:{text_key(it.text)}" for it in items if it.text}
        sentence = {key_of[it.id]: it.text for it in items if it.id in key_of}  # a sentence items share is read once

        def compute(ks: list[str]) -> list[np.ndarray]:
            audios = [speak(sentence[k], voice=voice) if voice else speak_varied(sentence[k], k) for k in ks]
            return enc.encode(audios).unbatch()

        arrays = self.store.arrays(enc.fingerprint, tag, list(sentence), compute, batch_size=8, description="espeak-ng renderings")
        bank.speech.update(arrays)
        bank.synth_key.update(key_of)  # every item gets its sentence's reading, shared or not
        for k in sentence:
            bank.speaker_of[k] = f"espeak:{voice or varied_voice(k)[0]}"

    def alignments(self, sources: list[Source], bank: FeatureBank) -> None:
        """Word timings of each clip's own text (clean audio and espeak-ng renderings), by forced alignment."""
        import json

        from emomon.models.data.synth import speak, speak_varied

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
                    audio = speak(text, voice=voice) if voice else speak_varied(text, k)
                words = asr.align(audio, text) if audio is not None else []
                out.append(json.dumps([[w.word, w.start, w.end] for w in words]))
            return out

        from emomon.transcribe import DECODER_VERSION

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
                    mine = sorted((it for it in s.items if it.split == "train" and it.text), key=lambda it: _stable_hash(it.id))
                    pool += mine[: self.cfg.data.synth_sentences]
            self.synth_features(pool, bank)
        self.text_features([t for t in bank.text_of.values() if t], bank)
        if word_times:
            self.alignments(sources, bank)
        return bank


# ------------------------------------------------------------------------------------------------ examples
@dataclass(frozen=True)
class Example:
    """Keys into a :class:`FeatureBank` (``None`` = modality absent) and the class index."""

    speech: str | None
    text: str | None
    label: int
    source: str
    #: The speech and the text are the same utterance (its own words), so word timings apply.
    timed: bool = False
    #: The text (resp. speech) by itself expresses the label; False for a neutral partner, a flat espeak-ng rendering
    #: or a corpus that reads fixed sentences in every emotion. With ``train.branch_label_mask`` the single-modality
    #: branches learn only where it is True (:func:`branch_labelled`).
    text_labelled: bool = True
    speech_labelled: bool = True
    #: The corpus item this example was made from, where one item makes it (evaluation sets: the model card groups
    #: its examples by the item's speaker or dialogue); None for training examples.
    item: str | None = None


class ExampleSampler:
    """Draws training epochs by the pairing recipe and builds the fixed validation/test example sets."""

    def __init__(self, cfg: EmomonConfig, sources: list[Source], bank: FeatureBank):
        self.cfg = cfg
        self.sources = sources
        self.bank = bank
        self.class_index = {c: i for i, c in enumerate(cfg.classes)}
        self.text_labelled = {src.name: src.config.text_labelled for src in sources}
        self.train_items: dict[str, list[Item]] = {}
        speech_by_label: dict[str, list[str]] = defaultdict(list)
        text_by_label: dict[str, list[str]] = defaultdict(list)
        for src in sources:
            usable = [it for it in src.items if it.label in self.class_index and self._usable(it)]
            self.train_items[src.name] = [it for it in usable if it.split == "train"]
            for it in self.train_items[src.name]:
                if it.id in bank.speech_keys:
                    speech_by_label[it.label] += bank.speech_keys[it.id]
                elif bank.text_of.get(it.id):
                    text_by_label[it.label].append(text_key(bank.text_of[it.id]))
        self.speech_by_label, self.text_by_label = dict(speech_by_label), dict(text_by_label)
        if not any(self.train_items.values()):
            raise InputError("no training examples: every source's train split is empty (check paths and speakers)")

    def _usable(self, it: Item) -> bool:
        return it.id in self.bank.speech_keys or bool(self.bank.text_of.get(it.id))

    def _text_key(self, it: Item) -> str | None:
        t = self.bank.text_of.get(it.id)
        return text_key(t) if t else None

    def _partner(self, rng: np.random.Generator, pools: dict[str, list[str]], label: str) -> tuple[str | None, bool]:
        """A partner key from the same label's pool (with ``p_label_pair``) or the neutral pool, and whether it is
        of the item's label."""
        d = self.cfg.data
        chosen = label if rng.random() < d.p_label_pair else "neutral"
        if not pools.get(chosen):
            chosen = "neutral" if pools.get("neutral") else label
        pool = pools.get(chosen)
        return (pool[rng.integers(len(pool))], chosen == label) if pool else (None, False)

    def draw(self, rng: np.random.Generator, it: Item, source: str) -> Example:
        d = self.cfg.data
        speech_keys = self.bank.speech_keys.get(it.id)
        text = self._text_key(it)
        own = text is not None
        text_labelled = self.text_labelled[source]
        if speech_keys:
            speech, speech_labelled = speech_keys[rng.integers(len(speech_keys))], True
            own = own and speech == speech_keys[0]  # augmented copies (speed changes) lose the word timings
            if text is None and self.text_by_label:
                text, text_labelled = self._partner(rng, self.text_by_label, it.label)
        else:
            speech, speech_labelled = self.bank.synth_key.get(it.id), False  # a flat voice says nothing
            own = own and speech is not None
            if speech is None and self.speech_by_label:
                speech, speech_labelled = self._partner(rng, self.speech_by_label, it.label)
        r = rng.random()
        if r < d.p_text_drop and speech is not None:
            text = None
        elif r < d.p_text_drop + d.p_speech_drop and text is not None:
            speech = None
        return Example(speech, text, self.class_index[it.label], source, timed=own and speech is not None and text is not None,
                       text_labelled=text_labelled, speech_labelled=speech_labelled)

    def epoch(self, rng: np.random.Generator, size: int = 0) -> list[Example]:
        """One epoch: ``size`` examples split across sources by weight (0 = one pass over every train item)."""
        weights = {s.name: s.config.weight for s in self.sources if self.train_items.get(s.name)}
        total_w = sum(weights.values()) or 1.0
        examples = []
        for name, w in weights.items():
            items = self.train_items[name]
            n = len(items) if size == 0 else max(1, int(round(size * w / total_w)))
            order = np.concatenate([rng.permutation(len(items)) for _ in range(n // len(items) + 1)])[:n]
            examples += [self.draw(rng, items[i], name) for i in order]
        rng.shuffle(examples)
        return examples

    def fixed(self, split: str, mode: str = "paired") -> dict[str, list[Example]]:
        return fixed_examples(self.cfg, self.sources, self.bank, split, mode)


def fixed_examples(cfg: EmomonConfig, sources: list[Source], bank: FeatureBank, split: str, mode: str = "paired") -> dict[str, list[Example]]:
    """Deterministic examples of a split per source.

    ``paired``: clean speech with the item's own text (a text-only item gets its rendering if it has one, else no
    speech); ``text-only`` drops speech; ``speech-only`` drops text. An item whose audio could not be read is left
    out of every mode, so that no figure counts it as text alone.
    """
    class_index = {c: i for i, c in enumerate(cfg.classes)}
    out: dict[str, list[Example]] = {}
    for src in sources:
        exs = []
        for it in src.items:
            if it.split != split or it.label not in class_index:
                continue
            keys = bank.speech_keys.get(it.id)
            if it.audio is not None and not keys:  # its audio could not be read (warned when building): not scored
                continue
            speech = keys[0] if keys else bank.synth_key.get(it.id)
            text = bank.text_of.get(it.id)
            text = text_key(text) if text else None
            if mode == "text-only":
                speech = None
            elif mode == "speech-only":
                text = None
            if speech is None and text is None:
                continue
            exs.append(Example(speech, text, class_index[it.label], src.name, timed=speech is not None and text is not None,
                               item=it.id))
        if exs:
            out[src.name] = exs
    return out


def batches(examples: list[Example], size: int):
    for i in range(0, len(examples), size):
        yield examples[i : i + size]


def branch_labelled(examples: list[Example]):
    """(batch, 2) bool tensor: whether each example's text, and its speech, by itself expresses the label."""
    import torch

    return torch.tensor([[e.text_labelled, e.speech_labelled] for e in examples], dtype=torch.bool)


def collate(examples: list[Example], bank: FeatureBank, text_dim: int, speech_dim: int, frame_rate: float | None = None):
    """Padded :class:`Frames` for text and speech (absent modality = empty sequence), the label tensor, and - when
    ``frame_rate`` is given (word-graph architectures) - the ``token_times``/``speech_seconds`` extras."""
    import torch

    from emomon.models.encoders.base import Frames
    from emomon.models.wordtimes import token_times

    empty_t = np.zeros((0, text_dim), np.float32)
    empty_s = np.zeros((0, speech_dim), np.float32)
    text = Frames.pad([bank.text[e.text] if e.text else empty_t for e in examples], dim=text_dim)
    speech = Frames.pad([bank.speech_frames(e.speech) if e.speech else empty_s for e in examples], dim=speech_dim)
    labels = torch.tensor([e.label for e in examples], dtype=torch.long)
    if frame_rate is None:
        return text, speech, labels, None
    times = []
    for e in examples:
        words = bank.word_times.get(e.speech) if e.timed else None
        spans = bank.token_spans.get(e.text) if e.text else None
        if words and spans:
            times.append(token_times(bank.texts[e.text], words, spans))
        else:  # no timing: the model spreads the tokens uniformly over the speech
            times.append(np.full((len(spans) if spans else 1, 2), np.nan, np.float32))
    seconds = torch.tensor([(len(bank.speech[e.speech]) / frame_rate) if e.speech else 0.0 for e in examples])
    return text, speech, labels, {"token_times": times, "speech_seconds": seconds}

