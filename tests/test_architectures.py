"""Every registered architecture: distributions, padding invariance, gradients, checkpoints, learning a toy task;
plus the complementary model's word-timestamp graph and HFF's MC dropout."""

import dataclasses

import numpy as np
import pytest
import torch

from emomon.config import ARCHITECTURES, ModelConfig
from emomon.models.checkpoint import load_checkpoint
from emomon.training.saving import save_checkpoint
from emomon.models.frames import Frames
from emomon.models.registry import architecture_names, build_model, model_class

from conftest import untrained_preset

D = 16
ARCHS = architecture_names()
TINY = dict(text_len=8, speech_len=10, layers=1, heads=2, ff_dim=32, dropout=0.0, lstm_hidden=16, lstm_layers=2,
            gat_heads=2, gat_layers=2, moe_experts=5, moe_top_k=0, mc_passes=3, conv_kernel=3)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one thread is faster than several (and kinder to a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_cfg(arch: str, **kw) -> ModelConfig:
    return ModelConfig(**{**TINY, "arch": arch, **kw})


def tiny(arch: str, text_dim: int = D, speech_dim: int = D, n_classes: int = 7, **kw):
    torch.manual_seed(0)
    return model_class(arch)(tiny_cfg(arch, **kw), text_dim, speech_dim, n_classes).eval()


def frames(lengths, dim=D, seed=0) -> Frames:
    g = torch.Generator().manual_seed(seed)
    return Frames.pad([torch.randn(n, dim, generator=g) for n in lengths], dim=dim)


def first(f: Frames, n: int) -> Frames:
    return Frames(f.values[:1, :n], f.mask[:1, :n])


def test_registry_and_config_agree():
    assert set(ARCHS) == set(ARCHITECTURES)
    for a in ARCHS:
        assert model_class(a).arch == a


@pytest.mark.parametrize("arch", ARCHS)
def test_distributions(arch):
    m = tiny(arch)
    with torch.no_grad():
        out = m(m.prepare(frames([5, 12, 3]), frames([40, 7, 25])))
    assert out.probs.shape == (3, 7)
    assert set(out.steps) == set(m.step_names)
    for p in [out.probs, *out.steps.values()]:
        assert p.shape == (3, 7) and torch.isfinite(p).all()
        assert torch.allclose(p.sum(-1), torch.ones(3), atol=1e-5)
    assert torch.allclose(out.log_probs.exp(), out.probs, atol=1e-6)


@pytest.mark.parametrize("arch", ARCHS)
def test_padding_does_not_change_an_item(arch):
    m = tiny(arch)
    text, speech = frames([4, 7], seed=1), frames([13, 30], seed=2)
    with torch.no_grad():
        together = m(m.prepare(text, speech))
        alone = m(m.prepare(first(text, 4), first(speech, 13)))
    assert torch.allclose(together.probs[0], alone.probs[0], atol=1e-5)
    for k in together.steps:
        assert torch.allclose(together.steps[k][0], alone.steps[k][0], atol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
def test_gradients_reach_every_parameter(arch):
    m = tiny(arch, step_loss_weight=0.5).train()
    torch.manual_seed(1)
    out = m(m.prepare(frames([5, 8, 2], seed=3), frames([20, 33, 9], seed=4)))
    m.loss(out, torch.tensor([1, 4, 6]), label_smoothing=0.1).backward()
    bad = [n for n, p in m.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all() or p.grad.abs().sum() == 0]
    assert bad == []


@pytest.mark.parametrize("arch, ignored", [("text_bilstm", "speech"), ("speech_cnn", "text")])
def test_single_modality_models_ignore_the_other(arch, ignored):
    m = tiny(arch)
    t, s = frames([5, 3], seed=5), frames([12, 20], seed=6)
    other = (t, frames([30, 4], seed=7)) if ignored == "speech" else (frames([2, 8], seed=8), s)
    with torch.no_grad():
        assert torch.equal(m(m.prepare(t, s)).probs, m(m.prepare(*other)).probs)


@pytest.mark.parametrize("arch", ["merhan", "hff", "text_bilstm", "speech_cnn", "avg_ensemble", "weighted_ensemble"])
def test_text_and_speech_widths_may_differ(arch):
    m = tiny(arch, text_dim=D, speech_dim=12)
    with torch.no_grad():
        out = m(m.prepare(frames([5, 3]), frames([30, 11], dim=12)))
    assert out.probs.shape == (2, 7) and torch.isfinite(out.probs).all()


@pytest.mark.parametrize("arch", ARCHS)
def test_checkpoint_round_trip(arch, tmp_path):
    cfg = dataclasses.replace(untrained_preset(), model=tiny_cfg(arch, moe_top_k=2))
    torch.manual_seed(0)
    model = build_model(cfg, D, D, len(cfg.classes)).eval()
    path = save_checkpoint(tmp_path / arch, model, cfg, {"text": "t:1", "speech": "s:1"})
    ck = load_checkpoint(path)
    assert type(ck.model) is type(model) and ck.config.model == cfg.model
    t, s = frames([3, 6], seed=9), frames([9, 14], seed=10)
    with torch.no_grad():
        a, b = model(model.prepare(t, s)), ck.model(ck.model.prepare(t, s))
    assert torch.equal(a.probs, b.probs)


# ------------------------------------------------------------------------------------------------ learning
def _toy(n: int, k: int, seed: int):
    """Class y adds a bump on feature y of every text token and every speech frame."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    texts, speeches = [], []
    for label in y:
        t = rng.normal(0, 1, (rng.integers(3, 8), D))
        s = rng.normal(0, 1, (rng.integers(8, 24), D))
        t[:, label] += 2.0
        s[:, label] += 2.0
        texts.append(t)
        speeches.append(s)
    return Frames.pad(texts, D), Frames.pad(speeches, D), torch.tensor(y)


@pytest.mark.parametrize("arch", ARCHS)
def test_learns_a_separable_toy_task(arch):
    k, n, bs = 4, 64, 32
    m = tiny(arch, n_classes=k, moe_top_k=2).train()
    text, speech, y = _toy(n, k, seed=0)
    batches = [(m.prepare(Frames(text.values[i:i + bs], text.mask[i:i + bs]), Frames(speech.values[i:i + bs], speech.mask[i:i + bs])), y[i:i + bs])
               for i in range(0, n, bs)]
    full = m.prepare(text, speech)

    def eval_loss() -> float:
        m.eval()
        with torch.no_grad():
            loss = m.loss(m(full), y).item()
        m.train()
        return loss

    before = eval_loss()
    opt = torch.optim.Adam(m.parameters(), 5e-3)
    for _ in range(12):
        for x, yb in batches:
            loss = m.loss(m(x), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    after = eval_loss()
    assert after < 0.7 * before, (before, after)


# ------------------------------------------------------------------------------------------------ complementary
def test_word_timestamps_set_the_adjacency():
    m = tiny("complementary")
    text, speech = frames([4, 3]), frames([20, 20])
    times = [np.array([[np.nan, np.nan], [0.0, 0.5], [1.2, 1.8], [np.nan, np.nan]]), np.array([[0.0, 0.1], [0.12, 0.14], [0.9, 1.0]])]
    x = m.prepare(text, speech, {"token_times": times, "speech_seconds": torch.tensor([2.0, 1.0])})
    adj = x.extras["adjacency"]
    assert adj.shape == (2, 4, 10) and adj.dtype == torch.bool
    # item 0: 2 s over 10 frames of 0.2 s, centres 0.1, 0.3, 0.5, ...: [0, 0.5) holds 0.1, 0.3; [1.2, 1.8) holds 1.3-1.7
    assert adj[0, 1].nonzero().flatten().tolist() == [0, 1]
    assert adj[0, 2].nonzero().flatten().tolist() == [6, 7, 8]
    # untimed tokens ([CLS]/[SEP]) take their uniform slice: token 0 of 4 -> [0, 0.5) s, token 3 -> [1.5, 2) s
    assert adj[0, 0].nonzero().flatten().tolist() == [0, 1]
    assert adj[0, 3].nonzero().flatten().tolist() == [7, 8, 9]
    # item 1: 1 s, frame centres 0.05, 0.15, ...; a word too short to hold a centre joins the frame holding its midpoint
    assert adj[1, 0].nonzero().flatten().tolist() == [0]
    assert adj[1, 1].nonzero().flatten().tolist() == [1]
    assert adj[1, 2].nonzero().flatten().tolist() == [9]
    assert not adj[1, 3].any()  # padding token


def test_without_timestamps_tokens_spread_uniformly():
    m = tiny("complementary")
    text, speech = frames([5, 2]), frames([20, 7])
    x = m.prepare(text, speech)
    adj = x.extras["adjacency"]
    assert adj.shape == (2, 5, 10)
    # item 0: 5 tokens over 10 frames -> 2 consecutive frames each; item 1: 2 tokens -> 5 each
    for i in range(5):
        assert adj[0, i].nonzero().flatten().tolist() == [2 * i, 2 * i + 1]
    assert adj[1, 0].nonzero().flatten().tolist() == [0, 1, 2, 3, 4]
    assert adj[1, 1].nonzero().flatten().tolist() == [5, 6, 7, 8, 9]
    assert not adj[1, 2:].any()
    # times without a duration are ignored; the timed graph differs from the uniform one and changes the output
    same = m.prepare(text, speech, {"token_times": [np.zeros((5, 2)), None]})
    assert torch.equal(same.extras["adjacency"], adj)
    timed = m.prepare(text, speech, {"token_times": [np.array([[0.0, 0.1]] * 5), None], "speech_seconds": [1.0, 1.0]})
    assert not torch.equal(timed.extras["adjacency"], adj)
    assert torch.equal(timed.extras["adjacency"][1], adj[1])
    with torch.no_grad():
        assert not torch.allclose(m(timed).probs[0], m(x).probs[0])
        # an input built without prepare (no adjacency) gets the same uniform graph
        x.extras.pop("adjacency")
        assert torch.allclose(m(x).probs, m(m.prepare(text, speech)).probs)


def test_absent_speech_joins_every_token_to_the_placeholder_frame():
    m = tiny("complementary")
    x = m.prepare(frames([4]), Frames.pad([np.zeros((0, D))], dim=D))
    adj = x.extras["adjacency"]
    assert adj[0, :, 0].all() and not adj[0, :, 1:].any()
    with torch.no_grad():
        assert torch.isfinite(m(x).probs).all()


def test_top_k_gating_routes_to_k_experts():
    m = tiny("complementary", moe_top_k=2)
    g = m.spl_moe.gates(torch.randn(6, m.spl_moe.gate.in_features))
    assert ((g > 0).sum(-1) == 2).all() and torch.allclose(g.sum(-1), torch.ones(6))
    dense = tiny("complementary", moe_top_k=0).spl_moe.gates(torch.randn(6, m.spl_moe.gate.in_features))
    assert (dense > 0).all()


# ------------------------------------------------------------------------------------------------ HFF, MER-HAN
def test_hff_mc_dropout_is_reproducible_under_a_seed_and_off_with_one_pass():
    m = tiny("hff", dropout=0.3, mc_passes=8)
    x = m.prepare(frames([5, 3]), frames([12, 20]))
    with torch.no_grad():
        torch.manual_seed(3)
        a = m(x).probs
        torch.manual_seed(3)
        b = m(x).probs
        torch.manual_seed(4)
        c = m(x).probs
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.allclose(a.sum(-1), torch.ones(2), atol=1e-5)
    one = tiny("hff", dropout=0.3, mc_passes=1)
    with torch.no_grad():
        assert torch.equal(one(x).probs, one(x).probs)
    # K passes: mean and variance (mean predicted variance + spread of the K means) per feature
    head = m.text_uncertainty
    v = torch.randn(4, head.fc1.in_features)
    with torch.no_grad():
        mu_k, var_k = head(v, 64)
    assert mu_k.shape == var_k.shape == (4, head.fc1.in_features) and (var_k > 0).all()


def test_merhan_keeps_speech_at_its_own_rate():
    m = tiny("merhan")
    x = m.prepare(frames([3]), frames([37]))
    assert x.speech.shape[1] == 37 and x.speech_mask.all()
    assert model_class("merhan").aligns_speech is False
    assert all(model_class(a).aligns_speech for a in ARCHS if a != "merhan")


def test_seed_sizes_by_default():
    cfg = ModelConfig()
    assert (cfg.moe_experts, cfg.lstm_hidden, cfg.lstm_layers) == (5, 256, 2)
    m = model_class("merhan")(dataclasses.replace(cfg, arch="merhan"), 384, 40, 7)
    assert m.speech_lstm.hidden_size == 256 and m.speech_lstm.num_layers == 2 and m.speech_lstm.bidirectional
    c = model_class("complementary")(dataclasses.replace(cfg, arch="complementary"), 384, 384, 7)
    assert len(c.cat_moe.experts) == len(c.spl_moe.experts) == 5 and c.spl_moe.experts[0][0].in_features == 5 * 384


# ------------------------------------------------------------------------------------------ the live path, every arch
@pytest.fixture(scope="module")
def short_talk(speech_factory):
    from emomon.audio.decode import load_audio

    parts = [np.zeros(8000, np.float32)]
    for text in ("I am so happy to see you today.", "Please close the door behind you."):
        parts += [load_audio(speech_factory(text)), np.zeros(16000, np.float32)]
    return np.concatenate(parts)


@pytest.mark.parametrize("arch", architecture_names())
def test_live_path_runs_with_each_architecture(tmp_path, arch, short_talk):
    """A random-weight checkpoint of each architecture, on the real encoders, through the live pipeline."""
    import csv
    import dataclasses
    import threading
    import time

    from emomon.training.saving import save_checkpoint
    from emomon.models.encoders import build_speech_encoder, build_text_encoder
    from emomon.models.registry import build_model
    from emomon.monitor.pipeline import Session, step_names_of
    from emomon.monitor.sinks import CsvSink
    from emomon.monitor.sources import MicSource

    cfg = untrained_preset()
    speech_cfg = dataclasses.replace(cfg.encoders.speech, name="mfcc") if arch == "merhan" else cfg.encoders.speech
    cfg = dataclasses.replace(cfg, encoders=dataclasses.replace(cfg.encoders, speech=speech_cfg),
                              model=dataclasses.replace(cfg.model, arch=arch, mc_passes=2))
    text_enc, speech_enc = build_text_encoder(cfg.encoders.text), build_speech_encoder(cfg.encoders.speech)
    torch.manual_seed(0)
    model = build_model(cfg, text_enc.dim, speech_enc.dim, len(cfg.classes))
    ckpt = save_checkpoint(tmp_path / arch, model, cfg, {"text": text_enc.fingerprint, "speech": speech_enc.fingerprint})
    run_cfg = dataclasses.replace(cfg, runtime=dataclasses.replace(cfg.runtime, model=str(ckpt)))

    class Fake:
        def __init__(self, cb, n):
            self.cb, self.n, self.active = cb, n, False

        def _run(self):
            pos = 0
            while self.active:
                block = short_talk[pos : pos + self.n] if pos < len(short_talk) else np.zeros(self.n, np.float32)
                block = np.pad(block, (0, self.n - len(block)))
                self.cb(block[:, None], self.n, None, None)
                pos += self.n
                time.sleep(self.n / 16000 / 8)

        def __enter__(self):
            self.active = True
            threading.Thread(target=self._run, daemon=True).start()
            return self

        def __exit__(self, *exc):
            self.active = False

    session = Session(run_cfg, [MicSource("fake", 0, "S1", chunk_ms=30, stream_factory=Fake)], live=True)
    session.load()
    out = tmp_path / "s.csv"
    session.sinks.append(CsvSink(out, session.session_id, cfg.classes, step_names_of(cfg.model)))
    session.start()
    deadline = time.monotonic() + 60
    while session.stats.utterances < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    session.stop("done")
    session.wait()
    rows = [r for r in csv.DictReader(open(out)) if r["utterance"]]
    assert len(rows) == 2
    for r in rows:
        assert abs(sum(float(r[f"p_{c}"]) for c in cfg.classes) - 1) < 2e-3 and r["emotion"] in cfg.classes
        for step in step_names_of(cfg.model):
            assert r[f"{step}_emotion"] in cfg.classes


def test_full_speed_replay_reads_word_time_models_at_one_speed(tmp_path, short_talk):
    """The replay's speed TTA resamples audio, which would shift the word times the complementary model's graph reads:
    such a model keeps the whole-recording reading at one speed."""
    import dataclasses

    from emomon.training.saving import save_checkpoint
    from emomon.training.data.synth import write_wav
    from emomon.models.encoders import build_speech_encoder, build_text_encoder
    from emomon.models.registry import build_model
    from emomon.monitor.pipeline import Session
    from emomon.monitor.sources import FileSource

    cfg = untrained_preset()
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, arch="complementary", speaker_baseline=2.0))
    text_enc, speech_enc = build_text_encoder(cfg.encoders.text), build_speech_encoder(cfg.encoders.speech)
    torch.manual_seed(0)
    model = build_model(cfg, text_enc.dim, speech_enc.dim, len(cfg.classes))
    from emomon.models.speaker_baseline import SpeakerBaselineOptions

    model.speaker_baseline = SpeakerBaselineOptions(np.zeros(speech_enc.dim, np.float32), 2.0)
    ckpt = save_checkpoint(tmp_path / "complementary", model, cfg, {"text": text_enc.fingerprint, "speech": speech_enc.fingerprint})
    run_cfg = dataclasses.replace(cfg, runtime=dataclasses.replace(cfg.runtime, model=str(ckpt)),
                                  replay=dataclasses.replace(cfg.replay, tta_speeds=cfg.replay.best_speeds))
    assert run_cfg.replay.tta_speeds  # speed TTA asked for (emomon replay --best)
    talk = write_wav(tmp_path / "talk.wav", short_talk)
    session = Session(run_cfg, [FileSource(talk, 0)], live=False)
    session.load()
    session.prepare_replay([FileSource(talk, 0)])  # the replay command's first pass
    session.start()
    session.wait()
    assert session.worker.recognizer.speeds == (1.0,)
    assert session.reading == "whole-recording speaker baselines, one speed" and session.stats.utterances >= 1
