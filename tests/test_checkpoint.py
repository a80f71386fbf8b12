"""Checkpoints: save/load round trip, and one clear ModelError for every kind of damage or mismatch."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from emomon.errors import ModelError
from emomon.models.checkpoint import load_checkpoint, read_checkpoint_config
from emomon.training.saving import save_checkpoint
from emomon.config import ModelConfig
from emomon.models.frames import Frames
from emomon.models.registry import build_model
from emomon.models.scaler import JointStandardScaler

from conftest import untrained_preset

D = 16


@pytest.fixture
def cfg():
    base = untrained_preset()
    return dataclasses.replace(base, model=ModelConfig(text_len=8, speech_len=6, ff_dim=32, layers=2))


@pytest.fixture
def saved(tmp_path, cfg):
    torch.manual_seed(0)
    model = build_model(cfg, D, D, 7)
    model.set_scaler(JointStandardScaler(np.arange(D, dtype=np.float32), np.ones(D, np.float32) * 2, np.arange(D, dtype=np.float32), np.ones(D, np.float32) * 2))
    path = save_checkpoint(tmp_path / "ckpt", model, cfg, {"text": "t:1", "speech": "s:1"}, {"note": "test"})
    return path, model


def test_round_trip(saved, cfg):
    path, model = saved
    ck = load_checkpoint(path)
    assert ck.config.model == cfg.model and ck.classes == cfg.classes
    assert ck.fingerprints == {"text": "t:1", "speech": "s:1"} and ck.metadata == {"note": "test"}
    assert np.array_equal(ck.model.scaler.text_mean, np.arange(D, dtype=np.float32))
    t, s = Frames.pad([np.ones((3, D))], D), Frames.pad([np.ones((9, D))], D)
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model(model.prepare(t, s)).probs, ck.model(ck.model.prepare(t, s)).probs)
    # either file of the pair names the checkpoint too
    assert load_checkpoint(path / "config.json").path == path


def test_files_are_json_and_safetensors_only(saved):
    path, _ = saved
    doc = json.loads((path / "config.json").read_text())
    assert doc["format"] == "emomon.checkpoint" and doc["scaler"]["mode"] == "joint"
    assert (path / "model.safetensors").read_bytes()[8:9] == b"{"  # safetensors header, not a pickle


def test_truncated_weights(saved):
    path, _ = saved
    w = path / "model.safetensors"
    w.write_bytes(w.read_bytes()[:-100])
    with pytest.raises(ModelError, match="corrupt or truncated"):
        load_checkpoint(path)


def test_corrupt_weights_with_matching_checksum_is_still_caught(saved):
    path, _ = saved
    w = path / "model.safetensors"
    w.write_bytes(b"not a safetensors file at all")
    doc = json.loads((path / "config.json").read_text())
    import hashlib

    doc["weights"]["sha256"] = hashlib.sha256(w.read_bytes()).hexdigest()
    (path / "config.json").write_text(json.dumps(doc))
    with pytest.raises(ModelError, match="not a readable safetensors file"):
        load_checkpoint(path)


def test_config_that_does_not_match_the_weights(saved):
    path, _ = saved
    doc = json.loads((path / "config.json").read_text())
    doc["config"]["model"]["layers"] = 3
    (path / "config.json").write_text(json.dumps(doc))
    with pytest.raises(ModelError, match="do not match architecture"):
        load_checkpoint(path)
    doc["config"]["model"]["layers"] = 2
    doc["config"]["model"]["ff_dim"] = 64
    (path / "config.json").write_text(json.dumps(doc))
    with pytest.raises(ModelError, match="has shape"):
        load_checkpoint(path)


def test_branch_heads_round_trip_and_must_match_the_weights(tmp_path, cfg):
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, branch_heads=True))
    torch.manual_seed(0)
    model = build_model(cfg, D, D, 7).eval()
    path = save_checkpoint(tmp_path / "ckpt", model, cfg, {"text": "t:1", "speech": "s:1"})
    ck = load_checkpoint(path)
    t, s = Frames.pad([np.ones((3, D))], D), Frames.pad([np.random.default_rng(0).normal(size=(9, D))], D)
    with torch.no_grad():
        want, got = model(model.prepare(t, s)), ck.model(ck.model.prepare(t, s))
    assert torch.allclose(want.probs, got.probs) and set(got.steps) == {"step1", "step2", "hyfuser", "text_branch", "speech_branch"}
    doc = json.loads((path / "config.json").read_text())
    doc["config"]["model"]["branch_heads"] = False
    (path / "config.json").write_text(json.dumps(doc))
    with pytest.raises(ModelError, match="do not match architecture"):
        load_checkpoint(path)


def test_other_classes_or_encoder_widths(saved):
    path, _ = saved
    doc = json.loads((path / "config.json").read_text())
    doc["config"]["classes"] = ["angry", "happy", "neutral", "sad"]
    (path / "config.json").write_text(json.dumps(doc))
    with pytest.raises(ModelError, match=r"head_step\d.\w+ has shape \(7"):
        load_checkpoint(path)
    doc["config"]["classes"] = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    doc["dims"]["text"] = 32
    (path / "config.json").write_text(json.dumps(doc))
    with pytest.raises(ModelError, match="scaler has text statistics of size"):
        load_checkpoint(path)
    doc["config"]["classes"] = ["angry", "joy"]
    (path / "config.json").write_text(json.dumps(doc))
    with pytest.raises(ModelError, match="invalid model config"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.update(format="something-else"), "not an emomon checkpoint"),
        (lambda d: d.update(format_version=99), "newer than this emomon supports"),
        (lambda d: d.pop("scaler"), "'scaler' section is missing"),
        (lambda d: d["scaler"].update(text_mean=[0.0] * 3), "scaler has text statistics of size"),
        (lambda d: d["scaler"].update(text_std=[0.0] * D), "non-positive"),
        (lambda d: d["config"]["model"].update(colour="red"), "unknown setting model.colour"),
        # issue 31: non-finite and extreme numbers, and tables that are not tables, are one line each
        (lambda d: d["dims"].update(text=float("inf")), "dims.text: expected an integer, got inf"),
        (lambda d: d["config"]["model"].update(dropout=float("nan")), "model.dropout: must be a finite number, got nan"),
        (lambda d: d.update(config={}), "classes is missing"),
        (lambda d: d["config"].update(model="hyfuser"), "model: expected a table, got str"),
        (lambda d: d["metadata"].update(test={"ravdess": {"paired": {"fused": {"accuracy": "n/a"}}}}),
         "metadata.test.ravdess.paired.fused.accuracy: expected a number, got 'n/a'"),
        (lambda d: d["scaler"].update(speech_mean=[float("nan")] * D), r"scaler.speech_mean\[0\]: must be a finite number"),
    ],
)
def test_bad_config_json(saved, mutate, message):
    path, _ = saved
    doc = json.loads((path / "config.json").read_text())
    mutate(doc)
    (path / "config.json").write_text(json.dumps(doc))
    with pytest.raises(ModelError, match=message):
        load_checkpoint(path)


def test_not_json_missing_files_and_names(saved, tmp_path):
    path, _ = saved
    (path / "config.json").write_text("{ this is not json")
    with pytest.raises(ModelError, match="corrupt or not JSON"):
        read_checkpoint_config(path)
    with pytest.raises(ModelError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nowhere")
    with pytest.raises(ModelError, match="checkpoint not found"):
        load_checkpoint("no-such-shipped-model")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelError, match="config.json is missing"):
        load_checkpoint(empty)


def test_nan_weights_are_rejected(saved, cfg):
    path, model = saved
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    save_checkpoint(path, model, cfg, {"text": "t", "speech": "s"})
    with pytest.raises(ModelError, match="NaN"):
        load_checkpoint(path)


def test_a_wider_text_encoder_projected_to_the_model_width_round_trips(tmp_path):
    """en-mpnet's shape: 768-d text projected to the speech width, branch heads and a speaker baseline (small here)."""
    from emomon.models.speaker_baseline import SpeakerBaselineOptions

    base = untrained_preset("en-mpnet")
    assert base.encoders.text.name == "mpnet" and base.model.d_model == 384
    cfg = dataclasses.replace(base, model=dataclasses.replace(base.model, d_model=D, text_len=8, speech_len=6, ff_dim=32,
                                                              speaker_baseline=3.0))
    torch.manual_seed(0)
    model = build_model(cfg, 2 * D, D, 7).eval()
    model.speaker_baseline = SpeakerBaselineOptions(np.full(D, 0.5, np.float32), 3.0)
    assert model.text_in.in_features == 2 * D and model.branches.text_head[1].in_features == 2 * D
    path = save_checkpoint(tmp_path / "ckpt", model, cfg, {"text": "t:1", "speech": "s:1"})
    ck = load_checkpoint(path)
    assert ck.dims == {"text": 2 * D, "speech": D} and ck.model.speaker_baseline.prior_weight == 3.0
    t, s = Frames.pad([np.ones((3, 2 * D))], 2 * D), Frames.pad([np.random.default_rng(0).normal(size=(9, D))], D)
    with torch.no_grad():
        assert torch.allclose(model(model.prepare(t, s)).probs, ck.model(ck.model.prepare(t, s)).probs)
