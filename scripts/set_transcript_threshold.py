"""Set the transcript threshold (``model.min_asr_logprob``) of a trained checkpoint, without retraining.

    python scripts/set_transcript_threshold.py CHECKPOINT_DIR -1.0

Below the threshold an ASR transcript reaches the model as no text. A model trained reading every transcript already
handles absent text (modality dropout), so the rule can be switched on after training; this is how the shipped
``en-tiny`` got its -1.0 (chosen on validation with ``bench/transcript_threshold.py``, docs/MODEL_CARD.md). A thin
command over :func:`emomon.training.saving.set_transcript_threshold`, which records the value it replaced in the
checkpoint's metadata and refuses an invalid value before writing anything.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from emomon.errors import EmomonError
from emomon.training.saving import set_transcript_threshold


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", type=Path, help="checkpoint directory (config.json + weights)")
    ap.add_argument("threshold", type=float, help="average token log-probability, -20 (read every transcript) to 0")
    args = ap.parse_args()
    try:
        before = set_transcript_threshold(args.checkpoint, args.threshold)
    except EmomonError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{args.checkpoint}: min_asr_logprob {before:g} -> {args.threshold:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
