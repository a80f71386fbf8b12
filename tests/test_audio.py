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


# ---------------------------------------------------------------------------------------------------- issue 31: levels, channels, streams
def float_wav(path, data, sr=16000, bits=32):
    """A float WAV (format tag 3) of ``data`` (samples[, channels]) written by hand, so any value goes in."""
    import struct

    data = np.asarray(data).reshape(len(data), -1)
    raw = data.astype("<f4" if bits == 32 else "<f8").tobytes()
    align = data.shape[1] * bits // 8
    header = (b"RIFF" + struct.pack("<I", 36 + len(raw)) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 3, data.shape[1], sr, sr * align, align, bits)
              + b"data" + struct.pack("<I", len(raw)))
    path.write_bytes(header + raw)
    return path


requires_sox = pytest.mark.skipif(subprocess.run(["which", "sox"], capture_output=True).returncode != 0, reason="sox missing")


def test_a_float_wav_far_beyond_full_scale_is_scaled_down_not_clipped(tmp_path, caplog):
    """1e30 samples: the waveform is kept (divided by its peak), not a square wave of +-1, and nothing is NaN."""
    clean = tone(1.0)
    p = float_wav(tmp_path / "huge.wav", clean * 1e30)
    with caplog.at_level("WARNING", logger="emomon"):
        a = load_audio(p)
    assert np.isfinite(a).all() and np.abs(a).max() <= 1.0
    np.testing.assert_allclose(a, clean / np.abs(clean).max(), atol=1e-5)
    assert np.mean(np.abs(a) > 0.999) < 0.1  # clipping would put nearly every sample on the rails
    assert "far beyond full scale" in caplog.text
    # float64 beyond float32's range, in several channels at another rate
    d = load_audio(float_wav(tmp_path / "d.wav", np.stack([tone(1.0, 22050)] * 3, 1).astype(np.float64) * 1e300, sr=22050, bits=64))
    assert np.isfinite(d).all() and 0.9 < np.abs(d).max() <= 1.0 and abs(len(d) - 16000) <= 2


def test_slight_overs_are_clipped_and_the_rest_kept(tmp_path):
    x = tone(0.5) * 5  # peak 1.5: within the clip limit
    a = load_audio(float_wav(tmp_path / "hot.wav", x))
    assert np.abs(a).max() == 1.0
    inside = np.abs(x) <= 1.0
    np.testing.assert_allclose(a[inside], x[inside], atol=1e-6)


def test_a_float_wav_with_no_finite_sample_is_refused_before_decoding(tmp_path):
    from emomon.audio.decode import probe_audio

    p = float_wav(tmp_path / "nan.wav", np.where(np.arange(8000) % 2, np.nan, np.inf))
    for read in (probe_audio, load_audio):
        with pytest.raises(InputError) as err:
            read(p)
        assert "every sample is NaN or infinite" in str(err.value) and str(p) in str(err.value) and "\n" not in str(err.value)


@requires_sox
@pytest.mark.parametrize("n", [9, 12, 32, 64])
def test_any_channel_count_is_mixed_to_mono(tmp_path, n):
    p = tmp_path / f"c{n}.wav"
    subprocess.run(["sox", "-n", "-r", "44100", "-c", str(n), str(p), "synth", "1", "sine", "440"], check=True)
    a = load_audio(p)
    assert a.dtype == np.float32 and abs(len(a) - 16000) <= 2 and np.isfinite(a).all()
    assert 0.5 < np.abs(a).max() <= 1.0  # every channel holds the same sine: the mix is that sine
    assert channel_count(p) == n


@requires_sox
def test_split_keeps_its_limit_of_eight_channels(tmp_path):
    from emomon.audio.decode import probe_audio

    p = tmp_path / "nine.wav"
    subprocess.run(["sox", "-n", "-r", "16000", "-c", "9", str(p), "synth", "1", "sine", "440"], check=True)
    for read in (lambda: probe_audio(p, split=True), lambda: list(stream_audio(p, channels="split"))):
        with pytest.raises(InputError, match="9 channels; at most 8 can be split"):
            read()
    assert probe_audio(p) == 9  # read mixed, it is fine


def test_split_keeps_each_channel_apart(tmp_path):
    x = np.stack([tone(1.0, 48000, 300), np.zeros(48000, np.float32), -tone(1.0, 48000, 300)], 1)
    p = write_wav(tmp_path / "three.wav", x, sample_rate=48000)
    rows = np.concatenate(list(stream_audio(p, channels="split", chunk_seconds=0.3)), axis=1)
    assert rows.shape[0] == 3 and abs(rows.shape[1] - 16000) <= 2
    assert np.abs(rows[0]).max() > 0.25 and np.abs(rows[1]).max() < 1e-3
    np.testing.assert_allclose(rows[0], -rows[2], atol=1e-3)
    assert np.abs(load_audio(p)).max() < 1e-3  # mixed, the two opposite channels cancel


def test_resampling_overshoot_stays_within_full_scale(tmp_path):
    """A full-scale square wave rings past +-1 when resampled; the output is clipped back."""
    square = np.sign(np.sin(2 * np.pi * 1000 * np.arange(44100) / 44100)).astype(np.float32)
    a = load_audio(float_wav(tmp_path / "square.wav", square, sr=44100))
    assert np.abs(a).max() <= 1.0 and np.isfinite(a).all()


def _streams_file(path, streams, sr=16000):
    """A Matroska file with one mono 16-bit audio stream per array of ``streams``."""
    import av

    with av.open(str(path), "w", format="matroska") as c:
        outs = []
        for _ in streams:
            s = c.add_stream("pcm_s16le", rate=sr)
            s.layout = "mono"
            outs.append(s)
        for s, audio in zip(outs, streams):
            frame = av.AudioFrame.from_ndarray((np.clip(audio, -1, 1) * 32767).astype(np.int16)[None], format="s16", layout="mono")
            frame.sample_rate = sr
            for packet in [*s.encode(frame), *s.encode(None)]:
                c.mux(packet)
    return path


def test_the_first_audio_stream_with_sound_is_read_and_the_others_named(tmp_path, caplog):
    from emomon.audio.decode import choose_stream
    from emomon.errors import ConfigError

    silent, sound = np.zeros(16000, np.float32), tone(1.0)
    second = _streams_file(tmp_path / "second.mka", [silent, sound, silent])
    with caplog.at_level("WARNING", logger="emomon"):
        a = load_audio(second)
        load_audio(second)  # chosen once per file: said once
    assert np.abs(a).max() > 0.25
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "reading stream 1" in said[0] and "ignoring streams 0 (silent), 2 (silent)" in said[0], said
    # --audio-stream N reads the one asked for
    assert np.abs(np.concatenate(list(stream_audio(second, audio_stream=0)))).max() == 0
    with pytest.raises(ConfigError, match="audio-stream 3: .* has audio streams 0-2"):
        list(stream_audio(second, audio_stream=3))
    # both with sound: the first, in file order
    both = _streams_file(tmp_path / "both.mka", [tone(1.0, freq=200), sound])
    assert choose_stream(both).index == 0 and choose_stream(both).count == 2
    # one stream: no survey, no line
    caplog.clear()
    with caplog.at_level("WARNING", logger="emomon"):
        load_audio(_streams_file(tmp_path / "one.mka", [sound]))
    assert not caplog.records
