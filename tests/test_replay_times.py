"""Honest times in the session CSV: a replay has no wall clock of its own, so its start_time/end_time are the
recording's start (``--start-time``, else its metadata) plus each row's offset, or empty; every row, event rows
included, in time order. Live and ``--realtime`` keep the wall clock."""

from __future__ import annotations

import csv
import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from emomon.records import Result, Utterance
from conftest import requires_espeak

SR = 16000
START = "2026-03-02T09:00:00+01:00"


def _read(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _emomon(*args, cwd=None, timeout=300):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "emomon", *args], capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=cwd)


def _write(path: Path, audio: np.ndarray, codec: str, metadata: dict[str, str], options: dict | None = None) -> Path:
    """``audio`` (16 kHz mono float) encoded with PyAV, the container tagged with ``metadata``."""
    import av

    pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
    with av.open(str(path), "w", options=options or {}) as out:
        for key, value in metadata.items():
            out.metadata[key] = value
        stream = out.add_stream(codec, rate=SR)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(pcm[None], format="s16", layout="mono")
        frame.sample_rate = SR
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def _tone(seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


# ------------------------------------------------------------------------------------------------ the sink's clock
def _result(i: int, start: float, end: float, wall0: float = 1_790_000_000.0) -> Result:
    u = Utterance(index=i, stream=0, speaker="S1", audio=np.zeros(160, np.float32), start=start, end=end,
                  wall_start=wall0 + start, wall_end=wall0 + end, closed_at=0.0)
    return Result(u, "hello", "neutral", 0.9, {"neutral": 0.9, "happy": 0.1}, {})


def _sink_rows(tmp_path: Path, times, spans, *, mid_notice: bool = False) -> list[dict]:
    from emomon.monitor.sinks import CsvSink

    sink = CsvSink(tmp_path / "s.csv", "abc", ("happy", "neutral"), (), fsync=False, times=times)
    for i, (a, b) in enumerate(spans, 1):
        sink.write(_result(i, a, b))
        if mid_notice and i == 1:
            sink.notice("input S1 lost")
    sink.close("session complete: 2 utterances")
    return _read(tmp_path / "s.csv")


def test_a_replay_with_a_start_is_stamped_at_start_plus_offset(tmp_path):
    from emomon.monitor.sinks import RowTimes

    start = dt.datetime.fromisoformat(START)
    times = RowTimes(wall=False, start=start, source="--start-time", recording_end=lambda: 30.0)
    rows = _sink_rows(tmp_path, times, [(1.25, 3.5), (10.0, 12.75)], mid_notice=True)
    assert [(r["start_time"], r["end_time"]) for r in rows if r["utterance"]] == [
        ("2026-03-02T09:00:01.250+01:00", "2026-03-02T09:00:03.500+01:00"),
        ("2026-03-02T09:00:10.000+01:00", "2026-03-02T09:00:12.750+01:00")]
    # an event row comes no earlier than what was written before it; the session's end is the recording's end
    notice, last = rows[1], rows[-1]
    assert notice["asr_note"] == "event" and notice["start_time"] == "2026-03-02T09:00:03.500+01:00"
    assert last["transcript"].startswith("session complete") and last["start_time"] == "2026-03-02T09:00:30.000+01:00"
    stamps = [dt.datetime.fromisoformat(r["start_time"]) for r in rows]
    assert stamps == sorted(stamps)


def test_the_last_row_is_never_before_the_last_utterance(tmp_path):
    from emomon.monitor.sinks import RowTimes

    times = RowTimes(wall=False, start=dt.datetime.fromisoformat(START), recording_end=lambda: 2.0)  # read less than written
    rows = _sink_rows(tmp_path, times, [(1.0, 4.0)])
    assert rows[-1]["start_time"] == rows[-1]["end_time"] == "2026-03-02T09:00:04.000+01:00"


def test_a_replay_without_a_start_leaves_the_time_cells_empty(tmp_path):
    from emomon.monitor.sinks import RowTimes

    times = RowTimes(wall=False, start=None, source="talk.wav states no recording time", recording_end=lambda: 30.0)
    rows = _sink_rows(tmp_path, times, [(1.0, 2.0), (5.0, 6.0)], mid_notice=True)
    assert all(r["start_time"] == r["end_time"] == "" for r in rows)
    assert [r["start_s"] for r in rows if r["utterance"]] == ["1.000", "5.000"]  # the offsets still place every row
    assert "left empty" in times.note and "--start-time" in times.note and "talk.wav" in times.note


def test_live_keeps_the_wall_clock(tmp_path):
    from emomon.monitor.sinks import RowTimes, iso

    rows = _sink_rows(tmp_path, RowTimes(), [(1.0, 2.0)])
    assert (rows[0]["start_time"], rows[0]["end_time"]) == (iso(1_790_000_001.0), iso(1_790_000_002.0))
    assert dt.datetime.fromisoformat(rows[-1]["start_time"]) > dt.datetime.fromisoformat(rows[0]["end_time"])  # now


# ------------------------------------------------------------------------------------------------ metadata
def test_recording_start_from_container_metadata(tmp_path):
    from emomon.audio.decode import recording_start

    audio = _tone()
    m4a = recording_start(_write(tmp_path / "phone.m4a", audio, "aac", {"creation_time": "2026-03-02T08:00:00Z"}))
    assert m4a is not None and m4a.time == dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.timezone.utc)
    assert "phone.m4a" in m4a.source and "creation_time" in m4a.source
    # a Broadcast WAV's bext origination date and time (local time: no zone)
    bwf = _write(tmp_path / "field.wav", audio, "pcm_s16le", {"origination_date": "2026-03-02", "origination_time": "09:15:30"},
                 {"write_bext": "1"})
    got = recording_start(bwf)
    assert got is not None and got.time == dt.datetime(2026, 3, 2, 9, 15, 30).astimezone()
    # a date tag with a time of day (here: a WAV's RIFF INFO)
    info = recording_start(_write(tmp_path / "info.wav", audio, "pcm_s16le", {"date": "2026-03-02 10:30"}))
    assert info is not None and info.time == dt.datetime(2026, 3, 2, 10, 30).astimezone()


