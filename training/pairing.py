"""The pairing recipe: training examples drawn from unpaired corpora, and the fixed validation/test examples.

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

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from emomon.config import EmomonConfig
from emomon.errors import InputError
from emomon.training.data import Item
from emomon.training.feature_bank import FeatureBank
from emomon.training.features import text_key
from emomon.training.sources import Source


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
