"""Ensembles: trained checkpoints joined into one checkpoint whose model averages its members' distributions."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from emomon.config import ModelConfig
from emomon.errors import ModelError
from emomon.models.checkpoint import load_checkpoint
from emomon.training.saving import save_checkpoint, save_ensemble
from emomon.models.frames import Frames
from emomon.models.ensemble import EnsembleModel
from emomon.models.registry import build_model
from emomon.models.scaler import JointStandardScaler
from emomon.models.speaker_baseline import SpeakerBaselineOptions

from conftest import run_emomon, untrained_preset

D = 16


@pytest.fixture
def cfg():
    base = untrained_preset()
    return dataclasses.replace(base, model=ModelConfig(text_len=8, speech_len=6, ff_dim=32, layers=2, branch_heads=True, speaker_baseline=3.0))


def member(tmp_path, cfg, seed: int, name: str, population_mean: float = 0.5):
    """A trained-like checkpoint: its own random weights and its own scaler, and the shared speaker baseline."""
    torch.manual_seed(seed)
    model = build_model(cfg, D, D, len(cfg.classes))
    rng = np.random.default_rng(seed)
    model.set_scaler(JointStandardScaler(rng.normal(0, 1, D).astype(np.float32), rng.uniform(0.5, 2, D).astype(np.float32),
                                         rng.normal(0, 1, D).astype(np.float32), rng.uniform(0.5, 2, D).astype(np.float32)))
    model.speaker_baseline = SpeakerBaselineOptions(np.full(D, population_mean, np.float32), 3.0)
    return save_checkpoint(tmp_path / name, model, cfg, {"text": "t:1", "speech": "s:1"}, {"test": {"ravdess": {}}, "who": name})


def batch(seed: int = 0):
    rng = np.random.default_rng(seed)
    text = Frames.pad([rng.normal(0, 1, (n, D)).astype(np.float32) for n in (3, 0, 7)], D)
    speech = Frames.pad([rng.normal(0, 1, (n, D)).astype(np.float32) for n in (20, 9, 0)], D)
    return text, speech


def outputs(model, text, speech):
    with torch.no_grad():
        return model(model.prepare(text, speech))


def test_the_ensemble_averages_its_members_each_read_with_its_own_scaler(tmp_path, cfg):
    a, b, c = (member(tmp_path, cfg, s, n) for s, n in ((0, "a"), (1, "b"), (2, "c")))
    joined = load_checkpoint(save_ensemble(tmp_path / "abc", [a, b, c]))
    assert isinstance(joined.model, EnsembleModel) and len(joined.model.members) == 3
    text, speech = batch()
    got = outputs(joined.model, text, speech)
    alone = [outputs(load_checkpoint(p).model, text, speech) for p in (a, b, c)]
    assert torch.allclose(got.probs, torch.stack([o.probs for o in alone]).mean(0), atol=1e-6)
    assert set(got.steps) == set(alone[0].steps)
    for k in got.steps:
        assert torch.allclose(got.steps[k], torch.stack([o.steps[k] for o in alone]).mean(0), atol=1e-6)
    # the members really differ, so the mean is not any one of them
    assert not torch.allclose(got.probs, alone[0].probs, atol=1e-3)
    assert torch.allclose(got.probs.sum(-1), torch.ones(3)) and torch.allclose(got.log_probs.exp(), got.probs)
    assert joined.model.speaker_baseline is not None and joined.model.n_classes == len(cfg.classes)


def test_the_checkpoint_lists_its_members_and_keeps_their_metadata(tmp_path, cfg):
    a, b = member(tmp_path, cfg, 0, "a"), member(tmp_path, cfg, 1, "b")
    out = save_ensemble(tmp_path / "ab", [a, b])
    doc = json.loads((out / "config.json").read_text())
    assert doc["format_version"] == 2 and len(doc["ensemble"]) == 1
    assert doc["ensemble"][0]["weights"]["file"] == "member-1.safetensors" and (out / "member-1.safetensors").is_file()
    assert doc["ensemble"][0]["metadata"]["who"] == "b" and doc["metadata"]["first_member"]["who"] == "a"
    assert doc["metadata"]["ensemble_of"] == [str(a), str(b)]
    # the members' own directories are untouched and still load alone
    assert not isinstance(load_checkpoint(a).model, EnsembleModel)


def test_a_damaged_member_is_one_clear_error(tmp_path, cfg):
    out = save_ensemble(tmp_path / "ab", [member(tmp_path, cfg, 0, "a"), member(tmp_path, cfg, 1, "b")])
    w = out / "member-1.safetensors"
    w.write_bytes(w.read_bytes()[:-64])
    with pytest.raises(ModelError, match="member-1.safetensors is corrupt or truncated"):
        load_checkpoint(out)
    w.unlink()
    with pytest.raises(ModelError, match="ensemble member 1.*missing"):
        load_checkpoint(out)


def test_a_member_edited_to_another_model_is_refused_at_load(tmp_path, cfg):
    out = save_ensemble(tmp_path / "ab", [member(tmp_path, cfg, 0, "a"), member(tmp_path, cfg, 1, "b")])
    doc = json.loads((out / "config.json").read_text())
    doc["ensemble"][0]["config"]["model"]["layers"] = 3
    (out / "config.json").write_text(json.dumps(doc))
    with pytest.raises(ModelError, match="member 1 differs from the first"):
        load_checkpoint(out)


def test_an_ensemble_section_in_a_version_1_file_is_refused(tmp_path, cfg):
    out = save_ensemble(tmp_path / "ab", [member(tmp_path, cfg, 0, "a"), member(tmp_path, cfg, 1, "b")])
    doc = json.loads((out / "config.json").read_text())
    doc["format_version"] = 1
    (out / "config.json").write_text(json.dumps(doc))
    with pytest.raises(ModelError, match="format version 2"):
        load_checkpoint(out)


@pytest.mark.parametrize("change, message", [
    ("layers", "model settings, classes or encoders differ"),
    ("baseline", "speaker baseline options differ"),
])
def test_members_that_cannot_share_encoders_and_baselines_are_refused(tmp_path, cfg, change, message):
    a = member(tmp_path, cfg, 0, "a")
    if change == "layers":
        b = member(tmp_path, dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, layers=1)), 1, "b")
    else:
        b = member(tmp_path, cfg, 1, "b", population_mean=0.7)
    with pytest.raises(ModelError, match=message):
        save_ensemble(tmp_path / "ab", [a, b])
    assert not (tmp_path / "ab" / "config.json").exists()


def test_one_member_a_training_given_twice_or_its_own_member_as_output_are_refused(tmp_path, cfg):
    a, b = member(tmp_path, cfg, 0, "a"), member(tmp_path, cfg, 1, "b")
    with pytest.raises(ModelError, match="two or more"):
        save_ensemble(tmp_path / "x", [a])
    ab = save_ensemble(tmp_path / "ab", [a, b])
    with pytest.raises(ModelError, match="are the same training"):
        save_ensemble(tmp_path / "y", [ab, a])  # the ensemble already holds a
    with pytest.raises(ModelError, match="are the same training"):
        save_ensemble(tmp_path / "y", [a, a])
    assert not (tmp_path / "y").exists()
    with pytest.raises(ModelError, match="cannot be written over its member"):
        save_ensemble(a, [a, b])
    with pytest.raises(ModelError, match="cannot be written over its member"):
        save_ensemble(ab, [ab, member(tmp_path, cfg, 2, "c")])


def test_an_ensemble_grows_by_new_trainings_and_equals_one_joined_from_scratch(tmp_path, cfg):
    a, b, c, d = (member(tmp_path, cfg, s, n) for s, n in ((0, "a"), (1, "b"), (2, "c"), (3, "d")))
    abc = save_ensemble(tmp_path / "abc", [a, b, c])
    grown = save_ensemble(tmp_path / "grown", [abc, d])
    fresh = save_ensemble(tmp_path / "fresh", [a, b, c, d])
    text, speech = batch(1)
    got, want = (outputs(load_checkpoint(p).model, text, speech) for p in (grown, fresh))
    assert len(load_checkpoint(grown).model.members) == 4
    assert torch.allclose(got.probs, want.probs, atol=1e-6)
    doc = json.loads((grown / "config.json").read_text())
    # each training keeps its own origin and metadata, whether it came alone or inside an ensemble
    assert doc["metadata"]["ensemble_of"] == [str(a), str(b), str(c), str(d)]
    assert doc["metadata"]["first_member"]["who"] == "a"
    assert [e["metadata"]["who"] for e in doc["ensemble"]] == ["b", "c", "d"]
    assert [e["source"] for e in doc["ensemble"]] == [str(b), str(c), str(d)]
    for i, name in enumerate(("b", "c", "d"), start=1):
        assert (grown / f"member-{i}.safetensors").read_bytes() == (tmp_path / name / "model.safetensors").read_bytes()
    # a new training can also come first: the ensemble's trainings follow it in their order
    first = json.loads((save_ensemble(tmp_path / "dabc", [d, abc]) / "config.json").read_text())
    assert first["metadata"]["ensemble_of"] == [str(d), str(a), str(b), str(c)]
    assert first["metadata"]["first_member"]["who"] == "d"


def test_training_cannot_start_from_an_ensemble(tmp_path, cfg):
    from emomon.training.loop import init_from_checkpoint

    ab = save_ensemble(tmp_path / "ab", [member(tmp_path, cfg, 0, "a"), member(tmp_path, cfg, 1, "b")])
    with pytest.raises(ModelError, match="is an ensemble; start from one of its members"):
        init_from_checkpoint(build_model(cfg, D, D, len(cfg.classes)), str(ab))


def test_cli_joins_and_describes_an_ensemble(tmp_path, cfg):
    a, b = member(tmp_path, cfg, 0, "a"), member(tmp_path, cfg, 1, "b")
    made = run_emomon("ensemble", str(tmp_path / "ab"), str(a), str(b))
    assert made.returncode == 0, made.stderr
    info = run_emomon("info", str(tmp_path / "ab"))
    assert info.returncode == 0 and "ensemble of 2 trainings" in info.stdout
    both = sum(int(json.loads((p / "config.json").read_text())["weights"]["parameters"]) for p in (a, b))
    assert f"parameters {both}," in info.stdout
    bad = run_emomon("ensemble", str(tmp_path / "x"), str(a))
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "emomon: error: emomon ensemble OUT A B [...]: give two or more checkpoints to join (got 1)"]


def test_half_stores_float16_weights_that_load_and_predict_as_the_float32_ensemble(tmp_path, cfg):
    from safetensors.torch import load_file

    a, b = member(tmp_path, cfg, 0, "a"), member(tmp_path, cfg, 1, "b")
    full = save_ensemble(tmp_path / "full", [a, b])
    half = save_ensemble(tmp_path / "half", [a, b], half=True)
    for name in ("model.safetensors", "member-1.safetensors"):
        state = load_file(str(half / name))
        assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
        assert (half / name).stat().st_size < 0.55 * (full / name).stat().st_size
    doc = json.loads((half / "config.json").read_text())
    assert doc["weights"]["dtype"] == doc["ensemble"][0]["weights"]["dtype"] == "float16"
    loaded = load_checkpoint(half)  # the recorded SHA-256 is the float16 file's
    assert all(p.dtype == torch.float32 for p in loaded.model.parameters())
    text, speech = batch(2)
    got, want = outputs(loaded.model, text, speech), outputs(load_checkpoint(full).model, text, speech)
    assert torch.allclose(got.probs, want.probs, atol=2e-3) and not torch.equal(got.probs, want.probs)
    # grown again without --half, the float16 members stay as they are
    grown = save_ensemble(tmp_path / "grown", [half, member(tmp_path, cfg, 2, "c")])
    assert (grown / "member-1.safetensors").read_bytes() == (half / "member-1.safetensors").read_bytes()
    made = run_emomon("ensemble", str(tmp_path / "cli"), str(a), str(b), "--half")
    assert made.returncode == 0 and "ensemble of 2 trainings written" in made.stdout and "float16" in made.stdout