@pytest.mark.parametrize("tags", [{}, {"date": "2019"}, {"date": "2026-03-02"}, {"creation_time": "1970-01-01T00:00:00Z"},
                                  {"creation_time": "2030-01-01T00:00:00Z"}, {"date": "yesterday at noon"}])
def test_no_start_when_the_metadata_states_no_full_plausible_time(tmp_path, tags):
    from emomon.audio.decode import recording_start

    codec, name = ("aac", "x.m4a") if "creation_time" in tags else ("pcm_s16le", "x.wav")
    assert recording_start(_write(tmp_path / name, _tone(), codec, tags)) is None


def test_several_files_share_one_start_or_none(tmp_path):
    from emomon.monitor.sources import FileSource, recorded_start

    def source(name: str, stamp: str | None) -> FileSource:
        return FileSource(_write(tmp_path / name, _tone(), "aac", {"creation_time": stamp} if stamp else {}), 0)

    a, b = source("a.m4a", "2026-03-02T08:00:00Z"), source("b.m4a", "2026-03-02T08:00:00.500000Z")
    start, why = recorded_start([a, b])
    assert start is not None and start.time == dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.timezone.utc) and "a.m4a" in why
    start, why = recorded_start([a, source("c.m4a", "2026-03-02T11:00:00Z")])
    assert start is None and "different recording times" in why
    start, why = recorded_start([source("d.m4a", None)])
    assert start is None and "d.m4a states no recording time" == why


def test_start_time_is_checked_before_anything_loads(tmp_path):
    for bad in ("2026-03-02", "tomorrow", "2026-13-02T09:00:00"):
        r = _emomon("replay", "--sample", "--start-time", bad, "--csv", str(tmp_path / "s.csv"), timeout=60)
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("emomon: error: --start-time"), r.stderr
        assert "2026-03-02T09:00:00+01:00" in lines[0]
    assert not (tmp_path / "s.csv").exists()


