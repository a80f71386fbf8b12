"""Two checkpoints on the same clips and sentences: which is better, and is the difference more than chance?

    python bench/paired_compare.py A B [--split test] [--mode paired] [--config PRESET]

Both checkpoints are evaluated (``emomon.training.evaluation.evaluate_checkpoint``) on the corpora and speaker splits
of A's preset (or ``--config``'s), each reading the clips as its own configuration asks. Per source it prints each
model's accuracy and weighted F1, the paired difference B - A with its 95 % two-stage bootstrap interval (speakers,
then their clips; MELD: dialogues), the exact McNemar test on the examples only one of the two got right, and on how
many examples B gives A's label (e.g. a float16 copy of A: ``emomon ensemble --half``).
``units`` is how many speakers (MELD: dialogues) were resampled; a set with one speaker (nEMO's MP0) or none named
(GoEmotions) has only its examples resampled. ``--ensemble`` adds a third model, the average of A's and B's
probabilities, compared with A the same way.

Why paired: the clips both models get right, or both get wrong, say nothing about which is better. The test looks
only at the clips where they disagree, and the interval draws the same speakers and clips for both models, so what
they share (a hard actor, an easy sentence) cancels. Reading two accuracies side by side on a validation set of two
RAVDESS actors and one nEMO speaker could not rank models a few clips apart (docs/MODEL_CARD.md); a paired test says
when such a gap is, or is not, evidence. ``--split val`` is the split a shipping rule should use; ``--split test``
reports, it does not choose.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from emomon.config import load_config
from emomon.errors import EmomonError
from emomon.models.checkpoint import load_checkpoint
from emomon.training.evaluation import MODES, average_scorings, evaluate_checkpoint


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", help="checkpoint A (the reference: a name such as hyfuser-tiny-en, or a folder)")
    ap.add_argument("b", help="checkpoint B (the candidate)")
    ap.add_argument("--split", default="test", choices=("train", "val", "test"))
    ap.add_argument("--mode", action="append", choices=MODES, help="modality mode(s); default paired and text-only")
    ap.add_argument("--config", help="take corpora and speaker splits from this preset instead of A's")
    ap.add_argument("--ensemble", action="store_true",
                    help="also score the average of A's and B's probabilities (as a third model, against A)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    modes = tuple(args.mode or ("paired", "text-only"))
    t0 = time.time()
    try:
        a, b = load_checkpoint(args.a), load_checkpoint(args.b)
        sources = load_config(args.config).data.sources if args.config else a.config.data.sources
        ra = evaluate_checkpoint(a, sources, args.split, modes)
        rb = evaluate_checkpoint(b, sources, args.split, modes)
    except EmomonError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"\nA = {a.path}\nB = {b.path}\n{args.split} split, measured in {time.time() - t0:.0f} s\n")
    print("| source | mode | model | n | units | A accuracy | its accuracy | minus A [95 % interval] | right only in A / "
          "only in it | McNemar p | A wF1 | its wF1 | minus A wF1 [95 % interval] | same label as A |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for source, by_mode in ra.results.items():
        for mode, sa in by_mode.items():
            sb = rb.results.get(source, {}).get(mode)
            if sb is None:
                continue
            candidates = {"B": sb, **({"(A+B)/2": average_scorings(sa, sb)} if args.ensemble else {})}
            for name, sc in candidates.items():
                print(row(source, mode, name, sa, sc))
    return 0


def row(source: str, mode: str, name: str, sa, sc) -> str:
    acc = sc.interval("accuracy", baseline=sa)
    wf1 = sc.interval("weighted_f1", baseline=sa)
    test = sa.mcnemar(sc)
    _, pred_c, pred_a, _ = sc.paired_with(sa)
    n = len(pred_c)
    same = int((pred_c == pred_a).sum())
    units = f"{acc.groups}" if sc.n_units > 1 else "1 (examples resampled)"
    return (f"| {source} | {mode} | {name} | {n} | {units} | {sa.fused.accuracy:.3f} | {sc.fused.accuracy:.3f} | "
            f"{acc.estimate:+.3f} [{acc.low:+.3f}, {acc.high:+.3f}] | {test.only_a} / {test.only_b} | {test.p_value:.3f} | "
            f"{sa.fused.weighted_f1:.3f} | {sc.fused.weighted_f1:.3f} | {wf1.estimate:+.3f} [{wf1.low:+.3f}, {wf1.high:+.3f}] | "
            f"{same}/{n} ({same / max(n, 1):.1%}) |")


if __name__ == "__main__":
    raise SystemExit(main())
