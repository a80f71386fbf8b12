"""End-of-speech to CSV-row latency in `emomon replay --realtime` (the live path's timing): p50 and p95.

    python bench/latency.py [--minutes 2] [--model hyfuser-tiny-en]

The file source paces the audio as a live input would; each row's latency is the wall time at which the sink wrote
it minus the wall time at which the utterance's last voiced sample was "captured". It includes the segmenter's
hang-over (the silence needed to know speech ended), ASR, batching and the emotion model.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from replay import build_recording  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=2.0)
    ap.add_argument("--model", default="hyfuser-tiny-en")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        audio = build_recording(args.minutes, Path(d) / "talk.wav")
        out = Path(d) / "s.csv"
        r = subprocess.run([sys.executable, "-m", "emomon", "replay", str(audio), "--realtime", "--model", args.model,
                            "--csv", str(out), "--quiet-lines"], capture_output=True, text=True)
        if r.returncode:
            print(r.stderr, file=sys.stderr)
            return r.returncode
        rows = [row for row in csv.DictReader(open(out)) if row["utterance"]]
    lat = np.array([float(row["latency_ms"]) for row in rows]) / 1000
    asr = np.array([float(row["asr_ms"]) for row in rows]) / 1000
    print(f"{len(rows)} utterances over {args.minutes:.1f} min, paced in real time")
    print(f"latency end of speech -> CSV row: p50 {np.percentile(lat, 50):.3f} s, p95 {np.percentile(lat, 95):.3f} s, max {lat.max():.3f} s")
    print(f"  of which ASR: p50 {np.percentile(asr, 50):.3f} s, p95 {np.percentile(asr, 95):.3f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
