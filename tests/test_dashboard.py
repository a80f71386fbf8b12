"""The live dashboard, fed with fake results (no models): what it shows at 80x24 and 160x48, the affect readings
and alert, bounded memory, thread safety and the Live start/stop."""

from __future__ import annotations

import io
import re
import threading
import time

import numpy as np
import pytest
from rich.console import Console

from emomon.config import AlertsConfig, DashboardConfig
from emomon.monitor.views.alerts import AlertTracker
from emomon.monitor.views.dashboard import Dashboard, DashboardStatus
from emomon.monitor.views.dashboard.state import percent_shares
from emomon.monitor.views.dashboard.style import clock, span
from emomon.records import Result, Utterance

CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
_n = 0


def result(speaker: str, emotion: str, start: float, dur: float = 3.0, conf: float = 0.9, text: str = "hello there",
           note: str = "") -> Result:
    global _n
    _n += 1
    probs = {c: (1.0 - conf) / (len(CLASSES) - 1) for c in CLASSES}
    probs[emotion] = conf
    u = Utterance(_n, 0, speaker, np.zeros(1, np.float32), start, start + dur, 1e9 + start, 1e9 + start + dur, 0.0)
    return Result(u, text, emotion, conf, probs, {}, asr_note=note)


def status(**kw) -> DashboardStatus:
    base = dict(elapsed=754.0, inputs=("Mic 1", "talk.wav"), model="base", device="cpu", speed=2.5, queue=3)
    base.update(kw)
    return DashboardStatus(**base)


def render(d: Dashboard, width: int = 80, height: int = 24) -> str:
    console = Console(record=True, width=width, height=height, file=io.StringIO(), color_system=None)
    console.print(d.renderable(), height=height)
    return console.export_text()


def conversation(d: Dashboard, speakers=("Teacher", "Student"), n: int = 24) -> None:
    emotions = {"Teacher": ["happy", "happy", "neutral"], "Student": ["angry", "sad", "angry", "fear"]}
    t = 2.0
    for i in range(n):
        sp = speakers[i % len(speakers)]
        seq = emotions.get(sp, ["neutral", "surprise", "happy"])
        d.write(result(sp, seq[i % len(seq)], t, 2.5, 0.6 + 0.01 * (i % 30), f"line {i} from {sp}"))
        t += 4.0


def va(text: str, name: str | None = None) -> tuple[float, float]:
    m = re.search(r"(?:valence|V) ?([+-]\d\.\d\d).*?(?:arousal|A) ?([+-]\d\.\d\d)", text)
    assert m, text
    return float(m.group(1)), float(m.group(2))


# ------------------------------------------------------------------------------------------------ header
def test_header_shows_session_fields_and_drops_only_when_nonzero():
    d = Dashboard(DashboardConfig(), CLASSES, lambda: status())
    d.write(result("Teacher", "happy", 1.0))
    text = render(d)
    head = text.splitlines()[0]
    for want in ("12:34", "base", "cpu", "2.5x", "queue 3", "Mic 1", "talk.wav"):
        assert want in head, (want, head)
    assert "dropped" not in text

    d2 = Dashboard(DashboardConfig(), CLASSES, lambda: status(speed=None, latency=0.84, dropped_audio_s=1.5,
                                                              dropped_utterances=2, elapsed=3723))
    text = render(d2, 160, 48)
    assert "1:02:03" in text and "latency 0.8s" in text
    assert "dropped 1.5s audio, 2 utterances" in text


def test_status_may_be_a_dict_and_a_failing_status_does_not_break_rendering():
    d = Dashboard(DashboardConfig(), CLASSES, lambda: {"elapsed": 5, "model": "tiny", "queue": 0, "unknown": 1})
    assert "tiny" in render(d) and "waiting for speech" in render(d)

    def boom():
        raise RuntimeError("stats gone")

    d = Dashboard(DashboardConfig(), CLASSES, boom)
    assert "status unavailable: stats gone" in render(d)


def test_notices_show_in_the_header_area():
    d = Dashboard(DashboardConfig(), CLASSES, lambda: status(notice="ASR stage failed"))
    conversation(d)
    d.notice("input 'Mic 2' stopped: device disconnected")
    top = "\n".join(render(d).splitlines()[:3])
    assert "device disconnected" in top and "ASR stage failed" in top


