"""A corpus of bad inputs, generated here, run through every command that reads them.

Each kind of bad input must give exactly one line ``emomon: error: ...`` that names the problem, the documented exit
code, no traceback, and no output file that looks like a complete session. Odd-but-valid audio (no speech, 8 kHz,
96 kHz, 6 channels, NaN samples) must simply work.
"""

from __future__ import annotations

import csv
import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from emomon.training.data.synth import write_wav

from conftest import error_lines, requires_espeak, run_emomon, untrained_preset

SR = 16000


def tone(seconds: float, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def float_wav(path: Path, data: np.ndarray, sr: int = SR) -> Path:
    raw = data.astype("<f4").tobytes()
    header = (b"RIFF" + struct.pack("<I", 36 + len(raw)) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 3, 1, sr, sr * 4, 4, 32)
              + b"data" + struct.pack("<I", len(raw)))
    path.write_bytes(header + raw)
    return path


def encode(path: Path, audio: np.ndarray, codec: str, fmt: str, rate: int = SR) -> Path:
    import av

    pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
    with av.open(str(path), "w", format=fmt) as c:
        s = c.add_stream(codec, rate=rate)
        s.layout = "mono"
        fr = av.AudioFrame.from_ndarray(pcm[None], format="s16", layout="mono")
        fr.sample_rate = SR
        frames = [fr]
        if rate != SR:
            rs = av.AudioResampler(format="s16", layout="mono", rate=rate)
            frames = rs.resample(fr) + rs.resample(None)
        for f in frames + [None]:
            for p in s.encode(f):
                c.mux(p)
    return path


def cut(path: Path, fraction: float) -> Path:
    data = path.read_bytes()
    out = path.with_name("cut-" + path.name)
    out.write_bytes(data[: int(len(data) * fraction)])
    return out


# ---------------------------------------------------------------------------------------------------- audio files
def written(path: Path, content: bytes | str | None = None) -> Path:
    """Create ``path`` (a folder when ``content`` is None) and return it."""
    if content is None:
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


AUDIO_CASES = {
    "missing file": (lambda d: d / "nope.wav", "audio file not found"),
    "directory instead of file": (lambda d: written(d / "folder.wav"), "is a directory"),
    "0-byte file": (lambda d: written(d / "empty.wav", b""), "is empty"),
    "text file with an audio extension": (lambda d: written(d / "notes.wav", "minutes of the meeting\n" * 40), "not a readable audio file"),
    "random bytes": (lambda d: written(d / "noise.flac", np.random.default_rng(0).bytes(5000)), "not a readable audio file"),
    "truncated wav": (lambda d: cut(write_wav(d / "t.wav", tone(4.0)), 0.5), "truncated"),
    "truncated wav header": (lambda d: cut(write_wav(d / "h.wav", tone(4.0)), 0.0003), "not a readable audio file"),
    "truncated flac": (lambda d: cut(encode(d / "t.flac", tone(4.0), "flac", "flac"), 0.5), "corrupt or truncated"),
    "truncated mp3": (lambda d: cut(encode(d / "t.mp3", tone(4.0), "libmp3lame", "mp3"), 0.5), "truncated"),
}


@pytest.mark.parametrize("kind", list(AUDIO_CASES))
def test_bad_audio_for_replay(tmp_path, kind, random_checkpoint):
    make, message = AUDIO_CASES[kind]
    path = make(tmp_path)
    out = tmp_path / "session.csv"
    r = run_emomon("replay", str(path), "--model", str(random_checkpoint), "--csv", str(out))
    lines = error_lines(r.stderr)
    assert r.returncode == 3, r.stderr
    err = [line for line in lines if line.startswith("emomon: error:")]
    assert len(err) == 1 and message in err[0] and str(path.name) in err[0], r.stderr
    assert "Traceback" not in r.stderr
    if out.exists():  # only a stream cut part-way leaves a CSV, and it must not claim to be complete
        rows = list(csv.DictReader(open(out)))
        assert not rows or not rows[-1]["transcript"].startswith("session complete")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_file(tmp_path, random_checkpoint):
    p = write_wav(tmp_path / "secret.wav", tone(1.0))
    p.chmod(0)
    r = run_emomon("replay", str(p), "--model", str(random_checkpoint), "--csv", str(tmp_path / "x.csv"))
    assert r.returncode == 3 and "permission denied" in r.stderr


