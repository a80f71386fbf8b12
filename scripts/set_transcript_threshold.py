"""Set the transcript threshold (``model.min_asr_logprob``) of a trained checkpoint, without retraining.

    python scripts/set_transcript_threshold.py CHECKPOINT_DIR -1.0

Below the threshold an ASR transcript reaches the model as no text. A model trained reading every transcript already
handles absent text (modality dropout), so the rule can be switched on after training; this is how the shipped
``en-tiny`` got its -1.0 (chosen on validation with ``bench/transcript_threshold.py``, README model card). The value
is written into ``config.json`` and appended to its metadata's ``transcript_threshold`` list with the value it
replaced (the first entry's is what the model was trained with); the checkpoint is then loaded again to check it, and
a value it refuses leaves the file as it was.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

from emomon.errors import EmomonError
from emomon.models.checkpoint import CONFIG_FILE, load_checkpoint


def _replace(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", type=Path, help="checkpoint directory (config.json + weights)")
    ap.add_argument("threshold", type=float, help="average token log-probability, -20 (read every transcript) to 0")
    args = ap.parse_args()
    path = args.checkpoint / CONFIG_FILE
    original = None
    try:
        before = load_checkpoint(args.checkpoint).config.model.min_asr_logprob
        original = path.read_text(encoding="utf-8")
        doc = json.loads(original)
        doc["config"]["model"]["min_asr_logprob"] = args.threshold
        history = doc.setdefault("metadata", {}).setdefault("transcript_threshold", [])
        history.append({"value": args.threshold, "before": before, "set": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")})
        _replace(path, json.dumps(doc, indent=1) + "\n")
        after = load_checkpoint(args.checkpoint).config.model.min_asr_logprob  # validates the value
    except (EmomonError, OSError, ValueError, KeyError) as exc:
        if original is not None:  # a refused value leaves the checkpoint as it was
            _replace(path, original)
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{args.checkpoint}: min_asr_logprob {before:g} -> {after:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
