"""Joint standard scaling of text and speech features (HyFusER eq. 4-6).

The seed concatenates both modalities, standardises them with one mean and standard deviation per feature
dimension, and splits them again, so that text and speech land on the same scale before cross attention. The
statistics are computed on the training set over real positions only (text padding excluded) and are stored in
the checkpoint. When the two encoders' widths differ, joint statistics are impossible; each modality then keeps
its own (mode ``per-modality``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
import torch

from emomon.errors import ModelError


@dataclass
class JointStandardScaler:
    text_mean: np.ndarray
    text_std: np.ndarray
    speech_mean: np.ndarray
    speech_std: np.ndarray
    mode: str = "joint"

    @staticmethod
    def fit(text_frames: Iterable[np.ndarray], speech_frames: Iterable[np.ndarray], eps: float = 1e-6) -> "JointStandardScaler":
        """Statistics over every row of every (time, dim) array given (pass only real, aligned frames)."""
        acc = {}
        for name, seqs in (("text", text_frames), ("speech", speech_frames)):
            s = s2 = None
            n = 0
            for x in seqs:
                x = np.asarray(x, dtype=np.float64)
                if x.size == 0:
                    continue
                s = x.sum(0) if s is None else s + x.sum(0)
                s2 = (x * x).sum(0) if s2 is None else s2 + (x * x).sum(0)
                n += x.shape[0]
            acc[name] = (s, s2, n)
        if acc["text"][2] == 0 and acc["speech"][2] == 0:
            raise ModelError("cannot fit the scaler: the training examples have neither text nor speech frames")
        for missing, other in (("text", "speech"), ("speech", "text")):
            if acc[missing][2] == 0:  # a one-modality training set: the other modality's statistics stand in
                acc[missing] = acc[other]
        (ts, ts2, tn), (ss, ss2, sn) = acc["text"], acc["speech"]
        if ts.shape == ss.shape:
            n = tn + sn
            mean = (ts + ss) / n
            std = np.sqrt(np.maximum((ts2 + ss2) / n - mean**2, 0.0)) + eps
            return JointStandardScaler(mean.astype(np.float32), std.astype(np.float32), mean.astype(np.float32), std.astype(np.float32), "joint")
        tm, sm = ts / tn, ss / sn
        tsd = np.sqrt(np.maximum(ts2 / tn - tm**2, 0.0)) + eps
        ssd = np.sqrt(np.maximum(ss2 / sn - sm**2, 0.0)) + eps
        return JointStandardScaler(tm.astype(np.float32), tsd.astype(np.float32), sm.astype(np.float32), ssd.astype(np.float32), "per-modality")

    @staticmethod
    def identity(text_dim: int, speech_dim: int) -> "JointStandardScaler":
        return JointStandardScaler(np.zeros(text_dim, np.float32), np.ones(text_dim, np.float32),
                                   np.zeros(speech_dim, np.float32), np.ones(speech_dim, np.float32),
                                   "joint" if text_dim == speech_dim else "per-modality")

    def to_dict(self) -> dict:
        return {
            "mode": self.mode,
            "text_mean": self.text_mean.tolist(),
            "text_std": self.text_std.tolist(),
            "speech_mean": self.speech_mean.tolist(),
            "speech_std": self.speech_std.tolist(),
        }

    @staticmethod
    def from_dict(d: dict, text_dim: int, speech_dim: int) -> "JointStandardScaler":
        try:
            arrays = {k: np.asarray(d[k], dtype=np.float32) for k in ("text_mean", "text_std", "speech_mean", "speech_std")}
            mode = str(d.get("mode", "joint"))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"checkpoint scaler is malformed ({exc})") from None
        if arrays["text_mean"].shape != (text_dim,) or arrays["text_std"].shape != (text_dim,):
            raise ModelError(f"checkpoint scaler has text statistics of size {arrays['text_mean'].shape}, expected ({text_dim},)")
        if arrays["speech_mean"].shape != (speech_dim,) or arrays["speech_std"].shape != (speech_dim,):
            raise ModelError(f"checkpoint scaler has speech statistics of size {arrays['speech_mean'].shape}, expected ({speech_dim},)")
        if not all(np.isfinite(a).all() for a in arrays.values()) or (arrays["text_std"] <= 0).any() or (arrays["speech_std"] <= 0).any():
            raise ModelError("checkpoint scaler holds non-finite or non-positive statistics")
        return JointStandardScaler(mode=mode, **arrays)

    def tensors(self) -> dict[str, torch.Tensor]:
        return {k: torch.from_numpy(getattr(self, k).copy()) for k in ("text_mean", "text_std", "speech_mean", "speech_std")}