# ------------------------------------------------------------------------------------------------ speakers
@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
def test_speakers_current_emotion_shares_and_legend_once(size):
    d = Dashboard(DashboardConfig(), CLASSES, lambda: status())
    conversation(d, ("Teacher", "Student", "Parent"), 30)
    d.write(result("Teacher", "happy", 200.0, conf=0.93))
    d.write(result("Student", "angry", 204.0, conf=0.71))
    text = render(d, *size)
    assert "Teacher" in text and "Student" in text and "Parent" in text
    assert "happy 0.93" in text and "angry 0.71" in text
    # the legend, once for the whole screen
    assert text.count("· silence") == 1 and text.count("D disgust") == 1
    for c in CLASSES:
        assert c in text
    # shares: per speaker they sum to 100 (a "mix" line, or one bar per class in tall panels)
    if size == (80, 24):
        mixes = [ln for ln in text.splitlines() if "mix " in ln]
        assert len(mixes) == 3
        for ln in mixes:
            shares = [int(p) for p in re.findall(r"[a-z]+ (\d+)%", ln.split("mix ", 1)[1])]
            assert sum(shares) == 100, ln
    else:
        first_col = [ln[:55] for ln in text.splitlines()]
        bar = re.compile(r"(?:angry|disgust|fear|happy|neutral|sad|surprise) +[█·]+ +(\d+)%")
        bars = [int(m.group(1)) for ln in first_col if (m := bar.search(ln))]
        assert len(bars) == len(CLASSES) and sum(bars) == 100
        # a wide terminal puts the speakers side by side
        assert any("Teacher" in ln and "Student" in ln and "Parent" in ln for ln in text.splitlines())


def test_percent_shares_round_to_100():
    assert sum(p for _, p in percent_shares({"a": 1, "b": 1, "c": 1})) == 100
    assert percent_shares({"a": 2, "b": 1, "c": 0}) == [("a", 67), ("b", 33)]
    assert percent_shares({}) == []
    assert clock(65) == "01:05" and clock(3723) == "1:02:03" and span(130) == "2m10s" and span(9) == "9s"


def test_transcript_tail_with_speaker_emotion_text_and_rejected_note():
    cfg = DashboardConfig(transcript_lines=4)
    d = Dashboard(cfg, CLASSES, lambda: status())
    conversation(d, n=10)
    d.write(result("Student", "sad", 60.0, text="", note="hallucination"))
    d.write(result("Teacher", "happy", 64.0, text="what a great answer"))
    text = render(d)
    lines = text.splitlines()
    i = next(k for k, ln in enumerate(lines) if ln.startswith("transcript"))
    tail = lines[i + 1:]
    assert len(tail) == 4
    assert re.search(r"01:04 Teacher +happy +0\.90 +what a great answer", tail[-1])
    assert re.search(r"01:00 Student +sad .*\(no transcript: hallucination\)", tail[-2])
    assert "line 0 from" not in text  # older lines scrolled away


def test_valence_arousal_follow_the_emotions():
    happy = Dashboard(DashboardConfig(), CLASSES, lambda: status())
    angry = Dashboard(DashboardConfig(), CLASSES, lambda: status())
    for k in range(10):
        happy.write(result("Ann", "happy", 3.0 * k, 2.5))
        angry.write(result("Bob", "angry", 3.0 * k, 2.5))
    v, a = va(render(happy))
    assert v > 0.5 and a > 0.2
    v2, a2 = va(render(angry))
    assert v2 < -0.4 and a2 > 0.5
    # a mood change moves the smoothed reading
    for k in range(10, 30):
        angry.write(result("Bob", "sad", 3.0 * k, 2.5))
    v3, a3 = va(render(angry))
    assert v3 < -0.5 and a3 < 0.0


def test_alert_only_after_alert_seconds_and_gone_when_affect_drops():
    """The dashboard shows the session's alert tracker's alerts: fed as the session feeds it (the sinks, then the
    tracker, whose ended alerts go to the sinks' ``alert``)."""
    cfg = DashboardConfig(alert_seconds=60.0, alert_threshold=0.6, va_window_s=30.0)
    tracker = AlertTracker(AlertsConfig(kinds=("negative-affect",)), cfg)
    d = Dashboard(cfg, CLASSES, lambda: status(), alerts=tracker)

    def deliver(r):
        d.write(r)
        for a in tracker.add(r):
            d.alert(a)

    deliver(result("Ann", "neutral", 0.0, 4.0, 0.9))
    for k in range(12):  # angry utterances ending at 9, 14, ... 64: high since 9 s
        deliver(result("Bob", "angry", 5.0 + 5 * k, 4.0))
        text = render(d)
        if k < 12 - 1:
            assert "negative affect high" not in text, k
    assert "Bob: negative affect high for 55s" not in text
    deliver(result("Bob", "angry", 65.0, 4.0))  # ends at 69: 60 s high
    text = render(d)
    assert "Bob: negative affect high for 1m00s" in text
    assert "Ann: negative" not in text
    # it clears once the smoothed negative affect drops below the threshold, and shows as ended
    t = 70.0
    for _ in range(4):
        deliver(result("Bob", "happy", t, 4.0))
        t += 5.0
    text = render(d)
    assert "negative affect high" not in text
    (ended,) = tracker.ended
    assert (ended.speaker, ended.kind, ended.since_s) == ("Bob", "negative-affect", 9.0)
    assert f"ended: Bob: negative affect 00:09–{clock(ended.until_s)}" in text


