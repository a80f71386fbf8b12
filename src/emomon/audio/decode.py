"""Audio files in, 16 kHz float32 out: whole clips for training, chunked streams for long recordings.

Decoding goes through PyAV (FFmpeg), so every format FFmpeg reads works (wav, flac, mp3, m4a, ogg/opus, webm ...).
Streams are decoded and resampled incrementally, so a 3-hour file never sits in memory. Every failure becomes one
:class:`~emomon.errors.InputError` line that names the file and the problem.

Samples are taken in the decoder's own format and layout and made safe by :mod:`emomon.audio.samples` (finite,
within [-1, 1]) before anything else; channels are mixed here, in numpy (any count), and only mono rows are handed
to FFmpeg's resampler. Which audio stream of a file is read, and at which level, is :func:`choose_stream`'s rule.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from emomon.audio.samples import CLIP_LIMIT, SampleLevel, as_float, downmix, finite_peak
from emomon.errors import ConfigError, InputError

logger = logging.getLogger("emomon")

SAMPLE_RATE = 16_000
#: ``--split-channels`` makes one speaker of each channel, up to this many.
MAX_SPLIT_CHANNELS = 8
#: A stream whose peak never rises above -60 dBFS carries no sound (for choosing among a file's audio streams).
SILENCE_PEAK = 10 ** (-60 / 20)
#: Decoded samples are levelled, mixed and resampled in blocks of about this many input samples (fewer Python steps).
BATCH_SAMPLES = 1 << 15


def check_audio_file(path: Path) -> None:
    """A one-line :class:`InputError` for a path that cannot be an audio file (missing, a folder, unreadable,
    empty): cheap, so the command line calls it before anything heavy loads."""
    if not path.exists():
        raise InputError(f"audio file not found: {path}")
    if path.is_dir():
        raise InputError(f"{path} is a directory, not an audio file")
    if not os.access(path, os.R_OK):
        raise InputError(f"cannot read {path}: permission denied")
    if path.stat().st_size == 0:
        raise InputError(f"{path} is empty (0 bytes)")


def _open(path: Path):
    import av  # deferred: PyAV (FFmpeg) is slow to load; only decoding a file needs it

    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{path} is not a readable audio file ({_reason(exc)})") from None
    if not container.streams.audio:
        container.close()
        raise InputError(f"{path} has no audio stream")
    return container


def _reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text.split("; last error log")[0].strip()


def _riff_declared_seconds(path: Path) -> float | None:
    """Duration a WAV (RIFF) header announces, from its fmt and data chunks; None for other files.

    FFmpeg sizes a WAV by the file, so a cut-off WAV decodes silently; comparing with the header catches it.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError:
        return None
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos, byte_rate = 12, None
    while pos + 8 <= len(head):
        cid, size = head[pos : pos + 4], struct.unpack("<I", head[pos + 4 : pos + 8])[0]
        if cid == b"fmt " and pos + 16 <= len(head):
            byte_rate = struct.unpack("<I", head[pos + 16 : pos + 20])[0]
        if cid == b"data":
            if not byte_rate or size in (0, 0xFFFFFFFF):  # streaming writers leave the size open
                return None
            return size / byte_rate
        pos += 8 + size + (size & 1)
    return None


def declared_seconds(path: Path, container, stream) -> float | None:
    """What the file's header says its duration is (WAV header, else the container's), if it says."""
    riff = _riff_declared_seconds(path)
    if riff is not None:
        return riff
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return container.duration / 1_000_000 if container.duration else None


def probe_audio(path: str | Path, *, audio_stream: int | None = None, split: bool = False) -> int:
    """Check that ``path`` opens and its first samples decode; returns its channel count.

    A file that is not audio at all fails here, before anything else (models, output files) is set up, and so does
    one with more channels than ``split`` (one speaker per channel) can take; damage further in is reported by
    :func:`stream_audio` when decoding reaches it.
    """
    path = Path(path)
    channels = channel_count(path, audio_stream=audio_stream)
    if split and channels > MAX_SPLIT_CHANNELS:
        raise InputError(_split_limit(path, channels))
    for _ in stream_audio(path, chunk_seconds=0.25, end=5.0, audio_stream=audio_stream):
        return channels
    raise InputError(f"{path} is not a readable audio file: it holds no decodable audio samples")  # pragma: no cover - stream_audio raises first


def _split_limit(path: Path, channels: int) -> str:
    return f"{path} has {channels} channels; at most {MAX_SPLIT_CHANNELS} can be split into speakers (leave out --split-channels to read them mixed)"


