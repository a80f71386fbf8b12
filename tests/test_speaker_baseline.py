"""Speaker baseline normalisation: the running per-speaker mean, its training/evaluation offsets, checkpoints, runtime."""

import numpy as np
import pytest
import torch

from emomon.errors import ModelError
from emomon.models.checkpoint import load_checkpoint
from emomon.training.saving import save_checkpoint
from emomon.training.feature_bank import FeatureBank
from emomon.models.registry import build_model
from emomon.models.speaker_baseline import (
    SpeakerBaseline,
    SpeakerBaselineOptions,
    fit_population,
    random_offsets,
    session_offsets,
    stream_offsets,
)

from conftest import untrained_preset

D = 8


def options(weight=2.0, window=200):
    return SpeakerBaselineOptions(np.zeros(D, np.float32), weight, window)


def voice(rng, offset, n=20):
    return offset + rng.normal(0, 0.1, (n, D)).astype(np.float32)


def test_a_speakers_voice_is_factored_out_as_they_keep_talking():
    rng = np.random.default_rng(0)
    offset = np.full(D, 5.0, np.float32)
    sb = SpeakerBaseline(options())
    first = sb.normalise("A", voice(rng, offset))
    assert np.abs(first.mean(0)).mean() == pytest.approx(5.0 * 2 / 3, rel=0.05)  # one utterance vs a prior of 2
    for _ in range(60):
        last = sb.normalise("A", voice(rng, offset))
    assert np.abs(last.mean(0)).mean() < 0.25  # after 61 utterances the speaker's offset is mostly gone
    assert sb.utterances("A") == 61
    # another speaker starts from the prior, untouched by A
    assert np.abs(sb.normalise("B", voice(rng, -offset)).mean(0)).mean() == pytest.approx(5.0 * 2 / 3, rel=0.05)


def test_unknown_speaker_is_judged_alone_and_nothing_is_kept():
    rng = np.random.default_rng(1)
    sb = SpeakerBaseline(options())
    x = voice(rng, np.ones(D, np.float32))
    a, b = sb.normalise(None, x), sb.normalise(None, x)
    np.testing.assert_allclose(a, b)
    assert sb.utterances("None") == 0 and not sb._sums


def test_window_forgets_an_old_voice():
    rng = np.random.default_rng(2)
    sb = SpeakerBaseline(options(weight=1.0, window=10))
    for _ in range(50):
        sb.normalise("A", voice(rng, np.full(D, 3.0, np.float32)))
    for _ in range(40):  # the voice changes; within a few windows the new one is the baseline
        out = sb.normalise("A", voice(rng, np.full(D, -3.0, np.float32)))
    # the prior keeps 1/11 of the voice (0.27); without forgetting the residual would be 3.3
    assert np.abs(out.mean(0)).mean() < 0.5
    assert sb.utterances("A") == 10


def test_empty_frames_pass_through():
    sb = SpeakerBaseline(options())
    assert sb.normalise("A", np.zeros((0, D), np.float32)).shape == (0, D)
    assert sb.utterances("A") == 0


def _bank(rng):
    bank = FeatureBank()
    for s, off in (("s1", 4.0), ("s2", -4.0)):
        for i in range(30):
            k = f"{s}-{i}"
            bank.speech[k] = voice(rng, np.full(D, off, np.float32), n=10).astype(np.float16)
            bank.speaker_of[k] = s
    return bank


def test_stream_offsets_match_the_live_running_baseline():
    rng = np.random.default_rng(3)
    bank = _bank(rng)
    keys = sorted(bank.speech)
    opts = fit_population(bank, keys, 3.0)
    assert np.abs(opts.population_mean).max() < 0.1  # two opposite voices
    stream_offsets(bank, keys, opts)
    # the same keys, in the same order, through SpeakerBaseline
    import hashlib

    live = SpeakerBaseline(opts)
    for s in ("s1", "s2"):
        for k in sorted([k for k in keys if k.startswith(s)], key=lambda k: hashlib.sha1(k.encode()).hexdigest()):
            x = bank.speech[k].astype(np.float32)
            np.testing.assert_allclose(bank.speech_frames(k), live.normalise(s, x), atol=1e-4)
    # other options (another model) start afresh
    stream_offsets(bank, keys[:3], fit_population(bank, keys, 1.0))
    assert len(bank.offsets) == 3


