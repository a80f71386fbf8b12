"""Running a monitoring session from user options: build sources and sinks, handle signals, print the summary.

This is the library entry point behind ``emomon replay`` and ``emomon live``; the CLI only parses arguments.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import signal
import sys
import threading
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from emomon.config import EmomonConfig
from emomon.errors import ConfigError, OutputError
from emomon.files import make_private_folder, remove_folders
from emomon.monitor.sinks import (AudioSaver, CsvSink, LinePrinter, RowTimes, audio_folder_of, check_session_outputs,
                                  default_csv_path)
from emomon.monitor.views.alerts import AlertTracker
from emomon.progress import Activity, StatusLine
from emomon.records import parse_speaker_names  # noqa: F401 (re-exported: emomon.monitor.app's API)

if TYPE_CHECKING:
    from emomon.monitor.pipeline import Session

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
    audio_stream: int | None = None  # replay: which audio stream of each file (None: the first with sound)
    start_time: dt.datetime | None = None  # replay: when the recording began (--start-time); None: its metadata's, if any


def sample_recording() -> Path:
    """The short recording that ships with emomon (several emotional English sentences, espeak-ng voices)."""
    return Path(str(resources.files("emomon.monitor").joinpath("samples", "sample.ogg")))


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
        src = FileSource(path, stream, split_channels=opts.split_channels, realtime=opts.realtime, chunk_ms=chunk_ms,
                         audio_stream=opts.audio_stream)
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


class _StoppedWhileLoading(BaseException):
    """A signal arrived while the models loaded: the start is abandoned at once (nothing was written yet)."""


class _SignalStop:
    """Turns SIGINT/SIGTERM/SIGHUP into a graceful stop of the session (a second Ctrl-C aborts the drain).

    While :attr:`loading`, a signal interrupts the main thread's wait at once (it raises
    :class:`_StoppedWhileLoading`): the load goes on in the worker thread, which the command leaves behind (see
    ``emomon.cli.run``), so a stop takes effect within the current native call, not after a 10-30 s load."""

    def __init__(self, session: Session):
        self.session = session
        self.received: int | None = None
        self.loading = True
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
        if self.loading:
            self.loading = False
            raise _StoppedWhileLoading(signum)

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False


class _SessionOutputs:
    """The files a session creates once its models have loaded: the CSV (and its folder, when it is emomon's default
    ``sessions/``) and, with ``--save-audio``, the ``<csv name>-audio`` folder. A start that fails before the session
    runs removes exactly what this created (never a file or folder that was there before), so a retry with the same
    ``--csv`` works."""

    def __init__(self, csv_path: Path, *, named: bool, save_audio: bool, times: RowTimes | None = None):
        self.csv_path, self.named, self.save_audio, self.times = csv_path, named, save_audio, times
        self.folders: list[Path] = []
        self.csv: CsvSink | None = None
        self.audio: AudioSaver | None = None

    def create(self, session_id: str, classes: tuple[str, ...], steps: tuple[str, ...]) -> None:
        if not self.named:
            self.folders = make_private_folder(self.csv_path.parent, exist_ok=True)
        while True:  # a session started meanwhile may take the default name: then the next free one
            try:
                self.csv = CsvSink(self.csv_path, session_id, classes, steps, times=self.times)
            except OutputError:
                if self.named or not os.path.lexists(self.csv_path):
                    raise
                self.csv_path = default_csv_path(self.csv_path.parent)
                continue
            if self.save_audio:
                folder = audio_folder_of(self.csv_path)
                try:
                    self.audio = AudioSaver(folder)
                except OutputError:
                    self.csv.discard()
                    self.csv = None
                    if self.named or not os.path.lexists(folder):
                        raise
                    self.csv_path = default_csv_path(self.csv_path.parent)
                    continue
            return

    def discard(self) -> None:
        if self.audio is not None:
            self.audio.discard()
        if self.csv is not None:
            self.csv.discard()
        remove_folders(self.folders)


def _row_times(opts: MonitorOptions, sources: list, live: bool, session: Session) -> RowTimes:
    """The session CSV's time columns (:class:`~emomon.monitor.sinks.RowTimes`): the wall clock for live and
    ``--realtime`` (paced like live) unless ``--start-time`` is given; for a replay, its start (``--start-time``, else
    the files' metadata) plus each row's offset, or nothing when no start is known (said once, as the session starts)."""
    if live or (opts.realtime and opts.start_time is None):
        return RowTimes()
    if opts.start_time is not None:
        start, source = opts.start_time, "--start-time"
    else:
        from emomon.monitor.sources import recorded_start

        stated, source = recorded_start(sources)
        start = stated.time.astimezone() if stated is not None else None  # written in this machine's zone
    return RowTimes(wall=False, start=start, source=source, recording_end=lambda: session.stats.audio_seconds)


class _Stdout:
    """``sys.stdout`` as it is at each write: while the status line is up on the same terminal, it routes printed
    lines above itself (``rich.live.Live`` swaps ``sys.stdout`` meanwhile)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


def _replay_seconds(sources: list) -> float | None:
    """The length of a replay's session clock (its first input, as ``SessionStats.audio_seconds`` counts), from the
    file's header; None when the header does not say."""
    from emomon.audio.decode import duration_seconds

    try:
        return duration_seconds(sources[0].path, audio_stream=sources[0].audio_stream)
    except Exception:  # a progress bar is not worth an error: the replay reports a bad file itself
        return None


def run_monitor(cfg: EmomonConfig, opts: MonitorOptions, *, live: bool, extra_sinks: list | None = None, out=None,
                dashboard_console=None, status_console=None) -> int:
    """Run a session to its end; returns the exit code (0, or 128+signal when stopped by a signal).

    From its first second a status line on stderr (on a terminal only: :class:`~emomon.progress.StatusLine`) says
    what is happening: checking, ``loading models 2/4: speech encoder``, a replay's first pass, then (per-utterance
    lines) the replay's progress over audio time with the time left; it hands the terminal over to the dashboard,
    or live to the lines. ``out`` takes the lines (default: stdout); ``dashboard_console`` and ``status_console``
    replace the terminal's Rich consoles (e.g. a test's capture)."""
    status = StatusLine(status_console)
    status.start("checking the model and the inputs")
    try:
        return _run(cfg, opts, live, extra_sinks, out, dashboard_console, status)
    finally:
        status.stop()


def _run(cfg: EmomonConfig, opts: MonitorOptions, live: bool, extra_sinks: list | None, out, dashboard_console,
         status: StatusLine) -> int:
    out = out or _Stdout()
    # Every output is checked first (creating nothing), before the checkpoint's module, the inputs and the models.
    csv_path = opts.csv or default_csv_path()
    check_session_outputs(csv_path, create_folder=opts.csv is None, save_audio=opts.save_audio)
    # deferred, like the checkpoint's module: they import torch (1-2 s), and the status line shows before that
    from emomon.models.checkpoint import read_checkpoint_preset
    from emomon.monitor.pipeline import Session, step_names_of, summary_lines

    # Validate everything cheap before loading models: checkpoint JSON, inputs.
    preset = read_checkpoint_preset(cfg.runtime.model)
    classes, steps = preset.classes, step_names_of(preset.model)
    sources = build_sources(cfg, opts, live)
    session = Session(cfg, sources, live=live)
    status.show(session.activity)
    if cfg.alerts.kinds:  # one tracker decides the alerts: the CSV, the lines and the dashboard get the same
        session.alerts = AlertTracker(cfg.alerts, cfg.dashboard)
    times = _row_times(opts, sources, live, session)
    with _SignalStop(session) as sig:
        try:
            session.load()  # model errors end the command here, before the CSV exists
            if session.whole_recording:  # a full-speed replay: a first pass, then the session reads against it
                session.prepare_replay(build_sources(cfg, opts, live=False))
            session.wait_loaded()  # the text encoder's errors too end the command before the CSV exists
            sig.loading = False
        except _StoppedWhileLoading:
            pass
        if sig.received is not None:  # stopped while loading: no session ran, so no file is written
            sig.loading = False
            session.stop_event.set()
            session.worker.close()
            status.stop()
            print("emomon: stopped before the session started; nothing was written", file=sys.stderr)
            return SIGNAL_EXIT[sig.received]
        outputs = _SessionOutputs(csv_path, named=opts.csv is not None, save_audio=opts.save_audio, times=times)
        dashboard = None
        try:
            outputs.create(session.session_id, classes, steps)
            csv_path = outputs.csv_path
            session.sinks.append(outputs.csv)
            if outputs.audio is not None:
                session.sinks.append(outputs.audio)
            if opts.dashboard:
                from emomon.monitor.views.dashboard import Dashboard

                # the final frame stays on the screen with the closing lines below it
                dashboard = Dashboard(cfg.dashboard, classes, status=_status_fn(session, Path(cfg.runtime.model).name),
                                      alerts=session.alerts, console=dashboard_console,
                                      footer=lambda: closing())
                session.sinks.append(dashboard)
            elif opts.printer:
                session.sinks.append(LinePrinter(out))
            session.sinks.extend(extra_sinks or [])
        except BaseException:
            outputs.discard()
            raise
        logger.info("session CSV: %s", csv_path)
        if not times.wall:
            logger.info("%s", times.note)

        def closing() -> list[str]:
            """What is printed once the session has ended (below the dashboard's final frame)."""
            lines = [*summary_lines(session), f"  CSV: {csv_path}"]
            if sig.received is None and not live and not session.stats.utterances and session.stats.audio_seconds > 0:
                # else a silent "complete"
                lines.append(f"  no speech found: {session.stats.audio_seconds:.1f} s of audio in "
                             f"{', '.join(p.name for p in opts.files)} gave no utterance (is the speech in another "
                             "channel or audio stream?)")
            return lines

        if dashboard is not None or live:  # the status line hands the terminal over
            status.stop()
        else:  # a replay's progress over audio time, with the time left, under the lines
            total = _replay_seconds(sources)
            status.show(lambda: Activity("replay", session.processed_seconds(), total))
        saved_handlers = logger.handlers[:]
        started = False
        try:
            session.start()
            started = True
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
            if not started:  # no stage ran, so no row: leave no file behind
                outputs.discard()
            else:
                for sink in session.sinks:
                    sink.close("session failed")
            raise
        finally:
            status.stop()
            if dashboard is not None:
                dashboard.stop()
            logger.handlers[:] = saved_handlers
    for line in closing():
        print(line, file=sys.stderr)
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
