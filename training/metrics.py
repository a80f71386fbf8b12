"""Classification metrics as the seeds report them: accuracy, weighted precision/recall/F1 (HyFusER eq. 10), plus
unweighted average recall (UAR), macro F1 and the confusion matrix; and how far a test figure can be trusted.

Why the intervals: the test sets are small in the unit that matters. RAVDESS's held-out set is 360 clips but only six
actors, and two models a few clips apart on it have been ranked in opposite orders by other actors. So the model card
gives each figure a bootstrap interval that resamples *speakers* (or MELD dialogues) and then clips within them, and
each paired comparison (fused against speech only, a flat voice against no voice) an interval of the difference on
the same resamples plus an exact McNemar test on the examples where the two outputs disagree.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


@dataclass
class Metrics:
    n: int
    accuracy: float
    weighted_precision: float
    weighted_recall: float
    weighted_f1: float
    macro_f1: float
    uar: float
    confusion: list[list[int]]  # rows = true class, columns = predicted class
    classes: list[str]

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        return f"acc {self.accuracy:.3f}  wF1 {self.weighted_f1:.3f}  UAR {self.uar:.3f}  (n={self.n})"


def confusion_matrix(y_true, y_pred, n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) counts, rows = true class, columns = predicted class."""
    cm = np.zeros((n_classes, n_classes), dtype=int)
    np.add.at(cm, (np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)), 1)
    return cm


def classification_metrics(y_true, y_pred, classes: list[str] | tuple[str, ...]) -> Metrics:
    """Metrics over the classes present in ``y_true`` (support-weighted averages weigh absent classes by 0)."""
    cm = confusion_matrix(y_true, y_pred, len(classes))
    figures = _figures_from_confusions(cm)
    return Metrics(n=int(cm.sum()), **{name: float(v) for name, v in figures.items()}, confusion=cm.tolist(),
                   classes=list(classes))


def _figures_from_confusions(cms: np.ndarray) -> dict[str, np.ndarray]:
    """Every figure of :class:`Metrics` for one confusion matrix (k, k) or a stack of them (..., k, k): the single
    place these formulas live, for a test set (:func:`classification_metrics`) and for each bootstrap resample."""
    cms = np.asarray(cms, dtype=float)
    tp = np.diagonal(cms, axis1=-2, axis2=-1)
    support, predicted = cms.sum(-1), cms.sum(-2)
    n = np.maximum(support.sum(-1), 1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(tp), where=(precision + recall) > 0)
    present = support > 0
    n_present = np.maximum(present.sum(-1), 1)  # no class present: macro figures are 0
    return {
        "accuracy": tp.sum(-1) / n,
        "weighted_precision": (support * precision).sum(-1) / n,
        "weighted_recall": (support * recall).sum(-1) / n,
        "weighted_f1": (support * f1).sum(-1) / n,
        "macro_f1": (f1 * present).sum(-1) / n_present,
        "uar": (recall * present).sum(-1) / n_present,
    }


def confusion_table(m: Metrics) -> str:
    """The confusion matrix as fixed-width text (rows true, columns predicted)."""
    width = max(7, max(len(c) for c in m.classes) + 1)
    head = " " * width + "".join(f"{c[:6]:>7}" for c in m.classes)
    rows = [head] + [f"{c:<{width}}" + "".join(f"{v:>7}" for v in row) for c, row in zip(m.classes, m.confusion)]
    return "\n".join(rows)


#: The figures :func:`bootstrap_interval` can resample.
INTERVAL_METRICS = ("accuracy", "weighted_f1", "uar")


@dataclass(frozen=True)
class Interval:
    """A figure on the whole test set and its bootstrap interval. ``groups`` is how many units were resampled
    (speakers, dialogues, or clips when no grouping is given)."""

    estimate: float
    low: float
    high: float
    level: float
    groups: int

    def __str__(self) -> str:
        return f"{self.estimate:.3f} [{self.low:.3f}, {self.high:.3f}]"


