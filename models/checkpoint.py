"""Checkpoints: a directory with ``model.safetensors`` (weights) and ``config.json`` (everything else).

``config.json`` holds the format version, the full preset (encoders, architecture, classes, training settings),
the encoders' fingerprints and widths, the joint scaler statistics, the SHA-256 of the weights file and the
metrics measured when it was trained. ``config.json`` is read once and validated against its schema
(:mod:`emomon.models.checkpoint_schema`: types, finite numbers in range, sizes, file names and checksums) into a
:class:`~emomon.models.checkpoint_schema.CheckpointDocument`, which every reader uses (:func:`read_checkpoint`);
loading then checks the weights against it - checksum, tensor names, shapes and finiteness - and reads only JSON
and safetensors: no pickle, so no code is ever executed from a checkpoint.

An ensemble (``save_ensemble``) is one checkpoint: its first member is the checkpoint's own weights and scaler, and
every further member is an entry of its ``ensemble`` list (weights file and SHA-256, scaler, speaker baseline, the
member's preset and metadata). It is format version 2, which an emomon that reads only version 1 refuses instead of
silently reading the first member alone.

Shipped checkpoints live in ``emomon/models/weights/<name>/`` and load by name (``load_checkpoint("hyfuser-tiny-en")``);
an old name in :data:`CHECKPOINT_ALIASES` loads the checkpoint it now names.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

# torch and safetensors are not deferred: the classes below hold torch modules, so torch loads with this module
# anyway, and safetensors adds little to it; the command line imports this module only in commands that read checkpoints.
import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors

from emomon.config import EmomonConfig, config_from_dict
from emomon.errors import ConfigError, ModelError
# the format's names live with its schema; they are imported here too, where writers (training/saving.py) find them
from emomon.models.checkpoint_schema import (CONFIG_FILE, ENSEMBLE_FORMAT_VERSION, FORMAT, FORMAT_VERSION,  # noqa: F401
                                             WEIGHTS_FILE, CheckpointDocument, FileEntry, MemberDocument, read_document,
                                             read_json, validate_document)
from emomon.models.ensemble import EnsembleModel
from emomon.models.registry import build_model
from emomon.models.scaler import JointStandardScaler
# finding a checkpoint and the shipped names need no torch (the command line checks with them first); re-exported here
from emomon.models.shipped import (CHECKPOINT_ALIASES, DEFAULT_CHECKPOINT, SHIPPED_LICENCES, packaged_checkpoints,  # noqa: F401
                                   read_checkpoint, read_checkpoint_preset, resolve_checkpoint, shipped_name)
from emomon.models.speaker_baseline import SpeakerBaselineOptions


@dataclass
class Checkpoint:
    config: EmomonConfig
    model: torch.nn.Module
    fingerprints: dict[str, str]
    dims: dict[str, int]
    metadata: dict = field(default_factory=dict)
    path: Path | None = None
    #: The fine-tuned top layers of the text encoder (``encoders.text.tune_layers`` > 0), checked against config.json.
    text_layers: Path | None = None

    @property
    def classes(self) -> tuple[str, ...]:
        return self.config.classes


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_checkpoint_config(name_or_path: str | Path) -> tuple[Path, dict]:
    """The checkpoint directory and its JSON document as read, after the same validation as :func:`read_checkpoint`
    (weights not read). For code that writes a checkpoint from another (``emomon.training.saving``); to read one, use
    :func:`read_checkpoint`."""
    directory = resolve_checkpoint(name_or_path)
    doc = read_json(directory / CONFIG_FILE)
    validate_document(doc, directory)
    return directory, doc


def _preset_of(directory: Path, doc: dict) -> EmomonConfig:
    """The preset of a raw ``config.json`` document, or of one of its ensemble entries (for writers that change it)."""
    try:
        return config_from_dict(doc.get("config") if isinstance(doc, dict) else None)
    except ConfigError as exc:
        raise ModelError(f"{directory}: invalid model config in checkpoint: {exc}") from None


def load_checkpoint(name_or_path: str | Path = DEFAULT_CHECKPOINT, device: str | torch.device = "cpu") -> Checkpoint:
    """Load and validate a checkpoint (a single model, or an ensemble as one :class:`EnsembleModel`); every problem
    is a one-line :class:`ModelError`."""
    document = read_checkpoint(name_or_path)
    directory, config = document.directory, document.config
    text_layers = _checked_text_layers(directory, document.text_layers) if config.encoders.text.tune_layers else None
    members = [_load_member(directory, config, document.dims_dict, m, f"ensemble member {i}" if i else "")
               for i, m in enumerate(document.members)]
    model = members[0]
    if document.is_ensemble:
        baseline = members[0].speaker_baseline
        if any(not _same_baseline(m.speaker_baseline, baseline) for m in members[1:]):
            raise ModelError(f"{directory}: ensemble members differ in their speaker baseline options")
        model = EnsembleModel(members)
    model.eval().to(device)
    return Checkpoint(config, model, document.fingerprints_dict, document.dims_dict, dict(document.metadata), directory, text_layers)


def _weights_path(directory: Path, doc: dict) -> Path:
    """The weights file the ``weights`` entry of a raw ``doc`` names (the checkpoint's own or an ensemble member's),
    inside ``directory`` whatever path the entry holds (for writers: a validated document's entries name bare files)."""
    return directory / Path(str(doc["weights"].get("file", WEIGHTS_FILE))).name


def _load_member(directory: Path, config: EmomonConfig, dims: dict[str, int], member: MemberDocument, what: str = "") -> torch.nn.Module:
    """One fusion model from a member's weights, scaler and speaker baseline (the checkpoint's own, or an ensemble
    member's), checked against the preset's architecture."""
    where = f"{directory}{f' ({what})' if what else ''}"
    weights_path = directory / member.weights.file
    try:
        blob = weights_path.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"{where}: weights file {weights_path.name} is missing") from None
    except OSError as exc:
        raise ModelError(f"cannot read {weights_path}: {exc.strerror or exc}") from None
    if hashlib.sha256(blob).hexdigest() != member.weights.sha256:
        raise ModelError(f"{weights_path} is corrupt or truncated (SHA-256 does not match the one recorded in {CONFIG_FILE})")
    try:
        state = load_safetensors(blob)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise ModelError(f"{weights_path} is not a readable safetensors file ({exc})") from None
    scaler = JointStandardScaler.from_dict(member.scaler.as_dict(), dims["text"], dims["speech"])
    try:
        model = build_model(config, dims["text"], dims["speech"], len(config.classes), scaler)
    except ConfigError as exc:
        raise ModelError(f"{where}: {exc}") from None
    if member.speaker_baseline is not None:
        model.speaker_baseline = SpeakerBaselineOptions.from_dict(member.speaker_baseline.as_dict(), dims["speech"])
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        what_ = f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}"
        raise ModelError(f"{where}: weights do not match architecture {config.model.arch!r} ({what_}, {len(missing)} missing, {len(unexpected)} unexpected tensors)")
    for k, v in state.items():
        if v.shape != expected[k].shape:
            raise ModelError(f"{where}: tensor {k} has shape {tuple(v.shape)}, the config implies {tuple(expected[k].shape)}")
        if not torch.isfinite(v).all():
            raise ModelError(f"{where}: tensor {k} holds NaN or infinite values")
    model.load_state_dict(state)
    return model


def _same_baseline(a, b) -> bool:
    if a is None or b is None:
        return a is b
    # the same up to float rounding: one population's mean, summed in another order, differs in the 7th digit
    return a.prior_weight == b.prior_weight and a.window == b.window and np.allclose(a.population_mean, b.population_mean, rtol=0, atol=1e-5)


def _checked_text_layers(directory: Path, entry: FileEntry | None) -> Path:
    """The tuned text layers file named in config.json, present and matching its SHA-256."""
    if entry is None:  # the schema requires the entry when the preset tunes the text encoder
        raise ModelError(f"{directory}: the config tunes the text encoder but {CONFIG_FILE} names no tuned text layers")
    path = directory / entry.file
    if not path.is_file():
        raise ModelError(f"{directory}: tuned text layers {path.name} are missing")
    if file_sha256(path) != entry.sha256:
        raise ModelError(f"{path} is corrupt or truncated (SHA-256 does not match the one recorded in {CONFIG_FILE})")
    return path


def with_config(ckpt: Checkpoint, **changes) -> EmomonConfig:
    return dataclasses.replace(ckpt.config, **changes)
