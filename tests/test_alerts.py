"""Alerts that last (emomon.monitor.views.alerts): each kind on a synthetic session, and a near miss that must not
fire; the same alerts in the session CSV (written through the session's own delivery), read back by the report,
shown by the dashboard and printed by the lines; the report's alert section and its unsure readings."""

from __future__ import annotations

import csv
import dataclasses
import io
import re
from pathlib import Path

import numpy as np
import pytest

from emomon.config import AlertsConfig, DashboardConfig, config_from_dict, load_config
from emomon.errors import ConfigError
from emomon.monitor.views.alerts import AlertTracker
from emomon.records import Alert, Result, Utterance

CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
T0 = 1_790_000_000.0
_n = 0


def result(speaker: str, start: float, dur: float = 4.0, probs: dict | None = None, emotion: str = "neutral",
           conf: float = 0.9) -> Result:
    """An utterance of ``speaker`` from ``start`` for ``dur`` s: ``probs`` as given, else ``emotion`` at ``conf``."""
    global _n
    _n += 1
    if probs is None:
        probs = {c: (1.0 - conf) / (len(CLASSES) - 1) for c in CLASSES}
        probs[emotion] = conf
    else:
        probs = {c: probs.get(c, 0.0) for c in CLASSES}
    top = max(probs, key=probs.get)
    u = Utterance(_n, 0, speaker, np.zeros(1, np.float32), start, start + dur, T0 + start, T0 + start + dur, 0.0)
    return Result(u, f"words {_n}", top, probs[top], probs, {"step1": top, "step2": top}, language="en")


def tracker(*kinds: str, dashboard: DashboardConfig | None = None, **settings) -> AlertTracker:
    return AlertTracker(AlertsConfig(kinds=kinds, **settings), dashboard or DashboardConfig())


def feed(t: AlertTracker, results: list[Result], end: float | None = None) -> list[Alert]:
    """Every alert the session would write: those ended by the results, then those the session's end ends."""
    out = []
    for r in results:
        out += t.add(r)
    return out + t.close(end)


def every(speaker: str, start: float, stop: float, step: float = 5.0, **kw) -> list[Result]:
    return [result(speaker, s, **kw) for s in np.arange(start, stop, step)]


# ------------------------------------------------------------------------------------------ negative affect
def test_negative_affect_after_alert_seconds_until_it_drops():
    t = tracker("negative-affect")  # [dashboard] alert_threshold 0.6, alert_seconds 60, va_window_s 30
    angry = every("Bob", 0.0, 70.0, emotion="angry")  # ends 4, 9 ... 69: high from 4 s
    assert not any(t.add(r) for r in angry[:12])
    assert t.active() == []  # 59 s high: not yet
    assert t.add(angry[12]) == []  # ends at 64: 60 s high
    (going,) = t.active()
    assert (going.speaker, going.kind, going.since_s, going.until_s) == ("Bob", "negative-affect", 4.0, None)
    assert t.add(angry[13]) == [] and len(t.active()) == 1
    ended = []
    for r in every("Bob", 70.0, 100.0, emotion="happy"):
        ended += t.add(r)
    (a,) = ended
    # it ends at the first utterance whose smoothed negative share is below 0.6
    assert (a.speaker, a.kind, a.since_s) == ("Bob", "negative-affect", 4.0) and 74.0 <= a.until_s <= 90.0
    assert "60%" in a.detail and t.active() == [] and t.close() == []
    assert t.ended == [a]


def test_negative_affect_near_misses():
    t = tracker("negative-affect")
    # 40 s of angry speech, then calm: the smoothed share stays high some 50 s, never 60
    assert feed(t, every("Bob", 0.0, 40.0, emotion="angry") + every("Bob", 40.0, 90.0, emotion="happy")) == []
    # high for 85 s of session time, but a 40 s gap in the speech (longer than the 30 s window) cuts the stretch
    t = tracker("negative-affect")
    assert feed(t, every("Bob", 0.0, 40.0, emotion="angry") + every("Bob", 80.0, 115.0, emotion="angry")) == []
    # below the threshold all along (a 50/50 mix of angry and neutral: 0.5 < 0.6)
    t = tracker("negative-affect")
    assert feed(t, every("Bob", 0.0, 300.0, probs={"angry": 0.5, "neutral": 0.5})) == []


