"""Reading a session CSV into a :class:`Session`: its utterance rows, its event notes and what a cut-off file lost.

Robustness: the CSV may come from a killed session, a spreadsheet or a hand edit, so no cell is trusted.

* A last row cut short (no final newline) has its last, possibly cut, field dropped and is kept only when what
  remains is a usable row; rows with missing trailing fields are kept; unknown extra columns are ignored; the class
  set is read from the ``p_*`` columns; a header-only file gives a session without rows (the report says there were
  no utterances). Event rows (``asr_note`` = ``event``: input lost or back, how the session ended) become notes, not
  utterances; alert rows (``asr_note`` = ``alert``: speaker, ``start_s``/``end_s`` = since/until, ``transcript`` =
  ``<kind>: <detail>``, as :meth:`emomon.monitor.sinks.CsvSink.alert` writes them) become
  :class:`~emomon.records.Alert` records, read back as they are (the report never decides an alert again); one
  without a usable since is an unreadable row.
* **Numbers**: ``start_s`` and ``end_s`` must be finite session seconds in [0, :data:`MAX_SESSION_S`] (an ``end_s``
  before ``start_s`` is read as ``start_s``); a row without them, or with one that is not a number, not finite
  (``nan``, ``inf``) or out of that range (``1e308``, ``-5``), or without an emotion, is **skipped and counted**
  in one note ("N unreadable rows skipped ..."). A ``confidence`` or ``p_*`` cell that is not a finite number in
  [0, 1] is read as missing. A corrupt number never stops the report.
* **Text**: cells are read back from their spreadsheet-safe form
  (:func:`emomon.records.from_spreadsheet_safe`: the CSV sink writes ``'=...`` for a text starting ``=``);
  speaker names and emotion labels are made one line (:func:`emomon.records.one_line`); a field of any size is read
  (Python's csv field limit is lifted to the file's size while reading).
* The file is read as a stream (rows are kept, the text is not), so a session of a million rows fits in memory.

A file that is not a session CSV (binary, wrong header, empty, not UTF-8, not a regular file) raises
:class:`~emomon.errors.InputError`.
"""

from __future__ import annotations

import csv
import io
import math
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from emomon.errors import InputError
from emomon.records import Alert, from_spreadsheet_safe, one_line

#: Columns every session CSV has; a file without them is not one.
REQUIRED = ("session_id", "speaker", "start_s", "end_s", "emotion")
#: The largest session time (s) a row may have: a year. A larger ``start_s``/``end_s`` is a corrupt cell.
MAX_SESSION_S = 366 * 24 * 3600.0
#: Bytes read at a time.
_CHUNK = 1 << 20


@dataclass(slots=True)
class Row:
    """One utterance. Its class probabilities are kept compactly (a tuple over the session's classes, None where a
    cell was missing or unusable) and read as a dict through :attr:`probs`."""

    session_id: str
    speaker: str
    start: float
    end: float
    start_time: str
    end_time: str
    transcript: str
    emotion: str
    confidence: float | None
    classes: tuple[str, ...] = ()
    values: tuple[float | None, ...] = ()
    asr_note: str = ""
    language: str = ""

    @property
    def duration(self) -> float:
        return max(0.0, self.end - self.start)

    @property
    def probs(self) -> dict[str, float]:
        return {c: p for c, p in zip(self.classes, self.values) if p is not None}


@dataclass
class Session:
    path: Path
    classes: list[str]
    rows: list[Row]
    notes: list[str] = field(default_factory=list)
    #: the session's alerts, from its alert rows, in file order
    alerts: list[Alert] = field(default_factory=list)
    #: What the report computed from the rows once, for the figure and the page (e.g. the time range).
    memo: dict = field(default_factory=dict, repr=False, compare=False)

    @cached_property
    def by_speaker(self) -> dict[str, list[Row]]:
        """Each speaker's rows (in session order), speakers in order of appearance."""
        out: dict[str, list[Row]] = {}
        for r in self.rows:
            rows = out.get(r.speaker)
            if rows is None:
                out[r.speaker] = rows = []
            rows.append(r)
        return out

    @property
    def speakers(self) -> list[str]:
        return list(self.by_speaker)

    @cached_property
    def session_ids(self) -> list[str]:
        return [s for s in dict.fromkeys(r.session_id for r in self.rows) if s]

    @cached_property
    def emotions(self) -> list[str]:
        """The class columns' order, then any other emotion seen, in order of appearance."""
        return list(dict.fromkeys([*self.classes, *dict.fromkeys(r.emotion for r in self.rows)]))


