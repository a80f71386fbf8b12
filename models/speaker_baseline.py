"""Speaker baseline normalisation: each utterance's speech frames are read relative to its speaker's usual voice.

Why: most of what a speech encoder's frames carry is who is speaking and through which microphone, not how they
feel. A listener judges "angry" against how this person usually sounds; so does the model. For every speaker the
monitor keeps the running mean of their utterances' mean frame (the utterance being judged included), shrunk toward
the training population's mean with the weight of ``prior_weight`` pseudo-utterances, and each frame becomes

    x' = x - baseline(speaker) + population_mean

so a speaker heard once is barely changed, and after a dozen utterances their own voice and channel are factored out.
On RAVDESS (actors 19-24 unseen) a linear probe on pooled Whisper tiny.en frames goes from 0.744 to 0.797 accuracy
with this causal estimate (0.828 with each actor's whole mean; ``python bench/speaker_probe.py``). Long sessions forget slowly: past ``window``
utterances the mean becomes an exponential moving average, so a voice that changes over an hour is followed.

Training draws the baseline from a random subset of the speaker's clips (the clip itself included), so the model
sees the estimates of a speaker's 1st utterance as well as of their 50th; evaluation streams each speaker's clips in
a fixed order, exactly as the live monitor does.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from emomon.errors import ModelError


@dataclass(frozen=True)
class SpeakerBaselineOptions:
    """Stored in a checkpoint: the population mean utterance frame and the prior's weight (0 = off)."""

    population_mean: np.ndarray
    prior_weight: float
    window: int = 200

    def to_dict(self) -> dict:
        return {"population_mean": self.population_mean.tolist(), "prior_weight": self.prior_weight, "window": self.window}

    @staticmethod
    def from_dict(d: dict, dim: int) -> "SpeakerBaselineOptions":
        try:
            mean = np.asarray(d["population_mean"], dtype=np.float32)
            weight, window = float(d["prior_weight"]), int(d.get("window", 200))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"checkpoint speaker baseline is malformed ({exc})") from None
        if mean.shape != (dim,) or not np.isfinite(mean).all() or not weight > 0 or window < 1:
            raise ModelError(f"checkpoint speaker baseline is malformed (mean of shape {mean.shape}, expected ({dim},); weight {weight})")
        return SpeakerBaselineOptions(mean, weight, window)


def shrunk_mean(total: np.ndarray, n: float, options: SpeakerBaselineOptions) -> np.ndarray:
    """The baseline from the sum of a speaker's ``n`` utterance means: their mean pulled toward the population's."""
    return (total + options.prior_weight * options.population_mean) / (n + options.prior_weight)


@dataclass
class SpeakerBaseline:
    """Running per-speaker baselines for one session. Not thread-safe: owned by the inference worker."""

    options: SpeakerBaselineOptions
    _sums: dict[str, np.ndarray] = field(default_factory=dict)
    _counts: dict[str, float] = field(default_factory=dict)

    def normalise(self, speaker: str | None, frames: np.ndarray) -> np.ndarray:
        """``frames`` (time, dim) relative to the speaker's baseline, which this utterance then joins.

        ``speaker=None`` is a stranger: the utterance is judged against itself and the prior only, and nothing is kept.
        """
        frames = np.asarray(frames, dtype=np.float32)
        if frames.shape[0] == 0:
            return frames
        o = self.options
        m = frames.mean(0)
        s = self._sums.get(speaker, 0.0) + m if speaker is not None else m
        n = self._counts.get(speaker, 0.0) + 1 if speaker is not None else 1.0
        if n > o.window:  # exponential forgetting past the window
            s, n = s * (o.window / n), float(o.window)
        if speaker is not None:
            self._sums[speaker], self._counts[speaker] = s, n
        return frames - shrunk_mean(s, n, o) + o.population_mean

    def utterances(self, speaker: str) -> float:
        return self._counts.get(speaker, 0.0)


@dataclass
class SessionBaseline:
    """Per-speaker baselines from a **whole** recording, fixed before the first utterance is judged.

    A replay has every utterance before it reports any, so each speaker can be read against the mean of all their
    utterances (shrunk toward the population like the running estimate) instead of only those heard so far: their
    first utterance is then judged as well as their last. A first pass :meth:`add` s every utterance; afterwards
    :meth:`normalise` changes nothing it holds. A speaker the first pass did not hear is judged as a stranger.
    """

    options: SpeakerBaselineOptions
    _sums: dict[str, np.ndarray] = field(default_factory=dict)
    _counts: dict[str, float] = field(default_factory=dict)

    def add(self, speaker: str, frames: np.ndarray) -> None:
        frames = np.asarray(frames, dtype=np.float32)
        if frames.shape[0] == 0:
            return
        self.add_mean(speaker, frames.mean(0))

    def add_mean(self, speaker: str, mean: np.ndarray) -> None:
        self._sums[speaker] = self._sums.get(speaker, 0.0) + np.asarray(mean, dtype=np.float32)
        self._counts[speaker] = self._counts.get(speaker, 0.0) + 1

    def offset(self, speaker: str | None, frames_mean: np.ndarray) -> np.ndarray:
        """What is added to every frame of an utterance (its mean frame given) by :meth:`normalise`."""
        o = self.options
        if speaker in self._sums:
            return o.population_mean - shrunk_mean(self._sums[speaker], self._counts[speaker], o)
        return o.population_mean - shrunk_mean(frames_mean, 1.0, o)

    def normalise(self, speaker: str | None, frames: np.ndarray) -> np.ndarray:
        frames = np.asarray(frames, dtype=np.float32)
        if frames.shape[0] == 0:
            return frames
        return frames + self.offset(speaker, frames.mean(0))

    @property
    def speakers(self) -> list[str]:
        return list(self._sums)

    def utterances(self, speaker: str) -> float:
        return self._counts.get(speaker, 0.0)


