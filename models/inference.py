"""Inference API: a checkpoint plus its encoders, audio and text in, emotion distributions out.

>>> rec = EmotionRecognizer()                    # the shipped offline English model
>>> rec.predict([audio], ["I can't believe this"])[0].label
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import torch

from emomon.audio.speed import speed as resample_speed
from emomon.errors import ModelError
from emomon.models.branches import BRANCHES
from emomon.models.checkpoint import DEFAULT_CHECKPOINT, Checkpoint, load_checkpoint
from emomon.models.encoders import build_speech_encoder, build_text_encoder
from emomon.models.frames import Frames, autocast, pick_device
from emomon.models.io import EmotionOutput, FusionInput, stack_inputs
from emomon.models.speaker_baseline import SpeakerBaseline
from emomon.models.wordtimes import token_times

logger = logging.getLogger("emomon")


@dataclass
class Prediction:
    label: str
    confidence: float
    probs: dict[str, float]
    #: Each step's (or branch's) own distribution, e.g. HyFusER's step1 (Q=text) and step2 (Q=speech).
    step_probs: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def step_labels(self) -> dict[str, str]:
        return {k: max(v, key=v.get) for k, v in self.step_probs.items()}


class EmotionRecognizer:
    """Owns a fused model and its encoders on one device. Not thread-safe: give it to one thread."""

    def __init__(self, checkpoint: str | Checkpoint = DEFAULT_CHECKPOINT, device: str | torch.device = "auto"):
        self.device = pick_device(device) if isinstance(device, str) else device
        self.ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint, device=self.device)
        self.model = self.ckpt.model.to(self.device).eval()
        self.classes = self.ckpt.classes
        self._text = self._speech = None
        self._text_loader: threading.Thread | None = None
        self._text_error: BaseException | None = None
        #: Speeds each utterance is read at, probabilities averaged (1.0 alone = no test-time augmentation).
        self.speeds: tuple[float, ...] = (1.0,)
        opts = getattr(self.model, "speaker_baseline", None)
        if opts is not None:
            #: Running per-speaker baselines of this session (see models/speaker_baseline.py).
            self.baselines = SpeakerBaseline(opts)
        else:
            self.baselines = None
        #: Per-speed baselines (speed -> SpeakerBaseline or SessionBaseline); 1.0 is ``self.baselines``.
        self._speed_baselines: dict[float, object] = {}

    def read_at_speeds(self, speeds: Sequence[float]) -> None:
        """Speed test-time augmentation: every utterance is also encoded at these speeds (e.g. 0.95 and 1.05) and
        the distributions averaged. Costs one speech-encoder pass per extra speed. Each speed keeps its own
        speaker baselines (a speaker sounds different sped up). A model that reads word times keeps one speed: the
        times are in 1x seconds, and resampled views would misplace them."""
        speeds = tuple(dict.fromkeys([1.0, *(float(f) for f in speeds)]))
        if any(not 0.5 <= f <= 2.0 for f in speeds):
            raise ValueError(f"speeds must lie in [0.5, 2]: {speeds}")
        if self.uses_word_times:
            speeds = (1.0,)
        self.speeds = speeds
        if self.baselines is not None:
            self._speed_baselines = {f: self._speed_baselines.get(f) or SpeakerBaseline(self.baselines.options)
                                     for f in speeds if f != 1.0}

    def use_session_baselines(self, baselines: dict[float, object]) -> None:
        """Replace the running baselines by fixed whole-recording ones (:class:`SessionBaseline`), one per speed
        of :attr:`speeds` (see ``emomon.monitor.first_pass``)."""
        missing = [f for f in self.speeds if f not in baselines]
        if self.baselines is None or missing:
            raise ValueError("session baselines need a speaker-baseline model and one baseline per reading speed")
        self.baselines = baselines[1.0]
        self._speed_baselines = {f: b for f, b in baselines.items() if f != 1.0 and f in self.speeds}

    def reading(self) -> tuple:
        """How this session reads (speeds, speaker baselines), to be put back with :meth:`set_reading`: a worker
        that serves several sessions at once swaps each session's reading in before it reads for that session."""
        return self.speeds, self.baselines, dict(self._speed_baselines)

    def set_reading(self, reading: tuple | None) -> None:
        """Put back a :meth:`reading`; ``None``: a fresh one (1x only, new running baselines), as a new session
        starts."""
        if reading is None:
            opts = getattr(self.model, "speaker_baseline", None)
            reading = ((1.0,), SpeakerBaseline(opts) if opts is not None else None, {})
        self.speeds, self.baselines, self._speed_baselines = reading[0], reading[1], dict(reading[2])

    def baseline_at(self, speed: float):
        return self.baselines if speed == 1.0 else self._speed_baselines.get(speed)

    @property
    def config(self):
        return self.ckpt.config

    def start_loading_text_encoder(self) -> None:
        """Build the text encoder on a helper thread while the caller goes on (a replay's first pass reads speech
        only); the first use of :attr:`text_encoder` waits for it, and raises its error. It is only built there:
        it runs where the recognizer's owner calls it."""
        if self._text is not None or self._text_loader is not None:
            return

        def load() -> None:
            try:
                self._text = self._build_text_encoder()
            except BaseException as exc:  # raised by text_encoder, in the owner's thread
                self._text_error = exc

        self._text_loader = threading.Thread(target=load, name="emomon-load-text", daemon=True)
        self._text_loader.start()

    @property
    def text_encoder(self):
        if self._text_loader is not None:
            self._text_loader.join()
            self._text_loader, error, self._text_error = None, self._text_error, None
            if error is not None:
                raise error
        if self._text is None:
            self._text = self._build_text_encoder()
        return self._text

    def _build_text_encoder(self):
        encoder = build_text_encoder(self.config.encoders.text, self.device, self.ckpt.text_layers)
        self._check("text", encoder)
        return encoder

    @property
    def speech_encoder(self):
        if self._speech is None:
            self._speech = build_speech_encoder(self.config.encoders.speech, self.device)
            self._check("speech", self._speech)
        return self._speech

    def _check(self, modality: str, encoder) -> None:
        want = self.ckpt.dims[modality]
        if encoder.dim != want:
            raise ModelError(f"the checkpoint expects {modality} features of size {want}, but its encoder gives {encoder.dim}")
        if encoder.fingerprint != self.ckpt.fingerprints[modality]:
            logger.warning("the installed %s encoder differs from the one this checkpoint was trained with (%s vs %s)",
                           modality, encoder.fingerprint, self.ckpt.fingerprints[modality])

    # ------------------------------------------------------------------------------------------------ encoders
    def encode_text(self, texts: Sequence[str | None]) -> Frames:
        """Token states; ``None`` or empty text becomes an absent (empty) sequence."""
        present = [i for i, t in enumerate(texts) if t and t.strip()]
        seqs: list[np.ndarray] = [np.zeros((0, self.ckpt.dims["text"]), np.float32) for _ in texts]
        if present:
            for i, s in zip(present, self.text_encoder.encode([texts[i] for i in present]).unbatch()):
                seqs[i] = s
        return Frames.pad(seqs, dim=self.ckpt.dims["text"])

    def encode_speech(self, audios: Sequence[np.ndarray]) -> Frames:
        return self.speech_encoder.encode(audios)

    def normalise_speakers(self, frames: Sequence[np.ndarray], speakers: Sequence[str | None], speed: float = 1.0) -> list[np.ndarray]:
        """Each utterance's speech frames relative to its speaker's baseline (at that reading speed), in order (with
        running baselines the utterances join them). Unchanged when the model has no speaker baseline; ``None`` =
        unknown speaker."""
        baseline = self.baseline_at(speed)
        if baseline is None:
            return list(frames)
        return [baseline.normalise(sp, f) for f, sp in zip(frames, speakers)]

    def speech_views(self, known: Sequence[Mapping[float, np.ndarray]], audios: Sequence[np.ndarray | None],
                     speakers: Sequence[str | None]) -> list[Frames]:
        """The batch's speech as the model reads it, one padded batch per speed of :attr:`speeds`. ``known[i]``
        holds utterance i's frames already encoded, by speed (the ASR pass's 1x frames, a replay's first pass);
        the rest is encoded here from the audio. Each view is normalised by that speed's speaker baselines. An
        utterance without audio is absent in every view."""
        dim = self.ckpt.dims["speech"]
        return [Frames.pad(seqs, dim=dim) for seqs in self.speech_view_sequences(known, audios, speakers)]

    def speech_view_sequences(self, known: Sequence[Mapping[float, np.ndarray]], audios: Sequence[np.ndarray | None],
                              speakers: Sequence[str | None]) -> list[list[np.ndarray]]:
        """:meth:`speech_views` before padding: per speed, each utterance's normalised frames (empty when it has no
        audio), so that a worker serving several sessions can pad their utterances into one batch."""
        dim = self.ckpt.dims["speech"]
        views = []
        for factor in self.speeds:
            seqs = [np.zeros((0, dim), np.float32) for _ in audios]
            todo = [i for i, a in enumerate(audios) if a is not None and len(a) and factor not in known[i]]
            if todo:
                audio = [audios[i] if factor == 1.0 else resample_speed(audios[i], factor) for i in todo]
                for i, f in zip(todo, self.encode_speech(audio).unbatch()):
                    seqs[i] = f
            for i, k in enumerate(known):
                if factor in k:
                    seqs[i] = k[factor]
            present = [i for i, s in enumerate(seqs) if len(s)]
            for i, s in zip(present, self.normalise_speakers([seqs[i] for i in present], [speakers[i] for i in present], factor)):
                seqs[i] = s
            views.append(seqs)
        return views

    # ------------------------------------------------------------------------------------------------ prediction
    @property
    def uses_word_times(self) -> bool:
        """Whether the architecture reads per-token times (the complementary model's word-frame graph)."""
        return bool(getattr(self.model, "uses_word_times", False))

    def word_time_extras(self, texts: Sequence[str | None], words: Sequence[Sequence[tuple[str, float, float]]],
                         offsets: Sequence[float], durations: Sequence[float]) -> dict:
        """``token_times``/``speech_seconds`` extras from ASR words (session seconds) and each audio's start."""
        present = [t or "" for t in texts]
        spans = self.text_encoder.token_spans(present)
        return {
            "token_times": [token_times(t, w, sp, off) for t, w, sp, off in zip(present, words, spans, offsets)],
            "speech_seconds": torch.tensor(list(durations), dtype=torch.float32),
        }

    def predict_frames(self, text: Frames, speech: Frames | Sequence[Frames], extras: dict | None = None) -> list[Prediction]:
        """Predictions from encoded text and speech; several speech views (:meth:`speech_views`) are averaged."""
        views = [speech] if isinstance(speech, Frames) else list(speech)
        probs, steps = None, {}
        with torch.inference_mode(), autocast(self.device):
            for out in self._forward_views([self.model.prepare(text, view, extras) for view in views]):
                p = out.probs.float().cpu().numpy() / len(views)
                probs = p if probs is None else probs + p
                for k, v in out.steps.items():
                    steps[k] = steps.get(k, 0.0) + v.float().cpu().numpy() / len(views)
        # a branch that had nothing to read (no text, no speech) reports no label; its mixture weight was 0 anyway
        text_absent = (text.lengths == 0).tolist()
        speech_absent = torch.stack([v.lengths for v in views]).eq(0).all(0).tolist()
        preds = []
        for i, p in enumerate(probs):
            k = int(p.argmax())
            silent = {name for name, gone in zip(BRANCHES, (text_absent[i], speech_absent[i])) if gone}
            preds.append(Prediction(
                label=self.classes[k],
                confidence=float(p[k]),
                probs={c: float(v) for c, v in zip(self.classes, p)},
                step_probs={s: {c: float(v) for c, v in zip(self.classes, sp[i])} for s, sp in steps.items() if s not in silent},
            ))
        return preds

    def _forward_views(self, inputs: list) -> list[EmotionOutput]:
        """The model's output for each view's prepared input; the views run as one batch when they stack (one
        forward per member instead of one per member and speed)."""
        per_member = [inputs] if isinstance(inputs[0], FusionInput) else list(zip(*inputs))  # an ensemble: one per member
        stacked = [stack_inputs(list(x)) for x in per_member]
        if len(inputs) == 1 or any(s is None for s in stacked):
            return [self.model(x) for x in inputs]
        out = self.model(stacked[0] if isinstance(inputs[0], FusionInput) else stacked)
        n = len(inputs)
        return [EmotionOutput(p, {k: v.chunk(n)[i] for k, v in out.steps.items()}, lp)
                for i, (p, lp) in enumerate(zip(out.probs.chunk(n), out.log_probs.chunk(n)))]

    def predict(self, audios: Sequence[np.ndarray | None], texts: Sequence[str | None],
                speakers: Sequence[str | None] | None = None) -> list[Prediction]:
        """Predictions for utterances (16 kHz float32 audio, or ``None``) with their transcripts (or ``None``).

        ``speakers`` names who says each utterance: with a speaker-baseline model, a named speaker's utterances are
        judged against their own running baseline (kept across calls); ``None`` judges each utterance on its own.
        """
        if len(audios) != len(texts):
            raise ValueError("audios and texts differ in length")
        speakers = list(speakers) if speakers is not None else [None] * len(audios)
        if len(speakers) != len(audios):
            raise ValueError("speakers and audios differ in length")
        views = self.speech_views([{}] * len(audios), audios, speakers)
        return self.predict_frames(self.encode_text(texts), views)