def channel_count(path: str | Path, *, audio_stream: int | None = None) -> int:
    """Number of channels of the audio stream that is read (see :func:`choose_stream`)."""
    path = Path(path)
    check_audio_file(path)
    choice = choose_stream(path, audio_stream)
    container = _open(path)
    try:
        return _channels_of(container.streams.audio[choice.index])
    finally:
        container.close()


def _channels_of(stream) -> int:
    return int(stream.codec_context.channels or 1)


def duration_seconds(path: str | Path, *, audio_stream: int | None = None) -> float | None:
    """Duration from the container header, if it states one: of ``audio_stream``, else of the longest audio stream
    (headers only: no stream is surveyed or decoded for this)."""
    path = Path(path)
    check_audio_file(path)
    container = _open(path)
    try:
        streams = list(container.streams.audio)
        if audio_stream is not None and 0 <= audio_stream < len(streams):
            streams = [streams[audio_stream]]
        stated = [float(st.duration * st.time_base) for st in streams if st.duration is not None and st.time_base is not None]
        if stated:
            return max(stated)
        if container.duration is not None:
            return container.duration / 1_000_000
        return None
    finally:
        container.close()


# ---------------------------------------------------------------------------------------------------- when it was recorded
#: Earliest plausible recording time: a device whose clock was never set stamps 1970 or 1904 (MP4's epoch).
_EARLIEST_RECORDING = dt.datetime(1980, 1, 1, tzinfo=dt.timezone.utc)


@dataclass(frozen=True)
class RecordingStart:
    """When a recording began, as its own metadata states it."""

    time: dt.datetime  # aware (a stated time without a zone is read as this machine's local time)
    source: str  # where it was read, e.g. "talk.m4a's creation_time (2026-03-02T08:00:00.000000Z)"


def recording_start(path: str | Path) -> RecordingStart | None:
    """The start time a file's container metadata states (FFmpeg's names, read through PyAV), or None.

    Read, first found wins, from the container's tags and then each audio stream's: ``creation_time`` as a full date
    and time (MP4/MOV/M4A, what phones and cameras write); a BWF ``bext`` origination date and time (FFmpeg shows them
    as ``date`` ``YYYY-MM-DD`` and ``creation_time`` ``HH:MM:SS``, or under their own names); a ``date`` tag that
    holds a time of day as well (ID3, Vorbis comments, RIFF INFO). A date alone (``2019``, ``2026-03-02``) is not a
    start time and is ignored, and so is a time before 1980 or more than a day ahead (a device clock never set). A
    time without a zone is this machine's local time. Cheap: tags only, nothing is decoded."""
    path = Path(path)
    check_audio_file(path)
    container = _open(path)
    try:
        tag_sets = [dict(container.metadata)] + [dict(st.metadata) for st in container.streams.audio]
    finally:
        container.close()
    for tags in tag_sets:
        found = _start_in_tags({k.lower(): str(v).strip() for k, v in tags.items()})
        if found is not None:
            when, key, value = found
            return RecordingStart(when, f"{path.name}'s {key} ({value})")
    return None


def _start_in_tags(tags: dict[str, str]) -> tuple[dt.datetime, str, str] | None:
    """(time, tag name, tag value) of the first tag below that holds a full, plausible date and time."""
    candidates = [("creation_time", tags.get("creation_time", ""))]
    day = tags.get("origination_date") or tags.get("date", "")
    clock = tags.get("origination_time") or tags.get("creation_time", "")
    if _is_day(day) and _is_clock(clock):  # BWF bext: the day and the time of day apart
        key = "origination date and time" if "origination_date" in tags else "date and creation_time"
        candidates.append((key, f"{day} {clock}"))
    candidates += [(k, tags.get(k, "")) for k in ("date", "creation_date", "date_recorded", "recording_time", "icrd")]
    for key, value in candidates:
        when = _full_time(value)
        if when is not None:
            return when, key, value
    return None


#: A day and a time of day as BWF writes them: any separator (2026:03:02, 2026-03-02; 09:15:30, 09-15-30).
_DAY = re.compile(r"(\d{4})\D(\d{2})\D(\d{2})")
_CLOCK = re.compile(r"(\d{2})\D(\d{2})\D(\d{2})")


def _is_day(text: str) -> bool:
    return _DAY.fullmatch(text) is not None


def _is_clock(text: str) -> bool:
    return _CLOCK.fullmatch(text) is not None


