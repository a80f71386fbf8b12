"""Batch replay: many recordings, one session CSV each, a summary CSV, resumable, on N local worker processes.

The driver (:func:`run_batch`, in the user's process) plans the recordings, skips those whose CSV in the out-dir
already ends with a ``session complete`` row, hands the rest to readers and writes every result itself: each session
CSV (atomic, 0600, in a 0700 out-dir) and ``summary.csv`` (one row per recording x speaker). A reader
(:class:`RecordingReader`) holds the models of one process and reads recordings one after another, each as the
full-speed replay ``emomon replay FILE`` runs it (first pass, then the session), so a recording gives the same
probabilities whichever way it was read; it writes nothing the user sees and returns the CSV's text.

``--jobs N`` runs N readers in ``spawn``-ed worker processes (:class:`ProcessReaderPool`), each with
``max(1, cores // N)`` threads (``monitor/threads.py`` splits them between PyTorch and CTranslate2). A recording that
fails is one summary row and one stderr line, and the batch goes on; a worker process that dies is replaced and its
recording read once more, then reported failed. The exit code is then ``BATCH_PARTIAL`` (8).
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from concurrent.futures import Future, ProcessPoolExecutor, wait, FIRST_COMPLETED
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

from emomon.config import EmomonConfig
from emomon.errors import BATCH_PARTIAL, ConfigError, EmomonError, InputError, as_resource_error
from emomon.files import make_private_folder, write_output
from emomon.monitor.threads import available_cores

logger = logging.getLogger("emomon")

#: What a folder given to ``emomon replay`` contributes: files with these extensions (lower case), found recursively.
AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".wma", ".aif",
                              ".aiff", ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi"})
SUMMARY_NAME = "summary.csv"
#: Seconds between rewrites of the summary while a batch runs.
SUMMARY_EVERY = 5.0
COMPLETE = "session complete"


@dataclass(frozen=True)
class Recording:
    """One input of a batch."""

    path: Path
    #: output stem, unique in the batch (relative path with '/' -> '__', extension dropped)
    name: str
    speakers: tuple[tuple[int, str], ...] = ()
    split_channels: bool = False


@dataclass(frozen=True)
class RecordingResult:
    recording: Recording
    #: the whole session CSV, as CsvSink wrote it (None when no session ran; a session cut short by a damaged file
    #: keeps its rows, with ``error`` set and a last row that is not "session complete")
    csv_text: str | None
    error: str | None  # one line
    audio_seconds: float


# ------------------------------------------------------------------------------------------------------ planning
def _stem_of(rel: Path) -> str:
    return "__".join(rel.with_suffix("").parts)


def _parse_flag(text: str, where: str) -> bool:
    t = text.strip().lower()
    if t in ("", "0", "no", "false", "n"):
        return False
    if t in ("1", "yes", "true", "y"):
        return True
    raise InputError(f"{where}: split_channels must be yes/no, got {text!r}")


def _read_manifest(manifest: Path) -> list[tuple[Path, tuple[tuple[int, str], ...], bool]]:
    """``path[,speakers][,split_channels]`` rows under a header; speakers like ``0=Counsellor;1=Client``; relative
    paths are read from the manifest's folder."""
    from emomon.records import parse_speaker_names

    if not manifest.is_file():
        raise InputError(f"--manifest {manifest}: no such file")
    try:
        text = manifest.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"--manifest {manifest}: cannot read it ({exc})") from None
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or "path" not in [c.strip().lower() for c in rows[0]]:
        raise InputError(f"--manifest {manifest}: the first row must name the columns: path[,speakers][,split_channels]")
    header = [c.strip().lower() for c in rows[0]]
    unknown = [c for c in header if c not in ("path", "speakers", "split_channels")]
    if unknown:
        raise InputError(f"--manifest {manifest}: unknown column {unknown[0]!r} (columns: path, speakers, split_channels)")
    out = []
    for n, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        cell = dict(zip(header, row))
        where = f"--manifest {manifest} line {n}"
        if not cell.get("path", "").strip():
            raise InputError(f"{where}: no path")
        path = Path(cell["path"].strip())
        if not path.is_absolute():
            path = manifest.parent / path
        try:
            spk = parse_speaker_names([s for s in cell.get("speakers", "").split(";") if s.strip()])
        except ConfigError as exc:
            raise InputError(f"{where}: {exc}") from None
        out.append((path, tuple(sorted(spk.items())), _parse_flag(cell.get("split_channels", ""), where)))
    if not out:
        raise InputError(f"--manifest {manifest}: lists no recording")
    return out


