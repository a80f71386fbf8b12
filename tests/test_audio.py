"""Decoding files: formats, resampling, channels, spans, and one clear error per kind of bad file."""

import subprocess

import numpy as np
import pytest

from emomon.audio.decode import channel_count, load_audio, stream_audio
from emomon.errors import InputError
from emomon.training.data.synth import write_wav


def tone(seconds=1.0, sr=16000, freq=440.0):
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_resamples_and_downmixes(tmp_path):
    p = write_wav(tmp_path / "a.wav", np.stack([tone(2.0, 44100), tone(2.0, 44100, 220)], 1), sample_rate=44100)
    a = load_audio(p)
    assert a.dtype == np.float32 and abs(len(a) - 32000) <= 160
    assert channel_count(p) == 2
    chunks = list(stream_audio(p, channels="split", chunk_seconds=0.5))
    assert all(c.shape[0] == 2 for c in chunks) and sum(c.shape[1] for c in chunks) == pytest.approx(32000, abs=160)


def test_span_and_chunks(tmp_path):
    p = write_wav(tmp_path / "a.wav", tone(3.0))
    assert len(load_audio(p, start=1.0, end=2.0)) == 16000
    chunks = list(stream_audio(p, chunk_seconds=1.0))
    assert [len(c) for c in chunks] == [16000, 16000, 16000]


@pytest.mark.skipif(subprocess.run(["which", "sox"], capture_output=True).returncode != 0, reason="sox missing")
def test_other_formats(tmp_path):
    src = write_wav(tmp_path / "a.wav", tone(1.0))
    for ext in ("flac", "ogg"):
        out = tmp_path / f"a.{ext}"
        subprocess.run(["sox", str(src), str(out)], check=True)
        assert abs(len(load_audio(out)) - 16000) < 400


@pytest.mark.parametrize("kind", ["missing", "directory", "empty", "text", "truncated-header"])
def test_bad_files_are_one_input_error(tmp_path, kind):
    p = tmp_path / "bad.wav"
    if kind == "directory":
        p.mkdir()
    elif kind == "empty":
        p.write_bytes(b"")
    elif kind == "text":
        p.write_text("this is not audio at all\n" * 20)
    elif kind == "truncated-header":
        good = write_wav(tmp_path / "good.wav", tone(1.0)).read_bytes()
        p.write_bytes(good[:30])
    with pytest.raises(InputError) as err:
        load_audio(p)
    assert str(p) in str(err.value) and "\n" not in str(err.value)


def test_non_finite_samples_become_zero(tmp_path):

    data = tone(0.5)
    data[100:200] = np.nan
    data[300] = np.inf
    p = tmp_path / "f.wav"
    # 32-bit float WAV written by hand (format tag 3)
    import struct

    raw = data.astype("<f4").tobytes()
    header = b"RIFF" + struct.pack("<I", 36 + len(raw)) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 3, 1, 16000, 64000, 4, 32) + b"data" + struct.pack("<I", len(raw))
    p.write_bytes(header + raw)
    a = load_audio(p)
    assert np.isfinite(a).all() and len(a) == len(data)
