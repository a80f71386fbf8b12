"""Batch replay on a Ray cluster: ``emomon replay --ray ADDRESS`` (issue 33, part 3).

The driver (:func:`emomon.monitor.batch.run_batch`) stays where the user is and writes every session CSV and the
summary; this module only gives it a reader pool whose readers are Ray actors:

* one actor per ``threads`` CPU slots of the cluster (``runtime.threads``, or 1 when it is 0: the split a process
  of ``--jobs`` gets), or one actor per GPU with ``--compute cuda`` (``num_gpus=1``); each actor holds one
  :class:`~emomon.monitor.batch.RecordingReader`, so the models load once per actor, not once per recording;
* the driver keeps ``recordings_at_once`` recordings in flight per actor (1 on a CPU actor; 4 on a GPU actor, a
  threaded actor whose recordings share its micro-batches) and streams each result back as it finishes;
* a recording is read where it lies (a path every node sees: shared storage), or, with ``upload=True``
  (``--ray-upload``), its bytes go through Ray's object store, the recordings in flight only, and stay in the
  actor's memory;
* an actor that dies (its process killed, its node lost) loses only the recordings in flight: the actor is
  recreated and each recording retried once, then reported as failed.

``ray`` is an optional extra (``pip install -e ".[ray]"``): it is imported only inside functions, so the default
install neither needs nor loads it (deferred import of a heavy optional dependency).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections import deque
from concurrent.futures import Future
from pathlib import Path

from emomon.config import EmomonConfig
from emomon.errors import ConfigError, EmomonError
from emomon.monitor.batch import Recording, RecordingReader, RecordingResult

logger = logging.getLogger("emomon")

#: The one-line error without the extra (exit 2, before anything heavy is imported).
MISSING_RAY = '--ray needs the ray extra: pip install -e ".[ray]"'

#: Cores per CPU actor when ``runtime.threads`` is 0: one, as a ``--jobs`` worker process on a core (its PyTorch and
#: CTranslate2 threads take turns on it; ``bench/batch.py``: two 1-core readers beat one 2-core reader by 1.4x).
DEFAULT_ACTOR_THREADS = 1

#: How many times a recording is read again after the actor reading it died.
RETRIES = 1


def check_ray_installed() -> None:
    """Raise the one-line :class:`ConfigError` naming the extra when ``ray`` is not importable (no import of it)."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise ConfigError(MISSING_RAY)


class ReaderActor:
    """The body of one Ray actor: a :class:`RecordingReader` and its models, for recordings one after another.

    A plain class (made remote by :class:`RayReaderPool` with the resources it needs), so this module imports no
    ``ray`` at import time. A start-up error (a bad checkpoint, no GPU) is kept and handed to the driver by
    :meth:`ready`, which raises it there as the same one-line error."""

    def __init__(self, cfg: EmomonConfig, threads: int | None, level: int = logging.WARNING):
        os.umask(0o077)  # as the driver's: nothing an actor makes is readable by others
        logging.getLogger("emomon").setLevel(level)
        self.reader: RecordingReader | None = None
        self.error: Exception | None = None
        try:
            self.reader = RecordingReader(cfg, threads=threads)
        except EmomonError as exc:
            self.error = exc

    def ready(self) -> Exception | None:
        return self.error

    def pid(self) -> int:
        return os.getpid()

    def read(self, recording: Recording, data: bytes | None = None) -> RecordingResult:
        if self.reader is None:
            return RecordingResult(recording, None, str(self.error), 0.0)
        return self.reader.read(recording, data)


def _absolute(cfg: EmomonConfig) -> EmomonConfig:
    """The config as actors must see it: a checkpoint given as a path made absolute (an actor's working folder is
    not the driver's). A shipped name stays a name."""
    model = Path(cfg.runtime.model)
    if model.exists():
        return dataclasses.replace(cfg, runtime=dataclasses.replace(cfg.runtime, model=str(model.resolve())))
    return cfg


