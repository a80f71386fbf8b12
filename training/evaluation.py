"""Evaluating a checkpoint on corpora: its own test splits, or any corpus/manifest the user names."""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import numpy as np

from emomon.models.checkpoint import Checkpoint
from emomon.config import SourceConfig
from emomon.errors import InputError, ModelError
from emomon.training.feature_builder import FeatureBuilder
from emomon.training.pairing import Example, fixed_examples
from emomon.training.sources import load_sources
from emomon.training.features import FeatureStore
from emomon.training.metrics import Interval, McNemar, bootstrap_interval, classification_metrics, confusion_table, mcnemar
from emomon.training.loop import Evaluation, predict_examples

MODES = ("paired", "text-only", "speech-only")


def evaluation_unit(item) -> str:
    """What a test figure generalises over, the unit its intervals resample: the speaker; for MELD, whose speakers
    are sitcom characters heard all through the test set, the dialogue."""
    return f"dialogue:{item.id.rsplit('_', 1)[0]}" if item.corpus == "meld" else f"speaker:{item.corpus}:{item.speaker}"


@dataclass
class Scored:
    """An :class:`Evaluation` with what it was computed from: the labels, the predicted class of the fused output
    and of each step, the corpus item and the unit (:func:`evaluation_unit`) of each example."""

    evaluation: Evaluation
    y: np.ndarray
    pred: dict[str, np.ndarray]  # "fused" and each step name -> predicted class per example
    items: list[str]
    units: np.ndarray
    probs: np.ndarray | None = None  # the fused output's class probabilities (examples, classes)

    @property
    def fused(self):
        return self.evaluation.fused

    @property
    def steps(self):
        return self.evaluation.steps

    def as_dict(self) -> dict:
        return self.evaluation.as_dict()

    @property
    def n_units(self) -> int:
        """How many speakers (MELD: dialogues) the examples come from."""
        return len(set(self.units.tolist()))

    @functools.cached_property
    def accuracy_interval(self) -> Interval:
        """The fused accuracy's interval, computed once (``emomon eval`` prints it and writes it to JSON)."""
        return self.interval()

    def interval(self, metric: str = "accuracy", output: str = "fused", baseline: "Scored | None" = None,
                 baseline_output: str = "fused") -> Interval:
        """95 % bootstrap interval of a figure of ``output``, or with ``baseline`` of its paired difference from
        ``baseline_output`` of another scoring on the examples (items) both share. Whole units are resampled; a set
        of one unit (one test speaker) can only have its examples resampled, which says nothing about other
        speakers."""
        if baseline is None:
            y, pred, units, base = self.y, self.pred[output], self.units, None
        else:
            y, pred, base, units = self.paired_with(baseline, output, baseline_output)
        groups = units if len(set(units.tolist())) > 1 else None
        return bootstrap_interval(y, pred, self.fused.classes, groups, baseline=base, metric=metric)

    def paired_with(self, other: "Scored", output: str = "fused", other_output: str = "fused"):
        """Labels, this scoring's and ``other``'s predictions and the units of the examples (items) both scored, in
        this scoring's order. Refuses two scorings that disagree on an item's label."""
        mine, theirs = self.shared_items(other)
        return self.y[mine], self.pred[output][mine], other.pred[other_output][theirs], self.units[mine]

    def shared_items(self, other: "Scored") -> tuple[np.ndarray, np.ndarray]:
        """Indices of the items both scored, into this scoring (in its order) and into ``other``. Refuses two
        scorings that disagree on an item's label."""
        where = {item: i for i, item in enumerate(other.items)}
        mine = np.array([i for i, item in enumerate(self.items) if item in where], dtype=int)
        theirs = np.array([where[self.items[i]] for i in mine], dtype=int)
        if not np.array_equal(self.y[mine], other.y[theirs]):
            raise ValueError("the two scorings give some shared items different labels (different class lists?)")
        return mine, theirs

    def mcnemar(self, other: "Scored", output: str = "fused", other_output: str = "fused") -> McNemar:
        """Exact McNemar test of this scoring's ``output`` against ``other``'s on the items both scored."""
        y, a, b, _ = self.paired_with(other, output, other_output)
        return mcnemar(y, a, b)


