"""HFF: Hierarchical Feature Fusion with Bayesian uncertainty weighting (Xie, Zhou, Zhu; J. Computers 36(2), 2025),
for the two modalities emomon has (the paper's vision branch is dropped).

The paper's three fusion levels (§3.2), on inputs prepared by :class:`~emomon.models.base.FusionModel` (text
truncated to ``text_len`` tokens, speech stretched to ``speech_len`` frames, both scaled):

1. Preliminary fusion and modality weighting. Each modality is projected into one space by a linear layer (eq. 16;
   the paper's 128-d space is ``d_model``, 0 = the text width). Dynamic weights ``alpha = softmax(W_dyn [f_s, f_t])``
   (eq. 17) give the preliminary fusion ``f0 = alpha_s f_s + alpha_t f_t`` (eq. 18). A Bayesian uncertainty estimate
   of each modality gives a variance ``sigma_m^2`` and a confidence ``w_m = 1 / (sigma_m^2 + eps)`` (eq. 19); the
   confidence-weighted fusion is sampled by reparameterisation, ``f1 = mu + eps * sigma``, ``eps ~ N(0, I)`` (eq. 20).
2. Cross-modal interaction: multi-head attention over the preliminary fusion, with ``f1`` added,
   ``f2 = MultiHead(Q, K, V) + f1`` (eqs. 21-23).
3. Temporal modelling: a GRU over time (eqs. 24-27) and attention pooling of its states,
   ``f_final = sum_t beta_t h_t`` (eq. 28); a classifier with a ReLU hidden layer and softmax (eqs. 29-30).

Choices where the paper is silent (or describes only utterance-level vectors), kept here so they can be checked:

- emomon's inputs are sequences, so level 1 runs per modality sequence: ``f_m`` in eq. 17 is the masked mean of the
  projected sequence, and ``alpha_m`` scales the whole projected sequence of modality m (eq. 18 on sequences; the two
  sequences have different lengths, so "sum" becomes the pair of weighted sequences that level 2 relates).
- The Bayesian estimate is Monte-Carlo dropout on a small uncertainty head per modality (Linear-ReLU-dropout-Linear
  on ``f_m``) that outputs a mean ``mu_m`` and a log-variance (clamped to [-8, 8]). Training: one stochastic pass,
  ``sigma_m^2`` = the predicted variance. Evaluation: ``mc_passes`` (K) passes with dropout on (batched as one call),
  ``mu_m`` = the mean of the K means and ``sigma_m^2`` = mean predicted variance + variance of the K means (aleatoric
  + epistemic). K = 1, or ``dropout`` 0, gives one deterministic pass. The passes draw from torch's global generator,
  so ``torch.manual_seed`` makes them reproducible (no per-module generator, nothing but tensors in the state).
- Confidence per modality is ``w_m = 1 / (mean_features(sigma_m^2) + 1e-6)``; the fused estimate is
  ``mu = sum_m w~_m mu_m``, ``sigma^2 = sum_m w~_m^2 sigma_m^2`` with ``w~ = w / sum w``; the noise ``eps`` is drawn in
  training only (evaluation uses ``f1 = mu``).
- "Multi-head cross-modal attention" is ``layers`` post-LN blocks per direction (attention + ReLU feed-forward
  ``ff_dim``, ``heads`` heads; the paper's encoder has 4 layers, 8 heads, 4x feed-forward): the weighted text
  sequence queries the weighted speech sequence and vice versa; ``f1`` is then added at every position (eq. 23).
- One GRU (hidden = width, shared by both modalities) runs over each modality's sequence separately, packed; the
  attention pooling (eq. 28) runs over the states of both. The classifier's hidden layer has the model width and
  dropout ``dropout`` (the paper uses 0.3 there). The model reports no steps (one classifier).
- Text and speech widths need not agree (each has its own projection).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from emomon.models.io import EmotionOutput, FusionInput
from emomon.training.architectures.baselines import _AnyWidth, single_output
from emomon.models.layers import AttentionPool, PostLNBlock, masked_mean, run_rnn

LOGVAR_RANGE = (-8.0, 8.0)
CONFIDENCE_EPS = 1e-6


class UncertaintyHead(nn.Module):
    """Linear -> ReLU -> (MC) dropout -> Linear to a mean and a log-variance."""

    def __init__(self, d_model: int, dropout: float):
        super().__init__()
        self.fc1 = nn.Linear(d_model, d_model)
        self.fc2 = nn.Linear(d_model, 2 * d_model)
        self.p = dropout

    def once(self, x: torch.Tensor, stochastic: bool) -> tuple[torch.Tensor, torch.Tensor]:
        h = F.dropout(torch.relu(self.fc1(x)), self.p, training=stochastic)
        mu, logvar = self.fc2(h).chunk(2, -1)
        return mu, logvar.clamp(*LOGVAR_RANGE)

    def forward(self, x: torch.Tensor, passes: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance, (batch, d) each: one pass in training, ``passes`` MC-dropout passes in evaluation."""
        if self.training:
            mu, logvar = self.once(x, True)
            return mu, logvar.exp()
        if passes <= 1 or self.p == 0:
            mu, logvar = self.once(x, False)
            return mu, logvar.exp()
        b = x.shape[0]
        mu, logvar = self.once(x.repeat(passes, 1), True)
        mu, var = mu.view(passes, b, -1), logvar.exp().view(passes, b, -1)
        return mu.mean(0), var.mean(0) + mu.var(0, unbiased=False)


