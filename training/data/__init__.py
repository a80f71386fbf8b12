"""Corpora as lists of :class:`Item`: one labelled utterance (audio, text, or both) with its speaker."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from emomon.errors import InputError


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


def require_dir(root: Path, corpus: str) -> Path:
    """``root`` as a Path, or a one-line InputError when the corpus folder is missing."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise InputError(f"{corpus} corpus not found at {root}")
    return root


__all__ = ["Item", "require_dir"]
