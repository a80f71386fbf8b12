"""The inference worker: the one thread that owns the device and every PyTorch model on it.

It holds the emotion recognizer (text encoder, speech encoder, fused model), the Whisper encoder pass that feeds the
ASR's decoder (the emotion model's own speech encoder when both read the same Whisper: one encoder in memory) and,
through :meth:`InferenceWorker.call`, any other model a stage needs (the diarizer's voice encoder). Other threads
submit requests and get a future:

- :class:`EncodeRequest` (the ASR thread): one utterance's Whisper pass, for the decoder and the emotion model;
- :class:`EmotionRequest` (the ASR thread): a transcribed utterance, answered with its :class:`Result`;
- :class:`CallRequest` (set-up, the first pass, the diarizer): a function run with the recognizer, in this thread.

Encoding is answered at once (the ASR thread waits on it). Emotion requests are gathered into a micro-batch of up
to ``batch_size``, run when it is full or ``batch_wait_ms`` after its first request, whichever comes first (a
replay, which has no listener waiting, gathers for longer: ``[replay] batch_wait_ms``); in arrival order, so each
speaker's running baseline grows as the session goes. A call runs after the emotion requests before it.

A batch reader keeps one worker for many sessions (:class:`LoadedModels`), each talking to it through its own
:class:`SessionLane`; several sessions at once share its micro-batches, each read with its own speeds and speaker
baselines (:class:`Lane`), so the device still has one owner and each model is in memory once.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from emomon.audio.speed import speed as resample_speed
from emomon.models.asr.transcriber import AsrEncoder, EncodedUtterance
from emomon.models.frames import Frames
from emomon.monitor.threads import ThreadPlan, apply_torch_threads
from emomon.records import Result, Transcribed

logger = logging.getLogger("emomon")


@dataclass(frozen=True)
class EmotionRequest:
    transcribed: Transcribed
    future: Future = field(default_factory=Future)
    #: the session it is for (None: the worker's own, when it serves one session)
    lane: Lane | None = None


@dataclass(frozen=True)
class EncodeRequest:
    audio: np.ndarray
    #: the utterance's ``Utterance.key``, to find what a replay's first pass kept for it
    key: tuple | None = None
    future: Future = field(default_factory=Future)
    lane: Lane | None = None


@dataclass(frozen=True)
class CallRequest:
    fn: Callable[[Any], Any]
    future: Future = field(default_factory=Future)
    lane: Lane | None = None


@dataclass(frozen=True)
class CloseLane:
    """A session's end: what it has queued is done first, then its kept encodings are freed."""

    lane: Lane


_STOP = object()


class KeptEncodings:
    """What a replay's first pass encoded, kept for the second pass so that no utterance is encoded twice: the
    Whisper final layer (for the decoder) and the emotion frames at each reading speed. Bounded: past
    ``budget_bytes`` the first pass keeps nothing more, and the second pass encodes those utterances again."""

    def __init__(self, budget_bytes: int):
        self.budget = budget_bytes
        self.used = 0
        self._final: dict[tuple, np.ndarray] = {}
        self._frames: dict[tuple, dict[float, np.ndarray]] = {}

    def keep(self, key: tuple, final_layer: np.ndarray | None, frames: dict[float, np.ndarray]) -> bool:
        size = sum(f.nbytes for f in frames.values()) + (final_layer.nbytes if final_layer is not None else 0)
        if self.used + size > self.budget:
            return False
        self.used += size
        if final_layer is not None:
            self._final[key] = final_layer
        self._frames[key] = dict(frames)
        return True

    def take_encoding(self, key: tuple | None):
        """The ASR's encoding (final layer, 1x emotion frames) if it was kept; the other speeds stay for the
        emotion request."""
        final = self._final.pop(key, None) if key is not None else None
        if final is None:
            return None
        self.used -= final.nbytes
        frames = self._frames.get(key, {})
        return EncodedUtterance(final, frames.get(1.0))

    def take_frames(self, key: tuple) -> dict[float, np.ndarray]:
        """Every kept emotion view of the utterance, by speed (removed from the store)."""
        frames = self._frames.pop(key, {})
        self.used -= sum(f.nbytes for f in frames.values())
        return frames



