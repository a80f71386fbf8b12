"""Faults during a session: signals, kill -9, a device that disappears and returns, a model slower than real time,
and no network access at run time."""

from __future__ import annotations

import csv
import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from emomon.config import load_config
from emomon.training.data.synth import write_wav

from conftest import requires_espeak, run_emomon

SR = 16000
SENTENCES = ["Good morning everyone.", "Please sit down now.", "Open your books at page ten.", "Thank you for listening."]


@pytest.fixture(scope="module")
def talk(tmp_path_factory, speech_factory):
    """~20 s: four sentences with pauses (as a wav), and the raw audio."""
    from emomon.audio.decode import load_audio

    parts = [np.zeros(SR // 2, np.float32)]
    for text in SENTENCES:
        parts += [load_audio(speech_factory(text)), np.zeros(SR, np.float32)]
    audio = np.concatenate(parts)
    return write_wav(tmp_path_factory.mktemp("talk") / "talk.wav", audio), audio


def rows_of(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _start(args, **kw):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, "-m", "emomon", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **kw)


def _wait_rows(path: Path, n: int, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            got = [r for r in rows_of(path) if r["utterance"]]
            if len(got) >= n:
                return len(got)
        time.sleep(0.1)
    raise AssertionError(f"fewer than {n} rows after {timeout} s")


@requires_espeak
@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_stop_cleanly(tmp_path, talk, random_checkpoint, sig, code):
    path, audio = talk
    long = write_wav(tmp_path / "long.wav", np.tile(audio, 3))
    out = tmp_path / "s.csv"
    proc = _start(["replay", str(long), "--realtime", "--model", str(random_checkpoint), "--csv", str(out)])
    before = _wait_rows(out, 2)
    t0 = time.monotonic()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - t0 < 2.5 and proc.returncode == code, err
    rows = rows_of(out)
    assert len([r for r in rows if r["utterance"]]) >= before
    assert rows[-1]["asr_note"] == "event" and signal.Signals(sig).name in rows[-1]["transcript"]
    assert "Traceback" not in err


@requires_espeak
def test_kill_9_leaves_a_csv_that_parses_and_reports(tmp_path, talk, random_checkpoint):
    path, audio = talk
    long = write_wav(tmp_path / "long.wav", np.tile(audio, 6))
    out = tmp_path / "k.csv"
    proc = _start(["replay", str(long), "--model", str(random_checkpoint), "--csv", str(out)])
    n = _wait_rows(out, 3)
    proc.kill()
    proc.wait(10)
    rows = rows_of(out)  # parses
    full = [r for r in rows if r["utterance"] and r["p_surprise"] != ""]
    assert len(full) >= n and len(rows) - len(full) <= 1  # at most the row being written is incomplete
    assert all(abs(sum(float(r[f"p_{c}"]) for c in ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")) - 1) < 2e-3 for r in full)
    r = run_emomon("report", str(out))
    assert r.returncode == 0, r.stderr
    assert out.with_suffix(".html").is_file() and out.with_suffix(".png").is_file()


class _FakeDevice:
    """A fake sounddevice stream: delivers ``audio`` through the real callback; may die after ``die_after`` blocks."""

    def __init__(self, audio, callback, blocksize, die_after=None):
        self.audio, self.callback, self.blocksize, self.die_after = audio, callback, blocksize, die_after
        self.active = False
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        pos, k = 0, 0
        while self.active:
            if self.die_after is not None and k >= self.die_after:
                self.active = False  # unplugged
                return
            block = self.audio[pos : pos + self.blocksize]
            if len(block) < self.blocksize:
                block = np.zeros(self.blocksize, np.float32)
            self.callback(block[:, None].copy(), self.blocksize, None, None)
            pos += self.blocksize
            k += 1
            time.sleep(self.blocksize / SR / 4)  # 4x real time

    def __enter__(self):
        self.active = True
        self._t.start()
        return self

    def __exit__(self, *exc):
        self.active = False


def _session(random_checkpoint, **runtime):
    from emomon.monitor.pipeline import Session  # noqa: F401

    cfg = load_config("default")
    return dataclasses.replace(cfg, runtime=dataclasses.replace(cfg.runtime, model=str(random_checkpoint), **runtime))


@requires_espeak
def test_device_lost_and_back_while_others_keep_going(tmp_path, talk, random_checkpoint):
    from emomon.monitor.pipeline import Session, step_names_of
    from emomon.monitor.sinks import CsvSink
    from emomon.monitor.sources import MicSource

    _, audio = talk
    opens = {"n": 0}

    def flaky(cb, n):
        opens["n"] += 1
        if opens["n"] == 1:
            return _FakeDevice(audio, cb, n, die_after=40)  # works ~1.2 s of audio, then is pulled out
        if opens["n"] in (2, 3):
            raise OSError("device unavailable")  # still gone
        return _FakeDevice(audio, cb, n)  # plugged back in

    cfg = _session(random_checkpoint)
    steady = MicSource("steady", 0, "Teacher", chunk_ms=30, stream_factory=lambda cb, n: _FakeDevice(audio, cb, n))
    unstable = MicSource("flaky", 1, "Class", chunk_ms=30, stream_factory=flaky, retry_seconds=0.3)
    session = Session(cfg, [steady, unstable], live=True)
    out = tmp_path / "live.csv"
    session.load()
    session.sinks.append(CsvSink(out, session.session_id, cfg.classes, step_names_of(cfg.model)))
    session.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        speakers = {r.utterance.speaker for r in session.recent}
        if unstable.reopened and {"Teacher", "Class"} <= speakers and session.stats.utterances >= 6:
            break
        time.sleep(0.2)
    session.stop("test done")
    session.wait()
    rows = rows_of(out)
    events = [r["transcript"] for r in rows if r["asr_note"] == "event"]
    assert any("Class lost" in e for e in events) and any("Class (flaky) is back" in e for e in events), events
    assert {r["speaker"] for r in rows if r["utterance"]} == {"Teacher", "Class"}
    assert unstable.reopened == 1 and opens["n"] == 4


class _SlowRecognizer:
    """Wraps the real recognizer and makes every batch take ``delay`` seconds (a machine too slow for live)."""

    def __init__(self, rec, delay):
        self.rec, self.delay = rec, delay

    def __getattr__(self, name):
        return getattr(self.rec, name)

    def predict_frames(self, *args, **kwargs):
        time.sleep(self.delay)
        return self.rec.predict_frames(*args, **kwargs)


@requires_espeak
def test_slow_model_live_bounds_queues_and_counts_drops(tmp_path, talk, random_checkpoint):
    from emomon.models.inference import EmotionRecognizer
    from emomon.monitor.pipeline import Session
    from emomon.monitor.sources import MicSource

    _, audio = talk
    cfg = _session(random_checkpoint, max_pending_utterances=2, batch_size=1)
    looped = np.tile(audio, 4)
    mic = MicSource("fake", 0, "S1", chunk_ms=30, stream_factory=lambda cb, n: _FakeDevice(looped, cb, n))
    session = Session(cfg, [mic], live=True, recognizer_factory=lambda: _SlowRecognizer(EmotionRecognizer(str(random_checkpoint)), 3.0))
    session.load()
    session.start()
    depth = []
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and session.stats.dropped_utterances == 0:
        depth.append(session.queue_depth())
        time.sleep(0.1)
    session.stop("test done")
    session.wait()
    assert session.stats.dropped_utterances > 0
    assert max(depth) <= 2 + cfg.runtime.batch_size + 2  # pending utterances + worker queue stay bounded


@requires_espeak
def test_slow_model_replay_never_drops(tmp_path, talk, random_checkpoint):
    from emomon.models.inference import EmotionRecognizer
    from emomon.monitor.pipeline import Session, step_names_of
    from emomon.monitor.sinks import CsvSink
    from emomon.monitor.sources import FileSource

    path, _ = talk
    cfg = _session(random_checkpoint, batch_size=1)
    session = Session(cfg, [FileSource(path, 0)], live=False,
                      recognizer_factory=lambda: _SlowRecognizer(EmotionRecognizer(str(random_checkpoint)), 0.5))
    session.load()
    out = tmp_path / "r.csv"
    session.sinks.append(CsvSink(out, session.session_id, cfg.classes, step_names_of(cfg.model)))
    session.start()
    session.wait()
    assert session.stats.dropped_utterances == 0 and session.stats.unprocessed == 0
    assert len([r for r in rows_of(out) if r["utterance"]]) == len(SENTENCES)


GUARD = r"""
import socket, sys
log = sys.argv[1]
def refuse(*a, **k):
    with open(log, "a") as f:
        f.write(repr(a[:2]) + "\n")
    raise OSError("network access refused by the test")
socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse
from emomon.cli import main
raise SystemExit(main(sys.argv[2:]))
"""


@requires_espeak
def test_replay_needs_no_network(tmp_path, talk, random_checkpoint):
    path, _ = talk
    log = tmp_path / "attempts.log"
    out = tmp_path / "n.csv"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env.update(HF_HUB_OFFLINE="1")
    r = subprocess.run([sys.executable, "-c", GUARD, str(log), "replay", str(path), "--model", str(random_checkpoint), "--csv", str(out)],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert not log.exists(), log.read_text()
    assert len([row for row in rows_of(out) if row["utterance"]]) == len(SENTENCES)
