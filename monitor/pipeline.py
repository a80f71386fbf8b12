"""The session: sources -> segmenter -> ASR -> inference worker -> sinks, one thread per stage, one-way queues.

Shutdown is a cascade: a stop request (Ctrl-C, SIGTERM, end of files) ends the sources, which end their streams;
the segmenter closes what it holds and passes an end marker down, and each stage finishes its queue and passes the
marker on. If that takes longer than ``drain_seconds``, the remaining queued utterances are skipped (and counted)
so the process still ends promptly; everything already written stays in the CSV.

Replay never drops: every queue applies back-pressure up to the file source. Live input never blocks the audio
callback: the microphone buffer and the utterance queue drop their oldest entries when the stages fall behind,
and every drop is counted and reported.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import queue
import threading
import time
import uuid
from concurrent.futures import CancelledError
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from emomon.audio.segmenter import Segmenter
from emomon.config import EmomonConfig, ModelConfig
from emomon.errors import as_resource_error
from emomon.models.inference import EmotionRecognizer
from emomon.models.registry import model_class
from emomon.models.speaker_embedding import default_embedder
from emomon.monitor.asr import AsrStage
from emomon.monitor.diarize import OnlineDiarizer, speaker_name
from emomon.monitor.first_pass import AS_LIVE, prepare_replay_reading
from emomon.monitor.sinks import Sink
from emomon.monitor.threads import thread_plan
from emomon.monitor.worker import InferenceWorker, LoadedModels
from emomon.progress import Activity
from emomon.records import SAMPLE_RATE, AudioChunk, EndOfStream, Result, StreamNotice

logger = logging.getLogger("emomon")

_END = object()


@dataclass
class SessionStats:
    """Counters shown in the summary and the dashboard header."""

    started: float = field(default_factory=time.time)
    audio_seconds: float = 0.0
    utterances: int = 0
    by_speaker: dict[str, collections.Counter] = field(default_factory=dict)
    dropped_audio_seconds: float = 0.0
    dropped_utterances: int = 0
    unprocessed: int = 0
    asr_seconds: float = 0.0
    emotion_seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    finished_wall: float | None = None
    first_pass_seconds: float = 0.0  # a replay's first pass (whole-recording baselines), done before ``started``

    @property
    def wall_seconds(self) -> float:
        return (self.finished_wall or time.time()) - self.started + self.first_pass_seconds

    @property
    def speed(self) -> float:
        """Audio seconds processed per wall-clock second (the inverse of the real-time factor)."""
        return self.audio_seconds / max(self.wall_seconds, 1e-9)


def build_worker(cfg: EmomonConfig, *, timed: bool, on_result: Callable | None = None,
                 abort: threading.Event | None = None, recognizer_factory: Callable | None = None,
                 first_row_at_once: bool = True) -> InferenceWorker:
    """The inference worker a session (or a batch reader, for all its sessions) runs its models on: the emotion
    recognizer of ``runtime.model`` and the ASR's encoder pass, with the PyTorch share of ``runtime.threads``."""
    rt = cfg.runtime
    # a listener waits for each row only when the audio is timed; a full-speed replay gathers fuller batches
    batch_wait = rt.batch_wait_ms if timed else cfg.replay.batch_wait_ms
    return InferenceWorker(recognizer_factory or (lambda: EmotionRecognizer(rt.model, device=rt.device)), rt.batch_size,
                           batch_wait, on_result=on_result, abort=abort, asr_model=cfg.asr.model,
                           threads=thread_plan(rt.threads), first_row_at_once=first_row_at_once)