def score_examples(model, examples: list[Example], bank, classes, unit_of: dict[str, str]) -> Scored:
    """Predict ``examples`` (each naming its ``item``) and keep the predictions beside the metrics."""
    probs, steps = predict_examples(model, examples, bank)
    y = np.array([e.label for e in examples], dtype=int)
    pred = {"fused": probs.argmax(1), **{k: v.argmax(1) for k, v in steps.items()}}
    evaluation = Evaluation(classification_metrics(y, pred["fused"], classes),
                            {k: classification_metrics(y, p, classes) for k, p in pred.items() if k != "fused"})
    items = [e.item for e in examples]
    return Scored(evaluation, y, pred, items, np.array([unit_of[i] for i in items]), probs)


def average_scorings(a: Scored, b: Scored) -> Scored:
    """The two models' fused probabilities averaged, on the items both scored (in ``a``'s order): an ensemble of the
    two, scored like either."""
    if a.probs is None or b.probs is None:
        raise ValueError("averaging needs both scorings' probabilities")
    mine, theirs = a.shared_items(b)
    probs = (a.probs[mine] + b.probs[theirs]) / 2
    y, classes = a.y[mine], a.fused.classes
    pred = probs.argmax(1)
    return Scored(Evaluation(classification_metrics(y, pred, classes)), y, {"fused": pred}, [a.items[i] for i in mine],
                  a.units[mine], probs)


@dataclass
class EvalReport:
    split: str
    results: dict[str, dict[str, Scored]]  # source -> mode -> scoring

    def as_dict(self) -> dict:
        return {"split": self.split,
                "results": {s: {m: {**sc.as_dict(), "accuracy_interval": dataclasses.asdict(sc.accuracy_interval)}
                                for m, sc in d.items()} for s, d in self.results.items()}}

    def render(self, confusion: bool = True) -> str:
        lines = []
        for source, modes in self.results.items():
            for mode, ev in modes.items():
                lines.append(f"{source:<12} {mode:<12} fused  {ev.fused.summary()}  {_interval_note(ev)}")
                for step, m in ev.steps.items():
                    lines.append(f"{'':<12} {'':<12} {step:<6} {m.summary()}")
                if confusion and mode == "paired":
                    lines.append(confusion_table(ev.fused))
        return "\n".join(lines)


def evaluate_checkpoint(ckpt: Checkpoint, sources: tuple[SourceConfig, ...] | None = None, split: str = "test",
                        modes: tuple[str, ...] = MODES, store: FeatureStore | None = None, device: str = "cpu") -> EvalReport:
    """Metrics of the fused output and each step, per source and per modality mode.

    ``sources`` defaults to the corpora the checkpoint was trained with (so ``split="test"`` reproduces its
    held-out test figures); a source given here with no speakers named is evaluated whole when ``split="all"``.
    """
    cfg = ckpt.config
    if sources is not None:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, sources=tuple(sources)))
    wanted = ("train", "val", "test") if split == "all" else (split,)
    srcs = load_sources(cfg, splits=wanted)
    if split == "all":
        for s in srcs:
            s.items = [dataclasses.replace(it, split="test") for it in s.items]
        split = "test"
    builder = FeatureBuilder(cfg, store, device=device, text_layers=ckpt.text_layers)
    bank = builder.build(srcs, train=False, word_times=bool(getattr(ckpt.model, "uses_word_times", False)))
    bank.frame_rate = builder.speech_encoder.frame_rate
    got = builder.fingerprints()
    if got["text"].split(":")[:2] != ckpt.fingerprints["text"].split(":")[:2] or got["speech"].split(":")[0] != ckpt.fingerprints["speech"].split(":")[0]:
        raise ModelError(f"the checkpoint was trained on encoders {ckpt.fingerprints}, but {got} are configured")
    model = ckpt.model.to(device)
    unit_of = {it.id: evaluation_unit(it) for s in srcs for it in s.items}
    results: dict[str, dict[str, Scored]] = {}
    for mode in modes:
        for name, exs in fixed_examples(cfg, srcs, bank, split, mode).items():
            results.setdefault(name, {})[mode] = score_examples(model, exs, bank, cfg.classes, unit_of)
    if not results:
        raise InputError(f"nothing to evaluate: no readable example with a label of the model's classes in the {split} "
                         f"split of {', '.join(s.name for s in srcs) or 'the sources'}")
    return EvalReport(split, results)


def _interval_note(sc: Scored) -> str:
    iv = sc.accuracy_interval
    kind = str(sc.units[0]).split(":")[0]  # evaluation_unit's prefix: speaker or dialogue
    what = f"{iv.groups} {kind}s" if sc.n_units > 1 else f"the examples of one {kind}"
    return f"[95% {iv.low:.3f}-{iv.high:.3f} over {what}]"
