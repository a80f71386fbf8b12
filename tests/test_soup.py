"""Greedy weight soup over a run's best epochs (train.soup, models/training.py)."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from torch import nn

from emomon.training.loop import greedy_soup


def _state(value: float) -> dict:
    return {"weight": torch.full((1, 2), value), "bias": torch.zeros(1)}


def test_an_epoch_joins_the_soup_only_when_the_average_scores_no_worse():
    model = nn.Linear(2, 1)
    score = lambda m: -abs(float(m.weight.detach().mean()) - 1.0)  # noqa: E731  best at weight 1.0
    # ranked by score alone: 1.8 (-0.8), 0.0 (-1), 2.0 (-1), 10.0 (-9). Averaging in 0.0 gives 0.9 (-0.1, kept);
    # then 2.0 would give 1.27 (-0.27) and 10.0 would give 3.9: both dropped.
    ranked = [(-0.8, 4, _state(1.8)), (-1.0, 5, _state(0.0)), (-1.0, 3, _state(2.0)), (-9.0, 6, _state(10.0))]
    epochs, val = greedy_soup(model, ranked, score)
    assert epochs == [4, 5]
    assert val == pytest.approx(-0.1)
    assert torch.allclose(model.weight, torch.full((1, 2), 0.9))  # the model holds the soup, not the last trial


def test_a_soup_that_helps_nothing_keeps_the_best_epoch_alone():
    model = nn.Linear(2, 1)
    score = lambda m: -abs(float(m.weight.detach().mean()))  # noqa: E731  best at 0, which the best epoch already is
    epochs, val = greedy_soup(model, [(0.0, 7, _state(0.0)), (-3.0, 8, _state(3.0))], score)
    assert epochs == [7] and val == 0.0
    assert torch.allclose(model.weight, torch.zeros(1, 2))


@pytest.mark.parametrize("soup", [0, 4])
def test_training_keeps_the_soup_it_validated(tmp_path, soup):
    from conftest import hand_built_training_data

    from emomon.models.checkpoint import load_checkpoint
    from emomon.training.pairing import ExampleSampler
    from emomon.training.loop import evaluate_examples, train

    cfg, data = hand_built_training_data(signal=1.5)
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, max_epochs=5, patience=5, lr=3e-3, soup=soup))
    result = train(cfg, tmp_path / "run", data=data, evaluate_test=False)
    meta = json.loads((tmp_path / "run" / "metrics.json").read_text())["training"]
    best_single = max(h["val_accuracy"] for h in meta["history"])
    if soup == 0:
        assert meta["soup"] is None and result.soup_epochs == [] and result.best_val == best_single
        return
    trial = meta["soup"]
    assert len(trial["epochs"]) > 1  # on this task some later or earlier epochs do join
    assert trial["epochs"][0] == meta["best_epoch"] and set(trial["epochs"]) <= {h["epoch"] for h in meta["history"]}
    assert trial["val_accuracy"] >= best_single  # a soup is kept only when it validates at least as well
    assert result.best_val == meta["val_accuracy"] == trial["val_accuracy"] and result.soup_epochs == trial["epochs"]
    # the saved weights are what was validated: re-scoring the checkpoint gives the recorded accuracy
    model = load_checkpoint(tmp_path / "run").model
    val_sets = ExampleSampler(cfg, data.sources, data.bank).fixed("val")
    again = np.mean([evaluate_examples(model, exs, data.bank, cfg.classes).fused.accuracy for exs in val_sets.values()])
    assert again == pytest.approx(meta["val_accuracy"])
