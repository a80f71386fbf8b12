"""Reading a session CSV into a :class:`Session`: its utterance rows, its event notes and what a cut-off file lost.

Robustness: the CSV may come from a killed session. A last row cut short (no final newline) has its last, possibly
cut, field dropped and is kept only when what remains is a usable row; rows with missing trailing fields are kept;
unknown extra columns are ignored; the class set is read from the ``p_*`` columns; a header-only file gives a session
without rows (the report says there were no utterances). Event rows (``asr_note`` = ``event``: input lost or back,
how the session ended) become notes, not utterances. A file that is not a session CSV (binary, wrong header, empty)
raises :class:`~emomon.errors.InputError`.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

from emomon.errors import InputError

#: Columns every session CSV has; a file without them is not one.
REQUIRED = ("session_id", "speaker", "start_s", "end_s", "emotion")


@dataclass
class Row:
    session_id: str
    speaker: str
    start: float
    end: float
    start_time: str
    end_time: str
    transcript: str
    emotion: str
    confidence: float | None
    probs: dict[str, float]
    asr_note: str = ""
    language: str = ""

    @property
    def duration(self) -> float:
        return max(0.0, self.end - self.start)


@dataclass
class Session:
    path: Path
    classes: list[str]
    rows: list[Row]
    notes: list[str] = field(default_factory=list)

    @property
    def speakers(self) -> list[str]:
        return list(dict.fromkeys(r.speaker for r in self.rows))

    @property
    def session_ids(self) -> list[str]:
        return [s for s in dict.fromkeys(r.session_id for r in self.rows) if s]

    @property
    def emotions(self) -> list[str]:
        """The class columns' order, then any other emotion seen, in order of appearance."""
        return list(dict.fromkeys([*self.classes, *(r.emotion for r in self.rows)]))


def read_session(csv_path: Path) -> Session:
    """Parse a session CSV tolerantly (see the module docstring); raises InputError for a file that is not one."""
    path = Path(csv_path)
    header, body, truncated = _records(path, _read_text(path))
    classes = [h[2:] for h in header if h.startswith("p_") and len(h) > 2]
    rows, notes = _rows(header, body, truncated, classes)
    rows.sort(key=lambda r: (r.start, r.end))
    return Session(path, classes, rows, notes)


def _float(s: str | None) -> float | None:
    try:
        v = float(s)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _decode(path: Path, data: bytes) -> str:
    if b"\x00" in data:
        raise InputError(f"{path} is not a session CSV (it holds binary data)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if exc.start >= len(data) - 3:  # a multi-byte character cut by a killed session
            return data[: exc.start].decode("utf-8-sig")
        raise InputError(f"{path} is not a session CSV (not UTF-8 text)") from None


def _read_text(path: Path) -> str:
    """The file's text; InputError when it is missing, unreadable, binary, not UTF-8 or empty."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a directory, not a session CSV") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    text = _decode(path, data)
    if not text.strip():
        raise InputError(f"{path} is empty (not a session CSV: no header)")
    return text


def _records(path: Path, text: str) -> tuple[list[str], list[list[str]], bool]:
    """(header, body records, whether the file was cut off); InputError when the header is not a session CSV's."""
    records: list[list[str]] = []
    truncated = not text.endswith(("\n", "\r"))
    try:
        for rec in csv.reader(io.StringIO(text, newline="")):
            records.append(rec)
    except csv.Error:  # e.g. a NUL or a broken quote: keep what parsed, treat the rest as cut off
        truncated = True
    if not records:
        raise InputError(f"{path} is not a session CSV (no header)")
    header = [h.strip() for h in records[0]]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise InputError(f"{path} is not an emomon session CSV (its header lacks {', '.join(missing)})")
    if truncated and len(records) == 1:
        raise InputError(f"{path} is not a complete session CSV (the header itself is cut off)")
    return header, records[1:], truncated


def _rows(header: list[str], body: list[list[str]], truncated: bool,
          classes: list[str]) -> tuple[list[Row], list[str]]:
    """(utterance rows in file order, notes): event rows and unreadable or cut-off rows become notes."""
    rows: list[Row] = []
    notes: list[str] = []
    bad = 0
    for i, rec in enumerate(body):
        if not any(f.strip() for f in rec):
            continue
        partial = truncated and i == len(body) - 1
        if partial:
            rec = rec[:-1]  # the last field may have been cut mid-value
        rec = rec[: len(header)]
        d = dict(zip(header, rec))
        if (d.get("asr_note") or "").strip() == "event":  # input lost or back, how the session ended: not an utterance
            when = (d.get("start_time") or "").strip()
            notes.append(f"{when + ': ' if when else ''}{(d.get('transcript') or '').strip()}")
            continue
        row = _row(d, classes)
        if row is None:
            if partial:
                notes.append("The last row was cut off (the session was probably interrupted) and was skipped.")
            else:
                bad += 1
            continue
        if partial:
            notes.append("The last row was cut off (the session was probably interrupted); what was complete of it "
                         "is shown.")
        rows.append(row)
    if bad:
        notes.append(f"{bad} unreadable row{'s' if bad != 1 else ''} skipped.")
    return rows, notes


def _row(d: dict[str, str], classes: list[str]) -> Row | None:
    start, end, emotion = _float(d.get("start_s")), _float(d.get("end_s")), (d.get("emotion") or "").strip()
    if start is None or end is None or not emotion:
        return None
    probs = {}
    for c in classes:
        p = _float(d.get(f"p_{c}"))
        if p is not None:
            probs[c] = p
    conf = _float(d.get("confidence"))
    return Row(
        session_id=(d.get("session_id") or "").strip(),
        speaker=(d.get("speaker") or "").strip() or "?",
        start=start, end=max(end, start),
        start_time=(d.get("start_time") or "").strip(), end_time=(d.get("end_time") or "").strip(),
        transcript=d.get("transcript") or "", emotion=emotion, confidence=conf, probs=probs,
        asr_note=(d.get("asr_note") or "").strip(), language=(d.get("language") or "").strip(),
    )