class RayReaderPool:
    """Recordings read by Ray actors, results streamed back to the driver as each finishes.

    ``address``: ``"local"`` starts a local Ray instance with this machine's CPUs; ``"auto"`` joins the cluster this
    machine belongs to; anything else is passed to ``ray.init(address=...)`` (e.g. ``ray://head:10001``). When Ray is
    already initialised in this process (a test, a notebook), that instance is used and left running.

    Use as a context manager (or call :meth:`close`): the actors are ended and a Ray instance this pool started is
    shut down."""

    def __init__(self, address: str, cfg: EmomonConfig, *, upload: bool = False, threads: int | None = None,
                 actors: int | None = None, actor_body: type | None = None):
        check_ray_installed()
        import ray  # deferred: the optional extra

        if not address or not address.strip():
            raise ConfigError("--ray: empty address; give ADDRESS (host:port or ray://host:port), auto or local")
        self.address = address.strip()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._queue: deque = deque()  # (recording, attempt, future)
        self._thread: threading.Thread | None = None
        self._closed = False
        self.upload = upload
        self.cfg = _absolute(cfg)
        self._started = False
        if not ray.is_initialized():
            try:
                # "local" (a new local instance with this machine's CPUs) and "auto" are Ray's own address words
                ray.init(address=self.address, include_dashboard=False, logging_level=logging.WARNING)
            except (ConnectionError, ValueError, RuntimeError) as exc:
                raise ConfigError(f"--ray {self.address}: cannot reach the Ray cluster ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
            self._started = True
        resources = ray.cluster_resources()
        device = self.cfg.runtime.device
        gpus = int(resources.get("GPU", 0))
        self.gpu = device == "cuda" or (device == "auto" and gpus > 0)
        if device == "cuda" and gpus == 0:
            self.close()
            raise ConfigError(f"--compute cuda: the Ray cluster at {self.address} has no GPU")
        self.threads = threads or self.cfg.runtime.threads or DEFAULT_ACTOR_THREADS
        cpus = int(resources.get("CPU", 0))
        if self.gpu:
            wanted = gpus
            self._options = {"num_gpus": 1, "num_cpus": min(self.threads, max(1, cpus // max(1, gpus)))}
        else:
            if cpus < self.threads:
                self.threads = max(1, cpus)
            wanted = max(1, cpus // self.threads)
            self._options = {"num_cpus": self.threads}
        self.size = min(wanted, actors) if actors else wanted
        from emomon.monitor.batch import recordings_at_once

        #: recordings each actor reads at once (a threaded actor; their utterances share its micro-batches)
        self.at_once = recordings_at_once(self.cfg, self.gpu)
        if self.at_once > 1:
            self._options["max_concurrency"] = self.at_once
        # ``actor_body``: a ReaderActor subclass (the tests' actor that dies mid-recording)
        self._remote = ray.remote(actor_body or ReaderActor).options(**self._options)
        self.actors = [self._new_actor() for _ in range(self.size)]
        logger.info("Ray: %d actor(s), %s each", self.size, ", ".join(f"{k}={v}" for k, v in self._options.items()))
        self._check_ready()

    # ----------------------------------------------------------------------------------------------- actors
    def _new_actor(self):
        return self._remote.remote(self.cfg, self.threads, logging.getLogger("emomon").getEffectiveLevel())

    def _check_ready(self) -> None:
        """Wait for every actor to start; a start-up error (e.g. a bad checkpoint) is raised here, once, as the
        reader raised it. The models themselves load with each actor's first recording."""
        import ray

        for actor in self.actors:
            try:
                error = ray.get(actor.ready.remote())
            except ray.exceptions.RayActorError as exc:
                self.close()
                raise EmomonError(f"a Ray actor died while loading the models: {_first_line(exc)}") from None
            if error is not None:
                self.close()
                raise error

    def close(self) -> None:
        import ray

        with self._lock:
            self._closed = True
            queued, self._queue = list(self._queue), deque()
        self._wake.set()
        for _, _, future in queued:
            future.cancel()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5.0)
        for actor in getattr(self, "actors", []):
            try:
                ray.kill(actor)
            except Exception:  # already gone with its node
                pass
        self.actors = []
        if self._started and ray.is_initialized():
            ray.shutdown()
        self._started = False

    def __enter__(self) -> RayReaderPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---------------------------------------------------------------------------------------------- reading
    def submit(self, recording: Recording) -> Future:
        """The :class:`~emomon.monitor.batch.ReaderPool` hook: queue ``recording``; the future gets its
        :class:`RecordingResult` when an actor has read it (its ``recording`` the one given, its path as the user
        wrote it). A recording whose actor died twice gets a result with that error, never an exception."""
        future: Future = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the Ray reader pool is shut down")
            self._queue.append((recording, 0, future))
            self._wake.set()
            if self._thread is None:
                self._thread = threading.Thread(target=self._schedule, name="emomon-ray-driver", daemon=True)
                self._thread.start()
        return future

    def _dispatch(self, actor, recording: Recording):
        import ray

        if self.upload:
            data = ray.put(recording.path.read_bytes())  # the driver reads the file; freed when the read is done
            return actor.read.remote(recording, data)
        return actor.read.remote(dataclasses.replace(recording, path=recording.path.resolve()), None)

    def _schedule(self) -> None:
        """The driver's scheduling loop (one thread): ``at_once`` recordings in flight per actor; each result passed
        to its future as it arrives; an actor that died is recreated and its recording queued again, once. Should the
        loop itself fail, every recording not yet read gets that error (the batch ends; nothing waits forever)."""
        flight: dict = {}  # ObjectRef -> (actor index, actor, recording, attempt, future)
        try:
            self._schedule_loop(flight)
        except BaseException as exc:
            logger.debug("the Ray scheduling loop failed", exc_info=True)
            error = EmomonError(f"the Ray driver's scheduling loop failed: {_first_line(exc)}")
            with self._lock:
                queued, self._queue = list(self._queue), deque()
            for future in [f for *_, f in flight.values()] + [f for *_, f in queued]:
                if not future.done():
                    future.set_exception(error)

    def _schedule_loop(self, flight: dict) -> None:
        import ray

        idle = [i for i in range(len(self.actors)) for _ in range(self.at_once)]  # free reading slots
        while True:
            with self._lock:
                if self._closed:
                    break
                while self._queue and idle:
                    index = idle.pop()
                    recording, attempt, future = self._queue.popleft()
                    # a retried recording's future is running already (set_running may be called only once)
                    if not future.running() and not future.set_running_or_notify_cancel():
                        idle.append(index)
                        continue
                    try:
                        actor = self.actors[index]
                        flight[self._dispatch(actor, recording)] = (index, actor, recording, attempt, future)
                    except OSError as exc:  # --ray-upload: the driver cannot read the file
                        idle.append(index)
                        future.set_result(RecordingResult(recording, None, f"{recording.path}: cannot read it ({exc.strerror or exc})", 0.0))
            if not flight:
                self._wake.wait(0.5)
                self._wake.clear()
                continue
            done, _ = ray.wait(list(flight), num_returns=1, timeout=0.2)
            if not done:
                continue
            ref = done[0]
            index, actor, recording, attempt, future = flight.pop(ref)
            try:
                result = dataclasses.replace(ray.get(ref), recording=recording)
            except ray.exceptions.RayActorError as exc:  # its process or node died: only its recordings are lost
                with self._lock:
                    if self._closed:
                        future.set_exception(EmomonError("the Ray reader pool was shut down"))
                        break
                    if self.actors[index] is actor:  # (an actor reading several recordings is replaced once)
                        self.actors[index] = self._new_actor()
                    if attempt < RETRIES:
                        logger.warning("%s: the Ray actor reading it died; reading it again", recording.path)
                        idle.append(index)
                        self._queue.appendleft((recording, attempt + 1, future))
                        continue
                result = RecordingResult(recording, None, f"the Ray actor reading it died (twice): {_first_line(exc)}", 0.0)
            except ray.exceptions.RayError as exc:  # the read itself raised: this recording fails, the batch goes on
                result = RecordingResult(recording, None, _first_line(exc), 0.0)
            idle.append(index)
            future.set_result(result)
        for *_, future in flight.values():
            if not future.done():
                future.set_exception(EmomonError("the Ray reader pool was shut down"))

    def shutdown(self) -> None:
        """End the scheduler and the actors; a Ray instance this pool started is shut down (the hook's name)."""
        self.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
