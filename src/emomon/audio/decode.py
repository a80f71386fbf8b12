"""Audio files in, 16 kHz float32 out: whole clips for training, chunked streams for long recordings.

Decoding goes through PyAV (FFmpeg), so every format FFmpeg reads works (wav, flac, mp3, m4a, ogg/opus, webm ...).
Streams are decoded and resampled incrementally, so a 3-hour file never sits in memory. Every failure becomes one
:class:`~emomon.errors.InputError` line that names the file and the problem.
"""

from __future__ import annotations

import logging
import os
import struct
from pathlib import Path
from typing import Iterator

import numpy as np

from emomon.errors import InputError

logger = logging.getLogger("emomon")

SAMPLE_RATE = 16_000


def _check_file(path: Path) -> None:
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


def probe_audio(path: str | Path) -> int:
    """Check that ``path`` opens and its first samples decode; returns its channel count.

    A file that is not audio at all fails here, before anything else (models, output files) is set up; damage
    further in is reported by :func:`stream_audio` when decoding reaches it.
    """
    path = Path(path)
    channels = channel_count(path)
    for _ in stream_audio(path, chunk_seconds=0.25, end=5.0):
        return channels
    raise InputError(f"{path} is not a readable audio file: it holds no decodable audio samples")  # pragma: no cover - stream_audio raises first


def channel_count(path: str | Path) -> int:
    """Number of audio channels of the file's first audio stream."""
    path = Path(path)
    _check_file(path)
    container = _open(path)
    try:
        return int(container.streams.audio[0].codec_context.channels or 1)
    finally:
        container.close()


def duration_seconds(path: str | Path) -> float | None:
    """Duration from the container header, if it states one."""
    path = Path(path)
    _check_file(path)
    container = _open(path)
    try:
        stream = container.streams.audio[0]
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
        if container.duration is not None:
            return container.duration / 1_000_000
        return None
    finally:
        container.close()


def stream_audio(path: str | Path, *, chunk_seconds: float = 1.0, channels: str = "mono", start: float | None = None,
                 end: float | None = None) -> Iterator[np.ndarray]:
    """Decode ``path`` incrementally, yielding float32 chunks at 16 kHz.

    ``channels="mono"`` yields 1-D arrays (channels averaged); ``channels="split"`` yields (channels, samples)
    arrays, one row per original channel (up to 8). Non-finite samples (NaN/inf in float files) become 0.
    ``start``/``end`` (seconds) select a span. A file that cannot be decoded part-way (truncated, corrupt) raises
    :class:`InputError` after the chunks decoded before the damage have been yielded.
    """
    import av  # deferred: PyAV (FFmpeg) is slow to load; only decoding a file needs it

    path = Path(path)
    _check_file(path)
    container = _open(path)
    try:
        stream = container.streams.audio[0]
        n_in = int(stream.codec_context.channels or 1)
        if channels == "split" and n_in > 8:
            raise InputError(f"{path} has {n_in} channels; at most 8 can be split into speakers")
        n_out = 1 if channels == "mono" else n_in
        resampler = av.AudioResampler(format="fltp" if n_out > 1 else "flt", layout=_layout_for(n_out), rate=SAMPLE_RATE)
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
        position = None  # absolute sample index of the next decoded sample
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
            yield None  # flush the resampler

        for frame in frames():
            if frame is not None and position is None:
                position = int(round(float(frame.pts * frame.time_base) * SAMPLE_RATE)) if frame.pts is not None and start else 0
            for out in resampler.resample(frame):
                data = out.to_ndarray().astype(np.float32, copy=False)
                data = data.reshape(n_out, -1)
                if not np.isfinite(data).all():
                    data = np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0)
                n = data.shape[1]
                lo = max(0, first - position)
                hi = n if last is None else min(n, last - position)
                position += n
                if hi <= lo:
                    if last is not None and position >= last:
                        break
                    continue
                decoded_any = True
                pending.append(data[:, lo:hi])
                pending_n += hi - lo
                while pending_n >= chunk:
                    block = np.concatenate(pending, axis=1)
                    yield _shape(block[:, :chunk], channels)
                    rest = block[:, chunk:]
                    pending, pending_n = ([rest], rest.shape[1]) if rest.shape[1] else ([], 0)
            if last is not None and position is not None and position >= last:
                break
        if pending_n:
            yield _shape(np.concatenate(pending, axis=1), channels)
        if not decoded_any:
            raise InputError(f"{path} is not a readable audio file: it holds no decodable audio samples")
        if start is None and end is None and position is not None:
            declared = declared_seconds(path, container, stream)
            got = position / SAMPLE_RATE
            if declared and got < 0.98 * declared - 0.2:
                raise InputError(f"{path} is truncated: it holds {got:.1f} s of the {declared:.1f} s its header announces")
    finally:
        container.close()


def _layout_for(n: int) -> str:
    return {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}[n]


def _shape(block: np.ndarray, channels: str) -> np.ndarray:
    return np.ascontiguousarray(block[0] if channels == "mono" else block)


def load_audio(path: str | Path, *, start: float | None = None, end: float | None = None, max_seconds: float | None = None) -> np.ndarray:
    """The whole file (or the ``start``..``end`` span) as mono float32 at 16 kHz."""
    if max_seconds is not None and end is None:
        end = (start or 0.0) + max_seconds
    chunks = list(stream_audio(path, chunk_seconds=30.0, start=start, end=end))
    return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
