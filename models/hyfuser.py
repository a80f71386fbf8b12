"""HyFusER: Hybrid Multimodal Transformer with Dual Cross Modal Attention (Yi, Kwak, Shin; Appl. Sci. 2025, 15, 1053).

Algorithm 1 of the paper, on inputs prepared by :class:`~emomon.models.base.FusionModel` (text truncated to
``text_len`` tokens, speech stretched to ``speech_len`` frames by linear interpolation, both scaled with joint
statistics):

1. ``E_T = TransformerEncoder_T(X'_T)``, ``E_S = TransformerEncoder_S(X'_S)`` - one encoder per modality, 3 layers,
   1 head, feed-forward 768 with ReLU, LayerNorm (eps 1e-6) after attention and after the feed-forward (Table 3).
2. Step 1: ``H_T = CrossModalAttention(Q=E_T, K=E_S, V=E_S)``; ``Y_T = softmax(W_T GAP(H_T) + b_T)``.
3. Step 2: ``H_S = CrossModalAttention(Q=E_S, K=E_T, V=E_T)``; ``Y_S = softmax(W_S GAP(H_S) + b_S)``.
4. Last fusion: ``Y = (Y_T + Y_S) / 2`` (average ensemble), prediction ``argmax Y``.

Choices where the paper is silent, kept here so they can be checked:

- The encoders are shared by both steps (Algorithm 1 writes ``E_T``, ``E_S`` twice with the same definition).
- A cross-modal attention "component" is a post-LN block like the encoder layers - attention with a residual from
  the query, LayerNorm, ReLU feed-forward, LayerNorm - as §4.3.3 places ReLU feed-forwards and LayerNorm in both.
- No positional encoding is added: the input frames come from pretrained encoders that already encode position.
- Global average pooling runs over real positions only (the query's mask), so padding never dilutes it.
- The loss is the cross-entropy of the averaged distribution ``Y`` (the paper trains the ensemble output with
  sparse categorical cross-entropy); ``model.step_loss_weight`` optionally adds per-step terms.
"""

from __future__ import annotations

from emomon.models.base import FusionModel
from emomon.models.io import EmotionOutput, FusionInput
from emomon.models.layers import PostLNBlock, TransformerEncoder, masked_mean
from torch import nn


class HyFusER(FusionModel):
    arch = "hyfuser"
    step_names = ("step1", "step2")
    step_descriptions = {"step1": "Q=text, K/V=speech", "step2": "Q=speech, K/V=text"}

    def __init__(self, cfg, text_dim, speech_dim, n_classes, scaler=None):
        super().__init__(cfg, text_dim, speech_dim, n_classes, scaler)
        d = self.d_model
        args = (d, cfg.heads, cfg.ff_dim)
        self.text_encoder = TransformerEncoder(*args, cfg.layers, cfg.dropout, cfg.layer_norm_eps)
        self.speech_encoder = TransformerEncoder(*args, cfg.layers, cfg.dropout, cfg.layer_norm_eps)
        self.cross_text_query = PostLNBlock(*args, cfg.dropout, cfg.layer_norm_eps)  # step 1
        self.cross_speech_query = PostLNBlock(*args, cfg.dropout, cfg.layer_norm_eps)  # step 2
        self.head_step1 = nn.Linear(d, n_classes)
        self.head_step2 = nn.Linear(d, n_classes)

    def forward(self, x: FusionInput) -> EmotionOutput:
        e_t = self.text_encoder(self.text_in(x.text), x.text_mask)
        e_s = self.speech_encoder(self.speech_in(x.speech), x.speech_mask)
        h_t = self.cross_text_query(e_t, e_s, x.speech_mask)
        h_s = self.cross_speech_query(e_s, e_t, x.text_mask)
        logits = {
            "step1": self.head_step1(masked_mean(h_t, x.text_mask)),
            "step2": self.head_step2(masked_mean(h_s, x.speech_mask)),
        }
        return self.average_ensemble(logits)
