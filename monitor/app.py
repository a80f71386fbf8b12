"""Running a monitoring session from user options: build sources and sinks, handle signals, print the summary.

This is the library entry point behind ``emomon replay`` and ``emomon live``; the CLI only parses arguments.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import sys
import threading
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from emomon.config import EmomonConfig
from emomon.errors import ConfigError, OutputError
from emomon.monitor.pipeline import Session, step_names_of, summary_lines
from emomon.monitor.sinks import AudioSaver, CsvSink, LinePrinter, check_output_folder, default_csv_path

logger = logging.getLogger("emomon")

#: Exit codes for sessions ended by a signal (128 + signal number, the shell convention).
SIGNAL_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}


@dataclass
class MonitorOptions:
    """What the user asked for on the command line."""

    files: list[Path] = field(default_factory=list)  # replay inputs
    devices: list[str] = field(default_factory=list)  # live inputs (name or index; '' = default device)
    realtime: bool = False
    split_channels: bool = False
    speakers: dict[int, str] = field(default_factory=dict)  # stream index -> name
    csv: Path | None = None
    printer: bool = True
    duration: float | None = None  # live: stop after this many seconds
    dashboard: bool = False  # the Rich live view (replaces the per-utterance lines on the terminal)
    save_audio: bool = False  # keep each utterance's audio next to the CSV (off unless asked)


def sample_recording() -> Path:
    """The short recording that ships with emomon (several emotional English sentences, espeak-ng voices)."""
    return Path(str(resources.files("emomon.monitor").joinpath("samples", "sample.ogg")))


def parse_speaker_names(specs: list[str]) -> dict[int, str]:
    """``["0=Teacher", "1=Student"]`` -> {0: "Teacher", 1: "Student"} (stream indices start at 0)."""
    out = {}
    for spec in specs:
        key, sep, name = spec.partition("=")
        if not sep or not key.strip().isdigit() or not name.strip():
            raise ConfigError(f"--speaker {spec!r}: expected INDEX=NAME, e.g. 0=Teacher")
        if int(key) in out:
            raise ConfigError(f"--speaker {spec!r}: input {int(key)} is already named {out[int(key)]!r}")
        out[int(key)] = name.strip()
    return out


def check_speaker_indices(speakers: dict[int, str], n_streams: int, hint: str) -> None:
    """A name for an input that does not exist is a mistake (a name silently unused is worse)."""
    beyond = sorted(i for i in speakers if i >= n_streams)
    if beyond:
        have = "input 0" if n_streams == 1 else f"inputs 0-{n_streams - 1}"
        raise ConfigError(f"--speaker {beyond[0]}={speakers[beyond[0]]}: there is no input {beyond[0]} (this session has "
                          f"{have}; {hint})")


def build_sources(cfg: EmomonConfig, opts: MonitorOptions, live: bool) -> list:
    from emomon.monitor.sources import FileSource, MicSource

    sources = []
    chunk_ms = cfg.runtime.chunk_ms if (live or opts.realtime) else max(cfg.runtime.chunk_ms, 500)
    if live:
        for i, dev in enumerate(opts.devices or [""]):
            sources.append(MicSource(dev or None, i, opts.speakers.get(i, f"S{i + 1}"), chunk_ms=chunk_ms,
                                     queue_seconds=cfg.runtime.queue_seconds))
        check_speaker_indices(opts.speakers, len(sources), "each --input is one input")
        return sources
    stream = 0
    for path in opts.files:
        src = FileSource(path, stream, split_channels=opts.split_channels, realtime=opts.realtime, chunk_ms=chunk_ms)
        for k, info in enumerate(src.streams):
            name = opts.speakers.get(info.index)
            if name:
                src.streams[k] = dataclasses.replace(info, speaker=name)
            elif len(opts.files) > 1 and not src.split:
                src.streams[k] = dataclasses.replace(info, speaker=f"S{info.index + 1}")
        stream += len(src.streams)
        sources.append(src)
    check_speaker_indices(opts.speakers, stream, "each file is one input, each channel with --split-channels")
    return sources


class _NoticeLogHandler(logging.Handler):
    """While the dashboard owns the terminal, warnings go to its notice line instead of scribbling over it."""

    def __init__(self, dashboard):
        super().__init__(logging.WARNING)
        self.dashboard = dashboard

    def emit(self, record: logging.LogRecord) -> None:
        self.dashboard.notice(record.getMessage())


def _status_fn(session: Session, model_name: str):
    """The dashboard header's numbers, read from the session's counters."""
    import statistics

    from emomon.monitor.views.dashboard import DashboardStatus

    labels = tuple(f"{info.label} ({info.speaker})" for info in session.streams.values())

    def status() -> DashboardStatus:
        s = session.stats
        rec = session.worker.recognizer
        recent = s.latencies[-50:]
        return DashboardStatus(
            elapsed=s.wall_seconds, inputs=labels, model=model_name, device=str(rec.device) if rec else "",
            speed=None if session.live else s.speed, latency=statistics.median(recent) if recent else None,
            queue=session.queue_depth(), dropped_audio_s=s.dropped_audio_seconds, dropped_utterances=s.dropped_utterances,
            audio_seconds=s.audio_seconds, notice=s.notices[-1] if s.notices else "",
        )

    return status


class _SignalStop:
    """Turns SIGINT/SIGTERM/SIGHUP into a graceful stop of the session (a second Ctrl-C aborts the drain)."""

    def __init__(self, session: Session):
        self.session = session
        self.received: int | None = None
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNAL_EXIT:
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.received is not None:
            self.session.abort.set()
        self.received = signum
        self.session.stop(signal.Signals(signum).name)

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False


def run_monitor(cfg: EmomonConfig, opts: MonitorOptions, *, live: bool, extra_sinks: list | None = None, out=None) -> int:
    """Run a session to its end; returns the exit code (0, or 128+signal when stopped by a signal)."""
    from emomon.models.checkpoint import read_checkpoint_preset

    out = out or sys.stdout
    # Validate everything cheap before loading models: checkpoint JSON, inputs, output path.
    preset = read_checkpoint_preset(cfg.runtime.model)
    classes, steps = preset.classes, step_names_of(preset.model)
    sources = build_sources(cfg, opts, live)
    session = Session(cfg, sources, live=live)
    csv_path = opts.csv or default_csv_path()
    check_output_folder(csv_path, create=opts.csv is None)
    with _SignalStop(session) as sig:
        session.load()  # model errors end the command here, before the CSV exists
        if session.whole_recording:  # a full-speed replay: a first pass, then the session reads against it
            session.prepare_replay(build_sources(cfg, opts, live=False))
        session.wait_loaded()  # the text encoder's errors too end the command before the CSV exists
        while True:
            try:
                csv_sink = CsvSink(csv_path, session.session_id, classes, steps)
                break
            except OutputError:
                if opts.csv is not None or not csv_path.exists():
                    raise
                csv_path = default_csv_path()  # a session started meanwhile took the default name: the next free one
        session.sinks.append(csv_sink)
        if opts.save_audio:
            session.sinks.append(AudioSaver(csv_path.with_name(csv_path.stem + "-audio")))
        dashboard = None
        if opts.dashboard:
            from emomon.monitor.views.dashboard import Dashboard

            dashboard = Dashboard(cfg.dashboard, classes, status=_status_fn(session, Path(cfg.runtime.model).name))
            session.sinks.append(dashboard)
        elif opts.printer:
            session.sinks.append(LinePrinter(out))
        session.sinks.extend(extra_sinks or [])
        logger.info("session CSV: %s", csv_path)
        saved_handlers = logger.handlers[:]
        try:
            session.start()
            if dashboard is not None:
                logger.handlers[:] = [_NoticeLogHandler(dashboard)]
                dashboard.start()
            if live and opts.duration:
                timer = threading.Timer(opts.duration, session.stop, args=("duration reached",))
                timer.daemon = True
                timer.start()
            session.wait()
        except BaseException:
            session.stop()
            for sink in session.sinks:
                sink.close("session failed")
            raise
        finally:
            if dashboard is not None:
                dashboard.stop()
            logger.handlers[:] = saved_handlers
    for line in summary_lines(session):
        print(line, file=sys.stderr)
    print(f"  CSV: {csv_path}", file=sys.stderr)
    if sig.received is not None:
        return SIGNAL_EXIT[sig.received]
    failed = [src.error for src in sources if src.error]
    if failed and not live:
        from emomon.errors import InputError

        raise InputError(failed[0] + " (the utterances before the damage are in the CSV)")
    if live and failed and len(failed) == len(sources):
        from emomon.errors import DeviceError

        raise DeviceError(failed[0])
    return 0