def discover(inputs: list[Path], manifest: Path | None) -> list[Recording]:
    """The batch's recordings, in order: each file as given, each folder's audio files (recursively, by extension,
    sorted), then the manifest's rows. Names are unique: a clash gets ``-2``, ``-3``. Cheap (no audio is decoded);
    a missing, empty or unreadable file is one :class:`InputError` line."""
    from emomon.audio.decode import check_audio_file

    planned: list[tuple[Path, str, tuple, bool]] = []
    for p in inputs:
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_EXTENSIONS)
            if not found:
                raise InputError(f"{p} is a directory with no audio file in it (a folder makes a batch of its "
                                 f"{', '.join(sorted(AUDIO_EXTENSIONS))} files)")
            planned += [(f, _stem_of(f.relative_to(p)), (), False) for f in found]
        else:
            planned.append((p, _stem_of(Path(p.name)), (), False))
    if manifest is not None:
        planned += [(path, _stem_of(Path(path.name)), spk, split) for path, spk, split in _read_manifest(manifest)]
    if not planned:
        raise ConfigError("give recordings to replay: files, a folder or --manifest")
    names: set[str] = {SUMMARY_NAME[:-4]}
    recordings = []
    for path, stem, spk, split in planned:
        check_audio_file(path)
        name, n = stem, 1
        while name.lower() in names:
            n += 1
            name = f"{stem}-{n}"
        names.add(name.lower())
        recordings.append(Recording(path, name, spk, split))
    return recordings


def default_out_dir(now: dt.datetime | None = None) -> Path:
    """``sessions/<batch time>/`` (local time)."""
    return Path("sessions") / f"{(now or dt.datetime.now()):%Y-%m-%d_%H-%M-%S}"


#: What one worker process holds resident (the models, PyTorch, CTranslate2: 0.92-0.95 GB measured) plus headroom.
WORKER_MEMORY = int(1.5 * 2**30)


def available_memory() -> int:
    """Bytes the kernel says can be had without swapping (``MemAvailable``: free plus reclaimable cache); 0 when
    unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def default_jobs(cores: int | None = None, memory_bytes: int | None = None) -> int:
    """One worker per core, each with one PyTorch and one CTranslate2 thread (``bench/batch.py`` on 2 cores: two
    1-core workers read 1.4x as fast as one 2-core worker, whose two stages leave a core idle much of the time), at
    most one per :data:`WORKER_MEMORY` of available memory, at least 1."""
    cores = cores or available_cores()
    memory_bytes = available_memory() if memory_bytes is None else memory_bytes
    by_memory = int(memory_bytes // WORKER_MEMORY) if memory_bytes else cores
    return max(1, min(cores, by_memory))


# ------------------------------------------------------------------------------------------------------ reading
class RecordingReader:
    """Holds the models for one process (or one Ray actor) and reads recordings one after another, each as a
    full-speed ``emomon replay`` session; the models load with the first recording and stay."""

    def __init__(self, cfg: EmomonConfig, *, threads: int | None = None):
        from emomon.models.checkpoint import read_checkpoint_preset
        from emomon.monitor.pipeline import build_worker, step_names_of
        from emomon.monitor.worker import LoadedModels

        if threads is not None:
            cfg = dataclasses.replace(cfg, runtime=dataclasses.replace(cfg.runtime, threads=threads))
        self.cfg = cfg
        preset = read_checkpoint_preset(cfg.runtime.model)
        self.classes, self.steps = preset.classes, step_names_of(preset.model)
        # one inference worker for every recording this reader reads (one after another, or several at once: their
        # utterances then share its micro-batches); nothing loads until the first recording
        self.models = LoadedModels(build_worker(cfg, timed=False, first_row_at_once=False))

    def close(self) -> None:
        """End the reader's inference worker (the models go with the process)."""
        self.models.close()

    def read(self, recording: Recording, data: bytes | None = None) -> RecordingResult:
        """One recording's session; ``data``: the file's bytes when shipped (e.g. a Ray upload), else its path is
        read. Errors come back in the result (one line), never raised."""
        folder = Path(tempfile.mkdtemp(prefix="emomon-read-"))  # 0700
        try:
            path = recording.path
            if data is not None:
                path = folder / f"input{recording.path.suffix}"
                path.write_bytes(data)
            return self._read(recording, path, folder / "session.csv")
        except EmomonError as exc:
            return RecordingResult(recording, None, _one_line(exc), 0.0)
        except Exception as exc:  # a recording's failure is its own, never the batch's
            resource = as_resource_error(exc)
            logger.debug("reading %s failed", recording.path, exc_info=True)
            return RecordingResult(recording, None, _one_line(resource or exc, type(exc).__name__), 0.0)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _read(self, recording: Recording, path: Path, csv_path: Path) -> RecordingResult:
        from emomon.monitor.app import MonitorOptions, _row_times, build_sources
        from emomon.monitor.pipeline import Session
        from emomon.monitor.sinks import CsvSink
        from emomon.monitor.views.alerts import AlertTracker

        cfg = self.cfg
        opts = MonitorOptions(files=[path], split_channels=recording.split_channels, speakers=dict(recording.speakers),
                              printer=False)
        sources = build_sources(cfg, opts, live=False)
        session = Session(cfg, sources, live=False, models=self.models)
        if cfg.alerts.kinds:
            session.alerts = AlertTracker(cfg.alerts, cfg.dashboard)
        times = _row_times(opts, sources, False, session)
        try:
            session.load()
            session.prepare_replay(build_sources(cfg, opts, live=False))
            session.wait_loaded()
            session.sinks.append(CsvSink(csv_path, session.session_id, self.classes, self.steps, fsync=False, times=times))
            session.start()
        except BaseException:
            session.stop()
            session.worker.close()
            raise
        session.wait()
        text = csv_path.read_text(encoding="utf-8")
        failed = [src.error for src in sources if src.error]
        return RecordingResult(recording, text, failed[0] if failed else None, session.stats.audio_seconds)


