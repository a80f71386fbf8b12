"""Speed change by resampling: the replay's test-time speeds and training's speed perturbation share it."""

from __future__ import annotations

import numpy as np


def speed(audio: np.ndarray, factor: float) -> np.ndarray:
    """Speed perturbation by resampling (tempo and pitch change together, as in Kaldi's speed perturbation)."""
    n = int(round(len(audio) / factor))
    if n < 2 or len(audio) < 2:
        return audio
    x_new = np.linspace(0, len(audio) - 1, n)
    return np.interp(x_new, np.arange(len(audio)), audio).astype(np.float32)
