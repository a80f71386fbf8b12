"""Measure the figures of the model card (docs/MODEL_CARD.md) for a checkpoint, in one run.

    python bench/model_card.py [--checkpoint hyfuser-tiny-en] [--data ../shared/data] [--json out.json]
    python bench/model_card.py --speed-only [--repeat 3]   # size, parameters and ms per utterance alone; no data needed

- RAVDESS, 7 classes (calm -> neutral), actors 19-24 (never trained on or selected on), text = tiny.en transcripts:
  fused accuracy / weighted F1 / UAR, each step, and speech-only (text absent).
- MELD test, text branch: weighted F1 of the model's text branch head when it has one (``model.branch_heads``),
  else of its output with speech absent; the text-only output is reported either way.
- Complementarity: MELD test read by espeak-ng in one flat voice, fused vs text-only (speech absent) weighted F1;
  RAVDESS fused vs speech-only accuracy.
- Unseen speakers of other languages held out in training: ASED (Amharic) speakers 61-65, nEMO (Polish) MP0.
- Checkpoint size, parameters, and milliseconds per utterance on CPU (fusion model alone, and text encoder + model).
- How far each figure can be trusted: a 95 % two-stage bootstrap interval that resamples speakers and then their
  clips (MELD: dialogues, then sentences; nEMO's test set is one speaker, so only its clips), each speaker's own
  accuracy, and for the two complementarity comparisons the interval of the paired difference and, for RAVDESS, an
  exact McNemar test (``emomon.training.metrics``).

The flat-voice set is every MELD test utterance with its sentence read by espeak-ng; a sentence several utterances
share ("Okay.") is read once, for all of them. (Cards before 2026-11-23 scored only the last utterance of each distinct
sentence, 2,396 of 2,610, against text-only on all 2,610.)

With a speaker-baseline model, each test speaker's clips are streamed in a fixed order through the running baseline,
as the live monitor hears a session (the first clip is judged on the population prior alone); RAVDESS is also
reported with every clip judged as a stranger's first utterance, to show what the baseline contributes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from emomon.config import SourceConfig
from emomon.errors import OutputError
from emomon.files import check_output_path, write_output
from emomon.models.checkpoint import load_checkpoint
from emomon.training.feature_builder import FeatureBuilder
from emomon.training.pairing import Example, fixed_examples
from emomon.training.sources import load_sources
from emomon.training.features import text_key
from emomon.training.evaluation import Scored, evaluation_unit, score_examples
from emomon.training.metrics import per_group_accuracy


def evaluate(ckpt, source: SourceConfig, modes=("paired", "speech-only", "text-only"), synth_voice: str | None = None,
             strangers: bool = False) -> dict[str, Scored]:
    """``strangers``: every clip is its own speaker (no speaker-baseline history)."""
    cfg = dataclasses.replace(ckpt.config, data=dataclasses.replace(ckpt.config.data, sources=(source,)))
    srcs = load_sources(cfg, splits=("test",))
    builder = FeatureBuilder(cfg, text_layers=ckpt.text_layers)
    bank = builder.build(srcs, train=False)
    if strangers:
        bank.speaker_of = {k: f"clip:{k}" for k in bank.speech}
    unit_of = {it.id: evaluation_unit(it) for s in srcs for it in s.items}
    out = {}
    for mode in modes:
        for name, exs in fixed_examples(cfg, srcs, bank, "test", mode).items():
            out[mode] = score_examples(ckpt.model, exs, bank, cfg.classes, unit_of)
    if synth_voice:  # the text read aloud by espeak-ng in one voice, paired with its own text
        items = [it for s in srcs for it in s.items]
        builder.synth_features(items, bank, voice=synth_voice)
        cls = {c: i for i, c in enumerate(cfg.classes)}
        exs = [Example(bank.synth_key[it.id], text_key(it.text), cls[it.label], "meld", item=it.id)
               for it in items if it.id in bank.synth_key]
        out["espeak-paired"] = score_examples(ckpt.model, exs, bank, cfg.classes, unit_of)
    return out


def uncertainty(results: dict[str, dict[str, Scored]]) -> dict:
    """The intervals, per-speaker accuracies and McNemar tests of the card's headline figures."""
    rav, meld = results["ravdess_19_24"], results["meld_test"]
    text_output = "text_branch" if "text_branch" in meld["text-only"].pred else "fused"
    out = {
        "ravdess fused accuracy": rav["paired"].interval("accuracy"),
        "ravdess speech-only accuracy": rav["speech-only"].interval("accuracy"),
        "ravdess fused - speech-only accuracy": rav["paired"].interval("accuracy", baseline=rav["speech-only"]),
        "meld text-branch weighted F1": meld["text-only"].interval("weighted_f1", text_output),
        "meld text-only weighted F1": meld["text-only"].interval("weighted_f1"),
        "ased fused accuracy": results["ased_61_65"]["paired"].interval("accuracy"),
        "nemo fused accuracy": results["nemo_MP0"]["paired"].interval("accuracy"),
    }
    if "espeak-paired" in meld:
        out["meld flat voice - text-only weighted F1"] = meld["espeak-paired"].interval(
            "weighted_f1", baseline=meld["text-only"])
    tests = {"ravdess fused vs speech-only": rav["paired"].mcnemar(rav["speech-only"])}
    speakers = {name: per_group_accuracy(results[key]["paired"].y, results[key]["paired"].pred["fused"], results[key]["paired"].units)
                for name, key in (("ravdess", "ravdess_19_24"), ("ased", "ased_61_65"))}
    return {"intervals": out, "mcnemar": tests, "per_speaker_accuracy": speakers}


