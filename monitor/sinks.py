"""Sinks: the session CSV (one row per utterance, flushed as it is known, created user-only) and a plain
line-per-utterance printer for pipes and ``--no-dashboard``."""

from __future__ import annotations

import csv
import datetime as dt
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol, TextIO

from emomon.errors import OutputError
from emomon.files import check_output_folder, check_output_path, create_private_file, output_error
from emomon.records import Alert, Result, Utterance, spreadsheet_safe

logger = logging.getLogger("emomon")


class Sink(Protocol):
    """What the session hands its results to, in order. A sink may also have ``alert(a: Alert)``: the session then
    gives it every alert once it has ended (emomon.monitor.views.alerts decides them), after the result that ended it."""

    def write(self, result: Result) -> None: ...

    def notice(self, message: str) -> None: ...

    def close(self, status: str = "") -> None: ...


def default_csv_path(root: Path = Path("sessions"), now: dt.datetime | None = None) -> Path:
    """``sessions/2026-11-22_14-30-05.csv`` (local time); ``…-2.csv``, ``…-3.csv`` when sessions started in the same
    second already hold that name (a name the user did not choose must not make a session fail)."""
    now = now or dt.datetime.now()
    stem = f"{now:%Y-%m-%d_%H-%M-%S}"
    path, n = root / f"{stem}.csv", 1
    while os.path.lexists(path) or os.path.lexists(audio_folder_of(path)):  # a dangling link or a session's audio takes a name too
        n += 1
        path = root / f"{stem}-{n}.csv"
    return path


def audio_folder_of(csv_path: Path) -> Path:
    """Where ``--save-audio`` keeps a session's WAVs: ``<csv name>-audio/`` next to the CSV."""
    return Path(csv_path).with_name(Path(csv_path).stem + "-audio")


def iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t).astimezone().isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class RowTimes:
    """What the session CSV's ``start_time`` and ``end_time`` hold (README, "What gets written").

    * ``wall`` (live; ``--realtime`` without ``--start-time``): the wall clock the speech was captured (or paced) at;
      an event row (an input lost, the session's end) is stamped when it is written.
    * a replay at full speed has no wall clock of its own: with a ``start`` (``--start-time``, or the recording's
      own metadata), a row's times are that start plus its offsets (``start_s``, ``end_s``), and an event row's is the
      end of what was read by then (the session's end: the end of the recording), so the rows stay in time order;
      without one, both columns stay empty (``start_s``/``end_s`` still place every row).
    """

    wall: bool = True
    start: dt.datetime | None = None  # aware; the zone it is written in
    source: str = ""  # where the start came from (or why there is none), for the one-line note
    #: the recording's end so far (seconds from its start), for the session's last row
    recording_end: Callable[[], float] | None = field(default=None, compare=False)

    def utterance(self, u: Utterance) -> tuple[str, str]:
        """(start_time, end_time) of an utterance row."""
        if self.wall:
            return iso(u.wall_start), iso(u.wall_end)
        if self.start is None:
            return "", ""
        return self.at(u.start), self.at(u.end)

    def at(self, offset: float) -> str:
        """The time cell ``offset`` seconds into the recording (empty without a start; the wall clock now for live)."""
        if self.wall:
            return iso(time.time())
        if self.start is None:
            return ""
        return (self.start + dt.timedelta(seconds=max(0.0, offset))).isoformat(timespec="milliseconds")

    @property
    def note(self) -> str:
        """One line for the user: what the time columns hold in this session."""
        if self.wall:
            return "start_time/end_time: the wall clock"
        if self.start is None:
            return (f"start_time/end_time are left empty: a replay has no wall clock of its own and {self.source} "
                    "(--start-time 2026-03-02T09:00:00+01:00 gives one; start_s/end_s place every row)")
        return f"start_time/end_time: the recording's start {self.start.isoformat()} (from {self.source}) plus each row's offset"


def check_session_outputs(csv_path: Path, *, create_folder: bool, save_audio: bool) -> None:
    """Every output of a session, checked before any model loads, so that a bad ``--csv`` path costs nothing and
    leaves nothing behind: the CSV must be a new file (emomon never overwrites a session, nor writes through a
    symbolic link) in a writable folder (emomon creates only its own default folder, 0700, and only once the models
    have loaded), and with ``--save-audio`` its ``<csv name>-audio`` folder must not exist yet. Creates nothing."""
    check_output_path(csv_path, overwrite=False, what="the session CSV", verb="create", parents=create_folder,
                      exists_hint="choose another --csv path (emomon never overwrites a session)")
    if save_audio:
        check_output_folder(audio_folder_of(csv_path), what="the audio folder", verb="create", new=True,
                            exists_hint="emomon does not mix sessions' audio; choose another --csv path")