def _one_line(exc: BaseException, kind: str = "") -> str:
    text = (str(exc).splitlines() or [""])[0].strip() or type(exc).__name__
    return f"{kind}: {text}" if kind else text


# ------------------------------------------------------------------------------------------------------ pools
class ReaderPool(Protocol):
    """Where run_batch sends recordings: ``submit`` gives a future of the :class:`RecordingResult`."""

    def submit(self, recording: Recording) -> Future: ...

    def shutdown(self, abort: bool = False) -> None: ...


class LocalReaderPool:
    """One reader in this process: ``--jobs 1``, or the one process of a GPU. ``at_once`` recordings are read at the
    same time (their utterances sharing the worker's micro-batches), each on its own thread; with 1, each recording
    is read as it is submitted."""

    def __init__(self, cfg: EmomonConfig, threads: int | None = None, at_once: int = 1):
        self.cfg, self.threads = cfg, threads
        #: run_batch hands it this many recordings at a time
        self.max_in_flight = max(1, at_once)
        self._reader: RecordingReader | None = None
        self._executor = None
        if self.max_in_flight > 1:
            from concurrent.futures import ThreadPoolExecutor

            self._executor = ThreadPoolExecutor(self.max_in_flight, thread_name_prefix="emomon-reader")

    def submit(self, recording: Recording) -> Future:
        if self._reader is None:
            self._reader = RecordingReader(self.cfg, threads=self.threads)
        if self._executor is not None:
            return self._executor.submit(self._reader.read, recording)
        future: Future = Future()
        future.set_result(self._reader.read(recording))
        return future

    def shutdown(self, abort: bool = False) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=not abort, cancel_futures=True)
        if self._reader is not None and not abort:
            self._reader.close()
        self._reader = None


def recordings_at_once(cfg: EmomonConfig, gpu: bool) -> int:
    """How many recordings one reader reads at once: ``[replay] recordings_at_once``, else 4 on a GPU (whose
    micro-batches one recording alone leaves small) and 1 on the CPU (where a second process reads faster:
    ``bench/batch.py``)."""
    return cfg.replay.recordings_at_once or (4 if gpu else 1)


