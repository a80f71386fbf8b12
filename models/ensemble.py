"""An ensemble of fusion models: several trainings of one architecture read the same encoder features, and their
distributions are averaged.

Why: networks trained apart (another seed, another recipe) make partly different mistakes, and the mean of their
probabilities is more accurate and better calibrated than either (Lakshminarayanan et al. 2017). Members share the
encoders (one MiniLM and one Whisper pass serve all of them) and the speaker baseline options, so only the fusion
models run once per member; each keeps its own joint scaler, applied in its own ``prepare``.

Saved as one checkpoint (``emomon.training.saving.save_ensemble``): the first member is the checkpoint's own
weights and scaler, the others are listed under ``ensemble`` in its ``config.json``.
"""

from __future__ import annotations

import torch
from torch import nn

from emomon.models.io import EmotionOutput


class EnsembleModel(nn.Module):
    """Averages the fused and per-step distributions of ``members`` (same architecture, classes and input widths)."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        if len(members) < 2:
            raise ValueError("an ensemble needs two or more members")
        first = members[0]
        for m in members[1:]:
            if (type(m), m.cfg, m.text_dim, m.speech_dim, m.n_classes) != (type(first), first.cfg, first.text_dim, first.speech_dim, first.n_classes):
                raise ValueError("ensemble members differ in architecture, model settings, input widths or classes")
        self.members = nn.ModuleList(members)
        self.cfg, self.arch, self.step_names = first.cfg, first.arch, first.step_names
        self.text_dim, self.speech_dim, self.n_classes = first.text_dim, first.speech_dim, first.n_classes

    @property
    def speaker_baseline(self):
        """The members' shared speaker baseline options (the loader checks that they are one)."""
        return self.members[0].speaker_baseline

    @property
    def uses_word_times(self) -> bool:
        return bool(getattr(self.members[0], "uses_word_times", False))

    def prepare(self, text, speech, extras: dict | None = None) -> list:
        """Each member's input, scaled by its own statistics."""
        return [m.prepare(text, speech, extras) for m in self.members]

    def forward(self, inputs: list) -> EmotionOutput:
        outs = [m(x) for m, x in zip(self.members, inputs)]
        probs = torch.stack([o.probs.float() for o in outs]).mean(0)
        steps = {k: torch.stack([o.steps[k].float() for o in outs]).mean(0) for k in outs[0].steps}
        return EmotionOutput(probs, steps, probs.clamp_min(1e-12).log())
