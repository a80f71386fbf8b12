"""The machine's limits and stops at awkward moments (issue 31, classes 7 and 11): out of memory and out of threads
are one line with exit 7 and keep the finished rows; a signal during the model load acts within about a second; and
the process always exits with its documented code, never SIGABRT, even with a stage thread inside a native call."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from emomon.errors import ResourceError, as_resource_error

from conftest import error_lines, requires_espeak

SR = 16000
SENTENCES = ["Good morning everyone.", "Please sit down now.", "Open your books at page ten.", "Thank you for listening."]


@pytest.fixture(scope="module")
def talk(tmp_path_factory, speech_factory):
    from emomon.audio.decode import load_audio
    from emomon.training.data.synth import write_wav

    parts = [np.zeros(SR // 2, np.float32)]
    for text in SENTENCES:
        parts += [load_audio(speech_factory(text)), np.zeros(SR, np.float32)]
    return write_wav(tmp_path_factory.mktemp("talk") / "talk.wav", np.concatenate(parts))


def _env():
    return {**os.environ, "HF_HUB_OFFLINE": "1"}


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


# A run of the console entry (emomon.cli.run) with one fault injected before it starts.
INJECT = r"""
import sys, threading
fault = sys.argv[1]
if fault == "no-thread":
    start = threading.Thread.start
    def refuse(self):
        if self.name == "emomon-asr":
            raise RuntimeError("can't start new thread")
        return start(self)
    threading.Thread.start = refuse
elif fault == "no-memory":
    from emomon.monitor import asr
    process, seen = asr.AsrStage.process, []
    def fail_third(self, u):
        seen.append(u)
        if len(seen) == 3:
            raise MemoryError()
        return process(self, u)
    asr.AsrStage.process = fail_third
elif fault == "stuck-thread":
    import time
    threading.Thread(target=time.sleep, args=(60,), name="emomon-stuck", daemon=True).start()
sys.argv = ["emomon", *sys.argv[2:]]
from emomon.cli import run
run()
"""


def _inject(fault: str, *args, timeout=300):
    return subprocess.run([sys.executable, "-c", INJECT, fault, *args], capture_output=True, text=True, env=_env(),
                          timeout=timeout)


def test_library_wordings_of_no_memory_and_no_thread_map_to_exit_7():
    for exc in (MemoryError(), RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 GB"),
                RuntimeError("std::bad_alloc"), ImportError("libx.so: failed to map segment from shared object"),
                RuntimeError("can't start new thread")):
        err = as_resource_error(exc)
        assert isinstance(err, ResourceError) and err.exit_code == 7 and "\n" not in str(err), exc
    assert as_resource_error(RuntimeError("shape mismatch")) is None
    assert as_resource_error(ValueError("can't start new thread")) is None


@requires_espeak
def test_out_of_threads_at_start_is_one_line_and_leaves_no_file(tmp_path, talk, random_checkpoint):
    out = tmp_path / "s.csv"
    r = _inject("no-thread", "replay", str(talk), "--model", str(random_checkpoint), "--csv", str(out))
    assert r.returncode == 7, r.stderr
    assert "Traceback" not in r.stderr
    errors = [line for line in error_lines(r.stderr) if line.startswith("emomon: error:")]
    assert len(errors) == 1 and "out of threads" in errors[0], r.stderr
    assert not out.exists()  # the session never ran: nothing half-written stays


@requires_espeak
def test_out_of_memory_in_a_stage_keeps_the_finished_rows(tmp_path, talk, random_checkpoint):
    out = tmp_path / "s.csv"
    r = _inject("no-memory", "replay", str(talk), "--model", str(random_checkpoint), "--csv", str(out), "--as-live")
    assert r.returncode == 7, r.stderr
    errors = [line for line in error_lines(r.stderr) if line.startswith("emomon: error:")]
    assert "Traceback" not in r.stderr and len(errors) == 1 and "out of memory" in errors[0], r.stderr
    rows = _rows(out)
    # the first utterance was finished before the fault; the second may still have been in the model's queue
    assert 1 <= len([x for x in rows if x["utterance"]]) <= 2, rows
    assert rows[-1]["asr_note"] == "event" and "error" in rows[-1]["transcript"], rows[-1]  # the end row says why


def test_exit_is_bounded_and_clean_with_a_thread_inside_a_long_call(tmp_path):
    t0 = time.monotonic()
    r = _inject("stuck-thread", "info", timeout=60)
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    assert "terminate called" not in r.stderr and "Traceback" not in r.stderr
    assert took < 20  # not the thread's 60 s: the exit waits at most emomon.cli.EXIT_JOIN_SECONDS for it


@requires_espeak
def test_sigterm_during_the_model_load_acts_at_once(tmp_path, talk, random_checkpoint):
    out = tmp_path / "s.csv"
    p = subprocess.Popen([sys.executable, "-m", "emomon", "-v", "replay", str(talk), "--model", str(random_checkpoint),
                          "--csv", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env())
    lines = []
    for line in p.stderr:  # the session logs when it starts loading
        lines.append(line)
        if "loading the models" in line:
            break
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    err = "".join(lines) + p.stderr.read()
    code = p.wait(timeout=30)
    took = time.monotonic() - t0
    assert code == 143, err
    assert took <= 3.0, took  # the goal is <= 2 s; the bound leaves room for a loaded CI machine
    assert "nothing was written" in err and "Traceback" not in err
    assert not out.exists()


@requires_espeak
def test_ctrl_c_after_the_first_rows_exits_130_under_load(tmp_path, talk, random_checkpoint):
    """Under CPU load a stage can still be inside CTranslate2 or torch when the session stops waiting for it; the
    process must still end with 130, not SIGABRT. (One busy loop beside the session: with the suite's other worker
    that loads both cores, without starving the timing tests that run beside it.)"""
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])]
    try:
        out = tmp_path / "s.csv"
        p = subprocess.Popen([sys.executable, "-m", "emomon", "replay", str(talk), "--model", str(random_checkpoint),
                              "--csv", str(out), "--realtime"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True, env=_env())
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if out.exists() and any(x["utterance"] for x in _rows(out)):
                break
            time.sleep(0.1)
        else:
            p.kill()
            pytest.fail("no row within 240 s")
        p.send_signal(signal.SIGINT)
        code = p.wait(timeout=60)
        err = p.stderr.read()
    finally:
        for b in burners:
            b.kill()
    assert code == 130, (code, err[-2000:])
    assert "terminate called" not in err and "Traceback" not in err
    end = _rows(out)[-1]
    assert end["asr_note"] == "event" and "stopped" in end["transcript"], end  # the stop row is written
