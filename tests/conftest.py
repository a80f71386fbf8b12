"""Shared fixtures: real speech made with espeak-ng, the shared data folder, tiny configs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("EMOMON_DATA", REPO.parent / "shared" / "data"))

requires_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
requires_shared = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data is not present")


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    """No test may reach the network or the user's caches."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("EMOMON_CACHE", str(tmp_path / "emomon-cache"))


@pytest.fixture(scope="session")
def speech_factory(tmp_path_factory):
    """speech_factory(text, voice='en-us') -> Path of a 16 kHz wav of ``text`` read by espeak-ng (cached)."""
    from emomon.training.data.synth import speak, write_wav

    root = tmp_path_factory.mktemp("speech")
    made: dict[tuple, Path] = {}

    def make(text: str, voice: str = "en-us", rate: int = 165, pitch: int = 50) -> Path:
        key = (text, voice, rate, pitch)
        if key not in made:
            if shutil.which("espeak-ng") is None:
                pytest.skip("espeak-ng is not installed")
            path = root / f"utt{len(made):03d}.wav"
            write_wav(path, speak(text, voice=voice, rate=rate, pitch=pitch))
            made[key] = path
        return made[key]

    return make


def make_tiny_bert(directory: Path, words: list[str]) -> Path:
    """A randomly initialised 2-layer, 24-wide BERT and its word-level tokenizer, saved like a hub checkpoint."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)})  # transformers 5 ignores a bare vocab_file
    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=len(vocab), hidden_size=24, num_hidden_layers=2, num_attention_heads=2, intermediate_size=48))
    out = Path(directory) / "tiny-bert"
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def split_modality_task(rng: np.random.Generator, n: int, k: int, dim: int):
    """A separable synthetic task: class y bumps feature y of the speech frames for even examples and of the text
    tokens for odd ones (each modality alone knows half). Returns text and speech Frames and the label tensor."""
    import torch

    from emomon.models.frames import Frames

    labels = rng.integers(0, k, n)
    texts, speeches = [], []
    for i, y in enumerate(labels):
        t = rng.normal(0, 1, (rng.integers(3, 9), dim))
        s = rng.normal(0, 1, (rng.integers(10, 40), dim))
        (t if i % 2 else s)[:, y] += 2.5
        texts.append(t)
        speeches.append(s)
    return Frames.pad(texts, dim), Frames.pad(speeches, dim), torch.tensor(labels)


def fit_fusion_model(model, text, speech, labels, epochs: int, lr: float = 3e-3, batch: int = 32):
    """Plain Adam over mini-batches of padded Frames with the model's own loss; returns the model in eval mode."""
    import torch

    from emomon.models.frames import Frames

    opt = torch.optim.Adam(model.parameters(), lr)
    for _ in range(epochs):
        for i in range(0, len(labels), batch):
            sl = slice(i, i + batch)
            out = model(model.prepare(Frames(text.values[sl], text.mask[sl]), Frames(speech.values[sl], speech.mask[sl])))
            loss = model.loss(out, labels[sl])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * 16000), np.float32)


def untrained_preset(name: str = "en-tiny"):
    """A preset's shape without what only its training makes: the text encoder frozen (no tuned layers to load) and
    no speaker baseline (no population mean). For tests that build checkpoints from random weights."""
    import dataclasses

    from emomon.config import load_config

    cfg = load_config(name)
    return dataclasses.replace(cfg, encoders=dataclasses.replace(cfg.encoders, text=dataclasses.replace(cfg.encoders.text, tune_layers=0)),
                               model=dataclasses.replace(cfg.model, speaker_baseline=0.0))


def hand_built_training_data(labels=("angry", "happy", "neutral"), per_split: int = 12, signal: float = 1.0):
    """A tiny preset and ready features for ``training.train`` without encoders: acted clips reading one fixed
    sentence (RAVDESS-like), clips without text (ASED-like) and sentences without audio (MELD-like), 8-d frames in
    which class y raises feature y by ``signal``. Returns (config, PreparedData) for 1-epoch runs of 48 examples."""
    import dataclasses

    from emomon.training.data import Item
    from emomon.training.feature_bank import FeatureBank
    from emomon.training.sources import Source
    from emomon.training.features import text_key
    from emomon.training.loop import PreparedData

    dim, rng = 8, np.random.default_rng(4)
    bank = FeatureBank()
    by_source = {"ravdess": [], "ased": [], "meld": []}

    def frames(n: int, label: str) -> np.ndarray:
        x = rng.normal(0, 1, (n, dim))
        x[:, labels.index(label)] += signal
        return x.astype(np.float16)

    for split in ("train", "val", "test"):
        for i in range(per_split):
            label = labels[i % len(labels)]
            acted = Item(f"acted-{split}{i}", "ravdess", label, "a1", text="kids are talking by the door", split=split)
            mute = Item(f"mute-{split}{i}", "ased", label, "m1", split=split)
            line = Item(f"text-{split}{i}", "meld", label, "t1", text=f"{split} sentence {i} in {label}", split=split)
            for it in (acted, mute):
                bank.speech_keys[it.id] = [f"{it.id}:clean"]
                bank.speech[f"{it.id}:clean"] = frames(20, label)
            bank.text_of[acted.id] = acted.text
            bank.text[text_key(acted.text)] = rng.normal(0, 1, (5, dim)).astype(np.float16)
            bank.text_of[line.id] = line.text
            bank.text[text_key(line.text)] = frames(5, label)
            by_source["ravdess"].append(acted), by_source["ased"].append(mute), by_source["meld"].append(line)
    cfg = untrained_preset()
    presets = {s.corpus: s for s in cfg.data.sources}
    cfg = dataclasses.replace(
        cfg, model=dataclasses.replace(cfg.model, text_len=6, speech_len=6, layers=1, ff_dim=16, branch_heads=True),
        train=dataclasses.replace(cfg.train, max_epochs=1, epoch_size=48, batch_size=16))
    data = PreparedData([Source(name, presets[name], items) for name, items in by_source.items()], bank,
                        {"text": "text:test", "speech": "speech:test"}, dim, dim)
    return cfg, data


@pytest.fixture(scope="session")
def random_checkpoint(tmp_path_factory):
    """A HyFusER checkpoint with random weights on the default encoders: for pipeline behaviour, not accuracy.
    It keeps a speaker baseline (population mean 0), so the runtime's per-speaker path is exercised."""
    import dataclasses

    import torch

    from emomon.training.saving import save_checkpoint
    from emomon.models.encoders import build_speech_encoder, build_text_encoder
    from emomon.models.registry import build_model
    from emomon.models.speaker_baseline import SpeakerBaselineOptions

    cfg = untrained_preset()
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, speaker_baseline=3.0))
    torch.manual_seed(0)
    model = build_model(cfg, 384, 384, len(cfg.classes))
    model.speaker_baseline = SpeakerBaselineOptions(np.zeros(384, np.float32), 3.0)
    fps = {"text": build_text_encoder(cfg.encoders.text).fingerprint, "speech": build_speech_encoder(cfg.encoders.speech).fingerprint}
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "random", model, cfg, fps)


def run_emomon(*args, timeout=300, env=None, **kw):
    """``python -m emomon ARGS`` in a subprocess, offline."""
    import subprocess
    import sys

    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "emomon", *args], capture_output=True, text=True, timeout=timeout, env=full_env, **kw)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]
