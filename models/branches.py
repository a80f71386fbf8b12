"""Single-modality branch heads beside any fused architecture, late-fused by confidence (``model.branch_heads``).

Why: the cross-attention architectures read one modality through the other, so a flat voice (or a neutral sentence)
can pull their output away from what the other modality alone says plainly. HFF's answer (Xie et al. 2025, seeds)
is to weight each modality by its confidence. emomon applies that as a late fusion of three experts:

- ``text_branch``: a linear softmax head on the mean of the (scaled) text token states - the text branch;
- ``speech_branch``: a small MLP on the mean and standard deviation of the (scaled, aligned) speech frames - the speech
  branch (the pooled-statistics probe of ``bench/speaker_probe.py``, trained end to end);
- the architecture's own fused output (HyFusER's average ensemble, unchanged).

The fused distribution is ``sum_m w_m p_m`` with per-utterance weights ``w = softmax_m(b_m + g_m c_m)``: ``c_m`` is
the branch's confidence, one minus its normalised entropy, and ``b_m``, ``g_m`` are learned (six numbers). An absent
modality's branch gets weight 0, so text-only input is judged by the text branch and the architecture, speech-only
input by the speech branch and the architecture. Training adds each branch's own cross-entropy (on the examples
where its modality is present; with ``train.branch_label_mask`` also only where it itself expresses the label: not a
neutral partner sentence, not RAVDESS's fixed sentences, not an espeak-ng voice) to the fused loss, so each branch
stays a classifier in its own right; the reported steps are the architecture's steps, its fused output (under its
architecture name) and the two branches.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from emomon.models.io import EmotionOutput, FusionInput, nll_loss
from emomon.models.layers import masked_mean

#: Hidden width of the speech branch's MLP.
SPEECH_HIDDEN = 256
#: Step names of the branches (distinct from any architecture's own step names).
BRANCHES = ("text_branch", "speech_branch")


def _pooled_stats(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean and standard deviation over the valid frames: (batch, time, d) -> (batch, 2d)."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean[:, None]) ** 2, mask)
    return torch.cat([mean, var.clamp_min(1e-6).sqrt()], -1)


class BranchHeads(nn.Module):
    """The text and speech branches and the confidence gate that late-fuses them with the architecture's output."""

    def __init__(self, text_dim: int, speech_dim: int, n_classes: int, dropout: float):
        super().__init__()
        self.text_head = nn.Sequential(nn.Dropout(dropout), nn.Linear(text_dim, n_classes))
        self.speech_head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * speech_dim, SPEECH_HIDDEN), nn.ReLU(),
                                         nn.Dropout(dropout), nn.Linear(SPEECH_HIDDEN, n_classes))
        # gate order: architecture, text, speech. Start as a plain average that trusts confident branches a little.
        self.gate_bias = nn.Parameter(torch.zeros(3))
        self.gate_gain = nn.Parameter(torch.ones(3))

    def set_text_head(self, weight: torch.Tensor, bias: torch.Tensor, text_mean: torch.Tensor, text_std: torch.Tensor) -> None:
        """Make the text branch a given linear head over the mean *raw* token state (the text tuning's own head,
        ``train.text_branch_from_tuning``), and freeze it. The branch reads the mean of the *scaled* states,
        ``(m - mean) / std`` per dimension, so the same function of ``m`` is ``(W * std) x + (b + W mean)``."""
        linear = self.text_head[1]
        with torch.no_grad():
            w = weight.to(linear.weight.device, torch.float32)
            linear.weight.copy_(w * text_std.to(w.device)[None])
            linear.bias.copy_(bias.to(w.device, torch.float32) + w @ text_mean.to(w.device))
        self.text_head.requires_grad_(False)

    def fuse(self, x: FusionInput, arch_out: EmotionOutput, arch_name: str) -> EmotionOutput:
        text_log = F.log_softmax(self.text_head(masked_mean(x.text, x.text_mask)).float(), -1)
        speech_log = F.log_softmax(self.speech_head(_pooled_stats(x.speech, x.speech_mask)).float(), -1)
        experts = torch.stack([arch_out.log_probs.float(), text_log, speech_log], 1)  # (B, 3, C), gate order
        probs = experts.exp()
        confidence = 1.0 + (probs * experts).sum(-1) / math.log(experts.shape[-1])  # 1 - normalised entropy
        score = self.gate_bias + self.gate_gain * confidence
        votes = torch.stack([torch.ones_like(x.text_present), x.text_present, x.speech_present], 1)
        log_w = F.log_softmax(score.masked_fill(~votes, float("-inf")), -1)
        log_fused = torch.logsumexp(log_w[..., None] + experts, 1)
        steps = {**arch_out.steps, arch_name: arch_out.probs, BRANCHES[0]: probs[:, 1], BRANCHES[1]: probs[:, 2]}
        return EmotionOutput(log_fused.exp(), steps, log_fused, dict(zip(BRANCHES, (text_log, speech_log))),
                             dict(zip(BRANCHES, (x.text_present, x.speech_present))), log_w.exp())

    def trainable(self, branch: str) -> bool:
        head = self.text_head if branch == BRANCHES[0] else self.speech_head
        return any(p.requires_grad for p in head.parameters())

    def loss(self, out: EmotionOutput, labels: torch.Tensor, label_smoothing: float,
             labelled: torch.Tensor | None = None) -> torch.Tensor:
        """Sum over branches of the mean cross-entropy over the examples where the branch's modality is present and
        (``labelled``, (batch, 2) in :data:`BRANCHES` order) by itself expresses the label: a branch that sees only
        a neutral sentence or a flat voice cannot know the label the other modality gave, so it must not learn one."""
        total = out.log_probs.new_zeros(())
        for name, log_p in out.branch_log.items():
            if not self.trainable(name):  # a frozen branch (train.text_branch_from_tuning) has nothing to learn
                continue
            present = out.branch_present[name]
            if labelled is not None:
                present = present & labelled[:, BRANCHES.index(name)].to(present.device)
            if present.any():
                total = total + nll_loss(log_p[present], labels[present], label_smoothing)
        return total