def _full_time(text: str) -> dt.datetime | None:
    """An ISO 8601 date and time of day (a date alone is not one), made aware; None when implausible or unreadable."""
    day, clock = _DAY.match(text), _CLOCK.match(text, 11)
    if day is None or len(text) < 16 or text[10] not in "T ":
        return None
    rest = (":".join(clock.groups()) + text[19:]) if clock is not None else text[11:]
    try:
        when = dt.datetime.fromisoformat("-".join(day.groups()) + "T" + rest)
        when = when if when.tzinfo is not None and when.utcoffset() is not None else when.astimezone()
        if not _EARLIEST_RECORDING <= when <= dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1):
            return None
    except (ValueError, OverflowError, OSError):
        return None
    return when


# ---------------------------------------------------------------------------------------------------- which stream, at which level
@dataclass(frozen=True)
class StreamChoice:
    """Which audio stream of a file is read, and the level it is read at."""

    index: int  # among the file's audio streams, from 0
    count: int  # audio streams in the file
    peak: float | None  # the stream's finite peak when it was surveyed in full (float PCM), else None (sticky level)


_choices: dict[tuple, StreamChoice] = {}
_choices_lock = threading.Lock()


def choose_stream(path: str | Path, audio_stream: int | None = None) -> StreamChoice:
    """The audio stream of ``path`` to read, and its peak when that must be known before decoding.

    The rule: ``audio_stream`` when given (``--audio-stream N``: the N-th audio stream, from 0); else the only audio
    stream; else the first audio stream, in file order, that carries sound (a peak above -60 dBFS anywhere in it),
    or the first one when none does. A file with several audio streams is scanned for this (until its first stream
    shows sound, which is at once for most files) and one line on stderr names the stream read and those ignored.

    A float PCM stream (float WAV/AIFF/CAF ...) can hold any value, so it is surveyed in full once: its peak sets
    the level of the whole file (:class:`~emomon.audio.samples.SampleLevel`), and one in which no sample is finite
    is refused here, before any model loads. Choices are kept per file (path, size, modification time), so the
    several readings of one replay survey a file once and say so once.
    """
    path = Path(path)
    st = path.stat()
    key = (os.path.realpath(path), st.st_size, st.st_mtime_ns, audio_stream)
    with _choices_lock:
        if key in _choices:
            return _choices[key]
        choice = _choose(path, audio_stream)
        _choices[key] = choice
        if len(_choices) > 256:
            _choices.pop(next(iter(_choices)))
        return choice


def _choose(path: Path, audio_stream: int | None) -> StreamChoice:
    container = _open(path)
    try:
        codecs = [st.codec_context.name or "" for st in container.streams.audio]
    finally:
        container.close()
    count = len(codecs)
    if audio_stream is not None:
        if not 0 <= audio_stream < count:
            have = "only audio stream 0" if count == 1 else f"audio streams 0-{count - 1}"
            raise ConfigError(f"--audio-stream {audio_stream}: {path} has {have}")
        index = audio_stream
    elif count > 1:
        peaks, complete = _stream_peaks(path, range(count), stop=lambda found: found.get(0, (0.0,))[0] > SILENCE_PEAK)
        sound = [i for i in range(count) if peaks.get(i, (0.0,))[0] > SILENCE_PEAK]
        index = sound[0] if sound else 0
        others = [f"{i}" + (" (silent)" if complete and i not in sound else "") for i in range(count) if i != index]
        why = "the first with sound" if sound else "none has sound"
        logger.warning("%s has %d audio streams: reading stream %d (%s), ignoring stream%s %s (--audio-stream N reads another)",
                       path.name, count, index, why, "s" if len(others) > 1 else "", ", ".join(others))
    else:
        index = 0
    peak = None
    if codecs[index].startswith("pcm_f"):  # float PCM can hold any value: survey it (integer PCM is in range by construction)
        found, complete = _stream_peaks(path, [index])
        if complete and index in found:
            peak, finite, bad = found[index]
            if not finite:
                raise InputError(f"{path} holds no audio: every sample is NaN or infinite")
            if bad:
                logger.warning("%s: %d NaN or infinite sample(s) read as silence", path.name, bad)
            if peak > CLIP_LIMIT:
                logger.warning("%s: samples reach %.3g, far beyond full scale (1.0): the recording is read divided by that peak",
                               path.name, peak)
    return StreamChoice(index, count, peak)


