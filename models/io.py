"""What goes into and comes out of every fused architecture (and its branch heads)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F


@dataclass
class FusionInput:
    """Model-ready tensors: scaled text (B, Lt, D) and aligned, scaled speech (B, Ls, D), each with a mask."""

    text: torch.Tensor
    text_mask: torch.Tensor
    speech: torch.Tensor
    speech_mask: torch.Tensor
    #: (B,) whether each example has text / speech at all (an absent one is the single placeholder frame).
    text_present: torch.Tensor
    speech_present: torch.Tensor
    #: Optional extras some architectures use (e.g. word timestamps for the graph of the complementary model).
    extras: dict = field(default_factory=dict)

    def to(self, device: torch.device) -> "FusionInput":
        return FusionInput(self.text.to(device), self.text_mask.to(device), self.speech.to(device), self.speech_mask.to(device),
                           self.text_present.to(device), self.speech_present.to(device),
                           {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in self.extras.items()})


def stack_inputs(inputs: list[FusionInput]) -> FusionInput | None:
    """Several prepared inputs as one batch (e.g. one utterance batch read at several speeds), or None when they
    cannot be stacked (different sequence lengths, or extras)."""
    first = inputs[0]
    same = all(x.text.shape[1:] == first.text.shape[1:] and x.speech.shape[1:] == first.speech.shape[1:] and not x.extras
               for x in inputs)
    if not same:
        return None
    return FusionInput(*(torch.cat([getattr(x, f) for x in inputs]) for f in
                         ("text", "text_mask", "speech", "speech_mask", "text_present", "speech_present")))


@dataclass
class EmotionOutput:
    """The fused class distribution, and each step's (or branch's) own distribution, all (batch, classes)."""

    probs: torch.Tensor
    steps: dict[str, torch.Tensor]
    log_probs: torch.Tensor
    #: With ``model.branch_heads``: each branch's log-distribution (for its own loss) and the late-fusion weights
    #: (B, 3: architecture, text, speech).
    branch_log: dict[str, torch.Tensor] | None = None
    branch_present: dict[str, torch.Tensor] | None = None
    weights: torch.Tensor | None = None


def nll_loss(log_probs: torch.Tensor, labels: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Negative log-likelihood of log-probabilities, with label smoothing."""
    nll = F.nll_loss(log_probs, labels)
    if smoothing <= 0:
        return nll
    return (1 - smoothing) * nll - smoothing * log_probs.mean(-1).mean()
