"""The evaluation figures of R replicas at once: `scores.classification_metrics` over (R, N) arrays.

Runs trained side by side (`imbal_keras.training.side_by_side`) evaluate every replica after every interval, on
splits of tens of thousands of examples; one call per replica and split spends most of its time in numpy's
per-call overhead and in sorting each split twice (the ranking metrics and the validation's best-F1 threshold).
Here each replica's scores are sorted once, in one `np.sort` of the (R, N) array, and every figure is reduced
along the replica axis.

The figures and their conventions are `scores.classification_metrics`'s (scikit-learn's definitions, NaN where
scikit-learn returns a convention value); tests/metrics_batched_test.py checks each replica against
scikit-learn and against `classification_metrics`. ROC AUC, the best-F1 threshold and every count-based figure
are equal bit for bit; average precision sums the same terms in another grouping (float rounding, about 1e-16).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from imbal_keras.errors import UserInputError
from imbal_keras.metrics.scores import GROUPS, group_accuracy

__all__ = ["batched_best_f1_thresholds", "batched_classification_metrics"]


def _ranking(positive: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: average precision, ROC AUC (NaN where undefined) and the best-F1 threshold.

    Every figure is a sum over the positives alone, each counting the examples and positives scored at or
    above (and below) it, so a row needs its scores sorted (one `np.sort` of the (R, N) array, several times
    faster than the `argsort` a ranked label vector would need) and its positives' scores sorted:

    - AP: sum over thresholds of (R_k - R_{k-1}) P_k = (1 / P) sum over positives j of tp(>= s_j) / n(>= s_j);
    - ROC AUC: over positives j, the negatives below s_j plus half those tied with it, over P x N_negative (the
      same integer count as `scores.roc_auc`'s, so equal bit for bit);
    - the best-F1 threshold: F1 = 2 tp / (n + P) only rises at a positive's score, so its maximum is at one;
      the highest of those that reach it, as `scores.best_f1_threshold` takes the first from the top.
    """
    ordered = np.sort(score, axis=1)
    rows = len(score)
    ap, auc, best = np.full(rows, np.nan), np.full(rows, np.nan), np.empty(rows)
    for r in range(rows):
        positives = np.sort(score[r][positive[r]])
        p, n = len(positives), score.shape[1]
        if p == 0:
            best[r] = ordered[r, -1]  # every threshold's F1 is 0: the first from the top
            continue
        below, at_or_below = (np.searchsorted(ordered[r], positives, side) for side in ("left", "right"))
        positive_below, positive_at_or_below = (np.searchsorted(positives, positives, s) for s in ("left", "right"))
        tp, predicted = p - positive_below, n - below
        ap[r] = np.sum(tp / predicted) / p
        if p < n:
            tied = (at_or_below - below) - (positive_at_or_below - positive_below)
            auc[r] = np.sum(2 * (below - positive_below) + tied) / (2.0 * p * (n - p))
        f1s = 2 * tp / (predicted + p)
        best[r] = positives[np.flatnonzero(f1s == f1s.max())[-1]]
    return ap, auc, best


def batched_best_f1_thresholds(y_true: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Per row, the score threshold that maximises F1 (`scores.best_f1_threshold` of each row).

    Args:
      y_true: (R, N) booleans (or (N,), shared by every row).
      score: (R, N) scores.

    Returns:
      (R,) thresholds.
    """
    score = np.asarray(score)
    return _ranking(_rows(y_true, score.shape).astype(bool), score)[2]


def _rows(y_true: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """`y_true` as (R, N): a shared (N,) is repeated for every replica."""
    y_true = np.asarray(y_true)
    return np.broadcast_to(y_true, shape[:2]) if y_true.ndim == 1 else y_true


def batched_classification_metrics(
    y_true: np.ndarray,
    probabilities: np.ndarray,
    *,
    thresholds: np.ndarray | None = None,
    groups: Sequence[Sequence[str] | None] | None = None,
    best_threshold: bool = False,
) -> tuple[list[dict[str, float]], np.ndarray | None]:
    """`scores.classification_metrics` of R replicas, with one sort of each replica's scores.

    Args:
      y_true: (R, N) integer labels in [0, K), or (N,) shared by every replica.
      probabilities: (R, N) or (R, N, 1) P(positive) for binary, or (R, N, K) class probabilities.
      thresholds: (R,) decision thresholds chosen elsewhere (on validation) for `f1_at_best_threshold`; binary.
      groups: per replica, None or a length-K sequence of "head" / "medium" / "tail" (the group accuracies).
      best_threshold: binary only: choose each replica's best-F1 threshold on these labels (from the same sort)
        and report `f1_at_best_threshold` at it, as an evaluation does on its validation split; `thresholds`
        is then ignored.

    Returns:
      One dict per replica with `classification_metrics`'s keys, and the (R,) best-F1 thresholds (None unless
      asked for and binary).

    Raises:
      UserInputError: `groups` does not give one of "head", "medium", "tail" for each of the K classes.
    """
    p = np.asarray(probabilities)
    p = p[:, :, None] if p.ndim == 2 else p
    k = max(2, p.shape[2])
    binary = k == 2
    y = _rows(y_true, p.shape).astype(np.int64)
    _check_groups(groups, k)
    out: dict[str, np.ndarray] = {}
    best = None
    if binary:
        score = p[:, :, -1]
        p64, positive = score.astype(np.float64), y == 1
        # P(positive) alone (a sigmoid's) gives P(negative) as 1 - P(positive), as `scores` does.
        picked = np.where(positive, p64, 1 - p64) if p.shape[2] == 1 else _picked(p, y)
        ap, auc, chosen = _ranking(positive, score)
        predicted = (p64 >= 0.5).astype(np.int64)
        out.update(average_precision=ap, roc_auc=auc, **{"f1_at_0.5": _f1(positive, predicted == 1)})
        if best_threshold:
            best = thresholds = chosen
        if thresholds is not None:
            out["f1_at_best_threshold"] = _f1(positive, p64 >= np.asarray(thresholds, np.float64)[:, None])
    else:
        p64, picked = p.astype(np.float64), _picked(p, y)
        predicted = np.argmax(p64, axis=2)
        out.update(_macro_ranking(y, p, k))
    recalls = _recalls_and_f1(out, _confusions(y, predicted, k))
    eps = np.finfo(p.dtype if np.issubdtype(p.dtype, np.floating) else np.float64).eps
    out["log_loss"] = -np.mean(np.log(np.clip(picked, eps, 1 - eps)), axis=1)
    out["brier"] = _brier(y, p64, binary, k)
    return _per_replica(out, recalls, groups, binary, thresholds is not None), best


def _picked(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(R, N) each example's probability of its own class, in float64."""
    return np.take_along_axis(p, y[:, :, None], axis=2)[:, :, 0].astype(np.float64)