def _stream_peaks(path: Path, indices, stop=None) -> tuple[dict[int, tuple[float, int, int]], bool]:
    """Scan the audio streams ``indices`` (among the file's audio streams): ({index: (finite peak, finite samples,
    non-finite samples)} for those that decoded, whether the scan reached the end). ``stop(found)`` ends it early;
    so does damage, quietly (:func:`stream_audio` reports it when decoding reaches it)."""
    import av  # deferred: PyAV (FFmpeg) is slow to load; only decoding a file needs it

    container = _open(path)
    try:
        audio = list(container.streams.audio)
        wanted = {audio[i].index: i for i in indices}
        found: dict[int, tuple[float, int, int]] = {}
        try:
            for packet in container.demux(*(audio[i] for i in indices)):
                i = wanted.get(packet.stream.index)
                if i is None:
                    continue
                for frame in packet.decode():
                    x = _frame_array(frame)
                    if not x.size:
                        continue
                    peak, finite, bad = found.get(i, (0.0, 0, 0))
                    n_ok = int(np.isfinite(x).sum()) if x.dtype.kind == "f" else x.size
                    found[i] = (max(peak, finite_peak(as_float(x))), finite + n_ok, bad + x.size - n_ok)
                if stop is not None and stop(found):
                    return found, False
        except av.error.EOFError:
            pass
        except (av.error.FFmpegError, ValueError):
            return found, False
        return found, True
    finally:
        container.close()


def _frame_array(frame) -> np.ndarray:
    """A decoded frame's samples as (channels, samples), in the decoder's own sample type (int or float)."""
    a = frame.to_ndarray()
    if frame.format.is_planar:
        return a
    n = max(1, frame.layout.nb_channels)
    return a.reshape(-1, n).T


# ---------------------------------------------------------------------------------------------------- decoding
class _RowResampler:
    """Resamples rows of float32 audio to 16 kHz with one mono PyAV resampler per row, so no channel layout is ever
    asked of FFmpeg (its resampler refuses layouts beyond 8 unnamed channels); a new input rate starts new ones."""

    def __init__(self):
        self.rate: int | None = None
        self.resamplers: list = []

    def push(self, x: np.ndarray, rate: int) -> np.ndarray:
        parts = []
        if rate != self.rate or len(self.resamplers) != x.shape[0]:
            parts.append(self.flush())
            self.rate = rate
            self.resamplers = [] if rate == SAMPLE_RATE else [self._new() for _ in range(x.shape[0])]
        if rate == SAMPLE_RATE:
            parts.append(x)
        else:
            parts.append(self._run([self._frame(row, rate) for row in x]))
        return np.concatenate([p for p in parts if p.shape[0] == x.shape[0]] or [np.zeros((x.shape[0], 0), np.float32)], axis=1)

    def flush(self) -> np.ndarray:
        if not self.resamplers:
            return np.zeros((0, 0), np.float32)
        out = self._run([None] * len(self.resamplers))
        self.resamplers = []
        return out

    @staticmethod
    def _new():
        import av  # deferred: PyAV (FFmpeg) is slow to load; only decoding a file needs it

        return av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)

    @staticmethod
    def _frame(row: np.ndarray, rate: int):
        import av  # deferred: PyAV (FFmpeg) is slow to load; only decoding a file needs it

        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(row[None], dtype=np.float32), format="flt", layout="mono")
        frame.sample_rate = rate
        return frame

    def _run(self, frames: list) -> np.ndarray:
        rows = []
        for resampler, frame in zip(self.resamplers, frames):
            out = resampler.resample(frame)
            rows.append(np.concatenate([o.to_ndarray().reshape(-1) for o in out]) if out else np.zeros(0, np.float32))
        n = min(len(r) for r in rows)
        return np.stack([r[:n] for r in rows]).astype(np.float32, copy=False)


