"""Complementary fusion: time-aligned graph embedding + Cross-Attention Transformer MoE + Sum-Product Linear MoE
(Yi, Kwak, Shin; "A Complementary Fusion Framework for Robust Multimodal Emotion Recognition", Electronics 2025, 14,
4444 - seed paper 002, which gives its algorithm boxes and tables only).

The paper's algorithm, on inputs prepared by :class:`~emomon.models.base.FusionModel` (text truncated to
``text_len`` tokens, speech stretched to ``speech_len`` frames, both scaled):

1. Graph embedding (Algorithm 3): Whisper word timestamps give each text token a time span; every speech frame whose
   time lies in a token's span is joined to that token by an edge; a graph attention network (GAT) runs over the
   text-token and speech-frame nodes.
2. Cross-Attention Transformer MoE (Algorithm 4; for "complex", ambiguous emotions): multi-head cross attention
   ``softmax(QK^T / sqrt(D)) V`` between text and speech, and a gated mixture of ``moe_experts`` (5) experts.
3. Sum-Product Linear MoE (Algorithm 5; for "clear" emotions): ``Linear(concat(t, s, t + s, t * s))`` per expert,
   gated, 5 experts.
4. Late fusion of the two MoEs' distributions (the average of their softmax outputs, as HyFusER's last fusion).

Word timing (the contract with the data path): ``prepare`` reads ``extras["token_times"]`` - one float array
(n_text_tokens, 2) per item with each token's [start, end] in seconds from the speech start, NaN where unknown
(e.g. [CLS]/[SEP]) - and ``extras["speech_seconds"]`` - each utterance's duration, (B,) - and adds
``extras["adjacency"]``, a (B, text_len, speech_len) bool tensor: token i is joined to aligned frame j when the
centre of the frame's span, ``(j + 0.5) / n_frames`` of the utterance, lies in the token's span [start, end) (the
paper's rule, half-open so that a frame on the boundary of two adjacent words joins only the later one), and always
to the frame holding the midpoint of its span, so no token is isolated however short. **Fallback**: a token with
no time (NaN, beyond its array, or the whole item when the extras, the item's times or a positive duration are
missing) is given the i-th of n equal slices of the utterance, i.e. the n real tokens are spread uniformly over the
speech. ``forward`` builds the same uniform adjacency when an input carries none. The cost is bounded by the
dense (text_len + speech_len)^2 node graph.

Choices where the paper is silent, kept here so they can be checked:

- GAT (Velickovic et al. 2018), written here in torch: ``gat_layers`` layers of ``gat_heads`` heads (concatenated,
  width / heads each), ``e_ij = LeakyReLU_0.2(a_src . W h_i + a_dst . W h_j)`` softmaxed over i's neighbours
  (its edges and a self-loop), attention dropout ``dropout``, ELU, then a residual and LayerNorm. The nodes are the
  projected token states and frame states plus a learned node-type embedding; the graph embedding ``g`` is the mean
  of the GAT's output over all real nodes.
- The graph embedding is the auxiliary third modality of the paper: ``g`` joins the input of both MoEs' experts and
  gates.
- Cross-Attention Transformer MoE: one shared bidirectional cross-attention transformer (``layers`` post-LN blocks
  per direction - attention, ReLU feed-forward ``ff_dim``, LayerNorm - text queries speech and speech queries text),
  whose two outputs are average-pooled over real positions and, with ``g``, feed the experts. The paper's parameter
  table (1000 experts: 210.9M for this MoE vs 206.5M for the linear one) implies that the attention is shared and the
  experts are small, so each expert is a ``Linear(3d, d) -> ReLU -> dropout`` on the pooled vector.
- Sum-Product Linear MoE: ``t`` and ``s`` are the masked means of the projected text and speech; each expert is
  ``Linear(concat(t, s, t + s, t * s, g), d) -> ReLU -> dropout``.
- Gating (Shazeer et al. 2017): a linear gate on the experts' input, softmax over the ``moe_top_k`` highest gate
  logits (the paper's table compares top-1 and top-2; top-2 is better), dense softmax when ``moe_top_k`` is 0 or
  >= ``moe_experts``; no load-balancing loss. The mixture of expert outputs goes through one linear classifier per
  MoE. Steps: ``cat_moe`` and ``spl_moe``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from emomon.models.base import FusionModel
from emomon.models.io import EmotionOutput, FusionInput
from emomon.models.frames import Frames
from emomon.models.layers import PostLNBlock, masked_mean


# --------------------------------------------------------------------------------------------------- word-frame graph
def word_frame_adjacency(text_mask: torch.Tensor, speech_mask: torch.Tensor, token_times: Sequence | None = None,
                         speech_seconds: torch.Tensor | Sequence[float] | None = None) -> torch.Tensor:
    """(B, Lt, Ls) bool: token i - frame j edges from word timestamps, uniform spreading where times are missing.

    Real tokens and frames are the masks' (prefix) positions; frame j of an item with n real frames covers
    ``[j, j + 1) / n`` of the utterance.
    """
    b, lt = text_mask.shape
    ls = speech_mask.shape[1]
    device = text_mask.device
    n_t = text_mask.sum(1).clamp_min(1).float()  # (B,)
    n_s = speech_mask.sum(1).clamp_min(1).float()
    idx = torch.arange(lt, device=device, dtype=torch.float32)
    # uniform slices (fractions of the utterance)
    start = idx[None] / n_t[:, None]
    end = (idx[None] + 1) / n_t[:, None]
    if token_times is not None and speech_seconds is not None:
        secs = torch.as_tensor(np.asarray([float(v) for v in speech_seconds], dtype=np.float32))
        timed = torch.full((b, lt, 2), float("nan"))
        for i, tt in enumerate(token_times):
            if i >= b or i >= len(secs) or tt is None or not (secs[i] > 0):
                continue
            arr = torch.as_tensor(np.asarray(tt, dtype=np.float32).reshape(-1, 2)[:lt])
            timed[i, : arr.shape[0]] = arr / secs[i]
        timed = timed.to(device)
        ok = torch.isfinite(timed).all(-1)
        start = torch.where(ok, timed[..., 0].clamp(0.0, 1.0), start)
        end = torch.where(ok, timed[..., 1].clamp(0.0, 1.0), end)
        end = torch.maximum(start, end)
    j = torch.arange(ls, device=device, dtype=torch.float32)
    centre = (j[None] + 0.5) / n_s[:, None]  # (B, Ls)
    adj = (centre[:, None, :] >= start[..., None]) & (centre[:, None, :] < end[..., None])
    mid_frame = torch.minimum(((start + end) / 2 * n_s[:, None]).floor(), n_s[:, None] - 1).long()  # (B, Lt)
    adj |= F.one_hot(mid_frame.clamp(0, ls - 1), ls).bool()
    return adj & text_mask[:, :, None] & speech_mask[:, None, :]


class GATLayer(nn.Module):
    """Multi-head graph attention over a dense neighbour mask, heads concatenated, ELU, residual + LayerNorm."""

    def __init__(self, d_model: int, heads: int, dropout: float, eps: float):
        super().__init__()
        if d_model % heads:
            raise ValueError(f"width {d_model} is not divisible by gat_heads {heads}")
        self.heads, self.dh = heads, d_model // heads
        self.w = nn.Linear(d_model, d_model, bias=False)
        self.a_src = nn.Parameter(torch.empty(heads, self.dh))
        self.a_dst = nn.Parameter(torch.empty(heads, self.dh))
        nn.init.xavier_uniform_(self.a_src)
        nn.init.xavier_uniform_(self.a_dst)
        self.bias = nn.Parameter(torch.zeros(d_model))
        self.norm = nn.LayerNorm(d_model, eps=eps)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, neighbours: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        wh = self.w(x).view(b, n, self.heads, self.dh)
        e_src = (wh * self.a_src).sum(-1).transpose(1, 2)  # (B, H, N)
        e_dst = (wh * self.a_dst).sum(-1).transpose(1, 2)
        e = F.leaky_relu(e_src[..., :, None] + e_dst[..., None, :], 0.2)  # (B, H, N_i, N_j)
        e = e.masked_fill(~neighbours[:, None], float("-inf"))
        att = F.dropout(torch.softmax(e, -1).nan_to_num(0.0), self.dropout, self.training)
        out = (att @ wh.transpose(1, 2)).transpose(1, 2).reshape(b, n, d) + self.bias
        return self.norm(x + F.elu(out))


class GraphEmbedding(nn.Module):
    """GAT over text-token and speech-frame nodes; returns the mean of the real nodes' output states."""

    def __init__(self, d_model: int, heads: int, layers: int, dropout: float, eps: float):
        super().__init__()
        self.node_type = nn.Parameter(torch.zeros(2, d_model))  # 0 = text token, 1 = speech frame
        nn.init.normal_(self.node_type, std=0.02)
        self.layers = nn.ModuleList(GATLayer(d_model, heads, dropout, eps) for _ in range(layers))

    def forward(self, t: torch.Tensor, t_mask: torch.Tensor, s: torch.Tensor, s_mask: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        lt = t.shape[1]
        x = torch.cat([t + self.node_type[0], s + self.node_type[1]], 1)
        mask = torch.cat([t_mask, s_mask], 1)
        n = x.shape[1]
        nb = torch.zeros(x.shape[0], n, n, dtype=torch.bool, device=x.device)
        nb[:, :lt, lt:] = adj
        nb[:, lt:, :lt] = adj.transpose(1, 2)
        nb |= torch.diag_embed(mask)  # self-loops on real nodes
        for layer in self.layers:
            x = layer(x, nb)
        return masked_mean(x, mask)


# --------------------------------------------------------------------------------------------------- mixture of experts
class GatedMoE(nn.Module):
    """``sum_e g_e(x) expert_e(x)`` with softmax gating over the top-k gate logits (all experts when k is 0)."""

    def __init__(self, d_in: int, d_out: int, experts: int, top_k: int, dropout: float):
        super().__init__()
        self.experts = nn.ModuleList(nn.Sequential(nn.Linear(d_in, d_out), nn.ReLU(), nn.Dropout(dropout)) for _ in range(experts))
        self.gate = nn.Linear(d_in, experts)
        self.top_k = top_k if 0 < top_k < experts else experts

    def gates(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.gate(x)
        if self.top_k < logits.shape[-1]:
            kth = logits.topk(self.top_k, -1).values[..., -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        return torch.softmax(logits, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.gates(x)  # (B, E)
        out = torch.stack([e(x) for e in self.experts], 1)  # (B, E, d_out)
        return (g[..., None] * out).sum(1)


class ComplementaryFusion(FusionModel):
    arch = "complementary"
    step_names = ("cat_moe", "spl_moe")
    step_descriptions = {"cat_moe": "Cross-Attention Transformer MoE", "spl_moe": "Sum-Product Linear MoE"}

    def __init__(self, cfg, text_dim, speech_dim, n_classes, scaler=None):
        super().__init__(cfg, text_dim, speech_dim, n_classes, scaler)
        d = self.d_model
        eps = cfg.layer_norm_eps
        self.graph = GraphEmbedding(d, cfg.gat_heads, cfg.gat_layers, cfg.dropout, eps)
        # Cross-Attention Transformer MoE
        self.cross_text_query = nn.ModuleList(PostLNBlock(d, cfg.heads, cfg.ff_dim, cfg.dropout, eps) for _ in range(cfg.layers))
        self.cross_speech_query = nn.ModuleList(PostLNBlock(d, cfg.heads, cfg.ff_dim, cfg.dropout, eps) for _ in range(cfg.layers))
        self.cat_moe = GatedMoE(3 * d, d, cfg.moe_experts, cfg.moe_top_k, cfg.dropout)
        self.head_cat = nn.Linear(d, n_classes)
        # Sum-Product Linear MoE
        self.spl_moe = GatedMoE(5 * d, d, cfg.moe_experts, cfg.moe_top_k, cfg.dropout)
        self.head_spl = nn.Linear(d, n_classes)

    #: The data path and the runtime supply ``token_times`` from Whisper word timestamps for this architecture.
    uses_word_times = True

    def prepare(self, text: Frames, speech: Frames, extras: dict | None = None) -> FusionInput:
        x = super().prepare(text, speech, extras)
        extras = dict(x.extras)
        extras["adjacency"] = word_frame_adjacency(x.text_mask, x.speech_mask, extras.get("token_times"), extras.get("speech_seconds"))
        x.extras = extras
        return x

    def forward(self, x: FusionInput) -> EmotionOutput:
        tm, sm = x.text_mask, x.speech_mask
        adj = x.extras.get("adjacency")
        if adj is None or adj.shape != (tm.shape[0], tm.shape[1], sm.shape[1]):
            adj = word_frame_adjacency(tm, sm)
        t, s = self.text_in(x.text), self.speech_in(x.speech)
        g = self.graph(t, tm, s, sm, adj.to(t.device))
        # Cross-Attention Transformer MoE
        h_t, h_s = t, s
        for tq, sq in zip(self.cross_text_query, self.cross_speech_query):
            h_t, h_s = tq(h_t, h_s, sm), sq(h_s, h_t, tm)
        cat_in = torch.cat([masked_mean(h_t, tm), masked_mean(h_s, sm), g], -1)
        # Sum-Product Linear MoE
        tv, sv = masked_mean(t, tm), masked_mean(s, sm)
        spl_in = torch.cat([tv, sv, tv + sv, tv * sv, g], -1)
        logits = {"cat_moe": self.head_cat(self.cat_moe(cat_in)), "spl_moe": self.head_spl(self.spl_moe(spl_in))}
        return self.average_ensemble(logits)
