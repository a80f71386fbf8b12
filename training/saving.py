"""Writing checkpoints: a training's weights and config, an ensemble of trainings, a transcript threshold.

The format and its validation live with loading (:mod:`emomon.models.checkpoint`); this module only writes it.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import shutil
from pathlib import Path

from safetensors.torch import load as load_safetensors, save

from emomon import __version__
from emomon.config import EmomonConfig, config_to_dict
from emomon.errors import ModelError, OutputError
from emomon.files import atomic_write, make_private_folder
from emomon.models.checkpoint import (CONFIG_FILE, ENSEMBLE_FORMAT_VERSION, FORMAT, FORMAT_VERSION, WEIGHTS_FILE, Checkpoint,
                                      _preset_of, _same_baseline, _weights_path, load_checkpoint, read_checkpoint_config)
from emomon.models.encoders.tuned_text import TUNED_TEXT_FILE
from emomon.models.ensemble import EnsembleModel


def save_checkpoint(directory: str | Path, model, config: EmomonConfig, fingerprints: dict[str, str], metadata: dict | None = None,
                    text_layers: str | Path | None = None) -> Path:
    """Write ``model`` and its config into ``directory`` (created if needed, 0700); files are replaced atomically and
    user-only (0600). ``text_layers``: the tuned text encoder layers, copied in beside the weights when they live
    elsewhere."""
    directory = Path(directory)
    if config.encoders.text.tune_layers and text_layers is None:
        raise ModelError("encoders.text.tune_layers is set: the checkpoint needs its tuned text layers")
    make_private_folder(directory, exist_ok=True)
    try:
        text_doc = {}
        if text_layers is not None:
            blob_t = Path(text_layers).read_bytes()
            if Path(text_layers).resolve() != (directory / TUNED_TEXT_FILE).resolve():
                atomic_write(directory / TUNED_TEXT_FILE, blob_t)
            text_doc = {"text_layers": {"file": TUNED_TEXT_FILE, "sha256": hashlib.sha256(blob_t).hexdigest()}}
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        blob = save(state, metadata={"format": FORMAT, "arch": config.model.arch})
        atomic_write(directory / WEIGHTS_FILE, blob)
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
        atomic_write(directory / CONFIG_FILE, (json.dumps(doc, indent=1) + "\n").encode())
    except OSError as exc:
        raise OutputError(f"cannot write checkpoint to {directory}: {exc.strerror or exc}") from None
    return directory


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
        atomic_write(directory / CONFIG_FILE, (json.dumps(doc, indent=1) + "\n").encode())
    except OSError as exc:
        raise OutputError(f"cannot write {directory / CONFIG_FILE}: {exc.strerror or exc}") from None
    return before


def _half_weights(blob: bytes) -> bytes:
    """A weights file with every floating tensor stored in float16 (loading casts back to the model's float32)."""
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
        atomic_write(directory / file, blob)
        out = {**entry["weights"], "file": file, "sha256": hashlib.sha256(blob).hexdigest()}
        if half:
            out["dtype"] = "float16"
        return out

    doc = {k: v for k, v in first_entry.items() if k not in ("ensemble", "source")}
    entries = []
    created = make_private_folder(directory, exist_ok=True)  # 0700; the files are 0600 (atomic_write)
    try:
        own_weights = write_weights(WEIGHTS_FILE, first, first_entry)
        if first.text_layers:
            atomic_write(directory / first.text_layers.name, first.text_layers.read_bytes())
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
        atomic_write(directory / CONFIG_FILE, (json.dumps(doc, indent=1) + "\n").encode())
    except BaseException as exc:
        if created:  # a folder this call made holds only this call's partial files: leave nothing behind
            shutil.rmtree(created[0], ignore_errors=True)
        if isinstance(exc, OSError):
            raise OutputError(f"cannot write checkpoint to {directory}: {exc.strerror or exc}") from None
        raise
    written = {WEIGHTS_FILE} | {e["weights"]["file"] for e in entries}
    for stale in directory.glob("member-*.safetensors"):  # an ensemble replaced by a smaller one: its extra members
        if stale.name not in written:
            stale.unlink(missing_ok=True)
    load_checkpoint(directory)  # what was written reads back
    return directory
