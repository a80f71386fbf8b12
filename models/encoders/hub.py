"""Loading transformers checkpoints by name or path, with one clear error when they are not available."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from emomon.errors import ModelError


def _offline() -> bool:
    return any(os.environ.get(v, "0") not in ("", "0", "false", "False") for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def load_pretrained(cls, source: str, **kwargs):
    """``cls.from_pretrained(source)`` from a local directory, the HF cache, or the hub when online.

    Weights are read from safetensors when the checkpoint has them; ``.bin`` (pickle) checkpoints are loaded by
    transformers with ``weights_only`` unpickling.
    """
    local = Path(source).expanduser()
    if local.exists() and not local.is_dir():
        raise ModelError(f"{source} is a file; give the checkpoint's directory")
    try:
        return cls.from_pretrained(str(local) if local.is_dir() else source, **kwargs)
    except OSError as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if local.is_dir():
            raise ModelError(f"cannot load {source}: {msg}") from None
        where = "offline mode is on (HF_HUB_OFFLINE)" if _offline() else "it could not be downloaded"
        raise ModelError(
            f"model {source!r} is not in the local Hugging Face cache and {where}; run once with internet access "
            f"(it is then cached), or give a local directory"
        ) from None
    except ValueError as exc:  # unrecognised config / model type
        raise ModelError(f"cannot load {source}: {str(exc).splitlines()[0]}") from None


def weights_digest(source: str) -> str:
    """A short identity of a checkpoint: hash of its weight files' sizes and heads (local), else its name."""
    local = Path(source).expanduser()
    if not local.is_dir():
        return source
    h = hashlib.sha256()
    for f in sorted(local.glob("*")):
        if f.suffix in (".safetensors", ".bin", ".json", ".txt", ".model") and f.is_file():
            h.update(f.name.encode())
            h.update(str(f.stat().st_size).encode())
            with open(f, "rb") as fh:
                h.update(fh.read(1 << 16))
    return h.hexdigest()[:16]
