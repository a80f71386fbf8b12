"""Checkpoints: a directory with ``model.safetensors`` (weights) and ``config.json`` (everything else).

``config.json`` holds the format version, the full preset (encoders, architecture, classes, training settings),
the encoders' fingerprints and widths, the joint scaler statistics, the SHA-256 of the weights file and the
metrics measured when it was trained. Loading checks all of it - format, preset values, checksum, tensor names and
shapes - and reads only JSON and safetensors: no pickle, so no code is ever executed from a checkpoint.

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
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

# torch and safetensors are not deferred: the classes below hold torch modules, so torch loads with this module
# anyway, and safetensors adds little to it; the command line imports this module only in commands that read checkpoints.
import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors

from emomon.config import EmomonConfig, config_from_dict
from emomon.errors import ConfigError, ModelError
from emomon.models.ensemble import EnsembleModel
from emomon.models.registry import build_model
from emomon.models.scaler import JointStandardScaler
from emomon.models.speaker_baseline import SpeakerBaselineOptions

FORMAT = "emomon.checkpoint"
#: A single model's checkpoint.
FORMAT_VERSION = 1
#: A checkpoint with an ``ensemble`` section (the newest version this emomon reads).
ENSEMBLE_FORMAT_VERSION = 2
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
#: The shipped model: the five-member ensemble of the en-tiny recipe line (models/weights/hyfuser-tiny-en).
DEFAULT_CHECKPOINT = "hyfuser-tiny-en"
#: Old names of shipped checkpoints -> the folder they name now. "en-tiny" was the shipped model's name until it was
#: renamed so that it no longer shares its name with the stage-1 training recipe; old presets (``runtime.model``),
#: ``--model en-tiny`` and checkpoints trained with ``encoders.text.tuned_from = "en-tiny"`` keep loading it.
CHECKPOINT_ALIASES = {"en-tiny": DEFAULT_CHECKPOINT}


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
    aliases = [f"{old} = {new}" for old, new in CHECKPOINT_ALIASES.items()]
    shipped = ", ".join(packaged_checkpoints()) or "none"
    shipped += f"; old names: {', '.join(aliases)}" if aliases else ""
    raise ModelError(f"checkpoint not found: {name_or_path} (shipped checkpoints: {shipped})")


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_checkpoint_config(name_or_path: str | Path) -> tuple[Path, dict]:
    """The checkpoint directory and its validated JSON document (weights not read)."""
    directory = resolve_checkpoint(name_or_path)
    cfg_path = directory / CONFIG_FILE
    try:
        doc = json.loads(cfg_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{directory} is not a checkpoint: {CONFIG_FILE} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{cfg_path} is corrupt or not JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ModelError(f"{cfg_path} is not an emomon checkpoint (format field missing or different)")
    version = doc.get("format_version")
    if not isinstance(version, int) or version > ENSEMBLE_FORMAT_VERSION:
        raise ModelError(f"{directory}: checkpoint format version {version} is newer than this emomon supports ({ENSEMBLE_FORMAT_VERSION}); upgrade emomon")
    for key in ("config", "dims", "fingerprints", "scaler", "weights"):
        if not isinstance(doc.get(key), dict):
            raise ModelError(f"{cfg_path}: the {key!r} section is missing or malformed")
    return directory, doc


def _preset_of(directory: Path, doc: dict) -> EmomonConfig:
    try:
        return config_from_dict(doc["config"])
    except ConfigError as exc:
        raise ModelError(f"{directory}: invalid model config in checkpoint: {exc}") from None


def read_checkpoint_preset(name_or_path: str | Path) -> EmomonConfig:
    """The preset a checkpoint was trained with (classes, encoders, architecture), validated, weights not read."""
    return _preset_of(*read_checkpoint_config(name_or_path))


def load_checkpoint(name_or_path: str | Path = DEFAULT_CHECKPOINT, device: str | torch.device = "cpu") -> Checkpoint:
    """Load and validate a checkpoint (a single model, or an ensemble as one :class:`EnsembleModel`); every problem
    is a one-line :class:`ModelError`."""
    directory, doc = read_checkpoint_config(name_or_path)
    config = _preset_of(directory, doc)
    try:
        dims = {"text": int(doc["dims"]["text"]), "speech": int(doc["dims"]["speech"])}
        fingerprints = {"text": str(doc["fingerprints"]["text"]), "speech": str(doc["fingerprints"]["speech"])}
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{directory}: checkpoint config lacks {exc}") from None
    text_layers = _checked_text_layers(directory, doc) if config.encoders.text.tune_layers else None
    model = _load_member(directory, config, dims, doc)
    extra = doc.get("ensemble")
    if extra is not None:
        if not isinstance(extra, list) or not extra or not all(isinstance(e, dict) for e in extra):
            raise ModelError(f"{directory}: the 'ensemble' section of {CONFIG_FILE} is malformed (a list of members)")
        if doc.get("format_version") != ENSEMBLE_FORMAT_VERSION:
            raise ModelError(f"{directory}: an ensemble checkpoint must have format version {ENSEMBLE_FORMAT_VERSION}")
        members = [model]
        for i, entry in enumerate(extra, start=1):
            for key in ("config", "scaler", "weights"):
                if not isinstance(entry.get(key), dict):
                    raise ModelError(f"{directory}: ensemble member {i}: the {key!r} section is missing or malformed")
            own = _preset_of(directory, entry)
            if (own.model, own.classes, own.encoders.speech) != (config.model, config.classes, config.encoders.speech):
                raise ModelError(f"{directory}: ensemble member {i} differs from the first in its model, classes or speech encoder")
            members.append(_load_member(directory, config, dims, entry, f"ensemble member {i}"))
        baseline = members[0].speaker_baseline
        if any(not _same_baseline(m.speaker_baseline, baseline) for m in members[1:]):
            raise ModelError(f"{directory}: ensemble members differ in their speaker baseline options")
        model = EnsembleModel(members)
    model.eval().to(device)
    return Checkpoint(config, model, fingerprints, dims, dict(doc.get("metadata") or {}), directory, text_layers)


def _weights_path(directory: Path, doc: dict) -> Path:
    """The weights file the ``weights`` entry of ``doc`` names (the checkpoint's own or an ensemble member's), inside
    ``directory`` whatever path the entry holds."""
    return directory / Path(str(doc["weights"].get("file", WEIGHTS_FILE))).name


def _load_member(directory: Path, config: EmomonConfig, dims: dict[str, int], doc: dict, what: str = "") -> torch.nn.Module:
    """One fusion model from the ``weights``, ``scaler`` and ``speaker_baseline`` entries of ``doc`` (the checkpoint's
    own, or an ensemble member's), checked against the preset's architecture."""
    where = f"{directory}{f' ({what})' if what else ''}"
    try:
        expected_sha = str(doc["weights"]["sha256"])
    except (KeyError, TypeError) as exc:
        raise ModelError(f"{where}: checkpoint config lacks {exc}") from None
    weights_path = _weights_path(directory, doc)
    try:
        blob = weights_path.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"{where}: weights file {weights_path.name} is missing") from None
    except OSError as exc:
        raise ModelError(f"cannot read {weights_path}: {exc.strerror or exc}") from None
    if hashlib.sha256(blob).hexdigest() != expected_sha:
        raise ModelError(f"{weights_path} is corrupt or truncated (SHA-256 does not match the one recorded in {CONFIG_FILE})")
    try:
        state = load_safetensors(blob)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise ModelError(f"{weights_path} is not a readable safetensors file ({exc})") from None
    scaler = JointStandardScaler.from_dict(doc["scaler"], dims["text"], dims["speech"])
    try:
        model = build_model(config, dims["text"], dims["speech"], len(config.classes), scaler)
    except ConfigError as exc:
        raise ModelError(f"{where}: {exc}") from None
    if config.model.speaker_baseline > 0:
        if not isinstance(doc.get("speaker_baseline"), dict):
            raise ModelError(f"{where}: the config asks for speaker baseline normalisation but the checkpoint has no 'speaker_baseline' section")
        model.speaker_baseline = SpeakerBaselineOptions.from_dict(doc["speaker_baseline"], dims["speech"])
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


def _checked_text_layers(directory: Path, doc: dict) -> Path:
    """The tuned text layers file named in config.json, present and matching its SHA-256."""
    entry = doc.get("text_layers")
    if not isinstance(entry, dict) or not isinstance(entry.get("file"), str) or not isinstance(entry.get("sha256"), str):
        raise ModelError(f"{directory}: the config tunes the text encoder but config.json names no tuned text layers")
    path = directory / Path(entry["file"]).name
    if not path.is_file():
        raise ModelError(f"{directory}: tuned text layers {path.name} are missing")
    if file_sha256(path) != entry["sha256"]:
        raise ModelError(f"{path} is corrupt or truncated (SHA-256 does not match the one recorded in {CONFIG_FILE})")
    return path


def with_config(ckpt: Checkpoint, **changes) -> EmomonConfig:
    return dataclasses.replace(ckpt.config, **changes)
