"""How a checkpoint's accuracy holds up when the speech reaches it through noise, a room or a telephone line.

    python bench/robustness.py [--checkpoint hyfuser-tiny-en] [--data ../shared/data] [--corpus ravdess] [--orders 10]
                               [--conditions clean,pink20,pink10,pink5,babble10,room,phone,call] [--json out.json]

Each test clip of the checkpoint's own held-out speakers (en-tiny: RAVDESS actors 19-24) is degraded, and the
degraded recording goes through the model card's path: cut by the monitor's segmenter (on the degraded audio, as
live), transcribed by tiny.en (text = what the ASR makes of it), paired input, each speaker's clips streamed
through their running baseline. Conditions (each clip's randomness seeded by its name, so every run and every
checkpoint gets the same audio):

- ``clean``: the clip as it is;
- ``pinkN``: pink (1/f) noise at N dB SNR;
- ``babbleN``: three other test speakers' speech mixed at N dB SNR (a classroom, a second conversation);
- ``room``: synthetic room reverberation, RT60 0.6 s;
- ``phone``: telephone band, 300-3400 Hz;
- ``call``: a call from a room: RT60 0.4 s, then the telephone band, then pink noise at 15 dB.

SNR is measured against the speech-active 20 ms frames (within 30 dB of the loudest), not the whole clip, whose
silences would otherwise flatter it. A clip's running baseline depends on the clips streamed before it, so each
condition is read in ``--orders`` random orders of each speaker's clips, the same orders for every condition, and
the accuracy is their mean (``bench/stream_order.py``); the difference from clean is paired order by order. The
degradations are the kinds the training augmentation draws (synthetic rooms, coloured noise, babble, telephone
band), so this measures robustness to them at fixed strengths, not to real rooms and codecs.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from emomon.errors import OutputError
from emomon.files import check_output_path, write_output

CONDITIONS = ("clean", "pink20", "pink10", "pink5", "babble10", "room", "phone", "call")


def active_power(audio: np.ndarray, sr: int = 16_000) -> float:
    """Mean power of the 20 ms frames within 30 dB of the loudest: the speech, not the pauses around it."""
    n = sr // 50
    frames = audio[: len(audio) // n * n].reshape(-1, n) if len(audio) >= n else audio.reshape(1, -1)
    power = (frames.astype(np.float64) ** 2).mean(1)
    if not len(power) or power.max() <= 0:
        return 1e-10
    return float(power[power >= power.max() * 1e-3].mean())


def mix(audio: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    noise = noise[: len(audio)]
    gain = np.sqrt(active_power(audio) / ((noise.astype(np.float64) ** 2).mean() + 1e-10) / 10 ** (snr_db / 10))
    return (audio + noise * gain).astype(np.float32)


def degrade(audio: np.ndarray, condition: str, rng: np.random.Generator, others: list[np.ndarray]) -> np.ndarray:
    from emomon.training.data.augment import band_limit, colored_noise, convolve, synthetic_rir

    x = np.asarray(audio, np.float32)
    if condition == "clean":
        return x
    if condition.startswith("pink"):
        x = mix(x, colored_noise(rng, len(x), 1.0), float(condition[4:]))
    elif condition.startswith("babble"):
        babble = np.zeros(len(x), np.float32)
        for other in others:  # each voice from a random point, looped to the clip's length
            loop = np.tile(other, int(np.ceil(len(x) / max(len(other), 1))) + 1)
            start = int(rng.integers(0, max(len(other), 1)))
            babble += loop[start : start + len(x)] / (np.sqrt(active_power(other)) + 1e-9)
        x = mix(x, babble, float(condition[6:]))
    elif condition == "room":
        x = convolve(x, synthetic_rir(rng, 0.6))
    elif condition == "phone":
        x = band_limit(x)
    elif condition == "call":
        x = band_limit(convolve(x, synthetic_rir(rng, 0.4)))
        x = mix(x, colored_noise(rng, len(x), 1.0), 15.0)
    else:
        raise ValueError(condition)
    peak = float(np.abs(x).max()) if len(x) else 0.0
    return (x * (0.99 / peak) if peak > 0.99 else x).astype(np.float32)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="hyfuser-tiny-en")
    ap.add_argument("--data", default=os.environ.get("EMOMON_DATA", "../shared/data"))
    ap.add_argument("--corpus", default="ravdess", choices=("ravdess", "nemo", "ased"))
    ap.add_argument("--conditions", default=",".join(CONDITIONS))
    ap.add_argument("--orders", type=int, default=10, help="random stream orders per condition (the same for each)")
    ap.add_argument("--json", help="also write the figures here")
    ap.add_argument("--overwrite", action="store_true", help="replace the --json file if it exists")
    args = ap.parse_args()
    if args.json:  # before any work: the JSON can be written, and an existing file is replaced only when asked
        check_output_path(args.json, overwrite=args.overwrite, what="the JSON")
    conditions = [c.strip() for c in args.conditions.split(",") if c.strip()]
    bad = [c for c in conditions if c not in CONDITIONS and not (c[:4] == "pink" and c[4:].isdigit())
           and not (c[:6] == "babble" and c[6:].isdigit())]
    if bad:
        print(f"unknown condition {bad[0]!r}; known: {', '.join(CONDITIONS)} (pinkN, babbleN for any N dB)", file=sys.stderr)
        return 2
    data = Path(args.data).resolve()
    if not (data / args.corpus).is_dir():
        print(f"corpus not found: {data / args.corpus}", file=sys.stderr)
        return 3
    import torch

    from emomon.audio.decode import load_audio
    from emomon.config import SourceConfig
    from emomon.models.checkpoint import load_checkpoint
    from emomon.training.data.augment import seed_for
    from emomon.training.data.synth import write_wav
    from emomon.training.feature_builder import FeatureBuilder
    from emomon.training.pairing import fixed_examples
    from emomon.training.sources import load_sources
    from emomon.training.features import FeatureStore
    from emomon.training.metrics import classification_metrics
    from emomon.models.speaker_baseline import stream_offsets
    from emomon.training.loop import predict_examples

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    ckpt = load_checkpoint(args.checkpoint)
    own = {s.corpus: s for s in ckpt.config.data.sources}
    if args.corpus not in own or not own[args.corpus].test_speakers:
        print(f"{args.checkpoint} names no {args.corpus} test speakers", file=sys.stderr)
        return 3
    src = SourceConfig(corpus=args.corpus, path=str(data / args.corpus), test_speakers=own[args.corpus].test_speakers)
    cfg = dataclasses.replace(ckpt.config, data=dataclasses.replace(ckpt.config.data, sources=(src,)))
    (source,) = load_sources(cfg, splits=("test",))
    items = source.items
    print(f"{ckpt.path}: {len(items)} {args.corpus} test clips of speakers {', '.join(src.test_speakers)}", file=sys.stderr)
    audio = {it.id: load_audio(it.audio) for it in items}
    by_speaker: dict[str, list[str]] = {}
    for it in items:
        by_speaker.setdefault(it.speaker, []).append(it.id)

    rows, clean = [], None
    # the degraded recordings, their features and transcripts live only as long as the run (private-data rule)
    with tempfile.TemporaryDirectory(prefix="emomon-robustness-") as tmp:
        store = FeatureStore(Path(tmp) / "cache")
        for condition in conditions:
            t0 = time.time()
            folder = Path(tmp) / condition
            folder.mkdir()
            manifest = folder / "manifest.csv"
            with open(manifest, "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["audio", "text", "label", "speaker", "split"])
                for k, it in enumerate(items):
                    rng = np.random.default_rng(seed_for(f"{it.id}:{condition}", 0))
                    pool = [i for s, ids in by_speaker.items() if s != it.speaker for i in ids]
                    others = [audio[pool[j]] for j in rng.choice(len(pool), 3, replace=False)] if pool else []
                    path = folder / f"{k:05d}.wav"
                    write_wav(path, degrade(audio[it.id], condition, rng, others))
                    w.writerow([path.name, "", it.label, it.speaker, "test"])
            mcfg = dataclasses.replace(ckpt.config, data=dataclasses.replace(
                ckpt.config.data, sources=(SourceConfig(corpus="manifest", path=str(manifest), text="asr"),)))
            sources = load_sources(mcfg, splits=("test",))
            bank = FeatureBuilder(mcfg, store, text_layers=ckpt.text_layers).build(sources, train=False)
            examples = next(iter(fixed_examples(mcfg, sources, bank, "test", "paired").values()))
            keys = [e.speech for e in examples if e.speech]  # manifest order = corpus order, in every condition
            y = np.array([e.label for e in examples])
            accs, wf1s, uars = [], [], []
            for r in range(args.orders):
                bank.offsets.clear()
                bank.offsets_owner = None
                if ckpt.model.speaker_baseline is not None:
                    stream_offsets(bank, keys, ckpt.model.speaker_baseline, order_seed=r, by_key=False)
                m = classification_metrics(y, predict_examples(ckpt.model, examples, bank)[0].argmax(1), ckpt.config.classes)
                accs.append(m.accuracy)
                wf1s.append(m.weighted_f1)
                uars.append(m.uar)
            accs = np.array(accs)
            clean = accs if condition == "clean" else clean
            rows.append({"condition": condition, "n": len(y), "accuracy": float(accs.mean()),
                         "sd_over_orders": float(accs.std(ddof=1)) if len(accs) > 1 else 0.0, "accuracies": accs.tolist(), "weighted_f1": float(np.mean(wf1s)), "uar": float(np.mean(uars)),
                         "minus_clean": None if clean is None or condition == "clean" else float((accs - clean).mean()),
                         "seconds": round(time.time() - t0, 1)})
            print(f"{condition}: accuracy {accs.mean():.3f} over {len(accs)} orders ({rows[-1]['seconds']} s)", file=sys.stderr, flush=True)

    print(f"\nAccuracy of {ckpt.path} on {args.corpus} test speakers {', '.join(src.test_speakers)}, paired input "
          f"(speech + tiny.en transcript of the degraded audio), mean over {args.orders} stream orders\n")
    print("| condition | n | accuracy (sd over orders) | weighted F1 | UAR | minus clean |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        drop = f"{r['minus_clean']:+.3f}" if r["minus_clean"] is not None else ""
        print(f"| {r['condition']} | {r['n']} | {r['accuracy']:.3f} ({r['sd_over_orders']:.3f}) | {r['weighted_f1']:.3f} | "
              f"{r['uar']:.3f} | {drop} |")
    if args.json:
        write_output(Path(args.json), (json.dumps({"checkpoint": str(ckpt.path), "corpus": args.corpus, "rows": rows},
                                                  indent=1) + "\n").encode(), overwrite=args.overwrite)
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except OutputError as exc:  # an output that cannot be written: one line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
