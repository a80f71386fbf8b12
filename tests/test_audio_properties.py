"""Property tests of the audio-normalisation step (hypothesis): whatever numbers arrive -- random and extreme arrays,
NaN, +-inf, 1e30, subnormals, empty, integer types, any channel count -- the result is finite float32 within [-1, 1]
of the right shape, or one InputError line. Never NaN, never a numpy RuntimeWarning, never another exception.

The last properties go through real files: float WAVs holding such values, decoded by ``load_audio``/``stream_audio``.
"""

from __future__ import annotations

import struct
import warnings

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, example, given, settings, strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

from emomon.audio.samples import CLIP_LIMIT, SampleLevel, downmix, normalise_samples  # noqa: E402
from emomon.errors import InputError  # noqa: E402

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FILES = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

FLOAT_TYPES = [np.float16, np.float32, np.float64]
INT_TYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]
TINY = np.finfo(np.float32).tiny


def _elements(dtype):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        # every float of the type: NaN, +-inf, subnormals, the largest finite values
        return st.floats(width=8 * dtype.itemsize, allow_nan=True, allow_infinity=True, allow_subnormal=True)
    return None  # hypothesis draws the whole integer range by default


@st.composite
def sample_arrays(draw):
    """1-D (samples) or 2-D (channels, samples) arrays of any numeric type, including empty ones and 0..70 channels."""
    dtype = draw(st.sampled_from(FLOAT_TYPES + INT_TYPES))
    if draw(st.booleans()):
        shape = (draw(st.integers(0, 40)),)
    else:
        shape = (draw(st.integers(0, 70)), draw(st.integers(0, 12)))
    fill = None
    if np.dtype(dtype).kind == "f":
        fill = draw(st.sampled_from([st.nothing(), st.just(np.nan), st.just(np.inf), st.just(-np.inf), st.just(0.0),
                                     st.just(float(np.finfo(dtype).max)), st.just(float(np.finfo(dtype).smallest_subnormal))]))
    return draw(hnp.arrays(dtype, shape, elements=_elements(dtype), fill=fill))


def _check_safe(out: np.ndarray, shape) -> None:
    assert out.dtype == np.float32
    assert out.shape == tuple(shape)
    assert np.isfinite(out).all()
    assert (np.abs(out) <= 1.0).all()
    assert not ((out != 0) & (np.abs(out) < TINY)).any(), "subnormal samples left in"


def _one_line(exc: InputError) -> None:
    text = str(exc)
    assert text and "\n" not in text


@FAST
@given(sample_arrays())
@example(np.full(5, np.nan, np.float32))
@example(np.array([np.inf, -np.inf], np.float64))
@example(np.array([1e30, -1e30, 3e29], np.float32))
@example(np.array([1e300, -1e-300, np.nan], np.float64))
@example(np.array([1e-40, -1e-45, 1e-39], np.float32))
@example(np.zeros((0,), np.float32))
@example(np.zeros((9, 0), np.int16))
@example(np.array([[-32768, 32767]], np.int16))
@example(np.array([0, 255, 128], np.uint8))
@example(np.array([np.iinfo(np.int64).min, np.iinfo(np.int64).max], np.int64))
@example(np.full((64, 3), 6.5e4, np.float16))
def test_normalised_samples_are_finite_float32_within_full_scale(x):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a numpy RuntimeWarning (overflow, invalid value) fails the test
        try:
            out = normalise_samples(x)
        except InputError as exc:
            _one_line(exc)
            # the one refusal for numbers: samples present, but not one of them finite
            assert x.size and x.dtype.kind == "f" and not np.isfinite(x).any()
            return
    _check_safe(out, x.shape)


@FAST
@given(hnp.arrays(np.float64, st.integers(1, 60), elements=st.floats(-1.0, 1.0, allow_subnormal=False)))
def test_audio_already_in_range_passes_unchanged(x):
    """Normal audio is not rescaled: the normaliser only ever acts on what is broken."""
    x = np.where(np.abs(x) < TINY, 0.0, x)
    np.testing.assert_array_equal(normalise_samples(x.astype(np.float32)), x.astype(np.float32))


@FAST
@given(hnp.arrays(np.float64, st.integers(2, 60), elements=st.floats(-1.0, 1.0, allow_subnormal=False)),
       st.floats(CLIP_LIMIT * 1.01, 1e300))
def test_a_wildly_out_of_scale_recording_is_divided_by_its_peak_not_clipped(x, scale):
    """1e30-scaled audio keeps its waveform (a square wave at +-1 would be all that clipping leaves)."""
    x = np.where(np.abs(x) < 1e-6, 0.0, x)
    peak = np.abs(x).max()
    if peak == 0:
        return
    x = x / peak  # peak 1, so x * scale peaks at scale, beyond the clip limit
    out = normalise_samples(x * scale)
    np.testing.assert_allclose(out, x, rtol=1e-5, atol=1e-6)
    assert np.abs(out).max() == pytest.approx(1.0)


