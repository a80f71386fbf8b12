"""Hand-crafted frames: Whisper-style log-mel and MFCC (its DCT), for the seed architectures that use them."""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np
import torch

from emomon.models.frames import Frames
from emomon.models.asr.encoder import log_mel


@lru_cache(maxsize=8)
def _dct_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Orthonormal DCT-II basis (n_out, n_in), as used for MFCCs."""
    k = np.arange(n_out)[:, None]
    n = np.arange(n_in)[None, :]
    basis = np.cos(np.pi / n_in * (n + 0.5) * k) * np.sqrt(2.0 / n_in)
    basis[0] /= np.sqrt(2.0)
    return basis.astype(np.float32)


class SpectralSpeechEncoder:
    """``logmel``: 80 log-mel bands at 100 frames/s; ``mfcc``: their first ``n_mfcc`` cepstral coefficients."""

    frame_rate = 100.0

    def __init__(self, kind: str = "mfcc", n_mfcc: int = 40):
        if kind not in ("mfcc", "logmel"):
            raise ValueError(kind)
        self.kind = kind
        self.n_mfcc = n_mfcc
        self.dim = n_mfcc if kind == "mfcc" else 80
        self.fingerprint = f"{kind}:{self.dim}"

    def frames(self, audio: np.ndarray) -> np.ndarray:
        mel = log_mel(audio, 80).T  # (frames, 80)
        if self.kind == "logmel":
            return mel
        return mel @ _dct_matrix(80, self.n_mfcc).T

    def encode(self, audios: Sequence[np.ndarray]) -> Frames:
        return Frames.pad([torch.from_numpy(self.frames(a)) for a in audios], dim=self.dim)
