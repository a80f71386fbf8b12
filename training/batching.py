"""Batching: examples in training-sized slices, and each slice collated into padded tensors for the model."""

from __future__ import annotations

import numpy as np
import torch  # not deferred: Frames (emomon.models.frames) imports torch at import time anyway

from emomon.models.frames import Frames
from emomon.models.wordtimes import token_times
from emomon.training.feature_bank import FeatureBank
from emomon.training.pairing import Example


def batches(examples: list[Example], size: int):
    for i in range(0, len(examples), size):
        yield examples[i : i + size]


def branch_labelled(examples: list[Example]):
    """(batch, 2) bool tensor: whether each example's text, and its speech, by itself expresses the label."""
    return torch.tensor([[e.text_labelled, e.speech_labelled] for e in examples], dtype=torch.bool)


def collate(examples: list[Example], bank: FeatureBank, text_dim: int, speech_dim: int, frame_rate: float | None = None):
    """Padded :class:`Frames` for text and speech (absent modality = empty sequence), the label tensor, and - when
    ``frame_rate`` is given (word-graph architectures) - the ``token_times``/``speech_seconds`` extras."""
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
