"""What every fused architecture shares: input preparation (alignment, scaling, absent modalities) and outputs."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from emomon.config import ModelConfig
from emomon.models.branches import BRANCHES, BranchHeads
from emomon.models.frames import Frames
from emomon.models.io import EmotionOutput, FusionInput, nll_loss
from emomon.models.scaler import JointStandardScaler


def align_length(x: torch.Tensor, length: int) -> torch.Tensor:
    """Stretch or compress a (time, dim) sequence to ``length`` rows by linear interpolation (HyFusER §4.2)."""
    if x.shape[0] == length:
        return x
    if x.shape[0] == 1:
        return x.expand(length, -1)
    return F.interpolate(x.t()[None], size=length, mode="linear", align_corners=True)[0].t()


class FusionModel(nn.Module):
    """Base class: holds the scaler and turns encoder :class:`Frames` into a :class:`FusionInput`.

    An absent modality (no transcript, or dropped in training) arrives as an empty sequence and becomes a single
    all-zero frame in the scaled space, i.e. the training mean: a neutral placeholder the model learns to ignore.
    """

    arch: ClassVar[str] = ""
    step_names: ClassVar[tuple[str, ...]] = ()
    #: Whether ``prepare`` stretches speech to ``speech_len`` (architectures with recurrent speech paths may not).
    aligns_speech: ClassVar[bool] = True

    def __init__(self, cfg: ModelConfig, text_dim: int, speech_dim: int, n_classes: int, scaler: JointStandardScaler | None = None):
        super().__init__()
        self.cfg = cfg
        self.text_dim, self.speech_dim, self.n_classes = text_dim, speech_dim, n_classes
        self.d_model = cfg.d_model or text_dim
        if not cfg.d_model and text_dim != speech_dim:
            raise ValueError(f"text ({text_dim}) and speech ({speech_dim}) widths differ: set model.d_model to project both")
        self.scaler = scaler or JointStandardScaler.identity(text_dim, speech_dim)
        for k, v in self.scaler.tensors().items():
            self.register_buffer(k, v, persistent=False)  # stored in the checkpoint's JSON, not its weights
        #: Set by training (or the checkpoint) when ``cfg.speaker_baseline`` > 0: frames are read relative to the speaker.
        self.speaker_baseline = None
        self.text_in = nn.Identity() if self.d_model == text_dim else nn.Linear(text_dim, self.d_model)
        self.speech_in = nn.Identity() if self.d_model == speech_dim else nn.Linear(speech_dim, self.d_model)
        self.branches = None
        if cfg.branch_heads:
            self.branches = BranchHeads(text_dim, speech_dim, n_classes, cfg.dropout)
            # A forward hook, so that every architecture's forward() stays exactly its paper's algorithm.
            self.register_forward_hook(_late_fusion)

    @classmethod
    def output_names(cls, cfg: ModelConfig) -> tuple[str, ...]:
        """The steps an output reports: the architecture's own, plus (with branch heads) its fused output and the branches."""
        if not cfg.branch_heads:
            return tuple(cls.step_names)
        return (*cls.step_names, cls.arch, *BRANCHES)

    def set_scaler(self, scaler: JointStandardScaler) -> None:
        self.scaler = scaler
        for k, v in scaler.tensors().items():
            setattr(self, k, v.to(self.text_mean.device))

    # ------------------------------------------------------------------------------------------- inputs
    def prepare(self, text: Frames, speech: Frames, extras: dict | None = None) -> FusionInput:
        device = self.text_mean.device
        t_vals, t_mask = text.values[:, : self.cfg.text_len], text.mask[:, : self.cfg.text_len]
        t = (t_vals.to(device) - self.text_mean) / self.text_std
        t_mask = t_mask.to(device).clone()
        t = t * t_mask[..., None]
        empty = ~t_mask.any(1)
        if empty.any():  # absent text: one zero frame
            t_mask[empty, 0] = True
        s, s_mask = self._prepare_speech(speech, device)
        return FusionInput(t, t_mask, s, s_mask, ~empty, speech.lengths.to(device) > 0, extras or {})

    def _prepare_speech(self, speech: Frames, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        lengths = speech.lengths.tolist()
        if self.aligns_speech:
            L = self.cfg.speech_len
            out = torch.zeros(len(lengths), L, self.speech_dim, device=device)
            mask = torch.zeros(len(lengths), L, dtype=torch.bool, device=device)
            for i, n in enumerate(lengths):
                if n == 0:
                    mask[i, 0] = True  # absent speech
                    continue
                x = (speech.values[i, : int(n)].to(device) - self.speech_mean) / self.speech_std
                out[i] = align_length(x, L)
                mask[i] = True
            return out, mask
        vals = (speech.values.to(device) - self.speech_mean) / self.speech_std
        mask = speech.mask.to(device).clone()
        vals = vals * mask[..., None]
        mask[~mask.any(1), 0] = True
        return vals, mask

    # ------------------------------------------------------------------------------------------- outputs
    @staticmethod
    def average_ensemble(step_logits: dict[str, torch.Tensor]) -> EmotionOutput:
        """Average of the steps' softmax distributions (HyFusER eq. 9), with a stable log for the loss."""
        log_ps = {k: F.log_softmax(v.float(), -1) for k, v in step_logits.items()}
        stacked = torch.stack(list(log_ps.values()))
        log_mean = torch.logsumexp(stacked, 0) - math.log(len(log_ps))
        return EmotionOutput(log_mean.exp(), {k: v.exp() for k, v in log_ps.items()}, log_mean)

    def loss(self, out: EmotionOutput, labels: torch.Tensor, label_smoothing: float = 0.0,
             branch_labelled: torch.Tensor | None = None) -> torch.Tensor:
        """Cross-entropy of the fused distribution, plus ``step_loss_weight`` x the mean per-step cross-entropy.

        ``branch_labelled`` (batch, 2; text, speech): which examples' text / speech by itself expresses the label
        (:class:`emomon.training.pairing.Example`, with ``train.branch_label_mask``); the branch heads learn only from
        those (default: from every example that has their modality)."""
        loss = nll_loss(out.log_probs, labels, label_smoothing)
        w = self.cfg.step_loss_weight
        steps = [k for k in out.steps if k in self.step_names]  # not the branches': they have their own term
        if w > 0 and steps:
            step = sum(nll_loss(out.steps[k].clamp_min(1e-8).log(), labels, label_smoothing) for k in steps) / len(steps)
            loss = loss + w * step
        if out.branch_log is not None:
            loss = loss + self.branches.loss(out, labels, label_smoothing, branch_labelled)
        return loss


def _late_fusion(model: FusionModel, args: tuple, out: EmotionOutput) -> EmotionOutput:
    """Forward hook of a model with branch heads: the architecture's output, late-fused with the branches."""
    return model.branches.fuse(args[0], out, model.arch)
