"""Tuning the text encoder's top layers: what is written, how it loads, how checkpoints carry and check it."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from emomon.config import SourceConfig, TextEncoderConfig
from emomon.errors import ModelError
from emomon.models.data import Item
from emomon.models.dataset import Source
from emomon.models.encoders import build_text_encoder
from emomon.models.text_tuning import TUNED_TEXT_FILE, learning_rate_schedule, load_tuned_layers, tune_text_encoder

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
    f1 = [float(r.message.split("weighted F1 ")[1].split()[0]) for r in caplog.records if "weighted F1" in r.message]
    assert len(f1) == 3 and max(f1) > 0.9  # a separable task is learned (through the tuned layer and the head)

    frozen = build_text_encoder(dataclasses.replace(cfg.encoders.text, tune_layers=0))
    tuned = build_text_encoder(cfg.encoders.text, tuned_layers=path)
    assert tuned.fingerprint != frozen.fingerprint and ":tuned=" in tuned.fingerprint
    a, b = frozen.encode(["i feel so glad today"]).values, tuned.encode(["i feel so glad today"]).values
    assert not torch.allclose(a, b, atol=1e-3)
    for (name, p), (_, q) in zip(frozen.model.named_parameters(), tuned.model.named_parameters()):
        if not name.startswith("encoder.layer.1."):
            assert torch.equal(p, q), name

    # same encoder, data and settings: taken from the cache, byte for byte
    again = tune_text_encoder(cfg, _sources(), tmp_path / "run2" / TUNED_TEXT_FILE, cache_dir=tmp_path / "cache")
    assert again.read_bytes() == path.read_bytes()


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
    f1 = [float(r.message.split("weighted F1 ")[1].split()[0]) for r in caplog.records if "weighted F1" in r.message]
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
    from emomon.models.checkpoint import load_checkpoint, save_checkpoint
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
