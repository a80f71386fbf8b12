"""How a short utterance's Whisper window is completed before decoding: word error rate and encoder time.

    python bench/asr_padding.py [--model tiny.en] [--data ../shared/data] [--sentences 40]

Whisper's decoder was trained on 30 s windows. Three ways to decode a 2-5 s utterance:

- ``alone``: decode from the utterance's own encoder frames only (cheapest, and what variable-length encoding
  invites);
- ``padded-mel``: pad the waveform with silence to 30 s and encode all of it (what faster-whisper does; ~8x the
  encoder work of a 3 s clip);
- ``silence-tail``: encode the utterance alone and complete its window with the encoder's output for 30 s of
  silence, computed once (what :class:`emomon.models.asr.transcriber.Transcriber` does).

Material: ``--sentences`` MELD test sentences read by espeak-ng in varied voices (built-in sentences when the data
folder is absent), and RAVDESS actors 19-24 (real speech, two known sentences) when present. Prints WER (words,
case and punctuation ignored) and the mean encoder milliseconds per utterance for each way, measured in one run.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

BUILT_IN = [
    "Good morning everyone, let's get started with today's lesson.",
    "I can't believe you did this to me again.",
    "Could you please open the window, it's warm in here.",
    "We will meet at the station at half past seven.",
    "That is wonderful news, well done.",
    "I'm really worried about the exam next week.",
    "Please put your phones away before we begin.",
    "The library closes early on Fridays.",
]


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("-", " ")).split()


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def material(data: Path, n_sentences: int) -> dict[str, list[tuple[np.ndarray, str]]]:
    from emomon.training.data.synth import speak_varied

    sets: dict[str, list[tuple[np.ndarray, str]]] = {}
    sentences = BUILT_IN
    meld = data / "text" / "meld"
    if meld.is_dir():
        from emomon.training.data.corpora import read_meld

        test = [it.text for it in read_meld(meld) if it.split == "test" and 4 <= len(words(it.text)) <= 20]
        rng = np.random.default_rng(0)
        sentences = [test[i] for i in rng.choice(len(test), min(n_sentences, len(test)), replace=False)]
    sets["espeak-ng"] = [(speak_varied(s, f"asr-bench-{i}"), s) for i, s in enumerate(sentences)]
    rav = data / "ravdess"
    if rav.is_dir():
        from emomon.audio.decode import load_audio

        statement = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}
        names = [p for p in rav.rglob("*") if p.suffix in (".wav", ".flac") and len(p.stem.split("-")) == 7]
        clips = sorted(p for p in names if 19 <= int(p.stem.split("-")[-1]) <= 24 and p.stem.split("-")[2] in ("01", "05"))
        sets["RAVDESS 19-24 (neutral, angry)"] = [(load_audio(p), statement[p.stem.split("-")[4]]) for p in clips]
    return sets


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny.en")
    ap.add_argument("--data", default=os.environ.get("EMOMON_DATA", "../shared/data"))
    ap.add_argument("--sentences", type=int, default=40)
    args = ap.parse_args()
    import torch

    from emomon.config import AsrConfig
    from emomon.errors import EmomonError
    from emomon.models.asr.encoder import MAX_SECONDS, SAMPLE_RATE
    from emomon.models.asr.transcriber import Transcriber

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    try:
        tr = Transcriber(AsrConfig(model=args.model, language="en", beam_size=1))
        sets = material(Path(args.data).resolve(), args.sentences)
    except EmomonError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    tr.decode(tr.encode(np.zeros(SAMPLE_RATE, np.float32))[0][-1][:, :50])  # warm-up (and the silence tail)
    window = int(MAX_SECONDS * SAMPLE_RATE)

    def alone(audio):
        states, n = tr.encode(audio)
        silence, tr._silence = tr._silence, np.zeros((0, states[-1].shape[-1]), np.float32)  # no tail
        try:
            return tr.decode(states[-1][:, :n])
        finally:
            tr._silence = silence

    def padded_mel(audio):
        states, _ = tr.encode(np.pad(audio, (0, max(0, window - len(audio)))))
        return tr.decode(states[-1])

    def silence_tail(audio):
        return tr.transcribe(audio)

    print(f"ASR window completion, faster-whisper {args.model}, greedy; WER and encoder+decoder ms per utterance (CPU, "
          f"{torch.get_num_threads()} threads)\n")
    print("| material | n | alone | padded-mel | silence-tail |")
    print("|---|---|---|---|---|")
    for name, clips in sets.items():
        cells = []
        for way in (alone, padded_mel, silence_tail):
            errors = total = 0
            t0 = time.perf_counter()
            for audio, ref in clips:
                hyp = way(audio).text
                errors += edit_distance(words(ref), words(hyp))
                total += len(words(ref))
            ms = 1000 * (time.perf_counter() - t0) / len(clips)
            cells.append(f"WER {errors / max(total, 1):.2f}, {ms:.0f} ms")
            print(f"  {name}: {way.__name__} done", file=sys.stderr, flush=True)
        print(f"| {name} | {len(clips)} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