def test_negative_affect_going_on_at_the_end_ends_at_the_last_utterance():
    t = tracker("negative-affect")
    (a,) = feed(t, every("Bob", 0.0, 100.0, emotion="sad"), end=300.0)
    assert (a.since_s, a.until_s) == (4.0, 99.0)


# ------------------------------------------------------------------------------------------ rising arousal
def test_rising_arousal_within_the_minutes_until_it_settles():
    t = tracker("rising-arousal")  # rise 0.4 within 2 minutes
    calm = every("Ann", 0.0, 60.0, emotion="neutral", conf=1.0)  # arousal 0
    angry = every("Ann", 60.0, 100.0, emotion="angry", conf=1.0)  # arousal 0.75
    calm_again = every("Ann", 100.0, 160.0, emotion="neutral", conf=1.0)
    assert feed_until(t, calm) == []
    assert feed_until(t, angry) == []
    (going,) = t.active()
    assert going.kind == "rising-arousal" and going.since_s <= 64.0
    ended = feed_until(t, calm_again)
    (a,) = ended
    assert a.speaker == "Ann" and a.since_s == going.since_s and 104.0 <= a.until_s <= 140.0
    assert "0.40" in a.detail and "peak +0.75" in a.detail


def feed_until(t: AlertTracker, results: list[Result]) -> list[Alert]:
    out = []
    for r in results:
        out += t.add(r)
    return out


def test_rising_arousal_near_misses():
    # the same rise spread over 10 minutes: never 0.4 within 2
    slow = [result("Ann", s, probs={"angry": 0.6 * s / 600, "neutral": 1 - 0.6 * s / 600}) for s in range(0, 600, 10)]
    assert feed(tracker("rising-arousal"), slow) == []
    # a fast rise of 0.35 (< 0.4): angry at 0.47 and neutral
    mild = every("Ann", 0.0, 60.0, emotion="neutral", conf=1.0) + every(
        "Ann", 60.0, 120.0, probs={"angry": 0.47, "neutral": 0.53})
    assert feed(tracker("rising-arousal"), mild) == []
    # a higher threshold lets the real rise through quietly
    quick = every("Ann", 0.0, 60.0, emotion="neutral", conf=1.0) + every("Ann", 60.0, 100.0, emotion="angry", conf=1.0)
    assert feed(tracker("rising-arousal", rise=0.8), quick) == []
    assert [a.kind for a in feed(tracker("rising-arousal"), quick)] == ["rising-arousal"]


# ------------------------------------------------------------------------------------------ silence
def conversation(ann_until: float, bob_until: float, bob_back: float | None, bob_from: float = 2.0) -> list[Result]:
    """Ann talks every 10 s until ``ann_until``; Bob every 10 s (offset 5 s) until ``bob_until``, then again from
    ``bob_back``; in session order (by utterance end)."""
    rs = [result("Ann", s, 3.0) for s in np.arange(0.0, ann_until, 10.0)]
    rs += [result("Bob", s, 3.0) for s in np.arange(5.0 + bob_from - 2.0, bob_until, 10.0)]
    if bob_back is not None:
        rs += [result("Bob", s, 3.0) for s in np.arange(bob_back, ann_until, 10.0)]
    return sorted(rs, key=lambda r: r.utterance.end)


def test_silence_of_a_speaker_who_was_talking():
    t = tracker("silence")  # 60 s, after 3 utterances
    rs = conversation(ann_until=300.0, bob_until=50.0, bob_back=155.0)  # Bob's last: 45-48 s; back at 155 s
    shown = None
    ended = []
    for r in rs:
        ended += t.add(r)
        if r.utterance.speaker == "Ann" and r.utterance.end == 113.0:  # 65 s after Bob's last
            shown = t.active()
    assert shown == [Alert("Bob", "silence", 48.0, None, shown[0].detail)] and "silent for 1m05s" in shown[0].detail
    (a,) = ended
    assert (a.speaker, a.kind, a.since_s, a.until_s) == ("Bob", "silence", 48.0, 155.0)
    assert a.detail == "silent for 1m47s after 5 utterances"
    assert t.close(300.0) == []


