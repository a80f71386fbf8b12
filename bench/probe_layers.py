"""Which Whisper encoder layer carries emotion: a linear probe on each hidden layer's pooled frames.

    python bench/probe_layers.py [--model tiny.en] [--corpus ravdess] [--data ../shared/data] [--prior 3]

For every clip of the corpus, each hidden state of the faster-whisper model's encoder (``--model``: a size name, a
hub name or a local model directory, as ``encoders.speech.model`` takes) is pooled into its mean and standard
deviation over time. A logistic regression on standardised features is trained on the corpus's training speakers
and scored on its held-out ones (the en-tiny preset's test speakers: RAVDESS 19-24, calm -> neutral; nEMO MP0;
ASED 61-65), once on the plain features and once with the mean part read relative to each speaker's running
baseline (models/speaker_baseline.py, as the monitor does). Adjacent-layer means (what ``encoders.speech.layers``
with two layers computes) are scored too. Prints accuracy per layer and the encoding time.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

import numpy as np

def pooled_by_layer(encoder, audios: list[np.ndarray], batch: int = 8) -> np.ndarray:
    """(clips, views, 2 * dim): mean and standard deviation over each clip's frames, for every hidden state and then
    every mean of two adjacent hidden states (1+2, 2+3, ...: what ``encoders.speech.layers = [i, i+1]`` reads)."""
    import torch

    out = []
    for i in range(0, len(audios), batch):
        states, lengths = encoder.hidden_states(audios[i : i + batch])
        stacked = torch.stack(states, 1)  # (batch, hidden states, frames, dim)
        stacked = torch.cat([stacked, (stacked[:, 1:-1] + stacked[:, 2:]) / 2], 1)
        for k, n in enumerate(lengths.tolist()):
            x = stacked[k, :, :n]
            out.append(torch.cat([x.mean(1), x.std(1)], -1).numpy())
        print(f"\r  encoded {min(i + batch, len(audios))}/{len(audios)} clips", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return np.stack(out)


def running_baseline(X: np.ndarray, speaker: np.ndarray, train: np.ndarray, prior: float, seed: int = 0) -> np.ndarray:
    """The mean half of ``X`` read against each speaker's running baseline (clips in a random order), with the
    monitor's own estimator: :class:`emomon.models.speaker_baseline.SpeakerBaseline`, the prior being the training
    population's mean with the weight of ``prior`` clips."""
    from emomon.models.speaker_baseline import SpeakerBaseline, SpeakerBaselineOptions

    dim = X.shape[1] // 2
    running = SpeakerBaseline(SpeakerBaselineOptions(X[train, :dim].mean(0).astype(np.float32), prior))
    out = X.copy()
    rng = np.random.default_rng(seed)
    for s in np.unique(speaker):
        for j in rng.permutation(np.where(speaker == s)[0]):
            out[j, :dim] = running.normalise(str(s), X[j : j + 1, :dim])[0]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny.en", help="faster-whisper model: size name, hub name or local directory")
    ap.add_argument("--corpus", default="ravdess", choices=("ravdess", "nemo", "ased"))
    ap.add_argument("--data", default=os.environ.get("EMOMON_DATA", "../shared/data"))
    ap.add_argument("--prior", type=float, default=3.0)
    args = ap.parse_args()
    data = Path(args.data).resolve()
    if not (data / args.corpus).is_dir():
        print(f"{args.corpus} not found under {data}", file=sys.stderr)
        return 3
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from emomon.config import SourceConfig, load_config
    from emomon.errors import EmomonError
    from emomon.training.feature_builder import FeatureBuilder
    from emomon.training.sources import load_sources
    from emomon.models.asr.encoder import WhisperSpeechEncoder

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    cfg = load_config("en-tiny")
    held_out = next(s.test_speakers for s in cfg.data.sources if s.corpus == args.corpus)  # the model card's test speakers
    src = SourceConfig(corpus=args.corpus, path=str(data / args.corpus), text="none", test_speakers=held_out)
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, sources=(src,), synth_sentences=0))
    try:
        encoder = WhisperSpeechEncoder(args.model)
    except EmomonError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    items = [it for it in load_sources(cfg)[0].items if it.label in cfg.classes and it.audio is not None]
    audios, kept = [], []
    for it in items:
        audio = FeatureBuilder._load(it)
        if audio is not None and len(audio):
            audios.append(audio)
            kept.append(it)
    t0 = time.perf_counter()
    X = pooled_by_layer(encoder, audios)
    seconds = time.perf_counter() - t0
    y = np.array([cfg.classes.index(it.label) for it in kept])
    speaker = np.array([it.speaker for it in kept])
    train = np.array([it.split != "test" for it in kept])

    def accuracy(features: np.ndarray) -> float:
        sc = StandardScaler().fit(features[train])
        clf = LogisticRegression(C=0.1, max_iter=3000).fit(sc.transform(features[train]), y[train])
        return float((clf.predict(sc.transform(features[~train])) == y[~train]).mean())

    audio_s = sum(len(a) for a in audios) / 16000
    print(f"{args.corpus}: {int((~train).sum())} held-out clips of {len(kept)}; {args.model} encoder "
          f"(d={encoder.dim}, {encoder.encoder.n_hidden} hidden states) ran {audio_s / seconds:.0f}x real time on this CPU")
    print("| hidden state | plain | running speaker baseline |")
    print("|---|---|---|")
    n = encoder.encoder.n_hidden
    names = [str(i) for i in range(n)] + [f"{i}+{i + 1}" for i in range(1, n - 1)]
    for v, name in enumerate(names):
        feats = X[:, v]
        print(f"| {name} | {accuracy(feats):.3f} | {accuracy(running_baseline(feats, speaker, train, args.prior)):.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
