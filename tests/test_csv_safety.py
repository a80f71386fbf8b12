"""The session CSV is safe to open in a spreadsheet (issue 31, item 10): free-text cells that a spreadsheet would run
as a formula are neutralised when written, read back exactly by ``emomon report``; numbers stay numbers; speaker
names are one line."""

from __future__ import annotations

import csv

import pytest

from emomon.cli import main
from emomon.monitor.sinks import CsvSink
from emomon.monitor.views.report.reading import read_session
from emomon.records import (FORMULA_STARTS, LINE_BREAKERS, Result, Utterance, from_spreadsheet_safe, one_line,
                            spreadsheet_safe)

CLASSES = ("angry", "happy", "neutral")
STEPS = ("step1",)


def _result(i: int, speaker: str, text: str, *, emotion: str = "happy", step: str = "neutral", note: str = "",
            latency: float | None = None) -> Result:
    u = Utterance(index=i, stream=0, speaker=speaker, audio=None,  # type: ignore[arg-type]
                  start=1.0 + 3 * i, end=2.5 + 3 * i, wall_start=1_790_000_000.0 + 3 * i,
                  wall_end=1_790_000_001.5 + 3 * i, closed_at=0.0)
    probs = {"angry": 0.1, "happy": 0.7, "neutral": 0.2}
    return Result(utterance=u, text=text, emotion=emotion, confidence=0.7, probs=probs, step_emotions={"step1": step},
                  asr_note=note, language="en", latency=latency)


def _cells(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("text", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "'=1", "'",
                                  '=HYPERLINK("http://x","y")'])
def test_formula_starts_are_neutralised_and_read_back(tmp_path, text):
    assert spreadsheet_safe(text) == "'" + text
    assert from_spreadsheet_safe(spreadsheet_safe(text)) == text
    assert not spreadsheet_safe(text).startswith(FORMULA_STARTS)


@pytest.mark.parametrize("text", ["hello", "", " =not a formula", "1.5", "'plain quote?", "é=", "''x"])
def test_other_text_round_trips(text):
    assert from_spreadsheet_safe(spreadsheet_safe(text)) == text
    if not text.startswith("'"):
        assert spreadsheet_safe(text) == text  # nothing added to ordinary text


def test_sink_writes_text_safely_and_numbers_plainly(tmp_path):
    path = tmp_path / "s.csv"
    sink = CsvSink(path, "sess", CLASSES, STEPS, fsync=False)
    evil_name = '=HYPERLINK("http://evil.example","click")'
    sink.write(_result(0, evil_name, "-- well, I think", emotion="+happy", step="@step", note="-note", latency=-0.005))
    sink.write(_result(1, "'quoted", "'ordinary' quotes"))
    sink.notice("=cmd|' /C calc'!A0")
    sink.close()
    rows = _cells(path)
    first, second, event = rows
    # every free-text cell is neutralised: no cell of a text column starts a formula
    for row in rows:
        for col in ("session_id", "speaker", "transcript", "emotion", "step1_emotion", "language", "asr_note"):
            assert not row[col].startswith(FORMULA_STARTS), (col, row[col])
    assert first["speaker"] == "'" + evil_name and first["transcript"] == "'-- well, I think"
    assert first["emotion"] == "'+happy" and first["step1_emotion"] == "'@step" and first["asr_note"] == "'-note"
    assert event["transcript"] == "'=cmd|' /C calc'!A0"
    assert second["speaker"] == "''quoted" and second["transcript"] == "''ordinary' quotes"
    # numbers emomon writes stay plain numbers, negative ones too
    assert first["latency_ms"] == "-5" and first["start_s"] == "1.000" and first["p_angry"] == "0.1000"
    # the report reads every text back exactly
    session = read_session(path)
    r0, r1 = session.rows
    assert (r0.speaker, r0.transcript, r0.emotion, r0.asr_note) == (evil_name, "-- well, I think", "+happy", "-note")
    assert (r1.speaker, r1.transcript) == ("'quoted", "'ordinary' quotes")
    assert any(n.endswith("=cmd|' /C calc'!A0") for n in session.notes)


def test_one_line():
    assert one_line("a\nb\rc\td\x1b[31m\u2028e\u202e") == "a b c d [31m e "
    assert one_line("Ana María 李") == "Ana María 李"
    assert all(one_line(c) == " " for c in LINE_BREAKERS)


@pytest.mark.parametrize("name", ["Bob\nEVIL: fake line", "a\rb", "a\x1b[2Jb", "x\u2028y", "tab\there",
                                  "rtl\u202eevil"])
def test_speaker_names_must_be_one_line(capsys, tmp_path, name):
    code = main(["replay", "--speaker", f"0={name}", "--csv", str(tmp_path / "s.csv"), str(tmp_path / "none.wav")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("emomon: error: --speaker") and err.count("\n") == 1, err
    assert not (tmp_path / "s.csv").exists()


def test_report_speaker_from_csv_is_one_line(tmp_path):
    """A CSV edited by hand (or by an older emomon) with a multi-line speaker: the report prints it on one line."""
    p = tmp_path / "s.csv"
    p.write_text('session_id,speaker,start_s,end_s,emotion,transcript\n'
                 's,"Bob\nFAKE: line\r\x1b[31m",0.5,1.5,happy,"two\nlines are fine here"\n', encoding="utf-8")
    (row,) = read_session(p).rows
    assert row.speaker == "Bob FAKE: line  [31m" and row.transcript == "two\nlines are fine here"