def _text(cell: str) -> str:
    """A free-text cell (speaker, transcript, labels, event notes) made safe to open in a spreadsheet (a formula
    start gets a ``'``: :func:`emomon.records.spreadsheet_safe`); numbers are written as they are."""
    return spreadsheet_safe(str(cell))


class CsvSink:
    """The session CSV: a header, then one row per utterance written and flushed as soon as it is known, so a
    killed session leaves a file that parses and holds every finished utterance."""

    def __init__(self, path: Path, session_id: str, classes: tuple[str, ...], step_names: tuple[str, ...], fsync: bool = True,
                 times: RowTimes | None = None):
        self.path = Path(path)
        self.times = times or RowTimes()
        self._last_end = 0.0  # the latest end (s) written: an event row of a replay comes no earlier
        self._wall_offset: float | None = None
        self.session_id = session_id
        self.classes = classes
        self.step_names = step_names
        self.fsync = fsync
        self.rows = 0
        self.columns = (
            ["session_id", "speaker", "stream", "utterance", "start_s", "end_s", "start_time", "end_time", "transcript",
             "emotion", "confidence"]
            + [f"p_{c}" for c in classes]
            + [f"{s}_emotion" for s in step_names]
            + ["language", "asr_note", "cut", "asr_ms", "emotion_ms", "latency_ms"]
        )
        self._f = create_private_file(self.path)
        self._w = csv.writer(self._f)
        try:
            self._row(self.columns)
        except OutputError:  # e.g. a full disk: leave no empty file behind to block a retry with the same --csv
            try:
                self._f.close()
            except OSError:
                pass  # the buffered header cannot be written either; the file goes anyway
            self.path.unlink(missing_ok=True)
            raise

    def _row(self, values: list) -> None:
        try:
            self._w.writerow(values)
            self._f.flush()
            if self.fsync:
                os.fsync(self._f.fileno())
        except OSError as exc:
            raise output_error(self.path, exc, "write") from None

    def write(self, r: Result) -> None:
        u = r.utterance
        row = [
            _text(self.session_id), _text(u.speaker), u.stream, u.index, f"{u.start:.3f}", f"{u.end:.3f}",
            *self.times.utterance(u), _text(r.text), _text(r.emotion), f"{r.confidence:.4f}",
            *[f"{r.probs.get(c, 0.0):.4f}" for c in self.classes],
            *[_text(r.step_emotions.get(s, "")) for s in self.step_names],
            _text(r.language), _text(r.asr_note), int(u.cut), f"{r.asr_seconds * 1000:.0f}",
            f"{r.emotion_seconds * 1000:.0f}",
            f"{r.latency * 1000:.0f}" if r.latency is not None else "",
        ]
        self._row(row)
        self.rows += 1
        self._last_end = max(self._last_end, u.end)
        self._wall_offset = u.wall_end - u.end  # session seconds -> wall clock, for alert rows

    def notice(self, message: str, *, last: bool = False) -> None:
        """An event row (input lost or back, session end): no utterance number, ``asr_note`` = ``event``; its time
        is :class:`RowTimes`' (``last``: the session's end, which a replay stamps at the end of the recording)."""
        at = self._last_end
        if last and self.times.recording_end is not None:
            at = max(at, self.times.recording_end())
        stamp = self.times.at(at)
        row = {c: "" for c in self.columns}
        row.update(session_id=_text(self.session_id), start_time=stamp, end_time=stamp, transcript=_text(message),
                   asr_note="event")
        self._row([row[c] for c in self.columns])

    def alert(self, a: Alert) -> None:
        """An alert row, once the alert has ended (one still going on, ``until_s`` None, is not written):
        ``asr_note`` = ``alert``, the speaker, ``start_s``/``end_s`` = since/until, ``transcript`` = ``<kind>:
        <detail>``; ``emomon report`` reads it back as it is."""
        if a.until_s is None:
            return
        row = {c: "" for c in self.columns}
        row.update(session_id=_text(self.session_id), speaker=_text(a.speaker), start_s=f"{a.since_s:.3f}",
                   end_s=f"{a.until_s:.3f}", start_time=self._stamp(a.since_s), end_time=self._stamp(a.until_s),
                   transcript=_text(f"{a.kind}: {a.detail}"), asr_note="alert")
        self._row([row[c] for c in self.columns])

    def _stamp(self, t: float) -> str:
        """The time cell of session second ``t`` (live: the wall clock of the utterances, when one was written)."""
        if self.times.wall and self._wall_offset is not None:
            return iso(t + self._wall_offset)
        return self.times.at(t)

    def close(self, status: str = "") -> None:
        if self._f.closed:
            return
        try:
            if status:
                self.notice(status, last=True)
        finally:
            try:
                self._f.close()
            except OSError:
                pass

    def discard(self) -> None:
        """A session that failed to start: close the CSV and remove it, so that no header-only file is left to block
        a retry with the same ``--csv``. Only the file this sink created goes (the same inode), and only while it
        holds no utterance."""
        if self.rows:
            self.close("session failed to start")
            return
        try:
            ours = os.fstat(self._f.fileno()) if not self._f.closed else None
        except OSError:
            ours = None
        try:
            self._f.close()
        except OSError:
            pass
        try:
            now = os.lstat(self.path)
        except OSError:
            return
        if ours is not None and (now.st_dev, now.st_ino) == (ours.st_dev, ours.st_ino):
            self.path.unlink(missing_ok=True)