def uses_gpu(cfg: EmomonConfig) -> bool:
    """Whether the readers will compute on CUDA: ``--compute cuda``, or ``auto`` with a CUDA device visible (asked of
    CTranslate2, which loads far faster than PyTorch)."""
    device = cfg.runtime.device
    if device != "auto":
        return device == "cuda"
    try:
        import ctranslate2  # deferred: only to count CUDA devices

        return ctranslate2.get_cuda_device_count() > 0
    except Exception:  # no usable CUDA runtime: the CPU
        return False


_PROCESS_READER: RecordingReader | None = None


def _init_process(cfg: EmomonConfig, threads: int, level: int) -> None:
    global _PROCESS_READER
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver stops the batch; a worker just ends with it
    os.umask(0o077)
    logging.getLogger("emomon").setLevel(level)
    _PROCESS_READER = RecordingReader(cfg, threads=threads)


def _read_in_process(recording: Recording) -> RecordingResult:
    return _PROCESS_READER.read(recording)


class ProcessReaderPool:
    """``jobs`` worker processes (``spawn``), each holding one :class:`RecordingReader` (models loaded once)."""

    def __init__(self, cfg: EmomonConfig, jobs: int, threads: int | None = None):
        import multiprocessing

        self.cfg, self.jobs = cfg, jobs
        #: cores per worker: as given, else ``runtime.threads`` when the preset sets it, else an equal share
        self.threads = threads or cfg.runtime.threads or max(1, available_cores() // jobs)
        self._context = multiprocessing.get_context("spawn")
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self.jobs, mp_context=self._context, initializer=_init_process,
                                   initargs=(self.cfg, self.threads, logging.getLogger("emomon").getEffectiveLevel()))

    def submit(self, recording: Recording) -> Future:
        try:
            return self._pool.submit(_read_in_process, recording)
        except BrokenProcessPool:  # a worker died earlier: a fresh pool for what is left
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            return self._pool.submit(_read_in_process, recording)

    def shutdown(self, abort: bool = False) -> None:
        """Wait for the workers to end; ``abort`` (the batch was stopped): end them now, mid-recording."""
        if abort:
            processes = list((getattr(self._pool, "_processes", None) or {}).values())
            self._pool.shutdown(wait=False, cancel_futures=True)
            for p in processes:
                p.terminate()
            return
        self._pool.shutdown(wait=True, cancel_futures=True)


