"""Batch replay on Ray (issue 33, part 3): the same CSVs as the local path, read on a local Ray instance's actors,
with the recordings read from their paths or shipped through the object store; without the extra, ``--ray`` is one
line (exit 2)."""

from __future__ import annotations

import csv
import dataclasses
import io
import subprocess
import sys

import pytest

from conftest import error_lines, requires_espeak

try:
    import ray
except ImportError:  # the optional extra (pip install -e ".[ray]")
    ray = None

requires_ray = pytest.mark.skipif(ray is None, reason='ray is not installed (pip install -e ".[ray]")')

#: Columns that differ between two readings of one recording by design: a fresh session id, and timings.
VARYING = ("session_id", "asr_ms", "emotion_ms", "latency_ms")


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    """A local Ray instance with 2 CPUs for this module; its workers start offline, with a private cache."""
    cache = tmp_path_factory.mktemp("ray-cache")
    with pytest.MonkeyPatch.context() as mp:  # the raylet and its workers inherit this environment
        for key, value in {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "EMOMON_CACHE": str(cache),
                           "RAY_USAGE_STATS_ENABLED": "0"}.items():
            mp.setenv(key, value)
        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
        try:
            yield ray
        finally:
            ray.shutdown()


@pytest.fixture(scope="module")
def batch(random_checkpoint, speech_factory):
    """(config, two short recordings) for the random checkpoint, on the CPU with 2 threads."""
    from emomon.config import load_config
    from emomon.monitor.batch import discover

    cfg = load_config("default")
    cfg = dataclasses.replace(cfg, runtime=dataclasses.replace(cfg.runtime, model=str(random_checkpoint), device="cpu", threads=2))
    files = [speech_factory("I am really happy with how the project went today."),
             speech_factory("This is terrible, nothing works and I am so angry.", voice="en-gb")]
    return cfg, discover(files, None)


@pytest.fixture(scope="module")
def local_csvs(batch, tmp_path_factory):
    """The local path, as ``--jobs`` runs it (a fresh worker process, 2 threads like each actor): the reference every
    Ray reading must equal. (Not this test process itself: its earlier use of torch by other fixtures is not a fresh
    reader's state.)"""
    from emomon.monitor.batch import ProcessReaderPool, run_batch

    cfg, recordings = batch
    out = tmp_path_factory.mktemp("local")
    pool = ProcessReaderPool(cfg, 1, threads=2)
    try:
        assert run_batch(cfg, recordings, out, jobs=1, reader_pool=pool, progress=False) == 0
    finally:
        pool.shutdown()
    return _outputs(out, recordings)


def _rows(text: str) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in VARYING} for row in csv.DictReader(io.StringIO(text))]


def _outputs(out, recordings) -> dict[str, str]:
    return {name: (out / f"{name}.csv").read_text(encoding="utf-8") for name in [r.name for r in recordings] + ["summary"]}


def _assert_same(ray_out: dict[str, str], local: dict[str, str]) -> None:
    assert ray_out.keys() == local.keys()
    for name, text in local.items():
        if name == "summary":
            assert ray_out[name] == text  # nothing varying in the summary
            continue
        rows, ref = _rows(ray_out[name]), _rows(text)
        assert any(r["utterance"] for r in ref), f"{name}: the reference read no utterance"
        assert [r.get("asr_note") for r in ref][-1] == "event" and ref[-1]["transcript"].startswith("session complete")
        diffs = [(i, k, a.get(k), b.get(k)) for i, (a, b) in enumerate(zip(rows, ref)) for k in b if a.get(k) != b.get(k)]
        assert len(rows) == len(ref) and not diffs, f"{name}: (row, column, ray, local): {diffs[:8]}"
        assert rows == ref  # every probability (p_*), emotion, transcript and time equal


@requires_ray
@requires_espeak
@pytest.mark.parametrize("upload", [False, True], ids=["shared-path", "upload"])
def test_ray_batch_equals_the_local_path(local_ray, batch, local_csvs, tmp_path, upload):
    from emomon.monitor.batch import run_batch
    from emomon.monitor.ray_pool import RayReaderPool

    cfg, recordings = batch
    out = tmp_path / "ray"
    with RayReaderPool("local", cfg, upload=upload) as pool:  # Ray is already up: that instance is used, left running
        assert pool.size == 1 and pool.threads == 2  # 2 CPUs // 2 threads per actor
        assert run_batch(cfg, recordings, out, jobs=pool.size, reader_pool=pool, progress=False) == 0
    assert ray.is_initialized()
    _assert_same(_outputs(out, recordings), local_csvs)
    assert all((out / f).stat().st_mode & 0o077 == 0 for f in ["summary.csv", *(f"{r.name}.csv" for r in recordings)])