def test_silence_near_misses_and_the_session_end():
    # 50 s quiet: not long enough
    assert feed(tracker("silence"), conversation(300.0, 50.0, 98.0), end=300.0) == []
    # two utterances are not "talking" (silence_after = 3)
    rs = [r for r in conversation(300.0, 20.0, None)]
    assert [r.utterance.speaker for r in rs].count("Bob") == 2
    assert feed(tracker("silence"), rs, end=300.0) == []
    # never back: the silence lasts until the session's end
    (a,) = feed(tracker("silence"), conversation(300.0, 50.0, None), end=310.0)
    assert (a.speaker, a.since_s, a.until_s) == ("Bob", 48.0, 310.0) and "until the session ended" in a.detail
    # alone and quiet for 70 s: nobody else shows it, the speaker's own return does
    alone = every("Bob", 0.0, 30.0, 10.0, dur=3.0) + every("Bob", 93.0, 120.0, 10.0, dur=3.0)
    (a,) = feed(tracker("silence"), alone)
    assert (a.since_s, a.until_s) == (23.0, 93.0)
    # or a tick of the session clock shows it while it lasts
    t = tracker("silence")
    feed_until(t, alone[:3])
    t.tick(82.9)
    assert t.active() == []
    t.tick(83.0)
    assert [(x.speaker, x.since_s, x.until_s) for x in t.active()] == [("Bob", 23.0, None)]


def test_a_silence_that_turns_out_shorter_is_dropped():
    """Overlapping speech on two inputs: another speaker's later utterance shows a 61 s gap before the speaker's own
    utterance, which started 55 s after their last one, is reported; that silence was never 60 s: no alert."""
    t = tracker("silence")
    for s in (0.0, 10.0, 20.0):
        t.add(result("Bob", s, 3.0))  # Bob's last ends at 23
    t.add(result("Ann", 80.0, 4.0))  # ends at 84: 61 s after
    assert [a.kind for a in t.active()] == ["silence"]
    assert t.add(result("Bob", 78.0, 10.0)) == []  # started at 78: 55 s after 23
    assert t.active() == [] and t.close(100.0) == [] and t.ended == []


# ------------------------------------------------------------------------------------------ falling valence
def falling(n: int, minutes: float, speaker: str = "Cy") -> list[Result]:
    """``n`` utterances over ``minutes``, from happy to sad (valence +0.85 -> -0.80)."""
    out = []
    for k in range(n):
        x = k / max(1, n - 1)
        out.append(result(speaker, k * minutes * 60 / max(1, n - 1), 3.0, probs={"happy": 1 - x, "sad": x}))
    return out


def test_falling_valence_over_the_session():
    t = tracker("falling-valence")  # a fall of 0.4, over 8 utterances spanning 2 minutes
    rs = falling(16, 5.0)
    ended = feed_until(t, rs[:7])
    assert ended == [] and t.active() == []  # 7 utterances: not yet
    t.add(rs[7])
    (going,) = t.active()
    assert (going.speaker, going.kind, going.since_s) == ("Cy", "falling-valence", 0.0)
    (a,) = feed(t, rs[8:], end=400.0)
    assert (a.since_s, a.until_s) == (0.0, rs[-1].utterance.end)
    m = re.search(r"valence trend down (\d\.\d\d) over (\S+) \(([-+]\d\.\d+)/min, 16 utterances\)", a.detail)
    assert m and 1.5 < float(m.group(1)) < 1.75 and m.group(2) == "5m00s" and float(m.group(3)) < -0.3, a.detail


