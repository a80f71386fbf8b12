"""Batch replay throughput: recordings per hour and x real time for 1 job, 2 jobs and Ray local, on one folder, in one run.

    python bench/batch.py [--recordings 4] [--minutes 2] [--rounds 2] [--runs jobs1,jobs2,ray] [--folder DIR]

Without --folder it builds the folder from the bundled sample (two espeak-ng voices), each recording a different
stretch of it, ``--minutes`` long. Each run is the real command (``emomon replay FOLDER --out-dir ...``) in a
subprocess, model loading and worker start-up included; the runs are interleaved round by round, so the ratios
compare runs made minutes apart on a noisy machine. CPU seconds are those of the command and the processes it waited
for: exact for --jobs; for Ray they miss the actors' processes, which Ray does not reap, so read Ray's wall time. Peak
RSS is that of the whole process tree (driver, worker processes, Ray's own processes and actors), sampled.

Runs: ``jobsN`` (N worker processes, each with ``cores // N`` threads), ``jobsN-tK`` (N workers with K threads each,
through a ``[runtime] threads = K`` preset: to find the best split of jobs and threads), ``jobs1-aK`` (one reader,
K recordings at once sharing its micro-batches: what a GPU reader does), ``ray`` (``--ray local``: one 1-thread
actor per CPU).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


def build_folder(folder: Path, recordings: int, minutes: float) -> float:
    """``recordings`` WAVs of ``minutes`` each, each starting at a different point of the tiled sample; returns the
    total audio seconds."""
    from emomon.audio.decode import load_audio
    from emomon.monitor.app import sample_recording
    from emomon.training.data.synth import write_wav

    sample = load_audio(sample_recording())
    n = int(minutes * 60 * 16000)
    tiled = np.tile(sample, int(np.ceil(n / len(sample))) + 2)
    folder.mkdir(parents=True, exist_ok=True)
    step = len(sample) // max(1, recordings)
    for k in range(recordings):
        write_wav(folder / f"class-{k + 1:02d}.wav", tiled[k * step: k * step + n])
    return recordings * n / 16000


def folder_seconds(folder: Path) -> float:
    from emomon.audio.decode import duration_seconds
    from emomon.monitor.batch import discover

    return sum(duration_seconds(r.path) or 0.0 for r in discover([folder], None))


def tree_rss_mb(root: int) -> float:
    """Resident memory of ``root`` and every process under it (worker processes, Ray's raylet and actors), in MB."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/statm") as f:
                rss[int(entry)] = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo += children.get(pid, [])
    return total / 2**20


def measure(cmd: list[str]) -> dict:
    """Wall and CPU seconds of the command (and the processes it waited for), and the peak resident memory of its
    whole process tree, sampled every 0.25 s."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err: list[bytes] = []
    reader = threading.Thread(target=lambda: err.append(proc.stderr.read()), daemon=True)  # a full pipe would block it
    reader.start()
    peak = 0.0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        peak = max(peak, tree_rss_mb(proc.pid))
        time.sleep(0.25)
    wall = time.perf_counter() - t0
    reader.join()
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code
    if code != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({code}):\n{b''.join(err).decode(errors='replace')[-2000:]}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss_mb": peak}


def command(run: str, folder: Path, out: Path, presets: Path) -> list[str]:
    cmd = [sys.executable, "-m", "emomon", "replay", str(folder), "--out-dir", str(out), "--compute", "cpu"]
    if run == "ray":
        return cmd + ["--ray", "local"]
    m = re.fullmatch(r"jobs(\d+)(?:-t(\d+))?(?:-a(\d+))?", run)
    if not m:
        raise SystemExit(f"unknown run {run!r}: jobsN, jobsN-tK, jobs1-aK or ray")
    cmd += ["--jobs", m.group(1)]
    if m.group(2) or m.group(3):
        preset = presets / f"{run}.toml"
        preset.write_text('extends = "default"\n'
                          + (f"\n[runtime]\nthreads = {int(m.group(2))}\n" if m.group(2) else "")
                          + (f"\n[replay]\nrecordings_at_once = {int(m.group(3))}\n" if m.group(3) else ""))
        cmd += ["--config", str(preset)]
    return cmd


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recordings", type=int, default=4)
    ap.add_argument("--minutes", type=float, default=2.0)
    ap.add_argument("--folder", help="a folder of recordings to use instead of the built one")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--runs", default="jobs1,jobs2,ray")
    args = ap.parse_args()
    runs = args.runs.split(",")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    os.environ.update(env)
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        if args.folder:
            folder = Path(args.folder)
            seconds = folder_seconds(folder)
        else:
            folder = d / "recordings"
            seconds = build_folder(folder, args.recordings, args.minutes)
        count = len(list(p for p in folder.rglob("*") if p.is_file()))
        print(f"{count} recordings, {seconds / 60:.1f} min of audio, {os.cpu_count()} CPUs", file=sys.stderr)
        results: dict[str, list[dict]] = {r: [] for r in runs}
        for k in range(args.rounds):
            for run in runs:
                out = d / f"out-{run}-{k}"
                t0 = time.perf_counter()
                m = measure(command(run, folder, out, d))
                m["wall"] = time.perf_counter() - t0
                csvs = [p for p in out.iterdir() if p.name != "summary.csv"]
                if len(csvs) != count:
                    raise SystemExit(f"{run}: {len(csvs)} session CSVs for {count} recordings")
                results[run].append(m)
                print(f"round {k + 1} {run:9s} wall {m['wall']:6.1f} s  cpu {m['cpu']:6.1f} s  rss {m['rss_mb']:6.0f} MB",
                      file=sys.stderr, flush=True)
    med = {r: {key: statistics.median(m[key] for m in ms) for key in ("wall", "cpu", "rss_mb")} for r, ms in results.items()}
    print(f"\n{count} recordings, {seconds / 60:.1f} min of audio, {args.rounds} rounds interleaved, {os.cpu_count()} CPUs; "
          "medians, start-up included")
    print(f"{'run':10s} {'recordings/h':>13s} {'x real time':>12s} {'wall s':>8s} {'CPU s':>7s} {'peak RSS':>9s} "
          f"{'speed vs ' + runs[0]:>15s}")
    for r in runs:
        # paired per round against the first run: the ratio compares runs made minutes apart
        ratio = statistics.median(b["wall"] / e["wall"] for b, e in zip(results[runs[0]], results[r]))
        print(f"{r:10s} {count * 3600 / med[r]['wall']:13.0f} {seconds / med[r]['wall']:11.1f}x {med[r]['wall']:8.1f} "
              f"{med[r]['cpu']:7.1f} {med[r]['rss_mb']:6.0f} MB {ratio:14.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
