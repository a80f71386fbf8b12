"""Int8 fusion members on CPU (models/quantize.py): every linear layer is replaced, and the shipped ensemble gives
the float model's labels and near-equal probabilities on real speech."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emomon.models.quantize import quantize_linear_int8

requires_espeak = pytest.mark.skipif(__import__("shutil").which("espeak-ng") is None, reason="espeak-ng missing")

SENTENCES = ["I am so happy to see you again today", "Get out of here right now, I hate this",
             "I miss her so much, everything feels empty", "The meeting is on Thursday at three",
             "Oh wow, I really did not expect that at all", "That smell is absolutely revolting"]


def test_every_linear_layer_of_every_member_becomes_int8():
    from emomon.models.ensemble import EnsembleModel

    members = [torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3)) for _ in range(2)]
    for m in members:  # EnsembleModel compares the members' settings: give the toy members the attributes it reads
        m.cfg, m.text_dim, m.speech_dim, m.n_classes, m.arch, m.step_names = None, 8, 8, 3, "toy", ()
    ens = EnsembleModel(members)
    x = torch.randn(4, 8)
    want = [m(x) for m in ens.members]
    quantize_linear_int8(ens)
    assert not [n for n, m in ens.named_modules() if type(m) is torch.nn.Linear]
    for m, w in zip(ens.members, want):
        got = m(x)
        assert got.dtype == torch.float32 and torch.allclose(got, w, atol=0.05), (got, w)


@requires_espeak
def test_the_shipped_model_in_int8_gives_the_float_labels():
    from emomon.models.inference import EmotionRecognizer
    from emomon.training.data.synth import speak

    audios = [speak(t) for t in SENTENCES]
    exact = EmotionRecognizer("hyfuser-tiny-en", device="cpu")
    fast = EmotionRecognizer("hyfuser-tiny-en", device="cpu", int8=True)
    assert fast.int8 and not exact.int8
    a = exact.predict(audios, SENTENCES)
    b = fast.predict(audios, SENTENCES)
    assert [p.label for p in a] == [p.label for p in b]
    diff = max(abs(p.probs[c] - q.probs[c]) for p, q in zip(a, b) for c in p.probs)
    assert 0 < diff < 0.1, diff  # int8 really ran (not the float model twice), and stayed close
    assert all(np.isfinite(list(q.probs.values())).all() for q in b)
