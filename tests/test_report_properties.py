"""Property tests of ``emomon report``'s CSV reader (hypothesis, issue 31): whatever a session CSV holds -- random
rows and cells, huge fields, nan/inf/1e308 numbers, formula prefixes, newlines and quotes, any unicode, a last line
cut anywhere -- the outcome is a report or one :class:`~emomon.errors.InputError` line, never anything else; and any
text the CSV sink writes reads back equal."""

from __future__ import annotations

import csv
import io
import math
import tempfile
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, example, given, settings, strategies as st  # noqa: E402

from emomon.cli import main  # noqa: E402
from emomon.errors import InputError  # noqa: E402
from emomon.monitor.sinks import CsvSink  # noqa: E402
from emomon.monitor.views.report.figure import bin_means, lane_runs  # noqa: E402
from emomon.monitor.views.report.page import render_html  # noqa: E402
from emomon.monitor.views.report.reading import MAX_SESSION_S, read_session  # noqa: E402
from emomon.monitor.views.affect import valence_arousal  # noqa: E402
from emomon.monitor.views.report.summary import (affect_of, affect_series, circumplex_probs, shares,  # noqa: E402
                                                 smoothing_window, time_range)
from emomon.records import FORMULA_STARTS, Result, Utterance, from_spreadsheet_safe, spreadsheet_safe  # noqa: E402

CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
STEPS = ("step1", "step2")
HEADER = (["session_id", "speaker", "stream", "utterance", "start_s", "end_s", "start_time", "end_time", "transcript",
           "emotion", "confidence"] + [f"p_{c}" for c in CLASSES] + [f"{s}_emotion" for s in STEPS]
          + ["language", "asr_note", "cut", "asr_ms", "emotion_ms", "latency_ms"])
FAST = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                                      HealthCheck.data_too_large])

# text that can be in a UTF-8 file (no lone surrogates); NUL makes a file binary, which is its own (tested) error
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)
NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["1e308", "-1e308", "nan", "inf", "-inf", "-0.5", "0", "1e-320", "31622400", "31622401",
                     "9" * 400, "0x10", "1_000", " 2.5 ", "", "'=1"]),
    st.integers(-10**30, 10**30).map(str),
    st.floats(0, 5000, allow_nan=False).map(lambda v: f"{v:.3f}"),
)
TIMES = st.one_of(st.sampled_from(["2026-11-22T14:30:05.123+01:00", "2026-11-22T14:30:05", "0001-01-01T00:00:00+23:59",
                                   "9999-12-31T23:59:59-23:59", "9999-12-31T23:59:59", "2026-02-30T00:00:00",
                                   "20261122T143005Z", "yesterday", ""]), TEXT)
HUGE = st.sampled_from(["x" * 140_000, "é" * 70_000 + "\n" * 10, '"' * 131_073, "=" + "a" * 200_000])
FORMULA = st.builds(lambda p, t: p + t, st.sampled_from([*FORMULA_STARTS, "'", "''"]), TEXT)
CELL = st.one_of(TEXT, NUMBERS, TIMES, FORMULA, st.sampled_from(CLASSES), st.sampled_from(["event", "S1", "S2"]))


@st.composite
def session_csv(draw) -> bytes:
    """A session CSV: the real header (maybe with columns dropped, moved or added), rows of random cells, often
    plausible; written by csv.writer or joined raw (broken quoting), maybe cut anywhere."""
    header = list(HEADER)
    if draw(st.booleans()):
        header = draw(st.permutations(header))
    if draw(st.integers(0, 4)) == 0:
        header = header[: draw(st.integers(0, len(header)))]
    header += draw(st.lists(TEXT, max_size=2))
    rows = []
    for _ in range(draw(st.integers(0, 6))):
        plausible = {"start_s": draw(NUMBERS), "end_s": draw(NUMBERS), "emotion": draw(st.sampled_from(CLASSES) | TEXT),
                     "speaker": draw(st.sampled_from(["S1", "S2"]) | TEXT | FORMULA), "transcript": draw(CELL | HUGE),
                     "start_time": draw(TIMES), "end_time": draw(TIMES), "confidence": draw(NUMBERS),
                     **{f"p_{c}": draw(NUMBERS) for c in CLASSES}}
        row = [plausible[h] if h in plausible and draw(st.integers(0, 5)) else draw(CELL) for h in header]
        rows.append(row[: draw(st.integers(0, len(row)))] if draw(st.integers(0, 5)) == 0 else row)
    if draw(st.booleans()):
        buf = io.StringIO(newline="")
        csv.writer(buf, lineterminator=draw(st.sampled_from(["\r\n", "\n", "\r"]))).writerows([header, *rows])
        text = buf.getvalue()
    else:
        text = "".join(",".join(r) + "\n" for r in [header, *rows])
    data = draw(st.sampled_from([b"", b"\xef\xbb\xbf"])) + text.encode("utf-8")
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]  # a killed session: cut anywhere, even inside a character
    return data


