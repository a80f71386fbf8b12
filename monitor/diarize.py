"""Online speaker diarization within one input: a speaker embedding per utterance, clustered incrementally.

One :class:`OnlineDiarizer` serves one input stream (a device channel or a file). Each utterance the segmenter cuts
is embedded with Resemblyzer's packaged voice encoder (``emomon.models.speaker_embedding``) (a 256-d, L2-normalised d-vector; the weights ship inside the
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
from typing import Protocol

import numpy as np

from emomon.config import DiarizationConfig
from emomon.models.speaker_embedding import default_embedder

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