def bootstrap_interval(y_true, y_pred, classes, groups=None, *, baseline=None, metric: str = "accuracy",
                       n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> Interval:
    """Percentile bootstrap interval of ``metric`` (one of :data:`INTERVAL_METRICS`) of ``y_pred``, or with
    ``baseline`` (other predictions of the same examples) of the paired difference ``metric(y_pred) -
    metric(baseline)``, both computed on the same resamples.

    ``groups`` (one label per example: a speaker, a dialogue) makes it a two-stage (hierarchical) bootstrap: each
    resample draws groups with replacement, then, within every drawn group, its examples with replacement. The first
    stage is what a speaker-held-out figure claims to generalise over (other speakers); examples of one speaker are
    not independent, so resampling clips alone gives an interval that is too narrow. The second stage keeps the
    interval honest when groups are few: with RAVDESS's six test actors, a difference of a handful of clips that
    happens to fall the same way for every actor would otherwise get an interval of almost no width. Without
    ``groups`` each example is its own group (the ordinary bootstrap).
    """
    if metric not in INTERVAL_METRICS:
        raise ValueError(f"metric must be one of {INTERVAL_METRICS}, not {metric!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), not {level}")
    y_true = np.asarray(y_true, dtype=int)
    n = len(y_true)
    if n == 0:
        raise ValueError("no examples to bootstrap")
    preds = [np.asarray(y_pred, dtype=int)] + ([np.asarray(baseline, dtype=int)] if baseline is not None else [])
    if any(len(p) != n for p in preds) or (groups is not None and len(groups) != n):
        raise ValueError("y_true, the predictions and groups must have one entry per example")
    _, group_index = np.unique(np.asarray(groups if groups is not None else np.arange(n)).astype(str), return_inverse=True)
    n_groups = int(group_index.max()) + 1
    members = [np.flatnonzero(group_index == g) for g in range(n_groups)]
    k = len(classes)
    # A resample is a weight per example (how often it was drawn); its confusion matrix is then one product with
    # each output's one-hot (true, predicted) cell per example.
    cells = np.stack([np.eye(k * k)[y_true * k + p] for p in preds])  # (outputs, n, k*k)

    def statistic(weights: np.ndarray) -> np.ndarray:  # (resamples, n) -> (resamples,)
        values = _figures_from_confusions(np.einsum("rn,onc->orc", weights, cells).reshape(len(preds), -1, k, k))[metric]
        return values[0] - values[1] if baseline is not None else values[0]

    estimate = float(statistic(np.ones((1, n)))[0])
    rng = np.random.default_rng(seed)
    draws = np.empty(n_boot)
    for start in range(0, n_boot, 256):  # in chunks, to bound memory
        size = min(256, n_boot - start)
        times_drawn = rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=size)  # (size, groups)
        weights = np.zeros((size, n))
        for g, idx in enumerate(members):
            weights[:, idx] = rng.multinomial(times_drawn[:, g] * len(idx), np.full(len(idx), 1.0 / len(idx)))
        draws[start : start + size] = statistic(weights)
    low, high = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return Interval(estimate, float(low), float(high), level, n_groups)


@dataclass(frozen=True)
class McNemar:
    """Exact McNemar test of two outputs on the same examples: how many only ``a`` got right, how many only ``b``,
    and the two-sided binomial p-value of that split under the hypothesis that both are equally often right."""

    only_a: int
    only_b: int
    p_value: float


def mcnemar(y_true, pred_a, pred_b) -> McNemar:
    y_true, pred_a, pred_b = (np.asarray(v, dtype=int) for v in (y_true, pred_a, pred_b))
    right_a, right_b = pred_a == y_true, pred_b == y_true
    only_a, only_b = int((right_a & ~right_b).sum()), int((right_b & ~right_a).sum())
    n, m = only_a + only_b, min(only_a, only_b)
    # P(X <= m) for X ~ Binomial(n, 1/2), doubled (the distribution is symmetric), at most 1.
    tail = sum(math.comb(n, i) for i in range(m + 1)) / 2**n if n else 1.0
    return McNemar(only_a, only_b, min(1.0, 2 * tail))


def per_group_accuracy(y_true, y_pred, groups) -> dict[str, float]:
    """Accuracy of each group (speaker), in the groups' sorted order."""
    y_true, y_pred, groups = np.asarray(y_true), np.asarray(y_pred), np.asarray(groups).astype(str)
    return {g: float((y_pred[groups == g] == y_true[groups == g]).mean()) for g in sorted(set(groups.tolist()))}
