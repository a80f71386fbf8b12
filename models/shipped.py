"""Finding a checkpoint by name or path, and what emomon ships, without torch.

The command line checks ``--model``, ``emomon eval CHECKPOINT`` and ``emomon info`` with these before anything heavy
loads: a checkpoint's ``config.json`` is validated by :mod:`emomon.models.checkpoint_schema`, which imports no torch
either. :mod:`emomon.models.checkpoint` (which loads weights, with torch) re-exports every name here.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from emomon.config import EmomonConfig, shown
from emomon.errors import ModelError
from emomon.models.checkpoint_schema import CONFIG_FILE, WEIGHTS_FILE, CheckpointDocument, read_document

#: The shipped model: the five-member ensemble of the en-tiny recipe line (models/weights/hyfuser-tiny-en).
DEFAULT_CHECKPOINT = "hyfuser-tiny-en"
#: Old names of shipped checkpoints -> the folder they name now. "en-tiny" was the shipped model's name until it was
#: renamed so that it no longer shares its name with the stage-1 training recipe; old presets (``runtime.model``),
#: ``--model en-tiny`` and checkpoints trained with ``encoders.text.tuned_from = "en-tiny"`` keep loading it.
CHECKPOINT_ALIASES = {"en-tiny": DEFAULT_CHECKPOINT}
#: The licence of each shipped checkpoint's weights (the code is MIT; the weights inherit their training corpora's
#: terms: LICENSE, docs/MODEL_CARD.md). A checkpoint's config.json does not record it.
SHIPPED_LICENCES = {
    DEFAULT_CHECKPOINT: "weights CC BY-NC-SA 4.0 (inherited from RAVDESS and nEMO: non-commercial use, share-alike); "
                        "code MIT; see LICENSE",
}


def packaged_checkpoints() -> list[str]:
    """The shipped checkpoints' names (their folders; aliases not included)."""
    root = resources.files("emomon.models.weights")
    return sorted(p.name for p in root.iterdir() if p.is_dir() and p.joinpath(CONFIG_FILE).is_file())


def shipped_name(name_or_path: str | Path) -> str | None:
    """The shipped checkpoint a name means (``en-tiny`` -> ``hyfuser-tiny-en``), or None when it names none."""
    name = CHECKPOINT_ALIASES.get(str(name_or_path), str(name_or_path))
    return name if name in packaged_checkpoints() else None


def resolve_checkpoint(name_or_path: str | Path) -> Path:
    """A checkpoint directory from a path (directory, or either of its two files) or a packaged name."""
    try:
        p = Path(name_or_path).expanduser()
        if p.is_file() and p.name in (CONFIG_FILE, WEIGHTS_FILE):
            p = p.parent
        if p.is_dir():
            return p
        if p.exists():
            raise ModelError(f"{p} is not a checkpoint: give the directory holding {CONFIG_FILE} and {WEIGHTS_FILE}")
        if "/" not in str(name_or_path):
            name = CHECKPOINT_ALIASES.get(str(name_or_path), str(name_or_path))
            res = resources.files("emomon.models.weights").joinpath(name)
            if res.is_dir() and res.joinpath(CONFIG_FILE).is_file():
                return Path(str(res))
    except (OSError, RuntimeError, ValueError) as exc:  # a name too long, ~user of no user, a NUL character
        raise ModelError(f"checkpoint {shown(str(name_or_path))} cannot be looked up: {getattr(exc, 'strerror', None) or exc}") from None
    aliases = [f"{old} = {new}" for old, new in CHECKPOINT_ALIASES.items()]
    shipped = ", ".join(packaged_checkpoints()) or "none"
    shipped += f"; old names: {', '.join(aliases)}" if aliases else ""
    raise ModelError(f"checkpoint not found: {name_or_path} (shipped checkpoints: {shipped})")


def read_checkpoint(name_or_path: str | Path) -> CheckpointDocument:
    """A checkpoint's ``config.json``, validated against its schema (weights not read): what ``emomon info``, the
    monitor's early checks and :func:`emomon.models.checkpoint.load_checkpoint` read. Every problem is a one-line
    :class:`ModelError`."""
    return read_document(resolve_checkpoint(name_or_path))


def read_checkpoint_preset(name_or_path: str | Path) -> EmomonConfig:
    """The preset a checkpoint was trained with (classes, encoders, architecture), validated, weights not read."""
    return read_checkpoint(name_or_path).config
