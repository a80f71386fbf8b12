"""The checkpoint document's schema (models/checkpoint_schema.py): every config.json emomon writes validates, and any
damage to one - NaN, infinities, -0, huge integers, wrong types, missing or unknown keys, deep nesting - gives a
validated document or one line of ModelError (exit code 4 on the command line), never a traceback (issue 31)."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emomon.config import MAX_NESTING, config_to_dict
from emomon.errors import ModelError
from emomon.models.checkpoint_schema import (FIGURES, MAX_DIM, CheckpointDocument, read_document, validate_document)

from conftest import untrained_preset
from test_config_properties import EXTREMES, anything, assert_in_schema, numbers

FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
D = 3  # encoder widths of the hand-written documents


def _figures(acc: float) -> dict:
    return {"fused": {"n": 10, "accuracy": acc, "weighted_f1": acc / 2, "uar": acc / 3, "macro_f1": 0.1,
                      "confusion": [[1, 2], [3, 4]], "classes": ["angry", "happy"]},
            "steps": {"step1": {"n": 10, "accuracy": 0.5}}}


def _entry(cfg: dict, seed: int, baseline: bool) -> dict:
    entry = {
        "config": copy.deepcopy(cfg),
        "scaler": {"mode": "joint", "text_mean": [0.1 * seed, 0.0, -1.5], "text_std": [1.0, 2.0, 0.5],
                   "speech_mean": [0.0, 1e-3, 3.0], "speech_std": [0.25, 1.0, 4.0]},
        "weights": {"file": "model.safetensors", "sha256": f"{seed:02x}" * 32, "parameters": 1234 + seed, "dtype": "float32"},
        "metadata": {"training": {"best_epoch": 2, "val_accuracy": 0.5, "history": [{"epoch": 1, "loss": float("nan")}]},
                     "test": {"ravdess": {"paired": _figures(0.75), "speech-only": _figures(0.5)}, "meld": {"text-only": _figures(0.25)}}},
    }
    if baseline:
        entry["speaker_baseline"] = {"population_mean": [0.5, -0.5, 0.0], "prior_weight": 3.0, "window": 200}
    return entry


def base_document(ensemble: bool = False) -> dict:
    """A config.json as training/saving.py writes one (save_checkpoint; save_ensemble for ``ensemble``), small."""
    cfg = untrained_preset()
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, speaker_baseline=3.0 if ensemble else 0.0))
    table = {k: v for k, v in config_to_dict(cfg).items() if k != "base_dir"}
    doc = {"format": "emomon.checkpoint", "format_version": 1, "emomon_version": "0.1.0", "created": "2026-01-01T00:00:00+00:00",
           "dims": {"text": D, "speech": D}, "fingerprints": {"text": "text:t:1", "speech": "speech:s:1"},
           **_entry(table, 1, ensemble)}
    if ensemble:
        other = _entry(table, 2, True)
        other.update(source="runs/b")
        other["weights"]["file"] = "member-1.safetensors"
        doc.update(format_version=2, ensemble=[other],
                   metadata={"ensemble_of": ["runs/a", "runs/b"], "first_member": doc["metadata"]})
    return doc


BASES = {"single": base_document(), "ensemble": base_document(ensemble=True)}


def assert_valid(got: CheckpointDocument) -> None:
    """What a validated document promises its readers."""
    assert len(got.members) >= 1 and got.format_version in (1, 2)
    for d in got.dims:
        assert type(d) is int and 1 <= d <= MAX_DIM
    assert all(isinstance(f, str) for f in got.fingerprints)
    for m in got.members:
        assert_in_schema(m.config)
        assert m.config.model == got.config.model and m.config.classes == got.config.classes
        for name, dim in (("text_mean", got.dims[0]), ("text_std", got.dims[0]), ("speech_mean", got.dims[1]), ("speech_std", got.dims[1])):
            values = getattr(m.scaler, name)
            assert len(values) == dim and all(type(v) is float and math.isfinite(v) for v in values)
            assert not name.endswith("std") or all(v > 0 for v in values)
        assert len(m.weights.sha256) == 64 and int(m.weights.sha256, 16) >= 0 and m.weights.file and "/" not in m.weights.file
        assert m.weights.parameters is None or (type(m.weights.parameters) is int and m.weights.parameters >= 0)
        if m.config.model.speaker_baseline > 0:
            sb = m.speaker_baseline
            assert sb is not None and len(sb.population_mean) == got.dims[1] and all(math.isfinite(v) for v in sb.population_mean)
            assert math.isfinite(sb.prior_weight) and sb.prior_weight > 0 and type(sb.window) is int and sb.window >= 1
        for t in m.test:
            assert t.source.isprintable() and t.mode.isprintable()
            for name in FIGURES:
                v = getattr(t, name)
                assert v is None or (type(v) is float and 0 <= v <= 1)
            assert t.n is None or (type(t.n) is int and t.n >= 0)
    assert got.parameters >= 0
    assert got.created is None or got.created.isprintable()


def _outcome(fn):
    """A validated document, or the one line of the ModelError it raised."""
    try:
        got = fn()
    except ModelError as exc:
        message = str(exc)
        assert message and "\n" not in message and "\r" not in message, message
        return message
    assert isinstance(got, CheckpointDocument)
    assert_valid(got)
    return got


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value[:3]):
            yield from _paths(v, (*prefix, i))


PATHS = {name: [p for p in _paths(doc) if p] for name, doc in BASES.items()}


def _at(doc, path):
    for part in path:
        doc = doc[part]
    return doc


def _deep(depth: int):
    value = 1
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


MUTATIONS = st.one_of(
    st.tuples(st.just("set"), st.one_of(st.sampled_from(EXTREMES), numbers, anything)),
    st.tuples(st.just("delete"), st.none()),
    st.tuples(st.just("unknown"), anything),
    st.tuples(st.just("deep"), st.integers(MAX_NESTING + 1, 3000)),
)


def _mutate(doc: dict, path: tuple, mutation) -> dict:
    doc = copy.deepcopy(doc)
    kind, value = mutation
    parent, last = _at(doc, path[:-1]), path[-1]
    if kind == "set":
        parent[last] = value
    elif kind == "delete":
        parent.pop(last)
    elif kind == "unknown":
        target = parent[last] if isinstance(parent[last], dict) else parent
        if isinstance(target, dict):
            target["colour-of-the-day"] = value
        else:
            target.append(value)
    else:
        parent[last] = _deep(value)
    return doc


@FAST
@given(st.sampled_from(sorted(BASES)), st.data())
def test_any_damage_gives_a_valid_document_or_one_model_error(tmp_path_factory, base, data):
    path = data.draw(st.sampled_from(PATHS[base]))
    mutation = data.draw(MUTATIONS)
    doc = _mutate(BASES[base], path, mutation)
    directory = tmp_path_factory.mktemp("ck")
    got = _outcome(lambda: validate_document(doc, directory))
    if mutation[0] == "deep":
        return  # json.dumps itself cannot write it; the file's own deep-nesting test is below
    # through the file: the same document, or an error (the same one, or the nesting scan's)
    (directory / "config.json").write_text(json.dumps(doc), encoding="utf-8")
    again = _outcome(lambda: read_document(directory))
    assert type(again) is type(got), (got, again)
    if isinstance(got, CheckpointDocument):
        assert again == got


@FAST
@given(st.sampled_from(sorted(BASES)), st.data())
def test_any_number_of_a_number_field_is_finite_and_in_range_or_refused(tmp_path_factory, base, data):
    """Damage to the fields that hold numbers only, so that one let through shows."""
    numeric = [p for p in PATHS[base] if isinstance(_at(BASES[base], p), (int, float)) and not isinstance(_at(BASES[base], p), bool)
               and "training" not in p]
    path = data.draw(st.sampled_from(numeric))
    value = data.draw(st.sampled_from([float("nan"), float("inf"), float("-inf"), -0.0, 10**30, -1, True, "1"]) | numbers)
    doc = _mutate(BASES[base], path, ("set", value))
    _outcome(lambda: validate_document(doc, tmp_path_factory.mktemp("ck")))


def test_the_hand_written_documents_validate_as_written():
    for name, doc in BASES.items():
        got = _outcome(lambda: validate_document(doc, Path("/x")))
        assert isinstance(got, CheckpointDocument), got
        assert got.is_ensemble == (name == "ensemble") and got.dims == (D, D)
        assert [(t.source, t.mode, t.accuracy) for t in got.members[-1].test] == [
            ("ravdess", "paired", 0.75), ("ravdess", "speech-only", 0.5), ("meld", "text-only", 0.25)]
        assert got.metadata == doc["metadata"]


@settings(max_examples=8, deadline=None)
@given(st.integers(MAX_NESTING + 1, 200_000), st.sampled_from(["[", '{"a": ', '{"metadata": {"x": [']))
def test_a_deeply_nested_config_json_is_refused_before_parsing(tmp_path_factory, depth, opener):
    directory = tmp_path_factory.mktemp("deep")
    (directory / "config.json").write_text('{"format": "emomon.checkpoint", "x": ' + opener * depth + "1")
    start = time.perf_counter()
    with pytest.raises(ModelError, match=f"nested more than {MAX_NESTING} deep") as err:
        read_document(directory)
    assert "\n" not in str(err.value) and time.perf_counter() - start < 2.0


# ---------------------------------------------------------------------------------------------------- the issue's cases
def _write(tmp_path, mutate, base: str = "single"):
    doc = copy.deepcopy(BASES[base])
    mutate(doc)
    directory = tmp_path / "ck"
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return directory


ISSUE_CASES = {
    "config is empty": (lambda d: d.update(config={}), "config: invalid model config in checkpoint: classes is missing"),
    "model is a string": (lambda d: d["config"].update(model="hyfuser"), "invalid model config in checkpoint: model: expected a table, got str"),
    "accuracy n/a": (lambda d: d["metadata"]["test"]["ravdess"]["paired"]["fused"].update(accuracy="n/a"),
                     "metadata.test.ravdess.paired.fused.accuracy: expected a number, got 'n/a'"),
    "dims.text Infinity": (lambda d: d["dims"].update(text=float("inf")), "dims.text: expected an integer, got inf"),
    "dims.text huge": (lambda d: d["dims"].update(text=10**40), "dims.text: must be <= 65536"),
    "NaN dropout": (lambda d: d["config"]["model"].update(dropout=float("nan")), "model.dropout: must be a finite number, got nan"),
    "NaN scaler": (lambda d: d["scaler"]["speech_std"].__setitem__(1, float("nan")), r"scaler.speech_std\[1\]: must be a finite number"),
    "zero std": (lambda d: d["scaler"]["text_std"].__setitem__(0, -0.0), "non-positive"),
    "sha256 not hex": (lambda d: d["weights"].update(sha256="z" * 64), "weights.sha256: expected a SHA-256 of 64 hex digits"),
    "test is a list": (lambda d: d["metadata"].update(test=[0.5]), "metadata.test: expected an object"),
    "version as text": (lambda d: d.update(format_version="1"), "format_version: expected a format version"),
    "research arch name unknown": (lambda d: d["config"]["model"].update(arch="transformer"), "model.arch: must be one of"),
}


@pytest.mark.parametrize("case", list(ISSUE_CASES))
def test_info_and_replay_say_one_line_and_exit_4(tmp_path, capsys, case):
    from emomon.cli import main

    mutate, message = ISSUE_CASES[case]
    directory = _write(tmp_path, mutate)
    for argv in (["info", str(directory)], ["replay", "--sample", "--model", str(directory), "--csv", str(tmp_path / "s.csv")]):
        assert main(argv) == 4, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("emomon: error: "), err
        assert re.search(message, err[0]), (message, err[0])
    assert not (tmp_path / "s.csv").exists()


def test_info_shows_absent_figures_as_n_a(tmp_path, capsys):
    from emomon.cli import main

    directory = _write(tmp_path, lambda d: d["metadata"]["test"]["ravdess"]["paired"]["fused"].pop("accuracy"))
    assert main(["info", str(directory)]) == 0
    out = capsys.readouterr().out
    assert "test ravdess      paired       acc   n/a  wF1 0.375  UAR 0.250" in out, out
    assert "parameters 1235, created 2026-01-01T00:00:00+00:00" in out


# ---------------------------------------------------------------------------------------------------- real checkpoints
def test_the_shipped_checkpoint_validates_unchanged():
    from emomon.models.checkpoint import read_checkpoint, read_checkpoint_config

    got = read_checkpoint("hyfuser-tiny-en")
    assert_valid(got)
    directory, raw = read_checkpoint_config("hyfuser-tiny-en")
    assert got.directory == directory and got.is_ensemble and len(got.members) == 1 + len(raw["ensemble"]) == 5
    assert got.dims == (raw["dims"]["text"], raw["dims"]["speech"]) == (384, 384)
    assert got.parameters == sum(m["weights"]["parameters"] for m in [raw, *raw["ensemble"]])
    assert got.text_layers.sha256 == raw["text_layers"]["sha256"] and got.metadata == raw["metadata"]
    fused = raw["metadata"]["first_member"]["test"]["ravdess"]["paired"]["fused"]
    first = got.members[0].test[0]
    assert (first.source, first.mode, first.accuracy, first.uar, first.n) == ("ravdess", "paired", fused["accuracy"], fused["uar"], fused["n"])


def test_a_trained_checkpoint_and_a_research_architecture_validate(tmp_path):
    """What training writes (the training's record, test figures, a transcript threshold set afterwards) and a
    research architecture's checkpoint validate; the research one loads once training registers its architecture."""
    import torch

    from conftest import hand_built_training_data

    import emomon.training.architectures  # noqa: F401 - registers the research architectures
    from emomon.models.checkpoint import load_checkpoint, read_checkpoint
    from emomon.models.registry import build_model
    from emomon.training.loop import train
    from emomon.training.saving import save_checkpoint, set_transcript_threshold

    cfg, data = hand_built_training_data()
    train(cfg, tmp_path / "run", data=data)
    set_transcript_threshold(tmp_path / "run", -2.0)
    got = read_checkpoint(tmp_path / "run")
    assert_valid(got)
    assert got.config.model.min_asr_logprob == -2.0 and got.metadata["transcript_threshold"][0]["value"] == -2.0
    assert {(t.source, t.mode) for t in got.members[0].test} >= {("ravdess", "paired"), ("meld", "text-only")}
    assert all(t.accuracy is not None for t in got.members[0].test)

    research = dataclasses.replace(untrained_preset(), model=dataclasses.replace(untrained_preset().model, arch="text_bilstm", lstm_hidden=8,
                                                                                   lstm_layers=1, text_len=8, speech_len=6))
    torch.manual_seed(0)
    path = save_checkpoint(tmp_path / "bilstm", build_model(research, 16, 16, 7), research, {"text": "t:1", "speech": "s:1"})
    assert read_checkpoint(path).config.model.arch == "text_bilstm"
    assert load_checkpoint(path).config.model.arch == "text_bilstm"