class AudioSaver:
    """Keeps each utterance's audio as a 16-bit WAV, only when the user asked (``--save-audio``): a 0700 folder
    next to the CSV, files 0600, named ``<utterance>_<speaker>.wav``."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        try:
            self.folder.mkdir(mode=0o700)
            os.chmod(self.folder, 0o700)  # exactly user-only, whatever the umask
        except FileExistsError:
            raise OutputError(f"cannot create the audio folder {self.folder}: it already exists; emomon does not mix "
                              "sessions' audio; choose another --csv path") from None
        except OSError as exc:
            raise output_error(self.folder, exc, "create folder") from None
        self.files = 0

    def discard(self) -> None:
        """A session that failed to start: remove the folder this saver created, if it is still empty."""
        try:
            self.folder.rmdir()
        except OSError:
            pass

    def write(self, r: Result) -> None:
        import re
        import wave

        import numpy as np

        u = r.utterance
        name = re.sub(r"[^A-Za-z0-9_-]+", "_", u.speaker)[:40] or "speaker"
        path = self.folder / f"{u.index:05d}_{name}.wav"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f, wave.open(f, "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(16000)
                w.writeframes((np.clip(u.audio, -1, 1) * 32767).astype("<i2").tobytes())
        except OSError as exc:
            raise output_error(path, exc, "write") from None
        self.files += 1

    def notice(self, message: str) -> None:
        pass

    def close(self, status: str = "") -> None:
        pass


def _clock(seconds: float) -> str:
    m, s = divmod(max(0.0, seconds), 60)
    h, m = divmod(int(m), 60)
    return f"{h:d}:{m:02d}:{s:04.1f}" if h else f"{m:02d}:{s:04.1f}"


class LinePrinter:
    """``[00:12.3-00:15.1] Teacher   happy    0.82  "what a great answer"`` per utterance."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stdout

    def write(self, r: Result) -> None:
        u = r.utterance
        text = r.text or (f"({r.asr_note})" if r.asr_note else "")
        line = f"[{_clock(u.start)}-{_clock(u.end)}] {u.speaker:<10} {r.emotion:<8} {r.confidence:.2f}  {text!r}"
        try:
            print(line, file=self.stream, flush=True)
        except BrokenPipeError:  # `emomon replay x | head`: stop printing, keep logging to the CSV
            self.stream = open(os.devnull, "w")

    def notice(self, message: str) -> None:
        print(f"# {message}", file=self.stream, flush=True)

    def alert(self, a: Alert) -> None:
        """``# alert [01:05.0-02:10.0] Student  negative-affect: <detail>``, once the alert has ended."""
        if a.until_s is None:
            return
        try:
            print(f"# alert [{_clock(a.since_s)}-{_clock(a.until_s)}] {a.speaker:<10} {a.kind}: {a.detail}",
                  file=self.stream, flush=True)
        except BrokenPipeError:
            self.stream = open(os.devnull, "w")

    def close(self, status: str = "") -> None:
        pass