def _recalls_and_f1(out: dict[str, np.ndarray], confusion: np.ndarray) -> np.ndarray:
    """Adds `macro_f1` and `balanced_accuracy` to `out` from (R, K, K) confusions; returns the (R, K) recalls."""
    support = confusion.sum(axis=2)
    diagonal = np.diagonal(confusion, axis1=1, axis2=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        recalls = np.where(support > 0, diagonal / support, np.nan)
        denominator = confusion.sum(axis=1) + support
        out["macro_f1"] = np.mean(np.where(denominator > 0, 2 * diagonal / denominator, 0.0), axis=1)
    out["balanced_accuracy"] = _nanmean_rows(recalls)
    return recalls


def _check_groups(groups, k: int) -> None:
    for g in groups or ():
        if g is not None and (len(g) != k or not set(g) <= set(GROUPS)):
            raise UserInputError(
                f"groups must give one of {', '.join(GROUPS)} for each of the {k} classes. Received: groups={g!r}"
            )


def _macro_ranking(y: np.ndarray, score: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Macro one-vs-rest average precision and ROC AUC per replica, every class of every replica in one sort."""
    r, n = y.shape
    labels = (y[:, None, :] == np.arange(k)[None, :, None]).reshape(r * k, n)
    scores = np.moveaxis(score, 2, 1).reshape(r * k, n)
    ap, auc, _ = _ranking(labels, scores)
    return {"average_precision": _nanmean_rows(ap.reshape(r, k)), "roc_auc": _nanmean_rows(auc.reshape(r, k))}


def _f1(y_true: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    tp = np.sum(y_true & predicted, axis=1)
    denominator = y_true.sum(axis=1) + predicted.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, 2 * tp / denominator, 0.0)


def _confusions(y: np.ndarray, predicted: np.ndarray, k: int) -> np.ndarray:
    """(R, K, K) counts: per replica, row = true class, column = predicted class."""
    r = y.shape[0]
    cells = (np.arange(r)[:, None] * k + y) * k + predicted
    return np.bincount(cells.ravel(), minlength=r * k * k).reshape(r, k, k)


def _brier(y: np.ndarray, p64: np.ndarray, binary: bool, k: int) -> np.ndarray:
    if binary:
        return np.mean((p64 - (y == 1)) ** 2, axis=1)
    onehot = np.eye(k)[y]
    return np.mean(np.sum((p64 - onehot) ** 2, axis=2), axis=1)


def _nanmean_rows(values: np.ndarray) -> np.ndarray:
    """Each row's mean over its non-NaN values; NaN (without a warning) for a row without any."""
    present = ~np.isnan(values)
    count = present.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, np.where(present, values, 0.0).sum(axis=1) / count, np.nan)


def _per_replica(out, recalls, groups, binary: bool, thresholded: bool) -> list[dict[str, float]]:
    """The figures as one dict per replica, in `classification_metrics`'s key order."""
    ranking = ["average_precision", "roc_auc"] + (["f1_at_0.5"] if binary else [])
    ranking += ["f1_at_best_threshold"] if binary and thresholded else []
    figures = []
    for i in range(len(recalls)):
        row = {name: float(out[name][i]) for name in (*ranking, "balanced_accuracy", "macro_f1")}
        row.update({f"recall_class_{c}": float(value) for c, value in enumerate(recalls[i])})
        if groups is not None and groups[i] is not None:
            row.update(group_accuracy(recalls[i], groups[i]))
        row["log_loss"] = float(out["log_loss"][i])
        row["brier"] = float(out["brier"][i])
        figures.append(row)
    return figures
