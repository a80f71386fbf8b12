"""The encoder interface: text or audio in, a padded batch of frame sequences with masks out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np
import torch

from emomon.errors import DeviceError

SAMPLE_RATE = 16_000


@dataclass
class Frames:
    """A padded batch of feature sequences.

    ``values`` is (batch, time, dim) float32; ``mask`` is (batch, time) bool with True on real frames. Padding
    positions hold zeros.
    """

    values: torch.Tensor
    mask: torch.Tensor

    @property
    def lengths(self) -> torch.Tensor:
        return self.mask.sum(1)

    def unbatch(self) -> list[np.ndarray]:
        """One (time, dim) float32 array per item, padding removed."""
        vals = self.values.detach().float().cpu().numpy()
        lens = self.lengths.cpu().tolist()
        return [vals[i, : int(n)] for i, n in enumerate(lens)]

    @staticmethod
    def pad(seqs: Sequence[np.ndarray | torch.Tensor], dim: int | None = None) -> "Frames":
        """Stack variable-length (time, dim) sequences into a padded batch (an empty sequence stays all-masked)."""
        tensors = [torch.as_tensor(np.asarray(s, dtype=np.float32)) if not isinstance(s, torch.Tensor) else s.float() for s in seqs]
        if dim is None:
            dim = next((t.shape[-1] for t in tensors if t.ndim == 2), 0)
        longest = max((t.shape[0] for t in tensors), default=0)
        longest = max(longest, 1)
        values = torch.zeros(len(tensors), longest, dim)
        mask = torch.zeros(len(tensors), longest, dtype=torch.bool)
        for i, t in enumerate(tensors):
            n = t.shape[0]
            if n:
                values[i, :n] = t
                mask[i, :n] = True
        return Frames(values, mask)


class TextEncoder(Protocol):
    """Turns sentences into token-state sequences."""

    dim: int
    #: Identifies the encoder and its weights; feature caches and checkpoints are keyed on it.
    fingerprint: str

    def encode(self, texts: Sequence[str]) -> Frames: ...


class SpeechEncoder(Protocol):
    """Turns 16 kHz mono float32 waveforms into frame sequences."""

    dim: int
    fingerprint: str
    #: Frames per second of the output (e.g. 50 for Whisper and HuBERT).
    frame_rate: float

    def encode(self, audios: Sequence[np.ndarray]) -> Frames: ...


def pick_device(requested: str = "auto") -> torch.device:
    """CUDA when present (or asked for), else CPU."""
    if requested == "cpu":
        return torch.device("cpu")
    if requested == "cuda" or (requested == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise DeviceError("CUDA was requested but no CUDA device is available; use --compute cpu")
        return torch.device("cuda")
    return torch.device("cpu")


def autocast(device: torch.device):
    """Mixed precision on CUDA (bf16 where supported, else fp16); a no-op context on CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    return torch.autocast("cpu", enabled=False)
