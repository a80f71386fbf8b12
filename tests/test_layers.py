"""The package's shape holds: the import contracts (pyproject.toml, docs/ARCHITECTURE.md), no import cycles, a light
audio layer, and one thread that runs every PyTorch model with one Whisper encoder in the process."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import requires_espeak

ROOT = Path(__file__).resolve().parents[1]


def test_the_import_contracts_hold():
    """`lint-imports` reads the contracts in pyproject.toml: layers, the runtime without training, views without
    models, no cycles between siblings."""
    lint = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    if not Path(lint).exists():
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    r = subprocess.run([lint], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert " 0 broken" in r.stdout


def _ancestors(module: str) -> set[str]:
    parts = module.split(".")
    return {".".join(parts[:k]) for k in range(1, len(parts))}


def test_no_module_imports_itself_back():
    """No cycle in the module graph, counting that importing ``a.b.c`` first runs the packages ``a`` and ``a.b``
    (a cycle through a package's ``__init__`` breaks an import as surely as a direct one). The packages above the
    importer itself are already running when it imports, so they add no edge."""
    grimp = pytest.importorskip("grimp")
    graph = grimp.build_graph("emomon")
    edges = {}
    for m in graph.modules:
        direct = set(graph.find_modules_directly_imported_by(m))
        edges[m] = direct | {a for t in direct for a in _ancestors(t)} - _ancestors(m) - {m}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in edges:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = [stack.pop()]
            while comp[-1] != v:
                comp.append(stack.pop())
            on.difference_update(comp)
            if len(comp) > 1:
                cycles.append(sorted(comp))

    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    for m in sorted(edges):
        if m not in index:
            visit(m)
    assert cycles == []


def test_the_audio_layer_and_the_sources_load_no_model():
    code = (
        "import sys\n"
        "import emomon.audio.segmenter, emomon.audio.decode, emomon.audio.speed, emomon.monitor.sources, emomon.records\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'faster_whisper', 'ctranslate2')"
        " or m.startswith(('emomon.models', 'emomon.training')))\n"
        "assert not heavy, heavy\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


@requires_espeak
def test_one_thread_runs_every_model_and_one_whisper_encoder_exists(tmp_path, speech_factory, random_checkpoint, monkeypatch):
    """A diarized full-speed replay (first pass and second pass): every PyTorch module call happens on the
    inference worker's thread, and the process builds one Whisper encoder, shared by the ASR and the emotion model."""
    import torch

    from emomon.audio.decode import load_audio
    from emomon.config import load_config
    from emomon.models.asr.encoder import WhisperSpeechEncoder
    from emomon.monitor.pipeline import Session, step_names_of
    from emomon.monitor.sinks import CsvSink
    from emomon.monitor.sources import FileSource
    from emomon.training.data.synth import write_wav

    built: list[str] = []
    original_init = WhisperSpeechEncoder.__init__

    def counting_init(self, *args, **kwargs):
        built.append(threading.current_thread().name)
        original_init(self, *args, **kwargs)

    threads: set[str] = set()
    original_call = torch.nn.Module.__call__

    def recording_call(self, *args, **kwargs):
        threads.add(threading.current_thread().name)
        return original_call(self, *args, **kwargs)

    monkeypatch.setattr(WhisperSpeechEncoder, "__init__", counting_init)
    monkeypatch.setattr(torch.nn.Module, "__call__", recording_call)

    gap = np.zeros(12000, np.float32)
    parts = [load_audio(speech_factory(t, voice=v, pitch=p)) for t, v, p in (
        ("Please open the window before the meeting starts.", "en-us", 50),
        ("I really do not want to go there again.", "en-gb+f3", 80))]
    path = write_wav(tmp_path / "two.wav", np.concatenate([x for p in parts for x in (gap, p)] + [gap]))
    cfg = load_config("default")
    cfg = dataclasses.replace(cfg, runtime=dataclasses.replace(cfg.runtime, model=str(random_checkpoint)),
                              diarization=dataclasses.replace(cfg.diarization, enabled=True))
    session = Session(cfg, [FileSource(path, 0)], live=False)
    session.load()
    session.prepare_replay([FileSource(path, 0)])
    out = tmp_path / "r.csv"
    session.sinks.append(CsvSink(out, session.session_id, cfg.classes, step_names_of(cfg.model)))
    session.start()
    session.wait()
    assert session.stats.utterances == 2 and "whole-recording" in session.reading
    assert built == ["emomon-inference"], built
    assert threads == {"emomon-inference"}, threads
    assert session.worker.asr_encoder.shared and session.worker.asr_encoder.whisper is session.worker.recognizer.speech_encoder
