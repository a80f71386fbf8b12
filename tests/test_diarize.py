"""Online speaker diarization: clustering rules with a fake embedder, and two real espeak-ng voices."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from emomon.config import DiarizationConfig
from emomon.monitor.diarize import OnlineDiarizer, speaker_label, speaker_name


def _vec(*xs: float) -> np.ndarray:
    v = np.zeros(8, np.float32)
    v[: len(xs)] = xs
    return v


class FakeEmbedder:
    """Returns the embedding encoded in the 'audio': audio[0] indexes a table of fixed vectors."""

    def __init__(self, table: dict[int, np.ndarray]):
        self.table = table
        self.calls = 0

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        self.calls += 1
        return self.table[int(audio[0])]


def _utt(key: int, seconds: float = 2.0) -> tuple[np.ndarray, float]:
    a = np.zeros(int(seconds * 16000), np.float32)
    a[0] = key
    return a, seconds


TABLE = {
    0: _vec(1, 0, 0),       # voice X
    1: _vec(0.95, 0.31, 0),  # voice X again (cos 0.95 to 0)
    2: _vec(0, 1, 0),       # voice Y (cos 0 to X)
    3: _vec(0, 0.95, 0.31),  # voice Y again
    4: _vec(0, 0, 1),       # voice Z
    5: _vec(0.6, 0.8, 0),   # between X and Y (cos 0.6 to X, 0.8 to Y)
}


def _diarizer(**kw) -> OnlineDiarizer:
    return OnlineDiarizer(DiarizationConfig(**{"threshold": 0.75, "max_speakers": 8, "min_seconds": 0.8, **kw}),
                          embedder=FakeEmbedder(TABLE))


def test_labels_and_names():
    assert [speaker_label(i) for i in (0, 1, 25, 26, 27, 51, 52)] == ["A", "B", "Z", "AA", "AB", "AZ", "BA"]
    assert speaker_name("Teacher", "A") == "Teacher/A"
    assert speaker_name("S1", "B") == "S1/B"
    assert speaker_name("Teacher", None) == "Teacher"
    assert speaker_name("Teacher", "") == "Teacher"


def test_threshold_joins_or_opens():
    d = _diarizer()
    assert [d.assign(*_utt(k)) for k in (0, 1, 2, 3, 0, 4)] == ["A", "A", "B", "B", "A", "C"]
    assert d.labels == ["A", "B", "C"]
    # 5 is 0.8 from Y's centroid (about 0.78 after Y drifted) and ~0.6 from X: joins B at 0.75 ...
    assert d.assign(*_utt(5)) == "B"
    # ... but opens a new speaker with a stricter threshold
    d2 = _diarizer(threshold=0.9)
    assert [d2.assign(*_utt(k)) for k in (0, 2, 5)] == ["A", "B", "C"]


def test_max_speakers_joins_nearest():
    d = _diarizer(max_speakers=2)
    assert [d.assign(*_utt(k)) for k in (0, 2, 4, 5, 1)] == ["A", "B", "A", "B", "A"]  # 4 is orthogonal: ties -> first
    assert len(d.speakers) == 2
    d1 = _diarizer(max_speakers=1)
    assert {d1.assign(*_utt(k)) for k in (0, 2, 4)} == {"A"}


def test_short_utterances_join_nearest_without_updating():
    d = _diarizer(min_seconds=1.0)
    assert d.assign(*_utt(0)) == "A"
    assert d.assign(*_utt(2)) == "B"
    before = [s.centroid.copy() for s in d.speakers]
    assert d.assign(*_utt(4, 0.5)) == "A"  # a new voice but short: no new speaker, nearest (tie -> first)
    assert d.assign(*_utt(3, 0.5)) == "B"
    for s, c in zip(d.speakers, before):
        np.testing.assert_allclose(s.centroid, c)
    assert len(d.speakers) == 2


def test_short_first_utterance_is_provisional():
    d = _diarizer()
    assert d.assign(*_utt(5, 0.3)) == "A"  # nothing to join: opens A with a provisional centroid
    assert d.assign(*_utt(0)) == "B"  # cos(5, 0) = 0.6 < 0.75 -> a new speaker
    d = _diarizer()
    d.assign(*_utt(5, 0.3))
    assert d.assign(*_utt(2)) == "A"  # cos 0.8 to the provisional centroid: joins, and replaces it
    np.testing.assert_allclose(d.speakers[0].centroid, TABLE[2] / np.linalg.norm(TABLE[2]), atol=1e-6)


def test_labels_stable_and_deterministic():
    seq = [0, 2, 1, 4, 3, 0, 5, 2, 4, 1]
    runs = []
    for _ in range(2):
        d = _diarizer()
        runs.append([d.assign(*_utt(k)) for k in seq])
    assert runs[0] == runs[1]
    # a label once given to a voice stays with it: X is always A, Y always B, Z always C
    first = {}
    for k, lab in zip(seq, runs[0]):
        voice = {0: "X", 1: "X", 2: "Y", 3: "Y", 4: "Z"}.get(k)
        if voice:
            assert first.setdefault(voice, lab) == lab
    assert first == {"X": "A", "Y": "B", "Z": "C"}


def test_embedder_is_lazy():
    emb = FakeEmbedder(TABLE)
    d = OnlineDiarizer(DiarizationConfig(), embedder=emb)
    assert emb.calls == 0
    d.assign(*_utt(0))
    assert emb.calls == 1
    assert OnlineDiarizer(DiarizationConfig())._embedder is None  # the real encoder loads on the first assign


# ------------------------------------------------------------------------------------------------ real voices
SENTENCES = [
    "The weather is lovely this morning.",
    "Please pass me the blue notebook on the table.",
    "I think we should leave before it starts to rain.",
    "Have you finished reading the chapter yet?",
    "My brother bought a new bicycle last week.",
    "The train to the city was late again today.",
    "Could you explain that last point once more?",
    "We planted tomatoes and beans in the garden.",
    "That was the best concert I have ever been to.",
    "Remember to lock the door when you go out.",
    "The children played football in the park until dark.",
    "I am not sure the answer is correct.",
    "Our meeting has been moved to Thursday afternoon.",
    "She painted the kitchen a bright yellow.",
    "Do you want tea or coffee with your breakfast?",
    "The museum opens at nine on weekdays.",
]
# Irregular turns: runs of one, two and three utterances by each voice.
TURNS = [0, 0, 1, 0, 1, 1, 1, 0, 1, 0, 0, 0, 1, 1, 0, 1]
# espeak-ng 1.51 ignores '+variant' after 'en-gb' (en-gb+f3 == en-gb), so the female voice is 'en+f4'.
VOICES = ("en-us+m3", "en+f4")


def _mapped_accuracy(labels: list[str], truth: list[int]) -> float:
    """Accuracy under the best one-to-one mapping from labels to true voices (unmapped labels count as wrong)."""
    names = sorted(set(labels))
    best = 0
    for perm in itertools.permutations(range(max(len(names), 2)), len(names)):
        m = dict(zip(names, perm))
        best = max(best, sum(m[lab] == t for lab, t in zip(labels, truth)))
    return best / len(truth)


@pytest.mark.slow
def test_two_espeak_voices_are_separated(speech_factory):
    pytest.importorskip("resemblyzer")
    from emomon.audio.decode import load_audio

    d = OnlineDiarizer(DiarizationConfig())
    labels = []
    for text, voice in zip(SENTENCES, TURNS):
        audio = load_audio(speech_factory(text, voice=VOICES[voice]))
        labels.append(d.assign(audio, len(audio) / 16000))
    acc = _mapped_accuracy(labels, TURNS)
    assert acc >= 0.9, (labels, TURNS)
    assert labels[0] == "A" and len(d.speakers) <= 3


def test_encoder_weights_load_with_weights_only(monkeypatch):
    pytest.importorskip("resemblyzer")
    import torch

    from emomon.models.speaker_embedding import ResemblyzerEmbedder

    seen = []
    real_load = torch.load

    def spy(*args, **kwargs):
        seen.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    emb = ResemblyzerEmbedder()
    assert emb._encoder is None  # lazy
    v = emb(np.zeros(16000, np.float32) + 0.01 * np.sin(np.arange(16000, dtype=np.float32) / 7))
    assert seen == [True]
    assert v.shape == (256,) and abs(float(np.linalg.norm(v)) - 1) < 1e-4
    assert next(emb.encoder.parameters()).device.type == "cpu"
