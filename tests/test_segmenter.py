"""The VAD segmenter on real (espeak-ng) speech: boundaries, chunking, silence and clicks, long speech, stream end
and gaps, padding and wall times, utterance numbering."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from emomon.audio.decode import load_audio
from emomon.config import SegmenterConfig
from emomon.records import SAMPLE_RATE as SR
from emomon.records import AudioChunk, Utterance
from emomon.audio.segmenter import Segmenter

TOL = 0.050  # seconds: allowed error of an utterance boundary
WALL0 = 1_700_000_000.0
SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Please call Stella and ask her to bring these things.",
    "It is raining again this morning.",
    "She sells sea shells by the sea shore.",
    "We will meet at the station at noon.",
    "How much wood would a woodchuck chuck?",
    "The museum opens early on Sundays.",
    "My brother plays the piano every evening.",
    "Turn left at the second traffic light.",
    "The soup is too hot to eat right now.",
)


def speech_bounds(audio: np.ndarray) -> tuple[int, int]:
    """First and last sample of the 10 ms windows whose RMS is above 0.01: the true extent of a clip's speech."""
    n = len(audio) // 160
    loud = np.flatnonzero(np.sqrt(np.mean(audio[: n * 160].reshape(n, 160) ** 2, axis=1)) > 0.01)
    return int(loud[0]) * 160, (int(loud[-1]) + 1) * 160


def compose(parts: list, noise: float = 0.0, seed: int = 0) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Concatenate speech clips and silences (floats, in seconds); returns the signal and each clip's true span."""
    pieces, truth, pos = [], [], 0
    for part in parts:
        if isinstance(part, float):
            part = np.zeros(round(part * SR), np.float32)
        else:
            lo, hi = speech_bounds(part)
            truth.append((pos + lo, pos + hi))
        pieces.append(part)
        pos += len(part)
    x = np.concatenate(pieces).astype(np.float32)
    if noise:
        x += np.random.default_rng(seed).normal(0.0, noise, len(x)).astype(np.float32)
    return x, truth


def feed(seg: Segmenter, x: np.ndarray, sizes, start: int = 0, flush: bool = True) -> list[Utterance]:
    """Push ``x`` in chunks of the given sizes (cycled); chunk k's wall_time is its position plus k ms of jitter."""
    out, pos = [], 0
    for k, size in enumerate(itertools.cycle(sizes)):
        if pos >= len(x):
            break
        chunk = AudioChunk(0, x[pos : pos + size], start + pos, WALL0 + (start + pos) / SR + k / 1000)
        out += seg.push(chunk)
        pos += size
    return out + (seg.flush() if flush else [])


def segment(x: np.ndarray, cfg: SegmenterConfig | None = None, sizes=(1600,)) -> list[Utterance]:
    return feed(Segmenter(cfg or SegmenterConfig(), 0, "A", itertools.count().__next__), x, sizes)


def assert_near(utts: list[Utterance], truth: list[tuple[int, int]]) -> None:
    assert len(utts) == len(truth), [(u.start, u.end) for u in utts]
    for u, (lo, hi) in zip(utts, truth):
        assert u.start == pytest.approx(lo / SR, abs=TOL) and u.end == pytest.approx(hi / SR, abs=TOL)


@pytest.fixture(scope="module")
def clips(speech_factory) -> list[np.ndarray]:
    return [load_audio(speech_factory(text)) for text in SENTENCES]


@pytest.fixture(scope="module")
def two(clips):
    """1.0 s silence + speech A + 1.2 s silence + speech B + 0.8 s silence, with faint white noise."""
    return compose([1.0, clips[0], 1.2, clips[1], 0.8], noise=0.002)


@pytest.mark.parametrize("noise", [0.0, 0.002])
def test_boundaries_match_the_speech(clips, noise):
    for a, b in [(0, 1), (2, 3), (4, 5)]:
        x, truth = compose([1.0, clips[a], 1.2, clips[b], 0.8], noise=noise, seed=a)
        utts = segment(x)
        assert_near(utts, truth)
        assert not any(u.cut for u in utts)


