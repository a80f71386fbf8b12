"""`emomon train` and `emomon eval` end to end on a tiny manifest of espeak-ng speech, and their error lines."""

import csv
import json
import subprocess
import sys

import pytest
import torch

from emomon.cli import main

from conftest import requires_espeak

SENTENCES = [
    ("I am so happy today, this is wonderful!", "happy", "en-us"),
    ("What a lovely and delightful surprise party.", "happy", "en-gb"),
    ("I feel so sad and lonely since she left.", "sad", "en-us"),
    ("Everything is hopeless and I want to cry.", "sad", "en-gb"),
    ("Get out of here, I am furious with you!", "angry", "en-us"),
    ("Stop lying to me, this makes me so angry.", "angry", "en-gb"),
    ("The meeting is at ten in room four.", "neutral", "en-us"),
    ("Please put the folder on the desk.", "neutral", "en-gb"),
]


@pytest.fixture
def manifest(tmp_path, speech_factory):
    path = tmp_path / "manifest.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["audio", "text", "label", "speaker", "split"])
        for i, (text, label, voice) in enumerate(SENTENCES):
            for split in ("train", "val", "test"):
                w.writerow([speech_factory(text, voice=voice), text, label, f"{voice}-{split}", split])
    return path


def tiny_preset(manifest, train: str, data: str) -> str:
    """A tiny HyFusER preset on the manifest, with these [train] and [data] lines."""
    return f"""
name = "tiny"
classes = ["angry", "happy", "neutral", "sad"]
[encoders.speech]
layers = [2, 3]
[model]
text_len = 16
speech_len = 12
layers = 1
ff_dim = 64
speaker_baseline = 2.0
[train]
{train}
[data]
{data}
[[data.sources]]
corpus = "manifest"
path = "{manifest}"
"""


