"""How a full-speed replay reads its speakers: whole-recording baselines from a first pass, and speed test-time
augmentation; live sessions and paced replays read as live."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import requires_espeak, run_emomon
from emomon.models.speaker_baseline import (
    SessionBaseline,
    SpeakerBaselineOptions,
    shrunk_mean,
)

from emomon.config import load_config


def _options(dim=4, weight=2.0):
    return SpeakerBaselineOptions(np.zeros(dim, np.float32), weight)


def test_session_baseline_reads_first_and_last_utterance_against_the_whole_mean():
    rng = np.random.default_rng(0)
    base = SessionBaseline(_options())
    utterances = [rng.normal(3.0, 1.0, (10, 4)).astype(np.float32) for _ in range(6)]
    for u in utterances:
        base.add("A", u)
    whole = np.sum([u.mean(0) for u in utterances], 0)
    want = -shrunk_mean(whole, 6, base.options)
    first, last = base.normalise("A", utterances[0]), base.normalise("A", utterances[-1])
    np.testing.assert_allclose(first - utterances[0], np.broadcast_to(want, first.shape), atol=1e-5)
    np.testing.assert_allclose(last - utterances[-1], np.broadcast_to(want, last.shape), atol=1e-5)
    assert base.utterances("A") == 6  # judging changes nothing it holds
    # a speaker the first pass never heard is judged on their own utterance and the prior, and is not kept
    x = np.full((5, 4), 2.0, np.float32)
    np.testing.assert_allclose(base.normalise("B", x), x - 2.0 / 3.0, atol=1e-6)
    assert base.speakers == ["A"] and base.normalise("A", np.zeros((0, 4), np.float32)).shape == (0, 4)


@requires_espeak
def test_speed_views_are_averaged_and_each_speed_keeps_its_own_baseline(speech_factory, random_checkpoint):
    from emomon.models.inference import EmotionRecognizer

    from emomon.audio.decode import load_audio

    rec = EmotionRecognizer(str(random_checkpoint), device="cpu")
    with pytest.raises(ValueError):
        rec.read_at_speeds((3.0,))
    rec.read_at_speeds((0.9, 1.1))
    assert rec.speeds == (1.0, 0.9, 1.1)
    audio = load_audio(speech_factory("I can't believe you did this to me."))
    views = rec.speech_views([{}], [audio], ["A"])
    lengths = [int(v.lengths[0]) for v in views]
    assert lengths[1] > lengths[0] > lengths[2]  # slower speech, more frames
    assert all(rec.baseline_at(f).utterances("A") == 1 for f in rec.speeds)
    text = rec.encode_text(["I can't believe you did this to me."])
    fused = rec.predict_frames(text, views)[0]
    each = [rec.predict_frames(text, v)[0] for v in views]
    for c in rec.classes:
        assert fused.probs[c] == pytest.approx(np.mean([p.probs[c] for p in each]), abs=1e-5)
    assert len({round(p.probs["angry"], 6) for p in each}) > 1  # the speeds really differ


def _session(random_checkpoint, path, *, realtime=False, diarize=False, **replay):
    from emomon.monitor.pipeline import Session
    from emomon.monitor.sources import FileSource

    cfg = load_config("default")
    cfg = dataclasses.replace(cfg, runtime=dataclasses.replace(cfg.runtime, model=str(random_checkpoint)),
                              replay=dataclasses.replace(cfg.replay, **replay),
                              diarization=dataclasses.replace(cfg.diarization, enabled=diarize))
    return Session(cfg, [FileSource(path, 0, realtime=realtime)], live=False)


@requires_espeak
def test_first_pass_hears_every_utterance_under_the_names_the_second_pass_gives(tmp_path, speech_factory, random_checkpoint):
    from emomon.training.data.synth import write_wav
    from emomon.monitor.pipeline import step_names_of
    from emomon.monitor.sinks import CsvSink
    from emomon.monitor.sources import FileSource

    from emomon.audio.decode import load_audio

    gap = np.zeros(16000, np.float32)
    parts = [load_audio(speech_factory(t, voice=v, pitch=p)) for t, v, p in (
        ("Please open the window before the meeting starts.", "en-us", 50),
        ("I really do not want to go there again.", "en-gb+f3", 80),
        ("The museum opens early on Sundays.", "en-us", 50),
        ("That is wonderful news, well done.", "en-gb+f3", 80))]
    path = write_wav(tmp_path / "two.wav", np.concatenate([x for p in parts for x in (gap, p)] + [gap]))
    session = _session(random_checkpoint, path, diarize=True, tta_speeds=(0.95, 1.05))  # as --best reads
    assert session.whole_recording
    session.load()
    session.prepare_replay([FileSource(path, 0)])  # the replay command's first pass, on sources of its own
    rec = session.worker.recognizer
    assert isinstance(rec.baselines, SessionBaseline) and rec.speeds == (1.0, 0.95, 1.05)
    out = tmp_path / "r.csv"
    session.sinks.append(CsvSink(out, session.session_id, session.cfg.classes, step_names_of(session.cfg.model)))
    session.start()
    session.wait()
    import csv

    with open(out, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["utterance"]]
    assert len(rows) == 4
    heard = {r["speaker"]: sum(1 for x in rows if x["speaker"] == r["speaker"]) for r in rows}
    for factor in rec.speeds:  # every speed's first pass: the same speakers, every utterance once
        b = rec.baseline_at(factor)
        assert {s: b.utterances(s) for s in b.speakers} == heard
    assert session.stats.first_pass_seconds > 0 and "whole-recording" in session.reading


@requires_espeak
def test_paced_replays_and_as_live_read_as_live(tmp_path, speech_factory, random_checkpoint):
    path = speech_factory("Please open the window before the meeting starts.")
    assert not _session(random_checkpoint, path, realtime=True).whole_recording
    r = run_emomon("replay", str(path), "--model", str(random_checkpoint), "--as-live", "--csv", str(tmp_path / "a.csv"))
    assert r.returncode == 0, r.stderr
    assert "read with running speaker baseline, one speed" in r.stderr
    r = run_emomon("replay", str(path), "--model", str(random_checkpoint), "--csv", str(tmp_path / "b.csv"))
    assert r.returncode == 0, r.stderr
    assert "read with whole-recording speaker baselines, one speed" in r.stderr  # the default (docs/MODEL_CARD.md's rule)
    r = run_emomon("replay", str(path), "--model", str(random_checkpoint), "--best", "--csv", str(tmp_path / "c.csv"))
    assert r.returncode == 0, r.stderr
    assert "read with whole-recording speaker baselines, speeds 0.95x/1x/1.05x averaged" in r.stderr
    preset = tmp_path / "speeds.toml"  # a preset can choose its own speeds for the default reading
    preset.write_text('extends = "default"\n[replay]\ntta_speeds = [0.9, 1.1]\n')
    r = run_emomon("replay", str(path), "--model", str(random_checkpoint), "--config", str(preset), "--csv", str(tmp_path / "d.csv"))
    assert r.returncode == 0, r.stderr
    assert "read with whole-recording speaker baselines, speeds 0.9x/1x/1.1x averaged" in r.stderr
    r = run_emomon("replay", str(path), "--as-live", "--best", "--csv", str(tmp_path / "e.csv"))
    assert r.returncode == 2 and "--as-live and --best" in r.stderr and not (tmp_path / "e.csv").exists()


@requires_espeak
def test_the_second_pass_encodes_nothing_the_first_pass_kept(tmp_path, speech_factory, random_checkpoint):
    """The first pass keeps each utterance's encodings (every speed, and the final layer the decoder reads), so the
    second pass runs no speech encoder at all; with no room to keep anything, it encodes every utterance again."""
    from emomon.monitor.sources import FileSource

    path = speech_factory("Please open the window before the meeting starts. I really do not want to go there again.")
    for keep_mb, encodes_again in ((128.0, False), (0.0, True)):
        session = _session(random_checkpoint, path, tta_speeds=(0.95, 1.05), keep_mb=keep_mb)
        session.load()
        session.prepare_replay([FileSource(path, 0)])
        whisper = session.worker.asr_encoder.whisper
        calls = []
        original = whisper.hidden_states
        whisper.hidden_states = lambda audios: calls.append(len(audios)) or original(audios)
        session.start()
        session.wait()
        assert session.stats.utterances >= 1
        assert bool(calls) is encodes_again, (keep_mb, calls)
