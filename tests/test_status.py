"""The status line of a monitoring session (emomon.progress.StatusLine): on a terminal it says what is happening from
the first second (checking, loading models k/N, a replay's first pass, the replay with the time left) and hands over to
the dashboard or the lines; elsewhere it writes nothing but log lines."""

from __future__ import annotations

import io
import logging
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time

import pytest
from rich.console import Console

from emomon.progress import Activity, StatusLine

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def terminal(width: int = 100) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=width, height=30, color_system="standard"), out


def wait_for(out: io.StringIO, text: str, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in ANSI.sub("", out.getvalue()):
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def emomon_logs():
    """emomon's logger at INFO (as the command sets it), restored afterwards."""
    log = logging.getLogger("emomon")
    saved = (log.level, log.handlers[:], log.propagate)
    log.setLevel(logging.INFO)
    yield log
    log.setLevel(saved[0])
    log.handlers[:] = saved[1]
    log.propagate = saved[2]


# ---------------------------------------------------------------------------------------------------- the line
def test_activity_says_how_far_sized_work_is():
    assert Activity("loading models 2/4: speech encoder").describe() == "loading models 2/4: speech encoder"
    assert Activity("first pass", 17.8, 48.0).describe() == "first pass 37 % of 48 s"
    assert Activity("replay", 1800, 3723).describe() == "replay 48 % of 1:02:03"
    assert Activity("replay", 5, None).describe() == "replay"  # no size known: the bare phrase
    assert Activity("replay", 60, 48).fraction == 1.0


def test_on_a_terminal_the_line_follows_the_work_with_a_bar_and_the_time_left(emomon_logs):
    console, out = terminal()
    progress = {"done": 0.0}
    line = StatusLine(console, refresh_hz=20).start("checking the model and the inputs")
    assert wait_for(out, "checking the model and the inputs", 1.0)
    line.show("loading models 1/4: emotion model")
    assert wait_for(out, "loading models 1/4: emotion model")
    line.show(lambda: Activity("first pass", progress["done"], 48.0))  # asked again on every repaint
    for done in (6.0, 12.0, 18.0, 24.0):
        progress["done"] = done
        time.sleep(0.4)
    assert wait_for(out, "first pass 50 % of 48 s")
    text = ANSI.sub("", out.getvalue())
    assert "━" in text and re.search(r"\d:\d\d left", text), text[-500:]
    line.stop()
    line.stop()  # idempotent
    assert line.shown[:3] == ["checking the model and the inputs", "loading models 1/4: emotion model", "first pass"]
    assert out.getvalue().endswith("\x1b[1A\x1b[2K")  # transient: the line is erased, the cursor back on it


def test_log_lines_print_above_the_line_not_through_it(emomon_logs):
    console, out = terminal()
    handler = logging.StreamHandler(sys.stderr)
    emomon_logs.handlers[:] = [handler]
    line = StatusLine(console, refresh_hz=20).start("loading models 1/4: emotion model")
    emomon_logs.info("session CSV: sessions/x.csv")
    line.stop()
    assert "session CSV: sessions/x.csv" in out.getvalue()  # printed by the status' console, above the line
    assert handler.stream is sys.stderr  # and the handler has its own stream back


def test_without_a_terminal_only_log_lines(emomon_logs, caplog):
    """A pipe or a file gets no control codes: each new phrase is a DEBUG line, long work an INFO line every 10 %."""
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=100)
    emomon_logs.propagate = True
    with caplog.at_level(logging.DEBUG, logger="emomon"):
        progress = {"done": 0.0}
        line = StatusLine(console, log_above=300.0).start("loading models 1/4: emotion model")
        time.sleep(0.7)
        line.show(lambda: Activity("first pass", progress["done"], 600.0))
        for done in (0.0, 130.0, 250.0, 600.0):
            progress["done"] = done
            time.sleep(0.7)
        line.show(lambda: Activity("replay", 30.0, 48.0))  # short work: no percentages in the log
        time.sleep(0.7)
        line.stop()
    assert out.getvalue() == ""
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    info = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert "loading models 1/4: emotion model" in debug and "replay 62 % of 48 s" in debug
    assert info[0] == "first pass 0 % of 10:00" and info[-1] == "first pass 100 % of 10:00" and 3 <= len(info) <= 11
    assert not any("replay" in m for m in info)
    assert not any(t.name == "emomon-status" and t.is_alive() for t in threading.enumerate())