class Session:
    """A running monitor. ``sources`` are FileSource/MicSource objects; ``sinks`` receive results in order."""

    def __init__(self, cfg: EmomonConfig, sources: list, *, live: bool, recognizer_factory: Callable | None = None,
                 drain_seconds: float = 1.5, models: LoadedModels | None = None):
        self.cfg = cfg
        self.sources = sources
        self.sinks: list[Sink] = []
        self.live = live
        self.session_id = uuid.uuid4().hex[:12]
        self.stats = SessionStats()
        self.drain_seconds = drain_seconds
        self.stop_event = threading.Event()  # stop reading input
        self.abort = threading.Event()  # skip what is still queued
        self.done = threading.Event()
        self.streams = {info.index: info for src in sources for info in src.streams}
        rt = cfg.runtime
        self.chunks: queue.Queue = queue.Queue(maxsize=64)
        self.utterances: queue.Queue = queue.Queue(maxsize=0 if live else 8)
        self._pending: collections.deque = collections.deque()  # live: bounded, drop-oldest utterance buffer
        self._pending_cv = threading.Condition()
        self.results: queue.Queue = queue.Queue()
        self.asr: AsrStage | None = None
        self.threads = thread_plan(rt.threads)
        #: models kept across the sessions of one process (a batch's reader); None: this session loads its own
        self.models = models
        #: latency (end of speech -> CSV row) means something only when the audio arrives in real time
        self.timed = live or any(getattr(s, "realtime", False) for s in sources)
        if models is not None:  # a batch reader's worker, loaded once for many sessions: this session's lane of it
            self.worker = models.lane(on_result=self.results.put, abort=self.abort)
        else:
            self.worker = build_worker(cfg, timed=self.timed, on_result=self.results.put, abort=self.abort,
                                       recognizer_factory=recognizer_factory)
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._index = 0
        self.recent: collections.deque = collections.deque(maxlen=200)  # for the dashboard
        #: the session's alert tracker (emomon.monitor.views.alerts.AlertTracker), set by the caller: it is fed every
        #: result in order, and each alert it ends goes to every sink with an ``alert`` method
        self.alerts = None
        self.fatal: BaseException | None = None
        self.stop_reason = ""
        self.reading = AS_LIVE
        # what a status line reads (from its own thread) while the session starts: the models loaded so far, a
        # replay's first pass (seconds of audio done, total), and where the delivered results have got to
        self._loaded: set[str] = set()
        self._first_pass: tuple[float, float] | None = None
        self._delivered_end = 0.0
        self.diarizers = None
        if cfg.diarization.enabled:
            # the voice encoder is a model: it runs on the worker's thread, like every other
            self._embedder = self.worker.on_device(default_embedder())
            self.diarizers = {i: self.new_diarizer(i) for i in self.streams}

    def new_diarizer(self, stream: int) -> OnlineDiarizer:
        """A fresh diarizer for one input, sharing the session's voice encoder (None when not diarizing)."""
        return OnlineDiarizer(self.cfg.diarization, self._embedder)

    @property
    def whole_recording(self) -> bool:
        """A full-speed replay: every utterance is available before any is reported (not live, not paced)."""
        return not self.live and not any(getattr(s, "realtime", False) for s in self.sources)

    def prepare_replay(self, first_pass_sources: list) -> None:
        """A full-speed replay's first phase, after :meth:`load` and before :meth:`start`: the worker's recognizer is
        set to read as ``[replay]`` says, with baselines from a first pass over ``first_pass_sources`` (fresh sources
        of the same files; the session's own are untouched)."""
        def progress(done: float, total: float) -> None:
            self._first_pass = (done, total)

        try:
            reading = prepare_replay_reading(self.worker, first_pass_sources, self.cfg,
                                             self.new_diarizer if self.diarizers is not None else None, self.stop_event,
                                             on_progress=progress)
        finally:
            self._first_pass = None
        self.reading, self.stats.first_pass_seconds = reading.description, reading.first_pass_seconds

    def next_index(self) -> int:
        with self._lock:
            self._index += 1
            return self._index

    # ------------------------------------------------------------------------------------------------ lifecycle
    def load(self) -> None:
        """Load and warm up the models (the text encoder goes on loading on the side: :meth:`wait_loaded`); their
        errors surface here or there, before any output file exists."""
        logger.debug("loading the models")
        self.worker.start()
        self.worker.wait_ready()
        kept = self.models.take_decoder() if self.models is not None else None
        self.asr = AsrStage(self.cfg.asr, self.worker, device=str(self.worker.recognizer.device),
                            cpu_threads=self.threads.decoder, decoder=kept)
        if kept is None:
            self.asr.warm_up()
        self._loaded.add("ASR decoder")
        if self.diarizers:  # load the voice encoder now rather than on the first utterance
            next(iter(self.diarizers.values())).embedder(np.zeros(16000, np.float32))
            self._loaded.add("voice encoder")

    def wait_loaded(self) -> None:
        """Block until every model is loaded (the text encoder loads beside a replay's first pass)."""
        self.worker.wait_text_encoder()
        self._loaded.add("text encoder")

    # ------------------------------------------------------------------------------------------------ progress
    def model_steps(self) -> list[tuple[str, bool]]:
        """The models a session loads, in the order it waits for them, and whether each is ready (read from any
        thread: the worker builds the first two, :meth:`load` the rest; the text encoder loads beside them)."""
        w = self.worker
        steps = [("emotion model", w.recognizer is not None), ("speech encoder", w.ready.is_set() and w.error is None),
                 ("ASR decoder", "ASR decoder" in self._loaded)]
        if self.diarizers is not None:
            steps.append(("voice encoder", "voice encoder" in self._loaded))
        return steps + [("text encoder", "text encoder" in self._loaded)]

    def activity(self) -> Activity:
        """What the session is doing before it starts, for a status line: ``loading models 2/4: speech encoder``,
        or a replay's first pass (seconds of audio done of the total)."""
        first_pass = self._first_pass
        if first_pass is not None:
            return Activity("first pass", *first_pass)
        steps = self.model_steps()
        waiting = [name for name, ready in steps if not ready]
        if not waiting:
            return Activity("starting the session")
        return Activity(f"loading models {len(steps) - len(waiting) + 1}/{len(steps)}: {waiting[0]}")

    def processed_seconds(self) -> float:
        """Session audio time up to which every utterance has reached the sinks (a replay's progress): all the audio
        read so far once every utterance cut from it is delivered, else the end of the latest delivered one."""
        s = self.stats
        with self._lock:
            cut = self._index
        if s.utterances + s.unprocessed + s.dropped_utterances >= cut:
            return s.audio_seconds
        return min(self._delivered_end, s.audio_seconds)

    def start(self) -> None:
        """Load the models if that was not done yet, then start every stage."""
        if not self.worker.ready.is_set():
            self.load()
        self.wait_loaded()
        self.stats.started = time.time()
        t0 = self.stats.started
        spawn = self._spawn
        for src in self.sources:
            spawn(f"emomon-source-{src.streams[0].index}", src.run, self._emit_chunk, self.stop_event, t0)
        spawn("emomon-segmenter", self._segment_loop)
        spawn("emomon-asr", self._asr_loop)
        spawn("emomon-sinks", self._sink_loop)

    def _spawn(self, name: str, target, *args) -> None:
        t = threading.Thread(target=self._guard(target), args=args, name=name, daemon=True)
        try:
            t.start()
        except RuntimeError as exc:  # "can't start new thread": the machine's limit, one line (exit 7)
            self.stop_event.set()
            self.abort.set()
            raise as_resource_error(exc) or exc from None
        self._threads.append(t)

    def _guard(self, target):
        def run(*args):
            try:
                target(*args)
            except BaseException as exc:  # a stage crashed: stop the session and report it, do not hang
                if self.fatal is None:
                    self.fatal = exc
                logger.debug("stage %s failed", threading.current_thread().name, exc_info=True)
                self.stop_event.set()
                self.abort.set()
                self.done.set()

        return run

    def stop(self, reason: str = "") -> None:
        """Stop reading input; what is already queued is still processed (within ``drain_seconds``)."""
        if reason and not self.stop_event.is_set():
            logger.info("stopping: %s", reason)
            self.stop_reason = reason
        self.stop_event.set()

    def wait(self, poll: float = 0.2, on_tick: Callable[[], None] | None = None) -> None:
        """Block until the session ends; after a stop request, give the stages ``drain_seconds`` to finish."""
        stop_seen: float | None = None
        while not self.done.wait(poll):
            if on_tick:
                on_tick()
            if self.stop_event.is_set():
                stop_seen = stop_seen or time.monotonic()
                if time.monotonic() - stop_seen > self.drain_seconds and not self.abort.is_set():
                    logger.warning("shutdown: skipping utterances still queued after %.1f s", self.drain_seconds)
                    self.abort.set()
                    with self._pending_cv:
                        self._pending_cv.notify_all()
                if time.monotonic() - stop_seen > self.drain_seconds + 1.0:
                    break  # a stage is stuck in a long call: leave (threads are daemons)
        self.stats.finished_wall = time.time()
        if self.alerts is not None and self.done.is_set():  # (not while a stuck stage may still deliver)
            self._end_alerts()
        status = self.end_status()
        for sink in self.sinks:
            try:
                sink.close(status)
            except Exception as exc:  # e.g. the disk filled up: the rows already written stay
                logger.debug("closing %s failed: %s", type(sink).__name__, exc)
        if self.fatal is not None:
            raise self.fatal

    def end_status(self) -> str:
        """The last (event) line of the session CSV: tells a complete session from a cut-short one."""
        s = self.stats
        if self.fatal is not None:
            return f"session ended by an error after {s.utterances} utterances: {self.fatal}"
        note = f"; {s.unprocessed} queued utterances not processed" if s.unprocessed else ""
        if s.errors and not self.live:
            return f"session incomplete after {s.utterances} utterances: {s.errors[0]}{note}"
        if self.stop_event.is_set() and self.stop_reason:
            return f"session stopped ({self.stop_reason}) after {s.utterances} utterances{note}"
        return f"session complete: {s.utterances} utterances{note}"

    def queue_depth(self) -> int:
        """Utterances waiting for the ASR or the emotion model."""
        with self._pending_cv:
            pending = sum(1 for x in self._pending if x is not _END)
        return pending + self.utterances.qsize() + self.worker.requests.qsize()

    # ------------------------------------------------------------------------------------------------ stages
    def _emit_chunk(self, item) -> None:
        if self.live:
            try:
                self.chunks.put(item, timeout=1.0)
            except queue.Full:  # the segmenter is stuck: count the loss rather than block the device thread
                if isinstance(item, AudioChunk):
                    self.stats.dropped_audio_seconds += len(item.samples) / SAMPLE_RATE
                else:
                    self.chunks.put(item)
        else:
            while True:
                try:
                    self.chunks.put(item, timeout=0.1)
                    return
                except queue.Full:
                    if self.abort.is_set():
                        return

    def _segment_loop(self) -> None:
        segs = {i: Segmenter(self.cfg.segmenter, i, info.speaker, self.next_index) for i, info in self.streams.items()}
        open_streams = set(segs)
        while open_streams:
            item = self.chunks.get()
            if isinstance(item, StreamNotice):
                logger.warning("%s", item.message)
                self.stats.notices.append(item.message)
                for u in segs[item.stream].flush():  # an utterance cut by the loss ends where the audio stopped
                    self._queue_utterance(u)
                self.results.put(item)  # in order with the results, so the CSV shows it where it happened
                continue
            if isinstance(item, EndOfStream):
                open_streams.discard(item.stream)
                if item.error:
                    self.stats.errors.append(item.error)
                    self.results.put(StreamNotice(item.stream, item.error))
                for u in segs[item.stream].flush():
                    self._queue_utterance(u)
                continue
            if item.dropped_before:
                self.stats.dropped_audio_seconds += item.dropped_before / SAMPLE_RATE
            if item.stream == min(segs):  # session audio time = the first stream's clock
                self.stats.audio_seconds = (item.start + len(item.samples)) / SAMPLE_RATE
            for u in segs[item.stream].push(item):
                self._queue_utterance(u)
        self._queue_utterance(_END)

    def _queue_utterance(self, u) -> None:
        if not self.live:
            while True:
                try:
                    self.utterances.put(u, timeout=0.1)
                    return
                except queue.Full:
                    if self.abort.is_set():
                        self.stats.unprocessed += u is not _END
                        return
        with self._pending_cv:
            self._pending.append(u)
            limit = self.cfg.runtime.max_pending_utterances
            while sum(1 for x in self._pending if x is not _END) > limit:
                old = self._pending.popleft()
                if old is _END:
                    self._pending.append(old)
                    continue
                self.stats.dropped_utterances += 1
                logger.warning("ASR is behind: dropped utterance %d (%.1f s) of %s", old.index, old.duration, old.speaker)
            self._pending_cv.notify()

    def _next_utterance(self):
        if not self.live:
            return self.utterances.get()
        with self._pending_cv:
            while not self._pending:
                self._pending_cv.wait(0.2)
            return self._pending.popleft()

    def _asr_loop(self) -> None:
        worker_limit = 2 * self.cfg.runtime.batch_size
        while True:
            # Live: hold utterances in the bounded pending buffer (where the oldest is dropped) rather than let
            # the model's queue grow without bound when the model is slower than real time.
            while self.live and self.worker.requests.qsize() >= worker_limit and not self.abort.is_set():
                time.sleep(0.02)
            u = self._next_utterance()
            if u is _END:
                break
            if self.abort.is_set():
                self.stats.unprocessed += 1
                continue
            if self.diarizers is not None:  # one voice model per input; names like "Teacher/A"
                label = self.diarizers[u.stream].assign(u.audio, u.duration)
                u = dataclasses.replace(u, speaker=speaker_name(self.streams[u.stream].speaker, label))
            try:
                t = self.asr.process(u)
            except CancelledError:  # the session is aborting: the worker dropped the encoding
                self.stats.unprocessed += 1
                continue
            self.stats.asr_seconds += t.asr_seconds
            self.worker.submit(t)
        self.worker.close()
        self.worker.join()
        if self.models is not None:  # the decoder goes back to the reader for its next session
            self.models.give_back_decoder(self.asr.decoder)
        self.stats.unprocessed += self.worker.skipped
        self.results.put(_END)

    def _sink_loop(self) -> None:
        while True:
            r = self.results.get()
            if r is _END:
                break
            if isinstance(r, StreamNotice):
                for sink in self.sinks:
                    sink.notice(r.message)
                continue
            self._deliver(r)
        self.done.set()

    def _deliver(self, r: Result) -> None:
        if self.timed:  # known before the sinks, which only write it
            r = dataclasses.replace(r, latency=time.time() - r.utterance.wall_end)
        s = self.stats
        self._delivered_end = max(self._delivered_end, r.utterance.end)
        s.utterances += 1
        s.emotion_seconds += r.emotion_seconds
        s.by_speaker.setdefault(r.utterance.speaker, collections.Counter())[r.emotion] += 1
        for sink in self.sinks:
            sink.write(r)
        if self.alerts is not None:
            self._give_alerts(self.alerts.add(r))
        if r.latency is not None:
            s.latencies.append(r.latency)
        self.recent.append(r)

    def _give_alerts(self, alerts: list) -> None:
        for a in alerts:
            for sink in self.sinks:
                give = getattr(sink, "alert", None)
                if give is not None:
                    give(a)

    def _end_alerts(self) -> None:
        """The session's end ends every alert still going on, before the sinks' last rows: at the end of the audio
        when every utterance was read, else at the last one read."""
        complete = not (self.abort.is_set() or self.stats.unprocessed or self.fatal is not None)
        try:
            self._give_alerts(self.alerts.close(self.stats.audio_seconds if complete else None))
        except Exception as exc:  # e.g. the disk filled up: the rows already written stay
            logger.debug("ending the alerts failed: %s", exc)


