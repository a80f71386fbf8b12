"""Classification metrics as the seeds report them: accuracy, weighted precision/recall/F1 (HyFusER eq. 10), plus
unweighted average recall (UAR), macro F1 and the confusion matrix."""

from __future__ import annotations

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


def classification_metrics(y_true, y_pred, classes: list[str] | tuple[str, ...]) -> Metrics:
    """Metrics over the classes present in ``y_true`` (support-weighted averages weigh absent classes by 0)."""
    y_true = np.asarray(y_true, dtype=int)
    y_pred = np.asarray(y_pred, dtype=int)
    k = len(classes)
    cm = np.zeros((k, k), dtype=int)
    np.add.at(cm, (y_true, y_pred), 1)
    support = cm.sum(1)
    predicted = cm.sum(0)
    tp = np.diag(cm).astype(float)
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(k), where=(precision + recall) > 0)
    n = int(support.sum())
    w = support / max(n, 1)
    present = support > 0
    return Metrics(
        n=n,
        accuracy=float(tp.sum() / max(n, 1)),
        weighted_precision=float((w * precision).sum()),
        weighted_recall=float((w * recall).sum()),
        weighted_f1=float((w * f1).sum()),
        macro_f1=float(f1[present].mean()) if present.any() else 0.0,
        uar=float(recall[present].mean()) if present.any() else 0.0,
        confusion=cm.tolist(),
        classes=list(classes),
    )


def confusion_table(m: Metrics) -> str:
    """The confusion matrix as fixed-width text (rows true, columns predicted)."""
    width = max(7, max(len(c) for c in m.classes) + 1)
    head = " " * width + "".join(f"{c[:6]:>7}" for c in m.classes)
    rows = [head] + [f"{c:<{width}}" + "".join(f"{v:>7}" for v in row) for c, row in zip(m.classes, m.confusion)]
    return "\n".join(rows)