def test_quiet_means_no_status_line(emomon_logs):
    emomon_logs.setLevel(logging.WARNING)
    console, out = terminal()
    line = StatusLine(console).start("loading models 1/4: emotion model")
    time.sleep(0.2)
    line.stop()
    assert out.getvalue() == ""


# ---------------------------------------------------------------------------------------------------- a replay
def test_replay_status_shows_before_the_models_load_then_the_first_pass_and_the_replay(tmp_path, monkeypatch,
                                                                                         emomon_logs):
    """In a real replay the status is on the screen before the first model is loaded (the status-line test), then
    follows the load, the first pass and the replay over audio time; the per-utterance lines are untouched."""
    from emomon.config import load_config
    from emomon.monitor.app import MonitorOptions, run_monitor, sample_recording
    from emomon.monitor.pipeline import Session

    console, out = terminal(120)
    seen_before_load = {}
    real_load = Session.load

    def load(self):
        seen_before_load["status"] = wait_for(out, "loading models 1/4: emotion model")
        seen_before_load["model"] = self.worker.recognizer
        real_load(self)

    monkeypatch.setattr(Session, "load", load)
    lines = io.StringIO()
    csv_path = tmp_path / "s.csv"
    code = run_monitor(load_config("default"), MonitorOptions(files=[sample_recording()], csv=csv_path), live=False,
                       out=lines, status_console=console)
    assert code == 0
    assert seen_before_load == {"status": True, "model": None}
    text = ANSI.sub("", out.getvalue())
    order = [text.find(p) for p in ("checking the model and the inputs", "loading models 1/4: emotion model",
                                    "first pass", "replay ")]
    assert -1 not in order and order == sorted(order), order
    assert re.search(r"first pass \d+ % of 48 s", text) and re.search(r"replay \d+ % of 48 s", text)
    rows = [r for r in csv_path.read_text().splitlines()[1:] if ",event," not in r and ",alert," not in r]
    assert len(lines.getvalue().splitlines()) == len(rows) >= 8  # one line per utterance, no status mixed in
    assert "\x1b" not in lines.getvalue()


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_the_command_shows_its_status_within_a_second_on_a_terminal(tmp_path):
    """``emomon replay`` with stderr on a (pseudo-)terminal: the first status text comes before anything heavy is
    imported (the target is 1 s from launch; the bound leaves room for a loaded machine), then the model load is
    counted; a Ctrl-C there ends it at once with nothing written."""
    import fcntl
    import struct
    import termios

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    csv_path = tmp_path / "s.csv"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TERM": "xterm-256color", "COLUMNS": "100", "LINES": "30"}
    env.pop("NO_COLOR", None)
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "emomon", "replay", "--sample", "--csv", str(csv_path)],
                            stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL, env=env)
    os.close(slave)
    seen, first, loading = "", None, None
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                try:
                    seen += os.read(master, 65536).decode("utf-8", "replace")
                except OSError:
                    break
            plain = ANSI.sub("", seen)
            if first is None and "checking the model and the inputs" in plain:
                first = time.monotonic() - t0
            if loading is None and "loading models 1/4" in plain:
                loading = time.monotonic() - t0
                proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
        while select.select([master], [], [], 0.1)[0]:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk.decode("utf-8", "replace")
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    assert first is not None and loading is not None, ANSI.sub("", seen)[-2000:]
    assert first < 3.0, f"first status after {first:.2f} s"
    assert first <= loading
    assert code == 130 and "stopped before the session started" in seen and not csv_path.exists()
    assert proc.stdout.read() == b""  # the status is stderr's; stdout keeps the lines only
