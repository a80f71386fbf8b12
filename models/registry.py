"""Architecture name -> model class.

The model layer registers only what the product runs: HyFusER. The seed research architectures and baselines live
in ``emomon.training.architectures``, which registers them when training, evaluation or a benchmark imports it, so
the runtime never loads them (a replay of such a checkpoint is a one-line error that says where they are run).
"""

from __future__ import annotations

import importlib

from emomon.config import ARCHITECTURES
from emomon.errors import ConfigError

# arch name -> "module:Class", imported on first use so that a preset only pays for what it uses
_ARCHITECTURES: dict[str, str] = {
    "hyfuser": "emomon.models.hyfuser:HyFusER",
}


def register(arch: str, target: str) -> None:
    """Make ``arch`` buildable from ``"module:Class"`` (used by ``emomon.training.architectures``)."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"{arch!r} is not a configurable architecture (emomon.config.ARCHITECTURES)")
    _ARCHITECTURES[arch] = target


def architecture_names() -> tuple[str, ...]:
    return tuple(_ARCHITECTURES)


def model_class(arch: str):
    try:
        target = _ARCHITECTURES[arch]
    except KeyError:
        if arch in ARCHITECTURES:
            raise ConfigError(f"model.arch: {arch!r} is a research architecture; it runs in emomon train and emomon eval, "
                              f"not in the monitor (which runs: {', '.join(_ARCHITECTURES)})") from None
        raise ConfigError(f"model.arch: unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}") from None
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def build_model(cfg, text_dim: int, speech_dim: int, n_classes: int, scaler=None):
    """Instantiate ``cfg.model.arch`` (``cfg`` is an :class:`~emomon.config.EmomonConfig`)."""
    cls = model_class(cfg.model.arch)
    try:
        return cls(cfg.model, text_dim, speech_dim, n_classes, scaler)
    except ValueError as exc:
        raise ConfigError(f"model: {exc}") from None