def test_no_tracker_no_alert():
    d = Dashboard(DashboardConfig(alert_seconds=0.0), CLASSES, lambda: status())
    for k in range(5):
        d.write(result("Bob", "angry", 5.0 * k, 4.0))
    assert "negative affect high" not in render(d)


# ------------------------------------------------------------------------------------------------ sizes
@pytest.mark.parametrize("n", [1, 2, 3, 5, 9, 16, 30])
def test_fits_80x24_whatever_the_number_of_speakers(n):
    names = [f"Speaker{i}" for i in range(n)]
    d = Dashboard(DashboardConfig(), CLASSES, lambda: status(dropped_audio_s=2.0, dropped_utterances=1))
    conversation(d, tuple(names), max(24, 3 * n))
    d.notice("input 'Mic 2' stopped: device disconnected")
    text = render(d, 80, 24)
    lines = text.splitlines()
    assert len(lines) <= 24 and all(len(ln) <= 80 for ln in lines)
    assert lines[0].lstrip().startswith("emomon") and "dropped 2.0s audio" in lines[1]
    assert sum("· silence" in ln for ln in lines) == 1
    top = "\n".join(lines[:next((k for k, ln in enumerate(lines) if ln.startswith("transcript")), len(lines))])
    shown = [s for s in names if re.search(rf"\b{s}\b", top)]
    if n <= 16:
        assert len(shown) == n and "more speakers" not in text
    else:  # the most recently active ones, and a count of the rest
        assert 0 < len(shown) < n and f"+{n - len(shown)} more speakers" in text
        assert f"Speaker{n - 1}" in shown and "Speaker0" not in shown
    if n <= 3:
        assert any(ln.startswith("transcript") for ln in lines)
        assert "mix " in text or re.search(r"angry +[█·]+ +\d+%", text)
    # every speaker shown keeps its current emotion word next to its name
    for s in shown:
        assert re.search(rf"{s}\b.*\b(angry|happy|neutral|sad|fear|surprise) +\d\.\d\d", top)


def test_wide_terminal_uses_the_room():
    d = Dashboard(DashboardConfig(), CLASSES, lambda: status())
    conversation(d, ("Teacher", "Student"), 30)
    narrow, wide = render(d, 80, 24), render(d, 160, 48)
    assert len(wide.splitlines()) > len(narrow.splitlines())
    assert max(len(ln) for ln in wide.splitlines()) > 120
    assert "real time" in wide  # the spelled-out speed


def test_timeline_shows_only_the_window_relative_to_session_time():
    d = Dashboard(DashboardConfig(timeline_minutes=5), CLASSES, lambda: status())
    for k in range(3):
        d.write(result("Ann", "angry", 3.0 * k, 2.5))
    for k in range(3):
        d.write(result("Ann", "happy", 400.0 + 3 * k, 2.5))
    row = next(ln for ln in render(d).splitlines() if "5m " in ln)
    cells = row.split("5m ", 1)[1]
    assert "H" in cells and "A" not in cells
    assert cells.count("H") == 3  # a mark per utterance in the window
    assert cells.rstrip(" │").endswith("H")  # newest on the right


def test_emotion_words_are_coloured_with_a_fixed_colour():
    d = Dashboard(DashboardConfig(), CLASSES, lambda: status())
    d.write(result("Ann", "angry", 1.0))
    d.write(result("Ann", "sad", 5.0))
    console = Console(width=80, height=24, file=io.StringIO(), color_system="truecolor")
    segs = list(console.render(d, console.options.update(height=24)))
    colours = {s.text.strip(): s.style.color.name for s in segs
               if s.style and s.style.color and s.text.strip() in CLASSES}
    assert colours.get("angry") == "red" and colours.get("sad") == "blue"


