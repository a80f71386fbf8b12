"""Online speaker diarization within one input: a speaker embedding per utterance, clustered incrementally.

One :class:`OnlineDiarizer` serves one input stream (a device channel or a file). Each utterance the segmenter cuts
is embedded with Resemblyzer's packaged voice encoder (a 256-d, L2-normalised d-vector; the weights ship inside the
``resemblyzer`` package, so nothing is downloaded) and compared by cosine similarity with the running centroid of
every speaker found so far on that stream:

* the best speaker is joined when its similarity is at least ``cfg.threshold`` (its centroid then moves towards the
  utterance: the centroid is the normalised duration-weighted sum of its members' embeddings);
* otherwise a new speaker is opened while fewer than ``cfg.max_speakers`` exist, else the nearest one is joined;
* an utterance shorter than ``cfg.min_seconds`` carries too little voice for a reliable embedding: it joins the nearest
  speaker without moving that speaker's centroid (and opens the first speaker when there is none yet, with the
  utterance as a provisional centroid that the first long-enough utterance of that speaker replaces).

Labels are letters in order of first appearance, ``A``, ``B``, ... ``Z``, then ``AA``, ``AB``, ... (the config allows
up to 64 speakers). A label never changes or gets renumbered during a session: clustering only ever adds speakers.
Everything is deterministic: the same utterances in the same order give the same labels.

Naming rule (:func:`speaker_name`): the final speaker name of an utterance is built from the stream's base name and
the diarized label.

* base name = the user's name for that stream (``--speaker 0=Teacher`` -> ``Teacher``), else the stream's default
  name (what the pipeline shows without diarization, e.g. ``S1``);
* with diarization on, the name is ``<base>/<label>``: ``Teacher/A``, ``Teacher/B``, ``S1/A``;
* with diarization off (``label`` empty or None) it is just ``<base>``.

So names given per stream stay per stream, and two streams never share a diarized speaker: ``Mic/A`` and ``Line/A``
are different people.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Protocol

import numpy as np

from emomon.config import DiarizationConfig
from emomon.errors import ModelError

logger = logging.getLogger("emomon")

SAMPLE_RATE = 16_000


class Embedder(Protocol):
    def __call__(self, audio: np.ndarray) -> np.ndarray: ...


def speaker_label(index: int) -> str:
    """0 -> 'A', 25 -> 'Z', 26 -> 'AA', 27 -> 'AB', ... (spreadsheet-column style)."""
    if index < 0:
        raise ValueError("speaker index must be >= 0")
    out = ""
    n = index + 1
    while n:
        n, r = divmod(n - 1, 26)
        out = chr(ord("A") + r) + out
    return out


def speaker_name(base: str, label: str | None) -> str:
    """The final speaker name: ``base`` ('Teacher' from ``--speaker 0=Teacher``, else the stream's default name)
    joined with the diarized ``label`` as ``Teacher/A``; just ``base`` when diarization gave no label."""
    return f"{base}/{label}" if label else base


# ------------------------------------------------------------------------------------------------------ embedder
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
            import torch
            from torch import nn
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


# ----------------------------------------------------------------------------------------------------- clustering
def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64).reshape(-1)
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


class _Speaker:
    __slots__ = ("label", "total", "weight", "count")

    def __init__(self, label: str, emb: np.ndarray, weight: float):
        self.label = label
        self.total = emb * weight  # duration-weighted sum of unit embeddings; 0 weight = provisional
        self.weight = weight
        self.count = 1

    @property
    def centroid(self) -> np.ndarray:
        return _unit(self.total)


class OnlineDiarizer:
    """Incremental speaker clustering for one input stream (see the module docstring for the rules).

    ``embedder`` maps 16 kHz float32 audio to an embedding vector; default: the shared Resemblyzer encoder, loaded
    on the first :meth:`assign`. Not thread-safe: call it from the one thread that handles this stream.
    """

    def __init__(self, cfg: DiarizationConfig | None = None,
                 embedder: Embedder | None = None):
        self.cfg = cfg or DiarizationConfig()
        self._embedder = embedder
        self.speakers: list[_Speaker] = []
        #: Cosine similarity of the last utterance to the speaker it joined (None for a new speaker), for logs/tests.
        self.last_similarity: float | None = None

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = default_embedder()
        return self._embedder

    @property
    def labels(self) -> list[str]:
        return [s.label for s in self.speakers]

    def similarities(self, emb: np.ndarray) -> np.ndarray:
        """Cosine similarity of a (unit) embedding to every speaker's centroid, in label order."""
        if not self.speakers:
            return np.zeros(0)
        return np.array([float(np.dot(_unit(emb), s.centroid)) for s in self.speakers])

    def assign(self, audio: np.ndarray, duration: float | None = None) -> str:
        """The speaker label of one utterance (``duration``: its voiced length in seconds; default: the audio's)."""
        if duration is None:
            duration = len(audio) / SAMPLE_RATE
        emb = _unit(self.embedder(audio))
        return self.assign_embedding(emb, duration)

    def assign_embedding(self, emb: np.ndarray, duration: float) -> str:
        emb = _unit(emb)
        short = duration < self.cfg.min_seconds
        weight = 0.0 if short else max(float(duration), 1e-3)
        if not self.speakers:
            return self._open(emb, weight)
        sims = self.similarities(emb)
        best = int(np.argmax(sims))  # first maximum: deterministic on ties
        self.last_similarity = float(sims[best])
        if short:
            self.speakers[best].count += 1
            return self.speakers[best].label
        if sims[best] >= self.cfg.threshold or len(self.speakers) >= self.cfg.max_speakers:
            self._join(self.speakers[best], emb, weight)
            return self.speakers[best].label
        return self._open(emb, weight)

    def _open(self, emb: np.ndarray, weight: float) -> str:
        spk = _Speaker(speaker_label(len(self.speakers)), emb, weight)
        if weight == 0.0:
            spk.total = emb.copy()  # provisional centroid from a short first utterance
        self.speakers.append(spk)
        self.last_similarity = None
        return spk.label

    @staticmethod
    def _join(spk: _Speaker, emb: np.ndarray, weight: float) -> None:
        if spk.weight == 0.0:  # only a provisional centroid so far: the first real utterance replaces it
            spk.total = emb * weight
        else:
            spk.total = spk.total + emb * weight
        spk.weight += weight
        spk.count += 1

    def reset(self) -> None:
        self.speakers.clear()
        self.last_similarity = None
