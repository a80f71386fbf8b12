"""The voice encoder behind speaker diarization: a 256-d d-vector per utterance (Resemblyzer's packaged weights).

It is a PyTorch model, so in a session it runs on the inference worker's thread (the pipeline hands the diarizers
``InferenceWorker.on_device(embedder)``); the clustering that turns embeddings into speakers is the runtime's
(``emomon.monitor.diarize``).
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import torch
from torch import nn

from emomon.errors import ModelError


class ResemblyzerEmbedder:
    """Resemblyzer's packaged d-vector encoder on CPU, loaded on first use.

    The weights are read with ``torch.load(weights_only=True)`` into the encoder's layers here rather than through
    ``VoiceEncoder.__init__`` (which calls ``torch.load`` without ``weights_only`` and so would unpickle arbitrary
    objects on an older torch, or when ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` is set).

    Input: 16 kHz mono float32 speech as cut by the segmenter. Resemblyzer's ``preprocess_wav`` would resample (not
    needed: already 16 kHz), normalise the volume and trim long silences with webrtcvad; only the volume
    normalisation is applied here (-30 dBFS, raise only), because the segmenter already trimmed the utterance to
    speech plus a short padding. ``embed_utterance`` then averages 1.6 s partial windows (zero-padding a shorter
    utterance to one window).
    """

    def __init__(self, weights: Path | None = None):
        self._weights = weights
        self._encoder = None
        self._lock = threading.Lock()

    def _load(self):
        try:
            # deferred: resemblyzer (and its librosa-free audio helpers) load only when a session diarizes
            from resemblyzer import VoiceEncoder, hparams
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ModelError(f"speaker diarization needs the resemblyzer package ({exc})") from None
        path = Path(self._weights) if self._weights else Path(hparams.__file__).resolve().parent / "pretrained.pt"
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
            state = {k: v for k, v in checkpoint["model_state"].items() if k.startswith(("lstm.", "linear."))}
        except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint is a model problem
            raise ModelError(f"cannot load the speaker encoder weights {path}: {exc}") from None
        enc = VoiceEncoder.__new__(VoiceEncoder)  # skip its __init__ (it loads without weights_only)
        nn.Module.__init__(enc)
        enc.lstm = nn.LSTM(hparams.mel_n_channels, hparams.model_hidden_size, hparams.model_num_layers,
                           batch_first=True)
        enc.linear = nn.Linear(hparams.model_hidden_size, hparams.model_embedding_size)
        enc.relu = nn.ReLU()
        enc.device = torch.device("cpu")
        try:
            enc.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ModelError(f"the speaker encoder weights {path} do not fit the encoder: {exc}") from None
        enc.eval()
        return enc

    @property
    def encoder(self):
        with self._lock:
            if self._encoder is None:
                self._encoder = self._load()
            return self._encoder

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        # deferred: see _load
        from resemblyzer.audio import normalize_volume
        from resemblyzer.hparams import audio_norm_target_dBFS

        wav = np.asarray(audio, dtype=np.float32).reshape(-1)
        if wav.size == 0 or not np.any(wav):
            return np.zeros(256, np.float32)
        wav = normalize_volume(wav, audio_norm_target_dBFS, increase_only=True).astype(np.float32)
        return np.asarray(self.encoder.embed_utterance(wav), dtype=np.float32)


_shared: ResemblyzerEmbedder | None = None
_shared_lock = threading.Lock()


def default_embedder() -> ResemblyzerEmbedder:
    """One encoder for the whole process (every stream's diarizer shares it; it is loaded on first use)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = ResemblyzerEmbedder()
        return _shared
