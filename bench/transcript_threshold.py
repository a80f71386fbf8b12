"""What the transcript threshold (``model.min_asr_logprob``) does to a checkpoint, measured in one run.

    python bench/transcript_threshold.py [--checkpoint hyfuser-tiny-en] [--split val] [--thresholds=-20,-1] [--speakers-of CKPT]

For each threshold, the checkpoint is evaluated on its own corpora's ``--split`` (speaker-held-out; the default is
validation, the split models are chosen on) with ASR transcripts whose average token log-probability is below the
threshold given to the model as no text. ``--speakers-of`` takes each corpus's validation and test speakers from
another checkpoint instead, so that two models trained on different splits can be compared on speakers neither was
trained on. Prints, per source, the share of tiny.en transcripts the model reads and the
fused accuracy, then the mean over sources: the figure training selects on. -20 reads every transcript (off).

Why: tiny.en reads any speech as English. On Polish (nEMO) or Amharic (ASED) speech it writes fluent nonsense, with
a median average log-probability of -2.8 and -2.3 against -0.1 on RAVDESS's English, and a text branch trained on
English text is as sure of that nonsense as of real words.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys

import numpy as np

from emomon.models.checkpoint import load_checkpoint, read_checkpoint_preset
from emomon.training.feature_builder import FeatureBuilder
from emomon.training.sources import load_sources
from emomon.training.evaluation import evaluate_checkpoint
from emomon.training.features import FeatureStore


def with_threshold(ckpt, threshold: float):
    cfg = ckpt.config
    return dataclasses.replace(ckpt, config=dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, min_asr_logprob=threshold)))


def with_speakers_of(ckpt, other_cfg):
    """``ckpt`` with each corpus's validation and test speakers taken from another checkpoint's preset."""
    theirs = {s.corpus: s for s in other_cfg.data.sources}
    sources = tuple(
        dataclasses.replace(s, val_speakers=theirs[s.corpus].val_speakers, test_speakers=theirs[s.corpus].test_speakers)
        if s.corpus in theirs else s
        for s in ckpt.config.data.sources
    )
    cfg = ckpt.config
    return dataclasses.replace(ckpt, config=dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, sources=sources)))


def split_transcripts(ckpt, split: str) -> dict[str, list[tuple[str, float]]]:
    """The split's cached tiny.en transcripts, (text, average log-probability), per ``text = "asr"`` source."""
    builder = FeatureBuilder(ckpt.config, FeatureStore(), text_layers=ckpt.text_layers)
    out = {}
    for src in load_sources(ckpt.config, splits=(split,)):
        if src.config.text == "asr" and src.has_audio:
            got = builder.transcripts(src)
            out[src.name] = [got[it.id] for it in src.items if it.id in got]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="hyfuser-tiny-en")
    ap.add_argument("--split", default="val", choices=("val", "test"))
    ap.add_argument("--thresholds", default="-20,-1", help="comma-separated average log-probability thresholds")
    ap.add_argument("--speakers-of", metavar="CHECKPOINT", help="use this checkpoint's validation and test speakers")
    ap.add_argument("--data", default=os.environ.get("EMOMON_DATA"), help="corpora root (default: the checkpoint's data.root)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    if args.data:
        os.environ["EMOMON_DATA"] = args.data
    ckpt = load_checkpoint(args.checkpoint)
    if args.speakers_of:
        ckpt = with_speakers_of(ckpt, read_checkpoint_preset(args.speakers_of))  # its split only: weights not read
    speakers = f" (speakers of {args.speakers_of})" if args.speakers_of else ""
    print(f"checkpoint {args.checkpoint} (its own threshold {ckpt.config.model.min_asr_logprob:g}), split {args.split}{speakers}")
    transcripts = split_transcripts(ckpt, args.split)  # read once; each threshold only counts what it keeps
    for t in (float(x) for x in args.thresholds.split(",")):
        at_t = with_threshold(ckpt, t)
        report = evaluate_checkpoint(at_t, split=args.split, modes=("paired",))
        accs = {name: r["paired"].fused.accuracy for name, r in report.results.items()}
        shares = {name: float(np.mean([at_t.config.model.reads_transcript(*tr) for tr in trs])) for name, trs in transcripts.items()}
        parts = [f"{n} {a:.3f}" + (f" (reads {shares[n]:.0%})" if n in shares else "") for n, a in accs.items()]
        print(f"threshold {t:g}: mean {np.mean(list(accs.values())):.4f} | " + ", ".join(parts), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