def stream_audio(path: str | Path, *, chunk_seconds: float = 1.0, channels: str = "mono", start: float | None = None,
                 end: float | None = None, audio_stream: int | None = None) -> Iterator[np.ndarray]:
    """Decode ``path`` incrementally, yielding float32 chunks at 16 kHz, every sample finite and within [-1, 1].

    ``channels="mono"`` yields 1-D arrays (the mean of all channels, however many); ``channels="split"`` yields
    (channels, samples) arrays, one row per original channel (up to 8). The samples pass through
    :class:`~emomon.audio.samples.SampleLevel` as decoded (non-finite samples become 0, a peak up to 2x full scale is
    clipped, a file at a wildly wrong scale is divided by its peak), before any downmix or resampling, and once more
    after resampling (whose ringing can overshoot +-1 a little). ``audio_stream`` picks the audio stream (default:
    :func:`choose_stream`'s rule). ``start``/``end`` (seconds) select a span. A file that cannot be decoded part-way
    (truncated, corrupt) raises :class:`InputError` after the chunks decoded before the damage have been yielded.
    """
    import av  # deferred: PyAV (FFmpeg) is slow to load; only decoding a file needs it

    if channels not in ("mono", "split"):
        raise ValueError(f"channels must be 'mono' or 'split', not {channels!r}")
    path = Path(path)
    check_audio_file(path)
    choice = choose_stream(path, audio_stream)
    container = _open(path)
    try:
        stream = container.streams.audio[choice.index]
        n_in = _channels_of(stream)
        split = channels == "split"
        if split and n_in > MAX_SPLIT_CHANNELS:
            raise InputError(_split_limit(path, n_in))
        level = SampleLevel(choice.peak)
        settle = SampleLevel(1.0)  # after resampling: the level is set, only clip
        resampler = _RowResampler()
        chunk = max(1, int(chunk_seconds * SAMPLE_RATE))
        first = int((start or 0.0) * SAMPLE_RATE)
        last = int(end * SAMPLE_RATE) if end is not None else None
        if start:
            try:
                container.seek(int(max(start - 0.5, 0) / stream.time_base), stream=stream)
            except av.error.FFmpegError:
                pass
        pending: list[np.ndarray] = []
        pending_n = 0
        position = None  # absolute sample index of the next output sample
        decoded_any = False

        def frames():
            try:
                for packet in container.demux(stream):
                    for frame in packet.decode():
                        yield frame
            except av.error.EOFError:
                return
            except (av.error.FFmpegError, ValueError) as exc:
                raise InputError(f"{path} is corrupt or truncated ({_reason(exc)})") from None

        def batches():
            """Decoded samples in blocks of about BATCH_SAMPLES that share rate, sample type and channel count."""
            nonlocal position
            batch: list[np.ndarray] = []
            size, key = 0, None
            for frame in frames():
                if position is None:
                    position = int(round(float(frame.pts * frame.time_base) * SAMPLE_RATE)) if frame.pts is not None and start else 0
                x = _frame_array(frame)
                if split and x.shape[0] != n_in:
                    raise InputError(f"{path} changes from {n_in} to {x.shape[0]} channels part-way; leave out --split-channels to read it mixed")
                k = (frame.sample_rate, x.dtype, x.shape[0])
                if batch and (k != key or size >= BATCH_SAMPLES):
                    yield np.concatenate(batch, axis=1), key[0]
                    batch, size = [], 0
                batch.append(x)
                size += x.shape[1]
                key = k
            if batch:
                yield np.concatenate(batch, axis=1), key[0]

        def resampled():
            try:
                for x, rate in batches():
                    x = level(x)
                    yield resampler.push(x if split else downmix(x)[None], rate)
                yield resampler.flush()
            except (av.error.FFmpegError, ValueError) as exc:
                raise InputError(f"{path}: its audio cannot be resampled ({_reason(exc)})") from None

        for out in resampled():
            if position is None or not out.size:
                continue
            data = settle(out)
            n = data.shape[1]
            lo = max(0, first - position)
            hi = n if last is None else min(n, last - position)
            position += n
            if hi > lo:
                decoded_any = True
                pending.append(data[:, lo:hi])
                pending_n += hi - lo
                while pending_n >= chunk:
                    block = np.concatenate(pending, axis=1)
                    yield _shape(block[:, :chunk], channels)
                    rest = block[:, chunk:]
                    pending, pending_n = ([rest], rest.shape[1]) if rest.shape[1] else ([], 0)
            if last is not None and position >= last:
                break
        if pending_n:
            yield _shape(np.concatenate(pending, axis=1), channels)
        if not decoded_any:
            raise InputError(f"{path} is not a readable audio file: it holds no decodable audio samples")
        if start is None and end is None and position is not None:
            if not level.finite:
                raise InputError(f"{path} holds no audio: every sample is NaN or infinite")
            declared = declared_seconds(path, container, stream)
            got = position / SAMPLE_RATE
            if declared and got < 0.98 * declared - 0.2:
                raise InputError(f"{path} is truncated: it holds {got:.1f} s of the {declared:.1f} s its header announces")
    finally:
        container.close()


def _shape(block: np.ndarray, channels: str) -> np.ndarray:
    return np.ascontiguousarray(block[0] if channels == "mono" else block)


def load_audio(path: str | Path, *, start: float | None = None, end: float | None = None, max_seconds: float | None = None) -> np.ndarray:
    """The whole file (or the ``start``..``end`` span) as mono float32 at 16 kHz."""
    if max_seconds is not None and end is None:
        end = (start or 0.0) + max_seconds
    chunks = list(stream_audio(path, chunk_seconds=30.0, start=start, end=end))
    return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
