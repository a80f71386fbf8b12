"""Accuracy of `emomon replay` itself on recordings of unseen actors: the whole product path, not cached features.

    python bench/replay_accuracy.py [--model hyfuser-tiny-en] [--data ../shared/data] [--gap 0.7] [--keep DIR]

For each of the checkpoint's RAVDESS validation and test actors (en-tiny: 17-18 and 19-24; a refit trained on its
validation actors and has none), their clips (7 classes, calm -> neutral) are joined in a shuffled order (seed 0) into
one 16 kHz recording with ``--gap`` seconds of silence between clips. The recordings of a split are replayed in one
`emomon replay` process (one input per actor, so one speaker each): VAD segmentation, tiny.en transcription, the
inference worker, the CSV. Each clip's prediction is the probability-weighted vote of the utterances overlapping it
(by overlap length); a clip that no utterance overlaps counts as wrong. Three readings are compared: ``--as-live``
(each actor against the clips heard so far, one speed: what `emomon live` does), the default replay reading
(whole-recording baselines from a first pass, one speed) and ``--best`` (those baselines with speed test-time
augmentation, 0.95/1/1.05 averaged). Also prints each run's speed (audio seconds of the first recording's clock per wall second:
the recordings of a split are replayed side by side). After each split, every reading is compared with reading as
live on the same clips: the paired difference with its 95 % interval (actors, then their clips) and the exact McNemar
test (``emomon.training.metrics``), and every reading with the one before it (what each costlier step adds), with
each reading's CPU seconds.

The default reading's rule (issue 30, committed before the run that applied it): a step from one reading to a
costlier one (as live -> whole-recording baselines at one speed -> + speed TTA) belongs in the default replay reading
only if its paired gain over the reading before it, on the RAVDESS test actors, has a 95 % interval that excludes 0;
a step that fails is kept behind ``emomon replay --best``. """

from __future__ import annotations

import argparse
import csv
import dataclasses
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from emomon.errors import OutputError
from emomon.files import check_output_folder, make_private_folder

READINGS = {"as live": ["--as-live"], "replay default (whole-recording baselines, one speed)": [],
            "replay --best (+ speed TTA)": ["--best"]}


def build_recordings(items, folder: Path, gap: float) -> dict[str, list[tuple[float, float, str]]]:
    """One WAV per actor; returns actor -> [(start_s, end_s, label)] of its clips in the recording."""
    from emomon.training.data.synth import write_wav

    from emomon.audio.decode import load_audio

    by_actor: dict[str, list] = {}
    for it in items:
        by_actor.setdefault(it.speaker, []).append(it)
    rng = np.random.default_rng(0)
    spans = {}
    silence = np.zeros(int(gap * 16000), np.float32)
    for actor, clips in sorted(by_actor.items(), key=lambda kv: int(kv[0])):
        clips = [clips[i] for i in rng.permutation(len(clips))]
        parts, position, spans[actor] = [], 0, []
        for it in clips:
            audio = load_audio(it.audio)
            spans[actor].append((position / 16000, (position + len(audio)) / 16000, it.label))
            parts += [audio, silence]
            position += len(audio) + len(silence)
        write_wav(folder / f"actor{int(actor):02d}.wav", np.concatenate(parts))
    return spans


def score(rows: list[dict], spans: list[tuple[float, float, str]], classes: tuple[str, ...]) -> list[int | None]:
    """Each clip's predicted class index for one actor's CSV rows (None: no utterance overlaps the clip)."""
    utts = [(float(r["start_s"]), float(r["end_s"]), np.array([float(r[f"p_{c}"]) for c in classes])) for r in rows]
    predicted = []
    for start, end, _ in spans:
        vote = np.zeros(len(classes))
        for us, ue, p in utts:
            overlap = min(end, ue) - max(start, us)
            if overlap > 0:
                vote += overlap * p
        predicted.append(int(vote.argmax()) if vote.any() else None)
    return predicted


