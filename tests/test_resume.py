"""Resuming an interrupted training (models/resume.py, `emomon train --resume`): it ends where the uninterrupted run
would have, and every misuse is one clear error."""

import dataclasses
import json

import pytest
import torch

from emomon.errors import ConfigError, InputError


def _settings(cfg, **kw):
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **kw))


def _interrupt_at_epoch(monkeypatch, n: int):
    """Make the training loop raise KeyboardInterrupt (Ctrl-C) as epoch ``n`` starts."""
    import emomon.training.loop as training

    real = training.progress_bar

    def bar(label, total):
        if label.startswith(f"epoch {n}/"):
            raise KeyboardInterrupt
        return real(label, total)

    monkeypatch.setattr(training, "progress_bar", bar)
    return real


@pytest.mark.parametrize("recipe", [
    {"keep": "last", "max_epochs": 4, "average_epochs": (1, 4)},  # a fixed soup: weights kept across the interruption
    {"keep": "best", "max_epochs": 5, "patience": 5, "soup": 3},  # validation, best checkpoint and soup candidates
])
def test_a_resumed_training_ends_as_the_uninterrupted_one(tmp_path, monkeypatch, recipe):
    from conftest import hand_built_training_data

    from emomon.models.checkpoint import load_checkpoint
    from emomon.training.resume import RESUME_FILE
    from emomon.training.loop import train

    cfg, data = hand_built_training_data(signal=1.0)
    cfg = _settings(cfg, lr=3e-3, **recipe)
    whole = train(cfg, tmp_path / "whole", data=data)
    assert not (tmp_path / "whole" / RESUME_FILE).exists()  # removed when a training ends

    real_bar = _interrupt_at_epoch(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "cut", data=data)
    assert (tmp_path / "cut" / RESUME_FILE).is_file()
    monkeypatch.setattr("emomon.training.loop.progress_bar", real_bar)
    resumed = train(cfg, tmp_path / "cut", data=data, resume=True)

    assert not (tmp_path / "cut" / RESUME_FILE).exists()
    strip = lambda hist: [{k: v for k, v in h.items() if k != "seconds"} for h in hist]  # noqa: E731
    assert strip(resumed.history) == strip(whole.history) and len(whole.history) == recipe["max_epochs"]
    assert (resumed.best_epoch, resumed.best_val, resumed.soup_epochs) == (whole.best_epoch, whole.best_val, whole.soup_epochs)
    a, b = load_checkpoint(tmp_path / "whole").model.state_dict(), load_checkpoint(tmp_path / "cut").model.state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert json.loads((tmp_path / "cut" / "metrics.json").read_text())["test"] == json.loads(
        (tmp_path / "whole" / "metrics.json").read_text())["test"]


def test_resume_refuses_another_preset_a_damaged_state_or_nothing_to_resume(tmp_path, monkeypatch):
    from conftest import hand_built_training_data

    from emomon.training.resume import RESUME_FILE
    from emomon.training.loop import train

    cfg, data = hand_built_training_data()
    cfg = _settings(cfg, keep="last", max_epochs=3)
    with pytest.raises(InputError, match="nothing to resume"):
        train(cfg, tmp_path / "none", data=data, resume=True)
    _interrupt_at_epoch(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "run", data=data)
    with pytest.raises(ConfigError, match=r"preset differs from the interrupted run's \(train.lr: 0.0001 -> 0.002\)"):
        train(_settings(cfg, lr=2e-3), tmp_path / "run", data=data, resume=True)
    state = tmp_path / "run" / RESUME_FILE
    state.write_bytes(state.read_bytes()[:1000])
    with pytest.raises(InputError, match="is not a readable training state"):
        train(cfg, tmp_path / "run", data=data, resume=True)


def test_a_fresh_start_discards_an_earlier_runs_state(tmp_path, monkeypatch):
    from conftest import hand_built_training_data

    from emomon.training.resume import RESUME_FILE
    from emomon.training.loop import train

    cfg, data = hand_built_training_data()
    cfg = _settings(cfg, keep="last", max_epochs=3)
    real_bar = _interrupt_at_epoch(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "run", data=data)
    assert (tmp_path / "run" / RESUME_FILE).is_file()
    monkeypatch.setattr("emomon.training.loop.progress_bar", real_bar)
    _interrupt_at_epoch(monkeypatch, 1)  # started again (--overwrite), stopped before its first epoch ended
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "run", data=data)
    assert not (tmp_path / "run" / RESUME_FILE).exists()


def test_the_cli_names_the_way_to_resume_and_refuses_to_mix_runs(tmp_path):
    from conftest import run_emomon

    out = tmp_path / "run"
    out.mkdir()
    (out / "resume.pt").write_bytes(b"state")
    r = run_emomon("train", "en-tiny", "--out", str(out))
    assert r.returncode == 6 and r.stderr.strip().splitlines() == [
        f"emomon: error: {out} holds an interrupted training; --resume to continue it, or --overwrite to start again"]
    r = run_emomon("train", "en-tiny", "--out", str(tmp_path / "empty"), "--resume")
    assert r.returncode == 6 and "nothing to resume in" in r.stderr and "Traceback" not in r.stderr
    r = run_emomon("train", "en-tiny", "--out", str(out), "--resume", "--overwrite")
    assert r.returncode == 2 and "choose one" in r.stderr
