"""Audio sources: a file decoded in chunks (optionally paced like a live stream, optionally one speaker per channel)
and microphones / loopback devices through sounddevice.

A source runs in its own thread and puts :class:`AudioChunk` and finally one :class:`EndOfStream` per stream into
the segmenter's queue. A file source blocks when that queue is full (replay never drops); a microphone's callback
never blocks: it hands blocks to a bounded buffer that drops the oldest audio when the pipeline falls behind, and
counts what it dropped.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from emomon.audio.samples import SampleLevel
from emomon.errors import DeviceError
from emomon.records import SAMPLE_RATE, AudioChunk, EndOfStream

if TYPE_CHECKING:
    from emomon.audio.decode import RecordingStart

logger = logging.getLogger("emomon")

Emit = Callable[[object], None]


@dataclass(frozen=True)
class StreamInfo:
    """One input stream (one speaker channel)."""

    index: int
    speaker: str
    label: str  # what the stream is: file name and channel, or device name


class FileSource:
    """Streams a file through :func:`emomon.audio.decode.stream_audio`; ``split_channels`` makes each channel a stream.

    ``audio_stream`` picks which audio stream of the file is read (default: the decoder's rule, the first one with
    sound); every sample arrives finite and within [-1, 1], mixed to mono from any number of channels unless split.
    """

    def __init__(self, path: str | Path, first_stream: int, *, split_channels: bool = False, realtime: bool = False,
                 chunk_ms: int = 100, speakers: list[str] | None = None, audio_stream: int | None = None):
        from emomon.audio.decode import probe_audio

        self.path = Path(path)
        self.audio_stream = audio_stream
        # A missing or non-audio file, or more channels than can be split, fails here, before any model loads.
        channels = probe_audio(self.path, audio_stream=audio_stream, split=split_channels)
        self.split = split_channels and channels > 1
        n = channels if self.split else 1
        names = speakers or []
        self.streams = [
            StreamInfo(first_stream + i, names[i] if i < len(names) else (f"ch{i + 1}" if self.split else "S1"),
                       f"{self.path.name}" + (f" ch{i + 1}" if self.split else ""))
            for i in range(n)
        ]
        self.realtime = realtime
        self.chunk_ms = chunk_ms
        self.error: str = ""

    def run(self, emit: Emit, stop: threading.Event, t0: float) -> None:
        """Decode and emit until the file ends or ``stop`` is set. Errors end the streams with a message."""
        from emomon.errors import InputError
        from emomon.audio.decode import stream_audio

        position = 0
        try:
            for block in stream_audio(self.path, chunk_seconds=self.chunk_ms / 1000, channels="split" if self.split else "mono",
                                      audio_stream=self.audio_stream):
                if stop.is_set():
                    break
                rows = block if self.split else block[None]
                n = rows.shape[1]
                if self.realtime:  # pace like a live input: a block is "captured" when its last sample would be
                    delay = t0 + (position + n) / SAMPLE_RATE - time.time()
                    if delay > 0 and stop.wait(delay):
                        break
                wall = t0 + position / SAMPLE_RATE
                for info, row in zip(self.streams, rows):
                    emit(AudioChunk(info.index, np.ascontiguousarray(row, dtype=np.float32), position, wall))
                position += n
        except InputError as exc:  # reported by the session (and as the command's error) after what was decoded
            self.error = str(exc)
        finally:
            for info in self.streams:
                emit(EndOfStream(info.index, self.error))


def recorded_start(sources: list) -> tuple[RecordingStart | None, str]:
    """When a replay's recording began, as its files' own metadata state it (:func:`emomon.audio.decode.recording_start`):
    (start, where it was read), or (None, why there is none).

    The files of one replay play side by side from the session's start, so they share one start: the one their
    metadata state (within a second, where several state one); files that state different starts give none."""
    from emomon.audio.decode import recording_start

    files = [src.path for src in sources if isinstance(src, FileSource)]
    stated = [(f, recording_start(f)) for f in files]
    found = [(f, s) for f, s in stated if s is not None]
    if not found:
        names = ", ".join(f.name for f in files[:3]) + (" ..." if len(files) > 3 else "")
        return None, f"{names} state{'s' if len(files) == 1 else ''} no recording time"
    first = found[0][1]
    if any(abs((s.time - first.time).total_seconds()) > 1.0 for _, s in found[1:]):
        shown = "; ".join(f"{f.name}: {s.time.isoformat()}" for f, s in found[:3])
        return None, f"the files state different recording times ({shown})"
    return first, first.source


# ---------------------------------------------------------------------------------------------------- devices
def _sounddevice():
    try:
        import sounddevice
    except OSError as exc:  # PortAudio library missing
        raise DeviceError(f"audio input is unavailable: {exc} (install PortAudio, e.g. apt install libportaudio2)") from None
    return sounddevice


def list_input_devices() -> list[dict]:
    """Input-capable devices: index, name, channels, default sample rate, host API."""
    sd = _sounddevice()
    try:
        devices = sd.query_devices()
        apis = sd.query_hostapis()
    except Exception as exc:  # PortAudio errors
        raise DeviceError(f"cannot list audio devices: {exc}") from None
    default_in = sd.default.device[0] if isinstance(sd.default.device, (list, tuple)) else sd.default.device
    out = []
    for i, d in enumerate(devices):
        if d.get("max_input_channels", 0) > 0:
            out.append({"index": i, "name": d["name"], "channels": d["max_input_channels"],
                        "samplerate": d.get("default_samplerate"), "hostapi": apis[d["hostapi"]]["name"] if apis else "",
                        "default": i == default_in})
    return out


def resolve_device(spec: str | int | None) -> tuple[int | None, str]:
    """A device by index or by (case-insensitive) substring of its name; ``None``/'default' = the system default."""
    devices = list_input_devices()
    if spec in (None, "", "default"):
        if not devices:
            raise DeviceError("no audio input device found (connect a microphone, or see `emomon devices`)")
        default = next((d for d in devices if d["default"]), devices[0])
        return default["index"], default["name"]
    text = str(spec)
    if text.isdigit():
        idx = int(text)
        match = [d for d in devices if d["index"] == idx]
    else:
        match = [d for d in devices if text.lower() in d["name"].lower()]
    if not match:
        names = ", ".join(f"{d['index']}: {d['name']}" for d in devices) or "none"
        raise DeviceError(f"unknown input device {text!r}; input devices: {names} (see `emomon devices`)")
    if len(match) > 1 and not text.isdigit():
        exact = [d for d in match if d["name"].lower() == text.lower()]
        if len(exact) != 1:
            raise DeviceError(f"input device {text!r} is ambiguous: {', '.join(d['name'] for d in match)}; use its index")
        match = exact
    return match[0]["index"], match[0]["name"]


class DropOldestBuffer:
    """A bounded FIFO of audio blocks for a real-time callback: ``put`` never blocks; when full it drops the oldest
    block and counts the dropped samples, which the next ``get`` reports."""

    def __init__(self, max_samples: int):
        self.max_samples = max_samples
        self._blocks: collections.deque = collections.deque()
        self._size = 0
        self._dropped = 0
        self.dropped_total = 0
        self._cond = threading.Condition()

    def put(self, samples: np.ndarray, start: int, wall_time: float) -> None:
        with self._cond:
            self._blocks.append((samples, start, wall_time))
            self._size += len(samples)
            while self._size > self.max_samples and len(self._blocks) > 1:
                old, _, _ = self._blocks.popleft()
                self._size -= len(old)
                self._dropped += len(old)
                self.dropped_total += len(old)
            self._cond.notify()

    def get(self, timeout: float) -> tuple[np.ndarray, int, float, int] | None:
        """(samples, start, wall_time, samples dropped just before) or None on timeout."""
        with self._cond:
            if not self._blocks and not self._cond.wait(timeout):
                return None
            if not self._blocks:
                return None
            samples, start, wall = self._blocks.popleft()
            self._size -= len(samples)
            dropped, self._dropped = self._dropped, 0
            return samples, start, wall, dropped


class MicSource:
    """A sounddevice input stream; its callback only copies and queues (never blocks, never allocates models).

    Sample positions come from the wall clock at (re)open and the stream clock after, so audio dropped by the
    buffer or lost while the device was away shows as a gap. A device that fails to open at the start ends the
    stream with an error; one that disappears later is reported (:class:`StreamNotice`) and reopened every
    ``retry_seconds`` until it returns or the session stops, while the other inputs keep going.
    """

    def __init__(self, device: str | int | None, stream: int, speaker: str, *, chunk_ms: int = 100, queue_seconds: float = 30.0,
                 stream_factory: Callable | None = None, retry_seconds: float = 2.0):
        self.device_spec = device
        self.device_index, self.device_name = (None, str(device)) if stream_factory else resolve_device(device)
        self.streams = [StreamInfo(stream, speaker, self.device_name)]
        self.chunk = max(160, int(SAMPLE_RATE * chunk_ms / 1000))
        self.buffer = DropOldestBuffer(int(queue_seconds * SAMPLE_RATE))
        self.level = SampleLevel()  # a device's samples, too, reach the pipeline finite and within [-1, 1]
        self._factory = stream_factory
        self.retry_seconds = retry_seconds
        self._position = 0
        self._t0 = 0.0
        self.error = ""
        self.status_flags = 0
        self.reopened = 0

    # Called by PortAudio's thread: copy, timestamp, queue. Nothing else.
    def callback(self, indata, frames, time_info, status) -> None:
        if status:
            self.status_flags += 1
        mono = np.asarray(indata, dtype=np.float32)
        mono = mono.mean(axis=1) if mono.ndim == 2 else mono
        start = self._position
        self._position += frames
        self.buffer.put(mono.copy(), start, self._t0 + start / SAMPLE_RATE)

    def _open(self):
        if self._factory is not None:
            return self._factory(self.callback, self.chunk)
        sd = _sounddevice()
        try:
            return sd.InputStream(device=self.device_index, channels=1, samplerate=SAMPLE_RATE, blocksize=self.chunk,
                                  dtype="float32", callback=self.callback)
        except Exception as exc:  # PortAudioError, ValueError for unsupported settings
            raise DeviceError(f"cannot open input device {self.device_name!r}: {exc}") from None

    def _pump(self, stream, emit: Emit, stop: threading.Event) -> None:
        """Move audio from the callback buffer to the pipeline until stop, or until the device stops delivering."""
        info = self.streams[0]
        quiet_since = time.monotonic()
        with stream:
            while not stop.is_set():
                got = self.buffer.get(timeout=0.1)
                if got is None:
                    inactive = not getattr(stream, "active", True)
                    if inactive or time.monotonic() - quiet_since > max(2.0, 20 * self.chunk / SAMPLE_RATE):
                        raise DeviceError(f"input device {self.device_name!r} stopped delivering audio")
                    continue
                quiet_since = time.monotonic()
                samples, start, wall, dropped = got
                emit(AudioChunk(info.index, self.level(samples), start, wall, dropped_before=dropped))

    def run(self, emit: Emit, stop: threading.Event, t0: float) -> None:
        from emomon.records import StreamNotice

        self._t0 = t0
        info = self.streams[0]
        first = True
        try:
            while not stop.is_set():
                try:
                    # Positions follow the wall clock across a reopen, so the time the device was away is a gap.
                    self._position = max(self._position, int((time.time() - t0) * SAMPLE_RATE))
                    stream = self._open()
                    if not first:
                        self.reopened += 1
                        emit(StreamNotice(info.index, f"input {info.speaker} ({self.device_name}) is back"))
                    first = False
                    self._pump(stream, emit, stop)
                except Exception as exc:  # PortAudio errors when a device is pulled out, DeviceError above
                    message = str(exc) if isinstance(exc, DeviceError) else f"input device {self.device_name!r} failed: {exc}"
                    if first:  # never worked: this input is unusable
                        self.error = message
                        return
                    emit(StreamNotice(info.index, f"input {info.speaker} lost: {message}; retrying every {self.retry_seconds:.0f} s"))
                    first = False
                    if stop.wait(self.retry_seconds):
                        return
        finally:
            emit(EndOfStream(info.index, self.error))


def blocking_put(q: "queue.Queue", item, stop: threading.Event) -> bool:
    """Put with back-pressure that still notices a stop request (replay: never drop)."""
    while True:
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            if stop.is_set():
                return False