class Lane:
    """One session's share of an :class:`InferenceWorker`: where its results go, its abort switch, what its first
    pass kept, and the recognizer's reading for it (speeds, speaker baselines), which the worker swaps in before it
    reads for this session. A worker serves one session through its own lane, or several at once (a batch reader
    with ``recordings_per_worker`` > 1: their utterances share micro-batches, each read against its own speakers)."""

    def __init__(self, on_result: Callable[[Result], None] | None, abort: threading.Event | None):
        self.on_result = on_result
        self.abort = abort or threading.Event()
        self.kept = KeptEncodings(0)
        #: the recognizer's reading for this session while another lane's is swapped in (None: not yet read: fresh)
        self.reading = None
        self.batches = 0
        self.skipped = 0
        #: set when the worker has done everything this session queued (its :class:`CloseLane`)
        self.closed = threading.Event()


class InferenceWorker(threading.Thread):
    """``recognizer_factory`` is called in this thread (so the model lives on the device this thread owns); with
    ``asr_model`` (a faster-whisper model name) the worker also runs the Whisper encoder pass of the ASR. Loading
    errors are raised by :meth:`wait_ready`.

    A session uses the worker directly (its own lane: ``on_result``, ``abort``); a batch reader keeps one worker for
    many sessions and gives each a :class:`SessionLane` (:meth:`open_lane`), one after another or several at once."""

    def __init__(self, recognizer_factory: Callable, batch_size: int = 8, batch_wait_ms: int = 30,
                 on_result: Callable[[Result], None] | None = None, abort: threading.Event | None = None,
                 asr_model: str | None = None, threads: ThreadPlan | None = None, first_row_at_once: bool = True):
        super().__init__(name="emomon-inference", daemon=True)
        #: run a session's first emotion request alone, at once (a person is waiting for the first row); a batch
        #: reader, which nobody watches, gathers it with the rest
        self.first_row_at_once = first_row_at_once
        self._factory = recognizer_factory
        self._asr_model = asr_model
        self._threads = threads
        self.batch_size = batch_size
        self.batch_wait = batch_wait_ms / 1000
        self.lane = Lane(on_result, abort)
        self.requests: queue.Queue = queue.Queue()
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.recognizer = None
        #: the ASR's encoder pass (``emomon.models.asr.transcriber.AsrEncoder``), when ``asr_model`` was given
        self.asr_encoder = None
        #: the lane whose reading the recognizer holds now (worker thread only)
        self._active: Lane | None = None

    # ------------------------------------------------------------------------------------ its own session's lane
    @property
    def on_result(self):
        return self.lane.on_result

    @property
    def abort(self) -> threading.Event:
        return self.lane.abort

    @property
    def kept(self) -> KeptEncodings:
        return self.lane.kept

    @property
    def batches(self) -> int:
        return self.lane.batches

    @property
    def skipped(self) -> int:
        return self.lane.skipped

    # ---------------------------------------------------------------------------------------------- callers
    def submit(self, transcribed: Transcribed, lane: Lane | None = None) -> Future:
        """Emotion for one transcribed utterance; the future gives its :class:`Result`."""
        req = EmotionRequest(transcribed, lane=lane)
        self.requests.put(req)
        return req.future

    def encode(self, audio: np.ndarray, key: tuple | None = None, lane: Lane | None = None) -> Future:
        """One utterance's Whisper pass; the future gives an ``EncodedUtterance`` (final layer, emotion frames).
        With ``key`` (``Utterance.key``), what the first pass kept for that utterance is used instead."""
        req = EncodeRequest(audio, key, lane=lane)
        self.requests.put(req)
        return req.future

    def call(self, fn: Callable[[Any], Any], lane: Lane | None = None) -> Future:
        """Run ``fn(recognizer)`` in this thread, after what is already queued, with the lane's reading swapped in;
        the future gives its return value."""
        req = CallRequest(fn, lane=lane)
        self.requests.put(req)
        return req.future

    def on_device(self, fn: Callable) -> Callable:
        """``fn`` as a callable that runs in this thread (e.g. a voice encoder used by another stage), blocking."""
        return lambda *args: self.call(lambda _rec: fn(*args)).result()

    def close(self) -> None:
        """No more requests: finish what is queued, then end."""
        self.requests.put(_STOP)

    def wait_ready(self) -> None:
        """Block until the models are loaded; re-raise a loading error here, in the caller's thread."""
        self.ready.wait()
        if self.error is not None:
            raise self.error

    def open_lane(self, on_result: Callable[[Result], None] | None, abort: threading.Event | None) -> SessionLane:
        """A new session on this (already started) worker: it reads with a fresh reading and its own kept encodings."""
        return SessionLane(self, Lane(on_result, abort))

    # ---------------------------------------------------------------------------------------------- thread
    def run(self) -> None:
        try:
            if self._threads is not None:
                apply_torch_threads(self._threads)
            self.recognizer = self._factory()
            # MiniLM (and transformers' import) loads beside the speech side and a replay's first pass, which need
            # no text; the first emotion request waits for it
            self.recognizer.start_loading_text_encoder()
            if self._asr_model is not None:
                self.asr_encoder = AsrEncoder.for_model(self._asr_model, self.recognizer.speech_encoder, self.recognizer.device)
                self.asr_encoder.silence()  # the decoder's window tail, computed once (also warms the encoder up)
            self._warm_up()
        except BaseException as exc:  # handed to wait_ready()
            self.error = exc
            self.ready.set()
            return
        self.ready.set()
        pending: list[EmotionRequest] = []  # emotion requests gathered for the next micro-batch (any lane)
        deadline = 0.0
        while True:
            timeout = max(0.0, deadline - time.monotonic()) if pending else None
            try:
                item = self.requests.get(timeout=timeout)
            except queue.Empty:  # the window after the first gathered request is over
                self._flush(pending)
                continue
            if item is _STOP:
                self._flush(pending)
                self.lane.kept = KeptEncodings(0)  # what no utterance of the second pass claimed is freed with the session
                self.lane.closed.set()
                break
            if isinstance(item, CloseLane):  # that session's requests run now; other sessions' go on gathering
                mine = [r for r in pending if r.lane is item.lane]
                pending[:] = [r for r in pending if r.lane is not item.lane]
                self._flush(mine)
                item.lane.kept = KeptEncodings(0)
                if self._active is item.lane:
                    self._active = None
                item.lane.closed.set()
                continue
            lane = item.lane or self.lane
            if lane.abort.is_set():  # shutting down: what is gathered or arrives now is skipped and counted
                self._flush(pending)
                item.future.cancel()
                lane.skipped += isinstance(item, EmotionRequest)
                continue
            if isinstance(item, EncodeRequest):  # answered at once: the ASR thread waits on it
                self._run(item, lambda r=item, k=lane.kept: k.take_encoding(r.key) or self.asr_encoder.encode(r.audio))
            elif isinstance(item, CallRequest):  # in order with the emotion requests before it
                self._flush(pending)
                self._activate(lane)
                self._run(item, lambda r=item: r.fn(self.recognizer))
            else:
                if not pending:
                    deadline = time.monotonic() + self.batch_wait
                pending.append(item)
                if len(pending) >= self.batch_size or (self.first_row_at_once and not lane.batches):
                    self._flush(pending)

    def _activate(self, lane: Lane) -> None:
        """Give the recognizer this lane's reading (speeds, speaker baselines), keeping the one it had for its lane."""
        if self._active is lane:
            return
        if self._active is not None:
            self._active.reading = self.recognizer.reading()
        if self._active is not None or lane is not self.lane:  # a worker's own single session never swaps
            self.recognizer.set_reading(lane.reading)
        self._active = lane

    def _flush(self, pending: list[EmotionRequest]) -> None:
        """Run the gathered emotion requests as one micro-batch (those of an aborting session are cancelled)."""
        if not pending:
            return
        batch = []
        for req in pending:
            lane = req.lane or self.lane
            if lane.abort.is_set():
                req.future.cancel()
                lane.skipped += 1
            else:
                batch.append(req)
        pending.clear()
        if batch:
            self._process(batch)

    @staticmethod
    def _run(req, work: Callable) -> None:
        if not req.future.set_running_or_notify_cancel():
            return
        try:
            req.future.set_result(work())
        except BaseException as exc:  # the caller's future carries it
            req.future.set_exception(exc)

    def keep_for_second_pass(self, budget_bytes: int, lane: Lane | None = None) -> None:
        """From now on, :meth:`encode_speeds` keeps what it encodes (up to ``budget_bytes``) for the second pass."""
        def start(_rec, lane=lane or self.lane):
            lane.kept = KeptEncodings(budget_bytes)

        self.call(start, lane).result()

    def encode_speeds(self, audio: np.ndarray, speeds: tuple[float, ...], key: tuple | None = None,
                      lane: Lane | None = None) -> dict[float, np.ndarray]:
        """(On this thread, through :meth:`call`.) The emotion frames of one utterance at each reading speed; with
        ``key``, kept in the lane's kept encodings with the ASR's final layer for the second pass, while the budget
        lasts."""
        rec = self.recognizer
        encoded = self.asr_encoder.encode(audio) if self.asr_encoder is not None and key is not None else None
        frames = {1.0: encoded.emotion_frames} if encoded is not None and encoded.emotion_frames is not None else {}
        todo = [f for f in speeds if f not in frames]
        if todo:  # the other speeds in one encoder batch
            views = rec.encode_speech([audio if f == 1.0 else resample_speed(audio, f) for f in todo]).unbatch()
            frames.update(zip(todo, views))
        if key is not None:
            (lane or self.lane).kept.keep(key, encoded.final_layer if encoded is not None else None, frames)
        return {f: frames[f] for f in speeds}

    def _warm_up(self) -> None:
        """Build the speech encoder and run the model once (without text, which is still loading), so the first
        utterance does not pay for lazy initialisation."""
        self.recognizer.predict([np.zeros(16000, np.float32)], [None])

    def wait_text_encoder(self) -> None:
        """Block until the text encoder is loaded (its loading error is raised here, in the caller's thread)."""
        self.call(lambda rec: rec.text_encoder).result()

    def _process(self, batch: list[EmotionRequest]) -> None:
        """One micro-batch, perhaps of several sessions: the text is encoded once for all; each session's speech
        views are built with its own reading (in arrival order, so each speaker's running baseline grows as its
        session goes); the fused model reads them all as one batch."""
        rec = self.recognizer
        t0 = time.perf_counter()
        try:
            items = [r.transcribed for r in batch]
            # what the model reads: the words, unless the ASR was unsure of them (the record keeps them either way)
            read = [t.text if rec.config.model.reads_transcript(t.text, t.avg_logprob) else None for t in items]
            text = rec.encode_text(read)
            lanes = [r.lane or self.lane for r in batch]
            order = list(dict.fromkeys(lanes))
            seqs: list[list] = []  # per speed, the batch's normalised frames in batch order
            for lane in order:
                self._activate(lane)
                mine = [i for i, x in enumerate(lanes) if x is lane]
                # frames the ASR pass already computed are reused (a replay may read at several speeds: one view each)
                known = [lane.kept.take_frames(items[i].utterance.key) for i in mine]
                for k, i in zip(known, mine):
                    if items[i].speech_frames is not None:
                        k[1.0] = items[i].speech_frames
                views = rec.speech_view_sequences(known, [items[i].utterance.audio for i in mine],
                                                  [items[i].utterance.speaker for i in mine])
                if not seqs:
                    seqs = [[None] * len(items) for _ in views]
                if len(views) != len(seqs):
                    raise RuntimeError("sessions sharing a worker must read at the same speeds")
                for speed, view in enumerate(views):
                    for i, frames in zip(mine, view):
                        seqs[speed][i] = frames
            if len(order) > 1:
                logger.debug("micro-batch of %d utterances from %d sessions", len(items), len(order))
            dim = rec.ckpt.dims["speech"]
            views = [Frames.pad(view, dim=dim) for view in seqs]
            extras = None
            if rec.uses_word_times:
                extras = rec.word_time_extras(
                    read, [t.words if r else [] for t, r in zip(items, read)],
                    [t.utterance.audio_start if t.utterance.audio_start is not None else t.utterance.start for t in items],
                    [len(t.utterance.audio) / 16000 for t in items])
            preds = rec.predict_frames(text, views, extras)
        except Exception as exc:  # never lose the batch silently: fail its futures
            logger.exception("emotion inference failed for %d utterance(s)", len(batch))
            for req in batch:
                req.future.set_exception(exc)
            return
        elapsed = time.perf_counter() - t0
        for lane in dict.fromkeys(lanes):
            lane.batches += 1
        for req, lane, t, p, r in zip(batch, lanes, items, preds, read):
            note = t.asr_note if r or not t.text else f"words unsure (log-prob {t.avg_logprob:.1f}), not read"
            result = Result(
                utterance=t.utterance, text=t.text, emotion=p.label, confidence=p.confidence, probs=p.probs,
                step_emotions=p.step_labels, asr_note=note, language=t.language, asr_seconds=t.asr_seconds,
                emotion_seconds=elapsed / len(batch), words=t.words,
            )
            req.future.set_result(result)
            if lane.on_result is not None:
                lane.on_result(result)


