"""How much a test figure read through the running speaker baseline depends on the order the clips are streamed in.

    python bench/stream_order.py [--checkpoint hyfuser-tiny-en] [--orders 50] [--data ../shared/data] [--json out.json]

The model card streams each test speaker's clips through the running baseline in one fixed order (by cache key), as
a live session hears a speaker's utterances one after another. A clip's offset depends on which of the speaker's
clips came before it, so that accuracy is one draw from the orders a session could have had. For the checkpoint's
own test speakers of RAVDESS, nEMO and ASED (paired input, tiny.en transcripts, clips cut as the model's
configuration asks; cached features, so nothing is encoded twice), this prints the fixed order's accuracy and, over
``--orders`` random orders of each speaker's clips, the mean, standard deviation, 2.5/97.5 percentiles and range;
beside them the two order-free readings: every clip as a stranger's first utterance, and each speaker's whole-set
mean (what a replay of a whole recording uses).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from emomon.errors import OutputError
from emomon.files import check_output_path, write_output

CORPORA = ("ravdess", "nemo", "ased")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="hyfuser-tiny-en")
    ap.add_argument("--orders", type=int, default=50, help="random stream orders per corpus")
    ap.add_argument("--data", default=os.environ.get("EMOMON_DATA", "../shared/data"))
    ap.add_argument("--json", help="also write the figures (every order's accuracy) here")
    ap.add_argument("--overwrite", action="store_true", help="replace the --json file if it exists")
    args = ap.parse_args()
    if args.json:  # before any work: the JSON can be written, and an existing file is replaced only when asked
        check_output_path(args.json, overwrite=args.overwrite, what="the JSON")
    data = Path(args.data).resolve()
    if not data.is_dir():
        print(f"data folder not found: {data}", file=sys.stderr)
        return 3
    if args.orders < 2:
        print("--orders: give at least 2", file=sys.stderr)
        return 2
    import torch

    from emomon.config import SourceConfig
    from emomon.models.checkpoint import load_checkpoint
    from emomon.training.feature_builder import FeatureBuilder
    from emomon.training.pairing import fixed_examples
    from emomon.training.sources import load_sources
    from emomon.models.speaker_baseline import session_offsets, stream_offsets
    from emomon.training.loop import predict_examples

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    ckpt = load_checkpoint(args.checkpoint)
    model, options = ckpt.model, ckpt.model.speaker_baseline
    if options is None:
        print(f"{ckpt.path} has no speaker baseline: its figures do not depend on stream order", file=sys.stderr)
        return 0
    model.eval()
    own = {s.corpus: s for s in ckpt.config.data.sources if s.corpus in CORPORA and s.test_speakers}
    out, lines = {}, []
    for corpus, spec in own.items():
        if not (data / corpus).is_dir():
            lines.append(f"| {corpus} | absent |" + " |" * 7)
            continue
        t0 = time.time()
        src = SourceConfig(corpus=corpus, path=str(data / corpus), text="asr", test_speakers=spec.test_speakers)
        cfg = dataclasses.replace(ckpt.config, data=dataclasses.replace(ckpt.config.data, sources=(src,)))
        sources = load_sources(cfg, splits=("test",))
        bank = FeatureBuilder(cfg, text_layers=ckpt.text_layers).build(sources, train=False)
        examples = next(iter(fixed_examples(cfg, sources, bank, "test", "paired").values()))
        keys = [e.speech for e in examples if e.speech]
        y = np.array([e.label for e in examples])

        def accuracy(set_offsets) -> float:
            bank.offsets.clear()
            bank.offsets_owner = None
            set_offsets()
            return float((predict_examples(model, examples, bank)[0].argmax(1) == y).mean())

        fixed = accuracy(lambda: stream_offsets(bank, keys, options))
        draws = np.array([accuracy(lambda r=r: stream_offsets(bank, keys, options, order_seed=r)) for r in range(args.orders)])
        whole = accuracy(lambda: session_offsets(bank, keys, options))
        # a stranger: each clip its own speaker, heard first (the running baseline then holds only itself)
        speaker_of = dict(bank.speaker_of)
        bank.speaker_of.update({k: f"stranger:{k}" for k in keys})
        stranger = accuracy(lambda: stream_offsets(bank, keys, options))
        bank.speaker_of.clear()
        bank.speaker_of.update(speaker_of)
        lo, hi = np.percentile(draws, [2.5, 97.5])
        out[corpus] = {"n": len(y), "speakers": list(spec.test_speakers), "fixed_order": fixed, "orders": draws.tolist(),
                       "mean": float(draws.mean()), "sd": float(draws.std(ddof=1)), "p2.5": float(lo), "p97.5": float(hi),
                       "whole_set_baseline": whole, "stranger": stranger}
        lines.append(f"| {corpus} | {len(y)} | {fixed:.3f} | **{draws.mean():.3f}** | {draws.std(ddof=1):.3f} | "
                     f"{lo:.3f}-{hi:.3f} | {draws.min():.3f}-{draws.max():.3f} | {whole:.3f} | {stranger:.3f} |")
        print(f"{corpus}: {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    print(f"\nTest accuracy of {ckpt.path} by stream order (paired input; {args.orders} random orders of each speaker's "
          "clips)\n")
    print("| test set | n | fixed order (model card) | mean over orders | sd | 2.5-97.5 % of orders | range | "
          "whole-set baseline | stranger |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(lines))
    if args.json:
        write_output(Path(args.json), (json.dumps({"checkpoint": str(ckpt.path), "orders": args.orders, "results": out},
                                                  indent=1) + "\n").encode(), overwrite=args.overwrite)
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except OutputError as exc:  # an output that cannot be written: one line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