ODD_AUDIO = {
    "audio with no speech": lambda d: write_wav(d / "quiet.wav", np.random.default_rng(1).normal(0, 0.003, 5 * SR).astype(np.float32)),
    "8 kHz": lambda d: encode(d / "lo.wav", tone(2.0), "pcm_s16le", "wav", rate=8000),
    "96 kHz": lambda d: encode(d / "hi.wav", tone(2.0), "pcm_s16le", "wav", rate=96000),
    "6 channels": lambda d: write_wav(d / "six.wav", np.stack([tone(2.0)] * 6, 1)),
    "float wav with NaN and inf": lambda d: float_wav(d / "nan.wav", np.where(np.arange(2 * SR) % 1000 < 5, np.nan, tone(2.0)).astype(np.float32)),
}


@pytest.mark.parametrize("kind", list(ODD_AUDIO))
def test_odd_but_valid_audio_works(tmp_path, kind, random_checkpoint):
    path = ODD_AUDIO[kind](tmp_path)
    out = tmp_path / "session.csv"
    r = run_emomon("replay", str(path), "--model", str(random_checkpoint), "--csv", str(out))
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(open(out)))
    assert rows[-1]["transcript"].startswith("session complete")


@requires_espeak
@pytest.mark.parametrize("rate", [8000, 96000])
def test_resampled_speech_is_still_understood(tmp_path, speech_factory, random_checkpoint, rate):
    from emomon.audio.decode import load_audio

    speech = load_audio(speech_factory("Please open the window before the meeting starts."))
    path = encode(tmp_path / f"s{rate}.wav", np.concatenate([np.zeros(SR // 2, np.float32), speech, np.zeros(SR // 2, np.float32)]),
                  "pcm_s16le", "wav", rate=rate)
    out = tmp_path / "s.csv"
    r = run_emomon("replay", str(path), "--model", str(random_checkpoint), "--csv", str(out))
    assert r.returncode == 0, r.stderr
    rows = [row for row in csv.DictReader(open(out)) if row["utterance"]]
    assert len(rows) == 1 and "window" in rows[0]["transcript"].lower()


def test_three_hour_file_streams_in_flat_memory(tmp_path, random_checkpoint):
    """3 hours of near-silence (FLAC keeps it small on disk): decoded in chunks, peak memory stays low."""
    import subprocess
    import sys
    import time

    path = encode(tmp_path / "long.flac", np.zeros(10 * SR, np.float32), "flac", "flac")
    # repeat the 10 s block to 3 h by concatenating FLAC frames is fiddly: write 3 h with a streaming encoder
    import av

    with av.open(str(path), "w", format="flac") as c:
        s = c.add_stream("flac", rate=SR)
        s.layout = "mono"
        block = np.zeros((1, 60 * SR), np.int16)
        block[0, ::997] = 3  # not digital silence, but far below speech
        for _ in range(180):
            fr = av.AudioFrame.from_ndarray(block, format="s16", layout="mono")
            fr.sample_rate = SR
            for p in s.encode(fr):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    assert path.stat().st_size < 50_000_000
    out = tmp_path / "long.csv"
    proc = subprocess.Popen([sys.executable, "-m", "emomon", "replay", str(path), "--model", str(random_checkpoint), "--csv", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    rss = []
    while proc.poll() is None:
        try:
            with open(f"/proc/{proc.pid}/status") as f:
                mb = [int(line.split()[1]) // 1024 for line in f if line.startswith("VmRSS")]
            if out.exists():  # the CSV is created once the models are loaded: from here on, only streaming
                rss += mb
        except OSError:
            pass
        time.sleep(0.2)
    assert proc.returncode == 0, proc.stderr.read()
    assert "10800.0 s of audio" in proc.stderr.read()
    assert len(rss) >= 3 and max(rss) - rss[0] < 100, rss  # MB: no growth with the length of the file


# ---------------------------------------------------------------------------------------------------- checkpoints
def _copy_checkpoint(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


CKPT_CASES = {
    "corrupt checkpoint": (lambda c: (c / "model.safetensors").write_bytes(b"\x00garbage" * 100), "corrupt or truncated"),
    "truncated checkpoint": (lambda c: (c / "model.safetensors").write_bytes((c / "model.safetensors").read_bytes()[:5000]), "corrupt or truncated"),
    "checkpoint config not JSON": (lambda c: (c / "config.json").write_text("{nope"), "corrupt or not JSON"),
}


def _edit_json(path: Path, fn) -> None:
    doc = json.loads(path.read_text())
    fn(doc)
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize("kind", list(CKPT_CASES))
def test_bad_checkpoints(tmp_path, kind, random_checkpoint):
    mutate, message = CKPT_CASES[kind]
    ck = _copy_checkpoint(random_checkpoint, tmp_path / "ck")
    mutate(ck)
    audio = write_wav(tmp_path / "a.wav", tone(1.0))
    out = tmp_path / "s.csv"
    for args in (["replay", str(audio), "--model", str(ck), "--csv", str(out)], ["info", str(ck)], ["eval", str(ck), "--manifest", str(tmp_path / "m.csv")]):
        (tmp_path / "m.csv").write_text(f"audio,text,label,speaker,split\n{audio},hi,happy,s1,test\n")
        r = run_emomon(*args)
        if args[0] == "info" and kind in ("corrupt checkpoint", "truncated checkpoint", "checkpoint for other encoders"):
            assert r.returncode == 0  # info reads only the JSON
            continue
        lines = error_lines(r.stderr)
        assert r.returncode == 4 and len(lines) == 1 and message in lines[0], (args, r.stderr)
        assert not out.exists()


def test_checkpoint_for_other_encoders(tmp_path):
    """Trained on 512-wide speech features: the installed Whisper gives 384, so it cannot run; said at load."""
    import dataclasses

    import torch

    from emomon.training.saving import save_checkpoint
    from emomon.models.registry import build_model

    cfg = untrained_preset()
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, d_model=384))
    torch.manual_seed(0)
    ck = save_checkpoint(tmp_path / "other", build_model(cfg, 384, 512, 7), cfg, {"text": "t", "speech": "whisper-encoder:other"})
    out = tmp_path / "s.csv"
    r = run_emomon("replay", str(write_wav(tmp_path / "a.wav", tone(1.0))), "--model", str(ck), "--csv", str(out))
    lines = error_lines(r.stderr)
    assert r.returncode == 4 and len(lines) == 1 and "speech features of size 512, but its encoder gives 384" in lines[0], r.stderr
    assert not out.exists()


def test_checkpoint_for_other_classes_works_with_its_classes(tmp_path):
    """A valid checkpoint with another class set is not an error: the CSV carries its classes."""
    import dataclasses

    import torch

    from emomon.training.saving import save_checkpoint
    from emomon.models.encoders import build_speech_encoder, build_text_encoder
    from emomon.models.registry import build_model

    cfg = dataclasses.replace(untrained_preset(), classes=("angry", "happy", "neutral", "sad"))
    torch.manual_seed(0)
    fps = {"text": build_text_encoder(cfg.encoders.text).fingerprint, "speech": build_speech_encoder(cfg.encoders.speech).fingerprint}
    ck = save_checkpoint(tmp_path / "four", build_model(cfg, 384, 384, 4), cfg, fps)
    out = tmp_path / "s.csv"
    r = run_emomon("replay", str(write_wav(tmp_path / "a.wav", tone(1.0))), "--model", str(ck), "--csv", str(out))
    assert r.returncode == 0, r.stderr
    header = open(out).readline().strip().split(",")
    assert [h for h in header if h.startswith("p_")] == ["p_angry", "p_happy", "p_neutral", "p_sad"]


# ---------------------------------------------------------------------------------------------------- configs
CONFIG_CASES = {
    "bad TOML": ("[model\nlayers = 3\n", "not valid TOML"),
    "unknown TOML key": ("[segmenter]\nhangover = 300\n", "unknown setting segmenter.hangover"),
    "value out of range": ("[segmenter]\naggressiveness = 7\n", "segmenter.aggressiveness: must be <= 3"),
    "wrong type": ("[runtime]\nbatch_size = 'eight'\n", "runtime.batch_size: expected an integer"),
    "binary file": (b"\x89PNG\r\n\x1a\n\x00\x00", "not valid TOML"),
}


@pytest.mark.parametrize("kind", list(CONFIG_CASES))
def test_bad_configs(tmp_path, kind, random_checkpoint):
    content, message = CONFIG_CASES[kind]
    cfg = tmp_path / "preset.toml"
    cfg.write_bytes(content if isinstance(content, bytes) else content.encode())
    audio = write_wav(tmp_path / "a.wav", tone(1.0))
    for args in (["replay", str(audio), "--config", str(cfg), "--model", str(random_checkpoint), "--csv", str(tmp_path / "s.csv")],
                 ["train", str(cfg)]):
        r = run_emomon(*args)
        lines = error_lines(r.stderr)
        assert r.returncode == 2 and len(lines) == 1 and message in lines[0], (args, r.stderr)
    assert not (tmp_path / "s.csv").exists()


def test_missing_config_file(tmp_path):
    r = run_emomon("train", str(tmp_path / "nope.toml"))
    assert r.returncode == 2 and "config file not found" in r.stderr


# ---------------------------------------------------------------------------------------------------- outputs
def test_csv_in_a_missing_folder(tmp_path, random_checkpoint):
    r = run_emomon("replay", str(write_wav(tmp_path / "a.wav", tone(1.0))), "--model", str(random_checkpoint),
                   "--csv", str(tmp_path / "no" / "such" / "s.csv"))
    lines = error_lines(r.stderr)
    assert r.returncode == 6 and len(lines) == 1 and "does not exist" in lines[0]
    assert not (tmp_path / "no").exists()


def test_csv_in_a_read_only_folder(tmp_path, random_checkpoint):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    target = ro / "s.csv" if os.geteuid() != 0 else Path("/proc/emomon-test.csv")  # root ignores modes: use a read-only fs
    r = run_emomon("replay", str(write_wav(tmp_path / "a.wav", tone(1.0))), "--model", str(random_checkpoint), "--csv", str(target))
    lines = error_lines(r.stderr)
    assert r.returncode == 6 and len(lines) == 1 and "emomon: error: cannot create" in lines[0], r.stderr
    assert not target.exists()


def test_existing_csv_is_never_overwritten(tmp_path, random_checkpoint):
    out = tmp_path / "s.csv"
    out.write_text("precious\n")
    r = run_emomon("replay", str(write_wav(tmp_path / "a.wav", tone(1.0))), "--model", str(random_checkpoint), "--csv", str(out))
    assert r.returncode == 6 and "already exists" in r.stderr and out.read_text() == "precious\n"


@requires_espeak
def test_full_disk_keeps_what_was_written(tmp_path, speech_factory, random_checkpoint, monkeypatch, capsys):
    """Simulated ENOSPC after the second row: one error line, exit 6, the rows before it intact."""
    import errno

    from emomon.audio.decode import load_audio
    from emomon.cli import main
    from emomon.monitor import sinks

    parts = [np.zeros(SR // 2, np.float32)]
    for text in ("Good morning everyone.", "Please sit down.", "Open your books.", "Thank you all."):
        parts += [load_audio(speech_factory(text)), np.zeros(SR, np.float32)]
    audio = write_wav(tmp_path / "a.wav", np.concatenate(parts))
    out = tmp_path / "s.csv"
    real_fsync = os.fsync
    calls = {"n": 0}

    def fsync(fd):
        calls["n"] += 1
        if calls["n"] > 3:  # header + two rows fit, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(sinks.os, "fsync", fsync)
    code = main(["replay", str(audio), "--model", str(random_checkpoint), "--csv", str(out)])
    err = capsys.readouterr().err
    assert code == 6 and "emomon: error: cannot write" in err and "disk is full" in err
    rows = [r for r in csv.DictReader(open(out)) if r["utterance"]]
    assert len(rows) >= 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["--speaker", "1=Bob"], "--speaker 1=Bob: there is no input 1 (this session has input 0; each file is one input"),
        (["--speaker", "0=Ann", "--speaker", "0=Bob"], "--speaker '0=Bob': input 0 is already named 'Ann'"),
        (["--csv", ""], "--csv: empty path"),
    ],
)
def test_monitor_options_that_would_be_silently_ignored_are_errors(tmp_path, random_checkpoint, args, message):
    r = run_emomon("replay", str(write_wav(tmp_path / "a.wav", tone(1.0))), "--model", str(random_checkpoint), *args,
                   cwd=tmp_path)
    lines = error_lines(r.stderr)
    assert r.returncode == 2 and len(lines) == 1 and message in lines[0], r.stderr
    assert not (tmp_path / "sessions").exists()  # refused before anything was written


@pytest.mark.parametrize("duration", ["0", "-5"])
def test_live_duration_must_be_positive(tmp_path, random_checkpoint, duration):
    r = run_emomon("live", "--duration", duration, "--model", str(random_checkpoint), "--csv", str(tmp_path / "l.csv"))
    lines = error_lines(r.stderr)
    assert r.returncode == 2 and len(lines) == 1 and "--duration: must be a positive number of seconds" in lines[0]


def test_a_disk_full_at_the_header_leaves_no_file_to_block_a_retry(tmp_path, monkeypatch):
    import errno

    from emomon.errors import OutputError
    from emomon.monitor import sinks

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sinks.os, "fsync", full)
    out = tmp_path / "s.csv"
    with pytest.raises(OutputError, match="disk is full"):
        sinks.CsvSink(out, "sess", ("happy", "sad"), ())
    assert not out.exists()  # so the same --csv works once there is room


def test_sessions_started_in_the_same_second_get_their_own_default_names(tmp_path):
    import datetime as dt

    from emomon.files import create_private_file
    from emomon.monitor.sinks import default_csv_path

    now = dt.datetime(2026, 11, 24, 9, 30, 5)
    names = []
    for _ in range(3):
        path = default_csv_path(tmp_path, now)
        create_private_file(path).close()
        names.append(path.name)
    assert names == ["2026-11-24_09-30-05.csv", "2026-11-24_09-30-05-2.csv", "2026-11-24_09-30-05-3.csv"]


# ---------------------------------------------------------------------------------------------------- devices, data
def test_unknown_input_device(tmp_path, random_checkpoint):
    r = run_emomon("live", "--input", "no-such-device-xyz", "--model", str(random_checkpoint), "--csv", str(tmp_path / "l.csv"))
    lines = error_lines(r.stderr)
    assert r.returncode == 5 and len(lines) == 1 and ("no-such-device-xyz" in lines[0] or "audio input is unavailable" in lines[0])
    assert not (tmp_path / "l.csv").exists()


@pytest.mark.parametrize("content, message", [
    ("audio,text,label,speaker,split\n,so happy,ecstatic,s1,train\n", "unknown emotion label 'ecstatic'"),
    ("file,words\nx.wav,hi\n", "needs the columns"),
])
def test_bad_training_manifest(tmp_path, content, message):
    m = tmp_path / "m.csv"
    m.write_text(content)
    preset = tmp_path / "p.toml"
    preset.write_text(f'[[data.sources]]\ncorpus = "manifest"\npath = "{m}"\n')
    r = run_emomon("train", str(preset), "--out", str(tmp_path / "out"))
    lines = error_lines(r.stderr)
    assert r.returncode == 3 and len(lines) == 1 and message in lines[0], r.stderr
    assert not (tmp_path / "out").exists()


def test_report_on_garbage(tmp_path):
    bad = tmp_path / "x.csv"
    bad.write_bytes(np.random.default_rng(0).bytes(3000))
    r = run_emomon("report", str(bad))
    assert r.returncode == 3 and len(error_lines(r.stderr)) == 1


# ---------------------------------------------------------------------------------------------------- issue 31: audio levels, channels, streams
def _replay(tmp_path, path, *extra, checkpoint):
    out = tmp_path / f"{path.stem}.csv"
    r = run_emomon("replay", str(path), "--model", str(checkpoint), "--csv", str(out), *extra)
    rows = list(csv.DictReader(open(out))) if out.exists() else []
    return r, rows


def _speech_with_margins(speech_factory):
    from emomon.audio.decode import load_audio

    speech = load_audio(speech_factory("Please open the window before the meeting starts."))
    return np.concatenate([np.zeros(SR // 2, np.float32), speech, np.zeros(SR // 2, np.float32)])


@requires_espeak
def test_a_float_wav_of_1e30_samples_gives_finite_rows(tmp_path, speech_factory, random_checkpoint):
    """Issue 31.2: the speech is scaled down, not clipped and not NaN: the words are heard, every number is finite."""
    path = float_wav(tmp_path / "huge.wav", _speech_with_margins(speech_factory) * np.float32(1e30))
    r, rows = _replay(tmp_path, path, checkpoint=random_checkpoint)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr and "RuntimeWarning" not in r.stderr
    utterances = [row for row in rows if row["utterance"]]
    assert len(utterances) == 1 and "window" in utterances[0]["transcript"].lower()
    numbers = [float(row[k]) for row in utterances for k in row if k == "confidence" or k.startswith("p_")]
    assert numbers and all(np.isfinite(numbers)) and all(0 <= v <= 1 for v in numbers)
    assert rows[-1]["transcript"].startswith("session complete")


def test_a_float_wav_with_no_finite_sample_is_one_error(tmp_path, random_checkpoint):
    path = float_wav(tmp_path / "allnan.wav", np.full(2 * SR, np.nan, np.float32))
    r, rows = _replay(tmp_path, path, checkpoint=random_checkpoint)
    lines = error_lines(r.stderr)
    assert r.returncode == 3 and len(lines) == 1 and "every sample is NaN or infinite" in lines[0] and "allnan.wav" in lines[0], r.stderr
    assert not (tmp_path / "allnan.csv").exists()  # refused before the models load


@requires_espeak
@pytest.mark.parametrize("channels", [9, 64])
def test_more_than_eight_channels(tmp_path, speech_factory, random_checkpoint, channels):
    """Issue 31.5: any channel count is mixed to mono; splitting more than 8 is one line, before the models load."""
    speech = _speech_with_margins(speech_factory)
    block = np.zeros((len(speech), channels), np.float32)
    block[:, 0] = block[:, -1] = speech
    path = write_wav(tmp_path / f"c{channels}.wav", block)
    r, rows = _replay(tmp_path, path, checkpoint=random_checkpoint)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert any("window" in row["transcript"].lower() for row in rows if row["utterance"])
    assert rows[-1]["transcript"].startswith("session complete")
    split = tmp_path / "split"
    split.mkdir()
    r, rows = _replay(split, path, "--split-channels", checkpoint=random_checkpoint)
    lines = error_lines(r.stderr)
    assert r.returncode == 3 and len(lines) == 1, r.stderr
    assert lines[0].startswith("emomon: error:") and f"{channels} channels; at most 8 can be split" in lines[0]
    assert not rows


def _audio_streams_file(path: Path, streams: list[np.ndarray]) -> Path:
    """A Matroska file with one mono 16-bit audio stream per array (what a screen or call recorder makes)."""
    import av

    with av.open(str(path), "w", format="matroska") as c:
        outs = []
        for _ in streams:
            s = c.add_stream("pcm_s16le", rate=SR)
            s.layout = "mono"
            outs.append(s)
        for s, audio in zip(outs, streams):
            frame = av.AudioFrame.from_ndarray((np.clip(audio, -1, 1) * 32767).astype(np.int16)[None], format="s16", layout="mono")
            frame.sample_rate = SR
            for packet in [*s.encode(frame), *s.encode(None)]:
                c.mux(packet)
    return path


@requires_espeak
def test_speech_in_the_second_audio_stream_is_found(tmp_path, speech_factory, random_checkpoint):
    """Issue 31.6: the first stream is silent, the second has the speech: it is read, and the ignored one is named."""
    speech = _speech_with_margins(speech_factory)
    path = _audio_streams_file(tmp_path / "call.mka", [np.zeros_like(speech), speech])
    r, rows = _replay(tmp_path, path, checkpoint=random_checkpoint)
    assert r.returncode == 0, r.stderr
    utterances = [row for row in rows if row["utterance"]]
    assert len(utterances) == 1 and "window" in utterances[0]["transcript"].lower()
    said = [line for line in r.stderr.splitlines() if "audio streams" in line]
    assert len(said) == 1 and "reading stream 1" in said[0] and "ignoring stream 0 (silent)" in said[0], r.stderr
    # --audio-stream N reads the one asked for: here the silent one, and the replay says it heard no speech
    again = tmp_path / "again"
    again.mkdir()
    r, rows = _replay(again, path, "--audio-stream", "0", checkpoint=random_checkpoint)
    assert r.returncode == 0 and not [row for row in rows if row["utterance"]], r.stderr
    assert "no speech found" in r.stderr and "call.mka" in r.stderr
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    r, _ = _replay(wrong, path, "--audio-stream", "2", checkpoint=random_checkpoint)
    lines = error_lines(r.stderr)
    assert r.returncode == 2 and len(lines) == 1 and "--audio-stream 2" in lines[0] and "audio streams 0-1" in lines[0], r.stderr


def test_a_replay_without_speech_says_so(tmp_path, random_checkpoint):
    path = write_wav(tmp_path / "hum.wav", tone(3.0))
    r, rows = _replay(tmp_path, path, checkpoint=random_checkpoint)
    assert r.returncode == 0 and rows[-1]["transcript"].startswith("session complete"), r.stderr
    said = [line for line in r.stderr.splitlines() if "no speech found" in line]
    assert len(said) == 1 and "hum.wav" in said[0] and "3.0 s of audio" in said[0], r.stderr