def step_names_of(model: ModelConfig) -> tuple[str, ...]:
    """The per-step columns a model reports (with branch heads: also the architecture's own output and the branches)."""
    return model_class(model.arch).output_names(model)


def summary_lines(session: Session) -> list[str]:
    s = session.stats
    lines = [
        f"session {session.session_id}: {s.utterances} utterances from {len(s.by_speaker)} speaker(s), "
        f"{s.audio_seconds:.1f} s of audio in {s.wall_seconds:.1f} s ({s.speed:.1f}x real time)"
    ]
    lines.append(f"  read with {session.reading}")
    for speaker, counts in sorted(s.by_speaker.items()):
        total = sum(counts.values())
        shares = ", ".join(f"{e} {100 * n / total:.0f}%" for e, n in counts.most_common())
        lines.append(f"  {speaker}: {total} utterances: {shares}")
    if s.dropped_audio_seconds or s.dropped_utterances:
        lines.append(f"  dropped: {s.dropped_audio_seconds:.1f} s of audio, {s.dropped_utterances} utterances (the machine fell behind)")
    if s.unprocessed:
        lines.append(f"  {s.unprocessed} utterance(s) were still queued at shutdown and not processed")
    for e in s.errors:
        lines.append(f"  input problem: {e}")
    return lines