def test_falling_valence_ends_when_it_recovers():
    rs = falling(10, 3.0)
    back = [result("Cy", 190.0 + 20 * k, 3.0, emotion="happy", conf=1.0) for k in range(12)]
    (a,) = feed(tracker("falling-valence"), rs + back)
    assert a.since_s == 0.0 and rs[-1].utterance.end < a.until_s < back[-1].utterance.end


def test_falling_valence_near_misses():
    # steady (noisy) valence: no trend
    rng = np.random.default_rng(0)
    steady = [result("Cy", 20.0 * k, 3.0, probs={"happy": p, "sad": 1 - p}) for k, p in
              enumerate(rng.uniform(0.4, 0.6, 30))]
    assert feed(tracker("falling-valence"), steady) == []
    # the fall, but in 6 utterances (fewer than 8), or within 1 minute (less than 2)
    assert feed(tracker("falling-valence"), falling(6, 5.0)) == []
    assert feed(tracker("falling-valence"), falling(16, 1.0)) == []
    # a fall of 0.3 over the session: under 0.4
    small = [result("Cy", 20.0 * k, 3.0, probs={"happy": 0.6 - 0.18 * k / 15, "neutral": 0.4 + 0.18 * k / 15})
             for k in range(16)]
    assert feed(tracker("falling-valence"), small) == []


# ------------------------------------------------------------------------------------------ kinds, settings
def test_only_the_kinds_that_are_on_fire():
    rs = every("Bob", 0.0, 30.0, emotion="neutral", conf=1.0) + every("Bob", 30.0, 130.0, emotion="angry")
    assert {a.kind for a in feed(tracker("negative-affect", "rising-arousal"), rs)} == {"negative-affect",
                                                                                        "rising-arousal"}
    assert [a.kind for a in feed(tracker("silence", "falling-valence"), rs)] == ["falling-valence"]  # neutral -> angry
    assert feed(tracker("silence"), rs) == [] and feed(tracker(), rs) == []


def test_alerts_table_settings_load_and_are_checked(tmp_path):
    cfg = load_config("default")
    assert cfg.alerts == AlertsConfig()
    assert cfg.alerts.kinds == ("negative-affect", "rising-arousal", "silence", "falling-valence")
    p = tmp_path / "a.toml"
    p.write_text('extends = "default"\n[alerts]\nkinds = ["silence"]\nsilence_seconds = 20\n')
    mine = load_config(p)
    assert mine.alerts.kinds == ("silence",) and mine.alerts.silence_seconds == 20.0
    for doc, key in (({"kinds": ["shouting"]}, "alerts.kinds[0]"), ({"rise": float("nan")}, "alerts.rise"),
                     ({"silence_after": 0}, "alerts.silence_after"), ({"loud": 1}, "loud")):
        with pytest.raises(ConfigError, match=re.escape(key)):
            config_from_dict({"alerts": doc})


# ------------------------------------------------------------------------------------------ one truth everywhere
def session_results() -> list[Result]:
    """A synthetic session where every kind fires: Bob angry for 80 s after a calm start (negative affect, rising
    arousal, and his valence falls), then quiet while Ann goes on (silence), and Ann's valence falling over 6
    minutes, from happy to sad (falling valence, then negative affect)."""
    rs = every("Bob", 0.0, 60.0, 10.0, dur=3.0, emotion="neutral", conf=1.0)
    rs += every("Bob", 60.0, 140.0, 5.0, dur=4.0, emotion="angry", conf=0.95)
    ann = falling(24, 6.0, "Ann")
    rs += [dataclasses.replace(r, utterance=dataclasses.replace(r.utterance, start=r.utterance.start + 2.0137,
                                                                 end=r.utterance.end + 2.0137)) for r in ann]
    rs.append(result("Bob", 300.0, 3.0, emotion="neutral", conf=0.3))
    return sorted(rs, key=lambda r: r.utterance.end)


