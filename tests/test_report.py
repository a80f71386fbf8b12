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
