"""Checkpoints: a directory with ``model.safetensors`` (weights) and ``config.json`` (everything else).

``config.json`` holds the format version, the full preset (encoders, architecture, classes, training settings),
the encoders' fingerprints and widths, the joint scaler statistics, the SHA-256 of the weights file and the
metrics measured when it was trained. Loading checks all of it - format, preset values, checksum, tensor names and
shapes - and reads only JSON and safetensors: no pickle, so no code is ever executed from a checkpoint.

An ensemble (``save_ensemble``) is one checkpoint: its first member is the checkpoint's own weights and scaler, and
every further member is an entry of its ``ensemble`` list (weights file and SHA-256, scaler, speaker baseline, the
member's preset and metadata). It is format version 2, which an emomon that reads only version 1 refuses instead of
silently reading the first member alone.

Shipped checkpoints live in ``emomon/models/weights/<name>/`` and load by name (``load_checkpoint("en-tiny")``).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import torch

from emomon import __version__
from emomon.errors import ConfigError, ModelError
from emomon.config import EmomonConfig, config_from_dict, config_to_dict
from emomon.models.registry import build_model
from emomon.models.scaler import JointStandardScaler

FORMAT = "emomon.checkpoint"
#: A single model's checkpoint.
FORMAT_VERSION = 1
#: A checkpoint with an ``ensemble`` section (the newest version this emomon reads).
ENSEMBLE_FORMAT_VERSION = 2
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
DEFAULT_CHECKPOINT = "en-tiny"


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
    root = resources.files("emomon.models.weights")
    return sorted(p.name for p in root.iterdir() if p.is_dir() and p.joinpath(CONFIG_FILE).is_file())


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
        res = resources.files("emomon.models.weights").joinpath(str(name_or_path))
        if res.is_dir() and res.joinpath(CONFIG_FILE).is_file():
            return Path(str(res))
    shipped = ", ".join(packaged_checkpoints()) or "none"
    raise ModelError(f"checkpoint not found: {name_or_path} (shipped checkpoints: {shipped})")


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(directory: str | Path, model, config: EmomonConfig, fingerprints: dict[str, str], metadata: dict | None = None,
                    text_layers: str | Path | None = None) -> Path:
    """Write ``model`` and its config into ``directory`` (created if needed); files are replaced atomically.
    ``text_layers``: the tuned text encoder layers, copied in beside the weights when they live elsewhere."""
    from safetensors.torch import save

    directory = Path(directory)
    if config.encoders.text.tune_layers and text_layers is None:
        raise ModelError("encoders.text.tune_layers is set: the checkpoint needs its tuned text layers")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        text_doc = {}
        if text_layers is not None:
            from emomon.models.text_tuning import TUNED_TEXT_FILE

            blob_t = Path(text_layers).read_bytes()
            if Path(text_layers).resolve() != (directory / TUNED_TEXT_FILE).resolve():
                _atomic_write(directory / TUNED_TEXT_FILE, blob_t)
            text_doc = {"text_layers": {"file": TUNED_TEXT_FILE, "sha256": hashlib.sha256(blob_t).hexdigest()}}
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        blob = save(state, metadata={"format": FORMAT, "arch": config.model.arch})
        _atomic_write(directory / WEIGHTS_FILE, blob)
        cfg = dict(config_to_dict(config))
        cfg.pop("base_dir", None)
        doc = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "emomon_version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "config": cfg,
            "dims": {"text": model.text_dim, "speech": model.speech_dim},
            "fingerprints": dict(fingerprints),
            "scaler": model.scaler.to_dict(),
            **({"speaker_baseline": model.speaker_baseline.to_dict()} if model.speaker_baseline is not None else {}),
            "weights": {"file": WEIGHTS_FILE, "sha256": hashlib.sha256(blob).hexdigest(), "parameters": sum(v.numel() for v in state.values())},
            **text_doc,
            "metadata": metadata or {},
        }
        _atomic_write(directory / CONFIG_FILE, (json.dumps(doc, indent=1) + "\n").encode())
    except OSError as exc:
        from emomon.errors import OutputError

        raise OutputError(f"cannot write checkpoint to {directory}: {exc.strerror or exc}") from None
    return directory


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


def set_transcript_threshold(name_or_path: str | Path, threshold: float) -> float:
    """Write ``model.min_asr_logprob`` into a checkpoint's config.json (the weights are untouched: a model trained
    reading every transcript already handles absent text) and append ``{value, before, set}`` to its metadata's
    ``transcript_threshold`` list, so the first entry's ``before`` is what the model was trained with. The new config
    is validated before anything is written; returns the value it replaced."""
    directory, doc = read_checkpoint_config(name_or_path)
    before = _preset_of(directory, doc).model.min_asr_logprob
    doc["config"]["model"]["min_asr_logprob"] = threshold
    _preset_of(directory, doc)  # a refused value raises here, with the file as it was
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    doc.setdefault("metadata", {}).setdefault("transcript_threshold", []).append({"value": threshold, "before": before, "set": now})
    try:
        _atomic_write(directory / CONFIG_FILE, (json.dumps(doc, indent=1) + "\n").encode())
    except OSError as exc:
        from emomon.errors import OutputError

        raise OutputError(f"cannot write {directory / CONFIG_FILE}: {exc.strerror or exc}") from None
    return before


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
        from emomon.models.ensemble import EnsembleModel

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
    from safetensors import SafetensorError
    from safetensors.torch import load as load_safetensors

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
        from emomon.models.speaker_baseline import SpeakerBaselineOptions

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
    import numpy as np

    # the same up to float rounding: one population's mean, summed in another order, differs in the 7th digit
    return a.prior_weight == b.prior_weight and a.window == b.window and np.allclose(a.population_mean, b.population_mean, rtol=0, atol=1e-5)


def _half_weights(blob: bytes) -> bytes:
    """A weights file with every floating tensor stored in float16 (loading casts back to the model's float32)."""
    from safetensors.torch import load as load_safetensors, save

    # the safetensors layout: an 8-byte little-endian header length, then the JSON header with "__metadata__"
    header = json.loads(blob[8 : 8 + int.from_bytes(blob[:8], "little")])
    state = {k: v.half() if v.is_floating_point() else v for k, v in load_safetensors(blob).items()}
    return save(state, metadata={**(header.get("__metadata__") or {}), "dtype": "float16"})


def save_ensemble(directory: str | Path, members: list[str | Path], *, half: bool = False) -> Path:
    """Write an ensemble of trained checkpoints as one checkpoint in ``directory`` (which must not be one of them).

    The members must share the architecture and its settings, the classes, the encoders (same fingerprints and
    widths, the same tuned text layers) and the speaker baseline options: at run time one pass of each encoder and
    one speaker baseline serve them all. Each member is loaded and validated first; the first member's files and
    config become the checkpoint's own, and every other member's weights are copied in as ``member-<i>.safetensors``.
    A checkpoint that is already an ensemble stands for its trainings, in their order, so an ensemble can grow
    (``emomon ensemble OUT en-tiny runs/new``); one training given twice is refused. ``half``: every member's weights
    are stored in float16 (half the size on disk; loaded as float32, so inference runs as before on rounded weights)."""
    if len(members) < 2:
        raise ModelError("an ensemble needs two or more checkpoints")
    from emomon.models.ensemble import EnsembleModel

    directory = Path(directory)
    # One record per training: (what it came from, its checkpoint, its config.json entry: the document itself for a
    # single training, or an ensemble's own first member / one of its "ensemble" entries).
    records: list[tuple[str, Checkpoint, dict]] = []
    loaded: list[tuple[Checkpoint, dict]] = []  # each checkpoint given and its config.json, read once
    for m in members:
        ckpt = load_checkpoint(m)
        if directory.exists() and directory.resolve() == ckpt.path.resolve():
            raise ModelError(f"the ensemble cannot be written over its member {ckpt.path}")
        ckpt_doc = read_checkpoint_config(ckpt.path)[1]
        loaded.append((ckpt, ckpt_doc))
        if isinstance(ckpt.model, EnsembleModel):
            meta = ckpt_doc.get("metadata") or {}
            sources = meta.get("ensemble_of") or []
            first_source = str(sources[0]) if sources else f"{m} (first member)"
            records.append((first_source, ckpt, {**ckpt_doc, "metadata": meta.get("first_member") or {}}))
            records += [(str(entry.get("source") or f"{m} (member {i})"), ckpt, entry)
                        for i, entry in enumerate(ckpt_doc["ensemble"], start=1)]
        else:
            records.append((str(m), ckpt, ckpt_doc))
    seen: dict[str, str] = {}
    for source, _, entry in records:
        sha = str(entry["weights"]["sha256"])
        if sha in seen:
            raise ModelError(f"{source} and {seen[sha]} are the same training (identical weights); give each training once")
        seen[sha] = source

    def shared(ckpt: Checkpoint, doc: dict) -> tuple:
        """What members must have in common; the tuned text layers by the SHA-256 that loading just verified."""
        return ckpt.config.model, ckpt.config.classes, ckpt.dims, ckpt.fingerprints, (doc.get("text_layers") or {}).get("sha256")

    (first, first_doc), first_entry = loaded[0], records[0][2]
    for ckpt, ckpt_doc in loaded[1:]:
        if shared(ckpt, ckpt_doc) != shared(first, first_doc):
            raise ModelError(f"{ckpt.path} cannot join an ensemble with {first.path}: their model settings, classes or encoders differ")
        if not _same_baseline(ckpt.model.speaker_baseline, first.model.speaker_baseline):
            raise ModelError(f"{ckpt.path} cannot join an ensemble with {first.path}: their speaker baseline options differ")

    def write_weights(file: str, ckpt: Checkpoint, entry: dict) -> dict:
        """Copy (or halve) one training's weights into the ensemble; returns its ``weights`` entry."""
        blob = _weights_path(ckpt.path, entry).read_bytes()
        if half:
            blob = _half_weights(blob)
        _atomic_write(directory / file, blob)
        out = {**entry["weights"], "file": file, "sha256": hashlib.sha256(blob).hexdigest()}
        if half:
            out["dtype"] = "float16"
        return out

    doc = {k: v for k, v in first_entry.items() if k not in ("ensemble", "source")}
    entries = []
    try:
        directory.mkdir(parents=True, exist_ok=True)
        own_weights = write_weights(WEIGHTS_FILE, first, first_entry)
        if first.text_layers:
            _atomic_write(directory / first.text_layers.name, first.text_layers.read_bytes())
        for i, (source, ckpt, entry) in enumerate(records[1:], start=1):
            entries.append({
                "source": source,
                "config": entry["config"],
                "scaler": entry["scaler"],
                **({"speaker_baseline": entry["speaker_baseline"]} if "speaker_baseline" in entry else {}),
                "weights": write_weights(f"member-{i}.safetensors", ckpt, entry),
                "metadata": entry.get("metadata") or {},
            })
        doc.update(format_version=ENSEMBLE_FORMAT_VERSION, emomon_version=__version__, ensemble=entries,
                   weights=own_weights,
                   created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
        doc["metadata"] = {"ensemble_of": [source for source, _, _ in records], "first_member": first_entry.get("metadata") or {}}
        _atomic_write(directory / CONFIG_FILE, (json.dumps(doc, indent=1) + "\n").encode())
    except OSError as exc:
        from emomon.errors import OutputError

        raise OutputError(f"cannot write checkpoint to {directory}: {exc.strerror or exc}") from None
    load_checkpoint(directory)  # what was written reads back
    return directory


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