# ------------------------------------------------------------------------------------------------------ results
def is_complete(csv_path: Path) -> bool:
    """Whether a session CSV ends with its ``session complete`` event row (a resumed batch skips it)."""
    try:
        with open(csv_path, encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    return bool(rows) and rows[-1].get("asr_note") == "event" and (rows[-1].get("transcript") or "").startswith(COMPLETE)


SUMMARY_COLUMNS_HEAD = ["recording", "path", "speaker", "speech_minutes", "utterances"]
SUMMARY_COLUMNS_TAIL = ["mean_valence", "mean_arousal", "alerts", "error"]


def summary_rows(result: RecordingResult) -> list[dict]:
    """One row per speaker of the recording (speech minutes, utterances, class shares ``share_<class>``, mean
    valence/arousal, alerts), from its CSV text; one row with the error when no utterance was read, and the error in
    every row when the session was cut short."""
    from emomon.monitor.views.report.reading import Row
    from emomon.monitor.views.report.summary import affect_of

    rec = result.recording
    base = {"recording": rec.name, "path": str(rec.path)}
    if result.csv_text is None:
        return [{**base, "speaker": "", "utterances": 0, "error": result.error or "no session"}]
    rows = list(csv.DictReader(io.StringIO(result.csv_text)))
    columns = list(rows[0].keys()) if rows else []
    classes = tuple(c[2:] for c in columns if c.startswith("p_"))
    speakers: dict[str, dict] = {}
    alerts: dict[str, int] = {}
    for r in rows:
        note = r.get("asr_note", "")
        if note == "alert":
            alerts[r.get("speaker", "")] = alerts.get(r.get("speaker", ""), 0) + 1
            continue
        if note == "event" or not r.get("utterance"):
            continue
        s = speakers.setdefault(r["speaker"], {"seconds": 0.0, "n": 0, "counts": {}, "va": []})
        start, end = float(r["start_s"]), float(r["end_s"])
        s["seconds"] += max(0.0, end - start)
        s["n"] += 1
        s["counts"][r["emotion"]] = s["counts"].get(r["emotion"], 0) + 1
        values = tuple(_float(r.get(f"p_{c}")) for c in classes)
        va = affect_of(Row(r["session_id"], r["speaker"], start, end, "", "", r.get("transcript", ""), r["emotion"],
                           _float(r.get("confidence")), classes, values))
        if va is not None:
            s["va"].append(va)
    if not speakers:
        return [{**base, "speaker": "", "utterances": 0, "error": result.error or "no speech found"}]
    out = []
    for name in sorted(speakers):
        s = speakers[name]
        row = {**base, "speaker": name, "speech_minutes": f"{s['seconds'] / 60:.3f}", "utterances": s["n"]}
        row.update({f"share_{c}": f"{s['counts'].get(c, 0) / s['n']:.3f}" for c in classes})
        if s["va"]:
            row["mean_valence"] = f"{sum(v for v, _ in s['va']) / len(s['va']):.3f}"
            row["mean_arousal"] = f"{sum(a for _, a in s['va']) / len(s['va']):.3f}"
        row["alerts"] = alerts.get(name, 0)
        row["error"] = result.error or ""
        out.append(row)
    return out


def _float(s: str | None) -> float | None:
    try:
        return float(s) if s not in (None, "") else None
    except ValueError:
        return None


def _summary_text(rows: list[dict]) -> str:
    from emomon.records import spreadsheet_safe

    shares = list(dict.fromkeys(k for r in rows for k in r if k.startswith("share_")))
    columns = SUMMARY_COLUMNS_HEAD + shares + SUMMARY_COLUMNS_TAIL
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(columns)
    for r in rows:
        w.writerow([spreadsheet_safe(str(r.get(c, ""))) if c in ("recording", "path", "speaker", "error")
                    else r.get(c, "") for c in columns])
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------------ driver
class _Progress:
    """Rich bars over recordings and over audio time (with the time left), on stderr when it is a terminal; else a
    line when the batch starts and one per finished recording, with the time left (for logs)."""

    def __init__(self, enabled: bool, n: int, total_seconds: float):
        self._p = None
        self.enabled, self.n, self.total = enabled, n, total_seconds
        self.done, self.seconds, self.t0 = 0, 0.0, time.monotonic()
        if not enabled:
            return
        if not sys.stderr.isatty():
            print(f"emomon: reading {n} recording(s), {total_seconds / 60:.1f} min of audio", file=sys.stderr, flush=True)
            return
        # deferred: Rich is only needed with a terminal
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                           console=Console(stderr=True), transient=True)
        self._files = self._p.add_task("recordings", total=n)
        self._audio = self._p.add_task("audio (s)", total=max(1, round(total_seconds)))
        self._p.start()

    def advance(self, name: str, seconds: float) -> None:
        self.done += 1
        self.seconds += seconds
        if self._p is not None:
            self._p.advance(self._files, 1)
            self._p.advance(self._audio, round(seconds))
        elif self.enabled:
            elapsed = time.monotonic() - self.t0
            left = ""
            if self.seconds > 0 and self.done < self.n:
                left = f", about {max(0.0, (self.total - self.seconds) * elapsed / self.seconds) / 60:.1f} min left"
            print(f"emomon: {self.done}/{self.n} {name} done ({self.seconds / 60:.1f} of {self.total / 60:.1f} min of "
                  f"audio{left})", file=sys.stderr, flush=True)

    def print(self, line: str) -> None:
        if self._p is not None:
            self._p.console.print(line, markup=False, highlight=False)
        else:
            print(line, file=sys.stderr)

    def stop(self) -> None:
        if self._p is not None:
            self._p.stop()


def _seconds_of(rec: Recording) -> float:
    from emomon.audio.decode import duration_seconds

    try:
        return duration_seconds(rec.path) or 0.0
    except Exception:  # a progress bar is not worth an error: the reader reports a bad file itself
        return 0.0


