"""One table of every bad-input kind with its exit code, run through the command line, and the README's exit-code
table checked against it and against :mod:`emomon.errors`.

Every case here is refused before any model loads (checks on arguments, settings, inputs and outputs come first), so
each must also answer within a few seconds: the table doubles as the test that nothing heavy runs before them."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

import emomon.errors as errors
from emomon.training.data.synth import write_wav

from conftest import error_lines, run_emomon

README = Path(__file__).resolve().parents[1] / "README.md"
SR = 16000


def _tone(path: Path, seconds: float = 1.0, channels: int = 1) -> Path:
    t = np.arange(int(seconds * SR)) / SR
    return write_wav(path, (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)) if channels == 1 else path


def _toml(tmp: Path, text: str) -> str:
    p = tmp / "preset.toml"
    p.write_text(text)
    return str(p)


def _checkpoint(tmp: Path, change) -> str:
    """A copy of the shipped checkpoint's config.json (weights linked, not copied) with one field broken."""
    import importlib.resources as r

    shipped = Path(str(r.files("emomon.models.weights").joinpath("hyfuser-tiny-en")))
    d = tmp / "ckpt"
    d.mkdir()
    for f in shipped.iterdir():
        if f.suffix == ".safetensors":
            (d / f.name).symlink_to(f)
    doc = json.loads((shipped / "config.json").read_text())
    change(doc)
    (d / "config.json").write_text(json.dumps(doc))
    return str(d)


def _float_wav(path: Path, data: np.ndarray) -> Path:
    import struct

    raw = data.astype("<f4").tobytes()
    path.write_bytes(b"RIFF" + struct.pack("<I", 36 + len(raw)) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 3, 1, SR, SR * 4, 4, 32)
                     + b"data" + struct.pack("<I", len(raw)) + raw)
    return path


def _nine_channels(tmp: Path) -> str:
    out = tmp / "nine.wav"
    subprocess.run(["sox", "-n", "-r", "16000", "-c", "9", str(out), "synth", "1", "sine", "440"], check=True)
    return str(out)


def _deep(tmp: Path) -> str:
    p = tmp / "deep.toml"
    p.write_text("a = " + "[" * 100_000 + "]" * 100_000 + "\n")
    return str(p)


def _link(tmp: Path) -> str:
    (tmp / "dangling.csv").symlink_to(tmp / "nowhere" / "x.csv")
    return str(tmp / "dangling.csv")


def _existing(tmp: Path) -> str:
    (tmp / "keep.csv").write_text("precious\n")
    return str(tmp / "keep.csv")


def _page(tmp: Path) -> Path:
    (tmp / "out").mkdir()
    (tmp / "out" / "keep.html").write_text("<p>an earlier report</p>")
    return tmp / "out" / "keep.html"


def _with_audio_folder(tmp: Path) -> str:
    (tmp / "s-audio").mkdir()
    return str(tmp / "s.csv")


