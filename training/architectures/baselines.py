"""HyFusER's comparison models (Yi, Kwak, Shin; Appl. Sci. 2025, 15, 1053, §5, Tables 5-6), as selectable architectures.

§5 names them and no more: "an LSTM model for text data; a CNN model for speech data; and several multimodal
approaches: an average ensemble model that predicts the final emotion by averaging the results of single-modality
models", a single-modality *weighted* average ensemble (Tables 5-6), "a model utilizing Bidirectional Cross Modal
Attention, and the KoHMT [26] model". Everything below the names is therefore a choice, written down here:

``text_bilstm`` - text only. A BiLSTM (``lstm_layers`` x ``lstm_hidden`` per direction, dropout between layers)
over the token states, packed so padding never enters a state; the last layer's final forward and backward states,
concatenated, feed one linear classifier. The speech input is never read.

``speech_cnn`` - speech only. ``layers`` x [Conv1d (``conv_kernel`` frames, 'same' padding, width ``d_model`` or
the speech width) -> ReLU -> dropout] over the (aligned) frames, global max pooling over the real frames (the
max-pooling of a classic CNN classifier), one linear classifier. The text input is never read.

``avg_ensemble`` / ``weighted_ensemble`` - the two single-modality models above side by side, trained jointly on the
fused distribution (the seed trains them separately; one joint run keeps the training loop architecture-agnostic,
and ``model.step_loss_weight`` adds per-branch terms when each branch should also stand on its own). The fused
distribution is ``(P_text + P_speech) / 2``, or ``w_text P_text + w_speech P_speech`` with ``w = softmax(a)`` and
``a`` a learned 2-vector (starting equal). Steps: ``text`` and ``speech``.

``bcma`` - Bidirectional Cross Modal Attention: HyFusER without its Last Fusion, i.e. the same per-modality
encoders and the same two cross-modal blocks (text queries speech, speech queries text), but the two pooled
outputs are concatenated into one vector with one classifier (no per-direction heads, no average ensemble).

``kohmt`` - KoHMT (Yi, Kwak, Shin; Electronics 2024, 13, 4674), HyFusER's predecessor by the same authors, which
HyFusER's paper cites only by name ("integrating KoELECTRA, HuBERT with Multimodal Transformer"). Its abstract
describes it as processing text and speech independently and then learning their interaction through a cross-modal
attention with text as the Query and speech as Key/Value; HyFusER's own contribution is the second, reversed
direction and the average ensemble. So: per-modality transformer encoders (as HyFusER), one cross-modal block
``H_T = CMA(Q=E_T, K/V=E_S)``, global average pooling over the text positions, one classifier.

Common choices: a single-classifier model reports no steps (its fused distribution is its only one); BiLSTM, CNN
and ensemble widths do not need the two encoders to agree (``d_model`` 0 means each branch's own input width).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from emomon.models.base import FusionModel
from emomon.models.io import EmotionOutput, FusionInput
from emomon.models.layers import MaskedConv1d, PostLNBlock, TransformerEncoder, any_width_config, masked_mean, run_rnn


def single_output(logits: torch.Tensor) -> EmotionOutput:
    log_p = F.log_softmax(logits.float(), -1)
    return EmotionOutput(log_p.exp(), {}, log_p)


class TextLSTMBranch(nn.Module):
    """BiLSTM over token states -> final states of both directions -> logits."""

    def __init__(self, cfg, d_in: int, n_classes: int):
        super().__init__()
        self.lstm = nn.LSTM(d_in, cfg.lstm_hidden, cfg.lstm_layers, batch_first=True, bidirectional=True,
                            dropout=cfg.dropout if cfg.lstm_layers > 1 else 0.0)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(2 * cfg.lstm_hidden, n_classes)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        _, last = run_rnn(self.lstm, x, mask)
        return self.head(self.drop(last))


class SpeechCNNBranch(nn.Module):
    """1D CNN over frames -> global max pooling over real frames -> logits."""

    def __init__(self, cfg, d_in: int, n_classes: int):
        super().__init__()
        width = cfg.d_model or d_in
        self.cnn = MaskedConv1d(d_in, width, cfg.conv_kernel, cfg.layers, cfg.dropout)
        self.head = nn.Linear(width, n_classes)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.cnn(x, mask).masked_fill(~mask[..., None], float("-inf"))
        return self.head(h.max(1).values)


class _AnyWidth(FusionModel):
    """Base for models that bring each modality to their own working width (no shared ``d_model`` needed)."""

    def __init__(self, cfg, text_dim, speech_dim, n_classes, scaler=None):
        super().__init__(any_width_config(cfg, text_dim), text_dim, speech_dim, n_classes, scaler)
        self.cfg = cfg
        self.text_in = nn.Identity()
        self.speech_in = nn.Identity()


class TextBiLSTM(_AnyWidth):
    arch = "text_bilstm"
    step_names = ()

    def __init__(self, cfg, text_dim, speech_dim, n_classes, scaler=None):
        super().__init__(cfg, text_dim, speech_dim, n_classes, scaler)
        self.text_branch = TextLSTMBranch(cfg, text_dim, n_classes)

    def forward(self, x: FusionInput) -> EmotionOutput:
        return single_output(self.text_branch(x.text, x.text_mask))


class SpeechCNN(_AnyWidth):
    arch = "speech_cnn"
    step_names = ()

    def __init__(self, cfg, text_dim, speech_dim, n_classes, scaler=None):
        super().__init__(cfg, text_dim, speech_dim, n_classes, scaler)
        self.speech_branch = SpeechCNNBranch(cfg, speech_dim, n_classes)

    def forward(self, x: FusionInput) -> EmotionOutput:
        return single_output(self.speech_branch(x.speech, x.speech_mask))


class AverageEnsemble(_AnyWidth):
    arch = "avg_ensemble"
    step_names = ("text", "speech")
    step_descriptions = {"text": "text BiLSTM", "speech": "speech CNN"}

    def __init__(self, cfg, text_dim, speech_dim, n_classes, scaler=None):
        super().__init__(cfg, text_dim, speech_dim, n_classes, scaler)
        self.text_branch = TextLSTMBranch(cfg, text_dim, n_classes)
        self.speech_branch = SpeechCNNBranch(cfg, speech_dim, n_classes)

    def branch_logits(self, x: FusionInput) -> dict[str, torch.Tensor]:
        return {"text": self.text_branch(x.text, x.text_mask), "speech": self.speech_branch(x.speech, x.speech_mask)}

    def forward(self, x: FusionInput) -> EmotionOutput:
        return self.average_ensemble(self.branch_logits(x))


class WeightedEnsemble(AverageEnsemble):
    arch = "weighted_ensemble"

    def __init__(self, cfg, text_dim, speech_dim, n_classes, scaler=None):
        super().__init__(cfg, text_dim, speech_dim, n_classes, scaler)
        self.ensemble_logits = nn.Parameter(torch.zeros(2))  # softmax -> (w_text, w_speech)

    def forward(self, x: FusionInput) -> EmotionOutput:
        logits = self.branch_logits(x)
        log_ps = {k: F.log_softmax(v.float(), -1) for k, v in logits.items()}
        log_w = F.log_softmax(self.ensemble_logits.float(), 0)
        log_mix = torch.logsumexp(torch.stack([log_w[0] + log_ps["text"], log_w[1] + log_ps["speech"]]), 0)
        return EmotionOutput(log_mix.exp(), {k: v.exp() for k, v in log_ps.items()}, log_mix)


class BCMA(FusionModel):
    arch = "bcma"
    step_names = ()

    def __init__(self, cfg, text_dim, speech_dim, n_classes, scaler=None):
        super().__init__(cfg, text_dim, speech_dim, n_classes, scaler)
        d = self.d_model
        args = (d, cfg.heads, cfg.ff_dim)
        self.text_encoder = TransformerEncoder(*args, cfg.layers, cfg.dropout, cfg.layer_norm_eps)
        self.speech_encoder = TransformerEncoder(*args, cfg.layers, cfg.dropout, cfg.layer_norm_eps)
        self.cross_text_query = PostLNBlock(*args, cfg.dropout, cfg.layer_norm_eps)
        self.cross_speech_query = PostLNBlock(*args, cfg.dropout, cfg.layer_norm_eps)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(2 * d, n_classes)

    def forward(self, x: FusionInput) -> EmotionOutput:
        e_t = self.text_encoder(self.text_in(x.text), x.text_mask)
        e_s = self.speech_encoder(self.speech_in(x.speech), x.speech_mask)
        h_t = self.cross_text_query(e_t, e_s, x.speech_mask)
        h_s = self.cross_speech_query(e_s, e_t, x.text_mask)
        z = torch.cat([masked_mean(h_t, x.text_mask), masked_mean(h_s, x.speech_mask)], -1)
        return single_output(self.head(self.drop(z)))


class KoHMT(FusionModel):
    arch = "kohmt"
    step_names = ()

    def __init__(self, cfg, text_dim, speech_dim, n_classes, scaler=None):
        super().__init__(cfg, text_dim, speech_dim, n_classes, scaler)
        d = self.d_model
        args = (d, cfg.heads, cfg.ff_dim)
        self.text_encoder = TransformerEncoder(*args, cfg.layers, cfg.dropout, cfg.layer_norm_eps)
        self.speech_encoder = TransformerEncoder(*args, cfg.layers, cfg.dropout, cfg.layer_norm_eps)
        self.cross_text_query = PostLNBlock(*args, cfg.dropout, cfg.layer_norm_eps)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(d, n_classes)

    def forward(self, x: FusionInput) -> EmotionOutput:
        e_t = self.text_encoder(self.text_in(x.text), x.text_mask)
        e_s = self.speech_encoder(self.speech_in(x.speech), x.speech_mask)
        h_t = self.cross_text_query(e_t, e_s, x.speech_mask)
        return single_output(self.head(self.drop(masked_mean(h_t, x.text_mask))))
