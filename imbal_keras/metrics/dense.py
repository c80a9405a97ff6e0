"""Metrics of dense (mask, sequence) and multi-label predictions, exact and in numpy.

Pixels (tokens, labels) are the examples of these figures: IoU_c = TP / (TP + FP + FN) (scikit-learn's
`jaccard_score(average=None)`), Dice_c = 2 TP / (2 TP + FP + FN) (`f1_score(average=None)`), pixel-level AP and
recall of each class one-vs-rest, and their means over the classes where they are defined (NaN for a class
neither present nor predicted, where scikit-learn returns 0).
"""

from __future__ import annotations

import numpy as np

from imbal_keras.errors import UserInputError
from imbal_keras.metrics.scores import _nanmean, average_precision, confusion_matrix, per_class_recall

__all__ = ["multilabel_metrics", "segmentation_metrics"]


def segmentation_metrics(
    y_true: np.ndarray, probabilities: np.ndarray, *, ignore_label: int | None = None
) -> dict[str, float]:
    """Per-class and mean IoU, Dice, pixel-level AP and recall of a dense prediction, and each class's pixel share.

    Args:
      y_true: class ids of shape (N, H, W), (N, H, W, 1) or (N, T).
      probabilities: (..., K) class probabilities with the labels' spatial shape.
      ignore_label: pixels with this label are left out.

    Returns:
      `iou_class_{c}`, `dice_class_{c}`, `average_precision_class_{c}`, `recall_class_{c}`,
      `pixel_share_class_{c}` for every class c, and `mean_iou`, `mean_dice`, `mean_average_precision`,
      `mean_recall` (means over the classes where each is defined), `pixel_accuracy`.

    Raises:
      UserInputError: labels and probabilities whose pixels do not match.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    k = p.shape[-1]
    p = p.reshape(-1, k)
    y = np.asarray(y_true).reshape(-1)
    if len(y) != len(p):
        raise UserInputError(
            f"y_true has {len(y)} pixels but probabilities has {len(p)} (shape {np.shape(probabilities)}). "
            f"Received: y_true.shape={np.shape(y_true)}"
        )
    if ignore_label is not None:
        p, y = p[y != ignore_label], y[y != ignore_label]
    confusion = confusion_matrix(y, np.argmax(p, axis=1), k)
    tp = np.diag(confusion).astype(np.float64)
    wrong = confusion.sum(axis=0) + confusion.sum(axis=1) - 2 * tp  # fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(tp + wrong > 0, tp / (tp + wrong), np.nan)
        dice = np.where(tp + wrong > 0, 2 * tp / (2 * tp + wrong), np.nan)
    figures = {
        "iou": iou,
        "dice": dice,
        "average_precision": np.array([average_precision(y == c, p[:, c]) for c in range(k)]),
        "recall": per_class_recall(confusion),
    }
    out = {f"mean_{name}": _nanmean(values) for name, values in figures.items()}
    out["pixel_accuracy"] = float(tp.sum() / max(len(y), 1))
    share = np.bincount(y.astype(np.int64), minlength=k)[:k] / max(len(y), 1)
    for c in range(k):
        out.update({f"{name}_class_{c}": float(values[c]) for name, values in figures.items()})
        out[f"pixel_share_class_{c}"] = float(share[c])
    return out


def multilabel_metrics(y_true: np.ndarray, scores: np.ndarray, *, threshold: float = 0.5) -> dict[str, float]:
    """Macro- and micro-averaged AP, per-label AP and recall, and each label's positive share.

    Args:
      y_true: (N, L) of 0/1.
      scores: (N, L) predicted probabilities (or any scores; recall predicts `score >= threshold`).
      threshold: the decision threshold of the recalls.

    Returns:
      `macro_average_precision` (mean over labels with positives, scikit-learn's
      `average_precision_score(average="macro")` where every label has one), `micro_average_precision` (all
      label decisions pooled), `macro_recall`, and per label `average_precision_label_{l}`, `recall_label_{l}`,
      `positive_share_label_{l}`.
    """
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 2:
        raise UserInputError(
            f"y_true and scores must both be (N, L). Received: y_true.shape={y.shape}, scores.shape={s.shape}"
        )
    ap = np.array([average_precision(y[:, j], s[:, j]) for j in range(y.shape[1])])
    positives = y.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(positives > 0, (y & (s >= threshold)).sum(axis=0) / positives, np.nan)
    out = {
        "macro_average_precision": _nanmean(ap),
        "micro_average_precision": average_precision(y.reshape(-1), s.reshape(-1)),
        "macro_recall": _nanmean(recall),
    }
    for j in range(y.shape[1]):
        out[f"average_precision_label_{j}"] = float(ap[j])
        out[f"recall_label_{j}"] = float(recall[j])
        out[f"positive_share_label_{j}"] = float(positives[j] / len(y))
    return out
