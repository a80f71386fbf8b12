"""Tuned top layers of a text encoder: the file format that ships beside a checkpoint, and loading it.

Training writes the file (``emomon.training.text_tuning``); the text encoder loads it over the packaged model, and
its SHA-256 is part of the encoder's fingerprint, so cached features never mix frozen and tuned states.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors

from emomon.errors import ConfigError, ModelError

TUNED_TEXT_FILE = "text_encoder.safetensors"


def tuned_parameter_names(model, tune_layers: int) -> list[str]:
    """Names of the parameters in the top ``tune_layers`` transformer layers of a BERT-like encoder."""
    layers = getattr(getattr(model, "encoder", None), "layer", None)
    if layers is None:
        raise ConfigError("encoders.text.tune_layers: this text encoder has no encoder.layer stack to tune")
    n = len(layers)
    keep = {f"encoder.layer.{i}." for i in range(max(0, n - tune_layers), n)}
    return [name for name, _ in model.named_parameters() if any(name.startswith(k) for k in keep)]


def load_tuned_layers(model, path: Path) -> str:
    """Load tuned layers over ``model`` (in place); returns the file's SHA-256. Errors are one-line ModelErrors."""
    try:
        blob = Path(path).read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read the tuned text encoder {path}: {exc.strerror or exc}") from None
    try:
        state = load_safetensors(blob)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise ModelError(f"{path} is not a readable safetensors file ({exc})") from None
    own = dict(model.named_parameters())
    bad = [k for k, v in state.items() if k not in own or own[k].shape != v.shape]
    if bad or not state:
        raise ModelError(f"{path} does not match the text encoder ({len(bad)} unknown or misshapen tensors, e.g. {bad[:1]})")
    with torch.no_grad():
        for k, v in state.items():
            if not torch.isfinite(v).all():
                raise ModelError(f"{path}: tensor {k} holds NaN or infinite values")
            own[k].copy_(v.to(own[k].dtype))
    return hashlib.sha256(blob).hexdigest()
