"""The inference worker: the one thread that owns the emotion model and its device.

Callers submit an :class:`EmotionRequest` and get a future; the worker gathers up to ``batch_size`` requests or
waits ``batch_wait_ms`` after the first, whichever comes first, and runs them as one micro-batch (text encoder,
speech encoder when the ASR pass did not already provide frames, fused model). Nobody else touches the model.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from emomon.monitor.records import Result, Transcribed

logger = logging.getLogger("emomon")


@dataclass
class EmotionRequest:
    transcribed: Transcribed
    future: Future = field(default_factory=Future)


_STOP = object()


class InferenceWorker(threading.Thread):
    """``recognizer_factory`` is called in this thread (so the model lives on the device this thread owns), then
    ``prepare(recognizer)`` if given; the errors of either are raised by :meth:`wait_ready`."""

    def __init__(self, recognizer_factory: Callable, batch_size: int = 8, batch_wait_ms: int = 30,
                 on_result: Callable[[Result], None] | None = None, abort: threading.Event | None = None,
                 prepare: Callable | None = None):
        super().__init__(name="emomon-inference", daemon=True)
        self._factory = recognizer_factory
        self._prepare = prepare  # called with the warmed-up recognizer, in this thread, before ready (a replay's first pass)
        self.batch_size = batch_size
        self.batch_wait = batch_wait_ms / 1000
        self.on_result = on_result
        self.abort = abort or threading.Event()
        self.requests: queue.Queue = queue.Queue()
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.recognizer = None
        self.batches = 0
        self.skipped = 0

    # ---------------------------------------------------------------------------------------------- callers
    def submit(self, transcribed: Transcribed) -> Future:
        req = EmotionRequest(transcribed)
        self.requests.put(req)
        return req.future

    def close(self) -> None:
        """No more requests: finish what is queued, then end."""
        self.requests.put(_STOP)

    def wait_ready(self) -> None:
        """Block until the model is loaded; re-raise its loading error here, in the caller's thread."""
        self.ready.wait()
        if self.error is not None:
            raise self.error

    # ---------------------------------------------------------------------------------------------- thread
    def run(self) -> None:
        try:
            self.recognizer = self._factory()
            self._warm_up()
            if self._prepare is not None:
                self._prepare(self.recognizer)
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
                self.skipped += len(batch)
                continue
            self._process(batch)

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
            u = t.utterance
            note = t.asr_note if r or not t.text else f"words unsure (log-prob {t.avg_logprob:.1f}), not read"
            result = Result(
                utterance=u, text=t.text, emotion=p.label, confidence=p.confidence, probs=p.probs,
                step_emotions=p.step_labels, asr_note=note, language=t.language, asr_seconds=t.asr_seconds,
                emotion_seconds=elapsed / len(batch), words=t.words,
            )
            req.future.set_result(result)
            if self.on_result is not None:
                self.on_result(result)
