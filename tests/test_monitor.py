"""The streaming monitor end to end: replay on espeak-ng speech, stereo split, the live path through the real
callback code, SIGINT shutdown, and bad inputs."""

from __future__ import annotations

import csv
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

from conftest import requires_espeak

SENTENCES = [
    ("Please open the window before the meeting starts.", {"window", "meeting"}),
    ("I can't believe you did this to me.", {"believe", "me"}),
    ("The museum opens early on Sundays.", {"museum", "early"}),
]


@pytest.fixture(scope="session")
def conversation(tmp_path_factory):
    """Three sentences with pauses, as a mono wav; returns (path, [(start, end) of each sentence])."""
    from emomon.training.data.synth import speak

    root = tmp_path_factory.mktemp("conv")
    parts, spans, pos = [np.zeros(12000, np.float32)], [], 12000
    for text, _ in SENTENCES:
        a = speak(text, voice="en-us")
        parts += [a, np.zeros(16000, np.float32)]
        n = len(a) // 160  # true speech extent: 10 ms windows with RMS above 0.01
        loud = np.flatnonzero(np.sqrt(np.mean(a[: n * 160].reshape(n, 160) ** 2, axis=1)) > 0.01)
        spans.append(((pos + loud[0] * 160) / 16000, (pos + (loud[-1] + 1) * 160) / 16000))
        pos += len(a) + 16000
    audio = np.concatenate(parts)
    return write_wav(root / "conversation.wav", audio), spans, audio


def read_all(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def read_csv(path: Path) -> list[dict]:
    """The utterance rows (event rows such as the session-end line have no utterance number)."""
    return [r for r in read_all(path) if r["utterance"]]


def emomon(*args, timeout=300, **kw):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "emomon", *args], capture_output=True, text=True, timeout=timeout, env=env, **kw)


