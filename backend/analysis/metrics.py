"""Classification metrics and prediction flips: pure functions over NumPy arrays.

Notation follows ../shared/design/SCIENCE.md: C classes, N samples, y the true label.
Model A is the original, model B the pruned one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FLIP_CATEGORIES = ("correct_to_wrong", "wrong_to_correct", "wrong_to_other_wrong")


def _labels(y: np.ndarray, name: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} should be 1-D, got shape {y.shape}")
    return y.astype(np.int64, copy=False)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, numerically stable.

    Args:
        logits: (N, C).

    Returns:
        (N, C) probabilities; each row sums to 1.
    """
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts of (true, predicted) pairs.

    Args:
        y_true: (N,) labels in [0, C).
        y_pred: (N,) predictions in [0, C).
        num_classes: C.

    Returns:
        (C, C) int64; rows are true classes, columns predicted classes
        (the convention of sklearn.metrics.confusion_matrix).
    """
    y_true, y_pred = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} differ in length")
    for name, arr in (("y_true", y_true), ("y_pred", y_pred)):
        if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
            raise ValueError(f"{name} has labels outside [0, {num_classes})")
    flat = y_true * num_classes + y_pred
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


@dataclass(frozen=True)
class ClassificationSummary:
    """Accuracy and per-class figures of one model on one split.

    Attributes:
        accuracy: fraction correct (A in Good et al. 2022).
        recall: (C,) per-class recall R^c = TP_c / support_c (NaN for an empty class).
        precision: (C,) TP_c / predicted_c (NaN when class c is never predicted).
        support: (C,) number of samples of each true class.
        confusion: (C, C) counts, rows true, columns predicted.
    """

    accuracy: float
    recall: np.ndarray
    precision: np.ndarray
    support: np.ndarray
    confusion: np.ndarray

    def to_json(self) -> dict[str, object]:
        def clean(a: np.ndarray) -> list[float | None]:
            return [None if np.isnan(v) else float(v) for v in a]

        return {
            "accuracy": self.accuracy,
            "recall": clean(self.recall),
            "precision": clean(self.precision),
            "support": [int(v) for v in self.support],
            "confusion": self.confusion.astype(int).tolist(),
        }


def summarize(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> ClassificationSummary:
    """Accuracy, per-class recall/precision/support and confusion matrix."""
    cm = confusion_matrix(y_true, y_pred, num_classes)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, tp / support, np.nan)
        precision = np.where(predicted > 0, tp / predicted, np.nan)
    total = cm.sum()
    accuracy = float(tp.sum() / total) if total else float("nan")
    return ClassificationSummary(accuracy, recall, precision, support, cm)


def flip_categories(y_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray) -> np.ndarray:
    """Classify how each sample's prediction changed from model A to model B.

    SCIENCE.md section 3: correct->wrong, wrong->correct, wrong->other-wrong.

    Args:
        y_true: (N,) labels.
        pred_a: (N,) predictions of model A (original).
        pred_b: (N,) predictions of model B (pruned).

    Returns:
        (N,) object array of category names from :data:`FLIP_CATEGORIES`, or "" where the
        sample did not flip (same prediction, or correct in both).
    """
    y = _labels(y_true, "y_true")
    a, b = _labels(pred_a, "pred_a"), _labels(pred_b, "pred_b")
    if not (y.shape == a.shape == b.shape):
        raise ValueError(f"lengths differ: y {y.shape}, pred_a {a.shape}, pred_b {b.shape}")
    ok_a, ok_b = a == y, b == y
    out = np.full(y.shape, "", dtype=object)
    out[ok_a & ~ok_b] = "correct_to_wrong"
    out[~ok_a & ok_b] = "wrong_to_correct"
    out[~ok_a & ~ok_b & (a != b)] = "wrong_to_other_wrong"
    return out


def flip_counts(categories: np.ndarray) -> dict[str, int]:
    """How many samples fall in each flip category."""
    return {c: int(np.sum(categories == c)) for c in FLIP_CATEGORIES}
