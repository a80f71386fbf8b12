"""The checkpoint document, ``config.json``: read once and validated against its schema into frozen dataclasses.

:func:`read_document` turns a checkpoint folder's ``config.json`` into a :class:`CheckpointDocument`, or raises one
:class:`~emomon.errors.ModelError` line that names the file and the field. Everything that reads a checkpoint
(:func:`emomon.models.checkpoint.load_checkpoint`, ``emomon info``, the monitor's checks before it loads models) reads
this object, never the raw JSON. What it checks:

* the text: UTF-8 JSON nested at most :data:`~emomon.config.MAX_NESTING` deep, checked before it is parsed (the JSON
  parser recurses once per level);
* the format name and version (1: one model; 2: one model or an ensemble; newer: "upgrade emomon");
* every preset (the checkpoint's and each ensemble member's) as :func:`~emomon.config.config_from_dict` checks a
  TOML preset: known keys, known architecture names, finite numbers within their ranges;
* encoder widths (``dims``): integers from 1 to :data:`MAX_DIM`; fingerprints: text;
* every weights entry and the tuned text layers: a file name and a SHA-256 of 64 hex digits; a parameter count, when
  present, a non-negative integer;
* the scaler's four statistics: one finite number per encoder dimension, standard deviations positive; the speaker
  baseline: a finite population mean per speech dimension, a positive prior weight, a positive window;
* the test figures of each training in its metadata (``test.<source>.<mode>.fused``): accuracy, weighted F1 and UAR
  each a number from 0 to 1 or absent, ``n`` a count or absent; the rest of the metadata is a record, kept as read;
* consistency: an ensemble's members share the model settings, classes and speech encoder, and have format version
  2; a preset with a speaker baseline has its statistics; a tuned text encoder names its layers file.

Keys this emomon does not know are left alone outside the presets (a newer emomon may add a record), while a preset's
unknown key is an error, as in a TOML preset. NaN and infinities are refused wherever a number is read; JSON's
``NaN``/``Infinity`` in the free-form training record (a diverged epoch's loss) are kept, as they are only shown.

This module imports no torch: ``emomon info`` and the monitor's early checks read a checkpoint without loading one.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emomon.config import (MAX_NESTING, EmomonConfig, checked_number, checked_text, config_from_dict, nesting_depth, shown,
                           shown_key, value_depth)
from emomon.errors import ConfigError, ModelError

FORMAT = "emomon.checkpoint"
#: A single model's checkpoint.
FORMAT_VERSION = 1
#: A checkpoint with an ``ensemble`` section (the newest version this emomon reads).
ENSEMBLE_FORMAT_VERSION = 2
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"

#: Widest encoder feature this emomon builds a model for (real ones: 40 MFCCs to 1280 for Whisper large).
MAX_DIM = 65536
#: Most parameters a weights entry may record (a count, shown by ``emomon info``).
MAX_PARAMETERS = 10**13
#: Bounds of the speaker baseline's options (the preset's ``model.speaker_baseline`` is at most 1000).
MAX_PRIOR_WEIGHT = 1e6
MAX_WINDOW = 10**9
#: The largest float32: a statistic past it would load as infinity.
FLOAT32_MAX = 3.4028234663852886e38
SCALER_MODES = ("joint", "per-modality")
#: The figures ``emomon info`` shows for each test set, each in [0, 1].
FIGURES = ("accuracy", "weighted_f1", "uar")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
#: What a checkpoint's preset must name (every checkpoint emomon wrote does): what the model is, and what it reads.
REQUIRED_SETTINGS = ("classes", "model.arch", "encoders.text.name", "encoders.speech.name")


@dataclass(frozen=True)
class FileEntry:
    """A file beside ``config.json`` and its SHA-256 (the tuned text layers)."""

    file: str  # a bare file name: any folder the document names is dropped, the file is read from the checkpoint's
    sha256: str  # lower-case hex


@dataclass(frozen=True)
class WeightsEntry(FileEntry):
    parameters: int | None = None
    dtype: str | None = None


@dataclass(frozen=True)
class ScalerEntry:
    """The joint standard scaler's statistics (:class:`emomon.models.scaler.JointStandardScaler`)."""

    mode: str
    text_mean: tuple[float, ...]
    text_std: tuple[float, ...]
    speech_mean: tuple[float, ...]
    speech_std: tuple[float, ...]

    def as_dict(self) -> dict:
        return {"mode": self.mode, "text_mean": list(self.text_mean), "text_std": list(self.text_std),
                "speech_mean": list(self.speech_mean), "speech_std": list(self.speech_std)}


