"""MER-HAN: Hybrid Attention Network for audio-text emotion recognition (Zhang et al., Biomed. Signal Process.
Control 85, 2023), as described and re-implemented in the seed survey (paper 003, §4.1 and §4.2.3).

The paper's blocks, on inputs prepared by :class:`~emomon.models.base.FusionModel` (text truncated to ``text_len``
tokens; speech *not* stretched - ``aligns_speech`` is False - so the BiLSTM sees the frames at their own rate):

1. Audio and Text Encoder (ATE). Audio: MFCC frames -> 2-layer BiLSTM (hidden 256 per direction,
   ``lstm_layers`` / ``lstm_hidden``) -> multi-head self-attention (local intra-modal attention). Text: the text
   encoder's token states (BERT in the paper) -> multi-head self-attention.
2. Cross-Modal Attention (CMA). Both refined sequences are projected to one width (``d_model``, 0 = the text
   width) by a 1D-CNN, then attention runs both ways: audio queries text (A->T) and text queries audio (T->A),
   scaled dot-product with ``heads`` heads.
3. Multimodal Emotion Classification (MEC). The audio-informed text and text-informed audio features are
   concatenated, a global inter-modal attention focuses on the most salient fused features, and a fully connected
   layer with softmax gives the class distribution.

Choices where the paper is silent, kept here so they can be checked:

- Each attention (intra-modal and cross-modal) is one layer with a residual connection and LayerNorm, and no
  feed-forward; ``layers`` and ``ff_dim`` are not used (the paper has one MHSA per encoder and one CMA).
- The BiLSTM is packed, so padding never enters its states; dropout (``dropout``) sits between the LSTM layers and
  before the classifier.
- The 1D-CNN projection is one convolution of ``conv_kernel`` frames ('same' padding, no activation), padding
  zeroed before it.
- "Concatenated" is along time (the two sequences have different lengths); the global inter-modal attention is
  additive attention pooling over all real positions of that concatenation,
  ``beta = softmax(v^T tanh(W z_t))``, ``sum_t beta_t z_t`` - linear in the (unaligned, possibly long) speech
  length. The model reports no steps (one classifier).
- The speech path works with any frame width (MFCC with ``encoders.speech.name = "mfcc"`` as in the paper, or
  encoder frames); the text and speech widths need not agree. Speech is scaled like the others but not resampled,
  so ``speech_len`` is not used; the intra-modal attention width is ``2 * lstm_hidden`` and must be divisible by
  ``heads``, as must the text width and ``d_model``.
"""

from __future__ import annotations

import torch
from torch import nn

from emomon.models.io import EmotionOutput, FusionInput
from emomon.training.architectures.baselines import _AnyWidth, single_output
from emomon.models.layers import AttentionPool, MaskedConv1d, MultiHeadAttention, run_rnn


class ResidualAttention(nn.Module):
    """``LN(q + MHA(q, kv, kv))`` - one self- (``kv`` = ``q``) or cross-attention layer without a feed-forward."""

    def __init__(self, d_model: int, heads: int, dropout: float, eps: float):
        super().__init__()
        self.attn = MultiHeadAttention(d_model, heads, dropout)
        self.norm = nn.LayerNorm(d_model, eps=eps)
        self.drop = nn.Dropout(dropout)

    def forward(self, q: torch.Tensor, kv: torch.Tensor, kv_mask: torch.Tensor) -> torch.Tensor:
        return self.norm(q + self.drop(self.attn(q, kv, kv, kv_mask)))


class MERHAN(_AnyWidth):
    arch = "merhan"
    step_names = ()
    aligns_speech = False

    def __init__(self, cfg, text_dim, speech_dim, n_classes, scaler=None):
        super().__init__(cfg, text_dim, speech_dim, n_classes, scaler)
        d, h = self.d_model, cfg.lstm_hidden
        eps = cfg.layer_norm_eps
        # ATE
        self.speech_lstm = nn.LSTM(speech_dim, h, cfg.lstm_layers, batch_first=True, bidirectional=True,
                                   dropout=cfg.dropout if cfg.lstm_layers > 1 else 0.0)
        self.speech_self_attn = ResidualAttention(2 * h, cfg.heads, cfg.dropout, eps)
        self.text_self_attn = ResidualAttention(text_dim, cfg.heads, cfg.dropout, eps)
        # CMA
        self.speech_proj = MaskedConv1d(2 * h, d, cfg.conv_kernel, activation=False)
        self.text_proj = MaskedConv1d(text_dim, d, cfg.conv_kernel, activation=False)
        self.speech_to_text = ResidualAttention(d, cfg.heads, cfg.dropout, eps)  # A->T: audio queries text
        self.text_to_speech = ResidualAttention(d, cfg.heads, cfg.dropout, eps)  # T->A: text queries audio
        # MEC
        self.global_attn = AttentionPool(d)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(d, n_classes)

    def forward(self, x: FusionInput) -> EmotionOutput:
        sm, tm = x.speech_mask, x.text_mask
        a, _ = run_rnn(self.speech_lstm, x.speech, sm)
        a = self.speech_self_attn(a, a, sm)
        t = self.text_self_attn(x.text, x.text, tm)
        a, t = self.speech_proj(a, sm), self.text_proj(t, tm)
        h_a = self.speech_to_text(a, t, tm)
        h_t = self.text_to_speech(t, a, sm)
        z = torch.cat([h_t, h_a], 1)
        z_mask = torch.cat([tm, sm], 1)
        return single_output(self.head(self.drop(self.global_attn(z, z_mask))))
