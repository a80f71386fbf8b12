"""Soak test: a long simulated stream through the real pipeline; memory and queues must stay flat.

    python bench/soak.py [--hours 2] [--model hyfuser-tiny-en]

The stream is the bundled sample conversation repeated (generated on the fly, never held whole), fed as fast as the
pipeline takes it (back-pressure, no drops) and read as live (running speaker baselines, one speed). Every 30 s of
wall time it samples the process's resident memory and the queue depth; it prints them at the start, the middle and
the end, and the growth.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


class LoopSource:
    """A synthetic input: ``audio`` repeated for ``seconds``, emitted in chunks like a file source."""

    def __init__(self, audio: np.ndarray, seconds: float, chunk_s: float = 0.5):
        from emomon.monitor.sources import StreamInfo

        self.audio, self.total = audio, int(seconds * 16000)
        self.chunk = int(chunk_s * 16000)
        self.streams = [StreamInfo(0, "S1", "loop")]
        self.error = ""

    def run(self, emit, stop: threading.Event, t0: float) -> None:
        from emomon.records import AudioChunk, EndOfStream

        pos = 0
        n = len(self.audio)
        while pos < self.total and not stop.is_set():
            idx = (np.arange(pos, min(pos + self.chunk, self.total))) % n
            emit(AudioChunk(0, self.audio[idx], pos, t0 + pos / 16000))
            pos += len(idx)
        emit(EndOfStream(0))


def rss_mb() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) // 1024 for line in f if line.startswith("VmRSS"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=2.0)
    ap.add_argument("--model", default="hyfuser-tiny-en")
    ap.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    args = ap.parse_args()

    from emomon.audio.decode import load_audio
    from emomon.config import load_config
    from emomon.models.checkpoint import read_checkpoint_preset
    from emomon.monitor.app import sample_recording
    from emomon.monitor.pipeline import Session, step_names_of
    from emomon.monitor.sinks import CsvSink

    cfg = load_config("default")
    # the stream stands in for a long live session, so it is read as live: running speaker baselines, one speed (a
    # full-speed replay's first pass over the whole recording has no file to read here, and no live session has it)
    cfg = dataclasses.replace(cfg, runtime=dataclasses.replace(cfg.runtime, model=args.model),
                              replay=dataclasses.replace(cfg.replay, baseline="running", tta_speeds=()))
    audio = load_audio(sample_recording())
    session = Session(cfg, [LoopSource(audio, args.hours * 3600)], live=False)
    session.load()
    steps = step_names_of(read_checkpoint_preset(args.model).model)
    with tempfile.TemporaryDirectory() as d:
        sink = CsvSink(Path(d) / "soak.csv", session.session_id, cfg.classes, steps, fsync=False)
        session.sinks.append(sink)
        samples = []
        t0 = time.time()
        session.start()

        def sample():
            samples.append((time.time() - t0, session.stats.audio_seconds, rss_mb(), session.queue_depth(), session.stats.utterances))

        next_t = time.time()
        while not session.done.wait(1.0):
            if time.time() >= next_t:
                sample()
                s = samples[-1]
                print(f"wall {s[0]:7.0f} s  audio {s[1] / 60:6.1f} min  RSS {s[2]} MB  queue {s[3]}  utterances {s[4]}", file=sys.stderr, flush=True)
                next_t += args.every
        session.wait()
        sample()
    first = samples[min(1, len(samples) - 1)]  # after warm-up
    mid = samples[len(samples) // 2]
    last = samples[-1]
    st = session.stats
    print(f"\nsoak: {st.audio_seconds / 3600:.2f} h of audio, {st.utterances} utterances, {st.wall_seconds / 60:.1f} min wall "
          f"({st.speed:.1f}x real time), dropped {st.dropped_utterances}")
    print(f"RSS: start {first[2]} MB, middle {mid[2]} MB, end {last[2]} MB (growth {last[2] - first[2]:+d} MB)")
    print(f"queue depth: max {max(s[3] for s in samples)}, at the end {last[3]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
