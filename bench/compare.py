"""Train and evaluate every architecture on the same data and splits; write docs/results.md.

    python bench/compare.py [--archs hyfuser,kohmt,...] [--epochs 8] [--epoch-size 6000] [--runs runs/compare]

All runs share the en-tiny preset's corpora, speaker-held-out splits, pairing recipe and cached encoder features
(Whisper tiny.en layers 2-3 + MiniLM; MER-HAN reads 40 MFCCs, as in its paper). Each architecture gets the same
training budget (fewer epochs than the shipped model's 30, so that every run fits this CPU machine), early stopping
on the same validation sets. Evaluation:

- RAVDESS actors 19-24 (never trained on or selected on), text = tiny.en transcripts: fused and speech-only;
- MELD test: text branch (speech absent), and the complementarity check with the sentences read by espeak-ng;
- parameters and milliseconds per utterance on CPU (batch of one, text 16 tokens, 3 s of speech).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from emomon.config import load_config
from emomon.errors import OutputError
from emomon.files import check_output_path, make_private_folder, write_output
from emomon.models.checkpoint import load_checkpoint
from emomon.training.pairing import Example, fixed_examples
from emomon.training.features import text_key
from emomon.training.metrics import Metrics
from emomon.models.registry import architecture_names
from emomon.training.loop import FeatureBuilder, evaluate_examples, prepare_data, train

# What the seed papers report for their own systems, on their own data (not comparable with the figures here).
SEED_REPORTED = {
    "hyfuser": "KEMDy19+20 7-class: acc 67.83 %, wF1 0.6823; AI-Hub: acc 79.77 %, wF1 0.7975 (001, Tables 5-6)",
    "kohmt": "KEMDy: acc 65.62 %, wF1 0.6628; AI-Hub: 77.45 % (001, Tables 5-6)",
    "bcma": "KEMDy: acc 64.08 %, wF1 0.6419; AI-Hub: 77.63 % (001, Tables 5-6)",
    "avg_ensemble": "KEMDy: acc 60.85 %, wF1 0.6292; AI-Hub: 70.52 % (001, Tables 5-6)",
    "weighted_ensemble": "KEMDy: acc 61.00 %, wF1 0.6292; AI-Hub: 71.52 % (001, Tables 5-6)",
    "text_bilstm": "KEMDy: acc 59.22 %, wF1 0.6046; AI-Hub: 70.38 % (001, Tables 5-6, 'LSTM (Text)')",
    "speech_cnn": "KEMDy: acc 51.85 %, wF1 0.5584; AI-Hub: 56.38 % (001, Tables 5-6, 'CNN (Speech)')",
    "complementary": "AI-Hub dialogue 7-class: acc 0.8073, F1 0.7997; HyFusER there 0.7944 (002)",
    "merhan": "IEMOCAP 4-class: F1 73.66 % (original), re-implementation wF1 0.7108, UAR 0.7160 (003)",
    "hff": "IEMOCAP 6-way: acc 69.2 %, wF1 69.7 %; MOSEI ACC-2 84.6 % (004, with video)",
}


def timing(ckpt, n: int = 100) -> float:
    from emomon.models.frames import Frames

    model = ckpt.model.eval()
    rng = np.random.default_rng(0)
    speech_frames = 300 if not model.aligns_speech and ckpt.dims["speech"] < 100 else 150  # MFCC is 100 fps
    text = Frames.pad([rng.normal(0, 1, (16, ckpt.dims["text"])).astype(np.float32)], ckpt.dims["text"])
    speech = Frames.pad([rng.normal(0, 1, (speech_frames, ckpt.dims["speech"])).astype(np.float32)], ckpt.dims["speech"])
    times = []
    with torch.inference_mode():
        for i in range(n + 5):
            t0 = time.perf_counter()
            model(model.prepare(text, speech))
            if i >= 5:
                times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def evaluate(ckpt, data, builder, meld_items) -> dict:
    cfg = ckpt.config
    bank = data.bank
    out = {}
    for mode in ("paired", "speech-only", "text-only"):
        sets = fixed_examples(cfg, data.sources, bank, "test", mode)
        if "ravdess" in sets and mode != "text-only":
            out[f"ravdess {mode}"] = evaluate_examples(ckpt.model, sets["ravdess"], bank, cfg.classes)
        if "meld" in sets and mode == "text-only":
            out["meld text-only"] = evaluate_examples(ckpt.model, sets["meld"], bank, cfg.classes)
    cls = {c: i for i, c in enumerate(cfg.classes)}
    exs = [Example(bank.synth_key[it.id], text_key(it.text), cls[it.label], "meld", timed=True) for it in meld_items if it.id in bank.synth_key]
    out["meld espeak fused"] = evaluate_examples(ckpt.model, exs, bank, cfg.classes)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", default="all")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--epoch-size", type=int, default=6000)
    ap.add_argument("--runs", default="runs/compare")
    ap.add_argument("--out", default="docs/results.md")
    ap.add_argument("--overwrite", action="store_true", help="replace the --out .md and .json if they exist")
    ap.add_argument("--resume", action="store_true", help="keep the architectures already in the --out .json; train the rest")
    ap.add_argument("--retime", action="store_true", help="with --resume: measure ms/utterance again for the kept ones "
                    "(from their checkpoints in --runs), all in this one run on an otherwise idle machine")
    args = ap.parse_args()
    # before any training (hours): both outputs can be written, and an earlier table is replaced only when asked
    # (--resume continues the table in them, so it replaces them too)
    replace = args.overwrite or args.resume
    for path in (Path(args.out), Path(args.out).with_suffix(".json")):
        check_output_path(path, overwrite=replace, what="the comparison", parents=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    archs = list(architecture_names()) if args.archs == "all" else args.archs.split(",")
    base = load_config("en-tiny")
    base = dataclasses.replace(base, train=dataclasses.replace(base.train, max_epochs=args.epochs, epoch_size=args.epoch_size))
    runs = Path(args.runs)
    results: dict[str, dict] = {}
    done = Path(args.out).with_suffix(".json")
    if args.resume and done.is_file():
        for arch, r in json.loads(done.read_text()).items():
            results[arch] = {**r, "metrics": {k: Metrics(**v) for k, v in r["metrics"].items()}}
        logging.info("resuming: %s already measured", ", ".join(results))
        if args.retime:
            for arch in results:
                results[arch]["ms"] = round(timing(load_checkpoint(runs / arch)), 2)
    prepared = {}
    for arch in archs:
        if arch in results:
            continue
        cfg = dataclasses.replace(base, model=dataclasses.replace(base.model, arch=arch))
        if arch == "merhan":  # its paper's acoustic input: MFCC frames through the BiLSTM
            cfg = dataclasses.replace(cfg, encoders=dataclasses.replace(cfg.encoders, speech=dataclasses.replace(cfg.encoders.speech, name="mfcc", n_mfcc=40)))
        key = cfg.encoders.speech.name
        if key not in prepared:
            data = prepare_data(cfg, word_times=True, work_dir=runs)
            builder = FeatureBuilder(cfg, text_layers=data.text_layers)
            meld = [it for s in data.sources if s.name == "meld" for it in s.items if it.split == "test"]
            builder.synth_features(meld, data.bank, voice="en-us")  # flat-voice reading of MELD test
            prepared[key] = (data, builder, meld)
        data, builder, meld = prepared[key]
        t0 = time.time()
        result = train(cfg, runs / arch, data=data, evaluate_test=False)  # evaluated below
        ckpt = load_checkpoint(runs / arch)
        ev = evaluate(ckpt, data, builder, meld)
        results[arch] = {
            "minutes": round((time.time() - t0) / 60, 1),
            "budget": f"{args.epochs} x {args.epoch_size}",
            "best_epoch": result.best_epoch,
            "parameters": int(sum(p.numel() for p in ckpt.model.parameters())),
            "ms": round(timing(ckpt), 2),
            "metrics": {k: v.fused for k, v in ev.items()},
        }
        logging.info("%s: %s", arch, {k: round(v.fused.accuracy, 3) for k, v in ev.items()})
        write(results, args, Path(args.out), replace)
        replace = True  # this run's own table from now on
    write(results, args, Path(args.out), replace)
    return 0


def write(results: dict, args, out: Path, replace: bool) -> None:
    """The table (``out``) and its figures (``out`` with ``.json``), each written atomically and user-only."""
    lines = [
        "# Architectures compared on the same data",
        "",
        "Produced by `python bench/compare.py` (" + f"{args.epochs} epochs of {args.epoch_size} examples at most unless the row says otherwise, early stopping "
        "patience 3 on validation accuracy; en-tiny corpora, splits, pairing recipe and cached features; CPU, 2 cores).",
        "Test sets: RAVDESS actors 19-24 (7 classes, calm -> neutral; text = tiny.en transcripts, i.e. neutral words) and "
        "MELD test (2,610 sentences). `fused` = both modalities; `speech-only` = text absent; `text-only` = speech absent; "
        "`espeak fused` = MELD test sentences read by espeak-ng (flat voice) with their text.",
        "",
        "| architecture | RAVDESS acc | RAVDESS wF1 | RAVDESS UAR | RAVDESS speech-only acc | MELD text wF1 | MELD espeak fused wF1 (- text) | params | ms/utt | epochs x examples | train min (best epoch) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for arch, r in results.items():
        m = r["metrics"]
        rp, rs, mt, me = m.get("ravdess paired"), m.get("ravdess speech-only"), m.get("meld text-only"), m.get("meld espeak fused")
        fmt = lambda x, a: f"{getattr(x, a):.3f}" if x is not None else "-"  # noqa: E731
        delta = f" ({me.weighted_f1 - mt.weighted_f1:+.3f})" if me and mt else ""
        lines.append(f"| {arch} | {fmt(rp, 'accuracy')} | {fmt(rp, 'weighted_f1')} | {fmt(rp, 'uar')} | {fmt(rs, 'accuracy')} | "
                     f"{fmt(mt, 'weighted_f1')} | {fmt(me, 'weighted_f1')}{delta} | {r['parameters']:,} | {r['ms']} | {r.get('budget', f'{args.epochs} x {args.epoch_size}')} | {r['minutes']} ({r['best_epoch']}) |")
    lines += ["", "Single-modality baselines ignore the other input, so their fused figures equal their own branch's.",
              "This budget is a small fraction of the shipped model's (at most 30 epochs of 12,000; best at epoch 4): it "
              "ranks how fast each architecture learns from the same data more than what it reaches. Trained in full, "
              "HyFusER (`en-tiny`) reaches RAVDESS 0.736 accuracy and MELD text weighted F1 0.542 (docs/MODEL_CARD.md).", "",
              "## What the seed papers report (their data, not comparable)", "",
              "The seeds train and test on other corpora (Korean KEMDy19/20 and AI-Hub dialogue, IEMOCAP, MOSEI), mostly with "
              "random 8:2 clip splits rather than held-out speakers, and with larger encoders (KoELECTRA, HuBERT, BERT). "
              "Their numbers are listed only as the reference points the papers give:", ""]
    for arch in results:
        lines.append(f"- `{arch}`: {SEED_REPORTED.get(arch, 'no figure reported')}")
    make_private_folder(out.parent, exist_ok=True)
    write_output(out, ("\n".join(lines) + "\n").encode(), overwrite=replace)
    figures = {a: {**r, "metrics": {k: v.as_dict() for k, v in r["metrics"].items()}} for a, r in results.items()}
    write_output(out.with_suffix(".json"), json.dumps(figures, indent=1).encode(), overwrite=replace)


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except OutputError as exc:  # an output that cannot be written: one line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
