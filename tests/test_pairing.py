"""The pairing recipe for unpaired corpora (models/dataset.py), and which modality of an example expresses its label."""

import dataclasses
from collections import Counter

import numpy as np
import pytest
import torch

from emomon.config import load_config
from emomon.models.data import Item
from emomon.models.dataset import ExampleSampler, FeatureBank, Source, branch_labelled
from emomon.models.features import text_key

LABELS = ("angry", "happy", "neutral")


def _config(p_label_pair: float):
    cfg = load_config("en-tiny")
    sources = {s.corpus: s for s in cfg.data.sources}
    data = dataclasses.replace(cfg.data, p_text_drop=0.0, p_speech_drop=0.0, p_label_pair=p_label_pair, sources=())
    return dataclasses.replace(cfg, data=data), sources


def _sampler(p_label_pair: float, synth: bool = False) -> ExampleSampler:
    """Acted speech reading one fixed sentence (text not labelled), clips without text, and sentences without audio."""
    cfg, presets = _config(p_label_pair)
    bank = FeatureBank()
    acted, mute, text = [], [], []
    for i in range(30):
        label = LABELS[i % 3]
        a = Item(f"acted{i}", "ravdess", label, "a1", text="kids are talking by the door", split="train")
        bank.speech_keys[a.id] = [f"acted{i}:clean"]
        bank.text_of[a.id] = a.text
        m = Item(f"mute{i}", "ased", label, "m1", split="train")
        bank.speech_keys[m.id] = [f"mute{i}:clean"]
        t = Item(f"text{i}", "meld", label, "t1", text=f"sentence {i} said in {label}", split="train")
        bank.text_of[t.id] = t.text
        if synth:
            bank.synth_key[t.id] = f"synth:{i}"
        acted.append(a), mute.append(m), text.append(t)
    sources = [Source("ravdess", presets["ravdess"], acted), Source("ased", presets["ased"], mute),
               Source("meld", presets["meld"], text)]
    return ExampleSampler(cfg, sources, bank)


def test_the_preset_marks_fixed_sentence_corpora_as_text_unlabelled():
    _, presets = _config(0.2)
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
    from emomon.models.training import train

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
