"""Batch replay (issue 33): discovery, the summary, per-recording CSVs equal to one-file replays, --jobs 2, a bad
recording that does not stop the batch (exit 8), and a killed batch resumed."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from emomon.errors import BATCH_PARTIAL, ConfigError, InputError
from emomon.monitor.batch import Recording, RecordingResult, discover, is_complete, summary_rows

from conftest import run_emomon

VOLATILE = ("session_id", "asr_ms", "emotion_ms", "latency_ms")


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return [{k: v for k, v in r.items() if k not in VOLATILE} for r in csv.DictReader(f)]


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF0000")
    return path


def test_discover_folders_files_and_manifest(tmp_path):
    root = tmp_path / "rec"
    for rel in ("b.wav", "a.mp3", "sub/a.wav", "notes.txt", "sub/deeper/c.OGG"):
        _touch(root / rel)
    one = _touch(tmp_path / "a.wav")
    manifest = tmp_path / "list.csv"
    manifest.write_text("path,speakers,split_channels\nrec/b.wav,0=Counsellor;1=Client,yes\n\n")
    recs = discover([root, one], manifest)
    assert [r.name for r in recs] == ["a", "b", "sub__a", "sub__deeper__c", "a-2", "b-2"]
    assert recs[0].path == root / "a.mp3" and recs[4].path == one
    assert recs[5].speakers == ((0, "Counsellor"), (1, "Client")) and recs[5].split_channels
    assert not recs[0].split_channels and recs[0].speakers == ()


@pytest.mark.parametrize("text, words", [
    ("file\nx.wav\n", "first row must name"),
    ("path,colour\nx.wav,red\n", "unknown column"),
    ("path\n", "lists no recording"),
    ("path,split_channels\nrec.wav,maybe\n", "line 2"),
    ("path\nmissing.wav\n", "not found"),
])
def test_bad_manifest_is_one_line(tmp_path, text, words):
    _touch(tmp_path / "rec.wav")
    m = tmp_path / "m.csv"
    m.write_text(text)
    with pytest.raises(InputError, match=words):
        discover([], m)


def test_empty_folder_and_nothing_given(tmp_path):
    with pytest.raises(InputError, match="no audio file"):
        discover([tmp_path], None)
    with pytest.raises(ConfigError):
        discover([], None)


def test_summary_rows_per_speaker(tmp_path):
    header = ("session_id,speaker,stream,utterance,start_s,end_s,start_time,end_time,transcript,emotion,confidence,"
              "p_angry,p_happy,p_neutral,language,asr_note,cut,asr_ms,emotion_ms,latency_ms\n")
    text = header + (
        "s,A,0,1,0.000,6.000,,,hi,happy,0.9,0.0,0.9,0.1,en,,0,1,1,\n"
        "s,B,1,2,1.000,4.000,,,no,angry,0.8,0.8,0.0,0.2,en,,0,1,1,\n"
        "s,A,0,3,7.000,13.000,,,ok,neutral,0.7,0.0,0.3,0.7,en,,0,1,1,\n"
        "s,B,,,1.000,4.000,,,negative-affect: x,,,,,,,alert,,,,\n"
        "s,,,,,,,,session complete: 3 utterances,,,,,,,event,,,,\n")
    rec = Recording(Path("x.wav"), "x")
    a, b = summary_rows(RecordingResult(rec, text, None, 13.0))
    assert (a["speaker"], a["utterances"], a["speech_minutes"]) == ("A", 2, "0.200")
    assert (a["share_happy"], a["share_neutral"], a["share_angry"]) == ("0.500", "0.500", "0.000")
    assert (b["alerts"], a["alerts"], b["share_angry"]) == (1, 0, "1.000")
    assert float(b["mean_valence"]) < 0 < float(a["mean_valence"])
    (err,) = summary_rows(RecordingResult(rec, None, "cannot decode x.wav", 0.0))
    assert err["error"] == "cannot decode x.wav" and err["utterances"] == 0
    done = tmp_path / "x.csv"
    done.write_text(text)
    assert is_complete(done)
    done.write_text(text.rsplit("s,,,", 1)[0])
    assert not is_complete(done)


@pytest.fixture(scope="module")
def recordings(speech_factory, tmp_path_factory):
    root = tmp_path_factory.mktemp("batch") / "rec"
    (root / "sub").mkdir(parents=True)
    shutil.copy(speech_factory("I am so happy today, this is wonderful news."), root / "a.wav")
    shutil.copy(speech_factory("Why did you do that? I told you not to touch it!", voice="en-us+m3"), root / "sub" / "b.wav")
    shutil.copy(speech_factory("The meeting is at three. Please bring the report.", pitch=30), root / "c.wav")
    return root


def test_batch_jobs_2_equals_one_file_replays_and_goes_on_past_a_bad_file(tmp_path, recordings, random_checkpoint):
    rec = tmp_path / "rec"
    shutil.copytree(recordings, rec)
    (rec / "broken.wav").write_bytes(b"this is not audio at all" * 100)
    out = tmp_path / "out"
    r = run_emomon("replay", str(rec), "--jobs", "2", "--out-dir", str(out), "--model", str(random_checkpoint), cwd=tmp_path)
    assert r.returncode == BATCH_PARTIAL, r.stderr
    assert "broken.wav" in r.stderr
    # progress without a terminal: a line at the start, then one per recording with the audio done and the time left
    assert "emomon: reading 4 recording(s)" in r.stderr and "emomon: 4/4 " in r.stderr and "min left" in r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.csv", "c.csv", "sub__b.csv", "summary.csv"]
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in out.iterdir())
    one = tmp_path / "one.csv"
    r1 = run_emomon("replay", str(rec / "sub" / "b.wav"), "--csv", str(one), "--model", str(random_checkpoint),
                    "--quiet-lines", cwd=tmp_path)
    assert r1.returncode == 0, r1.stderr
    assert _rows(out / "sub__b.csv") == _rows(one)  # probabilities, labels, transcripts and times alike
    with open(out / "summary.csv", newline="") as f:
        summary = list(csv.DictReader(f))
    assert [s["recording"] for s in summary] == ["a", "broken", "c", "sub__b"]
    assert summary[1]["error"] and all(not s["error"] and int(s["utterances"]) >= 1 for s in summary if s is not summary[1])


def test_several_files_alone_stay_one_session(tmp_path, recordings, random_checkpoint):
    csv_path = tmp_path / "s.csv"
    r = run_emomon("replay", str(recordings / "a.wav"), str(recordings / "c.wav"), "--csv", str(csv_path),
                   "--model", str(random_checkpoint), "--quiet-lines", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert {row["speaker"] for row in _rows(csv_path) if row["utterance"]} == {"S1", "S2"}


def test_killed_batch_resumes(tmp_path, recordings, random_checkpoint):
    rec = tmp_path / "rec"
    shutil.copytree(recordings, rec)
    out = tmp_path / "out"
    args = [sys.executable, "-m", "emomon", "replay", str(rec), "--jobs", "1", "--out-dir", str(out), "--model",
            str(random_checkpoint)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    p = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not (out / "a.csv").exists() and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert p.poll() is None, "the batch ended before it could be killed"
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert is_complete(out / "a.csv") and not (out / "sub__b.csv").exists()
    first = (out / "a.csv").read_text()
    (out / "c.csv").write_text("session_id,speaker\nx,S1\n")  # a partial CSV left behind is read again
    r = run_emomon("replay", str(rec), "--jobs", "1", "--out-dir", str(out), "--model", str(random_checkpoint), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "1 recording(s) already complete" in r.stderr
    assert (out / "a.csv").read_text() == first  # skipped, not redone
    assert all(is_complete(out / f"{n}.csv") for n in ("a", "c", "sub__b"))
    with open(out / "summary.csv", newline="") as f:
        assert [s["recording"] for s in csv.DictReader(f)] == ["a", "c", "sub__b"]


def test_batch_checks_come_first(tmp_path):
    (tmp_path / "x.wav").write_bytes(b"RIFF")
    r = run_emomon("replay", str(tmp_path), "--csv", "a.csv", cwd=tmp_path, timeout=60)
    assert r.returncode == 2 and "--csv" in r.stderr
    r = run_emomon("replay", str(tmp_path), "--jobs", "0", cwd=tmp_path, timeout=60)
    assert r.returncode == 2 and "--jobs" in r.stderr
    r = run_emomon("replay", "--manifest", str(tmp_path / "none.csv"), cwd=tmp_path, timeout=60)
    assert r.returncode == 3 and "--manifest" in r.stderr
    (tmp_path / "file").write_text("")
    r = run_emomon("replay", str(tmp_path), "--out-dir", str(tmp_path / "file"), cwd=tmp_path, timeout=60)
    assert r.returncode == 6, r.stderr


def test_default_jobs_from_cores_and_memory():
    from emomon.monitor.batch import WORKER_MEMORY, default_jobs

    assert default_jobs(cores=2, memory_bytes=24 * 2**30) == 2  # one 1-core worker per core (bench/batch.py)
    assert default_jobs(cores=16, memory_bytes=6 * 2**30) == 6 * 2**30 // WORKER_MEMORY == 4  # memory bounds it
    assert default_jobs(cores=8, memory_bytes=2**30) == 1  # never 0
    assert default_jobs(cores=4, memory_bytes=0) == 4  # memory unknown: the cores decide


@pytest.fixture(scope="module")
def talks(speech_factory, tmp_path_factory):
    """Three recordings of four sentences each, a second of silence between them (four utterances each)."""
    import numpy as np

    from emomon.audio.decode import load_audio
    from emomon.training.data.synth import write_wav

    lines = ["I am so happy today, this is wonderful news.", "Why did you do that? I told you not to touch it!",
             "The meeting is at three. Please bring the report.", "I feel sad and tired, nothing went right."]
    root = tmp_path_factory.mktemp("talks") / "rec"
    root.mkdir(parents=True)
    pause = np.zeros(16000, np.float32)
    for k, voice in enumerate(["en-us", "en-gb", "en-us+m3"]):
        parts = [load_audio(speech_factory(lines[(k + j) % 4], voice=voice)) for j in range(4)]
        write_wav(root / f"talk{k}.wav", np.concatenate([x for p in parts for x in (p, pause)]))
    return root


def test_one_reader_reads_recordings_at_once_in_shared_micro_batches(tmp_path, talks, random_checkpoint):
    """``[replay] recordings_at_once = 3`` (what a GPU reader does by default, here on the CPU): the three recordings
    are read at the same time by one reader, their utterances in shared micro-batches, each read against its own
    speakers; every CSV matches its one-file replay (labels, transcripts and times; probabilities to 1e-3, as a
    batch padded with other recordings' utterances may move the last printed digit)."""
    preset = tmp_path / "at-once.toml"
    preset.write_text('extends = "default"\n\n[replay]\nrecordings_at_once = 3\n')
    out = tmp_path / "out"
    r = run_emomon("replay", str(talks), "--jobs", "1", "--config", str(preset), "--out-dir", str(out),
                   "--model", str(random_checkpoint), "-v", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "from 2 sessions" in r.stderr or "from 3 sessions" in r.stderr  # the batches were shared
    for name, path in ((f"talk{k}", talks / f"talk{k}.wav") for k in range(3)):
        one = tmp_path / f"{name}.csv"
        r1 = run_emomon("replay", str(path), "--csv", str(one), "--model", str(random_checkpoint), "--quiet-lines", cwd=tmp_path)
        assert r1.returncode == 0, r1.stderr
        got, want = _rows(out / f"{name}.csv"), _rows(one)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            close = {k for k in w if k.startswith("p_") or k == "confidence"}
            assert {k: v for k, v in g.items() if k not in close} == {k: v for k, v in w.items() if k not in close}
            assert all(abs(float(g[k] or 0) - float(w[k] or 0)) <= 1e-3 for k in close), (g, w)


def test_recordings_at_once_is_for_one_reader(tmp_path):
    (tmp_path / "x.wav").write_bytes(b"RIFF")
    preset = tmp_path / "p.toml"
    preset.write_text('extends = "default"\n\n[replay]\nrecordings_at_once = 2\n')
    r = run_emomon("replay", str(tmp_path), "--jobs", "2", "--config", str(preset), "--compute", "cpu", cwd=tmp_path, timeout=60)
    assert r.returncode == 2 and "recordings_at_once" in r.stderr and len(r.stderr.strip().splitlines()) == 1