@FAST
@given(hnp.arrays(np.float64, st.integers(1, 60), elements=st.floats(-CLIP_LIMIT, CLIP_LIMIT, allow_subnormal=False)))
def test_overs_up_to_the_clip_limit_are_clipped_and_the_rest_is_kept(x):
    out = normalise_samples(x)
    inside = np.abs(x) <= 1.0
    np.testing.assert_allclose(out[inside], np.where(np.abs(x[inside]) < TINY, 0.0, x[inside]).astype(np.float32), rtol=1e-7)
    assert (np.abs(out[~inside]) == 1.0).all()


@FAST
@given(hnp.arrays(np.int16, st.integers(1, 60)))
def test_integers_are_pcm_scaled_by_their_full_scale(x):
    np.testing.assert_array_equal(normalise_samples(x), (x / 32768.0).astype(np.float32))


@FAST
@given(sample_arrays(), st.integers(1, 7))
def test_block_by_block_the_level_stays_safe(x, blocks):
    """A stream read block by block (sticky level, no peak known in advance) is just as safe, whatever the blocks."""
    level = SampleLevel()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for block in np.array_split(x, blocks, axis=-1) if x.size else [x]:
            _check_safe(level(block), block.shape)


@FAST
@given(hnp.arrays(np.float64, st.integers(2, 80), elements=st.floats(-1.0, 1.0, allow_subnormal=False)),
       st.floats(CLIP_LIMIT * 1.01, 1e300), st.integers(1, 6))
def test_block_by_block_a_wrongly_scaled_stream_is_divided_from_its_first_loud_block_on(x, scale, blocks):
    x = np.where(np.abs(x) < 1e-6, 0.0, x)
    x[0] = 1.0  # the stream's peak is in its first block
    level = SampleLevel()
    out = np.concatenate([level(b) for b in np.array_split(x * scale, blocks)])
    np.testing.assert_allclose(out, x, rtol=1e-5, atol=1e-6)


@FAST
@given(sample_arrays().filter(lambda a: a.ndim == 2))
def test_any_channel_count_downmixes_to_one_safe_row(x):
    try:
        y = normalise_samples(x)
    except InputError:
        return
    if x.shape[0] == 0:
        with pytest.raises(InputError):
            downmix(y)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mono = downmix(y)
    _check_safe(mono, (x.shape[1],))
    np.testing.assert_allclose(mono, np.where(np.abs(y.mean(0, dtype=np.float64)) < TINY, 0, y.mean(0, dtype=np.float64)), atol=1e-6)


@FAST
@given(hnp.arrays(st.sampled_from([np.bool_, np.complex64, np.dtype("U3"), np.dtype("datetime64[s]")]), st.integers(0, 5)))
def test_arrays_that_are_not_numbers_are_one_input_error(x):
    with pytest.raises(InputError) as err:
        normalise_samples(x)
    _one_line(err.value)


# ---------------------------------------------------------------------------------------------------- through real files
def float_wav(path, data: np.ndarray, sr: int = 16000, bits: int = 32):
    """A WAVE_FORMAT_IEEE_FLOAT file of ``data`` (samples, channels), written by hand so any value goes in."""
    data = data.reshape(len(data), -1)
    raw = data.astype("<f4" if bits == 32 else "<f8").tobytes()
    align = data.shape[1] * bits // 8
    header = (b"RIFF" + struct.pack("<I", 36 + len(raw)) + b"WAVEfmt "
              + struct.pack("<IHHIIHH", 16, 3, data.shape[1], sr, sr * align, align, bits) + b"data" + struct.pack("<I", len(raw)))
    path.write_bytes(header + raw)
    return path


@FILES
@given(st.integers(1, 12), st.sampled_from([16000, 22050, 44100]), st.sampled_from([32, 64]), st.data())
@example(1, 16000, 32, None)
def test_float_wav_files_of_any_values_decode_safe(tmp_path_factory, channels, rate, bits, data):
    from emomon.audio.decode import load_audio, stream_audio

    n = 800
    if data is None:  # the file: 1e30 samples
        x = np.full((n, channels), 1e30) * np.sin(np.arange(n) / 7.0)[:, None]
    else:
        x = data.draw(hnp.arrays(np.float64, (n, channels), elements=st.floats(width=bits, allow_subnormal=True),
                                 fill=st.sampled_from([np.nan, np.inf, 1e30, -1e30, 0.0, 0.5, 1e-42])))
    path = float_wav(tmp_path_factory.mktemp("wav") / "f.wav", x, rate, bits)
    finite = np.isfinite(x.astype(np.float32 if bits == 32 else np.float64))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        try:
            audio = load_audio(path)
        except InputError as exc:
            _one_line(exc)
            assert not finite.any() and "NaN or infinite" in str(exc)
            return
        expected = round(n * 16000 / rate)
        _check_safe(audio, audio.shape)
        assert abs(len(audio) - expected) <= 2
        chunks = list(stream_audio(path, chunk_seconds=0.01, channels="split" if channels <= 8 else "mono"))
    for c in chunks:
        _check_safe(c, c.shape)
