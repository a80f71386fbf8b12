"""Speech frames from a transformers speech model (HuBERT, wav2vec 2.0, WavLM ...), by name or path."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from emomon.errors import ModelError
from emomon.models.frames import SAMPLE_RATE, Frames
from emomon.models.encoders.hub import load_pretrained, weights_digest


class TransformersSpeechEncoder:
    """Mean of the chosen hidden layers of a transformers audio encoder (e.g. ``facebook/hubert-base-ls960``)."""

    def __init__(self, name: str, layers: Sequence[int] = (-1,), device: torch.device | str = "cpu"):
        # deferred: transformers takes seconds to import; only transformers speech encoders need it
        from transformers import AutoFeatureExtractor, AutoModel

        self.extractor = load_pretrained(AutoFeatureExtractor, name)
        self.model = load_pretrained(AutoModel, name).eval()
        self.model.requires_grad_(False)
        self.device = torch.device(device)
        self.model.to(self.device)
        cfg = self.model.config
        self.dim = int(cfg.hidden_size)
        n = int(cfg.num_hidden_layers) + 1
        bad = [layer for layer in layers if not -n <= layer < n]
        if bad:
            raise ModelError(f"encoders.speech.layers: {name} has hidden states 0..{n - 1}, not {bad[0]}")
        self.layers = tuple(int(layer) % n for layer in layers)
        strides = getattr(cfg, "conv_stride", None) or (320,)
        self.frame_rate = SAMPLE_RATE / float(np.prod(strides))
        self.fingerprint = f"speech:{name}:{weights_digest(name)}:layers={','.join(map(str, self.layers))}"

    def encode(self, audios: Sequence[np.ndarray]) -> Frames:
        # One at a time: several of these models (HuBERT base) were trained without attention masks, so padding
        # would change the frames of shorter items.
        seqs = []
        for a in audios:
            a = np.asarray(a, dtype=np.float32)
            if len(a) < SAMPLE_RATE // 10:
                a = np.pad(a, (0, SAMPLE_RATE // 10 - len(a)))
            inputs = self.extractor(a, sampling_rate=SAMPLE_RATE, return_tensors="pt").to(self.device)
            with torch.inference_mode():
                out = self.model(**inputs, output_hidden_states=True)
            hs = torch.stack([out.hidden_states[i] for i in self.layers]).mean(0)[0]
            seqs.append(hs.float().cpu())
        return Frames.pad(seqs, dim=self.dim)