def read_session(csv_path: Path) -> Session:
    """Parse a session CSV tolerantly (see the module docstring); raises InputError for a file that is not one."""
    path = Path(csv_path)
    with _open(path) as (lines, truncated, size):
        old_limit = csv.field_size_limit()
        csv.field_size_limit(max(old_limit, size + 1))  # a field can be as long as the file, no longer
        try:
            records = _records(csv.reader(lines))
            header = _header(path, records)
            classes = [h[2:] for h in header if h.startswith("p_") and len(h) > 2]
            parser = _Parser(header, classes)
            rows, notes = parser.read(records, truncated)
            alerts = parser.alerts
            if truncated and not parser.records:
                raise InputError(f"{path} is not a complete session CSV (the header itself is cut off)")
        except UnicodeDecodeError:
            raise InputError(f"{path} is not a session CSV (not UTF-8 text)") from None
        finally:
            csv.field_size_limit(old_limit)
    if any(a.start > b.start or (a.start == b.start and a.end > b.end) for a, b in zip(rows, rows[1:])):
        rows.sort(key=lambda r: (r.start, r.end))
    return Session(path, classes, rows, notes, alerts)


# ---------------------------------------------------------------------------------------------------- the file
class _Checked(io.RawIOBase):
    """The file's bytes up to ``limit`` (a UTF-8 character cut by a killed session is left out), refusing binary
    data (a NUL byte) as it is read."""

    def __init__(self, f, path: Path, limit: int):
        self.f, self.path, self.left = f, path, limit

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = min(len(b), self.left)
        data = self.f.read(n) if n > 0 else b""
        if b"\x00" in data:
            raise InputError(f"{self.path} is not a session CSV (it holds binary data)")
        b[: len(data)] = data
        self.left -= len(data)
        return len(data)


def _utf8_end(tail: bytes, size: int) -> int:
    """Where the file's text ends: before a multi-byte UTF-8 character its last bytes cut short, else at ``size``."""
    for k in range(1, min(4, len(tail)) + 1):
        b = tail[-k]
        if b < 0x80:
            return size
        if b >= 0xC0:  # the first byte of a character of 2, 3 or 4 bytes
            need = 2 if b < 0xE0 else 3 if b < 0xF0 else 4
            return size - k if need > k else size
    return size


@contextmanager
def _open(path: Path) -> Iterator[tuple[io.TextIOWrapper, bool, int]]:
    """``with _open(path) as (lines, truncated, size)``: the file's text lines (``\\n``, ``\\r\\n`` or ``\\r`` ends,
    kept), whether it was cut off (no final line end) and its size; InputError when it is missing, unreadable, not a
    regular file, binary or empty."""
    try:
        if path.exists() and not path.is_dir() and not path.is_file():  # a FIFO would block the open below
            raise InputError(f"{path} is not a regular file (not a session CSV)")
        f = open(path, "rb")
    except FileNotFoundError:
        raise InputError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a directory, not a session CSV") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    with f:
        try:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise InputError(f"{path} is not a regular file (not a session CSV)")
            size = st.st_size
            f.seek(max(0, size - 4))
            end = _utf8_end(f.read(4), size)
            f.seek(max(0, end - 1))
            last = f.read(1) if end else b""
            f.seek(0)
            head = f.read(min(end, _CHUNK))
            f.seek(0)
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
        if b"\x00" in head:
            raise InputError(f"{path} is not a session CSV (it holds binary data)")
        if not head.removeprefix(b"\xef\xbb\xbf").strip() and end <= _CHUNK:
            raise InputError(f"{path} is empty (not a session CSV: no header)")
        lines = io.TextIOWrapper(io.BufferedReader(_Checked(f, path, end), _CHUNK), encoding="utf-8-sig", newline="")
        try:
            yield lines, last not in (b"\n", b"\r"), end
        except OSError as exc:  # a read error part way
            raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None


_ERROR = object()  # a record the csv module could not parse


def _records(reader) -> Iterator[list[str] | object]:
    """The reader's records; one it cannot parse is :data:`_ERROR` (counted as unreadable, and reading goes on)."""
    while True:
        try:
            rec = next(reader)
        except StopIteration:
            return
        except csv.Error:
            yield _ERROR
            continue
        yield rec


def _header(path: Path, records: Iterator) -> list[str]:
    """The header (the first record); InputError when it is not a session CSV's."""
    rec = next(records, None)
    if rec is None or rec is _ERROR:
        raise InputError(f"{path} is not a session CSV (no header)")
    header = [from_spreadsheet_safe(h).strip() for h in rec]  # type: ignore[union-attr]
    if not any(header):  # blank lines first: an empty file, or one that does not start with a header
        for rec in records:
            if rec is _ERROR or any(f.strip() for f in rec):  # type: ignore[union-attr]
                break
        else:
            raise InputError(f"{path} is empty (not a session CSV: no header)")
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise InputError(f"{path} is not an emomon session CSV (its header lacks {', '.join(missing)})")
    return header


# ----------------------------------------------------------------------------------------------------- the rows
def _float(s: str | None) -> float | None:
    try:
        v = float(s)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _time(s: str) -> float | None:
    """Session seconds in [0, MAX_SESSION_S], else None."""
    v = _float(s)
    return v if v is not None and 0.0 <= v <= MAX_SESSION_S else None