@dataclass(frozen=True)
class SpeakerBaselineEntry:
    """The speaker baseline's options (:class:`emomon.models.speaker_baseline.SpeakerBaselineOptions`)."""

    population_mean: tuple[float, ...]
    prior_weight: float
    window: int

    def as_dict(self) -> dict:
        return {"population_mean": list(self.population_mean), "prior_weight": self.prior_weight, "window": self.window}


@dataclass(frozen=True)
class TestFigures:
    """One test set's fused figures, as a training measured them (None: not recorded)."""

    source: str
    mode: str
    n: int | None
    accuracy: float | None
    weighted_f1: float | None
    uar: float | None


@dataclass(frozen=True)
class MemberDocument:
    """One training: the checkpoint's own (first member), or an entry of an ensemble's ``ensemble`` list."""

    config: EmomonConfig
    scaler: ScalerEntry
    weights: WeightsEntry
    speaker_baseline: SpeakerBaselineEntry | None
    test: tuple[TestFigures, ...]
    #: The training's record as read (free-form JSON: epochs, sources, test metrics ...).
    metadata: dict = field(default_factory=dict, compare=False)
    #: Where an ensemble member was trained (the run folder ``emomon ensemble`` was given), when recorded.
    source: str | None = None


@dataclass(frozen=True)
class CheckpointDocument:
    """A validated ``config.json``: what every reader of a checkpoint uses."""

    directory: Path
    format_version: int
    dims: tuple[int, int]  # (text, speech)
    fingerprints: tuple[str, str]  # (text, speech)
    members: tuple[MemberDocument, ...]  # the first is the checkpoint's own; more make an ensemble
    text_layers: FileEntry | None = None
    emomon_version: str | None = None
    created: str | None = None
    #: The document's own ``metadata`` as read: a training's record, or an ensemble's ``ensemble_of`` and ``first_member``.
    metadata: dict = field(default_factory=dict, compare=False)

    @property
    def config(self) -> EmomonConfig:
        """The checkpoint's preset (its first member's)."""
        return self.members[0].config

    @property
    def is_ensemble(self) -> bool:
        return len(self.members) > 1

    @property
    def dims_dict(self) -> dict[str, int]:
        return {"text": self.dims[0], "speech": self.dims[1]}

    @property
    def fingerprints_dict(self) -> dict[str, str]:
        return {"text": self.fingerprints[0], "speech": self.fingerprints[1]}

    @property
    def parameters(self) -> int:
        """The recorded parameter count of every member together (0 where one is not recorded)."""
        return sum(m.weights.parameters or 0 for m in self.members)