def test_start_time_without_a_zone_is_local_time():
    from emomon.cli import _start_time

    assert _start_time("2026-03-02T09:00:00") == dt.datetime(2026, 3, 2, 9, 0).astimezone()
    assert _start_time(START).utcoffset() == dt.timedelta(hours=1)
    assert _start_time(None) is None


# ------------------------------------------------------------------------------------------------ end to end
def _in_time_order(rows: list[dict]) -> None:
    ends = [dt.datetime.fromisoformat(r["end_time"]) for r in rows]
    assert ends == sorted(ends), [r["end_time"] for r in rows]


def test_sample_replay_names_the_lesson_and_leaves_the_times_empty(tmp_path, random_checkpoint):
    """The README's first command: the bundled lesson, its teacher and student told apart; the sample states no
    recording time, so its time cells are empty and emomon says so once."""
    out = tmp_path / "s.csv"
    r = _emomon("replay", "--sample", "--diarize", "--model", str(random_checkpoint), "--csv", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rows = _read(out)
    utterances = [row for row in rows if row["utterance"]]
    # A is the teacher (who speaks first), B the student: every utterance on its speaker's side
    assert [row["speaker"] for row in utterances] == ["Lesson/A", "Lesson/B"] * 3 + ["Lesson/A"] + ["Lesson/A", "Lesson/B"] * 2
    assert all(row["start_time"] == row["end_time"] == "" for row in rows)
    starts = [float(row["start_s"]) for row in utterances]
    assert starts == sorted(starts)
    assert rows[-1]["asr_note"] == "event" and rows[-1]["transcript"].startswith("session complete")
    assert r.stderr.count("left empty") == 1 and "sample.ogg states no recording time" in r.stderr
    assert _emomon("report", str(out), cwd=tmp_path).returncode == 0  # the report places rows by start_s/end_s


@requires_espeak
def test_replay_times_from_start_time_and_from_metadata(tmp_path, random_checkpoint):
    from emomon.training.data.synth import speak

    audio = np.concatenate([np.zeros(8000, np.float32), speak("Please open the window before the meeting starts."),
                            np.zeros(16000, np.float32), speak("The museum opens early on Sundays."),
                            np.zeros(24000, np.float32)])
    seconds = len(audio) / SR
    # --start-time: the recording's start plus each row's offset, in the zone given; the last row at the recording's end
    wav = _write(tmp_path / "talk.wav", audio, "pcm_s16le", {})
    out = tmp_path / "given.csv"
    r = _emomon("replay", str(wav), "--model", str(random_checkpoint), "--csv", str(out), "--start-time", START)
    assert r.returncode == 0, r.stderr
    rows = _read(out)
    start = dt.datetime.fromisoformat(START)
    utterances = [row for row in rows if row["utterance"]]
    assert len(utterances) == 2
    for row in utterances:
        for cell, offset in ((row["start_time"], row["start_s"]), (row["end_time"], row["end_s"])):
            t = dt.datetime.fromisoformat(cell)
            assert t.utcoffset() == dt.timedelta(hours=1) and abs((t - start).total_seconds() - float(offset)) < 0.0015
    last = dt.datetime.fromisoformat(rows[-1]["start_time"])
    assert rows[-1]["transcript"].startswith("session complete") and abs((last - start).total_seconds() - seconds) < 0.1
    _in_time_order(rows)
    # no --start-time: the recording's own creation time (MP4 creation_time, UTC), written in this machine's zone
    m4a = _write(tmp_path / "phone.m4a", audio, "aac", {"creation_time": "2026-03-02T08:00:00Z"})
    out = tmp_path / "stated.csv"
    r = _emomon("replay", str(m4a), "--model", str(random_checkpoint), "--csv", str(out))
    assert r.returncode == 0, r.stderr
    assert "phone.m4a's creation_time" in r.stderr
    rows = _read(out)
    stated = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.timezone.utc)
    for row in rows[:-1]:
        t = dt.datetime.fromisoformat(row["start_time"])
        assert t.utcoffset() == stated.astimezone().utcoffset()
        assert abs((t - stated).total_seconds() - float(row["start_s"])) < 0.0015
    _in_time_order(rows)
