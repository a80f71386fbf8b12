"""Sample values from outside made safe: any array of samples -> finite float32 within [-1, 1], and channel downmix.

Every path that brings audio into emomon (file decoding, microphones) passes its samples through
:class:`SampleLevel` (or :func:`normalise_samples` for a whole array), so no model ever sees NaN, inf, a value beyond
full scale or a subnormal float. The rules, in order:

* **Integers** are PCM: signed types are scaled by their full scale (int16: /32768), unsigned ones are offset binary
  (uint8: 128 is silence). Floats are read as they are (in float64, or wider, so 1e300 does not overflow to inf).
  Anything else (bool, complex, text, objects) is not audio: a one-line :class:`~emomon.errors.InputError`.
* **Non-finite samples** (NaN, +-inf) become 0: they are glitches (a bad block in a float file), and silence is the
  honest stand-in for a sample that holds no value. A recording in which *no* sample is finite holds no audio at all
  and is refused with an ``InputError`` (:func:`normalise_samples`; the file decoder says so for a whole file).
* **Level**: a peak up to :data:`CLIP_LIMIT` (2x full scale) is clipped to +-1 -- that is what every player and
  converter does with overs, and lossy decoders overshoot +-1 a little on loud masters, which is no reason to change
  a recording's loudness. A peak beyond it means the file is at the wrong scale altogether (a float WAV written with
  int16 values, or 1e30): clipping that would turn every sample into +-1, a square wave with nothing left of the
  speech, so the recording is instead *scaled down* by its peak (divided by it), which keeps its waveform intact.
* **Subnormal results** (below float32's smallest normal number, far below anything audible) become 0: subnormal
  floats slow CPU arithmetic down by orders of magnitude.

The module is numpy only (no PyAV, no torch), so live inputs and the property tests use it cheaply.
"""

from __future__ import annotations

import numpy as np

from emomon.errors import InputError

#: Peaks up to this many times full scale are clipped; a recording peaking beyond it is divided by its peak.
CLIP_LIMIT = 2.0

_TINY = float(np.finfo(np.float32).tiny)


def as_float(samples) -> np.ndarray:
    """Samples as floats (float64, or the input's own wider float type), PCM integers scaled to +-1; same shape.

    Raises :class:`InputError` for arrays that do not hold numbers (bool, complex, text, objects).
    """
    x = np.asarray(samples)
    kind = x.dtype.kind
    if kind == "f":
        return x.astype(np.result_type(x.dtype, np.float64), copy=False)
    if kind in "iu":
        half = 2.0 ** (8 * x.dtype.itemsize - 1)
        y = x.astype(np.float64)
        return (y - half if kind == "u" else y) / half
    raise InputError(f"audio samples must be numbers, not {x.dtype} values")


def finite_peak(x: np.ndarray) -> float:
    """Largest absolute finite value of ``x`` (0.0 for an empty or all non-finite array)."""
    if not x.size:
        return 0.0
    a = np.abs(x)
    if x.dtype.kind == "f":
        a = a[np.isfinite(a)]
    return float(a.max()) if a.size else 0.0


class SampleLevel:
    """The level one recording (or one live input) is read at, applied block by block.

    ``peak`` is the recording's peak when it is known in advance (a whole array, or a float PCM file surveyed before
    decoding): then every block gets the same treatment, whatever order they come in. Without it (a stream decoded
    as it goes, a microphone) the divisor is *sticky*: it starts at 1 and grows to a block's peak when that block goes
    beyond :data:`CLIP_LIMIT`, so a wrongly scaled stream is read at a sane level from its first loud block on and
    the blocks before it were clipped at most 2x. ``finite`` says whether any finite sample has been seen so far.
    """

    def __init__(self, peak: float | None = None):
        self.fixed = peak is not None
        self.divisor = float(peak) if peak is not None and peak > CLIP_LIMIT else 1.0
        self.finite = False

    def __call__(self, samples) -> np.ndarray:
        """``samples`` (any shape, any numeric dtype) as finite float32 within [-1, 1], same shape."""
        x = as_float(samples)
        if not x.size:
            return np.zeros(x.shape, np.float32)
        ok = np.isfinite(x)
        if ok.all():
            self.finite = True
        else:
            if ok.any():
                self.finite = True
            x = np.where(ok, x, 0.0)
        if not self.fixed:
            peak = float(np.abs(x).max())
            if peak > CLIP_LIMIT and peak > self.divisor:
                self.divisor = peak
        if self.divisor != 1.0:
            x = x / x.dtype.type(self.divisor)
        return _flushed(np.clip(x, -1.0, 1.0).astype(np.float32))


def normalise_samples(samples, *, what: str = "the audio") -> np.ndarray:
    """A whole recording's samples (any shape, any numeric dtype) as finite float32 within [-1, 1], same shape.

    The rules are the module's: non-finite samples become 0, integers are PCM, a peak up to 2x full scale is clipped
    and one beyond it divides the whole array. An array with samples but not one finite sample is an
    :class:`InputError` naming ``what``; an empty array comes back empty.
    """
    x = as_float(samples)
    level = SampleLevel(peak=finite_peak(x))
    out = level(x)
    if x.size and not level.finite:
        raise InputError(f"{what} holds no audio: every sample is NaN or infinite")
    return out


def downmix(samples: np.ndarray) -> np.ndarray:
    """(channels, samples) normalised audio -> (samples,) mono float32, the mean of the channels (any count).

    A 1-D array is already mono and comes back as float32. Means of values within [-1, 1] stay within it.
    """
    x = np.asarray(samples)
    if x.ndim == 1:
        return x.astype(np.float32, copy=False)
    if x.ndim != 2:
        raise InputError(f"audio must be (channels, samples), not an array of shape {x.shape}")
    if x.shape[0] == 0:
        raise InputError("the audio has no channels")
    if x.shape[0] == 1:
        return x[0].astype(np.float32)
    return _flushed(np.clip(x.mean(axis=0, dtype=np.float64), -1.0, 1.0).astype(np.float32))


def _flushed(out: np.ndarray) -> np.ndarray:
    """``out`` (float32) with its subnormal values set to 0, in place."""
    out[np.abs(out) < _TINY] = 0.0
    return out
