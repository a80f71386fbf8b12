"""Int8 arithmetic for the fusion members on CPU.

The five members are most of the model's weights (48 M parameters, 194 MB in float32) and, after the Whisper pass,
the largest share of its per-utterance CPU. Their linear layers run as dynamic int8 here: weights quantized per output
channel once at load, activations per batch, the products in int8 (PyTorch's fbgemm kernels). On the RAVDESS test
actors' recordings replayed by the default reading, the labels were equal on 377 of 377 utterances (median change of
the chosen class's probability 0.001), at about 7 % less CPU and 140 MB less memory (docs/MODEL_CARD.md, issue 30).

Why not the Whisper encoder or MiniLM as well: the same quantization moved Whisper's hidden states by 5-13 %
(relative norm), which changes transcripts and speech features; the encoders stay float32.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn


def quantize_linear_int8(model: nn.Module) -> nn.Module:
    """``model`` with its ``nn.Linear`` layers replaced, in place, by dynamic int8 ones (per-channel weights).

    An ensemble is quantized member by member, so that at no time a float32 and an int8 copy of all members are held
    together. CPU only: CUDA has no such kernels, and a GPU keeps the float weights."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    parts = list(getattr(model, "members", None) or [model])
    with warnings.catch_warnings():
        # torch.ao.quantization announces its move to torchao; the pinned torch still has it, and the check below
        # (a module of the expected type in place of every Linear) fails loudly if it ever stops working.
        warnings.simplefilter("ignore")
        for part in parts:
            quantize_dynamic(part, {nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8, inplace=True)
    left = [name for name, m in model.named_modules() if type(m) is nn.Linear]
    if left:
        raise RuntimeError(f"int8 quantization left float linear layers: {left[:3]}")
    return model
