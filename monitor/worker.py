"""The inference worker: the one thread that owns the device and every PyTorch model on it.

It holds the emotion recognizer (text encoder, speech encoder, fused model), the Whisper encoder pass that feeds the
ASR's decoder (the emotion model's own speech encoder when both read the same Whisper: one encoder in memory) and,
through :meth:`InferenceWorker.call`, any other model a stage needs (the diarizer's voice encoder). Other threads
submit requests and get a future:

- :class:`EncodeRequest` (the ASR thread): one utterance's Whisper pass, for the decoder and the emotion model;
- :class:`EmotionRequest` (the ASR thread): a transcribed utterance, answered with its :class:`Result`;
- :class:`CallRequest` (set-up, the first pass, the diarizer): a function run with the recognizer, in this thread.

The worker gathers up to ``batch_size`` requests or waits ``batch_wait_ms`` after the first, whichever comes first.
Encoding is answered first (the ASR thread waits on it); the emotion requests of the gathering run as one
micro-batch, in arrival order, so each speaker's running baseline grows as the session goes.
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

from emomon.records import Result, Transcribed

logger = logging.getLogger("emomon")


@dataclass(frozen=True)
class EmotionRequest:
    transcribed: Transcribed
    future: Future = field(default_factory=Future)


@dataclass(frozen=True)
class EncodeRequest:
    audio: np.ndarray
    future: Future = field(default_factory=Future)


@dataclass(frozen=True)
class CallRequest:
    fn: Callable[[Any], Any]
    future: Future = field(default_factory=Future)


_STOP = object()


class InferenceWorker(threading.Thread):
    """``recognizer_factory`` is called in this thread (so the model lives on the device this thread owns); with
    ``asr_model`` (a faster-whisper model name) the worker also runs the Whisper encoder pass of the ASR. Loading
    errors are raised by :meth:`wait_ready`."""

    def __init__(self, recognizer_factory: Callable, batch_size: int = 8, batch_wait_ms: int = 30,
                 on_result: Callable[[Result], None] | None = None, abort: threading.Event | None = None,
                 asr_model: str | None = None):
        super().__init__(name="emomon-inference", daemon=True)
        self._factory = recognizer_factory
        self._asr_model = asr_model
        self.batch_size = batch_size
        self.batch_wait = batch_wait_ms / 1000
        self.on_result = on_result
        self.abort = abort or threading.Event()
        self.requests: queue.Queue = queue.Queue()
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.recognizer = None
        #: the ASR's encoder pass (``emomon.models.asr.transcriber.AsrEncoder``), when ``asr_model`` was given
        self.asr_encoder = None
        self.batches = 0
        self.skipped = 0

    # ---------------------------------------------------------------------------------------------- callers
    def submit(self, transcribed: Transcribed) -> Future:
        """Emotion for one transcribed utterance; the future gives its :class:`Result`."""
        req = EmotionRequest(transcribed)
        self.requests.put(req)
        return req.future

    def encode(self, audio: np.ndarray) -> Future:
        """One utterance's Whisper pass; the future gives an ``EncodedUtterance`` (final layer, emotion frames)."""
        req = EncodeRequest(audio)
        self.requests.put(req)
        return req.future

    def call(self, fn: Callable[[Any], Any]) -> Future:
        """Run ``fn(recognizer)`` in this thread, after what is already queued; the future gives its return value."""
        req = CallRequest(fn)
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

    # ---------------------------------------------------------------------------------------------- thread
    def run(self) -> None:
        try:
            self.recognizer = self._factory()
            if self._asr_model is not None:
                # deferred: the Whisper port imports torch; a worker without ASR (tests, tools) never needs it
                from emomon.models.asr.transcriber import AsrEncoder

                self.asr_encoder = AsrEncoder.for_model(self._asr_model, self.recognizer.speech_encoder, self.recognizer.device)
                self.asr_encoder.silence()  # the decoder's window tail, computed once (also warms the encoder up)
            self._warm_up()
        except BaseException as exc:  # handed to wait_ready()
            self.error = exc
            self.ready.set()
            return
        self.ready.set()
        stopping = False
        while not stopping:
            first = self.requests.get()
            if first is _STOP:
                break
            batch = [first]
            deadline = time.monotonic() + self.batch_wait
            while len(batch) < self.batch_size:
                try:
                    item = self.requests.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)
            if self.abort.is_set():
                for req in batch:
                    req.future.cancel()
                self.skipped += sum(isinstance(r, EmotionRequest) for r in batch)
                continue
            self._serve(batch)

    def _serve(self, batch: list) -> None:
        """Encodes first (the ASR thread is waiting), then the rest in arrival order: runs of emotion requests as
        one micro-batch each, calls one by one."""
        for req in batch:
            if isinstance(req, EncodeRequest):
                self._run(req, lambda r=req: self.asr_encoder.encode(r.audio))
        run: list[EmotionRequest] = []
        for req in batch:
            if isinstance(req, EmotionRequest):
                run.append(req)
                continue
            if run:
                self._process(run)
                run = []
            if isinstance(req, CallRequest):
                self._run(req, lambda r=req: r.fn(self.recognizer))
        if run:
            self._process(run)

    @staticmethod
    def _run(req, work: Callable) -> None:
        if not req.future.set_running_or_notify_cancel():
            return
        try:
            req.future.set_result(work())
        except BaseException as exc:  # the caller's future carries it
            req.future.set_exception(exc)

    def _warm_up(self) -> None:
        """Load the lazily built encoders and run one prediction, so the first utterance does not pay for it."""
        rec = self.recognizer
        rec.predict([np.zeros(16000, np.float32)], ["warm up"])

    def _process(self, batch: list[EmotionRequest]) -> None:
        rec = self.recognizer
        t0 = time.perf_counter()
        try:
            items = [r.transcribed for r in batch]
            # what the model reads: the words, unless the ASR was unsure of them (the record keeps them either way)
            read = [t.text if rec.config.model.reads_transcript(t.text, t.avg_logprob) else None for t in items]
            text = rec.encode_text(read)
            # frames the ASR pass already computed are reused; in arrival order, so each speaker's running
            # baseline grows as the session goes (a replay may read at several speeds: one view each)
            views = rec.speech_views([t.speech_frames for t in items], [t.utterance.audio for t in items],
                                     [t.utterance.speaker for t in items])
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
        self.batches += 1
        for req, t, p, r in zip(batch, items, preds, read):
            note = t.asr_note if r or not t.text else f"words unsure (log-prob {t.avg_logprob:.1f}), not read"
            result = Result(
                utterance=t.utterance, text=t.text, emotion=p.label, confidence=p.confidence, probs=p.probs,
                step_emotions=p.step_labels, asr_note=note, language=t.language, asr_seconds=t.asr_seconds,
                emotion_seconds=elapsed / len(batch), words=t.words,
            )
            req.future.set_result(result)
            if self.on_result is not None:
                self.on_result(result)

