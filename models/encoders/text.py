"""Text token states from a transformers encoder.

``minilm`` (all-MiniLM-L6-v2) and ``mpnet`` (all-mpnet-base-v2) come from pip packages, with no download (see
:mod:`emomon.models.encoders.packaged`). Any other name is a transformers checkpoint (``bert-base-uncased``,
``monologg/koelectra-base-v3-discriminator``) or a local directory, taken from the Hugging Face cache or downloaded
when online.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import torch

from emomon.errors import ModelError
from emomon.models.frames import Frames
from emomon.models.encoders.hub import load_pretrained, weights_digest
from emomon.models.encoders.packaged import text_model_source
from emomon.models.encoders.tuned_text import load_tuned_layers

logger = logging.getLogger("emomon")


def text_fingerprint(name: str, layer: int, max_tokens: int) -> str:
    """The identity of a (frozen) text encoder's features, computed from its files without loading the model."""
    return f"text:{name}:{weights_digest(text_model_source(name))}:layer={layer}:max={max_tokens}"


class TransformersTextEncoder:
    """Token states (including [CLS]/[SEP]) of one hidden layer of a transformers text model."""

    def __init__(self, name: str = "minilm", layer: int = -1, max_tokens: int = 64, device: torch.device | str = "cpu",
                 tuned_layers: Path | None = None):
        # deferred: transformers takes seconds to import; only building a text encoder needs it
        from transformers import AutoModel, AutoTokenizer

        source = text_model_source(name)
        self.tokenizer = load_pretrained(AutoTokenizer, source)
        self.model = load_pretrained(AutoModel, source).eval()
        self.model.requires_grad_(False)
        self.device = torch.device(device)
        self.model.to(self.device)
        self.layer = layer
        self.max_tokens = max_tokens
        cfg = self.model.config
        self.dim = int(getattr(cfg, "hidden_size", 0) or getattr(cfg, "d_model"))
        n_layers = int(getattr(cfg, "num_hidden_layers", 0))
        if n_layers and not -(n_layers + 1) <= layer <= n_layers:
            raise ModelError(f"encoders.text.layer: {name} has hidden states 0..{n_layers}, not {layer}")
        self.fingerprint = text_fingerprint(name, layer, max_tokens)
        if tuned_layers is not None:  # top layers fine-tuned for emotion (models/text_tuning.py)
            self.fingerprint += f":tuned={load_tuned_layers(self.model, tuned_layers)[:16]}"

    def token_spans(self, texts: Sequence[str]) -> list[list[tuple[int, int] | None]]:
        """Character span of each token :meth:`encode` produces (None for special tokens), per text."""
        if not getattr(self.tokenizer, "is_fast", False):
            return [[None] * len(self.tokenizer(t, truncation=True, max_length=self.max_tokens)["input_ids"]) for t in texts]
        enc = self.tokenizer(list(texts), truncation=True, max_length=self.max_tokens, return_offsets_mapping=True)
        return [[(a, b) if b > a else None for a, b in offsets] for offsets in enc["offset_mapping"]]

    def encode(self, texts: Sequence[str]) -> Frames:
        batch = self.tokenizer(
            [t if isinstance(t, str) else "" for t in texts],
            padding=True,
            truncation=True,
            max_length=self.max_tokens,
            return_tensors="pt",
        ).to(self.device)
        with torch.inference_mode():
            out = self.model(**batch, output_hidden_states=self.layer != -1)
        states = out.last_hidden_state if self.layer == -1 else out.hidden_states[self.layer]
        mask = batch["attention_mask"].bool()
        return Frames(states.float().masked_fill(~mask[..., None], 0.0).cpu(), mask.cpu())