def _check_session(path: Path) -> None:
    """read_session gives a session whose every number is finite and in range, or an InputError of one line; the
    page, the figure's data and the summary work on the session."""
    try:
        session = read_session(path)
    except InputError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)
        return
    for r in session.rows:
        assert 0 <= r.start <= r.end <= MAX_SESSION_S and r.emotion and "\n" not in r.speaker + r.emotion
        assert r.confidence is None or 0 <= r.confidence <= 1
        assert all(0 <= p <= 1 for p in r.probs.values())
        probs = circumplex_probs(r)  # the fast reading equals the plain one
        assert affect_of(r) == (None if probs is None else pytest.approx(valence_arousal(probs)))
    span = max([r.end for r in session.rows], default=0.0)
    for rows in session.by_speaker.values():
        raw, smooth = affect_series(rows, smoothing_window(span))
        assert all(math.isfinite(x) for p in raw + smooth for x in p)
        bin_means(smooth, max(span, 1.0), bins=4)
        lane_runs(rows, max(span, 1.0))
        shares(rows, session.emotions)
    time_range(session)
    page = render_html(session, b"png", (1600, 300))
    assert page.endswith("</html>\n")


@settings(FAST, max_examples=150)
@given(data=session_csv())
@example(data=b"session_id,speaker,start_s,end_s,emotion\ns,A,0,1e308,happy\ns,A,0,1e308,sad\n")
@example(data=("session_id,speaker,start_s,end_s,start_time,end_time,emotion\n"
               "s,A,0,1,2026-01-01T00:00:00,2026-01-01T00:00:01+05:00,happy\n"
               "s,B,1,2,9999-12-31T23:59:59-23:59,0001-01-01T00:00:00+23:59,sad\n").encode())
def test_reader_gives_a_session_or_one_line(data):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "s.csv"
        path.write_bytes(data)
        _check_session(path)


@settings(FAST, max_examples=8)
@given(data=session_csv())
def test_emomon_report_gives_a_report_or_one_line(capsys, data):
    """The whole command (reading, figure, page, files): exit 0 with both files, or exit 3 with one error line."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "s.csv"
        path.write_bytes(data)
        capsys.readouterr()
        code = main(["report", str(path), "--out", str(Path(d) / "out")])
        out, err = capsys.readouterr()
        if code == 0:
            assert (Path(d) / "out" / "s.html").is_file() and (Path(d) / "out" / "s.png").is_file() and not err
        else:
            assert code == 3 and err.startswith("emomon: error: ") and err.count("\n") == 1, (code, err)


@FAST
@given(text=st.text(st.characters(blacklist_categories=("Cs",)), max_size=60))
def test_spreadsheet_escaping_round_trips(text):
    safe = spreadsheet_safe(text)
    assert from_spreadsheet_safe(safe) == text
    assert not safe.startswith(FORMULA_STARTS)


def _result(i: int, speaker: str, text: str, emotion: str) -> Result:
    u = Utterance(index=i, stream=0, speaker=speaker, audio=None,  # type: ignore[arg-type]
                  start=0.5 + 2 * i, end=1.5 + 2 * i, wall_start=1_790_000_000.0 + 2 * i,
                  wall_end=1_790_000_001.0 + 2 * i, closed_at=0.0)
    probs = {c: 1 / len(CLASSES) for c in CLASSES}
    return Result(utterance=u, text=text, emotion=emotion, confidence=0.5, probs=probs,
                  step_emotions={"step1": emotion, "step2": text}, language="en")


ONE_LINE = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"),
                                 blacklist_characters="\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"),
                   min_size=1, max_size=30).map(str.strip).filter(bool)


@settings(FAST, max_examples=60)
@given(texts=st.lists(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=50)
                      | FORMULA, min_size=1, max_size=4),
       speaker=ONE_LINE | ONE_LINE.map(lambda s: "=" + s), emotion=ONE_LINE, note=TEXT | FORMULA)
def test_text_written_by_the_sink_reads_back_equal(texts, speaker, emotion, note):
    """Transcripts and event notes of any text, and one-line speaker names and labels, survive the CSV exactly."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "s.csv"
        sink = CsvSink(path, "sess", CLASSES, STEPS, fsync=False)
        for i, t in enumerate(texts):
            sink.write(_result(i, speaker, t, emotion))
        sink.notice(note)
        sink.close()
        session = read_session(path)
    assert [r.transcript for r in session.rows] == texts
    assert {r.speaker for r in session.rows} == {speaker} and {r.emotion for r in session.rows} == {emotion}
    assert session.notes[-1].split(": ", 1)[1] == note.strip()
