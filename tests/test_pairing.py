"""The pairing recipe for unpaired corpora (emomon.training.pairing), and which modality of an example expresses its label."""

import dataclasses
from collections import Counter

import numpy as np
import pytest
import torch

from emomon.config import load_config
from emomon.training.batching import branch_labelled
from emomon.training.pairing import ExampleSampler
from emomon.training.features import text_key

LABELS = ("angry", "happy", "neutral")


def _sampler(p_label_pair: float, synth: bool = False) -> ExampleSampler:
    """Acted speech reading one fixed sentence (text not labelled), clips without text, and sentences without audio
    (30 training items each), without modality dropout; ``synth``: every sentence also has an espeak-ng reading."""
    from conftest import hand_built_training_data

    cfg, data = hand_built_training_data(LABELS, per_split=30)
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, p_text_drop=0.0, p_speech_drop=0.0, p_label_pair=p_label_pair))
    if synth:
        for src in data.sources:
            data.bank.synth_key.update({it.id: f"synth:{it.id}" for it in src.items if src.name == "meld"})
    return ExampleSampler(cfg, data.sources, data.bank)


def test_the_preset_marks_fixed_sentence_corpora_as_text_unlabelled():
    presets = {s.corpus: s for s in load_config("en-tiny").data.sources}
    assert not presets["ravdess"].text_labelled and not presets["nemo"].text_labelled
    assert presets["meld"].text_labelled and presets["ased"].text_labelled


def test_fixed_sentences_are_used_but_do_not_teach_the_text_branch():
    s = _sampler(0.2)
    rng = np.random.default_rng(0)
    exs = [s.draw(rng, it, "ravdess") for it in s.train_items["ravdess"]]
    assert all(e.text == text_key("kids are talking by the door") for e in exs)  # the fused model still reads it
    assert all(e.speech_labelled and not e.text_labelled for e in exs)


@pytest.mark.parametrize("p_label_pair", [0.0, 1.0])
def test_a_partner_is_labelled_only_when_it_was_drawn_by_label(p_label_pair):
    s = _sampler(p_label_pair)
    rng = np.random.default_rng(1)
    labels = {**{text_key(it.text): it.label for it in s.train_items["meld"]},
              **{k: it.label for it in s.train_items["ravdess"] + s.train_items["ased"] for k in s.bank.speech_keys[it.id]}}
    for source, partner_of, own_of in (("ased", "text", "speech"), ("meld", "speech", "text")):
        for it in s.train_items[source]:
            e = s.draw(rng, it, source)
            assert labels[getattr(e, partner_of)] == (it.label if p_label_pair == 1.0 else "neutral")
            # a neutral partner of a neutral item does express the label; of any other item it does not
            assert getattr(e, f"{partner_of}_labelled") == (p_label_pair == 1.0 or it.label == "neutral")
            assert getattr(e, own_of) is not None and getattr(e, f"{own_of}_labelled")


def test_an_espeak_rendering_never_teaches_the_speech_branch():
    s = _sampler(1.0, synth=True)
    rng = np.random.default_rng(2)
    exs = [s.draw(rng, it, "meld") for it in s.train_items["meld"]]
    assert all(e.speech.startswith("synth:") and not e.speech_labelled and e.text_labelled for e in exs)


def test_branch_labelled_mask_follows_the_examples():
    s = _sampler(0.0)
    rng = np.random.default_rng(3)
    exs = s.epoch(rng, 90)
    mask = branch_labelled(exs)
    assert mask.shape == (90, 2) and mask.dtype == torch.bool
    assert mask.tolist() == [[e.text_labelled, e.speech_labelled] for e in exs]
    by_source = Counter((e.source, e.text_labelled, e.speech_labelled) for e in exs)
    assert by_source[("ravdess", True, True)] == 0 and by_source[("ravdess", False, True)] == 30


@pytest.mark.parametrize("mask", [False, True])
def test_training_masks_the_branch_losses_only_when_the_preset_asks(tmp_path, monkeypatch, mask):
    from conftest import hand_built_training_data

    from emomon.models.base import FusionModel
    from emomon.training.loop import train

    cfg, data = hand_built_training_data()
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, branch_label_mask=mask))
    seen = []
    loss = FusionModel.loss
    monkeypatch.setattr(FusionModel, "loss", lambda self, out, labels, smoothing=0.0, labelled=None:
                        seen.append(labelled) or loss(self, out, labels, smoothing, labelled))
    train(cfg, tmp_path / "run", data=data, evaluate_test=False)
    assert len(seen) == 3  # 48 examples in batches of 16
    if mask:  # some texts (RAVDESS's fixed sentence, neutral partners) do not teach the text branch, others do
        assert all(m is not None and m.shape[1] == 2 for m in seen)
        assert not torch.cat(seen)[:, 0].all() and torch.cat(seen)[:, 0].any()
    else:
        assert seen == [None, None, None]
