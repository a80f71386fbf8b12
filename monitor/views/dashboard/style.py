"""How the dashboard writes emotions and times: a fixed colour and a distinct letter per class (the word is always
written out next to its colour, for no-colour terminals and colour-blind users), session clocks and spans."""

from __future__ import annotations

from typing import Iterable

from rich.text import Text

#: Fixed colour per emotion; unknown classes take the fallback palette in class order.
EMOTION_COLOURS: dict[str, str] = {
    "angry": "red",
    "disgust": "green",
    "fear": "magenta",
    "happy": "yellow",
    "neutral": "grey62",
    "sad": "blue",
    "surprise": "cyan",
}
_FALLBACK_COLOURS = ("bright_red", "bright_green", "bright_magenta", "bright_yellow", "bright_blue", "bright_cyan",
                     "white")
_DARK = {"red", "blue", "magenta", "green", "bright_blue", "bright_magenta"}

MAX_NAME = 14  # speaker name columns


def clock(seconds: float) -> str:
    """``04:05`` or ``1:02:03``."""
    s = int(max(0.0, seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def span(seconds: float) -> str:
    """``45s``, ``2m10s``, ``1h05m``."""
    s = int(max(0.0, seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def _symbols(classes: Iterable[str]) -> dict[str, str]:
    """A distinct capital letter per class: its first letter, else the next unused letter of its name."""
    used: set[str] = set()
    out: dict[str, str] = {}
    for c in classes:
        cands = [ch.upper() for ch in c if ch.isalpha()] + [chr(i) for i in range(ord("A"), ord("Z") + 1)]
        sym = next((ch for ch in cands if ch not in used), "?")
        used.add(sym)
        out[c] = sym
    return out


class Palette:
    """The classes' colours and letters, and the styles built from them."""

    def __init__(self, classes: Iterable[str]):
        self.classes = tuple(classes)
        self.colours = {c: EMOTION_COLOURS.get(c, _FALLBACK_COLOURS[i % len(_FALLBACK_COLOURS)])
                        for i, c in enumerate(self.classes)}
        self.symbols = _symbols(self.classes)

    def emotion_style(self, emotion: str) -> str:
        return f"bold {self.colours.get(emotion, 'white')}"

    def word(self, emotion: str, confidence: float | None = None, pad: int = 0, unsure: bool = False) -> Text:
        """``happy 0.90`` in the class's colour; an unsure reading dim, with a ``?``: ``surprise? 0.43``."""
        name = f"{emotion}?" if unsure else emotion
        style = self.unsure_style(emotion) if unsure else self.emotion_style(emotion)
        t = Text(name.ljust(pad) if pad else name, style=style)
        if confidence is not None:
            t.append(f" {confidence:.2f}", style="dim" if unsure else "bold")
        return t

    def unsure_style(self, emotion: str) -> str:
        """An unsure reading: the class's colour, dim, never a filled block."""
        return f"dim {self.colours.get(emotion, 'white')}"

    def cell_style(self, emotion: str) -> str:
        colour = self.colours.get(emotion, "white")
        return f"bold {'white' if colour in _DARK else 'black'} on {colour}"