def test_stream_offsets_in_another_order_read_each_clip_against_the_clips_before_it():
    import hashlib

    rng = np.random.default_rng(5)
    bank = _bank(rng)
    keys = sorted(bank.speech)
    opts = fit_population(bank, keys, 3.0)
    stream_offsets(bank, keys, opts, order_seed=7)
    shuffled = dict(bank.offsets)
    # the same permutation, replayed through SpeakerBaseline
    order = np.random.default_rng(7)
    live = SpeakerBaseline(opts)
    for s in ("s1", "s2"):
        group = sorted([k for k in keys if k.startswith(s)], key=lambda k: hashlib.sha1(k.encode()).hexdigest())
        for k in [group[i] for i in order.permutation(len(group))]:
            x = bank.speech[k].astype(np.float32)
            np.testing.assert_allclose(bank.speech_frames(k), live.normalise(s, x), atol=1e-4)
    bank.offsets.clear()
    stream_offsets(bank, keys, opts)  # the fixed order: a clip heard at another point gets another offset
    assert any(not np.allclose(shuffled[k], bank.offsets[k], atol=1e-4) for k in keys)


def test_session_offsets_use_each_speakers_whole_mean():
    rng = np.random.default_rng(4)
    bank = _bank(rng)
    keys = sorted(bank.speech)
    opts = fit_population(bank, keys, 3.0)
    session_offsets(bank, keys, opts)
    for s in ("s1", "s2"):
        mine = [k for k in keys if k.startswith(s)]
        whole = np.mean([bank.utterance_mean(k) for k in mine], 0)
        want = opts.population_mean - (30 * whole + 3.0 * opts.population_mean) / 33.0
        for k in mine:  # every clip of a speaker, first or last, gets the same offset
            np.testing.assert_allclose(bank.offsets[k], want, atol=1e-5)
    assert np.abs(bank.speech_frames("s1-0").mean(0)).max() < 0.5  # the voice is factored out from the first clip


def test_random_offsets_span_first_to_late_utterances():
    rng = np.random.default_rng(4)
    bank = _bank(rng)
    keys = sorted(bank.speech)
    opts = fit_population(bank, keys, 2.0)
    sizes = []
    for seed in range(20):
        random_offsets(bank, ["s1-0"], keys, opts, np.random.default_rng(seed))
        # offset = population - shrunk mean; for s1 (voice +4) its size tells how many clips went in
        sizes.append(float(-bank.offsets["s1-0"].mean()))
    assert min(sizes) < 2.9 and max(sizes) > 3.6  # 1 clip: 4*1/3 ... 30 clips: 4*30/32
    assert all(0 < s < 4.05 for s in sizes)


def test_checkpoint_keeps_the_baseline_and_refuses_to_lose_it(tmp_path):
    import dataclasses
    import json

    cfg = untrained_preset()
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, speaker_baseline=4.0, layers=1))
    torch.manual_seed(0)
    model = build_model(cfg, 384, 384, 7)
    model.speaker_baseline = SpeakerBaselineOptions(np.arange(384, dtype=np.float32) / 100, 4.0, 50)
    path = save_checkpoint(tmp_path / "ck", model, cfg, {"text": "t", "speech": "s"})
    got = load_checkpoint(path).model.speaker_baseline
    np.testing.assert_allclose(got.population_mean, model.speaker_baseline.population_mean)
    assert (got.prior_weight, got.window) == (4.0, 50)
    doc = json.loads((path / "config.json").read_text())
    del doc["speaker_baseline"]
    (path / "config.json").write_text(json.dumps(doc))
    with pytest.raises(ModelError, match="speaker_baseline"):
        load_checkpoint(path)
    doc["speaker_baseline"] = {"population_mean": [0.0] * 3, "prior_weight": 4.0}
    (path / "config.json").write_text(json.dumps(doc))
    with pytest.raises(ModelError, match="malformed"):
        load_checkpoint(path)


def test_recognizer_keeps_a_baseline_per_named_speaker(tmp_path):
    import dataclasses

    from emomon.models.inference import EmotionRecognizer

    cfg = untrained_preset()
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, speaker_baseline=2.0, layers=1))
    model = build_model(cfg, 384, 384, 7)
    model.speaker_baseline = SpeakerBaselineOptions(np.zeros(384, np.float32), 2.0)
    rec = EmotionRecognizer(load_checkpoint(save_checkpoint(tmp_path / "ck", model, cfg, {"text": "t", "speech": "s"})), device="cpu")
    frames = [np.ones((5, 384), np.float32), np.ones((5, 384), np.float32)]
    a = rec.normalise_speakers(frames, ["A", "A"])
    assert rec.baselines.utterances("A") == 2
    assert np.abs(a[1]).mean() < np.abs(a[0]).mean()  # the second utterance is judged against a firmer baseline
    rec.normalise_speakers(frames, [None, None])
    assert rec.baselines.utterances("None") == 0