def timing(ckpt, n: int = 200, rec=None) -> dict:
    """Size, parameters and p50 milliseconds per utterance; pass ``rec`` (an ``EmotionRecognizer`` of ``ckpt``) to
    time it again without loading the model again."""
    from emomon.models.frames import Frames
    from emomon.models.inference import EmotionRecognizer

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    rec = rec or EmotionRecognizer(ckpt, device="cpu")
    model = rec.model
    rng = np.random.default_rng(0)
    text = Frames.pad([rng.normal(0, 1, (16, rec.ckpt.dims["text"])).astype(np.float32)], rec.ckpt.dims["text"])
    speech = Frames.pad([rng.normal(0, 1, (150, rec.ckpt.dims["speech"])).astype(np.float32)], rec.ckpt.dims["speech"])
    fusion, full = [], []
    with torch.inference_mode():
        for _ in range(10):
            model(model.prepare(text, speech))
        for _ in range(n):
            t0 = time.perf_counter()
            model(model.prepare(text, speech))
            fusion.append(time.perf_counter() - t0)
        sentence = "I can't believe you did this, I'm so angry right now."
        for _ in range(n // 4):
            t0 = time.perf_counter()
            rec.predict_frames(rec.encode_text([sentence]), speech)
            full.append(time.perf_counter() - t0)
    # an ensemble's further members are member-<i>.safetensors beside the first's weights
    files = [Path(ckpt.path) / "model.safetensors", *sorted(Path(ckpt.path).glob("member-*.safetensors"))]
    files += [ckpt.text_layers] if ckpt.text_layers else []
    return {
        "checkpoint_mb": round(sum(f.stat().st_size for f in files) / 1e6, 2),
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "fusion_ms_p50": round(1000 * statistics.median(fusion), 2),
        "text_plus_fusion_ms_p50": round(1000 * statistics.median(full), 2),
        "threads": torch.get_num_threads(),
    }


def speed_line(speed: dict) -> str:
    return (f"checkpoint {speed['checkpoint_mb']} MB, {speed['parameters']:,} parameters; fusion model {speed['fusion_ms_p50']} ms "
            f"per utterance, text encoder + fusion {speed['text_plus_fusion_ms_p50']} ms (CPU, {speed['threads']} threads, p50)")


def row(name: str, ev) -> str:
    f = ev.fused
    steps = "  ".join(f"{k} {m.accuracy:.3f}/{m.weighted_f1:.3f}" for k, m in ev.steps.items())
    return f"| {name} | {f.n} | {f.accuracy:.3f} | {f.weighted_f1:.3f} | {f.uar:.3f} | {steps} |"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="hyfuser-tiny-en")
    ap.add_argument("--data", default=os.environ.get("EMOMON_DATA", "../shared/data"))
    ap.add_argument("--json")
    ap.add_argument("--overwrite", action="store_true", help="replace the --json file if it exists")
    ap.add_argument("--skip-meld-speech", action="store_true", help="skip the espeak-ng reading of MELD test (slowest part)")
    ap.add_argument("--speed-only", action="store_true", help="measure only size, parameters and ms per utterance")
    ap.add_argument("--repeat", type=int, default=1, help="with --speed-only: timing runs, one line each (CPU timings vary run to run)")
    args = ap.parse_args()
    if args.json:  # before any work: the JSON can be written, and an existing file is replaced only when asked
        check_output_path(args.json, overwrite=args.overwrite, what="the JSON")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.speed_only:
        from emomon.models.inference import EmotionRecognizer

        ckpt = load_checkpoint(args.checkpoint)
        rec = EmotionRecognizer(ckpt, device="cpu")  # loaded once; each repeat times the same model
        for _ in range(max(1, args.repeat)):
            print(speed_line(timing(ckpt, rec=rec)), flush=True)
        return 0
    data = Path(args.data).resolve()
    if not data.is_dir():
        print(f"data folder not found: {data}", file=sys.stderr)
        return 3
    ckpt = load_checkpoint(args.checkpoint)
    results = {}
    t0 = time.time()
    ravdess = SourceConfig(corpus="ravdess", path=str(data / "ravdess"), text="asr", test_speakers=tuple(str(i) for i in range(19, 25)))
    rav = evaluate(ckpt, ravdess)
    meld = evaluate(ckpt, SourceConfig(corpus="meld", path=str(data / "text" / "meld")), modes=("text-only",),
                    synth_voice=None if args.skip_meld_speech else "en-us")
    ased = evaluate(ckpt, SourceConfig(corpus="ased", path=str(data / "ased"), text="asr", test_speakers=("61", "62", "63", "64", "65")),
                    modes=("paired", "speech-only"))
    nemo = evaluate(ckpt, SourceConfig(corpus="nemo", path=str(data / "nemo"), text="asr", test_speakers=("MP0",)), modes=("paired", "speech-only"))
    results = {"ravdess_19_24": rav, "meld_test": meld, "ased_61_65": ased, "nemo_MP0": nemo}
    if ckpt.model.speaker_baseline is not None:
        results["ravdess_19_24_first_utterance"] = evaluate(ckpt, ravdess, modes=("paired",), strangers=True)
    speed = timing(ckpt)

    print(f"\nModel card figures for {ckpt.path} (measured in {time.time() - t0:.0f} s)\n")
    print("| set | n | accuracy | weighted F1 | UAR | steps (accuracy/weighted F1) |")
    print("|---|---|---|---|---|---|")
    for set_name, modes in results.items():
        for mode, ev in modes.items():
            print(row(f"{set_name} {mode}", ev))
    text_only = meld["text-only"]
    branch = text_only.steps.get("text_branch", text_only.fused)
    checks = {
        "ravdess_fused_acc": rav["paired"].fused.accuracy,
        "ravdess_speech_only_acc": rav["speech-only"].fused.accuracy,
        "meld_text_branch_wf1": branch.weighted_f1,
        "meld_text_only_wf1": text_only.fused.weighted_f1,
    }
    print(f"\nRAVDESS 19-24 accuracy (target >= 0.80): {checks['ravdess_fused_acc']:.3f}")
    print(f"MELD test text-branch weighted F1 (target >= 0.60): {checks['meld_text_branch_wf1']:.3f}"
          f" (the model's output with speech absent: {checks['meld_text_only_wf1']:.3f})")
    print(f"RAVDESS fused - speech-only accuracy (target >= 0): {checks['ravdess_fused_acc'] - checks['ravdess_speech_only_acc']:+.3f}")
    trust = uncertainty(results)
    if "espeak-paired" in meld:
        checks["meld_espeak_fused_wf1"] = meld["espeak-paired"].fused.weighted_f1
        print(f"MELD espeak-ng fused - text-only weighted F1 (target >= -0.03): {checks['meld_espeak_fused_wf1'] - checks['meld_text_only_wf1']:+.3f}"
              f" (vs the text branch: {checks['meld_espeak_fused_wf1'] - checks['meld_text_branch_wf1']:+.3f})")
    print("\n95 % bootstrap intervals (two-stage: speakers, then clips within them; MELD: dialogues, then sentences;"
          " a one-speaker set: its clips)\n")
    print("| figure | estimate [interval] | units resampled |")
    print("|---|---|---|")
    for name, iv in trust["intervals"].items():
        print(f"| {name} | {iv} | {iv.groups} |")
    for name, t in trust["mcnemar"].items():
        print(f"McNemar, {name}: right only in the first {t.only_a}, only in the second {t.only_b}, exact p = {t.p_value:.3f}")
    for name, accs in trust["per_speaker_accuracy"].items():
        print(f"{name} accuracy per test speaker: " + ", ".join(f"{k.rsplit(':', 1)[-1]} {v:.3f}" for k, v in accs.items()))
    print(speed_line(speed))
    if args.json:
        write_output(Path(args.json), json.dumps({
            "checks": checks, "speed": speed,
            "uncertainty": {"intervals": {k: dataclasses.asdict(v) for k, v in trust["intervals"].items()},
                            "mcnemar": {k: dataclasses.asdict(v) for k, v in trust["mcnemar"].items()},
                            "per_speaker_accuracy": trust["per_speaker_accuracy"]},
            "results": {s: {m: ev.as_dict() for m, ev in modes.items()} for s, modes in results.items()},
        }, indent=1).encode() + b"\n", overwrite=args.overwrite)
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except OutputError as exc:  # an output that cannot be written: one line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
