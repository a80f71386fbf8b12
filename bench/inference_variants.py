"""Inference-side variants of a checkpoint, without retraining: the speaker baseline's estimate, and speed TTA.

    python bench/inference_variants.py [--checkpoint hyfuser-tiny-en] [--data ../shared/data]

For the checkpoint's own validation and test speakers of RAVDESS, nEMO and ASED (en-tiny: 17-18 / 19-24, KD0 / MP0,
56-60 / 61-65), paired input (speech + tiny.en transcript), fused accuracy with each speaker's frames read against:

- ``running``: their running mean, clips streamed in a fixed order (what the live monitor does; the model card's
  figure);
- ``session``: the mean of all their clips in the set (what only a replay of a whole recording could do);

each alone and with speed test-time augmentation (``+tta``: probabilities averaged over the clip at 0.95x, 1x and
1.05x speed, three encoder passes). Checkpoints without a speaker baseline get the ``running`` rows only.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

import numpy as np

CORPORA = ("ravdess", "nemo", "ased")
SPEEDS = (0.95, 1.05)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="hyfuser-tiny-en")
    ap.add_argument("--data", default=os.environ.get("EMOMON_DATA", "../shared/data"))
    args = ap.parse_args()
    data = Path(args.data).resolve()
    if not data.is_dir():
        print(f"data folder not found: {data}", file=sys.stderr)
        return 3
    import torch

    from emomon.config import SourceConfig
    from emomon.models.checkpoint import load_checkpoint
    from emomon.audio.speed import speed
    from emomon.training.feature_builder import FeatureBuilder
    from emomon.training.pairing import fixed_examples
    from emomon.training.sources import load_sources
    from emomon.models.speaker_baseline import session_offsets
    from emomon.training.loop import predict_examples

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    ckpt = load_checkpoint(args.checkpoint)
    model, options = ckpt.model, ckpt.model.speaker_baseline
    variants = ("running", "running+tta") + (("session", "session+tta") if options is not None else ())
    print(f"Fused accuracy of {ckpt.path}, paired input, by speaker-baseline estimate and speed TTA\n")
    print("| set | n | " + " | ".join(variants) + " |")
    print("|---|---|" + "---|" * len(variants))
    # each corpus's validation and test speakers are the checkpoint's own (its preset's data sources)
    splits = {s.corpus: (s.val_speakers, s.test_speakers) for s in ckpt.config.data.sources if s.corpus in CORPORA}
    for corpus, (val, test) in splits.items():
        if not (data / corpus).is_dir():
            print(f"| {corpus} | absent | " + " | ".join("-" for _ in variants) + " |")
            continue
        src = SourceConfig(corpus=corpus, path=str(data / corpus), text="asr", val_speakers=val, test_speakers=test)
        cfg = dataclasses.replace(ckpt.config, data=dataclasses.replace(ckpt.config.data, sources=(src,)))
        sources = load_sources(cfg, splits=("val", "test"))
        builder = FeatureBuilder(cfg, text_layers=ckpt.text_layers)
        bank = builder.build(sources, train=False)
        items = {it.id: it for s in sources for it in s.items}
        item_of = {keys[0]: items[i] for i, keys in bank.speech_keys.items()}
        for split in ("val", "test"):
            if not any(it.split == split for it in items.values()):  # a refit trained on its validation speakers
                print(f"| {corpus} {split} | 0 | " + " | ".join("-" for _ in variants) + " |")
                continue
            examples = next(iter(fixed_examples(cfg, sources, bank, split, "paired").values()))
            keys = [e.speech for e in examples]
            y = np.array([e.label for e in examples])
            banks = {1.0: bank}
            for factor in SPEEDS:  # the same clips, re-encoded at another speed
                frames = {}
                for i in range(0, len(keys), 8):
                    chunk = keys[i : i + 8]
                    audio = [speed(builder.clip_audio(item_of[k]), factor) for k in chunk]
                    frames.update(zip(chunk, (f.astype(np.float16) for f in builder.speech_encoder.encode(audio).unbatch())))
                banks[factor] = dataclasses.replace(bank, speech={**bank.speech, **frames}, means={}, offsets={}, offsets_owner=None)
            probs = {}
            for estimate in ("running", "session") if options is not None else ("running",):
                per_speed = []
                for b in banks.values():
                    b.offsets.clear()
                    b.offsets_owner = None
                    if estimate == "session":
                        session_offsets(b, keys, options)
                    per_speed.append(predict_examples(model, examples, b)[0])  # running: streamed inside
                probs[estimate] = per_speed[0]
                probs[f"{estimate}+tta"] = np.mean(per_speed, 0)
            cells = " | ".join(f"{(probs[v].argmax(1) == y).mean():.3f}" for v in variants)
            print(f"| {corpus} {split} | {len(y)} | {cells} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
