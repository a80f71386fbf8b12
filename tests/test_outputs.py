"""Every command that writes a file checks its output paths before any heavy work (no torch import, no model load,
no evaluation), never replaces an existing file unless ``--overwrite`` says so, never writes through a symbolic link,
writes atomically and user-only (0600 files, 0700 folders) whatever the umask, and a start that fails leaves no file
behind (issue 31, classes 1 and 8)."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from emomon.errors import ModelError, OutputError
from emomon.files import (atomic_write, check_output_folder, check_output_path, make_private_folder, remove_folders,
                          write_output)

from conftest import REPO, error_lines, run_emomon

SR = 16000
IS_ROOT = os.geteuid() == 0


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def tone_wav(path: Path, seconds: float = 1.0) -> Path:
    from emomon.training.data.synth import write_wav

    t = np.arange(int(seconds * SR)) / SR
    return write_wav(path, (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32))


@pytest.fixture
def umask_000():
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


# The command runs in a fresh interpreter that then reports which heavy modules it imported: the output check must
# come first, so a refused path costs no torch, transformers or matplotlib import (let alone a model load).
PROBE = """
import json, sys
from emomon.cli import main
code = main(sys.argv[1:])
heavy = sorted(m for m in ("torch", "transformers", "matplotlib", "faster_whisper") if m in sys.modules)
print(json.dumps({"code": code, "heavy": heavy}))
"""


def probe(*args, cwd=None):
    """(exit code, stderr lines, heavy modules imported) of ``emomon ARGS`` run in-process in a fresh interpreter."""
    r = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120, cwd=cwd,
                       env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert r.stdout.strip(), r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert "Traceback" not in r.stderr, r.stderr
    return got["code"], error_lines(r.stderr), got["heavy"]


def refused(args, fragment, *, cwd=None, code=6):
    """The command ends with exactly one ``emomon: error:`` line holding ``fragment``, the documented code, and no
    heavy import."""
    got, lines, heavy = probe(*args, cwd=cwd)
    assert got == code and len(lines) == 1 and lines[0].startswith("emomon: error:") and fragment in lines[0], lines
    assert heavy == [], f"the output check came after importing {heavy}"
    return lines[0]


# ---------------------------------------------------------------------------------------------------- the helpers
def test_check_output_path_refuses_every_unsafe_target(tmp_path):
    existing = tmp_path / "session.csv"
    existing.write_text("precious\n")
    (tmp_path / "folder").mkdir()
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere.json")
    (tmp_path / "link").symlink_to(existing)
    (tmp_path / "afile").write_text("x")
    cases = {
        existing: "it already exists; choose another path, or --overwrite",
        tmp_path / "folder": "it is a folder",
        tmp_path / "dangling": "it is a symbolic link to",
        tmp_path / "link": "it is a symbolic link (to",
        tmp_path / "no" / "such" / "x.json": "the folder",
        tmp_path / "afile" / "x.json": "is not a folder",
        Path("/dev/null"): "it is not a regular file",
    }
    for path, fragment in cases.items():
        with pytest.raises(OutputError, match="^cannot write the JSON ") as info:
            check_output_path(path, overwrite=False, what="the JSON")
        assert fragment in str(info.value), (path, str(info.value))
    # --overwrite lets an existing regular file be replaced, and nothing else
    assert check_output_path(existing, overwrite=True, what="the JSON") == existing
    for path in (tmp_path / "folder", tmp_path / "dangling", tmp_path / "link", Path("/dev/null")):
        with pytest.raises(OutputError):
            check_output_path(path, overwrite=True, what="the JSON")
    assert existing.read_text() == "precious\n" and (tmp_path / "link").is_symlink()
    # missing folders are fine only when they will be created, and only under a writable folder
    check_output_path(tmp_path / "new" / "deep" / "x.md", overwrite=False, what="the table", parents=True)
    with pytest.raises(OutputError, match="is not a writable folder"):
        check_output_path(tmp_path / "afile" / "deep" / "x.md", overwrite=False, what="the table", parents=True)
    assert not (tmp_path / "new").exists()  # checking creates nothing


@pytest.mark.skipif(IS_ROOT, reason="root writes into read-only folders")
def test_check_output_path_refuses_a_read_only_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="is not writable"):
            check_output_path(ro / "x.json", overwrite=False, what="the JSON")
        with pytest.raises(OutputError, match="is not a writable folder"):
            check_output_folder(ro / "sub", what="the checkpoint to")
    finally:
        ro.chmod(0o700)


def test_a_path_that_may_not_be_searched_is_one_line_too(tmp_path, monkeypatch):
    import errno

    def denied(self, *a, **k):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(Path, "exists", denied)
    with pytest.raises(OutputError, match=r"^cannot write the metrics JSON .*x\.json: permission denied$"):
        check_output_path(tmp_path / "locked" / "x.json", overwrite=False, what="the metrics JSON")
    with pytest.raises(OutputError, match=r"^cannot write the checkpoint to .*locked: permission denied$"):
        check_output_folder(tmp_path / "locked", what="the checkpoint to")


def test_check_output_folder(tmp_path):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    (tmp_path / "old").mkdir()
    with pytest.raises(OutputError, match="it is a file, not a folder"):
        check_output_folder(tmp_path / "afile", what="the checkpoint to")
    with pytest.raises(OutputError, match="symbolic link to .*gone, which does not exist"):
        check_output_folder(tmp_path / "dangling", what="the checkpoint to")
    with pytest.raises(OutputError, match="symbolic link to .*gone, which does not exist"):
        check_output_folder(tmp_path / "dangling" / "sub", what="the checkpoint to")
    with pytest.raises(OutputError, match="already exists; emomon does not mix"):
        check_output_folder(tmp_path / "old", what="the audio folder", new=True, exists_hint="emomon does not mix")
    with pytest.raises(OutputError, match="does not exist"):
        check_output_folder(tmp_path / "a" / "b", what="the audio folder", create=False)
    check_output_folder(tmp_path / "a" / "b", what="the checkpoint to")  # created later, by the writer
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("umask", [0o000, 0o277])
def test_private_folders_and_files_are_user_only_whatever_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        created = make_private_folder(tmp_path / "a" / "b" / "c")
        atomic_write(tmp_path / "a" / "b" / "c" / "f.bin", b"data")
        write_output(tmp_path / "a" / "m.json", b"{}\n", overwrite=False)
    finally:
        os.umask(old)
    assert created == [tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "c"]
    assert [mode(p) for p in created] == [0o700] * 3
    assert mode(tmp_path / "a" / "b" / "c" / "f.bin") == 0o600 and mode(tmp_path / "a" / "m.json") == 0o600
    assert make_private_folder(tmp_path / "a", exist_ok=True) == []  # there already: nothing of ours to remove
    (tmp_path / "a" / "b" / "c" / "f.bin").unlink()
    remove_folders(created)
    assert (tmp_path / "a").is_dir() and not (tmp_path / "a" / "b").exists()  # only empty folders go


def test_write_output_never_replaces_a_file_that_appeared_meanwhile(tmp_path, umask_000):
    path = tmp_path / "eval.json"
    check_output_path(path, overwrite=False, what="the metrics JSON")
    path.write_text("someone else's\n")  # appeared while the evaluation ran
    with pytest.raises(OutputError, match="it already exists"):
        write_output(path, b"{}\n", overwrite=False, what="write the metrics JSON")
    assert path.read_text() == "someone else's\n"
    write_output(path, b"{\"a\": 1}\n", overwrite=True)
    assert json.loads(path.read_text()) == {"a": 1} and mode(path) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval.json"]  # no temporary file left


def test_the_cli_knows_the_resume_file_name_without_importing_torch():
    from emomon.cli import _RESUME_FILE
    from emomon.training.resume import RESUME_FILE

    assert _RESUME_FILE == RESUME_FILE


# ---------------------------------------------------------------------------------------------------- eval --json
def test_eval_json_never_overwrites_and_checks_before_any_work(tmp_path):
    session = tmp_path / "2026-11-22_10-00-00.csv"
    session.write_text("session_id,speaker\nabc,S1\n")
    (tmp_path / "folder").mkdir()
    (tmp_path / "dangling.json").symlink_to(tmp_path / "nowhere.json")
    for target, fragment in ((session, "it already exists; choose another path, or --overwrite"),
                             (tmp_path / "no" / "such" / "m.json", "does not exist"),
                             (tmp_path / "folder", "it is a folder"),
                             (tmp_path / "dangling.json", "it is a symbolic link")):
        line = refused(["eval", "hyfuser-tiny-en", "--json", str(target)], fragment)
        assert "cannot write the metrics JSON" in line
    assert session.read_text() == "session_id,speaker\nabc,S1\n"
    assert not (tmp_path / "no").exists() and (tmp_path / "dangling.json").is_symlink()
    got, lines, _ = probe("eval", "hyfuser-tiny-en", "--json", "  ")
    assert got == 2 and len(lines) == 1 and "--json: empty path" in lines[0]


class _Report:
    def render(self, confusion=True):
        return "fake report"

    def as_dict(self):
        return {"results": {"manifest": {"paired": {"fused": {"accuracy": 0.5}}}}}


def test_eval_json_is_written_user_only_and_replaced_only_with_overwrite(tmp_path, monkeypatch, capsys, umask_000):
    from emomon.cli import main
    from emomon.models import checkpoint
    from emomon.training import evaluation

    monkeypatch.setattr(checkpoint, "load_checkpoint", lambda name: object())
    monkeypatch.setattr(evaluation, "evaluate_checkpoint", lambda *a, **k: _Report())
    import emomon.cli as cli

    monkeypatch.setattr(cli, "_check_corpora", lambda *a, **k: None)  # the corpora are not what this test reads
    out = tmp_path / "eval.json"
    assert main(["eval", "hyfuser-tiny-en", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["results"] and mode(out) == 0o600
    out.write_text("earlier\n")
    out.chmod(0o666)
    assert main(["eval", "hyfuser-tiny-en", "--json", str(out)]) == 6
    assert out.read_text() == "earlier\n"
    assert main(["eval", "hyfuser-tiny-en", "--json", str(out), "--overwrite"]) == 0
    assert json.loads(out.read_text())["results"] and mode(out) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval.json"]
    assert "cannot write the metrics JSON" in capsys.readouterr().err


def test_a_refused_eval_json_costs_no_evaluation(tmp_path, monkeypatch):
    from emomon.cli import main
    from emomon.training import evaluation

    def never(*a, **k):
        raise AssertionError("the evaluation ran before the output was checked")

    monkeypatch.setattr(evaluation, "evaluate_checkpoint", never)
    assert main(["eval", "hyfuser-tiny-en", "--json", str(tmp_path / "missing" / "m.json")]) == 6


# ---------------------------------------------------------------------------------------------------- train, ensemble
def test_train_out_is_checked_before_torch(tmp_path):
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    (tmp_path / "afile").write_text("x")
    refused(["train", "en-tiny", "--out", str(tmp_path / "dangling")], "symbolic link to")
    refused(["train", "en-tiny", "--out", str(tmp_path / "afile")], "it is a file, not a folder")
    refused(["train", "en-tiny", "--out", str(tmp_path / "afile" / "sub")], "is not a writable folder")
    done = tmp_path / "done"
    done.mkdir()
    (done / "config.json").write_text("{}")
    refused(["train", "en-tiny", "--out", str(done)], "already holds a checkpoint")
    assert (done / "config.json").read_text() == "{}"


def test_ensemble_out_is_checked_before_any_checkpoint_is_read(tmp_path):
    done = tmp_path / "done"
    done.mkdir()
    (done / "config.json").write_text("{}")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    (tmp_path / "afile").write_text("x")
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    members = ["hyfuser-tiny-en", "no-such-checkpoint"]  # never read: the output is refused first
    refused(["ensemble", str(done), *members], "already holds a checkpoint; choose another folder, or --overwrite")
    refused(["ensemble", str(tmp_path / "notes"), *members], "is not empty")
    refused(["ensemble", str(tmp_path / "afile"), *members], "it is a file, not a folder")
    refused(["ensemble", str(tmp_path / "dangling"), *members], "symbolic link to")
    assert (done / "config.json").read_text() == "{}" and (tmp_path / "notes" / "todo.txt").read_text() == "mine"


def test_checkpoints_and_ensembles_are_user_only_and_replaced_only_when_asked(tmp_path, umask_000, capsys):
    from emomon.cli import main

    import dataclasses

    from emomon.config import ModelConfig

    from conftest import untrained_preset
    from test_ensemble import member

    cfg = dataclasses.replace(untrained_preset(), model=ModelConfig(text_len=8, speech_len=6, ff_dim=32, layers=1,
                                                                     branch_heads=True, speaker_baseline=3.0))
    a, b, c = (member(tmp_path / "runs", cfg, seed, name) for seed, name in ((0, "a"), (1, "b"), (2, "c")))
    assert mode(tmp_path / "runs") == 0o700 and mode(a) == 0o700
    assert {mode(p) for p in a.iterdir()} == {0o600}
    out = tmp_path / "ens"
    assert main(["ensemble", str(out), str(a), str(b), str(c)]) == 0
    assert mode(out) == 0o700 and {p.name for p in out.iterdir()} == {"config.json", "model.safetensors", "member-1.safetensors",
                                                                      "member-2.safetensors"}
    assert {mode(p) for p in out.iterdir()} == {0o600}
    before = (out / "config.json").read_bytes()
    assert main(["ensemble", str(out), str(a), str(b)]) == 6
    assert (out / "config.json").read_bytes() == before
    assert "already holds a checkpoint" in capsys.readouterr().err
    assert main(["ensemble", str(out), str(a), str(b), "--overwrite"]) == 0
    # the smaller ensemble replaced the larger one: no stale member left beside it
    assert {p.name for p in out.iterdir()} == {"config.json", "model.safetensors", "member-1.safetensors"}


# ---------------------------------------------------------------------------------------------------- report
def _session_csv(path: Path) -> Path:
    from test_report import make_csv

    return make_csv(path, rows=4)


def test_report_never_replaces_unasked_and_checks_before_drawing(tmp_path):
    csv_path = _session_csv(tmp_path / "s.csv")
    (tmp_path / "s.html").write_text("my own page")
    line = refused(["report", str(csv_path)], "it already exists; choose another --out folder, or --overwrite")
    assert "s.html" in line and (tmp_path / "s.html").read_text() == "my own page"
    (tmp_path / "afile").write_text("x")
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    refused(["report", str(csv_path), "--out", str(tmp_path / "afile")], "it is a file, not a folder")
    refused(["report", str(csv_path), "--out", str(tmp_path / "dangling")], "symbolic link to")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "s.png").symlink_to(tmp_path / "elsewhere.png")
    refused(["report", str(csv_path), "--out", str(tmp_path / "out"), "--overwrite"], "symbolic link")
    assert not (tmp_path / "elsewhere.png").exists()


def test_report_is_written_user_only_and_replaced_with_overwrite(tmp_path):
    csv_path = _session_csv(tmp_path / "s.csv")
    r = run_emomon("report", str(csv_path), "--out", str(tmp_path / "r" / "new"), preexec_fn=lambda: os.umask(0))
    assert r.returncode == 0, r.stderr
    html = tmp_path / "r" / "new" / "s.html"
    assert mode(tmp_path / "r") == 0o700 and mode(tmp_path / "r" / "new") == 0o700 and mode(html) == 0o600
    html.write_text("edited")
    r = run_emomon("report", str(csv_path), "--out", str(tmp_path / "r" / "new"))
    assert r.returncode == 6 and html.read_text() == "edited"
    r = run_emomon("report", str(csv_path), "--out", str(tmp_path / "r" / "new"), "--overwrite")
    assert r.returncode == 0 and html.read_text() != "edited" and mode(html) == 0o600


# ---------------------------------------------------------------------------------------------------- replay / live
def test_session_outputs_are_checked_before_torch(tmp_path):
    wav = tone_wav(tmp_path / "a.wav")
    (tmp_path / "dangling.csv").symlink_to(tmp_path / "nowhere" / "x.csv")
    (tmp_path / "s-audio").mkdir()
    (tmp_path / "s-audio" / "00001_S1.wav").write_bytes(b"earlier session")
    line = refused(["replay", str(wav), "--csv", str(tmp_path / "dangling.csv")], "it is a symbolic link to")
    assert "cannot create the session CSV" in line
    line = refused(["replay", str(wav), "--csv", str(tmp_path / "s.csv"), "--save-audio"], "emomon does not mix sessions' audio")
    assert "cannot create the audio folder" in line
    assert not (tmp_path / "s.csv").exists() and (tmp_path / "s-audio" / "00001_S1.wav").read_bytes() == b"earlier session"
    refused(["live", "--csv", str(tmp_path / "dangling.csv")], "it is a symbolic link to")
    refused(["live", "--csv", str(tmp_path / "s.csv"), "--save-audio"], "emomon does not mix sessions' audio")
    (tmp_path / "sessions").write_text("a file where the default folder goes")
    refused(["replay", str(wav)], "sessions is not a folder", cwd=tmp_path)


def test_default_names_skip_dangling_links_and_earlier_audio(tmp_path):
    import datetime as dt

    from emomon.monitor.sinks import default_csv_path

    now = dt.datetime(2026, 11, 24, 9, 30, 5)
    (tmp_path / "2026-11-24_09-30-05.csv").symlink_to(tmp_path / "gone.csv")
    (tmp_path / "2026-11-24_09-30-05-2-audio").mkdir()
    assert default_csv_path(tmp_path, now).name == "2026-11-24_09-30-05-3.csv"


@pytest.fixture
def fake_models(monkeypatch):
    """A session whose models "load" at once; its start fails the test unless a test replaces it."""
    from emomon.monitor.pipeline import Session

    monkeypatch.setattr(Session, "load", lambda self: None)
    monkeypatch.setattr(Session, "wait_loaded", lambda self: None)

    def start(self):
        raise AssertionError("the session started")

    monkeypatch.setattr(Session, "start", start)
    return Session


def _replay(tmp_path, random_checkpoint, *extra):
    from emomon.cli import main

    wav = tone_wav(tmp_path / "a.wav")
    return main(["replay", str(wav), "--realtime", "--model", str(random_checkpoint), "--quiet-lines", *extra])


def test_a_model_load_failure_leaves_no_file(tmp_path, random_checkpoint, monkeypatch, fake_models):
    def load(self):
        raise ModelError("the weights are corrupt")

    monkeypatch.setattr(fake_models, "load", load)
    monkeypatch.chdir(tmp_path)
    assert _replay(tmp_path, random_checkpoint, "--save-audio") == 4
    assert _replay(tmp_path, random_checkpoint, "--csv", str(tmp_path / "s.csv"), "--save-audio") == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav"]  # no CSV, no audio folder, no sessions/


@pytest.mark.parametrize("where", ["audio folder", "session start"])
def test_a_start_that_fails_after_the_csv_exists_removes_what_it_created(tmp_path, random_checkpoint, monkeypatch,
                                                                          fake_models, where):
    """The CSV (and sessions/ and the audio folder) are created once the models have loaded; a failure before the
    session runs removes them, so a retry with the same --csv works; what was there before stays."""
    from emomon.monitor import app

    if where == "audio folder":
        def audio_saver(folder):
            raise OutputError(f"cannot create folder {folder}: the disk is full")

        monkeypatch.setattr(app, "AudioSaver", audio_saver)
    else:
        def start(self):
            raise OutputError("cannot start: the disk is full")

        monkeypatch.setattr(fake_models, "start", start)
    monkeypatch.chdir(tmp_path)
    assert _replay(tmp_path, random_checkpoint, "--save-audio") == 6
    assert not (tmp_path / "sessions").exists()
    (tmp_path / "sessions").mkdir()
    (tmp_path / "sessions" / "older.csv").write_text("an earlier session\n")
    assert _replay(tmp_path, random_checkpoint, "--save-audio") == 6
    assert [p.name for p in (tmp_path / "sessions").iterdir()] == ["older.csv"]
    assert (tmp_path / "sessions" / "older.csv").read_text() == "an earlier session\n"
    out = tmp_path / "s.csv"
    for _ in range(2):  # the failed start left nothing that blocks the same --csv
        assert _replay(tmp_path, random_checkpoint, "--csv", str(out), "--save-audio") == 6
        assert not out.exists() and not (tmp_path / "s-audio").exists()


def test_a_csv_that_appears_during_the_model_load_is_left_alone(tmp_path, random_checkpoint, monkeypatch, fake_models, capsys):
    out = tmp_path / "s.csv"

    def load(self):
        out.write_text("another program's file\n")

    monkeypatch.setattr(fake_models, "load", load)
    assert _replay(tmp_path, random_checkpoint, "--csv", str(out), "--save-audio") == 6
    assert out.read_text() == "another program's file\n" and not (tmp_path / "s-audio").exists()
    err = error_lines(capsys.readouterr().err)
    assert len(err) == 1 and err[0].startswith("emomon: error: cannot create") and "already exists" in err[0]


def test_stopped_while_loading_writes_nothing(tmp_path, random_checkpoint, monkeypatch, fake_models):
    monkeypatch.setattr(fake_models, "load", lambda self: signal.raise_signal(signal.SIGINT))
    out = tmp_path / "s.csv"
    assert _replay(tmp_path, random_checkpoint, "--csv", str(out), "--save-audio") == 130
    assert not out.exists() and not (tmp_path / "s-audio").exists()


def test_save_audio_retry_after_a_refusal_works_and_is_user_only(tmp_path, random_checkpoint):
    """Issue 31 class 8 end to end: --save-audio onto an existing <csv>-audio is refused at once and leaves no CSV
    behind; once the folder is moved away the same command works, and under umask 000 the CSV is 0600 and the audio
    folder 0700."""
    wav = tone_wav(tmp_path / "a.wav", 2.0)
    out = tmp_path / "s.csv"
    (tmp_path / "s-audio").mkdir()
    args = ["replay", str(wav), "--model", str(random_checkpoint), "--csv", str(out), "--save-audio", "--quiet-lines"]
    r = run_emomon(*args)
    assert r.returncode == 6 and len(error_lines(r.stderr)) == 1 and "does not mix sessions' audio" in r.stderr
    assert not out.exists()
    (tmp_path / "s-audio").rmdir()
    r = run_emomon(*args, preexec_fn=lambda: os.umask(0))
    assert r.returncode == 0, r.stderr
    assert mode(out) == 0o600 and mode(tmp_path / "s-audio") == 0o700
    assert out.read_text().splitlines()[-1].count("session complete")


# ---------------------------------------------------------------------------------------------------- bench
@pytest.mark.parametrize("script, extra", [("peers.py", ["--runs", "floor"]), ("stream_order.py", ["--data", "/nonexistent"])])
def test_bench_json_is_checked_before_the_work(tmp_path, script, extra):
    existing = tmp_path / "figures.json"
    existing.write_text("earlier figures\n")
    r = subprocess.run([sys.executable, str(REPO / "bench" / script), "--json", str(existing), *extra], capture_output=True,
                       text=True, timeout=120)
    lines = error_lines(r.stderr)
    assert r.returncode == 6 and len(lines) == 1 and "already exists" in lines[0] and "Traceback" not in r.stderr, r.stderr
    assert existing.read_text() == "earlier figures\n"


def test_bench_keep_folder_is_checked_before_the_work(tmp_path):
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "mine.csv").write_text("x")
    r = subprocess.run([sys.executable, str(REPO / "bench" / "replay_accuracy.py"), "--keep", str(keep), "--data", "/nonexistent"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 6 and "it is not empty" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert (keep / "mine.csv").read_text() == "x"