class HFF(_AnyWidth):
    arch = "hff"
    step_names = ()

    def __init__(self, cfg, text_dim, speech_dim, n_classes, scaler=None):
        super().__init__(cfg, text_dim, speech_dim, n_classes, scaler)
        d = self.d_model
        eps = cfg.layer_norm_eps
        # level 1
        self.text_in = nn.Linear(text_dim, d)
        self.speech_in = nn.Linear(speech_dim, d)
        self.dynamic = nn.Linear(2 * d, 2)  # W_dyn -> (alpha_speech, alpha_text)
        self.text_uncertainty = UncertaintyHead(d, cfg.dropout)
        self.speech_uncertainty = UncertaintyHead(d, cfg.dropout)
        # level 2
        self.text_queries = nn.ModuleList(PostLNBlock(d, cfg.heads, cfg.ff_dim, cfg.dropout, eps) for _ in range(cfg.layers))
        self.speech_queries = nn.ModuleList(PostLNBlock(d, cfg.heads, cfg.ff_dim, cfg.dropout, eps) for _ in range(cfg.layers))
        # level 3
        self.gru = nn.GRU(d, d, batch_first=True)
        self.pool = AttentionPool(d)
        self.classifier = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Dropout(cfg.dropout), nn.Linear(d, n_classes))

    def forward(self, x: FusionInput) -> EmotionOutput:
        tm, sm = x.text_mask, x.speech_mask
        t, s = self.text_in(x.text), self.speech_in(x.speech)
        t_vec, s_vec = masked_mean(t, tm), masked_mean(s, sm)
        # level 1: dynamic weights (eqs. 17-18) and the uncertainty-weighted fusion (eqs. 19-20)
        alpha = torch.softmax(self.dynamic(torch.cat([s_vec, t_vec], -1)), -1)
        t0, s0 = alpha[:, 1, None, None] * t, alpha[:, 0, None, None] * s
        passes = self.cfg.mc_passes
        mu_t, var_t = self.text_uncertainty(t_vec, passes)
        mu_s, var_s = self.speech_uncertainty(s_vec, passes)
        # w~_m = w_m / sum_k w_k with w_m = 1 / (sigma_m^2 + eps), computed as a softmax of -log(sigma_m^2 + eps)
        var = torch.stack([var_t.float().mean(-1), var_s.float().mean(-1)], -1)
        w = torch.softmax(-torch.log(var + CONFIDENCE_EPS), -1).to(mu_t.dtype)
        mu = w[:, :1] * mu_t + w[:, 1:] * mu_s
        f1 = mu
        if self.training:
            sigma = (w[:, :1] ** 2 * var_t + w[:, 1:] ** 2 * var_s).sqrt()
            f1 = mu + torch.randn_like(mu) * sigma
        # level 2: cross-modal multi-head attention, plus f1 (eq. 23)
        for tq, sq in zip(self.text_queries, self.speech_queries):
            t0, s0 = tq(t0, s0, sm), sq(s0, t0, tm)
        t2, s2 = t0 + f1[:, None], s0 + f1[:, None]
        # level 3: GRU over time, attention pooling over both modalities' states (eq. 28)
        h_t, _ = run_rnn(self.gru, t2, tm)
        h_s, _ = run_rnn(self.gru, s2, sm)
        f_final = self.pool(torch.cat([h_t, h_s], 1), torch.cat([tm, sm], 1))
        return single_output(self.classifier(f_final))