def run_session(tmp_path: Path, results: list[Result], end_s: float):
    """The results through a real Session's delivery (no models): CSV, lines and dashboard sinks, its alert tracker
    fed by ``_deliver``, closed by ``wait``."""
    from emomon.monitor.pipeline import Session
    from emomon.monitor.sinks import CsvSink, LinePrinter
    from emomon.monitor.views.dashboard import Dashboard

    cfg = load_config("default")
    session = Session(cfg, [], live=False)
    session.alerts = AlertTracker(cfg.alerts, cfg.dashboard)
    csv_path = tmp_path / "s.csv"
    lines = io.StringIO()
    dashboard = Dashboard(cfg.dashboard, CLASSES, alerts=session.alerts)
    session.sinks += [CsvSink(csv_path, session.session_id, CLASSES, ("step1", "step2"), fsync=False),
                      LinePrinter(lines), dashboard]
    for r in results:
        session._deliver(r)
    session.stats.audio_seconds = end_s
    session.done.set()
    session.wait()
    return session, csv_path, lines.getvalue(), dashboard


def test_csv_report_lines_and_dashboard_agree(tmp_path):
    from emomon.monitor.views.report import write_report
    from emomon.monitor.views.report.reading import read_session

    session, csv_path, lines, dashboard = run_session(tmp_path, session_results(), end_s=400.0)
    alerts = session.alerts.ended
    assert {a.kind for a in alerts} == {"negative-affect", "rising-arousal", "silence", "falling-valence"}
    # the same tracker alone, fed the same results, gives the same alerts: the session adds nothing of its own
    assert feed(AlertTracker(), session_results(), end=400.0) == alerts
    # the CSV's alert rows read back as exactly these alerts, in order; the end row comes after them
    got = read_session(csv_path)
    assert got.alerts == alerts
    n = len(session_results())
    assert len(got.rows) == n and got.notes[-1].endswith(f"session complete: {n} utterances")
    with open(csv_path, newline="") as f:
        notes = [r["asr_note"] for r in csv.DictReader(f) if not r["utterance"]]
    assert notes == ["alert"] * len(alerts) + ["event"]
    # the lines print each, the dashboard lists them as ended
    for a in alerts:
        assert f"{a.speaker:<10} {a.kind}: {a.detail}" in lines
    assert [a for a in dashboard.snapshot().ended] == alerts[-20:]
    # the report lists every alert (escaped), as read from the CSV
    html_path, png_path = write_report(csv_path, tmp_path / "rep")
    page = html_path.read_text()
    assert "<h2>Alerts</h2>" in page and f"<td>Alerts</td><td>{len(alerts)}</td>" in page
    table = page.split("<h2>Alerts</h2>", 1)[1].split("</table>", 1)[0]
    for a in alerts:
        assert f"<td>{a.speaker}</td>" in table and a.detail in table
    assert len(re.findall(r"<tr><td>", table)) == len(alerts)


def test_dashboard_shows_the_alerts_going_on(tmp_path):
    from rich.console import Console

    from emomon.monitor.views.dashboard import Dashboard

    t = AlertTracker()
    d = Dashboard(DashboardConfig(), CLASSES, alerts=t)
    rs = conversation(ann_until=130.0, bob_until=50.0, bob_back=None)
    for r in rs:
        d.write(r)
        for a in t.add(r):
            d.alert(a)
    con = Console(record=True, width=100, height=30, file=io.StringIO(), color_system=None)
    con.print(d.renderable(), height=30)
    text = con.export_text()
    assert "Bob: silent for 1m15s" in text  # Ann's last ends at 123: 75 s after Bob's 48
    assert "Ann: silent" not in text


def test_report_of_a_csv_without_alert_rows_says_so(tmp_path):
    from emomon.monitor.views.report import write_report

    from test_report import make_csv

    html_path, _ = write_report(make_csv(tmp_path / "old.csv"))
    page = html_path.read_text()
    assert "No alerts in this session" in page and "<td>Alerts</td><td>0</td>" in page


def test_a_bad_alert_row_is_counted_not_fatal(tmp_path):
    from emomon.monitor.views.report.reading import read_session

    p = tmp_path / "s.csv"
    p.write_text("session_id,speaker,start_s,end_s,transcript,emotion,asr_note\n"
                 "s,Bob,1,2,hello,happy,\n"
                 "s,Bob,nan,5,silence: silent,,alert\n"
                 "s,'=Bob,3,2,silence: silent for 1m,,alert\n")
    s = read_session(p)
    assert s.alerts == [Alert("=Bob", "silence", 3.0, 3.0, "silent for 1m")]  # until before since: since
    assert any("1 unreadable row" in n for n in s.notes)


