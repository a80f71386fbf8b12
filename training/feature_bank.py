"""The feature bank: the encoder outputs a training or evaluation reads, by key, and each item's keys."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


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