# ------------------------------------------------------------------------------------------------ memory, threads, Live
def test_memory_is_bounded():
    cfg = DashboardConfig(timeline_minutes=1, transcript_lines=5)
    d = Dashboard(cfg, CLASSES)
    for k in range(3000):
        d.write(result(f"S{k % 3}", CLASSES[k % 7], 2.0 * k, 1.5))
    assert len(d.state.transcript) == 5
    assert all(len(s.timeline) <= 60 / 6 + 2 for s in d.state.speakers.values())
    assert all(len(s.tracker.points) <= 30 / 6 + 2 for s in d.state.speakers.values())


def test_writes_from_a_thread_while_rendering():
    d = Dashboard(DashboardConfig(), CLASSES, lambda: status())
    errors = []

    def writer():
        try:
            for k in range(400):
                d.write(result(f"S{k % 4}", CLASSES[k % 7], 1.0 * k, 0.8))
                if k % 50 == 0:
                    d.notice(f"notice {k}")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    th = threading.Thread(target=writer)
    th.start()
    while th.is_alive():
        text = render(d, 80, 24)
        assert "dashboard error" not in text
    th.join()
    assert not errors
    assert sum(s.utterances for s in d.state.speakers.values()) == 400


def test_live_start_stop_on_a_non_terminal_console_and_fixed_rate():
    out = io.StringIO()
    console = Console(file=out, width=80, height=24, force_terminal=False)
    d = Dashboard(DashboardConfig(refresh_hz=10), CLASSES, lambda: status(), console)
    calls = []
    original = d.snapshot
    d.snapshot = lambda: calls.append(1) or original()
    d.start()
    d.start()  # idempotent
    t0 = time.monotonic()
    for k in range(300):  # a burst of results: no repaint per result
        d.write(result(f"S{k % 2}", "happy", 1.0 * k, 0.8))
    time.sleep(0.35)
    d.stop()
    d.stop()
    elapsed = time.monotonic() - t0
    assert len(calls) <= elapsed * 10 + 3
    d.close()
    assert "emomon" in out.getvalue() and "S0" in out.getvalue()


def test_live_on_a_terminal_console_with_screen():
    out = io.StringIO()
    console = Console(file=out, width=80, height=24, force_terminal=True, color_system="standard")
    d = Dashboard(DashboardConfig(refresh_hz=20), CLASSES, lambda: status(), console, screen=True)
    with d:
        d.write(result("Ann", "angry", 1.0))
        time.sleep(0.2)
    d.close()
    assert "Ann" in out.getvalue() and "angry" in out.getvalue()


def test_tall_screen_fills_with_transcript_short_screen_keeps_fit():
    d = Dashboard(DashboardConfig(), CLASSES, lambda: status())
    conversation(d, n=40)
    for width, height in ((160, 48), (80, 24)):
        lines = render(d, width, height).splitlines()
        assert len(lines) <= height
        i = next(k for k, ln in enumerate(lines) if ln.startswith("transcript"))
        tail = [ln for ln in lines[i + 1:] if ln.strip()]
        assert tail[-1].strip().endswith("line 39 from Student")
        if height == 48:  # the lower half is transcript, not blank
            assert len(tail) > 8 and len(lines) - i - 1 - len(tail) <= 1
        else:  # the tail takes what the speaker panels leave, no more
            assert 1 <= len(tail) < 30 and len(lines) >= height - 1


# ------------------------------------------------------------------------------------------------ confidence
def test_an_unsure_reading_looks_different_from_a_firm_one():
    """A 0.43 'surprise' is dim with a '?' (timeline and transcript); a 0.90 'happy' is drawn firm; the threshold is
    [dashboard] unsure_below."""
    d = Dashboard(DashboardConfig(), CLASSES, lambda: status())
    d.write(result("Ann", "happy", 2.0, 4.0, conf=0.90, text="what a lovely day"))
    d.write(result("Ann", "surprise", 8.0, 4.0, conf=0.43, text="oh really"))
    text = render(d, 80, 30)
    tail = {ln.split()[-1]: ln for ln in text.splitlines() if re.match(r"\d\d:\d\d Ann", ln)}
    assert re.search(r"surprise\? +0\.43", tail["really"]) and re.search(r"happy +0\.90", tail["day"])
    assert "happy?" not in text
    timeline = next(ln for ln in text.splitlines() if ln.startswith("│ 1m "))
    assert re.search(r"H█+[·]*U\?░*", timeline), timeline  # firm: letter + blocks; unsure: letter, ?, shade
    # the styles, not only the characters: the unsure word is dim, the firm one bold
    console = Console(file=io.StringIO(), width=80, height=30, color_system="standard", force_terminal=True)
    lines = console.render_lines(d, console.options.update(height=30), pad=False)
    styles = {}
    for line in lines:
        for seg in line:
            if seg.text.strip() in ("surprise?", "happy"):
                styles[seg.text.strip()] = seg.style
    assert styles["surprise?"].dim and not styles["happy"].dim and styles["happy"].bold
    # a lower threshold makes the same reading firm
    firm = Dashboard(DashboardConfig(unsure_below=0.4), CLASSES, lambda: status())
    firm.write(result("Ann", "surprise", 8.0, 4.0, conf=0.43, text="oh really"))
    assert "surprise?" not in render(firm, 80, 30) and "U?" not in render(firm, 80, 30)