def run_batch(cfg: EmomonConfig, recordings: list[Recording], out_dir: Path, *, jobs: int,
              reader_pool: ReaderPool | None = None, progress: bool = True) -> int:
    """Read every recording not yet complete in ``out_dir``, write its session CSV there and ``summary.csv``; returns
    the exit code: 0, or ``BATCH_PARTIAL`` when some recordings failed. ``reader_pool``: where the recordings are
    read (default: this process for ``jobs`` 1, else ``jobs`` worker processes)."""
    make_private_folder(out_dir, exist_ok=True)
    done: dict[str, list[dict]] = {}
    todo: list[Recording] = []
    for rec in recordings:
        path = out_dir / f"{rec.name}.csv"
        if is_complete(path):
            text = path.read_text(encoding="utf-8")
            done[rec.name] = summary_rows(RecordingResult(rec, text, None, 0.0))
        else:
            todo.append(rec)
    if done:
        print(f"emomon: {len(done)} recording(s) already complete in {out_dir}, skipped; {len(todo)} to read",
              file=sys.stderr)
    order = [rec.name for rec in recordings]
    failed: list[str] = []

    last_summary = [0.0]

    def write_summary(now: bool = True) -> None:
        # rewritten as results come, at most every SUMMARY_EVERY s (a batch of thousands would otherwise rewrite it
        # thousands of times), and at the end; a resumed batch rebuilds it from the complete CSVs anyway
        if not now and time.monotonic() - last_summary[0] < SUMMARY_EVERY:
            return
        rows = [r for name in order for r in done.get(name, [])]
        write_output(out_dir / SUMMARY_NAME, _summary_text(rows).encode("utf-8"), overwrite=True,
                     what="write the batch summary")
        last_summary[0] = time.monotonic()

    seconds = {rec.name: _seconds_of(rec) for rec in todo}
    bar = _Progress(progress, len(todo), sum(seconds.values()))
    own_pool = reader_pool is None
    if own_pool:
        if jobs <= 1:  # this process reads: --jobs 1, or a GPU's one process (several recordings at once)
            reader_pool = LocalReaderPool(cfg, at_once=recordings_at_once(cfg, uses_gpu(cfg)))
        else:
            reader_pool = ProcessReaderPool(cfg, jobs)
    # a pool may ask to be given only a few recordings at a time (``max_in_flight``); else all are submitted now
    limit = getattr(reader_pool, "max_in_flight", None) or max(1, len(todo))
    queued = list(todo)
    aborted = True
    try:
        pending: dict[Future, tuple[Recording, int]] = {}
        while queued or pending:
            while queued and len(pending) < limit:
                rec = queued.pop(0)
                pending[reader_pool.submit(rec)] = (rec, 0)
            finished, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for fut in finished:
                rec, tries = pending.pop(fut)
                try:
                    result = fut.result()
                except BrokenProcessPool:
                    if tries == 0:  # its worker died (killed, out of memory): once more in a fresh one
                        bar.print(f"emomon: a worker process died while reading {rec.path}; reading it again")
                        pending[reader_pool.submit(rec)] = (rec, 1)
                        continue
                    result = RecordingResult(rec, None, "the worker process reading it died (twice)", 0.0)
                except Exception as exc:  # the pool's own failure for this recording
                    result = RecordingResult(rec, None, _one_line(exc, type(exc).__name__), 0.0)
                if result.csv_text is not None:
                    write_output(out_dir / f"{rec.name}.csv", result.csv_text.encode("utf-8"), overwrite=True,
                                 what="write the session CSV")
                if result.error:
                    failed.append(rec.name)
                    where = "" if str(rec.path) in result.error else f"{rec.path}: "  # (a decoding error names it)
                    bar.print(f"emomon: {where}{result.error}")
                done[rec.name] = summary_rows(result)
                write_summary(now=False)
                bar.advance(rec.name, seconds.get(rec.name, 0.0))
        aborted = False
    finally:
        bar.stop()
        if own_pool:
            reader_pool.shutdown(abort=aborted)
        if aborted:  # stopped (Ctrl-C) or failed: the summary still lists what was finished
            try:
                write_summary()
            except Exception:  # e.g. the disk is full: the error being raised says so
                logger.debug("writing the summary of a stopped batch failed", exc_info=True)
    write_summary()
    print(f"emomon: {len(recordings)} recording(s): {len(recordings) - len(failed)} complete, {len(failed)} failed; "
          f"CSVs and {SUMMARY_NAME} in {out_dir}", file=sys.stderr)
    return BATCH_PARTIAL if failed else 0