#: kind -> (arguments built in a fresh folder, the exit code, a phrase of the one error line)
CASES = {
    "missing audio file": (lambda t: ["replay", str(t / "missing.wav")], 3, "not found"),
    "a folder given as audio": (lambda t: ["replay", str(t)], 3, "directory"),
    "an empty audio file": (lambda t: ["replay", str((t / "e.wav").touch() or t / "e.wav")], 3, "empty"),
    "no finite audio sample": (lambda t: ["replay", str(_float_wav(t / "nan.wav", np.full(SR, np.nan))), "--csv", str(t / "s.csv")], 3, "NaN"),
    "nine channels split": (lambda t: ["replay", _nine_channels(t), "--split-channels", "--csv", str(t / "s.csv")], 3, "at most 8"),
    "no recording named": (lambda t: ["replay"], 2, "give a recording"),
    "NaN in a bounded setting": (lambda t: ["replay", "--sample", "--config", _toml(t, "[segmenter]\nmax_utterance_s = nan\n")], 2, "finite"),
    "inf in a list setting": (lambda t: ["replay", "--sample", "--config", _toml(t, "[replay]\ntta_speeds = [inf]\n")], 2, "finite"),
    "TOML nested 100,000 deep": (lambda t: ["replay", "--sample", "--config", _deep(t)], 2, "nested"),
    "recipe with NaN learning rate": (lambda t: ["train", _toml(t, 'extends = "en-tiny"\n[train]\nlr = nan\n')], 2, "finite"),
    "multi-line speaker name": (lambda t: ["replay", "--sample", "--speaker", "0=Bob\nFAKE", "--csv", str(t / "s.csv")], 2, "one line"),
    "--as-live with --best": (lambda t: ["replay", "--sample", "--as-live", "--best"], 2, "give one"),
    "checkpoint dims Infinity": (lambda t: ["info", _checkpoint(t, lambda d: d["dims"].update(text=float("inf")))], 4, "dims.text"),
    "checkpoint model a string": (lambda t: ["info", _checkpoint(t, lambda d: d["config"].update(model="hyfuser"))], 4, "model"),
    "checkpoint config empty": (lambda t: ["info", _checkpoint(t, lambda d: d.update(config={}))], 4, "config"),
    "missing checkpoint": (lambda t: ["info", str(t / "no-such-model")], 4, ""),
    "eval JSON onto an existing file": (lambda t: ["eval", "hyfuser-tiny-en", "--json", _existing(t)], 6, "already exists"),
    "eval JSON in a missing folder": (lambda t: ["eval", "hyfuser-tiny-en", "--json", str(t / "no" / "x.json")], 6, "does not exist"),
    "session CSV on a dangling link": (lambda t: ["replay", "--sample", "--csv", _link(t)], 6, "symbolic link"),
    "session CSV exists": (lambda t: ["replay", "--sample", "--csv", _existing(t)], 6, "exists"),
    "--save-audio folder exists": (lambda t: ["replay", "--sample", "--csv", _with_audio_folder(t), "--save-audio"], 6, "audio folder"),
    "report onto an existing page": (lambda t: ["report", _existing(t), "--out", str(_page(t).parent)], 6, "exists"),
}


@pytest.mark.parametrize("kind", list(CASES))
def test_every_bad_input_kind_gives_its_exit_code_before_anything_heavy(tmp_path, kind):
    if "channels" in kind and shutil.which("sox") is None:
        pytest.skip("sox missing")
    build, code, phrase = CASES[kind]
    before = {p.name for p in tmp_path.iterdir()}
    args = build(tmp_path)
    made = {p.name for p in tmp_path.iterdir()}
    t0 = time.monotonic()
    r = run_emomon(*args, timeout=120)
    took = time.monotonic() - t0
    lines = error_lines(r.stderr)
    assert r.returncode == code, (kind, r.returncode, r.stderr[-1500:])
    assert len(lines) == 1 and lines[0].startswith("emomon: error:") and phrase in lines[0], (kind, r.stderr)
    assert "Traceback" not in r.stderr
    assert {p.name for p in tmp_path.iterdir()} == made | before, "a refused command leaves no file behind"
    assert took < 15, f"{kind}: {took:.1f} s: something heavy ran before the check"


def _readme_codes() -> dict[int, str]:
    text = README.read_text()
    table = text.split("## Exit codes", 1)[1].split("\n\n", 2)[1]
    codes = {}
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        for n in re.findall(r"\d+", cells[0]):
            codes[int(n)] = cells[1]
    return codes


def test_the_readme_table_matches_the_error_classes_and_the_cases():
    readme = _readme_codes()
    classes = {cls.exit_code for cls in vars(errors).values()
               if isinstance(cls, type) and issubclass(cls, errors.EmomonError) and cls is not errors.EmomonError}
    assert classes <= set(readme), f"error classes without a README row: {classes - set(readme)}"
    assert {code for _, code, _ in CASES.values()} <= set(readme)
    assert {0, 1, 130, 143, 129} <= set(readme)
    # and the module's own docstring table says the same codes
    documented = {int(m) for m in re.findall(r"^(\d+)\s{2,}", errors.__doc__, re.M)}
    assert documented == set(readme) - {143, 129}, (documented, set(readme))
