"""ASR on real (espeak-ng) speech, decoded from the shared encoder pass, with the silence/noise guards."""

import numpy as np
import pytest

from emomon.audio.decode import load_audio
from emomon.config import AsrConfig


@pytest.fixture(scope="module")
def asr():
    from emomon.models.asr.transcriber import Transcriber

    return Transcriber(AsrConfig(), cpu_threads=2)


def words(text):
    return [w.strip(".,!?").lower() for w in text.split()]


def test_transcribes_spoken_words_with_timings(asr, speech_factory):
    audio = load_audio(speech_factory("Please open the window before the meeting starts."))
    tr = asr.transcribe(audio)
    got = set(words(tr.text))
    assert {"open", "window", "before", "meeting"} <= got, tr.text
    assert not tr.rejected and tr.no_speech_prob < 0.5
    assert tr.words and all(0 <= w.start <= w.end <= len(audio) / 16000 + 0.5 for w in tr.words)
    starts = [w.start for w in tr.words]
    assert starts == sorted(starts)


def test_silence_and_noise_give_no_text(asr):
    rng = np.random.default_rng(0)
    for audio in (np.zeros(32000, np.float32), rng.normal(0, 0.02, 32000).astype(np.float32)):
        tr = asr.transcribe(audio)
        assert tr.text == "" and tr.rejected


def test_encoder_pass_is_shared(asr, speech_factory):
    """Decoding from the states of one encode() equals transcribe(): the emotion model reuses those states."""
    audio = load_audio(speech_factory("Please open the window."))
    states, n = asr.encode(audio)
    assert asr.decode(states[-1][:, :n]).text == asr.transcribe(audio).text


def test_english_only_model_refuses_other_languages():
    from emomon.errors import ModelError
    from emomon.models.asr.transcriber import Transcriber

    with pytest.raises(ModelError, match="English-only"):
        Transcriber(AsrConfig(language="pl"))
