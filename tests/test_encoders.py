"""Encoders: the Whisper port against CTranslate2, tiny random transformers checkpoints, spectral frames."""

import numpy as np
import pytest
import torch

from emomon.errors import ModelError
from emomon.config import SpeechEncoderConfig, TextEncoderConfig
from emomon.models.encoders import build_speech_encoder, build_text_encoder
from emomon.models.frames import Frames

from conftest import make_tiny_bert

@pytest.fixture(scope="module")
def whisper():
    from emomon.models.asr.encoder import WhisperSpeechEncoder

    return WhisperSpeechEncoder("tiny.en", layers=(2, 3))


def test_whisper_fingerprints_layers_for_features_weights_for_asr(whisper):
    from emomon.models.asr.encoder import WhisperSpeechEncoder

    other = WhisperSpeechEncoder("tiny.en", layers=(-1,))
    assert other.fingerprint != whisper.fingerprint  # emotion features differ by layer
    assert other.model_fingerprint == whisper.model_fingerprint  # transcripts and word times do not


def test_whisper_port_matches_ctranslate2(whisper, speech_factory):
    import ctranslate2
    from faster_whisper import WhisperModel

    from emomon.audio.decode import load_audio
    from emomon.models.asr.encoder import log_mel

    audio = load_audio(speech_factory("The quick brown fox jumps over the lazy dog."))
    mel = log_mel(audio)
    ct2 = WhisperModel(str(whisper.model_dir), device="cpu", compute_type="float32")
    ref = np.array(ct2.model.encode(ctranslate2.StorageView.from_array(mel[None]), to_cpu=True))
    states, lengths = whisper.hidden_states([audio])
    assert len(states) == 6 and int(lengths[0]) == mel.shape[1] // 2
    assert np.abs(states[-1][0].numpy() - ref[0]).max() < 1e-3


def test_whisper_frames_batch_like_single(whisper, speech_factory):
    from emomon.audio.decode import load_audio

    a = load_audio(speech_factory("Hello there."))
    b = load_audio(speech_factory("This sentence is quite a bit longer than the first one."))
    batch = whisper.encode([a, b])
    single = whisper.encode([a])
    assert batch.values.shape[2] == 384 and single.values.shape[1] == int(batch.lengths[0])
    assert batch.mask[0].sum() < batch.mask[1].sum()
    n = int(single.lengths[0])
    assert torch.allclose(batch.values[0, :n], single.values[0], atol=2e-4)
    # layers (2, 3) are averaged
    states, _ = whisper.hidden_states([a])
    assert torch.allclose(single.values[0], ((states[2] + states[3]) / 2)[0], atol=1e-5)


def test_whisper_long_audio_is_windowed(whisper):
    audio = np.random.default_rng(0).normal(0, 0.05, 16000 * 35).astype(np.float32)
    fr = whisper.encode([audio])
    assert int(fr.lengths[0]) == pytest.approx(35 * 50, abs=4)


def test_bad_whisper_layer():
    with pytest.raises(ModelError, match="does not exist"):
        build_speech_encoder(SpeechEncoderConfig(name="whisper-encoder", layers=(9,)))


def test_packaged_minilm_offline():
    enc = build_text_encoder(TextEncoderConfig(name="minilm"))
    fr = enc.encode(["I am thrilled!", "", "ok"])
    assert fr.values.shape[0] == 3 and fr.values.shape[2] == 384
    assert fr.mask.sum(1).tolist()[1] == 2  # [CLS] [SEP]
    assert torch.isfinite(fr.values).all()


@pytest.fixture
def tiny_bert(tmp_path):
    return make_tiny_bert(tmp_path, ["i", "am", "happy", "sad", "very", "!"])


def test_tiny_transformers_text_encoder(tiny_bert):
    enc = build_text_encoder(TextEncoderConfig(name=str(tiny_bert), layer=1, max_tokens=6))
    fr = enc.encode(["i am very very very very happy !", "sad"])
    assert enc.dim == 24 and fr.values.shape == (2, 6, 24)
    assert fr.mask.sum(1).tolist() == [6, 3]
    assert float(fr.values[1, 3:].abs().sum()) == 0.0  # padding is zero
    with pytest.raises(ModelError, match="hidden states 0..2"):
        build_text_encoder(TextEncoderConfig(name=str(tiny_bert), layer=5))


def test_tiny_transformers_speech_encoder(tmp_path):
    from transformers import HubertConfig, HubertModel, Wav2Vec2FeatureExtractor

    torch.manual_seed(0)
    cfg = HubertConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                       conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 4), num_conv_pos_embeddings=8,
                       num_conv_pos_embedding_groups=2, do_stable_layer_norm=False)
    out = tmp_path / "tiny-hubert"
    HubertModel(cfg).save_pretrained(out)
    Wav2Vec2FeatureExtractor(sampling_rate=16000).save_pretrained(out)
    enc = build_speech_encoder(SpeechEncoderConfig(name=str(out), layers=(1, 2)))
    assert enc.dim == 16 and enc.frame_rate == 16000 / 20
    rng = np.random.default_rng(0)
    fr = enc.encode([rng.normal(0, 0.1, 16000).astype(np.float32), rng.normal(0, 0.1, 4000).astype(np.float32)])
    assert fr.values.shape[2] == 16 and int(fr.lengths[0]) > int(fr.lengths[1]) > 0


def test_hub_name_offline_and_not_cached_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ModelError, match="not in the local Hugging Face cache"):
        build_text_encoder(TextEncoderConfig(name="monologg/koelectra-base-v3-discriminator"))
    with pytest.raises(ModelError, match="not in the local Hugging Face cache"):
        build_speech_encoder(SpeechEncoderConfig(name="facebook/hubert-base-ls960"))
    with pytest.raises(ModelError, match="could not be downloaded|not available locally"):
        build_speech_encoder(SpeechEncoderConfig(name="whisper-encoder", model="small"))


def test_spectral_frames():
    rng = np.random.default_rng(0)
    audio = rng.normal(0, 0.1, 16000).astype(np.float32)
    mfcc = build_speech_encoder(SpeechEncoderConfig(name="mfcc", n_mfcc=20)).encode([audio])
    mel = build_speech_encoder(SpeechEncoderConfig(name="logmel")).encode([audio])
    assert mfcc.values.shape[2] == 20 and mel.values.shape[2] == 80
    assert abs(int(mfcc.lengths[0]) - 100) <= 2
    # MFCC = orthonormal DCT of the log-mel frames
    from emomon.models.encoders.spectral import _dct_matrix

    assert np.allclose(mel.values[0].numpy() @ _dct_matrix(80, 20).T, mfcc.values[0].numpy(), atol=1e-4)


def test_frames_pad_and_unbatch():
    fr = Frames.pad([np.ones((2, 3)), np.zeros((0, 3)), np.full((4, 3), 2.0)], dim=3)
    assert fr.values.shape == (3, 4, 3) and fr.lengths.tolist() == [2, 0, 4]
    back = fr.unbatch()
    assert [b.shape[0] for b in back] == [2, 0, 4] and back[2].max() == 2.0
