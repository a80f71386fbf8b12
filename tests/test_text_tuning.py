"""Tuning the text encoder's top layers: what is written, how it loads, how checkpoints carry and check it."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from emomon.config import SourceConfig, TextEncoderConfig
from emomon.errors import ModelError
from emomon.training.data import Item
from emomon.training.sources import Source
from emomon.models.encoders import build_text_encoder
from emomon.models.encoders.tuned_text import TUNED_TEXT_FILE, load_tuned_layers
from emomon.training.text_tuning import learning_rate_schedule, load_tuning_head, tune_text_encoder, tuning_head_file

from conftest import make_tiny_bert, untrained_preset

WORDS = {"happy": ["glad", "joy", "great", "love"], "sad": ["cry", "alone", "loss", "grief"]}


@pytest.fixture
def tiny_bert(tmp_path):
    return make_tiny_bert(tmp_path, ["i", "feel", "so", "today"] + [w for ws in WORDS.values() for w in ws])


def _cfg(tiny_bert, **tune):
    cfg = untrained_preset()
    text = TextEncoderConfig(name=str(tiny_bert), max_tokens=12, tune_layers=1, tune_epochs=3, tune_lr=3e-3, tune_epoch_size=640, **tune)
    return dataclasses.replace(cfg, classes=("happy", "sad"), encoders=dataclasses.replace(cfg.encoders, text=text),
                               train=dataclasses.replace(cfg.train, label_smoothing=0.0))


def _logged_f1(caplog) -> list[float]:
    """The validation weighted F1 the tuning logged after each epoch."""
    return [float(r.message.split("weighted F1 ")[1].split()[0]) for r in caplog.records if "weighted F1" in r.message]


def _sources():
    rng = np.random.default_rng(0)
    items = []
    for n in range(160):
        label = ("happy", "sad")[n % 2]
        words = " ".join(rng.choice(WORDS[label], 2))
        items.append(Item(id=f"t{n}", corpus="manifest", label=label, speaker=f"s{n % 7}", audio=None,
                          text=f"i feel so {words} today", split="val" if n >= 120 else "train"))
    return [Source("text", SourceConfig(corpus="manifest", path="x"), items)]


def test_tuning_writes_only_the_top_layers_and_they_change_the_states(tiny_bert, tmp_path, caplog):
    cfg = _cfg(tiny_bert)
    caplog.set_level("INFO", logger="emomon")
    path = tune_text_encoder(cfg, _sources(), tmp_path / "run" / TUNED_TEXT_FILE, cache_dir=tmp_path / "cache")
    from safetensors.torch import load_file

    state = load_file(str(path))
    assert state and all(k.startswith("encoder.layer.1.") for k in state)
    assert all(v.dtype == torch.float16 for v in state.values())
    f1 = _logged_f1(caplog)
    assert len(f1) == 3 and max(f1) > 0.9  # a separable task is learned (through the tuned layer and the head)

    frozen = build_text_encoder(dataclasses.replace(cfg.encoders.text, tune_layers=0))
    tuned = build_text_encoder(cfg.encoders.text, tuned_layers=path)
    assert tuned.fingerprint != frozen.fingerprint and ":tuned=" in tuned.fingerprint
    a, b = frozen.encode(["i feel so glad today"]).values, tuned.encode(["i feel so glad today"]).values
    assert not torch.allclose(a, b, atol=1e-3)
    for (name, p), (_, q) in zip(frozen.model.named_parameters(), tuned.model.named_parameters()):
        if not name.startswith("encoder.layer.1."):
            assert torch.equal(p, q), name

    # the tuning's own head is kept beside the layers, and it is the classifier the tuning chose: on the tuned
    # encoder's mean token states it separates the validation sentences
    weight, bias = load_tuning_head(path, cfg.classes)
    val = [it for it in _sources()[0].items if it.split == "val"]
    states = tuned.encode([it.text for it in val])
    pooled = (states.values * states.mask[..., None]).sum(1) / states.mask.sum(1, keepdim=True)
    predicted = (pooled @ weight.T + bias).argmax(-1).tolist()
    assert np.mean([cfg.classes[k] == it.label for k, it in zip(predicted, val)]) > 0.9

    # same encoder, data and settings: taken from the cache, byte for byte
    again = tune_text_encoder(cfg, _sources(), tmp_path / "run2" / TUNED_TEXT_FILE, cache_dir=tmp_path / "cache")
    assert again.read_bytes() == path.read_bytes()
    assert tuning_head_file(again).read_bytes() == tuning_head_file(path).read_bytes()
    # layers cached before heads were kept serve a preset that does not need the head; one that does tunes again
    (cached,) = [p for p in (tmp_path / "cache").glob("text-*.safetensors") if not p.name.endswith(".head.safetensors")]
    tuning_head_file(cached).unlink()
    caplog.clear()
    tune_text_encoder(cfg, _sources(), cache_dir=tmp_path / "cache")
    assert any("taken from" in r.message for r in caplog.records)
    caplog.clear()
    needs_head = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, text_branch_from_tuning=True))
    assert tune_text_encoder(needs_head, _sources(), cache_dir=tmp_path / "cache") == cached
    assert not any("taken from" in r.message for r in caplog.records) and tuning_head_file(cached).is_file()


def test_linear_schedule_warms_up_then_decays_to_zero():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=1.0)
    schedule = learning_rate_schedule(opt, "linear", 100)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        schedule.step()
    peak = lrs.index(max(lrs))
    assert peak == 5 and max(lrs) == pytest.approx(1.0, abs=0.02) and lrs[0] < 0.2  # 6 % of 100 steps of warm-up
    assert all(a < b for a, b in zip(lrs[:peak], lrs[1 : peak + 1]))
    assert all(a > b for a, b in zip(lrs[peak:], lrs[peak + 1 :])) and lrs[-1] < 0.02
    constant = learning_rate_schedule(torch.optim.AdamW([p], lr=0.5), "constant", 100)
    assert constant.get_last_lr() == [0.5]


def test_the_schedule_is_part_of_the_tuning_identity(tiny_bert, tmp_path, caplog):
    caplog.set_level("INFO", logger="emomon")
    constant = tune_text_encoder(_cfg(tiny_bert), _sources(), cache_dir=tmp_path / "cache")
    linear = tune_text_encoder(_cfg(tiny_bert, tune_schedule="linear"), _sources(), cache_dir=tmp_path / "cache")
    assert linear != constant and linear.read_bytes() != constant.read_bytes()
    f1 = _logged_f1(caplog)
    assert len(f1) == 6 and max(f1[3:]) > 0.9  # both tuned (none taken from the other's cache) and the linear one learns


def test_a_tuned_preset_without_its_layers_or_with_a_bad_file_is_one_clear_error(tiny_bert, tmp_path):
    cfg = _cfg(tiny_bert)
    with pytest.raises(ModelError, match="tuned text layers"):
        build_text_encoder(cfg.encoders.text)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not safetensors")
    with pytest.raises(ModelError, match="not a readable safetensors"):
        build_text_encoder(cfg.encoders.text, tuned_layers=bad)
    from safetensors.torch import save_file

    save_file({"encoder.layer.9.nothing": torch.zeros(2)}, str(bad))
    enc = build_text_encoder(dataclasses.replace(cfg.encoders.text, tune_layers=0))
    with pytest.raises(ModelError, match="does not match"):
        load_tuned_layers(enc.model, bad)


def test_checkpoint_carries_and_checks_the_tuned_layers(tiny_bert, tmp_path):
    from emomon.models.checkpoint import load_checkpoint
    from emomon.training.saving import save_checkpoint
    from emomon.models.inference import EmotionRecognizer
    from emomon.models.registry import build_model

    cfg = _cfg(tiny_bert)
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, d_model=24, layers=1, ff_dim=32))
    layers = tune_text_encoder(cfg, _sources(), tmp_path / "t" / TUNED_TEXT_FILE, cache_dir=tmp_path / "cache")
    model = build_model(cfg, 24, 384, 2)
    with pytest.raises(ModelError, match="tuned text layers"):
        save_checkpoint(tmp_path / "ck0", model, cfg, {"text": "t", "speech": "s"})
    ck = save_checkpoint(tmp_path / "ck", model, cfg, {"text": "t", "speech": "s"}, text_layers=layers)
    assert (ck / TUNED_TEXT_FILE).read_bytes() == layers.read_bytes()
    loaded = load_checkpoint(ck)
    assert loaded.text_layers == ck / TUNED_TEXT_FILE
    rec = EmotionRecognizer(loaded, device="cpu")
    assert ":tuned=" in rec.text_encoder.fingerprint
    assert rec.predict([None], ["i feel so grief today"])[0].label in ("happy", "sad")

    blob = bytearray((ck / TUNED_TEXT_FILE).read_bytes())
    blob[-1] ^= 0xFF
    (ck / TUNED_TEXT_FILE).write_bytes(bytes(blob))
    with pytest.raises(ModelError, match="corrupt or truncated"):
        load_checkpoint(ck)
    (ck / TUNED_TEXT_FILE).unlink()
    with pytest.raises(ModelError, match="missing"):
        load_checkpoint(ck)
    doc = json.loads((ck / "config.json").read_text())
    del doc["text_layers"]
    (ck / "config.json").write_text(json.dumps(doc))
    with pytest.raises(ModelError, match="names no tuned text layers"):
        load_checkpoint(ck)


def _fake_tuning(tmp_path, classes, dim):
    """Tuned-layers stand-in and a random tuning head written beside it, as the tuning writes them."""
    import hashlib

    from safetensors.torch import save, save_file

    layers = tmp_path / "tuned" / "text-0.safetensors"
    layers.parent.mkdir(parents=True)
    save_file({"encoder.layer.0.w": torch.zeros(1)}, str(layers))
    gen = torch.Generator().manual_seed(3)
    weight, bias = torch.randn(len(classes), dim, generator=gen), torch.randn(len(classes), generator=gen)
    meta = {"layers_sha256": hashlib.sha256(layers.read_bytes()).hexdigest(), "classes": ",".join(classes)}
    tuning_head_file(layers).write_bytes(save({"weight": weight, "bias": bias}, metadata=meta))
    return layers, weight, bias


def test_the_text_branch_can_be_the_tuning_head_kept_frozen_through_training(tmp_path):
    from conftest import hand_built_training_data
    from emomon.models.checkpoint import load_checkpoint
    from emomon.models.frames import Frames
    from emomon.models.layers import masked_mean
    from emomon.training.loop import train

    cfg, data = hand_built_training_data()
    cfg = dataclasses.replace(cfg, encoders=dataclasses.replace(cfg.encoders, text=dataclasses.replace(cfg.encoders.text, tune_layers=1)),
                              train=dataclasses.replace(cfg.train, lr=1e-2, text_branch_from_tuning=True))
    layers, weight, bias = _fake_tuning(tmp_path, cfg.classes, data.text_dim)
    train(cfg, tmp_path / "run", data=dataclasses.replace(data, text_layers=layers), evaluate_test=False)
    model = load_checkpoint(tmp_path / "run").model.eval()
    assert model.text_std.std() > 0.01  # a real scaler, so the carrying into the scaled space is exercised

    # through training at a high learning rate, the branch stayed exactly the head over the mean raw token state
    raw = torch.randn(3, 5, data.text_dim)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    raw = raw * mask[..., None]
    x = model.prepare(Frames(raw, mask), Frames.pad([np.zeros((0, data.speech_dim))] * 3, data.speech_dim))
    with torch.no_grad():
        branch = torch.log_softmax(model.branches.text_head(masked_mean(x.text, x.text_mask)), -1)
    head = torch.log_softmax(masked_mean(raw, mask) @ weight.T + bias, -1)
    assert torch.allclose(branch, head, atol=1e-4)

    # without the flag, the same run started from that checkpoint (its branch is the head) trains the branch away
    plain = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, text_branch_from_tuning=False, init_from=str(tmp_path / "run")))
    train(plain, tmp_path / "plain", data=dataclasses.replace(data, text_layers=layers), evaluate_test=False)
    other = load_checkpoint(tmp_path / "plain").model.eval()
    with torch.no_grad():
        other_branch = torch.log_softmax(other.branches.text_head(masked_mean(x.text, x.text_mask)), -1)
    assert not torch.allclose(other_branch, head, atol=1e-2)


def test_a_tuning_head_of_other_layers_or_classes_is_one_clear_error(tmp_path):
    from safetensors.torch import save_file

    from emomon.config import config_from_dict, load_config
    from emomon.errors import ConfigError

    layers, _, _ = _fake_tuning(tmp_path, ("happy", "sad"), 4)
    assert load_tuning_head(layers, ("happy", "sad"))[0].shape == (2, 4)
    with pytest.raises(ModelError, match="a head for classes"):
        load_tuning_head(layers, ("happy", "sad", "angry"))
    save_file({"encoder.layer.0.w": torch.ones(1)}, str(layers))  # the layers were tuned again: the head is stale
    with pytest.raises(ModelError, match="was not trained with the tuned layers"):
        load_tuning_head(layers, ("happy", "sad"))
    tuning_head_file(layers).unlink()
    with pytest.raises(ModelError, match="head .* is missing"):
        load_tuning_head(layers, ("happy", "sad"))
    tuning_head_file(layers).write_bytes(b"not safetensors")
    with pytest.raises(ModelError, match="not a readable text tuning head"):
        load_tuning_head(layers, ("happy", "sad"))
    # the setting needs a tuned text encoder and branch heads
    assert load_config("en-tiny-refit-sure-text").train.text_branch_from_tuning
    with pytest.raises(ConfigError, match="train.text_branch_from_tuning: needs"):
        config_from_dict({"train": {"text_branch_from_tuning": True}})


def test_tune_seed_lets_runs_with_another_training_seed_share_one_tuning(tiny_bert, tmp_path, caplog):
    caplog.set_level("INFO", logger="emomon")
    cache = tmp_path / "cache"
    first = tune_text_encoder(_cfg(tiny_bert), _sources(), cache_dir=cache)
    reseeded = lambda cfg, seed: dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed=seed))  # noqa: E731
    caplog.clear()
    shared = tune_text_encoder(reseeded(_cfg(tiny_bert, tune_seed=0), 1), _sources(), cache_dir=cache)
    assert shared == first and any("taken from" in r.message for r in caplog.records)
    caplog.clear()
    own = tune_text_encoder(reseeded(_cfg(tiny_bert), 1), _sources(), cache_dir=cache)  # tune_seed -1: train.seed's own
    assert own != first and not any("taken from" in r.message for r in caplog.records)
    assert len(list(cache.glob("text-*.head.safetensors"))) == 2


def _tuned(cfg, **text):
    return dataclasses.replace(cfg, encoders=dataclasses.replace(cfg.encoders, text=dataclasses.replace(cfg.encoders.text, **text)))


def test_a_new_training_takes_a_checkpoints_tuned_layers_and_head_and_joins_its_ensemble(tmp_path):
    from conftest import hand_built_training_data
    from emomon.models.checkpoint import load_checkpoint
    from emomon.training.saving import save_ensemble
    from emomon.training.text_tuning import adopt_tuned_text
    from emomon.training.loop import train

    cfg, data = hand_built_training_data()
    cfg = dataclasses.replace(_tuned(cfg, tune_layers=1), train=dataclasses.replace(cfg.train, lr=1e-2, text_branch_from_tuning=True))
    layers, weight, bias = _fake_tuning(tmp_path, cfg.classes, data.text_dim)
    train(cfg, tmp_path / "a", data=dataclasses.replace(data, text_layers=layers), evaluate_test=False)
    assert load_checkpoint(tmp_path / "a").model.text_std.std() > 0.01  # the head was carried through a real scaler

    # a second training, another seed, reads the first one's layers and recovers the head it was given
    second = dataclasses.replace(_tuned(cfg, tuned_from=str(tmp_path / "a")), train=dataclasses.replace(cfg.train, seed=1))
    adopted = adopt_tuned_text(second, tmp_path / "b-work" / TUNED_TEXT_FILE)
    assert adopted == tmp_path / "b-work" / TUNED_TEXT_FILE and adopted.read_bytes() == layers.read_bytes()
    got_w, got_b = load_tuning_head(adopted, cfg.classes)
    assert torch.allclose(got_w, weight, rtol=1e-5, atol=1e-6) and torch.allclose(got_b, bias, rtol=1e-5, atol=1e-5)
    train(second, tmp_path / "b", data=dataclasses.replace(data, text_layers=adopted), evaluate_test=False)
    ab = save_ensemble(tmp_path / "ab", [tmp_path / "a", tmp_path / "b"])  # one text encoder: they can join

    # from an ensemble (its first training's branch), into the cache when no output is named
    again = adopt_tuned_text(_tuned(second, tuned_from=str(ab)), cache_dir=tmp_path / "cache")
    assert again.parent == tmp_path / "cache" and again.read_bytes() == layers.read_bytes()
    assert torch.allclose(load_tuning_head(again, cfg.classes)[0], weight, rtol=1e-5, atol=1e-6)


def test_taking_the_tuned_text_encoder_from_an_unsuitable_checkpoint_is_one_clear_error(tmp_path):
    from conftest import hand_built_training_data
    from emomon.config import config_from_dict
    from emomon.errors import ConfigError
    from emomon.training.text_tuning import adopt_tuned_text
    from emomon.training.loop import train

    with pytest.raises(ConfigError, match="encoders.text.tuned_from: needs encoders.text.tune_layers > 0"):
        config_from_dict({"encoders": {"text": {"tuned_from": "hyfuser-tiny-en"}}})
    cfg, data = hand_built_training_data()
    tuned = _tuned(cfg, tune_layers=1)
    layers, _, _ = _fake_tuning(tmp_path, cfg.classes, data.text_dim)
    train(tuned, tmp_path / "plain", data=dataclasses.replace(data, text_layers=layers), evaluate_test=False)  # a branch of its own
    want_head = dataclasses.replace(tuned, train=dataclasses.replace(cfg.train, text_branch_from_tuning=True))
    with pytest.raises(ConfigError, match="text branch is not its text tuning's head"):
        adopt_tuned_text(_tuned(want_head, tuned_from=str(tmp_path / "plain")), tmp_path / "x" / TUNED_TEXT_FILE)
    # without the head, the layers alone can be taken
    assert adopt_tuned_text(_tuned(tuned, tuned_from=str(tmp_path / "plain")), tmp_path / "y" / TUNED_TEXT_FILE).read_bytes() == layers.read_bytes()
    with pytest.raises(ConfigError, match="has encoders.text.tune_layers = 1, this preset 2"):
        adopt_tuned_text(_tuned(tuned, tuned_from=str(tmp_path / "plain"), tune_layers=2), tmp_path / "z" / TUNED_TEXT_FILE)
    train(cfg, tmp_path / "frozen", data=data, evaluate_test=False)  # a frozen text encoder: nothing to take
    with pytest.raises(ConfigError, match="has no tuned text layers"):
        adopt_tuned_text(_tuned(tuned, tuned_from=str(tmp_path / "frozen")), tmp_path / "w" / TUNED_TEXT_FILE)
    with pytest.raises(ModelError, match="no-such-run"):
        adopt_tuned_text(_tuned(tuned, tuned_from=str(tmp_path / "no-such-run")), tmp_path / "v" / TUNED_TEXT_FILE)
