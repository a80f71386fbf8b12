"""Why the speaker baseline: a linear probe on pooled Whisper frames, with and without per-speaker normalisation.

    python bench/speaker_probe.py [--data ../shared/data] [--prior 3]

RAVDESS, 7 classes, actors 19-24 held out. Features: mean and standard deviation over time of the en-tiny speech
encoder's frames (tiny.en, layers 2-3; cached like training's). Logistic regression on standardised features,
trained on actors 1-18. Rows: plain; the mean part minus each actor's running baseline over their clips in a random
order (the clip itself included, shrunk toward the population with ``--prior`` pseudo-clips: what the live monitor
can do); minus each actor's mean over all their clips (what it cannot: it needs the whole session first).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("EMOMON_DATA", "../shared/data"))
    ap.add_argument("--prior", type=float, default=3.0)
    args = ap.parse_args()
    data = Path(args.data).resolve()
    if not (data / "ravdess").is_dir():
        print(f"RAVDESS not found under {data}", file=sys.stderr)
        return 3
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from emomon.config import SourceConfig, load_config
    from emomon.training.feature_builder import FeatureBuilder
    from emomon.training.sources import load_sources

    cfg = load_config("en-tiny")
    src = SourceConfig(corpus="ravdess", path=str(data / "ravdess"), text="none", test_speakers=tuple(str(i) for i in range(19, 25)))
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, sources=(src,), synth_sentences=0))
    sources = load_sources(cfg)
    bank = FeatureBuilder(cfg).build(sources, train=False)
    items = [it for it in sources[0].items if it.label in cfg.classes and it.id in bank.speech_keys]
    frames = [bank.speech[bank.speech_keys[it.id][0]].astype(np.float32) for it in items]
    dim = frames[0].shape[1]
    X = np.stack([np.concatenate([f.mean(0), f.std(0)]) for f in frames])
    y = np.array([cfg.classes.index(it.label) for it in items])
    speaker = np.array([it.speaker for it in items])
    test = np.array([it.split == "test" for it in items])

    def accuracy(features: np.ndarray) -> float:
        sc = StandardScaler().fit(features[~test])
        model = LogisticRegression(C=0.1, max_iter=3000).fit(sc.transform(features[~test]), y[~test])
        return float((model.predict(sc.transform(features[test])) == y[test]).mean())

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from probe_layers import running_baseline

    running, whole = running_baseline(X, speaker, ~test, args.prior), X.copy()
    for s in np.unique(speaker):
        idx = np.where(speaker == s)[0]
        whole[idx, :dim] = X[idx, :dim] - X[idx, :dim].mean(0)
    print(f"RAVDESS actors 19-24, {int(test.sum())} clips, logistic regression on pooled tiny.en layer 2-3 frames")
    print(f"  plain                                    {accuracy(X):.3f}")
    print(f"  running speaker baseline (prior {args.prior:g})     {accuracy(running):.3f}")
    print(f"  each speaker's whole mean (not causal)   {accuracy(whole):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