def test_unsure_below_is_a_bounded_dashboard_setting(tmp_path):
    from emomon.config import load_config
    from emomon.errors import ConfigError

    assert load_config("default").dashboard.unsure_below == 0.5
    preset = tmp_path / "p.toml"
    preset.write_text('extends = "default"\n[dashboard]\nunsure_below = 0.65\n')
    assert load_config(preset).dashboard.unsure_below == 0.65
    preset.write_text('extends = "default"\n[dashboard]\nunsure_below = 1.5\n')
    with pytest.raises(ConfigError, match="unsure_below"):
        load_config(preset)


def test_every_utterance_has_its_mark_while_the_session_is_shorter_than_the_window():
    """The timeline spans the session so far (at least a minute), so the sample's eleven utterances, each with its
    own letter, fit an 80-column panel; past timeline_minutes it scrolls."""
    d = Dashboard(DashboardConfig(timeline_minutes=5), CLASSES, lambda: status())
    spans = [(0.8, 4.3), (5.5, 9.1), (10.1, 13.5), (14.7, 19.1), (20.0, 23.5), (24.8, 28.5), (29.5, 31.2),
             (31.5, 32.8), (34.1, 37.6), (38.6, 41.4), (42.6, 47.3)]
    for k, (a, b) in enumerate(spans):
        d.write(result("S1", "sad" if k % 3 else "happy", a, b - a, conf=0.8))
    for size in ((80, 30), (160, 40)):
        row = next(ln for ln in render(d, *size).splitlines() if ln.startswith("│ 1m "))
        cells = row[len("│ 1m "):]
        assert sum(cells.count(sym) for sym in "HS") == len(spans), row
    d.write(result("S1", "happy", 600.0, 3.0))
    row = next(ln for ln in render(d, 80, 30).splitlines() if ln.startswith("│ 5m "))
    assert row.count("S") == 0 and row.count("H") == 1  # only the window's last 5 minutes


# ------------------------------------------------------------------------------------------------ final frame
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
ALT_SCREEN_OFF = "\x1b[?1049l"


def final_frame(raw: str) -> list[str]:
    """What stays on a terminal after a screen view ends: the text printed after it left the alternate screen."""
    assert ALT_SCREEN_OFF in raw, "the view never ran on the alternate screen"
    return ANSI.sub("", raw.rsplit(ALT_SCREEN_OFF, 1)[1]).splitlines()


def frame_counts(lines: list[str], symbols: str = "ADFHNSU") -> dict[str, tuple[int, int]]:
    """Per speaker panel: (the utterance count in its title, the marks in its timeline)."""
    out = {}
    for k, ln in enumerate(lines):
        m = re.match(r"╭─\s+(?P<name>\S.*?)\s{2}[a-z]+\??\s+\d\.\d\d\s+(?P<n>\d+) utt", ln)
        if m:
            cells = lines[k + 1].strip("│ ").split(" ", 1)[1]
            out[m.group("name")] = (int(m.group("n")), sum(cells.count(s) for s in symbols))
    return out


