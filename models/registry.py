"""Architecture name -> model class, imported lazily so that a preset only pays for what it uses."""

from __future__ import annotations

import importlib

from emomon.errors import ConfigError

# arch name -> "module:Class" under emomon.models
_ARCHITECTURES: dict[str, str] = {
    "hyfuser": "emomon.models.hyfuser:HyFusER",
    "complementary": "emomon.models.complementary:ComplementaryFusion",
    "merhan": "emomon.models.merhan:MERHAN",
    "hff": "emomon.models.hff:HFF",
    "text_bilstm": "emomon.models.baselines:TextBiLSTM",
    "speech_cnn": "emomon.models.baselines:SpeechCNN",
    "avg_ensemble": "emomon.models.baselines:AverageEnsemble",
    "weighted_ensemble": "emomon.models.baselines:WeightedEnsemble",
    "bcma": "emomon.models.baselines:BCMA",
    "kohmt": "emomon.models.baselines:KoHMT",
}


def architecture_names() -> tuple[str, ...]:
    return tuple(_ARCHITECTURES)


def model_class(arch: str):
    try:
        target = _ARCHITECTURES[arch]
    except KeyError:
        raise ConfigError(f"model.arch: unknown architecture {arch!r}; known: {', '.join(_ARCHITECTURES)}") from None
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def build_model(cfg, text_dim: int, speech_dim: int, n_classes: int, scaler=None):
    """Instantiate ``cfg.model.arch`` (``cfg`` is an :class:`~emomon.config.EmomonConfig`)."""
    cls = model_class(cfg.model.arch)
    try:
        return cls(cfg.model, text_dim, speech_dim, n_classes, scaler)
    except ValueError as exc:
        raise ConfigError(f"model: {exc}") from None
