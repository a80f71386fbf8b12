"""Session report: HTML + PNG from the CSV the monitor writes, including broken and odd CSVs."""

from __future__ import annotations

import base64
import re
import stat
import struct
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

from emomon.errors import InputError, OutputError
from emomon.records import Result, Utterance
from emomon.monitor.views.report import write_report
from emomon.monitor.views.report.figure import figure_size_px
from emomon.monitor.views.report.reading import read_session
from emomon.monitor.sinks import CsvSink

CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
STEPS = ("step1", "step2")
T0 = 1_790_000_000.0
EVIL = "<script>alert('pwned')</script> & \"quotes\""


def _result(i: int, speaker: str, start: float, emotion: str, text: str) -> Result:
    dur = 1.5 + (i % 4) * 0.7
    u = Utterance(index=i, stream=0, speaker=speaker, audio=None, start=start, end=start + dur,  # type: ignore[arg-type]
                  wall_start=T0 + start, wall_end=T0 + start + dur, closed_at=0.0, cut=i % 9 == 0)
    probs = {c: 0.02 for c in CLASSES}
    probs[emotion] = 1 - 0.02 * (len(CLASSES) - 1)
    return Result(utterance=u, text=text, emotion=emotion, confidence=probs[emotion], probs=probs,
                  step_emotions={"step1": emotion, "step2": "neutral"}, asr_note="" if text else "no-speech",
                  language="en", asr_seconds=0.4, emotion_seconds=0.05)


