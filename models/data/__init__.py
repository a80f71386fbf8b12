"""Corpora as lists of :class:`Item`: one labelled utterance (audio, text, or both) with its speaker."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Item:
    """One labelled utterance.

    ``audio`` is a file (``start``/``end`` in seconds select a span of it when set); ``text`` is the corpus's
    transcript or ``None``. ``split`` is the corpus's own split (``train``/``val``/``test``) when it has one;
    speaker-held-out splits are assigned later from the preset.
    """

    id: str
    corpus: str
    label: str
    speaker: str
    audio: Path | None = None
    text: str | None = None
    split: str | None = None
    start: float | None = None
    end: float | None = None


__all__ = ["Item"]
