"""HyFusER: shapes and masks with padded batches, gradients, scaling, alignment, and learning a separable task."""

import numpy as np
import pytest
import torch

from emomon.models.base import align_length
from emomon.config import ModelConfig
from emomon.models.frames import Frames
from emomon.models.hyfuser import HyFusER
from emomon.models.scaler import JointStandardScaler

from conftest import fit_fusion_model, split_modality_task

D = 16


def tiny(**kw) -> HyFusER:
    cfg = ModelConfig(**{"text_len": 12, "speech_len": 10, "ff_dim": 32, "dropout": 0.0, **kw})
    torch.manual_seed(0)
    return HyFusER(cfg, D, D, 7).eval()


def frames(lengths, dim=D, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Frames.pad([torch.randn(n, dim, generator=g) for n in lengths], dim=dim)


def test_seed_sizes_by_default():
    m = HyFusER(ModelConfig(), 384, 384, 7)
    assert len(m.text_encoder.layers) == 3 and len(m.speech_encoder.layers) == 3
    block = m.text_encoder.layers[0]
    assert block.attn.heads == 1 and block.ffn.fc1.out_features == 768
    assert isinstance(block.ffn.act, torch.nn.ReLU) and block.norm1.eps == 1e-6


def test_output_distributions_and_shapes():
    m = tiny()
    out = m(m.prepare(frames([5, 12, 3]), frames([40, 7, 100])))
    assert out.probs.shape == (3, 7)
    assert set(out.steps) == {"step1", "step2"}
    for p in [out.probs, *out.steps.values()]:
        assert torch.allclose(p.sum(-1), torch.ones(3), atol=1e-5)
    # the fused distribution is the average of the two steps (eq. 9)
    assert torch.allclose(out.probs, (out.steps["step1"] + out.steps["step2"]) / 2, atol=1e-6)
    assert torch.allclose(out.log_probs.exp(), out.probs, atol=1e-6)


@pytest.mark.parametrize("branch_heads", [False, True])
def test_padding_does_not_change_an_item(branch_heads):
    m = tiny(branch_heads=branch_heads)
    text, speech = frames([4, 11], seed=1), frames([30, 80], seed=2)
    together = m(m.prepare(text, speech)).probs[0]
    alone = m(m.prepare(Frames(text.values[:1, :4], text.mask[:1, :4]), Frames(speech.values[:1, :30], speech.mask[:1, :30]))).probs[0]
    assert torch.allclose(together, alone, atol=1e-5)


def test_text_longer_than_text_len_is_truncated_and_speech_aligned():
    m = tiny()
    x = m.prepare(frames([30]), frames([3]))
    assert x.text.shape[1] == 12 and x.text_mask.all()
    assert x.speech.shape[1] == 10 and x.speech_mask.all()


def test_absent_modality_is_one_zero_frame():
    m = tiny()
    x = m.prepare(Frames.pad([np.zeros((0, D))], dim=D), frames([20]))
    assert x.text_mask[0].tolist() == [True]
    assert float(x.text.abs().sum()) == 0.0
    out = m(x)
    assert torch.isfinite(out.probs).all()
    x = m.prepare(frames([5]), Frames.pad([np.zeros((0, D))], dim=D))
    assert x.speech_mask[0].sum() == 1 and torch.isfinite(m(x).probs).all()


def test_gradients_reach_every_parameter():
    m = tiny(step_loss_weight=0.5).train()
    out = m(m.prepare(frames([5, 9]), frames([20, 33])))
    m.loss(out, torch.tensor([1, 4]), label_smoothing=0.1).backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all() or p.grad.abs().sum() == 0]
    assert missing == []


def test_align_length_interpolates_linearly():
    x = torch.tensor([[0.0], [10.0]])
    assert torch.allclose(align_length(x, 5)[:, 0], torch.tensor([0.0, 2.5, 5.0, 7.5, 10.0]))
    y = torch.arange(9.0)[:, None]
    assert torch.allclose(align_length(y, 3)[:, 0], torch.tensor([0.0, 4.0, 8.0]))
    assert align_length(torch.ones(1, 4), 6).shape == (6, 4)


def test_joint_scaler_matches_concatenated_statistics_and_round_trips():
    rng = np.random.default_rng(0)
    text = [rng.normal(5, 3, (n, 4)) for n in (3, 7)]
    speech = [rng.normal(-1, 0.5, (n, 4)) for n in (10, 2)]
    sc = JointStandardScaler.fit(text, speech)
    both = np.concatenate(text + speech)
    assert np.allclose(sc.text_mean, both.mean(0), atol=1e-5) and np.allclose(sc.speech_mean, both.mean(0), atol=1e-5)
    assert np.allclose(sc.text_std, both.std(0), atol=1e-4)
    assert sc.mode == "joint"
    again = JointStandardScaler.from_dict(sc.to_dict(), 4, 4)
    assert np.array_equal(again.text_mean, sc.text_mean) and np.array_equal(again.speech_std, sc.speech_std)
    # a one-modality training set: the present modality's statistics serve both
    only = JointStandardScaler.fit([], speech)
    assert np.allclose(only.text_mean, only.speech_mean) and np.allclose(only.speech_mean, np.concatenate(speech).mean(0), atol=1e-5)
    # different widths: per-modality statistics
    sc2 = JointStandardScaler.fit(text, [rng.normal(0, 1, (5, 6))])
    assert sc2.mode == "per-modality" and sc2.speech_mean.shape == (6,)


def test_scaler_is_applied_in_prepare():
    m = tiny()
    sc = JointStandardScaler(np.full(D, 2.0, np.float32), np.full(D, 4.0, np.float32), np.full(D, 2.0, np.float32), np.full(D, 4.0, np.float32))
    m.set_scaler(sc)
    x = m.prepare(Frames.pad([np.full((3, D), 10.0)], dim=D), Frames.pad([np.full((5, D), 6.0)], dim=D))
    assert torch.allclose(x.text, torch.full((1, 3, D), 2.0)) and torch.allclose(x.speech, torch.full((1, 10, D), 1.0))


def test_learns_a_separable_synthetic_task():
    """Class k puts a bump on feature k of the speech frames for half the examples and of the text for the other half."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    k = 4
    cfg = ModelConfig(text_len=12, speech_len=10, ff_dim=32, dropout=0.0)
    m = fit_fusion_model(HyFusER(cfg, D, D, k), *split_modality_task(rng, 256, k, D), epochs=60)
    t2, s2, y2 = split_modality_task(rng, 200, k, D)
    with torch.no_grad():
        acc = (m(m.prepare(t2, s2)).probs.argmax(1) == y2).float().mean().item()
    assert acc > 0.9, acc
