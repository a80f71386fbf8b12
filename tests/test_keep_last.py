"""train.keep = "last": a fixed number of epochs, the last kept, with or without validation data (models/training.py).

What it is for: a final refit on training + validation speakers with the epoch count validation chose earlier."""

import dataclasses
import json

import numpy as np
import pytest

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
    from emomon.models.training import train

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
    from emomon.models.dataset import ExampleSampler
    from emomon.models.training import evaluate_examples, train

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

    from emomon.models.training import train

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
