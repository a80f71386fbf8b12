"""The emotion label set shared by every model and corpus, and each corpus's map onto it."""

from __future__ import annotations

from emomon.errors import InputError

#: The seven classes of the seed (HyFusER Table 4), in the order every probability vector uses.
EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")

# Spellings found in the supported corpora, mapped onto EMOTIONS (lower-cased before lookup).
_ALIASES = {
    "anger": "angry",
    "ang": "angry",
    "angry": "angry",
    "mad": "angry",
    "disgust": "disgust",
    "disgusted": "disgust",
    "dis": "disgust",
    "fear": "fear",
    "fearful": "fear",
    "fea": "fear",
    "scared": "fear",
    "happy": "happy",
    "happiness": "happy",
    "joy": "happy",
    "hap": "happy",
    "exc": "happy",  # IEMOCAP 'excited' is merged with happy, as is usual for IEMOCAP 4/6-class setups
    "excited": "happy",
    "neutral": "neutral",
    "neu": "neutral",
    "calm": "neutral",
    "sad": "sad",
    "sadness": "sad",
    "surprise": "surprise",
    "surprised": "surprise",
    "sur": "surprise",
}


def normalize_label(raw: str, *, where: str = "") -> str:
    """Map a corpus label onto :data:`EMOTIONS`; an unknown label is an :class:`InputError`."""
    key = raw.strip().lower()
    if key in _ALIASES:
        return _ALIASES[key]
    place = f" in {where}" if where else ""
    raise InputError(
        f"unknown emotion label {raw!r}{place}; expected one of {', '.join(EMOTIONS)} (or a known alias such as joy, calm, fearful)"
    )