@requires_espeak
def test_replay_end_to_end(tmp_path, conversation, random_checkpoint):
    path, spans, _ = conversation
    r = emomon("replay", str(path), "--model", str(random_checkpoint), cwd=tmp_path)  # default CSV under ./sessions/
    assert r.returncode == 0, r.stderr
    (out,) = (tmp_path / "sessions").glob("*.csv")
    rows = read_csv(out)
    assert len(rows) == len(SENTENCES)
    for row, (_, words), (start, end) in zip(rows, SENTENCES, spans):
        got = {w.strip(".,!?'").lower() for w in row["transcript"].split()}
        assert words <= got, row["transcript"]
        probs = [float(row[f"p_{c}"]) for c in ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")]
        assert abs(sum(probs) - 1.0) < 2e-3
        assert row["emotion"] == ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")[int(np.argmax(probs))]
        assert abs(float(row["start_s"]) - start) < 0.06 and abs(float(row["end_s"]) - end) < 0.06
        assert row["step1_emotion"] and row["step2_emotion"] and row["speaker"] == "S1"
    assert [int(r["utterance"]) for r in rows] == [1, 2, 3]
    assert len({r["session_id"] for r in rows}) == 1
    # private: the CSV is user-only and the folder emomon created is 0700
    assert (out.stat().st_mode & 0o777) == 0o600 and (out.parent.stat().st_mode & 0o777) == 0o700
    assert "3 utterances from 1 speaker" in r.stderr and "x real time" in r.stderr
    last = read_all(out)[-1]
    assert last["asr_note"] == "event" and last["transcript"].startswith("session complete: 3 utterances")
    # the printed lines carry the transcripts too
    assert "window" in r.stdout.lower()


@requires_espeak
def test_stereo_file_is_split_into_two_speakers(tmp_path, random_checkpoint):
    from emomon.training.data.synth import speak

    a = speak("Good morning, how was your weekend?", voice="en-us")
    b = speak("It was lovely, thank you for asking.", voice="en-gb+f3")
    n = len(a) + len(b) + 3 * 16000
    left, right = np.zeros(n, np.float32), np.zeros(n, np.float32)
    left[8000 : 8000 + len(a)] = a
    start_b = 8000 + len(a) + 16000
    right[start_b : start_b + len(b)] = b
    path = write_wav(tmp_path / "call.wav", np.stack([left, right], 1))
    out = tmp_path / "call.csv"
    r = emomon("replay", str(path), "--split-channels", "--speaker", "0=Counsellor", "--speaker", "1=Client",
               "--model", str(random_checkpoint), "--csv", str(out))
    assert r.returncode == 0, r.stderr
    rows = read_csv(out)
    assert [(row["speaker"], row["stream"]) for row in rows] == [("Counsellor", "0"), ("Client", "1")]
    assert "weekend" in rows[0]["transcript"].lower() and "lovely" in rows[1]["transcript"].lower()


class FakeInputStream:
    """Stands in for sounddevice.InputStream: calls the real callback from its own thread, in real time."""

    def __init__(self, audio: np.ndarray, callback, blocksize: int, realtime: bool = True):
        self.audio, self.callback, self.blocksize, self.realtime = audio, callback, blocksize, realtime
        self.active = False
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        pos, t0 = 0, time.monotonic()
        while self.active and pos < len(self.audio):
            block = self.audio[pos : pos + self.blocksize]
            if len(block) < self.blocksize:
                block = np.pad(block, (0, self.blocksize - len(block)))
            self.callback(block[:, None].copy(), len(block), None, None)
            pos += self.blocksize
            if self.realtime:
                time.sleep(max(0.0, t0 + pos / 16000 - time.monotonic()))
        while self.active:  # a live device keeps delivering silence
            self.callback(np.zeros((self.blocksize, 1), np.float32), self.blocksize, None, None)
            time.sleep(self.blocksize / 16000)

    def __enter__(self):
        self.active = True
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.active = False
        self._thread.join(1)


@requires_espeak
def test_live_path_through_the_callback(tmp_path, conversation, random_checkpoint):
    import dataclasses

    from emomon.monitor.pipeline import Session, step_names_of
    from emomon.monitor.sinks import CsvSink
    from emomon.monitor.sources import MicSource

    _, spans, audio = conversation
    cfg = load_config("default")
    cfg = dataclasses.replace(cfg, runtime=dataclasses.replace(cfg.runtime, model=str(random_checkpoint)))
    mic = MicSource("fake", 0, "Teacher", chunk_ms=30, stream_factory=lambda cb, n: FakeInputStream(audio, cb, n, realtime=False))
    session = Session(cfg, [mic], live=True)
    out = tmp_path / "live.csv"
    session.sinks.append(CsvSink(out, session.session_id, cfg.classes, step_names_of(cfg.model)))
    session.start()
    deadline = time.monotonic() + 120
    while session.stats.utterances < len(SENTENCES) and time.monotonic() < deadline:
        time.sleep(0.1)
    session.stop("test done")
    t0 = time.monotonic()
    session.wait()
    assert time.monotonic() - t0 < 2.0
    rows = read_csv(out)
    assert [r["speaker"] for r in rows] == ["Teacher"] * len(SENTENCES)
    for row, (_, words) in zip(rows, SENTENCES):
        assert words <= {w.strip(".,!?'").lower() for w in row["transcript"].split()}
    assert all(r["latency_ms"] != "" for r in rows)
    assert session.stats.dropped_audio_seconds == 0


def test_mic_buffer_drops_oldest_and_counts():
    from emomon.monitor.sources import DropOldestBuffer

    buf = DropOldestBuffer(max_samples=1000)
    for k in range(5):
        buf.put(np.full(400, k, np.float32), k * 400, 0.0)
    samples, start, _, dropped = buf.get(0.1)
    assert dropped == 1200 and start == 1200 and samples[0] == 3 and buf.dropped_total == 1200


@requires_espeak
def test_sigint_stops_cleanly_with_a_complete_csv(tmp_path, conversation, random_checkpoint):
    path, _, audio = conversation
    long = write_wav(tmp_path / "long.wav", np.tile(audio, 4))
    out = tmp_path / "sig.csv"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "emomon", "replay", str(long), "--realtime", "--model", str(random_checkpoint),
                             "--csv", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until at least two rows are written
        if out.exists() and len(read_csv(out)) >= 2:
            break
        time.sleep(0.2)
    rows_before = len(read_csv(out))
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert time.monotonic() - t0 < 2.5, stderr
    assert proc.returncode == 130, stderr
    rows = read_csv(out)
    assert len(rows) >= rows_before >= 2
    assert all(r["transcript"] and r["emotion"] for r in rows)
    assert "Traceback" not in stderr
    assert read_all(out)[-1]["transcript"].startswith("session stopped (SIGINT)")


def _bad_file(tmp_path: Path, kind: str) -> Path:
    p = tmp_path / f"{kind}.wav"
    if kind == "empty":
        p.write_bytes(b"")
    elif kind == "text":
        p.write_text("hello, this is not audio\n" * 50)
    elif kind == "truncated":
        good = write_wav(tmp_path / "good.wav", np.random.default_rng(0).normal(0, 0.1, 48000).astype(np.float32))
        p.write_bytes(good.read_bytes()[:40])
    return p


@pytest.mark.parametrize("kind", ["missing", "empty", "text", "truncated"])
def test_bad_input_files(tmp_path, kind, random_checkpoint):
    p = _bad_file(tmp_path, kind)
    out = tmp_path / "x.csv"
    r = emomon("replay", str(p), "--model", str(random_checkpoint), "--csv", str(out))
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 3, r.stderr
    assert len(lines) == 1 and lines[0].startswith("emomon: error:") and str(p) in lines[0], r.stderr
    assert not out.exists()  # nothing half-written that looks like a session


def test_unknown_device_is_one_line(tmp_path, random_checkpoint):
    r = emomon("live", "--input", "no-such-device-xyz", "--model", str(random_checkpoint), "--csv", str(tmp_path / "l.csv"))
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 5 and len(lines) == 1 and "no-such-device-xyz" in lines[0] or "audio input is unavailable" in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_speaker_names_are_validated():
    from emomon.errors import ConfigError
    from emomon.monitor.app import parse_speaker_names

    assert parse_speaker_names(["0=Teacher", "1=Class"]) == {0: "Teacher", 1: "Class"}
    with pytest.raises(ConfigError):
        parse_speaker_names(["Teacher"])
