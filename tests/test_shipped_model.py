"""The checkpoint that ships in the package: it loads offline, is consistent, and recognises emotion in real speech."""

from __future__ import annotations

import pytest

from emomon.models.checkpoint import load_checkpoint, packaged_checkpoints

from conftest import requires_espeak

# Sentences whose words carry the emotion, read by espeak-ng (a flat voice): the text branch must carry them.
EMOTIONAL = [
    ("I am so happy, this is the best day of my life!", "happy"),
    ("Thank you so much, I love it, this is wonderful!", "happy"),
    ("I am so sad, I miss her and I cannot stop crying.", "sad"),
    ("My grandfather died last night and I feel empty.", "sad"),
    ("I am furious with you, get out of my house right now!", "angry"),
    ("I am terrified, please help me, someone is following me.", "fear"),
    ("That is disgusting, it smells like rotten garbage.", "disgust"),
]


def test_default_checkpoint_ships_and_loads():
    assert "en-tiny" in packaged_checkpoints()
    ck = load_checkpoint("en-tiny")
    assert ck.config.model.arch == "hyfuser" and ck.classes == ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
    assert ck.config.encoders.speech.name == "whisper-encoder" and ck.config.encoders.text.name == "minilm"
    # five trainings whose probabilities are averaged (README model card), each measured alone when it was trained;
    # stored in float16 (their labels equal float32's on the card's test utterances) and loaded as float32
    import torch

    from emomon.models.checkpoint import read_checkpoint_config
    from emomon.models.ensemble import EnsembleModel

    assert isinstance(ck.model, EnsembleModel) and len(ck.model.members) == 5
    _, doc = read_checkpoint_config(ck.path)
    assert {w["dtype"] for w in [doc["weights"], *(m["weights"] for m in doc["ensemble"])]} == {"float16"}
    assert all(p.dtype == torch.float32 for p in ck.model.parameters())
    assert ck.metadata["first_member"]["test"]["ravdess"]["paired"]["fused"]["n"] == 360  # actors 19-24, 60 clips each
    # their trained adaptations travel with them: tuned MiniLM layers, the speaker baseline's prior, the branch heads
    assert ck.config.encoders.text.tune_layers == 6 and ck.text_layers is not None and ck.text_layers.is_file()
    assert ck.model.speaker_baseline is not None and ck.model.speaker_baseline.population_mean.shape == (384,)
    assert ck.config.model.branch_heads and all(m.branches is not None for m in ck.model.members)


@pytest.fixture(scope="module")
def recognizer():
    from emomon.models.inference import EmotionRecognizer

    return EmotionRecognizer("en-tiny", device="cpu")


@requires_espeak
def test_emotional_words_read_flat_are_recognised(recognizer):
    from emomon.models.data.synth import speak

    texts = [t for t, _ in EMOTIONAL]
    preds = recognizer.predict([speak(t) for t in texts], texts)
    for p in preds:
        assert abs(sum(p.probs.values()) - 1) < 1e-4
        assert set(p.step_probs) == {"step1", "step2", "hyfuser", "text_branch", "speech_branch"}
    got = [p.label for p in preds]
    right = sum(g == want for g, (_, want) in zip(got, EMOTIONAL))
    assert right >= 5, list(zip(got, [w for _, w in EMOTIONAL]))


@requires_espeak
def test_neutral_words_and_no_words(recognizer):
    from emomon.models.data.synth import speak

    text = "The meeting is in room four at ten o'clock."
    pred = recognizer.predict([speak(text)], [text])[0]
    assert pred.label == "neutral", pred.probs
    # no transcript at all (the ASR rejected it): still a distribution, from the speech alone
    alone = recognizer.predict([speak(text)], [None])[0]
    assert abs(sum(alone.probs.values()) - 1) < 1e-4


# Text alone (the ASR heard the words, no usable speech): sentences whose words leave no doubt, 2-3 per class.
OBVIOUS_TEXT = [
    ("I hate you, this makes me so angry!", "angry"), ("Get out of my house, I am furious!", "angry"),
    ("Stop it right now, you are driving me crazy!", "angry"),
    ("This is the happiest day ever, I love everyone!", "happy"), ("Thank you so much, this is wonderful!", "happy"),
    ("We won! I am so excited!", "happy"),
    ("I miss her so much, I can't stop crying.", "sad"), ("My dog died yesterday and I feel empty.", "sad"),
    ("I feel so lonely and hopeless.", "sad"),
    ("I'm scared, someone is following me.", "fear"), ("Please help me, I am terrified!", "fear"),
    ("I'm afraid I will fail the exam.", "fear"),
    ("That is disgusting, it smells like rotten garbage.", "disgust"), ("Ew, gross, there is hair in my soup.", "disgust"),
    ("Wow, I can't believe it, really?", "surprise"), ("What? You're getting married?!", "surprise"),
    ("The meeting is in room four at ten.", "neutral"), ("Please put the folder on the desk.", "neutral"),
    ("I will take the bus home.", "neutral"),
]


def test_text_branch_without_speech(recognizer):
    preds = recognizer.predict([None] * len(OBVIOUS_TEXT), [t for t, _ in OBVIOUS_TEXT])
    wrong = [(t, want, p.label) for p, (t, want) in zip(preds, OBVIOUS_TEXT) if p.label != want]
    # chance is ~3 of 19; the shipped five get 19, as did three (stage 3 alone and v3 got 18, the release before v3 16: model card)
    assert len(OBVIOUS_TEXT) - len(wrong) >= 17, wrong
