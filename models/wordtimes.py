"""From ASR word timestamps to per-token times, for architectures that build a word-frame graph (complementary).

The text encoder's tokenizer splits the transcript differently from Whisper's words; both are tied to character
positions in the transcript, so each token gets the span of the words its characters overlap.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def word_char_spans(text: str, words: Sequence[tuple[str, float, float]]) -> list[tuple[int, int, float, float]]:
    """Locate each ASR word in ``text`` in order: (char start, char end, start s, end s); words not found are skipped."""
    out, cursor, lower = [], 0, text.lower()
    for word, start, end in words:
        w = word.strip()
        if not w:
            continue
        i = text.find(w, cursor)
        if i < 0:
            i = lower.find(w.lower(), cursor)
        if i < 0:
            continue
        out.append((i, i + len(w), float(start), float(end)))
        cursor = i + len(w)
    return out


def token_times(text: str, words: Sequence[tuple[str, float, float]], token_spans: Sequence[tuple[int, int] | None],
                offset: float = 0.0) -> np.ndarray:
    """(n_tokens, 2) [start, end] seconds relative to ``offset`` (the audio's start); NaN for tokens without words
    (special tokens, or text the ASR did not time)."""
    located = word_char_spans(text, words)
    times = np.full((len(token_spans), 2), np.nan, dtype=np.float32)
    for k, span in enumerate(token_spans):
        if span is None or span[1] <= span[0]:
            continue
        hits = [(s, e) for (a, b, s, e) in located if a < span[1] and span[0] < b]
        if hits:
            times[k] = (min(h[0] for h in hits) - offset, max(h[1] for h in hits) - offset)
    return times
