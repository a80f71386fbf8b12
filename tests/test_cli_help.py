"""A command line that teaches: examples in every command's help, options named so they cannot be confused, `emomon
info` leading with the shipped model, and every check on arguments and paths answered before anything heavy loads."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from emomon.cli import build_parser, main

README = Path(__file__).resolve().parents[1] / "README.md"
COMMANDS = ("train", "eval", "replay", "live", "devices", "ensemble", "report", "info")


def _help(*argv: str) -> str:
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args([*argv, "--help"])
    assert done.value.code == 0
    return ""


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_shows_examples(command, capsys):
    _help(command)
    out = capsys.readouterr().out
    examples = out.split("\nexample", 1)
    assert len(examples) == 2, f"`emomon {command} --help` has no examples"
    assert re.search(rf"^  emomon {command}\b", examples[1], re.M), examples[1]


def test_top_level_help_starts_with_the_sample(capsys):
    _help()
    out = capsys.readouterr().out
    assert "emomon replay --sample" in out
    for command in COMMANDS:
        assert re.search(rf"^    {command}\s", out, re.M)


def test_the_readme_first_command_is_one_line_and_shows_two_speakers():
    block = README.read_text().split("```bash\n", 1)[1].split("```", 1)[0]
    first = block.splitlines()[0]
    assert first == 'pip install torch==2.13.0 && pip install -e ".[test]" && emomon replay --sample --diarize'


def test_compute_is_the_compute_device_and_device_is_its_old_name(capsys):
    args = build_parser().parse_args(["replay", "--sample", "--compute", "cpu"])
    assert args.compute == "cpu" and capsys.readouterr().err == ""
    for command in ("replay", "live", "train"):
        extra = ["x.toml"] if command == "train" else []
        args = build_parser().parse_args([command, *extra, "--device", "cuda"])
        assert args.compute == "cuda"
        assert capsys.readouterr().err == "emomon: warning: --device is now --compute\n"
    _help("live")
    out = capsys.readouterr().out
    assert "--compute {auto,cpu,cuda}" in out and "--device" not in out and "not an audio" in out
    with pytest.raises(SystemExit) as bad:
        build_parser().parse_args(["live", "--device", "gpu"])
    assert bad.value.code == 2


def test_device_alias_warns_once_and_still_runs_the_command(tmp_path):
    r = subprocess.run([sys.executable, "-m", "emomon", "replay", "--sample", "--device", "cpu", "--csv",
                        str(tmp_path / "no" / "s.csv")], capture_output=True, text=True, timeout=60)
    lines = r.stderr.splitlines()
    assert lines[0] == "emomon: warning: --device is now --compute"
    assert r.returncode == 6 and lines[1].startswith("emomon: error: cannot create the session CSV")  # the next problem


@pytest.mark.parametrize("command", ["replay", "live"])
def test_dashboard_on_or_off_on_both(command, capsys):
    parse = build_parser().parse_args
    assert parse([command]).dashboard is None
    assert parse([command, "--dashboard"]).dashboard is True
    assert parse([command, "--no-dashboard"]).dashboard is False
    _help(command)
    out = " ".join(capsys.readouterr().out.split())
    assert "--dashboard, --no-dashboard" in out
    assert ("default: off" if command == "replay" else "default: on when stdout is a terminal") in out


def _option_help(out: str, flag: str) -> str:
    """The help text of one option in a command's --help (its lines joined)."""
    options = out.split("\noptions:\n", 1)[1].split("\n\n", 1)[0]
    entries = re.split(r"\n(?=  -)", options)
    entry = next(e for e in entries if e.lstrip().startswith(flag))
    return " ".join(entry.split())


def test_option_help_explains_how_options_combine(capsys):
    _help("replay")
    out = capsys.readouterr().out
    speaker = _option_help(out, "--speaker")
    assert "--diarize" in speaker and "NAME/A, NAME/B" in speaker  # --speaker names the input; its voices NAME/A ...
    assert "-q" in _option_help(out, "--quiet-lines").replace("--quiet-lines", "")
    assert "runtime.model" in _option_help(out, "--config") and "runtime.model" in _option_help(out, "--model")
    assert "--diarize" in _option_help(out, "--sample") and "2026-03-02T09:00:00+01:00" in _option_help(out, "--start-time")