def make_csv(path: Path, rows: int = 30, session_id: str = "sess-2026-11-22") -> Path:
    """A session CSV written by CsvSink itself (so the header is exactly the monitor's)."""
    sink = CsvSink(path, session_id, CLASSES, STEPS, fsync=False)
    t = 0.4
    for i in range(rows):
        speaker = "Teacher/A" if (i // 3 + i) % 2 == 0 else "Teacher/B"
        emotion = CLASSES[(i * 3 + (i // 5)) % len(CLASSES)] if i % 4 else "neutral"
        text = EVIL if i == 7 else ("" if i == 11 else f"sentence number {i}, café")
        sink.write(_result(i, speaker, t, emotion, text))
        t += 2.0 + (i % 5) * 0.9
    sink.close()
    return path


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    return struct.unpack(">II", data[16:24])


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_report_from_monitor_csv(tmp_path):
    csv_path = make_csv(tmp_path / "2026-11-22_14-30-05.csv")
    html_path, png_path = write_report(csv_path)
    assert html_path == tmp_path / "2026-11-22_14-30-05.html" and png_path == tmp_path / "2026-11-22_14-30-05.png"
    assert png_size(png_path) == figure_size_px(2) == (1600, 300 + 2 * 260)
    page = html_path.read_text(encoding="utf-8")
    for s in ("Teacher/A", "Teacher/B", "sess-2026-11-22", "sentence number 29, café", "no-speech"):
        assert s in page
    assert "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt; &amp; &quot;quotes&quot;" in page
    assert "<script" not in page.lower()
    m = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert m and base64.b64decode(m.group(1)) == png_path.read_bytes()
    assert "http://" not in page and "https://" not in page  # self-contained
    assert re.search(r"<td>Utterances</td><td>30</td>", page)
    assert mode(html_path) == 0o600 and mode(png_path) == 0o600
    # a second report replaces the first, still user-only
    png_path.chmod(0o644)
    assert write_report(csv_path) == (html_path, png_path)
    assert mode(html_path) == 0o600 and mode(png_path) == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left behind


def test_report_into_out_dir(tmp_path):
    csv_path = make_csv(tmp_path / "s.csv", rows=4)
    html_path, png_path = write_report(csv_path, tmp_path / "reports" / "new")
    assert html_path.parent == tmp_path / "reports" / "new" and png_path.exists()
    assert png_size(png_path) == (1600, 820)


def test_event_rows_are_notes_not_unreadable_rows(tmp_path):
    path = tmp_path / "events.csv"
    sink = CsvSink(path, "sess", CLASSES, STEPS, fsync=False)
    sink.write(_result(0, "A", 0.4, "happy", "hello"))
    sink.notice("input 0 (USB mic) lost: device unplugged")
    sink.write(_result(1, "A", 3.0, "sad", "oh no"))
    sink.close("session complete: 2 utterances")
    session = read_session(path)
    assert [r.emotion for r in session.rows] == ["happy", "sad"]
    assert not [n for n in session.notes if "unreadable" in n]
    assert [n.split(": ", 1)[1] for n in session.notes] == ["input 0 (USB mic) lost: device unplugged",
                                                            "session complete: 2 utterances"]
    html_path, _ = write_report(path)
    assert "session complete: 2 utterances" in html_path.read_text(encoding="utf-8")


def test_truncated_csv_still_reports(tmp_path):
    full = make_csv(tmp_path / "full.csv").read_bytes()
    lines = full.splitlines(keepends=True)
    # cut the last row in the middle of its probabilities: the row keeps its times, emotion and transcript
    cut_mid = tmp_path / "cut_mid.csv"
    cut_mid.write_bytes(b"".join(lines[:-1]) + lines[-1][: len(lines[-1]) * 2 // 3])
    s = read_session(cut_mid)
    assert len(s.rows) == 30 and any("cut off" in n for n in s.notes)
    html_path, png_path = write_report(cut_mid)
    assert "<td>Utterances</td><td>30</td>" in html_path.read_text() and png_size(png_path) == (1600, 820)
    # cut inside the transcript (and inside a multi-byte character): that row is dropped
    last = lines[-1]
    cut_at = last.index("caf".encode()) + 4  # between the two bytes of 'é'
    cut_early = tmp_path / "cut_early.csv"
    cut_early.write_bytes(b"".join(lines[:-1]) + last[:cut_at])
    s = read_session(cut_early)
    assert len(s.rows) == 29
    page = write_report(cut_early)[0].read_text()
    assert "<td>Utterances</td><td>29</td>" in page and "cut off" in page


def test_missing_trailing_fields_and_extra_columns(tmp_path):
    lines = make_csv(tmp_path / "x.csv", rows=6).read_text(encoding="utf-8").splitlines()
    header = lines[0] + ",mood_ring,extra2"
    rows = [lines[1] + ",blue,1", lines[2].rsplit(",", 8)[0]] + lines[3:]  # one longer, one missing its tail
    p = tmp_path / "odd.csv"
    p.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    s = read_session(p)
    assert len(s.rows) == 6 and s.classes == list(CLASSES)
    write_report(p)


def test_other_class_set(tmp_path):
    p = tmp_path / "other.csv"
    p.write_text(
        "session_id,speaker,stream,utterance,start_s,end_s,transcript,emotion,confidence,p_anger,p_joy,p_calm,p_boredom\n"
        "s9,Mic,0,0,0.5,2.0,hi,joy,0.7,0.1,0.7,0.1,0.1\n"
        "s9,Mic,0,1,3.0,4.5,meh,boredom,0.6,0.1,0.1,0.2,0.6\n"
        "s9,Line,1,2,5.0,7.5,grr,anger,0.8,0.8,0.1,0.05,0.05\n", encoding="utf-8")
    s = read_session(p)
    assert s.classes == ["anger", "joy", "calm", "boredom"]
    html_path, png_path = write_report(p)
    page = html_path.read_text()
    assert "boredom" in page and "Mic" in page and "Line" in page
    assert png_size(png_path) == (1600, 300 + 2 * 260)


def test_header_only_csv_says_no_utterances(tmp_path):
    p = make_csv(tmp_path / "empty.csv", rows=0)
    html_path, png_path = write_report(p)
    assert "no utterances" in html_path.read_text().lower()
    assert png_size(png_path) == figure_size_px(0) == (1600, 300)


@pytest.mark.parametrize("content", [
    bytes(range(256)) * 4,                          # binary
    b"",                                            # empty
    b"name,age\nbob,3\n",                           # some other CSV
    b"\xff\xfe\x00h\x00e\x00l\x00l\x00o",          # UTF-16
    b"session_id;speaker;start_s\n",               # wrong delimiter
])
def test_not_a_session_csv(tmp_path, content):
    p = tmp_path / "junk.csv"
    p.write_bytes(content)
    with pytest.raises(InputError) as exc:
        write_report(p)
    assert "\n" not in str(exc.value) and str(p) in str(exc.value)
    assert not (tmp_path / "junk.html").exists()


def test_missing_csv(tmp_path):
    with pytest.raises(InputError):
        write_report(tmp_path / "nope.csv")


def test_unwritable_output_folder(tmp_path):
    csv_path = make_csv(tmp_path / "s.csv", rows=3)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(OutputError):
        write_report(csv_path, blocker)  # a file, not a folder
    with pytest.raises(OutputError):
        write_report(csv_path, blocker / "sub")  # cannot create a folder under a file


# ----------------------------------------------------------------------------------------- issue 31: numbers, scale
def _table_rows(page: str) -> int:
    return page.count('<tr><td class="t">')


def test_corrupt_numbers_are_skipped_and_counted(tmp_path, capsys):
    """start/end not finite or out of range: the row is skipped and counted; a bad probability or confidence is read
    as missing; the report is made either way (1e308 used to end in a ValueError traceback in clock())."""
    from emomon.cli import main

    p = tmp_path / "bad.csv"
    p.write_text(
        "session_id,speaker,start_s,end_s,emotion,confidence,p_happy,p_sad\n"
        "s,A,0.5,1.5,happy,0.9,0.9,0.1\n"
        "s,A,0,1e308,sad,0.8,0.2,0.8\n"
        "s,A,1e308,1e308,sad,0.8,0.2,0.8\n"
        "s,B,nan,2,sad,0.8,0.2,0.8\n"
        "s,B,1,inf,sad,0.8,0.2,0.8\n"
        "s,B,-1,2,sad,0.8,0.2,0.8\n"
        "s,B,abc,2,sad,0.8,0.2,0.8\n"
        "s,B,3,31622401,sad,0.8,0.2,0.8\n"
        "s,B,2,3,sad,1e308,-0.5,nan\n", encoding="utf-8")
    s = read_session(p)
    assert [(r.speaker, r.start, r.end) for r in s.rows] == [("A", 0.5, 1.5), ("B", 2.0, 3.0)]
    assert s.rows[1].confidence is None and s.rows[1].probs == {}
    assert any(n.startswith("7 unreadable rows skipped") for n in s.notes)
    assert main(["report", str(p)]) == 0
    assert "Traceback" not in capsys.readouterr().err
    assert "7 unreadable rows skipped" in (tmp_path / "bad.html").read_text()


def test_huge_transcript_field_keeps_every_later_row(tmp_path):
    """A field over Python's csv limit (131,072) is read, and no later row is lost to a false 'cut off' note."""
    import csv as csv_module

    path = make_csv(tmp_path / "s.csv", rows=6)
    with open(path, newline="", encoding="utf-8") as f:
        records = list(csv_module.reader(f))
    huge = "big words " * 20_000  # 200,000 characters
    records[2][records[0].index("transcript")] = huge
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv_module.writer(f).writerows(records)
    s = read_session(path)
    assert len(s.rows) == 6 and not s.notes
    assert huge in [r.transcript for r in s.rows]
    page = write_report(path)[0].read_text()
    assert _table_rows(page) == 6 and "cut off" not in page


def test_time_zones_mixed_and_out_of_range(tmp_path):
    p = tmp_path / "tz.csv"
    p.write_text("session_id,speaker,start_s,end_s,start_time,end_time,emotion\n"
                 "s,A,0,1,2026-01-01T10:00:00,2026-01-01T10:00:01+05:00,happy\n"
                 "s,A,1,2,9999-12-31T23:59:59-23:59,0001-01-01T00:00:00+23:59,sad\n"
                 "s,A,2,3,2026-01-01T09:00:00+00:00,not a time,sad\n", encoding="utf-8")
    from emomon.monitor.views.report.summary import time_range

    assert time_range(read_session(p)).startswith("2026-01-01 ")
    write_report(p)


def test_many_speakers_and_emotions(tmp_path):
    """Every speaker in the page; the figure draws the ones who spoke longest, at a bounded size."""
    from emomon.monitor.views.report.figure import MAX_SPEAKERS

    p = tmp_path / "many.csv"
    lines = ["session_id,speaker,start_s,end_s,emotion"]
    for i in range(400):
        lines.append(f"s,speaker {i % 40},{i * 2},{i * 2 + 1 + (i % 40 == 3) * 0.9},label{i % 30}")
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    html_path, png_path = write_report(p)
    page = html_path.read_text()
    assert all(f"<h3>speaker {i}</h3>" in page for i in range(40))
    assert png_size(png_path) == figure_size_px(40) == (1600, 300 + MAX_SPEAKERS * 260)
    assert _table_rows(page) == 400


def test_lane_runs_one_collection_per_emotion():
    from emomon.monitor.views.report.figure import BINS, lane_runs
    from emomon.monitor.views.report.reading import Row

    def row(a, b, e, conf=None):
        return Row("s", "A", a, b, "", "", "", e, conf)

    runs = lane_runs([row(0, 1, "happy"), row(1, 2, "happy"), row(2.5, 3, "happy"), row(3, 4, "sad")], 10.0)
    assert runs == {("happy", False): [(0, 2), (2.5, 0.5)], ("sad", False): [(3, 1)]}
    # an unsure reading (confidence below the threshold) is a run of its own; no confidence is not unsure
    runs = lane_runs([row(0, 1, "happy", 0.9), row(1, 2, "happy", 0.3), row(2, 3, "happy"), row(3, 4, "sad", 0.49)],
                     10.0, unsure_below=0.5)
    assert runs == {("happy", False): [(0, 1), (2, 1)], ("happy", True): [(1, 1)], ("sad", True): [(3, 1)]}
    many = [row(i * 0.5, i * 0.5 + 0.4, ("happy", "sad", "angry")[(i // 7) % 3], 0.3 if i < 10_000 else 0.8)
            for i in range(20_000)]
    runs = lane_runs(many, 10_000.0, unsure_below=0.5)
    assert {e for e, _ in runs} == {"happy", "sad", "angry"} and sum(map(len, runs.values())) <= BINS
    covered = sum(w for r in runs.values() for _, w in r)
    assert 9_000 < covered <= 10_000.0 + 1e-6  # the bins with speech, at pixel resolution
    unsure = sum(w for (_, u), r in runs.items() if u for _, w in r)
    assert 4_900 < unsure < 5_100  # the first half of the session was unsure
    assert all(a >= 4_990 for (_, u), r in runs.items() if not u for a, _ in r)


def write_big_csv(path: Path, n: int, speakers: int = 4) -> Path:
    """``n`` rows in the session-CSV format, fast: the header written by CsvSink itself, rows like its own."""
    import csv as csv_module
    import random

    from emomon.monitor.sinks import iso
    from emomon.records import spreadsheet_safe

    sink = CsvSink(path, "5f0c2a9e7b1d", CLASSES, STEPS, fsync=False)
    sink.close()
    rnd = random.Random(7)
    probs = []
    for k in range(len(CLASSES) * 3):
        p = [rnd.random() for _ in CLASSES]
        p[k % len(CLASSES)] += 2
        probs.append([f"{x / sum(p):.4f}" for x in p])
    texts = ["so I think we should", "-- maybe not", "okay, really", "", "=1+1 is two"]
    t = 0.4
    with open(path, "a", newline="", encoding="utf-8") as f:
        w = csv_module.writer(f)
        for i in range(n):
            dur = 0.6 + (i * 7919 % 400) / 100
            k = i * 31 % len(probs)
            emotion = CLASSES[k % len(CLASSES)]
            w.writerow(["5f0c2a9e7b1d", f"S{i * 13 % speakers + 1}", 0, i, f"{t:.3f}", f"{t + dur:.3f}",
                        iso(T0 + t), iso(T0 + t + dur), spreadsheet_safe(texts[i % 5]),
                        emotion, probs[k][k % len(CLASSES)], *probs[k], emotion, "neutral", "en",
                        "" if i % 5 != 3 else "no-speech", 0, "400", "50", ""])
            t += dur + (i % 3) * 0.7
    return path


def test_report_of_100k_rows(tmp_path):
    """Scale (issue 31): 100,000 rows take seconds (one matplotlib bar per row took 50 s for 10,000), every row is in
    the page's table, the figure keeps its size."""
    import time

    path = write_big_csv(tmp_path / "big.csv", 100_000)
    t = time.perf_counter()
    html_path, png_path = write_report(path)
    took = time.perf_counter() - t
    page = html_path.read_text(encoding="utf-8")
    assert _table_rows(page) == 100_000 and "<td>Utterances</td><td>100000</td>" in page
    assert "=1+1 is two" in page and "'=1+1" not in page
    assert png_size(png_path) == figure_size_px(4)
    assert took < 60, took  # about 5 s on one core; the old drawing needed minutes


def test_clock():
    from emomon.monitor.views.report.summary import clock

    assert [clock(x) for x in (0, 61.25, 59.96, 3599.96, 36000.5, -3)] == [
        "00:00.0", "01:01.2", "01:00.0", "1:00:00.0", "10:00:00.5", "00:00.0"]
    assert clock(float("inf")) == clock(float("nan")) == clock(1e308) == "?"