class SessionLane:
    """A session's view of a shared :class:`InferenceWorker` (what a :class:`~emomon.monitor.pipeline.Session` uses
    as its worker when a batch reader holds the models): the same calls, each tagged with this session's lane.
    ``start`` does nothing (the worker runs already); ``close``/``join`` end this session only."""

    def __init__(self, worker: InferenceWorker, lane: Lane):
        self._worker, self.lane = worker, lane

    # what the session reads of the worker
    ready = property(lambda self: self._worker.ready)
    error = property(lambda self: self._worker.error)
    recognizer = property(lambda self: self._worker.recognizer)
    asr_encoder = property(lambda self: self._worker.asr_encoder)
    requests = property(lambda self: self._worker.requests)
    abort = property(lambda self: self.lane.abort)
    kept = property(lambda self: self.lane.kept)
    batches = property(lambda self: self.lane.batches)
    skipped = property(lambda self: self.lane.skipped)

    def start(self) -> None:
        pass

    def wait_ready(self) -> None:
        self._worker.wait_ready()

    def submit(self, transcribed: Transcribed) -> Future:
        return self._worker.submit(transcribed, self.lane)

    def encode(self, audio: np.ndarray, key: tuple | None = None) -> Future:
        return self._worker.encode(audio, key, self.lane)

    def call(self, fn: Callable[[Any], Any]) -> Future:
        return self._worker.call(fn, self.lane)

    def on_device(self, fn: Callable) -> Callable:
        return lambda *args: self.call(lambda _rec: fn(*args)).result()

    def keep_for_second_pass(self, budget_bytes: int) -> None:
        self._worker.keep_for_second_pass(budget_bytes, self.lane)

    def encode_speeds(self, audio: np.ndarray, speeds: tuple[float, ...], key: tuple | None = None) -> dict[float, np.ndarray]:
        return self._worker.encode_speeds(audio, speeds, key, self.lane)

    def wait_text_encoder(self) -> None:
        self.call(lambda rec: rec.text_encoder).result()

    def close(self) -> None:
        self._worker.requests.put(CloseLane(self.lane))

    def join(self, timeout: float | None = None) -> None:
        self.lane.closed.wait(timeout)

    def is_alive(self) -> bool:
        return not self.lane.closed.is_set() and self._worker.is_alive()


class LoadedModels:
    """The models of a batch reader, loaded once and kept for every recording it reads: one inference worker (the
    emotion recognizer and the ASR's encoder pass, on the thread that owns the device) and CTranslate2 decoders, one
    per session reading at the same time. Sessions take a :class:`SessionLane` of the worker and a decoder, and give
    the decoder back when they end."""

    def __init__(self, worker: InferenceWorker):
        self.worker = worker
        self._decoders: list = []
        self._lock = threading.Lock()
        self._started = False

    def lane(self, on_result: Callable[[Result], None] | None, abort: threading.Event | None) -> SessionLane:
        """A new session's lane; the first starts the worker (the models load with the first session)."""
        with self._lock:
            if not self._started:
                self.worker.start()
                self._started = True
        return self.worker.open_lane(on_result, abort)

    def take_decoder(self):
        """A decoder no running session uses (None: the session loads one, and gives it back)."""
        with self._lock:
            return self._decoders.pop() if self._decoders else None

    def give_back_decoder(self, decoder) -> None:
        with self._lock:
            self._decoders.append(decoder)

    def close(self) -> None:
        """End the worker once the sessions using it have ended (a reader that is done)."""
        with self._lock:
            if self._started:
                self.worker.close()
            self._decoders.clear()