# ------------------------------------------------------------------------------------------ confidence on paper
def unsure_csv(path: Path) -> Path:
    """Ann: 0-50 s angry at 0.30 (unsure), 50-100 s angry at 0.90 (firm); written by the CSV sink."""
    from emomon.monitor.sinks import CsvSink

    sink = CsvSink(path, "sess", CLASSES, ("step1", "step2"), fsync=False)
    for k in range(10):
        sink.write(result("Ann", 5.0 * k, 5.0, emotion="angry", conf=0.3))
    for k in range(10):
        sink.write(result("Ann", 50.0 + 5.0 * k, 5.0, emotion="angry", conf=0.9))
    sink.close("session complete")
    return path


def test_unsure_readings_look_different_in_the_page(tmp_path):
    from emomon.monitor.views.report import write_report

    csv_path = unsure_csv(tmp_path / "s.csv")
    page = write_report(csv_path, tmp_path / "a", unsure_below=0.5)[0].read_text()
    table = page.split("<h2>Transcript</h2>", 1)[1]
    assert table.count('class="chip unsure"') == 10 and table.count("0.30 ?") == 10
    assert table.count("0.90 ?") == 0 and table.count('<td class="c">0.90</td>') == 10
    assert "below 0.50 ([dashboard] unsure_below)" in table
    page = write_report(csv_path, tmp_path / "b", unsure_below=0.0)[0].read_text()
    assert 'class="chip unsure"' not in page and " ?</td>" not in page


def test_unsure_readings_are_lighter_and_hatched_in_the_figure():
    from matplotlib.image import imread

    from emomon.monitor.views.report.figure import HEADER_PX, LEFT, MAIN_W, render_png
    from emomon.monitor.views.report.reading import read_session

    import tempfile

    with tempfile.TemporaryDirectory() as d:
        session = read_session(unsure_csv(Path(d) / "s.csv"))
    png = render_png(session, unsure_below=0.5)
    img = imread(io.BytesIO(png))[..., :3]
    y = HEADER_PX + 34 + 8  # the speaker's emotion strip (clear of the "?" marks in its middle)

    def pixels(t0: float, t1: float):
        return img[y, int(LEFT + MAIN_W * t0 / 100) + 3:int(LEFT + MAIN_W * t1 / 100) - 3]

    firm, unsure = pixels(55, 95), pixels(5, 45)
    red = np.array([0xD6, 0x27, 0x28]) / 255
    assert np.abs(firm - red).max() < 0.02  # solid angry red
    assert unsure.mean() > firm.mean() + 0.1  # lighter
    assert unsure.std(axis=0).max() > 0.05  # hatched: not one flat colour
    assert render_png(session, unsure_below=0.0) != png  # the threshold decides it


def test_emomon_report_reads_unsure_below_from_config(tmp_path, capsys):
    from emomon.cli import main

    csv_path = unsure_csv(tmp_path / "s.csv")
    assert main(["report", str(csv_path), "--out", str(tmp_path / "d")]) == 0
    assert (tmp_path / "d" / "s.html").read_text().count('class="chip unsure"') == 10  # the default preset's 0.5
    toml = tmp_path / "strict.toml"
    toml.write_text('extends = "default"\n[dashboard]\nunsure_below = 0.95\n')
    assert main(["report", str(csv_path), "--out", str(tmp_path / "e"), "--config", str(toml)]) == 0
    assert (tmp_path / "e" / "s.html").read_text().count('class="chip unsure"') == 20
    capsys.readouterr()
    assert main(["report", str(csv_path), "--out", str(tmp_path / "f"), "--config", str(tmp_path / "none.toml")]) == 2
    assert "config file not found" in capsys.readouterr().err and not (tmp_path / "f").exists()
