"""Speech from text with espeak-ng: flat-voice renderings for training, and real audio for tests and samples."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import wave
import zlib
from pathlib import Path

import numpy as np

from emomon.audio.decode import load_audio
from emomon.errors import InputError

#: Voices that exist in every espeak-ng install. '+variant' suffixes change timbre and pitch range on 'en' and
#: 'en-us' (espeak-ng 1.51 ignores them after 'en-gb').
VOICES = ("en-us", "en-gb", "en-us+m3", "en-us+f2", "en+f3", "en-gb-x-rp", "en+m2", "en-029", "en+f4", "en-gb-x-gbclan")


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def speak(text: str, voice: str = "en-us", rate: int = 165, pitch: int = 50, gap_ms: int = 0) -> np.ndarray:
    """``text`` read by espeak-ng, as 16 kHz mono float32."""
    if not espeak_available():
        raise InputError("espeak-ng is not installed (apt install espeak-ng)")
    with tempfile.TemporaryDirectory() as d:
        wav = Path(d) / "speech.wav"
        cmd = ["espeak-ng", "-v", voice, "-s", str(rate), "-p", str(pitch), "-w", str(wav)]
        if gap_ms:
            cmd += ["-g", str(max(1, gap_ms // 10))]
        proc = subprocess.run(cmd + ["--", text], capture_output=True, timeout=60)
        if proc.returncode != 0 or not wav.exists():
            raise InputError(f"espeak-ng failed: {proc.stderr.decode(errors='replace').strip()[:200]}")
        return load_audio(wav)


def varied_voice(seed_key: str) -> tuple[str, int, int]:
    """The (voice, rate, pitch) :func:`speak_varied` uses for ``seed_key``."""
    rng = np.random.default_rng(zlib.crc32(seed_key.encode()))
    return str(rng.choice(VOICES)), int(rng.integers(140, 190)), int(rng.integers(35, 66))


def speak_varied(text: str, seed_key: str) -> np.ndarray:
    """``text`` with a voice, rate and pitch picked deterministically from ``seed_key``."""
    voice, rate, pitch = varied_voice(seed_key)
    return speak(text, voice=voice, rate=rate, pitch=pitch)


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int = 16_000, channels: int = 1) -> Path:
    """16-bit PCM WAV (``audio`` is (samples,) or (samples, channels)), with the standard library only."""
    data = np.asarray(audio, dtype=np.float32)
    pcm = (np.clip(data, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels if data.ndim == 1 else data.shape[1])
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())
    return Path(path)