# ---------------------------------------------------------------------------------------------------- reading
def read_json(cfg_path: Path) -> Any:
    """The parsed ``config.json`` at ``cfg_path``, or a one-line ModelError (missing, unreadable, not UTF-8, not JSON,
    a number of more than 4300 digits, nested deeper than :data:`~emomon.config.MAX_NESTING`)."""
    try:
        raw = cfg_path.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"{cfg_path.parent} is not a checkpoint: {CONFIG_FILE} is missing") from None
    except OSError as exc:
        raise ModelError(f"{cfg_path} is corrupt or not JSON (cannot read it: {exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ModelError(f"{cfg_path} is corrupt or not JSON (not UTF-8 text: {exc.reason} at byte {exc.start})") from None
    too_deep = f"{cfg_path} is corrupt or not a checkpoint: arrays or objects nested more than {MAX_NESTING} deep"
    if nesting_depth(text, "json") > MAX_NESTING:
        raise ModelError(too_deep)
    try:
        doc = json.loads(text)
    except RecursionError:  # the scan above bounds the parser's recursion; this is its second line
        raise ModelError(too_deep) from None
    except ValueError as exc:  # JSONDecodeError, or int()'s refusal of a number of more than 4300 digits
        raise ModelError(f"{cfg_path} is corrupt or not JSON ({' '.join(str(exc).split())})") from None
    if value_depth(doc) > MAX_NESTING:
        raise ModelError(too_deep)
    return doc


def read_document(directory: Path) -> CheckpointDocument:
    """The validated ``config.json`` of the checkpoint folder ``directory``."""
    return validate_document(read_json(directory / CONFIG_FILE), directory)


# ---------------------------------------------------------------------------------------------------- validation
class _Reader:
    """Reads one document's fields; every problem is a ModelError that names the file and the field's path."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.where = directory / CONFIG_FILE

    def fail(self, key: str, problem: str) -> ModelError:
        return ModelError(f"{self.where}: {key}: {problem}" if key else f"{self.where}: {problem}")

    def error(self, message: str) -> ModelError:
        """For :func:`checked_number` and :func:`checked_text`, which write ``"<key>: <problem>"``."""
        return ModelError(f"{self.where}: {message}")

    def section(self, doc: dict, name: str, prefix: str = "") -> dict:
        value = doc.get(name)
        if not isinstance(value, dict):
            where = f"{prefix.rstrip('.')}: " if prefix else ""
            raise self.fail("", f"{where}the {name!r} section is missing or malformed (expected an object, got {shown(value)})")
        return value

    def optional_section(self, doc: dict, name: str, key: str) -> dict:
        value = doc.get(name)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(key, f"expected an object, got {shown(value)}")
        return value

    def number(self, value: Any, key: str, **bounds) -> float:
        return checked_number(value, key, error=self.error, **bounds)

    def integer(self, value: Any, key: str, lo: int, hi: int) -> int:
        return checked_number(value, key, lo=lo, hi=hi, integer=True, error=self.error)

    def text(self, value: Any, key: str, *, printable: bool = False) -> str:
        value = checked_text(value, key, error=self.error)
        if printable and not value.isprintable():
            raise self.fail(key, f"expected one line of printable text, got {shown(value)}")
        return value

    def optional_text(self, doc: dict, name: str, key: str, *, printable: bool = False) -> str | None:
        value = doc.get(name)
        return None if value is None else self.text(value, key, printable=printable)

    def file_entry(self, entry: dict, key: str, default: str | None = None) -> tuple[str, str]:
        name = self.text(entry.get("file", default), f"{key}.file")
        base = Path(name).name
        if base in ("", ".", "..") or not base.isprintable():
            raise self.fail(f"{key}.file", f"expected a file name, got {shown(name)}")
        sha = entry.get("sha256")
        if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
            raise self.fail(f"{key}.sha256", f"expected a SHA-256 of 64 hex digits, got {shown(sha)}")
        return base, sha.lower()

    def weights(self, entry: dict, key: str) -> WeightsEntry:
        file, sha = self.file_entry(entry, key, default=WEIGHTS_FILE)
        parameters = entry.get("parameters")
        if parameters is not None:
            parameters = self.integer(parameters, f"{key}.parameters", 0, MAX_PARAMETERS)
        dtype = self.optional_text(entry, "dtype", f"{key}.dtype", printable=True)
        return WeightsEntry(file, sha, parameters, dtype)

    def vector(self, value: Any, key: str, size: int, *, what: str, positive: bool = False) -> tuple[float, ...]:
        """``size`` finite numbers that fit a float32 (positive ones for ``positive``)."""
        if not isinstance(value, list):
            raise self.fail(key, f"expected a list of {size} numbers, got {shown(value)}")
        if len(value) != size:
            raise self.fail(key, f"{what} of size {len(value)}, expected {size}")
        out = []
        for i, v in enumerate(value):
            x = self.number(v, f"{key}[{i}]", lo=-FLOAT32_MAX, hi=FLOAT32_MAX)
            if positive and not x > 0:
                raise self.fail(f"{key}[{i}]", f"a non-positive standard deviation, got {x!r}")
            out.append(x)
        return tuple(out)

    def scaler(self, entry: dict, key: str, dims: tuple[int, int]) -> ScalerEntry:
        mode = entry.get("mode", "joint")
        if mode not in SCALER_MODES:
            raise self.fail(f"{key}.mode", f"must be one of {', '.join(SCALER_MODES)}; got {shown(mode)}")
        stats = {}
        for modality, dim in zip(("text", "speech"), dims):
            for stat in ("mean", "std"):
                name = f"{modality}_{stat}"
                stats[name] = self.vector(entry.get(name), f"{key}.{name}", dim, positive=stat == "std",
                                          what=f"the scaler has {modality} statistics")
        return ScalerEntry(mode, **stats)

    def speaker_baseline(self, entry: dict, key: str, speech_dim: int) -> SpeakerBaselineEntry:
        mean = self.vector(entry.get("population_mean"), f"{key}.population_mean", speech_dim,
                           what="the speaker baseline is malformed: a population mean")
        weight = self.number(entry.get("prior_weight"), f"{key}.prior_weight", lo=0.0, hi=MAX_PRIOR_WEIGHT)
        if not weight > 0:
            raise self.fail(f"{key}.prior_weight", f"must be > 0, got {weight!r}")
        window = self.integer(entry.get("window", 200), f"{key}.window", 1, MAX_WINDOW)
        return SpeakerBaselineEntry(mean, weight, window)

    def preset(self, doc: dict, key: str) -> EmomonConfig:
        """The preset a training recorded: validated as a TOML preset is, and naming at least what identifies the
        model (:data:`REQUIRED_SETTINGS`), which a default must never stand in for. Other settings may be absent: a
        checkpoint written before a setting existed was trained with its default."""
        table = doc.get("config")
        try:
            cfg = config_from_dict(table)
        except ConfigError as exc:
            raise self.fail(key, f"invalid model config in checkpoint: {exc}") from None
        for path in REQUIRED_SETTINGS:
            node: Any = table
            for part in path.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            if node is None:
                raise self.fail(key, f"invalid model config in checkpoint: {path} is missing (a checkpoint records the "
                                     "preset it was trained with)")
        return cfg

    def test_figures(self, metadata: dict, key: str) -> tuple[TestFigures, ...]:
        """``metadata.test``: source -> mode -> {"fused": {accuracy, weighted_f1, uar, n, ...}, "steps": ...}."""
        test = self.optional_section(metadata, "test", f"{key}.test")
        out = []
        for source, modes in test.items():
            where = f"{key}.test.{shown_key(source)}"
            if not isinstance(modes, dict):
                raise self.fail(where, f"expected an object of modes, got {shown(modes)}")
            self.text(source, where, printable=True)
            for mode, ev in modes.items():
                at = f"{where}.{shown_key(mode)}"
                self.text(mode, at, printable=True)
                if not isinstance(ev, dict):
                    raise self.fail(at, f"expected an object of figures, got {shown(ev)}")
                fused = self.optional_section(ev, "fused", f"{at}.fused")
                n = fused.get("n")
                n = None if n is None else self.integer(n, f"{at}.fused.n", 0, 10**12)
                figures = {name: None if fused.get(name) is None else self.number(fused[name], f"{at}.fused.{name}", lo=0.0, hi=1.0)
                           for name in FIGURES}
                out.append(TestFigures(source, mode, n, **figures))
        return tuple(out)

    def member(self, entry: dict, key: str, dims: tuple[int, int], metadata: dict) -> MemberDocument:
        prefix = f"{key}." if key else ""
        for name in ("config", "scaler", "weights"):
            self.section(entry, name, prefix)
        config = self.preset(entry, f"{prefix}config")
        scaler = self.scaler(entry["scaler"], f"{prefix}scaler", dims)
        weights = self.weights(entry["weights"], f"{prefix}weights")
        baseline = None
        if config.model.speaker_baseline > 0:
            if not isinstance(entry.get("speaker_baseline"), dict):
                raise self.fail(key, "the config asks for speaker baseline normalisation but the checkpoint has no "
                                     "'speaker_baseline' section")
            baseline = self.speaker_baseline(entry["speaker_baseline"], f"{prefix}speaker_baseline", dims[1])
        elif entry.get("speaker_baseline") is not None:  # recorded but unused: still a well-formed section
            sb = self.optional_section(entry, "speaker_baseline", f"{prefix}speaker_baseline")
            self.speaker_baseline(sb, f"{prefix}speaker_baseline", dims[1])
        test = self.test_figures(metadata, f"{prefix}metadata")
        source = self.optional_text(entry, "source", f"{prefix}source", printable=True)
        return MemberDocument(config, scaler, weights, baseline, test, metadata, source)


def validate_document(doc: Any, directory: Path) -> CheckpointDocument:
    """``doc`` (a parsed ``config.json``) as a :class:`CheckpointDocument`, or a one-line ModelError."""
    r = _Reader(directory)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise r.fail("", "not an emomon checkpoint (format field missing or different)")
    version = doc.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < FORMAT_VERSION:
        raise r.fail("format_version", f"expected a format version ({FORMAT_VERSION} or {ENSEMBLE_FORMAT_VERSION}), got {shown(version)}")
    if version > ENSEMBLE_FORMAT_VERSION:
        raise ModelError(f"{directory}: checkpoint format version {shown(version)} is newer than this emomon supports "
                         f"({ENSEMBLE_FORMAT_VERSION}); upgrade emomon")
    for key in ("config", "dims", "fingerprints", "scaler", "weights"):
        r.section(doc, key)
    dims = (r.integer(doc["dims"].get("text"), "dims.text", 1, MAX_DIM), r.integer(doc["dims"].get("speech"), "dims.speech", 1, MAX_DIM))
    fingerprints = (r.text(doc["fingerprints"].get("text"), "fingerprints.text"),
                    r.text(doc["fingerprints"].get("speech"), "fingerprints.speech"))
    metadata = r.optional_section(doc, "metadata", "metadata")
    extra = doc.get("ensemble")
    if extra is None:
        members = [r.member(doc, "", dims, metadata)]
    else:
        if not isinstance(extra, list) or not extra or not all(isinstance(e, dict) for e in extra):
            raise ModelError(f"{directory}: the 'ensemble' section of {CONFIG_FILE} is malformed (a list of members)")
        if version != ENSEMBLE_FORMAT_VERSION:
            raise ModelError(f"{directory}: an ensemble checkpoint must have format version {ENSEMBLE_FORMAT_VERSION}")
        sources = metadata.get("ensemble_of")
        if sources is not None and (not isinstance(sources, list) or len(sources) != 1 + len(extra)):
            raise r.fail("metadata.ensemble_of", f"expected a list of the {1 + len(extra)} trainings' sources, got {shown(sources)}")
        for i, s in enumerate(sources or ()):
            r.text(s, f"metadata.ensemble_of[{i}]", printable=True)
        first = r.optional_section(metadata, "first_member", "metadata.first_member")
        members = [r.member(doc, "", dims, first)]
        for i, entry in enumerate(extra, start=1):
            key = f"ensemble[{i - 1}]"
            own = r.optional_section(entry, "metadata", f"{key}.metadata")
            member = r.member(entry, key, dims, own)
            a, b = member.config, members[0].config
            if (a.model, a.classes, a.encoders.speech) != (b.model, b.classes, b.encoders.speech):
                raise ModelError(f"{directory}: ensemble member {i} differs from the first in its model, classes or speech encoder")
            members.append(member)
    text_layers = None
    if doc.get("text_layers") is not None or members[0].config.encoders.text.tune_layers:
        entry = doc.get("text_layers")
        if not isinstance(entry, dict):
            raise ModelError(f"{directory}: the config tunes the text encoder but {CONFIG_FILE} names no tuned text layers")
        text_layers = FileEntry(*r.file_entry(entry, "text_layers"))
    return CheckpointDocument(
        directory=directory, format_version=version, dims=dims, fingerprints=fingerprints, members=tuple(members),
        text_layers=text_layers, emomon_version=r.optional_text(doc, "emomon_version", "emomon_version", printable=True),
        created=r.optional_text(doc, "created", "created", printable=True), metadata=metadata,
    )