@requires_espeak
def test_train_then_eval_on_a_manifest(tmp_path, manifest, capsys):
    preset = tmp_path / "tiny.toml"
    preset.write_text(tiny_preset(manifest, train="lr = 1e-3\nmax_epochs = 3\npatience = 3\nepoch_size = 64",
                                  data="augment_copies = 1"))
    out = tmp_path / "ckpt"
    assert main(["train", str(preset), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "test manifest" in printed and (out / "model.safetensors").is_file() and (out / "metrics.json").is_file()
    doc = json.loads((out / "config.json").read_text())
    assert doc["config"]["classes"] == ["angry", "happy", "neutral", "sad"]
    assert len(doc["speaker_baseline"]["population_mean"]) == 384 and doc["speaker_baseline"]["prior_weight"] == 2.0
    assert set(doc["metadata"]["test"]["manifest"]) == {"paired", "text-only", "speech-only"}
    report = tmp_path / "eval.json"
    assert main(["eval", str(out), "--manifest", str(manifest), "--split", "test", "--json", str(report), "--mode", "paired"]) == 0
    got = json.loads(report.read_text())
    fused = got["results"]["manifest"]["paired"]["fused"]
    assert fused["n"] == 8 and 0.0 <= fused["accuracy"] <= 1.0
    assert set(got["results"]["manifest"]["paired"]["steps"]) == {"step1", "step2"}
    # every accuracy comes with its interval over the test speakers (models/metrics.bootstrap_interval)
    interval = got["results"]["manifest"]["paired"]["accuracy_interval"]
    assert interval["estimate"] == pytest.approx(fused["accuracy"])
    assert interval["low"] <= fused["accuracy"] <= interval["high"]
    assert interval["level"] == 0.95 and interval["groups"] >= 1
    assert f"[95% {interval['low']:.3f}-{interval['high']:.3f} over " in capsys.readouterr().out


@requires_espeak
def test_training_learns_a_separable_task_and_keeps_its_best_epoch(tmp_path, manifest, capsys):
    """emomon's own training loop (sampler, scaler, early stopping, best-epoch reload), not a test-only loop: the
    manifest's words name the emotion, so a model that learns reads its test speakers far above chance (0.25)."""
    preset = tmp_path / "learn.toml"
    preset.write_text(tiny_preset(manifest, train="lr = 1e-3\nmax_epochs = 8\npatience = 3\nepoch_size = 96",
                                  data="augment_copies = 0"))
    out = tmp_path / "ckpt"
    assert main(["train", str(preset), "--out", str(out)]) == 0
    training = json.loads((out / "config.json").read_text())["metadata"]["training"]
    vals = [h["val_accuracy"] for h in training["history"]]
    # the kept epoch is the first with the best validation accuracy, and the saved weights are that epoch's
    assert training["best_epoch"] == vals.index(max(vals)) + 1 and training["val_accuracy"] == max(vals)
    report = tmp_path / "eval.json"
    capsys.readouterr()
    assert main(["eval", str(out), "--manifest", str(manifest), "--split", "val", "--mode", "paired", "--json", str(report)]) == 0
    val = json.loads(report.read_text())["results"]["manifest"]["paired"]["fused"]["accuracy"]
    assert val == pytest.approx(training["val_accuracy"])
    assert main(["eval", str(out), "--manifest", str(manifest), "--split", "test", "--mode", "paired", "--json", str(report),
                 "--overwrite"]) == 0  # the same --json again: replaced only when asked
    assert json.loads(report.read_text())["results"]["manifest"]["paired"]["fused"]["accuracy"] >= 0.75


@requires_espeak
def test_fine_tuning_starts_from_a_checkpoint_on_clips_cut_like_the_monitor(tmp_path, manifest, capsys):
    from emomon.models.checkpoint import load_checkpoint

    first, second = tmp_path / "first.toml", tmp_path / "second.toml"
    preset = tiny_preset(manifest, train="max_epochs = 1\nepoch_size = 32\n{train}", data="augment_copies = 0\n{data}")
    first.write_text(preset.format(train="lr = 1e-3", data=""))
    assert main(["train", str(first), "--out", str(tmp_path / "a")]) == 0
    # lr at its floor: the fine-tuned weights stay (almost) those it started from
    second.write_text(preset.format(train=f'lr = 1e-7\ninit_from = "{tmp_path / "a"}"', data="cut_like_monitor = true"))
    capsys.readouterr()
    assert main(["train", str(second), "--out", str(tmp_path / "b")]) == 0
    logged = "".join(capsys.readouterr())
    a, b = load_checkpoint(tmp_path / "a").model.state_dict(), load_checkpoint(tmp_path / "b").model.state_dict()
    assert f"init_from: {len(a)} of {len(a)} weight tensors" in logged
    assert all(torch.allclose(a[k], b[k], atol=1e-4) for k in a)
    assert json.loads((tmp_path / "b" / "config.json").read_text())["config"]["data"]["cut_like_monitor"] is True
    # a model of another shape cannot start from it
    third = tmp_path / "third.toml"
    third.write_text(preset.replace("ff_dim = 64", "ff_dim = 32").replace("layers = 1\n", "layers = 2\n")
                     .replace("text_len = 16", "text_len = 16\narch = \"text_bilstm\"")
                     .format(train=f'init_from = "{tmp_path / "a"}"', data=""))
    r = run("train", str(third), "--out", str(tmp_path / "c"))
    assert r.returncode == 4 and "init_from: no weight" in r.stderr and "Traceback" not in r.stderr


@requires_espeak
def test_a_training_can_read_the_shipped_text_encoder_and_head_to_join_its_ensembles(tmp_path, manifest, capsys):
    """encoders.text.tuned_from: no tuning of its own (it would not be bit-identical), the shipped MiniLM layers and
    MELD head instead, so trainings made this way share one text encoder and can be joined."""
    from emomon.models.checkpoint import load_checkpoint

    preset = tiny_preset(manifest, train="max_epochs = 1\nepoch_size = 32\nlr = 1e-3\ntext_branch_from_tuning = true\n{seed}",
                         data="augment_copies = 0")
    preset = preset.replace('classes = ["angry", "happy", "neutral", "sad"]\n', "").replace(
        "[model]\n", "[model]\nbranch_heads = true\n").replace(
        "[encoders.speech]", '[encoders.text]\ntune_layers = 6\ntuned_from = "hyfuser-tiny-en"\n[encoders.speech]')
    for name, seed in (("a", 0), ("b", 1)):
        (tmp_path / f"{name}.toml").write_text(preset.format(seed=f"seed = {seed}"))
        assert main(["train", str(tmp_path / f"{name}.toml"), "--out", str(tmp_path / name)]) == 0
    logged = "".join(capsys.readouterr())
    assert "tuning text encoder" not in logged and "tuned layers and the tuning's head taken from" in logged
    shipped = load_checkpoint("hyfuser-tiny-en")
    a = load_checkpoint(tmp_path / "a")
    assert a.text_layers.read_bytes() == shipped.text_layers.read_bytes()
    # the frozen text branch is the shipped members' head: the same function of the raw token states
    def raw_head(model):  # the branch's weights over the raw (unscaled) mean token state
        lin = model.branches.text_head[1]
        weight = lin.weight / model.text_std[None]
        return weight, lin.bias - weight @ model.text_mean

    (w, b), (ref_w, ref_b) = raw_head(a.model), raw_head(shipped.model.members[0])
    assert not torch.allclose(a.model.text_std, shipped.model.members[0].text_std)  # carried through its own scaler
    assert torch.allclose(w, ref_w, atol=1e-6) and torch.allclose(b, ref_b, atol=1e-5)
    assert main(["ensemble", str(tmp_path / "ab"), str(tmp_path / "a"), str(tmp_path / "b")]) == 0


def run(*args):
    return subprocess.run([sys.executable, "-m", "emomon", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["train", "no-such-preset"], 2, "unknown preset"),
        (["eval", "/nonexistent/ckpt"], 4, "checkpoint not found"),
        (["info", "/nonexistent/ckpt"], 4, "checkpoint not found"),
        (["eval", "hyfuser-tiny-en", "--corpus", "ravdess", "--path", "/nonexistent"], 3, "RAVDESS corpus not found"),
        (["eval", "hyfuser-tiny-en", "--corpus", "ravdess"], 2, "--corpus needs --path"),
        (["ensemble", "/tmp/never-written", "hyfuser-tiny-en"], 2, "give two or more checkpoints"),
        (["train", "en-tiny-refit-member"], 2, "trains one member of an ensemble: choose it with --member K (K = 2, 3, 4, 5)"),
        (["train", "en-tiny-refit-member-cut", "--member", "6"], 2, "--member 6: en-tiny-refit-member-cut has members 2, 3, 4, 5"),
        (["train", "en-tiny", "--member", "2"], 2, "--member 2: en-tiny has no [[members]]"),
    ],
)
def test_errors_are_one_line_with_documented_codes(args, code, message):
    r = run(*args)
    assert r.returncode == code, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("emomon: error:") and message in lines[0], r.stderr
    assert "Traceback" not in r.stderr


@requires_espeak
def test_eval_leaves_out_rows_whose_audio_cannot_be_read(tmp_path, speech_factory, capsys):
    good = speech_factory("I am so happy today, this is wonderful!")
    (tmp_path / "notes.wav").write_text("not audio at all")
    rows = [f"{good},I am so happy today,happy,s1,", "nosuch.wav,I am so sad,sad,s2,", "notes.wav,so angry,angry,s3,"]
    manifest = tmp_path / "m.csv"
    manifest.write_text("audio,text,label,speaker,split\n" + "\n".join(rows) + "\n")
    report = tmp_path / "eval.json"
    assert main(["eval", "hyfuser-tiny-en", "--manifest", str(manifest), "--json", str(report)]) == 0
    got = json.loads(report.read_text())["results"]["manifest"]
    # the two unreadable clips are not scored in any mode (before: counted in paired and text-only as text alone)
    assert {mode: got[mode]["fused"]["n"] for mode in got} == {"paired": 1, "text-only": 1, "speech-only": 1}
    manifest.write_text("audio,text,label,speaker,split\n" + "\n".join(rows[1:]) + "\n")
    r = run("eval", "hyfuser-tiny-en", "--manifest", str(manifest))
    assert r.returncode == 3 and "emomon: error: nothing to evaluate" in r.stderr and "Traceback" not in r.stderr


def test_train_refuses_an_unusable_output_before_any_work(tmp_path):
    done = tmp_path / "done"
    done.mkdir()
    (done / "config.json").write_text("{}")  # a checkpoint from an earlier run
    r = run("train", "en-tiny", "--out", str(done), "--data-root", str(tmp_path / "no-data"))
    assert r.returncode == 6 and "already holds a checkpoint; choose another --out, or --overwrite" in r.stderr
    assert (done / "config.json").read_text() == "{}"
    afile = tmp_path / "afile"
    afile.write_text("x")
    r = run("train", "en-tiny", "--out", str(afile / "sub"), "--data-root", str(tmp_path / "no-data"))
    assert r.returncode == 6 and "is not a writable folder" in r.stderr and "Traceback" not in r.stderr
    # --overwrite gets past the check, to the next problem (here: no corpora)
    r = run("train", "en-tiny", "--out", str(done), "--overwrite", "--data-root", str(tmp_path / "no-data"))
    assert r.returncode == 3 and "corpus not found" in r.stderr


def test_a_member_trains_into_its_own_run_by_default(tmp_path):
    """`emomon train RECIPE --member K`: the run is named by the member (runs/en-tiny-refit-member-K), where its stage 2
    (en-tiny-refit-member-cut --member K) starts from; a checkpoint already there is refused before any work."""
    done = tmp_path / "runs" / "en-tiny-refit-member-3"
    done.mkdir(parents=True)
    (done / "config.json").write_text("{}")
    r = subprocess.run([sys.executable, "-m", "emomon", "train", "en-tiny-refit-member", "--member", "3", "--data-root",
                        str(tmp_path / "no-data")], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 6 and "runs/en-tiny-refit-member-3 already holds a checkpoint" in r.stderr, r.stderr
    from emomon.config import load_config

    assert load_config("en-tiny-refit-member-cut", member=3).train.init_from == "runs/en-tiny-refit-member-3"


def test_unknown_key_in_a_user_preset(tmp_path):
    p = tmp_path / "x.toml"
    p.write_text("[model]\nlayerz = 2\n")
    r = run("train", str(p))
    assert r.returncode == 2 and "unknown setting model.layerz" in r.stderr and "Traceback" not in r.stderr