class _Parser:
    """Turns records into rows and notes, with the header's column positions (one record at a time: a session of a
    million rows goes through :meth:`one`, a closure over the columns, a million times)."""

    def __init__(self, header: list[str], classes: list[str]):
        first: dict[str, int] = {}
        for i, h in enumerate(header):
            first.setdefault(h, i)
        width = len(header)
        # a column the header lacks reads the always-empty cell just past the header's width
        sid, spk, t0, t1, wall0, wall1, text, emo, conf, note, lang = (first.get(name, width) for name in (
            "session_id", "speaker", "start_s", "end_s", "start_time", "end_time", "transcript", "emotion",
            "confidence", "asr_note", "language"))
        class_names = tuple(classes)
        p_cols = [first[f"p_{c}"] for c in classes]
        labels: dict[str, str] = {}  # raw cell -> one-line label (speakers, emotions ...: few, shared)
        probs: dict[str, float | None] = {}  # raw cell -> probability (few distinct: 4 decimals)
        label_of, prob_of = labels.get, probs.get
        unsafe = from_spreadsheet_safe
        self.records = 0  # records after the header
        self.notes: list[str] = []
        self.alerts: list[Alert] = []

        def label(raw: str) -> str:
            """A short text cell (speaker, emotion, note, language, session id): read back, one line, stripped."""
            v = label_of(raw)
            if v is None:
                v = one_line(unsafe(raw)).strip()
                if len(labels) < 100_000:
                    labels[raw] = v
            return v

        def prob(raw: str) -> float | None:
            """A probability or confidence cell: a finite number in [0, 1], else None."""
            v = prob_of(raw, prob)  # (prob: a marker for "not seen yet")
            if v is not prob:
                return v  # type: ignore[return-value]
            v = _float(raw)
            if v is not None and not 0.0 <= v <= 1.0:
                v = None
            if len(probs) < 100_000:
                probs[raw] = v
            return v

        def one(rec, partial: bool, rows: list[Row]) -> int:
            """Adds record ``rec`` to ``rows`` or the notes; 1 when it is an unreadable row, else 0."""
            if rec is _ERROR:
                return 1
            if not (rec and rec[0].strip()) and not any(f.strip() for f in rec):  # rec[0]: the quick test
                return 0
            if partial:
                rec = rec[:-1]  # the last field may have been cut mid-value
            if len(rec) > width:
                rec = rec[:width]
            rec += [""] * (width + 1 - len(rec))  # missing trailing fields, and the empty cell past the header
            if label(rec[note]) == "event":  # input lost or back, how the session ended: not an utterance
                when = one_line(unsafe(rec[wall0]).strip())
                self.notes.append(f"{when + ': ' if when else ''}{unsafe(rec[text]).strip()}")
                return 0
            if label(rec[note]) == "alert":  # an alert that lasted: its row says it all
                since, until = _time(rec[t0]), _time(rec[t1])
                if since is None:
                    return 1
                kind, _, detail = one_line(unsafe(rec[text])).partition(": ")
                self.alerts.append(Alert(label(rec[spk]) or "?", kind.strip() or "?", since,
                                         since if until is None or until < since else until, detail.strip()))
                return 0
            start, end, emotion = _time(rec[t0]), _time(rec[t1]), label(rec[emo])
            if start is None or end is None or not emotion:
                if partial:
                    self.notes.append("The last row was cut off (the session was probably interrupted) and was "
                                      "skipped.")
                    return 0
                return 1
            rows.append(Row(
                label(rec[sid]), label(rec[spk]) or "?", start, end if end > start else start,
                unsafe(rec[wall0]).strip(), unsafe(rec[wall1]).strip(), unsafe(rec[text]), emotion,
                prob(rec[conf]), class_names, tuple([prob(rec[i]) for i in p_cols]), label(rec[note]),
                label(rec[lang])))
            if partial:
                self.notes.append("The last row was cut off (the session was probably interrupted); what was complete "
                                  "of it is shown.")
            return 0

        self.one = one

    def read(self, records: Iterator, truncated: bool) -> tuple[list[Row], list[str]]:
        """(utterance rows in file order, notes): event rows become notes; unusable rows are counted in one note."""
        rows: list[Row] = []
        one = self.one
        bad = n = 0
        prev = None
        for rec in records:
            n += 1
            if prev is not None:
                bad += one(prev, False, rows)
            prev = rec
        if prev is not None:
            bad += one(prev, truncated, rows)
        self.records = n
        notes = self.notes
        if bad:
            notes.append(f"{bad} unreadable row{'s' if bad != 1 else ''} skipped (a start or end time missing, not "
                         f"a number or outside 0 s to {MAX_SESSION_S / 86400:.0f} days, or no emotion).")
        return rows, notes