def compare_readings(split: str, y: np.ndarray, actor: np.ndarray, predicted: dict[str, np.ndarray], classes,
                     stepwise: bool = False) -> list[str]:
    """Table rows: each reading after the first against the first (``stepwise``: against the one before it), paired
    on the same clips."""
    from emomon.training.metrics import bootstrap_interval, mcnemar

    names = list(predicted)
    rows = []
    for k, reading in enumerate(names[1:], 1):
        base, pred = predicted[names[k - 1] if stepwise else names[0]], predicted[reading]
        if stepwise:
            reading = f"{reading} - {names[k - 1]}"
        diff = bootstrap_interval(y, pred, classes, actor, baseline=base)
        test = mcnemar(y, base, pred)
        rows.append(f"| {split} | {reading} | {diff.estimate:+.3f} [{diff.low:+.3f}, {diff.high:+.3f}] | "
                    f"{test.only_a} / {test.only_b} | {test.p_value:.3f} |")
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="hyfuser-tiny-en")
    ap.add_argument("--data", default=os.environ.get("EMOMON_DATA", "../shared/data"))
    ap.add_argument("--gap", type=float, default=0.7, help="seconds of silence between clips")
    ap.add_argument("--keep", help="write the recordings and CSVs here instead of a temporary folder (a new or empty one)")
    ap.add_argument("--overwrite", action="store_true", help="with --keep: use a folder that is not empty, replacing its CSVs")
    args = ap.parse_args()
    if args.keep:  # before any work: the folder can be written, and nothing in it is replaced unasked
        keep = check_output_folder(args.keep, what="the recordings and CSVs into", create=True)
        try:
            holds = keep.is_dir() and any(keep.iterdir())
        except OSError as exc:
            raise OutputError(f"cannot write the recordings and CSVs into {keep}: {exc.strerror or exc}") from None
        if holds and not args.overwrite:
            raise OutputError(f"cannot write the recordings and CSVs into {keep}: it is not empty; choose another "
                              "--keep folder, or --overwrite to replace what is there")
    data = Path(args.data).resolve()
    if not (data / "ravdess").is_dir():
        print(f"RAVDESS not found under {data}", file=sys.stderr)
        return 3
    from emomon.models.checkpoint import load_checkpoint
    from emomon.training.sources import load_sources

    from emomon.config import SourceConfig

    ckpt = load_checkpoint(args.model)
    src = next((s for s in ckpt.config.data.sources if s.corpus == "ravdess"), None)
    if src is None:
        print(f"{args.model} was not trained with RAVDESS held-out speakers", file=sys.stderr)
        return 3
    cfg = dataclasses.replace(ckpt.config, data=dataclasses.replace(ckpt.config.data, sources=(
        SourceConfig(corpus="ravdess", path=str(data / "ravdess"), text="none", val_speakers=src.val_speakers,
                     test_speakers=src.test_speakers),)))
    items = [it for it in load_sources(cfg, splits=("val", "test"))[0].items if it.label in ckpt.classes]
    with tempfile.TemporaryDirectory(prefix="emomon-replay-acc-") as tmp:
        root = Path(args.keep or tmp)
        make_private_folder(root, exist_ok=True)  # 0700: the recordings are people's voices
        print(f"`emomon replay` on RAVDESS actors' clips joined into one recording each ({args.model}, gap {args.gap} s)\n")
        print("| split | actors | clips | reading | accuracy | clips with an utterance | speed (x real time) | CPU s |")
        print("|---|---|---|---|---|---|---|---|")
        comparisons: list[str] = []
        steps: list[str] = []
        for split in ("val", "test"):
            if not any(it.split == split for it in items):  # a refit trains on its validation actors: none to replay
                print(f"| {split} | none ({args.model} has no RAVDESS {split} actors) | 0 | — | — | — | — |", flush=True)
                continue
            folder = root / split
            folder.mkdir(exist_ok=True)
            spans = build_recordings([it for it in items if it.split == split], folder, args.gap)
            actors = sorted(spans, key=int)
            files = [str(folder / f"actor{int(a):02d}.wav") for a in actors]
            names = [x for i, a in enumerate(actors) for x in ("--speaker", f"{i}=actor{int(a):02d}")]
            index = {c: i for i, c in enumerate(ckpt.classes)}
            y = np.array([index[label] for a in actors for _, _, label in spans[a]])
            actor_of = np.array([a for a in actors for _ in spans[a]])
            predicted: dict[str, np.ndarray] = {}
            for reading, flags in READINGS.items():
                out = folder / f"{reading.replace(' ', '_').replace('(', '').replace(')', '').replace('+', 'plus')}.csv"
                out.unlink(missing_ok=True)
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                r = subprocess.run([sys.executable, "-m", "emomon", "replay", *files, *names, "--model", args.model,
                                    "--csv", str(out), "--quiet-lines", *flags], capture_output=True, text=True, check=False)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
                if r.returncode != 0:
                    print(r.stderr, file=sys.stderr)
                    return r.returncode
                with open(out, newline="", encoding="utf-8") as f:
                    rows = [row for row in csv.DictReader(f) if row["utterance"]]
                clips = [c for a in actors
                         for c in score([row for row in rows if row["speaker"] == f"actor{int(a):02d}"], spans[a], ckpt.classes)]
                # a clip no utterance covers counts as wrong: any class but its own
                pred = np.array([c if c is not None else (t + 1) % len(ckpt.classes) for c, t in zip(clips, y)])
                predicted[reading] = pred
                speed = next(line for line in r.stderr.splitlines() if "x real time" in line).split("(")[-1].split("x")[0]
                print(f"| {split} | {','.join(actors)} | {len(y)} | {reading} | {(pred == y).mean():.3f} | "
                      f"{sum(c is not None for c in clips)} | {speed} | {cpu:.0f} |", flush=True)
            comparisons += compare_readings(split, y, actor_of, predicted, ckpt.classes)
            steps += compare_readings(split, y, actor_of, predicted, ckpt.classes, stepwise=True)
    if comparisons:
        first = next(iter(READINGS))
        print(f"\n| split | reading | minus {first} [95 %] | clips right only {first} / only this reading | McNemar p |")
        print("|---|---|---|---|---|")
        print("\n".join(comparisons))
        print("\n| split | step | gain [95 %] | clips right only before / only after | McNemar p |")
        print("|---|---|---|---|---|")
        print("\n".join(steps))
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except OutputError as exc:  # an output that cannot be written: one line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
