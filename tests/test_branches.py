"""Branch heads (models/branches.py): text and speech branches late-fused with the architecture by confidence."""

import dataclasses

import numpy as np
import pytest
import torch

from emomon.config import ModelConfig
from emomon.models.frames import Frames
from emomon.models.hyfuser import HyFusER
from emomon.models.registry import architecture_names, model_class

from conftest import fit_fusion_model, split_modality_task

D = 16
NAMES = ("step1", "step2", "hyfuser", "text_branch", "speech_branch")


def tiny(**kw) -> HyFusER:
    cfg = ModelConfig(**{"text_len": 12, "speech_len": 10, "ff_dim": 32, "dropout": 0.0, "branch_heads": True, **kw})
    torch.manual_seed(0)
    return HyFusER(cfg, D, D, 7).eval()


def frames(lengths, dim=D, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Frames.pad([torch.randn(n, dim, generator=g) if n else torch.zeros(0, dim) for n in lengths], dim=dim)


def test_fused_output_is_the_confidence_weighted_mixture_of_three_experts():
    m = tiny()
    out = m(m.prepare(frames([5, 12, 3]), frames([40, 7, 100])))
    assert tuple(out.steps) == NAMES == HyFusER.output_names(m.cfg)
    assert torch.allclose(out.steps["hyfuser"], (out.steps["step1"] + out.steps["step2"]) / 2, atol=1e-6)
    experts = torch.stack([out.steps[k] for k in ("hyfuser", "text_branch", "speech_branch")], 1)
    assert torch.allclose(out.probs, (out.weights[..., None] * experts).sum(1), atol=1e-5)
    assert torch.allclose(out.weights.sum(-1), torch.ones(3), atol=1e-5)
    assert torch.allclose(out.log_probs.exp(), out.probs, atol=1e-6)


def test_the_more_confident_branch_weighs_more():
    m = tiny()
    with torch.no_grad():  # a text branch that is sure of class 2 whatever it reads, and an undecided speech branch
        m.branches.text_head[1].weight.zero_()
        m.branches.text_head[1].bias.copy_(torch.tensor([0, 0, 9.0, 0, 0, 0, 0]))
        m.branches.speech_head[-1].weight.zero_()
        m.branches.speech_head[-1].bias.zero_()
    out = m(m.prepare(frames([5]), frames([30])))
    w = out.weights[0]
    assert w[1] > w[0] > w[2]
    assert out.probs[0].argmax() == 2


def test_an_absent_modality_neither_votes_nor_learns():
    m = tiny().train()
    x = m.prepare(frames([0, 0]), frames([20, 9]))
    assert x.text_present.tolist() == [False, False] and x.speech_present.all()
    out = m(x)
    assert out.weights[:, 1].abs().max() == 0
    m.loss(out, torch.tensor([1, 4]), 0.1).backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in m.branches.text_head.parameters())
    assert m.branches.speech_head[-1].weight.grad.abs().sum() > 0
    # speech absent: the speech branch's weight is exactly 0 and text-only input is judged by text branch + architecture
    out = m.eval()(m.prepare(frames([4]), frames([0])))
    assert out.weights[0, 2] == 0
    mix = out.weights[0, 0] * out.steps["hyfuser"][0] + out.weights[0, 1] * out.steps["text_branch"][0]
    assert torch.allclose(out.probs[0], mix, atol=1e-5)


def test_branch_loss_is_added_and_gradients_reach_every_parameter():
    m = tiny(step_loss_weight=0.5).train()
    x = m.prepare(frames([5, 9]), frames([20, 33]))
    out = m(x)
    labels = torch.tensor([1, 4])
    plain = tiny(step_loss_weight=0.5, branch_heads=False)
    branch_terms = sum(torch.nn.functional.nll_loss(out.branch_log[k], labels) for k in ("text_branch", "speech_branch"))
    assert torch.allclose(m.loss(out, labels), plain.loss(dataclasses.replace(out, branch_log=None), labels) + branch_terms)
    m.loss(out, labels, label_smoothing=0.1).backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all() or p.grad.abs().sum() == 0]
    assert missing == []


def test_a_branch_learns_only_where_its_modality_expresses_the_label():
    m = tiny(step_loss_weight=0.5).train()
    out = m(m.prepare(frames([5, 9, 7]), frames([20, 33, 12])))
    labels = torch.tensor([1, 4, 2])
    # text: only example 1 carries the label (the others read a neutral partner); speech: none (espeak voices)
    labelled = torch.tensor([[False, False], [True, False], [False, False]])
    no_branches = m.loss(dataclasses.replace(out, branch_log=None), labels)
    text_term = torch.nn.functional.nll_loss(out.branch_log["text_branch"][1:2], labels[1:2])
    assert torch.allclose(m.loss(out, labels, branch_labelled=labelled), no_branches + text_term)
    # the branch terms alone: nothing reaches the speech head (it still learns through the fused mixture)
    m.branches.loss(out, labels, 0.0, labelled).backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in m.branches.speech_head.parameters())
    assert m.branches.text_head[-1].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("arch", architecture_names())
def test_every_architecture_takes_branch_heads(arch):
    cls = model_class(arch)
    cfg = ModelConfig(arch=arch, text_len=12, speech_len=10, ff_dim=32, d_model=D, lstm_hidden=8, branch_heads=True, mc_passes=2)
    torch.manual_seed(0)
    m = cls(cfg, D, D, 7).eval()
    extras = None
    if getattr(m, "uses_word_times", False):
        extras = {"token_times": [np.full((n, 2), np.nan, np.float32) for n in (5, 3)], "speech_seconds": torch.tensor([1.0, 2.0])}
    out = m(m.prepare(frames([5, 3]), frames([20, 40]), extras))
    assert tuple(out.steps) == cls.output_names(cfg)
    assert torch.allclose(out.probs.sum(-1), torch.ones(2), atol=1e-5)


def test_learns_when_each_class_shows_in_one_modality_only():
    """Class k bumps feature k of the speech for half the examples and of the text for the other half: each branch
    can only know half, so the fused output must pick the confident branch to be right on both halves."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    k = 4
    cfg = ModelConfig(text_len=12, speech_len=10, ff_dim=32, dropout=0.0, branch_heads=True)
    m = fit_fusion_model(HyFusER(cfg, D, D, k), *split_modality_task(rng, 256, k, D), epochs=40)
    t2, s2, y2 = split_modality_task(rng, 200, k, D)
    with torch.no_grad():
        out = m(m.prepare(t2, s2))
    acc = lambda p: (p.argmax(1) == y2).float().mean().item()  # noqa: E731
    assert acc(out.probs) > 0.9, acc(out.probs)
    # each branch alone is right on about its half (+ chance on the other half)
    assert 0.45 < acc(out.steps["text_branch"]) < 0.8 and 0.45 < acc(out.steps["speech_branch"]) < 0.8