# ------------------------------------------------------------------------------------------- training / evaluation
def fit_population(bank, keys, prior_weight: float, window: int = 200) -> SpeakerBaselineOptions:
    """Options from the training speech keys of a :class:`~emomon.training.feature_bank.FeatureBank`: the mean of their
    utterance means (each speaker's clips weigh by count, as they will in the running mean)."""
    keys = sorted(set(keys))
    if not keys:
        raise ModelError("speaker baseline: no training speech to estimate the population mean from")
    mean = np.mean([bank.utterance_mean(k) for k in keys], axis=0).astype(np.float32)
    return SpeakerBaselineOptions(mean, float(prior_weight), window)


def _by_speaker(bank, keys) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for k in keys:
        groups.setdefault(bank.speaker_of.get(k, f"key:{k}"), []).append(k)
    return groups


def _claim(bank, options: SpeakerBaselineOptions) -> None:
    if bank.offsets_owner is not options:
        bank.offsets.clear()
        bank.offsets_owner = options


def stream_offsets(bank, keys, options: SpeakerBaselineOptions, order_seed: int | None = None, by_key: bool = True) -> None:
    """Offsets for evaluation: each speaker's keys streamed through a running baseline, as the live monitor would hear
    them. The order is fixed (by key, so the same for every run and machine; ``by_key=False``: as ``keys`` lists
    them) or, with ``order_seed``, a random permutation of that: a clip's offset depends on which clips came before
    it, so an accuracy read this way is one draw over orders (``bench/stream_order.py`` measures the spread). Keys
    that already have an offset from these options are left alone."""
    _claim(bank, options)
    todo = [k for k in dict.fromkeys(keys) if k and k not in bank.offsets]
    rng = np.random.default_rng(order_seed) if order_seed is not None else None
    for speaker, group in _by_speaker(bank, todo).items():
        if by_key:
            group.sort(key=lambda k: hashlib.sha1(k.encode()).hexdigest())
        if rng is not None:
            group = [group[i] for i in rng.permutation(len(group))]
        running = SpeakerBaseline(options)
        for k in group:
            m = bank.utterance_mean(k)
            # normalise() on the mean frame alone gives the same baseline as on all frames (the mean is what it keeps)
            bank.offsets[k] = running.normalise(speaker, m[None])[0] - m


def session_offsets(bank, keys, options: SpeakerBaselineOptions) -> None:
    """Offsets from each speaker's mean over **all** their ``keys`` (shrunk like the running one): what a replay of a
    whole recording uses instead of the causal stream (:class:`SessionBaseline`; ``bench/inference_variants.py``)."""
    _claim(bank, options)
    session = SessionBaseline(options)
    groups = _by_speaker(bank, keys)
    for speaker, group in groups.items():
        for k in group:
            session.add_mean(speaker, bank.utterance_mean(k))
    for speaker, group in groups.items():
        for k in group:
            bank.offsets[k] = session.offset(speaker, bank.utterance_mean(k))


def random_offsets(bank, keys, pool_keys, options: SpeakerBaselineOptions, rng: np.random.Generator) -> None:
    """Offsets for training: each key's baseline from itself plus a random number (0 .. all) of its speaker's other
    clips in ``pool_keys``, so every stage of a session - first utterance to fiftieth - is seen."""
    _claim(bank, options)
    pools = _by_speaker(bank, pool_keys)
    for k in dict.fromkeys(keys):
        if not k:
            continue
        pool = pools.get(bank.speaker_of.get(k, f"key:{k}"), [])
        others = [o for o in pool if o != k]
        n = int(rng.integers(0, min(len(others), options.window - 1) + 1)) if others else 0
        picked = [others[i] for i in rng.choice(len(others), n, replace=False)] if n else []
        stack = np.stack([bank.utterance_mean(k)] + [bank.utterance_mean(o) for o in picked])
        bank.offsets[k] = options.population_mean - shrunk_mean(stack.sum(0), len(stack), options)
