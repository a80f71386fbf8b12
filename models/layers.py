"""Building blocks shared by the architectures: attention with padding masks, post-LN transformer blocks, pooling."""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn


class MultiHeadAttention(nn.Module):
    """Scaled dot-product attention, softmax(QK^T / sqrt(d_k)) V, with separate Q/K/V projections.

    ``key_mask`` is (batch, keys) bool with True on real positions; a query whose keys are all masked attends to
    nothing and returns zeros (rather than NaN).
    """

    def __init__(self, d_model: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model {d_model} is not divisible by heads {heads}")
        self.heads = heads
        self.q = nn.Linear(d_model, d_model)
        self.k = nn.Linear(d_model, d_model)
        self.v = nn.Linear(d_model, d_model)
        self.o = nn.Linear(d_model, d_model)
        self.dropout = dropout

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, key_mask: torch.Tensor | None = None,
                return_weights: bool = False):
        b, tq, d = query.shape
        tk = key.shape[1]
        h = self.heads

        def split(x: torch.Tensor, t: int) -> torch.Tensor:
            return x.view(b, t, h, d // h).transpose(1, 2)

        q, k, v = split(self.q(query), tq), split(self.k(key), tk), split(self.v(value), tk)
        mask = None
        if key_mask is not None:
            mask = key_mask[:, None, None, :].expand(b, h, tq, tk)
        if return_weights:
            scores = q @ k.transpose(-1, -2) / (d // h) ** 0.5
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf"))
            w = torch.softmax(scores, -1).nan_to_num(0.0)
            out = F.dropout(w, self.dropout, self.training) @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
            w = None
        if key_mask is not None:  # rows with no valid key come out NaN from SDPA
            out = out.nan_to_num(0.0)
        out = self.o(out.transpose(1, 2).reshape(b, tq, d))
        return (out, w) if return_weights else out


class FeedForward(nn.Module):
    """Position-wise Dense(ff, ReLU) -> Dense(d)."""

    def __init__(self, d_model: int, ff_dim: int, dropout: float = 0.0, activation: str = "relu"):
        super().__init__()
        self.fc1 = nn.Linear(d_model, ff_dim)
        self.fc2 = nn.Linear(ff_dim, d_model)
        self.act = nn.ReLU() if activation == "relu" else nn.GELU()
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(self.act(self.fc1(x))))


class PostLNBlock(nn.Module):
    """Attention + feed-forward, each followed by residual and LayerNorm (the Keras/original-Transformer layout).

    Used as a self-attention encoder layer (``kv`` is ``x``) or as a cross-modal attention block (``kv`` is the
    other modality): ``x = LN(x + MHA(x, kv)); x = LN(x + FFN(x))``.
    """

    def __init__(self, d_model: int, heads: int, ff_dim: int, dropout: float, eps: float):
        super().__init__()
        self.attn = MultiHeadAttention(d_model, heads, dropout)
        self.norm1 = nn.LayerNorm(d_model, eps=eps)
        self.ffn = FeedForward(d_model, ff_dim, dropout)
        self.norm2 = nn.LayerNorm(d_model, eps=eps)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, kv: torch.Tensor | None = None, kv_mask: torch.Tensor | None = None) -> torch.Tensor:
        kv = x if kv is None else kv
        x = self.norm1(x + self.drop(self.attn(x, kv, kv, kv_mask)))
        return self.norm2(x + self.drop(self.ffn(x)))


class TransformerEncoder(nn.Module):
    """A stack of self-attention :class:`PostLNBlock` layers over one padded sequence."""

    def __init__(self, d_model: int, heads: int, ff_dim: int, layers: int, dropout: float, eps: float):
        super().__init__()
        self.layers = nn.ModuleList(PostLNBlock(d_model, heads, ff_dim, dropout, eps) for _ in range(layers))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, kv_mask=mask)
        return x * mask[..., None]


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Global average pooling over the valid positions: (batch, time, d) -> (batch, d)."""
    m = mask[..., None].to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp_min(1.0)


# ------------------------------------------------------------------------------------------- shared by the seed baselines
def any_width_config(cfg, text_dim: int):
    """``cfg`` with ``d_model`` resolved to the text width when 0, so that :class:`FusionModel` accepts text and
    speech of different widths (for architectures that bring each modality to their working width themselves)."""
    return dataclasses.replace(cfg, d_model=cfg.d_model or text_dim)


def run_rnn(rnn: nn.RNNBase, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch-first LSTM/GRU over the valid prefix of each sequence (packed, so padding never enters a state).

    Returns the outputs (batch, time, hidden * directions), zero on padding, and the last layer's final hidden
    state, (batch, hidden * directions) with the directions concatenated.
    """
    lengths = mask.sum(1).clamp_min(1).cpu()
    packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out, h = rnn(packed)
    if isinstance(h, tuple):  # LSTM: (h, c)
        h = h[0]
    out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
    dirs = 2 if rnn.bidirectional else 1
    last = h[-dirs:].transpose(0, 1).reshape(x.shape[0], -1)
    return out * mask[..., None], last


class MaskedConv1d(nn.Module):
    """``layers`` x [Conv1d ('same' padding) -> ReLU -> dropout] over time, padding zeroed before every convolution,
    so an item's result does not depend on how much padding its batch carries."""

    def __init__(self, d_in: int, d_out: int, kernel: int, layers: int = 1, dropout: float = 0.0, activation: bool = True):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(d_in if i == 0 else d_out, d_out, kernel, padding="same") for i in range(layers))
        self.activation = activation
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask[..., None].to(x.dtype)
        for conv in self.convs:
            x = conv((x * m).transpose(1, 2)).transpose(1, 2)
            if self.activation:
                x = self.drop(torch.relu(x))
        return x * m


class AttentionPool(nn.Module):
    """Additive attention pooling over valid positions: ``beta = softmax(v^T tanh(W h_t))``, ``sum_t beta_t h_t``."""

    def __init__(self, d_model: int):
        super().__init__()
        self.proj = nn.Linear(d_model, d_model)
        self.score = nn.Linear(d_model, 1, bias=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        s = self.score(torch.tanh(self.proj(x)))[..., 0].masked_fill(~mask, float("-inf"))
        w = torch.softmax(s, -1).nan_to_num(0.0)
        return (w[..., None] * x).sum(1)
