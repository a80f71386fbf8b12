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
from emomon.monitor.threads import ThreadPlan, apply_torch_threads
from emomon.records import Result, Transcribed

logger = logging.getLogger("emomon")


@dataclass(frozen=True)
class EmotionRequest:
    transcribed: Transcribed
    future: Future = field(default_factory=Future)


@dataclass(frozen=True)
class EncodeRequest:
    audio: np.ndarray
    #: the utterance's ``Utterance.key``, to find what a replay's first pass kept for it
    key: tuple | None = None
    future: Future = field(default_factory=Future)


@dataclass(frozen=True)
class CallRequest:
    fn: Callable[[Any], Any]
    future: Future = field(default_factory=Future)


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


class InferenceWorker(threading.Thread):
    """``recognizer_factory`` is called in this thread (so the model lives on the device this thread owns); with
    ``asr_model`` (a faster-whisper model name) the worker also runs the Whisper encoder pass of the ASR. Loading
    errors are raised by :meth:`wait_ready`."""

    def __init__(self, recognizer_factory: Callable, batch_size: int = 8, batch_wait_ms: int = 30,
                 on_result: Callable[[Result], None] | None = None, abort: threading.Event | None = None,
                 asr_model: str | None = None, threads: ThreadPlan | None = None):
        super().__init__(name="emomon-inference", daemon=True)
        self._factory = recognizer_factory
        self._asr_model = asr_model
        self._threads = threads
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
        #: a replay's first-pass encodings, waiting for the second pass (used and filled on this thread only)
        self.kept = KeptEncodings(0)
        self.batches = 0
        self.skipped = 0

    # ---------------------------------------------------------------------------------------------- callers
    def submit(self, transcribed: Transcribed) -> Future:
        """Emotion for one transcribed utterance; the future gives its :class:`Result`."""
        req = EmotionRequest(transcribed)
        self.requests.put(req)
        return req.future

    def encode(self, audio: np.ndarray, key: tuple | None = None) -> Future:
        """One utterance's Whisper pass; the future gives an ``EncodedUtterance`` (final layer, emotion frames).
        With ``key`` (``Utterance.key``), what the first pass kept for that utterance is used instead."""
        req = EncodeRequest(audio, key)
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
        pending: list[EmotionRequest] = []  # emotion requests gathered for the next micro-batch
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
                self.kept = KeptEncodings(0)  # what no utterance of the second pass claimed is freed with the session
                break
            if self.abort.is_set():  # shutting down: what is gathered or arrives now is skipped and counted
                self._flush(pending)
                item.future.cancel()
                self.skipped += isinstance(item, EmotionRequest)
                continue
            if isinstance(item, EncodeRequest):  # answered at once: the ASR thread waits on it
                self._run(item, lambda r=item: self.kept.take_encoding(r.key) or self.asr_encoder.encode(r.audio))
            elif isinstance(item, CallRequest):  # in order with the emotion requests before it
                self._flush(pending)
                self._run(item, lambda r=item: r.fn(self.recognizer))
            else:
                if not pending:
                    deadline = time.monotonic() + self.batch_wait
                pending.append(item)
                if len(pending) >= self.batch_size or not self.batches:  # the session's first row is shown at once
                    self._flush(pending)

    def _flush(self, pending: list[EmotionRequest]) -> None:
        """Run the gathered emotion requests as one micro-batch (or cancel them when the session aborts)."""
        if not pending:
            return
        batch = pending[:]
        pending.clear()
        if self.abort.is_set():
            for req in batch:
                req.future.cancel()
            self.skipped += len(batch)
            return
        self._process(batch)

    @staticmethod
    def _run(req, work: Callable) -> None:
        if not req.future.set_running_or_notify_cancel():
            return
        try:
            req.future.set_result(work())
        except BaseException as exc:  # the caller's future carries it
            req.future.set_exception(exc)

    def keep_for_second_pass(self, budget_bytes: int) -> None:
        """From now on, :meth:`encode_speeds` keeps what it encodes (up to ``budget_bytes``) for the second pass."""
        def start(_rec):
            self.kept = KeptEncodings(budget_bytes)

        self.call(start).result()

    def encode_speeds(self, audio: np.ndarray, speeds: tuple[float, ...], key: tuple | None = None) -> dict[float, np.ndarray]:
        """(On this thread, through :meth:`call`.) The emotion frames of one utterance at each reading speed; with
        ``key``, kept in :attr:`kept` with the ASR's final layer for the second pass, while the budget lasts."""
        rec = self.recognizer
        encoded = self.asr_encoder.encode(audio) if self.asr_encoder is not None and key is not None else None
        frames = {1.0: encoded.emotion_frames} if encoded is not None and encoded.emotion_frames is not None else {}
        todo = [f for f in speeds if f not in frames]
        if todo:  # the other speeds in one encoder batch
            views = rec.encode_speech([audio if f == 1.0 else resample_speed(audio, f) for f in todo]).unbatch()
            frames.update(zip(todo, views))
        if key is not None:
            self.kept.keep(key, encoded.final_layer if encoded is not None else None, frames)
        return {f: frames[f] for f in speeds}

    def _warm_up(self) -> None:
        """Build the speech encoder and run the model once (without text, which is still loading), so the first
        utterance does not pay for lazy initialisation."""
        self.recognizer.predict([np.zeros(16000, np.float32)], [None])

    def wait_text_encoder(self) -> None:
        """Block until the text encoder is loaded (its loading error is raised here, in the caller's thread)."""
        self.call(lambda rec: rec.text_encoder).result()

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
            known = [self.kept.take_frames(t.utterance.key) for t in items]
            for k, t in zip(known, items):
                if t.speech_frames is not None:
                    k[1.0] = t.speech_frames
            views = rec.speech_views(known, [t.utterance.audio for t in items], [t.utterance.speaker for t in items])
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

