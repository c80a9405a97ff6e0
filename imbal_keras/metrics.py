"""Evaluation metrics for imbalanced classification, exact and in numpy.

`average_precision` is the exact area under the precision-recall step curve (the same definition as
scikit-learn's `average_precision_score`, no interpolation), `roc_auc` the Mann-Whitney statistic with ties
counted half. For K > 2 classes the ranking metrics are macro averages of one-vs-rest values.
"""

from __future__ import annotations

import numpy as np

_EPS = 1e-7


def _thresholds(y_true: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per distinct score, from the highest down: the threshold, examples at or above it, positives among them."""
    score = np.asarray(score, dtype=np.float64)
    order = np.argsort(-score, kind="mergesort")
    s, t = score[order], np.asarray(y_true).astype(bool)[order]
    # One threshold per distinct score: the last index of each run of tied scores.
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    return s[last], last + 1, np.cumsum(t)[last]


def average_precision(y_true: np.ndarray, score: np.ndarray) -> float:
    """Exact AUPRC: sum over thresholds of (R_k - R_{k-1}) * P_k. NaN if there are no positives."""
    positives = np.asarray(y_true).astype(bool).sum()
    if positives == 0:
        return float("nan")
    _, predicted, tp = _thresholds(y_true, score)
    recall = tp / positives
    return float(np.sum(np.diff(np.r_[0.0, recall]) * tp / predicted))


def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    from scipy.stats import rankdata

    y_true = np.asarray(y_true).astype(bool)
    n_pos, n_neg = y_true.sum(), (~y_true).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(np.asarray(score, dtype=np.float64))
    return float((ranks[y_true].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def f1(y_true: np.ndarray, predicted: np.ndarray) -> float:
    """F1 of the positive class for boolean predictions (0 when nothing is predicted or present)."""
    y_true, predicted = np.asarray(y_true).astype(bool), np.asarray(predicted).astype(bool)
    tp = np.sum(y_true & predicted)
    denominator = y_true.sum() + predicted.sum()
    return float(2 * tp / denominator) if denominator else 0.0


def balanced_accuracy(y_true: np.ndarray, predicted: np.ndarray, num_classes: int) -> float:
    """Mean recall over the classes present in `y_true`."""
    recalls = [np.mean(predicted[y_true == c] == c) for c in range(num_classes) if np.any(y_true == c)]
    return float(np.mean(recalls))


def best_f1_threshold(y_true: np.ndarray, score: np.ndarray) -> float:
    """The score threshold (predict positive when score >= it) that maximises F1 on (y_true, score)."""
    thresholds, predicted, tp = _thresholds(y_true, score)
    f1s = 2 * tp / (predicted + np.asarray(y_true).astype(bool).sum())
    return float(thresholds[int(np.argmax(f1s))])


def log_loss(y_true: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean negative log-likelihood; `probabilities` is (N,) P(class 1) for binary, (N, K) otherwise."""
    p = _class_probabilities(probabilities)
    picked = p[np.arange(len(y_true)), np.asarray(y_true)]
    return float(-np.mean(np.log(np.clip(picked, _EPS, 1.0))))


def brier(y_true: np.ndarray, probabilities: np.ndarray) -> float:
    """Brier score: mean squared error of P(positive) for binary; summed over classes for K > 2."""
    p = _class_probabilities(probabilities)
    onehot = np.eye(p.shape[1])[np.asarray(y_true)]
    if p.shape[1] == 2:
        return float(np.mean((p[:, 1] - onehot[:, 1]) ** 2))
    return float(np.mean(np.sum((p - onehot) ** 2, axis=1)))


def classification_metrics(
    y_true: np.ndarray, probabilities: np.ndarray, *, threshold: float | None = None
) -> dict[str, float]:
    """All evaluation figures of one split.

    Args:
      y_true: integer labels (N,).
      probabilities: (N,) P(positive) for binary, or (N, K) class probabilities.
      threshold: a decision threshold chosen elsewhere (on validation) for `f1_at_best_threshold`; binary only.

    Returns:
      `average_precision`, `roc_auc`, `balanced_accuracy`, `f1_at_0.5`, `f1_at_best_threshold` (binary, when a
      threshold is given), `log_loss`, `brier`.
    """
    y_true = np.asarray(y_true)
    p = _class_probabilities(probabilities)
    k = p.shape[1]
    if k == 2:
        score = p[:, 1]
        predicted = (score >= 0.5).astype(np.int64)
        out = {
            "average_precision": average_precision(y_true == 1, score),
            "roc_auc": roc_auc(y_true == 1, score),
            "balanced_accuracy": balanced_accuracy(y_true, predicted, 2),
            "f1_at_0.5": f1(y_true == 1, predicted == 1),
        }
        if threshold is not None:
            out["f1_at_best_threshold"] = f1(y_true == 1, score >= threshold)
    else:
        predicted = np.argmax(p, axis=1)
        present = [c for c in range(k) if np.any(y_true == c)]
        out = {
            "average_precision": float(np.mean([average_precision(y_true == c, p[:, c]) for c in present])),
            "roc_auc": float(np.nanmean([roc_auc(y_true == c, p[:, c]) for c in present])),
            "balanced_accuracy": balanced_accuracy(y_true, predicted, k),
            "f1_at_0.5": float(np.mean([f1(y_true == c, predicted == c) for c in present])),
        }
    out["log_loss"] = log_loss(y_true, p)
    out["brier"] = brier(y_true, p)
    return out


def _class_probabilities(probabilities: np.ndarray) -> np.ndarray:
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim == 2 and p.shape[1] == 1:
        p = p[:, 0]
    return np.stack([1 - p, p], axis=1) if p.ndim == 1 else p
