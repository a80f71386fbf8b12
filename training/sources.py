"""Corpus sources: each ``[[data.sources]]`` corpus of a preset read into items, with its speaker-held-out splits."""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from dataclasses import dataclass, replace

from emomon.config import EmomonConfig, SourceConfig
from emomon.errors import ConfigError, InputError
from emomon.training.data import Item
from emomon.training.data.corpora import assign_splits, read_corpus

logger = logging.getLogger("emomon")


@dataclass
class Source:
    name: str
    config: SourceConfig
    items: list[Item]

    @property
    def has_audio(self) -> bool:
        return any(i.audio is not None for i in self.items)


def stable_hash(s: str) -> int:
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
                kept += sorted(split_items, key=lambda it: stable_hash(it.id))[: src.max_items]
            items = kept
        name = src.corpus if src.corpus not in names else f"{src.corpus}#{i}"
        names.add(name)
        out.append(Source(name, src, items))
    return out
