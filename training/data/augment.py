"""Waveform augmentation for training copies: speed, reverberation, band limiting, noise and gain.

Each augmented copy of a clip is a random chain drawn from a seed derived from the clip and the copy number, so the
feature cache stays valid across runs. The chain imitates what real sessions do to speech: room echo (laptop
microphones), background noise (classrooms, fans, other voices), call codecs (telephone band) and levels.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from emomon.audio.speed import speed

SAMPLE_RATE = 16_000


@dataclass(frozen=True)
class AugmentSettings:
    p_speed: float = 0.5
    speed_range: tuple[float, float] = (0.9, 1.1)
    p_reverb: float = 0.4
    rt60_range: tuple[float, float] = (0.15, 0.7)
    p_band: float = 0.2
    p_noise: float = 0.7
    snr_db_range: tuple[float, float] = (5.0, 25.0)
    gain_db_range: tuple[float, float] = (-12.0, 6.0)


def seed_for(key: str, copy: int) -> int:
    return int.from_bytes(hashlib.sha1(f"{key}#{copy}".encode()).digest()[:8], "little")


def synthetic_rir(rng: np.random.Generator, rt60: float) -> np.ndarray:
    """Exponentially decaying noise tail after a direct path: a simple, reproducible room impulse response."""
    n = int(rt60 * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)  # -60 dB at rt60
    pre_delay = int(rng.uniform(0.002, 0.02) * SAMPLE_RATE)
    rir = np.zeros(n + pre_delay, dtype=np.float64)
    rir[0] = 1.0
    rir[pre_delay:] += tail * rng.uniform(0.2, 0.6)
    return (rir / np.sqrt((rir**2).sum())).astype(np.float32)


def convolve(audio: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    n = len(audio) + len(kernel) - 1
    size = 1 << (n - 1).bit_length()
    out = np.fft.irfft(np.fft.rfft(audio, size) * np.fft.rfft(kernel, size), size)[: len(audio)]
    return out.astype(np.float32)


def band_limit(audio: np.ndarray, low: float = 300.0, high: float = 3400.0) -> np.ndarray:
    """Telephone band (300-3400 Hz) by zeroing FFT bins, with short ramps to avoid ringing."""
    spec = np.fft.rfft(audio)
    freqs = np.fft.rfftfreq(len(audio), 1 / SAMPLE_RATE)
    gain = np.clip((freqs - low * 0.8) / (low * 0.2), 0, 1) * np.clip((high * 1.1 - freqs) / (high * 0.1), 0, 1)
    return np.fft.irfft(spec * gain, len(audio)).astype(np.float32)


def colored_noise(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """1/f^exponent noise: 0 white, 1 pink, 2 brown."""
    spec = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    f = np.fft.rfftfreq(n)
    f[0] = f[1] if n > 1 else 1.0
    noise = np.fft.irfft(spec / f ** (exponent / 2), n)
    return (noise / (noise.std() + 1e-9)).astype(np.float32)


def add_noise(audio: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    p_sig = float(np.mean(audio**2)) + 1e-10
    p_noise = float(np.mean(noise**2)) + 1e-10
    return (audio + noise * np.sqrt(p_sig / (p_noise * 10 ** (snr_db / 10)))).astype(np.float32)


def augment(audio: np.ndarray, seed: int, settings: AugmentSettings = AugmentSettings(), babble: np.ndarray | None = None) -> np.ndarray:
    """One random augmentation chain; ``babble`` (other speech) is used as the noise source half the time."""
    rng = np.random.default_rng(seed)
    s = settings
    x = np.asarray(audio, dtype=np.float32)
    if rng.random() < s.p_speed:
        x = speed(x, rng.uniform(*s.speed_range))
    if rng.random() < s.p_reverb:
        x = convolve(x, synthetic_rir(rng, rng.uniform(*s.rt60_range)))
    if rng.random() < s.p_band:
        x = band_limit(x)
    if rng.random() < s.p_noise:
        if babble is not None and len(babble) > 0 and rng.random() < 0.5:
            reps = int(np.ceil(len(x) / len(babble)))
            start = rng.integers(0, len(babble))
            noise = np.roll(np.tile(babble, reps), -start)[: len(x)]
        else:
            noise = colored_noise(rng, len(x), float(rng.choice([0.0, 1.0, 2.0])))
        x = add_noise(x, noise, rng.uniform(*s.snr_db_range))
    x = x * 10 ** (rng.uniform(*s.gain_db_range) / 20)
    peak = float(np.abs(x).max()) if len(x) else 0.0
    if peak > 0.99:  # keep clipping out of it: a clipped clip sounds angrier than it is
        x = x * (0.99 / peak)
    return x.astype(np.float32)