def test_chunking_does_not_matter(two):
    x, truth = two
    rng = np.random.default_rng(1)
    runs = [segment(x, sizes=sizes) for sizes in [(160,), (1600,), (16000,), tuple(rng.integers(1, 6000, 50))]]
    assert_near(runs[0], truth)
    for utts in runs[1:]:
        assert [(u.index, u.start, u.end, u.cut) for u in utts] == [(u.index, u.start, u.end, u.cut) for u in runs[0]]
        assert all(np.array_equal(u.audio, v.audio) for u, v in zip(utts, runs[0]))


def test_silence_noise_and_clicks_give_nothing(clips):
    rng = np.random.default_rng(2)
    assert segment(np.zeros(3 * SR, np.float32)) == []
    assert segment(rng.normal(0.0, 0.002, 3 * SR).astype(np.float32)) == []
    lo, hi = speech_bounds(clips[0])
    mid = (lo + hi) // 2
    for burst in [clips[0][mid : mid + SR // 10], rng.normal(0.0, 0.3, SR // 10).astype(np.float32)]:
        x, _ = compose([1.0, burst, 1.0], noise=0.002)
        assert segment(x) == []


def test_long_speech_is_cut_at_quiet_points(clips):
    cfg = SegmenterConfig(max_utterance_s=8.0)
    parts: list = [1.0]
    for clip in clips:
        lo, hi = speech_bounds(clip)
        parts += [clip[lo:hi], 0.15]
    x, truth = compose(parts[:-1] + [1.0], noise=0.002)
    assert 20 * SR < truth[-1][1] - truth[0][0] < 30 * SR

    seg = Segmenter(cfg, 0, "A", itertools.count().__next__)
    held_max = SR * (cfg.max_utterance_s + (cfg.pre_roll_ms + cfg.start_window_ms + 2 * cfg.frame_ms) / 1000)
    utts = []
    for pos in range(0, len(x), 1600):
        utts += seg.push(AudioChunk(0, x[pos : pos + 1600], pos, WALL0 + pos / SR))
        assert sum(len(f.samples) for f in seg._frames) <= held_max  # the audio held stays bounded
    utts += seg.flush()

    assert len(utts) >= 3
    assert [u.cut for u in utts] == [True] * (len(utts) - 1) + [False]
    assert all(u.duration <= cfg.max_utterance_s for u in utts)
    assert utts[0].start == pytest.approx(truth[0][0] / SR, abs=TOL)
    assert utts[-1].end == pytest.approx(truth[-1][1] / SR, abs=TOL)
    for u, v in zip(utts, utts[1:]):
        assert u.end == v.start  # contiguous: each piece goes on where the last was cut
    assert utts[0].audio_start == pytest.approx(utts[0].start - cfg.pre_roll_ms / 1000)
    assert [u.audio_start for u in utts[1:]] == [u.end for u in utts[:-1]]
    audio_from = round(utts[0].audio_start * SR)
    joined = np.concatenate([u.audio for u in utts])
    assert np.array_equal(joined, x[audio_from : audio_from + len(joined)])  # ... and so does the audio

    speech = np.concatenate([x[lo:hi] for lo, hi in truth])
    n = len(speech) // 480
    typical = np.median(np.sqrt(np.mean(speech[: n * 480].reshape(n, 480) ** 2, axis=1)))
    for u in utts[:-1]:
        cut = round(u.end * SR)
        assert np.sqrt(np.mean(x[cut - 240 : cut + 240] ** 2)) < 0.1 * typical  # a pause, not the middle of a word


def test_flush_and_gaps_close_open_utterances(clips):
    lo, hi = speech_bounds(clips[0])
    x, truth = compose([1.0, clips[0][:hi], 0.1])  # the stream ends before the hangover
    seg = Segmenter(SegmenterConfig(), 0, "A", itertools.count().__next__)
    assert feed(seg, x, (1600,), flush=False) == []
    utts = seg.flush()
    assert_near(utts, truth)
    assert seg.flush() == []

    # Speech, then 1 s of audio lost, then more speech: the first closes at the gap; times stay absolute.
    y, truth_b = compose([0.5, clips[1], 1.0])
    seg = Segmenter(SegmenterConfig(), 0, "A", itertools.count().__next__)
    assert feed(seg, x[: truth[0][1] + 800], (1600,), flush=False) == []
    resume = truth[0][1] + 800 + SR
    gap = seg.push(AudioChunk(0, y[:1600], resume, WALL0 + 10.0, dropped_before=SR))
    assert_near(gap, truth)
    after = feed(seg, y[1600:], (1600,), start=resume + 1600)
    assert_near(after, [(resume + lo, resume + hi) for lo, hi in truth_b])


def test_audio_padding_and_wall_times(two):
    x, truth = two
    offset = 7 * SR  # the stream starts 7 s into the session
    for pre_roll, tail in [(300, 150), (0, 0), (500, 250)]:
        cfg = SegmenterConfig(pre_roll_ms=pre_roll, tail_ms=tail)
        utts = feed(Segmenter(cfg, 0, "A", itertools.count().__next__), x, (1000, 2200), start=offset)
        assert_near(utts, [(offset + lo, offset + hi) for lo, hi in truth])
        for u in utts:
            voiced = round((u.end - u.start) * SR)
            assert abs(len(u.audio) - (voiced + SR * (pre_roll + tail) // 1000)) <= SR * cfg.frame_ms // 1000
            assert u.audio_start == pytest.approx(u.start - pre_roll / 1000)
            a0 = round(u.audio_start * SR) - offset
            assert np.array_equal(u.audio, x[a0 : a0 + len(u.audio)])

    # Chunk k starts at sample (k // 2) * 3200 + (k % 2) * 1000 and its wall_time carries k ms of jitter.
    for u in utts:
        for at, wall in [(u.start, u.wall_start), (u.end, u.wall_end)]:
            pos = round(at * SR) - offset
            k = 2 * (pos // 3200) + (pos % 3200 >= 1000)
            chunk_start = (k // 2) * 3200 + (k % 2) * 1000
            chunk_wall = WALL0 + (offset + chunk_start) / SR + k / 1000
            assert wall == pytest.approx(chunk_wall + (pos - chunk_start) / SR, abs=1e-6)


def test_indices_come_from_a_shared_counter(two, clips):
    counter = itertools.count()
    x0, _ = two
    x1, _ = compose([0.3, clips[2], 1.0])
    segs = [Segmenter(SegmenterConfig(), s, f"spk{s}", counter.__next__, clock=lambda: 42.0) for s in (0, 1)]
    utts = []
    for pos in range(0, max(len(x0), len(x1)), 1600):
        for s, x in zip(segs, (x0, x1)):
            if pos < len(x):
                utts += s.push(AudioChunk(s.stream, x[pos : pos + 1600], pos, WALL0 + pos / SR))
    utts += segs[0].flush() + segs[1].flush()
    assert [u.index for u in utts] == list(range(3))
    assert sorted((u.stream, u.speaker) for u in utts) == [(0, "spk0"), (0, "spk0"), (1, "spk1")]
    assert all(u.closed_at == 42.0 for u in utts)


def test_a_clip_is_cut_as_the_monitor_would_hand_it_over(two):
    from emomon.audio.segmenter import cut_like_monitor

    x, truth = two  # 1.0 s silence, speech, 1.2 s pause, speech, 0.8 s silence
    cfg = SegmenterConfig()
    got = cut_like_monitor(x, cfg)
    # one piece from the first words (less the pre-roll) to the last (plus the tail): the pause stays, the margins go
    want = (truth[1][1] - truth[0][0]) / SR + cfg.pre_roll_ms / 1000 + cfg.tail_ms / 1000
    assert len(got) / SR == pytest.approx(want, abs=0.08)
    assert len(got) < len(x) - 1.2 * SR
    silent = np.zeros(SR, np.float32)
    assert np.array_equal(cut_like_monitor(silent, cfg), silent)  # nothing heard: the clip stays whole