def test_a_screen_view_leaves_its_final_frame_with_every_result_and_room_for_the_summary():
    """The results delivered just before the end (no repaint since) are in the final frame, which stays on the normal
    screen, ``footer`` rows short of the terminal so the caller's summary fits below it."""
    out = io.StringIO()
    console = Console(file=out, width=80, height=50, force_terminal=True, color_system="standard")
    summary = ["session abc: 12 utterances from 2 speaker(s)", "  CSV: x.csv", "a long line " * 10]
    d = Dashboard(DashboardConfig(refresh_hz=0.5), CLASSES, lambda: status(), console, footer=lambda: summary)
    d.start()
    time.sleep(0.2)  # the first paint: no result yet
    for k in range(40):  # a burst right before the end: no repaint shows these
        d.write(result(f"S{k % 2 + 1}", "happy" if k % 2 else "sad", 1.0 + 4 * k, 3.0, conf=0.9 if k % 3 else 0.3,
                       text=f"line {k}"))
    d.close("session complete: 40 utterances")
    lines = final_frame(out.getvalue())
    assert frame_counts(lines) == {"S1": (20, 20), "S2": (20, 20)}
    assert "session complete: 40 utterances" in "\n".join(lines) and " ended" in lines[0]
    assert lines[-1].endswith("line 39")
    assert len(lines) == 50 - (1 + 1 + 2) - 1  # the summary's rows (the long line wraps to 2) and the prompt's
    d.stop()  # idempotent: no second frame
    assert out.getvalue().count(ALT_SCREEN_OFF) == 1 and len(final_frame(out.getvalue())) == len(lines)


def test_close_takes_the_sessions_end_line():
    """The pipeline closes every sink with the session's end line (``sink.close(status)``)."""
    d = Dashboard(DashboardConfig(), CLASSES, lambda: status())
    d.write(result("Ann", "happy", 1.0))
    d.close("session stopped (SIGINT) after 1 utterances")
    assert "session stopped (SIGINT) after 1 utterances" in render(d)


# ------------------------------------------------------------------------------------------------ a real replay
def _csv_rows(path):
    import csv

    with open(path, newline="", encoding="utf-8") as f:
        return [r for r in csv.DictReader(f) if r["utterance"]]


def _replay_with_dashboard(tmp_path, files, **opts):
    """``emomon replay FILES --dashboard`` in-process, the dashboard on a captured 80x60 terminal: (final frame,
    CSV rows)."""
    from emomon.config import load_config
    from emomon.monitor.app import MonitorOptions, run_monitor

    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=80, height=60, color_system="standard")
    csv_path = tmp_path / "session.csv"
    code = run_monitor(load_config("default"), MonitorOptions(files=files, csv=csv_path, dashboard=True, **opts),
                       live=False, dashboard_console=console)
    assert code == 0
    return final_frame(out.getvalue()), _csv_rows(csv_path)


def _check_frame_against_csv(lines: list[str], rows: list[dict]) -> None:
    import collections

    from emomon.monitor.views.dashboard.style import clock

    per_speaker = collections.Counter(r["speaker"] for r in rows)
    counts = frame_counts(lines)
    # every utterance of the CSV: counted under its speaker, and a mark of its own in that speaker's timeline
    assert {name: n for name, (n, _) in counts.items()} == dict(per_speaker), (counts, per_speaker)
    assert {name: marks for name, (_, marks) in counts.items()} == dict(per_speaker), "\n".join(lines)
    # and a transcript line each (the terminal is tall enough), unsure exactly when the CSV's confidence says so
    text = "\n".join(lines)
    for r in rows:
        conf = float(r["confidence"])
        mark = "?" if conf < 0.5 else ""
        want = rf"{clock(float(r['start_s']))} {re.escape(r['speaker'])} +{r['emotion']}{re.escape(mark)} +{conf:.2f}"
        assert re.search(want, text), (want, text)
    assert "session complete" in text


def test_replay_dashboard_final_frame_matches_the_csv_one_speaker(tmp_path):
    from emomon.monitor.app import sample_recording

    lines, rows = _replay_with_dashboard(tmp_path, [sample_recording()])
    assert len(rows) >= 8
    _check_frame_against_csv(lines, rows)


def test_replay_dashboard_final_frame_matches_the_csv_two_speakers(tmp_path):
    """A stereo call (--split-channels): the sample's first half on the left, its second half on the right."""
    from emomon.audio.decode import load_audio
    from emomon.monitor.app import sample_recording
    from emomon.training.data.synth import write_wav

    audio = load_audio(sample_recording())
    cut = int(24.2 * 16000)
    stereo = np.zeros((len(audio), 2), np.float32)
    stereo[:cut, 0], stereo[cut:, 1] = audio[:cut], audio[cut:]
    lines, rows = _replay_with_dashboard(tmp_path, [write_wav(tmp_path / "call.wav", stereo)], split_channels=True)
    assert len({r["speaker"] for r in rows}) == 2 and len(rows) >= 8
    _check_frame_against_csv(lines, rows)
