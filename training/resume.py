"""Resuming an interrupted training (``emomon train ... --resume``).

Why: one training of the default model runs for about an hour on a 2-core CPU, and a closed laptop, a lost SSH
session or a ``kill`` would otherwise throw all of it away. After every finished epoch the training loop's whole state
(weights, optimiser and loss-scaler state, both random generators, the epoch records, the weights kept for a soup or
an epoch average) is written to ``<out>/resume.pt``, atomically, and removed when the training ends. A resumed run
starts at the next epoch and continues exactly as the uninterrupted run would have (the same examples, offsets and
dropout masks), so it ends with the same weights up to float rounding.

The file is read with ``torch.load(weights_only=True)``: tensors and plain containers only, never pickled code. The
preset is stored with it, and a resume under another preset is refused.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from emomon.config import EmomonConfig, config_to_dict
from emomon.errors import ConfigError, InputError
from emomon.files import atomic_write

logger = logging.getLogger("emomon")

RESUME_FILE = "resume.pt"
_FORMAT = "emomon-training-state-1"


@dataclass
class LoopState:
    """What the training loop carries from one epoch to the next."""

    epochs_done: int = 0
    best: float | None = -1.0
    best_epoch: int = -1
    bad: int = 0
    history: list[dict] = field(default_factory=list)
    ranked: list[tuple[float, int, dict]] = field(default_factory=list)  # train.soup candidates, best first
    averaged: list[dict] = field(default_factory=list)  # train.average_epochs weights


def _preset_json(cfg: EmomonConfig) -> str:
    return json.dumps(config_to_dict(cfg), sort_keys=True)


def save_training_state(out_dir: Path, cfg: EmomonConfig, loop: LoopState, model, opt, grad_scaler,
                        rng: np.random.Generator) -> None:
    """Write the state after ``loop.epochs_done`` epochs to ``out_dir/resume.pt`` (atomically: an interruption while
    writing leaves the previous epoch's file)."""
    doc = {
        "format": _FORMAT,
        "preset": _preset_json(cfg),
        "loop": {"epochs_done": loop.epochs_done, "best": loop.best, "best_epoch": loop.best_epoch, "bad": loop.bad,
                 "history": json.dumps(loop.history)},
        "ranked": [{"val": v, "epoch": e, "weights": w} for v, e, w in loop.ranked],
        "averaged": loop.averaged,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": opt.state_dict(),
        "grad_scaler": grad_scaler.state_dict(),
        "numpy_rng": json.dumps(rng.bit_generator.state),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(doc, buffer)
    atomic_write(out_dir / RESUME_FILE, buffer.getvalue())


def load_training_state(out_dir: Path, cfg: EmomonConfig, model, opt, grad_scaler, rng: np.random.Generator) -> LoopState:
    """Restore the state ``save_training_state`` wrote into ``model``, ``opt``, ``grad_scaler`` and ``rng``; returns the
    loop's own state. Errors are one-line: no state to resume, an unreadable file, or another preset."""
    path = Path(out_dir) / RESUME_FILE
    if not path.is_file():
        raise InputError(f"nothing to resume in {out_dir}: no {RESUME_FILE} (a training writes it after each epoch and "
                         "removes it when it ends)")
    try:
        doc = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(doc, dict) or doc.get("format") != _FORMAT:
            raise ValueError("not an emomon training state")
        loop = doc["loop"]
        state = LoopState(int(loop["epochs_done"]), loop["best"], int(loop["best_epoch"]), int(loop["bad"]),
                          json.loads(loop["history"]), [(r["val"], int(r["epoch"]), r["weights"]) for r in doc["ranked"]],
                          list(doc["averaged"]))
    except Exception as exc:  # noqa: BLE001 - a damaged or foreign file, whatever the unpickler or the keys raise
        raise InputError(f"{path} is not a readable training state ({type(exc).__name__}: {exc}); "
                         "train again without --resume") from None
    if doc["preset"] != _preset_json(cfg):
        ours, theirs = config_to_dict(cfg), json.loads(doc["preset"])
        raise ConfigError(f"--resume: the preset differs from the interrupted run's ({_first_difference(theirs, ours)}); "
                          "resume with the same preset and options")
    model.load_state_dict(doc["model"])
    opt.load_state_dict(doc["optimizer"])
    grad_scaler.load_state_dict(doc["grad_scaler"])
    rng.bit_generator.state = json.loads(doc["numpy_rng"])
    torch.set_rng_state(doc["torch_rng"])
    if doc.get("cuda_rng") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(doc["cuda_rng"])
    logger.info("resuming after epoch %d of %d (%s)", state.epochs_done, cfg.train.max_epochs, path)
    return state


def clear_training_state(out_dir: Path) -> None:
    (Path(out_dir) / RESUME_FILE).unlink(missing_ok=True)


def _first_difference(a, b, where: str = "") -> str:
    """The first key whose value differs between two nested dicts, as ``key: old -> new``."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                return _first_difference(a.get(k), b.get(k), f"{where}.{k}" if where else str(k))
    return f"{where}: {a!r} -> {b!r}"
