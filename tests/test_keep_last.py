"""train.keep = "last": a fixed number of epochs, the last kept, with or without validation data (models/training.py).

What it is for: a final refit on training + validation speakers with the epoch count validation chose earlier."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from emomon.config import config_from_dict, config_to_dict
from emomon.errors import ConfigError


def _without_validation(data):
    sources = [dataclasses.replace(s, items=[it for it in s.items if it.split != "val"]) for s in data.sources]
    return dataclasses.replace(data, sources=sources)


def _train_settings(cfg, **kw):
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **kw))


def test_keep_last_trains_every_epoch_without_validation_and_keeps_the_last(tmp_path):
    from conftest import hand_built_training_data

    from emomon.models.checkpoint import load_checkpoint
    from emomon.training.loop import train

    cfg, data = hand_built_training_data(signal=1.5)
    cfg = _train_settings(cfg, max_epochs=3, patience=1, lr=3e-3, keep="last")
    result = train(cfg, tmp_path / "run", data=_without_validation(data))
    meta = json.loads((tmp_path / "run" / "metrics.json").read_text())["training"]
    assert [h["epoch"] for h in meta["history"]] == [1, 2, 3]  # patience 1 stopped nothing
    assert all(h["val_accuracy"] is None and h["val"] == {} for h in meta["history"])
    assert result.best_epoch == 3 and result.best_val is None
    # the kept checkpoint learned the task: it is scored on the test split it never saw
    ckpt = load_checkpoint(tmp_path / "run")
    assert ckpt.model is not None
    assert result.test["ravdess"]["speech-only"]["fused"]["accuracy"] > 0.6


def test_keep_last_with_validation_keeps_the_last_epoch_not_the_best(tmp_path):
    from conftest import hand_built_training_data

    from emomon.models.checkpoint import load_checkpoint
    from emomon.training.pairing import ExampleSampler
    from emomon.training.loop import evaluate_examples, train

    cfg, data = hand_built_training_data(signal=1.5)
    # at this rate validation accuracy rises and falls (seeded), so "best" and "last" are different epochs
    cfg = _train_settings(cfg, max_epochs=6, patience=1, lr=3e-2, keep="last")
    result = train(cfg, tmp_path / "run", data=data, evaluate_test=False)
    history = json.loads((tmp_path / "run" / "metrics.json").read_text())["training"]["history"]
    assert len(history) == 6 and result.best_epoch == 6  # patience 1 stopped nothing
    assert max(h["val_accuracy"] for h in history) > history[-1]["val_accuracy"]  # the kept epoch is not the best
    model = load_checkpoint(tmp_path / "run").model
    val_sets = ExampleSampler(cfg, data.sources, data.bank).fixed("val")
    again = np.mean([evaluate_examples(model, exs, data.bank, cfg.classes).fused.accuracy for exs in val_sets.values()])
    assert again == pytest.approx(history[-1]["val_accuracy"]) == pytest.approx(result.best_val)


def test_without_validation_the_default_refuses_and_names_the_way_out(tmp_path):
    from conftest import hand_built_training_data

    from emomon.training.loop import train

    cfg, data = hand_built_training_data()
    with pytest.raises(ConfigError, match='train.keep = "last"'):
        train(cfg, tmp_path / "run", data=_without_validation(data))
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_a_soup_needs_validation_to_choose_it():
    # refused when the preset is read, before any feature is built
    from conftest import untrained_preset

    doc = config_to_dict(untrained_preset())
    doc["train"].update(keep="last", soup=3)
    with pytest.raises(ConfigError, match="train.soup"):
        config_from_dict(doc)


def test_keep_is_a_checked_setting():
    from conftest import untrained_preset

    doc = config_to_dict(untrained_preset())
    doc["train"]["keep"] = "newest"
    with pytest.raises(ConfigError, match="keep"):
        config_from_dict(doc)
    doc["train"]["keep"] = "last"
    assert config_from_dict(doc).train.keep == "last"


@pytest.mark.parametrize("change, message", [
    ({"keep": "best", "average_epochs": [1, 2]}, 'is for train.keep = "last"'),
    ({"keep": "last", "max_epochs": 3, "average_epochs": [3]}, "two or more"),
    ({"keep": "last", "max_epochs": 3, "average_epochs": [2, 2]}, "distinct"),
    ({"keep": "last", "max_epochs": 3, "average_epochs": [1, 4]}, "within 1..train.max_epochs (3)"),
])
def test_a_fixed_soup_is_checked_when_the_preset_is_read(change, message):
    import re

    from conftest import untrained_preset

    doc = config_to_dict(untrained_preset())
    doc["train"].update(change)
    with pytest.raises(ConfigError, match="train.average_epochs: .*" + re.escape(message)):
        config_from_dict(doc)


def test_keep_last_with_average_epochs_keeps_the_mean_of_those_epochs(tmp_path):
    # The runs are seeded, so a run stopped after epoch 1 holds exactly epoch 1's weights of a longer run: the
    # averaged run must hold the mean of the 1-epoch and the 3-epoch runs' weights, and record which epochs it kept.
    from conftest import hand_built_training_data

    from emomon.models.checkpoint import load_checkpoint
    from emomon.training.loop import train

    cfg, data = hand_built_training_data(signal=1.5)
    data = _without_validation(data)
    weights = {}
    for name, kw in {"one": dict(max_epochs=1), "three": dict(max_epochs=3),
                     "mean": dict(max_epochs=3, average_epochs=(1, 3))}.items():
        result = train(_train_settings(cfg, lr=3e-3, keep="last", **kw), tmp_path / name, data=data, evaluate_test=False)
        weights[name] = load_checkpoint(tmp_path / name).model.state_dict()
    assert result.soup_epochs == [1, 3] and result.best_val is None
    assert json.loads((tmp_path / "mean" / "metrics.json").read_text())["training"]["soup"]["epochs"] == [1, 3]
    floats = [k for k, v in weights["mean"].items() if v.is_floating_point()]
    assert any(not torch.equal(weights["one"][k], weights["three"][k]) for k in floats)  # the epochs differ
    for k in floats:
        assert torch.allclose(weights["mean"][k], (weights["one"][k] + weights["three"][k]) / 2, atol=1e-6), k