def test_verbosity_goes_before_or_after_the_command():
    parse = build_parser().parse_args
    assert parse(["-v", "info"]).verbose == 1
    assert parse(["info", "-v"]).verbose == 1
    assert parse(["info"]).verbose == 0 and parse(["info"]).quiet is False
    assert parse(["replay", "-q", "x.wav"]).quiet is True
    assert parse(["-q", "replay", "x.wav"]).quiet is True


def test_info_leads_with_the_shipped_model(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("shipped model: hyfuser-tiny-en")
    assert out[1].startswith("  what it is: an ensemble of 5 trainings of HyFusER")
    assert out[2].startswith("  test accuracy on held-out test sets") and "ravdess 0." in out[2]
    licence = next(line for line in out if line.startswith("  licence:"))
    assert "CC BY-NC-SA 4.0" in licence and "MIT" in licence
    presets = next(i for i, line in enumerate(out) if line.startswith("runtime presets:"))
    assert presets > out.index(licence) and any(line.startswith("training recipes:") for line in out[presets:])


def test_info_lists_every_test_row_only_when_asked(capsys):
    assert main(["info", "hyfuser-tiny-en"]) == 0
    short = capsys.readouterr().out
    assert "member 1 test" not in short and "`emomon info hyfuser-tiny-en -v`" in short and "licence:" in short
    for argv in (["-v", "info", "hyfuser-tiny-en"], ["info", "hyfuser-tiny-en", "-v"]):
        assert main(argv) == 0
        rows = [line for line in capsys.readouterr().out.splitlines() if re.match(r"  member \d test ", line)]
        assert len(rows) == 60 and rows[0].startswith("  member 1 test ravdess") and rows[-1].startswith("  member 5 test")


# ------------------------------------------------------------------------------------------------ before torch
_NOTHING_HEAVY = """
import sys
from emomon.cli import main
code = main(sys.argv[1:])
heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'faster_whisper', 'ctranslate2', 'av'))
print('HEAVY', code, heavy)
"""


@pytest.mark.parametrize("argv, code", [
    (["replay", "missing.wav"], 3),
    (["replay", "--sample", "--start-time", "noon"], 2),
    (["replay", "--sample", "--model", "no-such-model"], 4),
    (["replay", "--sample", "--csv", "no/such/folder/s.csv"], 6),
    (["live", "--duration", "0"], 2),
    (["live", "--model", "no-such-model"], 4),
    (["live", "--csv", "no/such/folder/s.csv"], 6),
    (["report", "missing.csv"], 3),
    (["eval", "no-such-checkpoint"], 4),
    (["eval", "hyfuser-tiny-en", "--corpus", "ravdess", "--path", "no/such/corpus"], 3),
    (["eval", "hyfuser-tiny-en", "--manifest", "no/such/manifest.csv"], 3),
    (["train", "en-tiny", "--data-root", "no/such/data", "--out", "run"], 3),
    (["info", "no-such-checkpoint"], 4),
    (["info"], 0),
])
def test_every_check_comes_before_heavy_imports(tmp_path, argv, code):
    env = {k: v for k, v in os.environ.items() if k != "EMOMON_DATA"}
    r = subprocess.run([sys.executable, "-c", _NOTHING_HEAVY, *argv], capture_output=True, text=True, timeout=60,
                       cwd=tmp_path, env=env)
    line = next(line for line in r.stdout.splitlines() if line.startswith("HEAVY"))
    assert line == f"HEAVY {code} []", (line, r.stderr)
    if code:
        assert r.stderr.startswith("emomon: error: ") and "Traceback" not in r.stderr
    assert not any(tmp_path.iterdir()), "a refused command leaves nothing behind"


def test_replay_of_a_missing_file_answers_at_once(tmp_path):
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "emomon", "replay", "missing.wav"], capture_output=True, text=True,
                           timeout=60, cwd=tmp_path)
        best = min(best, time.perf_counter() - t)
        assert r.returncode == 3 and r.stderr == "emomon: error: audio file not found: missing.wav\n"
    assert best < 1.5, f"`emomon replay missing.wav` took {best:.2f} s: something heavy runs before the check"
