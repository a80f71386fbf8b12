"""Throughput of `emomon replay` on a several-minute recording: real-time factor, time per stage, peak memory.

    python bench/replay.py [--minutes 5] [--model hyfuser-tiny-en] [--file talk.wav] [--as-live]

Without --file it builds a recording from the bundled sample (two espeak-ng voices, ~50 s) repeated to the length
asked. It runs the real command in a subprocess and samples its resident memory.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def build_recording(minutes: float, out: Path) -> Path:
    from emomon.audio.decode import load_audio
    from emomon.training.data.synth import write_wav
    from emomon.monitor.app import sample_recording

    sample = load_audio(sample_recording())
    reps = int(np.ceil(minutes * 60 / (len(sample) / 16000)))
    return write_wav(out, np.tile(sample, reps)[: int(minutes * 60 * 16000)])


def run(args: list[str]) -> tuple[subprocess.CompletedProcess, list[int], float]:
    t0 = time.time()
    proc = subprocess.Popen([sys.executable, "-m", "emomon", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    rss = []
    while proc.poll() is None:
        try:
            with open(f"/proc/{proc.pid}/status") as f:
                rss += [int(line.split()[1]) // 1024 for line in f if line.startswith("VmRSS")]
        except OSError:
            pass
        time.sleep(0.2)
    out, err = proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), rss, time.time() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--model", default="hyfuser-tiny-en")
    ap.add_argument("--file")
    ap.add_argument("--as-live", action="store_true", help="replay with the live reading (no first pass, one speed)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        audio = Path(args.file) if args.file else build_recording(args.minutes, Path(d) / "talk.wav")
        out = Path(d) / "session.csv"
        r, rss, wall = run(["replay", str(audio), "--model", args.model, "--csv", str(out), "--quiet-lines"]
                           + (["--as-live"] if args.as_live else []))
        if r.returncode != 0:
            print(r.stderr, file=sys.stderr)
            return r.returncode
        rows = [row for row in csv.DictReader(open(out)) if row["utterance"]]
    summary = [line for line in r.stderr.splitlines() if "x real time" in line][0]
    asr = [float(row["asr_ms"]) for row in rows]
    emo = [float(row["emotion_ms"]) for row in rows]
    dur = [float(row["end_s"]) - float(row["start_s"]) for row in rows]
    print(summary.strip())
    print(next((line.strip() for line in r.stderr.splitlines() if line.strip().startswith("read with")), ""))
    print(f"process wall time {wall:.1f} s (including model loading)")
    print(f"utterances {len(rows)}, mean length {statistics.mean(dur):.2f} s")
    print(f"ASR (encoder + decoder) per utterance: mean {statistics.mean(asr):.0f} ms, p95 {np.percentile(asr, 95):.0f} ms")
    print(f"emotion (text encoder + fusion, per utterance in its micro-batch): mean {statistics.mean(emo):.1f} ms")
    print(f"peak memory (RSS) {max(rss)} MB; after start-up {rss[len(rss) // 5]} MB, at the end {rss[-1]} MB")
    print(f"CPU threads available: {os.cpu_count()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