def _cli_without_ray(*args: str) -> subprocess.CompletedProcess:
    """``emomon ARGS`` in a fresh interpreter in which ``ray`` cannot be imported; it fails if torch was loaded."""
    code = ("import sys; sys.modules['ray'] = None\n"
            "from emomon.cli import main\n"
            "rc = main(sys.argv[1:])\n"
            "assert 'torch' not in sys.modules, 'torch was imported before the one-line error'\n"
            "sys.exit(rc)\n")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)


def test_ray_without_the_extra_is_one_line(tmp_path):
    wav = tmp_path / "a.wav"
    import numpy as np

    from emomon.training.data.synth import write_wav

    write_wav(wav, np.zeros(16000, np.float32))
    r = _cli_without_ray("replay", str(wav), "--ray", "local", "--out-dir", str(tmp_path / "out"))
    assert r.returncode == 2, r.stderr
    assert error_lines(r.stderr) == ['emomon: error: --ray needs the ray extra: pip install -e ".[ray]"']
    assert not (tmp_path / "out").exists()


def test_ray_upload_needs_ray(tmp_path):
    r = _cli_without_ray("replay", str(tmp_path / "a.wav"), "--ray-upload")
    assert r.returncode == 2
    assert error_lines(r.stderr) == ["emomon: error: --ray-upload ships recordings to a Ray cluster: give --ray ADDRESS too"]


def _dying_reader(marker_dir):
    """A reader actor whose process dies in the middle of a recording named ``die-once`` (the first time only) or
    ``die-always`` (every time), as a killed or out-of-memory worker would. Defined in a function, so Ray ships the
    class by value."""
    import os
    from pathlib import Path

    from emomon.monitor.ray_pool import ReaderActor

    class DyingReader(ReaderActor):
        def read(self, recording, data=None):
            marker = Path(marker_dir) / recording.name
            if recording.name == "die-always" or (recording.name == "die-once" and not marker.exists()):
                marker.touch()
                os._exit(1)
            return super().read(recording, data)

    return DyingReader


@requires_ray
@requires_espeak
def test_a_dead_actor_costs_only_its_recording_retried_once(local_ray, batch, local_csvs, tmp_path):
    from emomon.errors import BATCH_PARTIAL
    from emomon.monitor.batch import run_batch
    from emomon.monitor.ray_pool import RayReaderPool

    cfg, (first, second) = batch
    recordings = [dataclasses.replace(first, name="die-once"), dataclasses.replace(second, name="die-always"),
                  dataclasses.replace(second, name="after")]
    out = tmp_path / "ray"
    with RayReaderPool("local", cfg, actor_body=_dying_reader(tmp_path)) as pool:
        assert run_batch(cfg, recordings, out, jobs=pool.size, reader_pool=pool, progress=False) == BATCH_PARTIAL
    assert (tmp_path / "die-once").exists()  # it did die once, and was read again by a fresh actor
    assert _rows((out / "die-once.csv").read_text()) == _rows(local_csvs[first.name])
    assert _rows((out / "after.csv").read_text()) == _rows(local_csvs[second.name])
    assert not (out / "die-always.csv").exists()
    with open(out / "summary.csv", newline="") as f:
        summary = {row["recording"]: row for row in csv.DictReader(f)}
    assert "died (twice)" in summary["die-always"]["error"]
    assert not summary["die-once"]["error"] and not summary["after"]["error"]


@requires_ray
@requires_espeak
def test_cli_ray_local_equals_one_file_replays(batch, random_checkpoint, tmp_path):
    """``emomon replay DIR --ray local`` as a user types it: its own local Ray instance, a CSV per recording equal to
    ``emomon replay FILE --csv`` of that file, and the summary."""
    import shutil

    from conftest import run_emomon

    _, recordings = batch
    folder = tmp_path / "rec"
    folder.mkdir()
    for r in recordings:
        shutil.copy(r.path, folder / r.path.name)
    out = tmp_path / "out"
    env = {"RAY_USAGE_STATS_ENABLED": "0", "TRANSFORMERS_OFFLINE": "1"}
    r = run_emomon("replay", str(folder), "--ray", "local", "--out-dir", str(out), "--model", str(random_checkpoint),
                   cwd=tmp_path, env=env, timeout=400)
    assert r.returncode == 0, r.stderr[-3000:]
    for rec in recordings:
        one = tmp_path / f"one-{rec.name}.csv"
        r1 = run_emomon("replay", str(rec.path), "--csv", str(one), "--model", str(random_checkpoint), "--quiet-lines",
                        cwd=tmp_path, env=env)
        assert r1.returncode == 0, r1.stderr
        assert _rows((out / f"{rec.name}.csv").read_text()) == _rows(one.read_text())
    with open(out / "summary.csv", newline="") as f:
        assert sorted(row["recording"] for row in csv.DictReader(f)) == sorted(r.name for r in recordings)
