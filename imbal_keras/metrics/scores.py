"""Evaluation metrics for imbalanced classification, exact and in numpy.

Every figure follows scikit-learn's definition (the tests compare against it), computed here because one call
costs a quarter of scikit-learn's or less (4x to 28x faster, `python -m benchmarks.stats_calibration --section
metrics`), and the experiment calls it twice per evaluation. Where scikit-learn
returns a convention value for an undefined figure, we return NaN instead and say so:

- `average_precision`: the area under the precision-recall step curve, no interpolation (scikit-learn's
  `average_precision_score`). Without positives it is undefined: NaN here, 0 (with a warning) in scikit-learn,
  which would let a split without positives pass for a model that ranks badly. For K > 2 classes it is the macro
  average of one-vs-rest values over the classes that have positives.
- `roc_auc`: the Mann-Whitney statistic with ties counted half (`roc_auc_score`); NaN without both classes. For
  K > 2 the macro average of one-vs-rest values over the classes present with both labels.
- `balanced_accuracy`: mean recall over the classes present in `y_true` (`balanced_accuracy_score`).
- `macro_f1`: F1 of each of the K classes averaged with equal weight, a class absent from both labels and
  predictions counting 0 (`f1_score(..., labels=range(K), average="macro", zero_division=0)`).
- `recall_class_{c}`: recall of class c; NaN when c has no examples (`recall_score(..., zero_division=nan)`).
- `log_loss`: probabilities clipped to [eps, 1 - eps] with eps the machine precision of the input's dtype
  (`log_loss`): 1.19e-7 for the float32 outputs of a model, 2.2e-16 for float64.
- `brier`: mean squared error of P(positive) for binary, summed over classes for K > 2 (`brier_score_loss`).

Predicted labels are `P(positive) >= 0.5` for binary problems and the arg-max class for K > 2.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from imbal_keras.errors import UserInputError

__all__ = [
    "GROUPS",
    "average_precision",
    "balanced_accuracy",
    "best_f1_threshold",
    "brier",
    "classification_metrics",
    "confusion_matrix",
    "f1",
    "group_accuracy",
    "log_loss",
    "macro_f1",
    "per_class_recall",
    "roc_auc",
]

GROUPS = ("head", "medium", "tail")


def _thresholds(y_true: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per distinct score, from the highest down: the threshold, examples at or above it, positives among them."""
    score = np.asarray(score, dtype=np.float64)
    order = np.argsort(-score)  # ties are merged below, so their order does not matter
    s, t = score[order], np.asarray(y_true).astype(bool)[order]
    # One threshold per distinct score: the last index of each run of tied scores.
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    return s[last], last + 1, np.cumsum(t)[last]


def average_precision(y_true: np.ndarray, score: np.ndarray) -> float:
    """Exact AUPRC: sum over thresholds of (R_k - R_{k-1}) * P_k. NaN if there are no positives."""
    return _ranking_metrics(y_true, score)[0]


def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    return _ranking_metrics(y_true, score)[1]


def _ranking_metrics(y_true: np.ndarray, score: np.ndarray) -> tuple[float, float]:
    """(average precision, ROC AUC) from one sort of the scores.

    ROC AUC is the trapezoidal area under the ROC curve through the distinct thresholds, which counts a tied
    positive-negative pair half: the Mann-Whitney statistic.
    """
    y_true = np.asarray(y_true).astype(bool)
    positives = int(y_true.sum())
    negatives = len(y_true) - positives
    if positives == 0:
        return float("nan"), float("nan")
    _, predicted, tp = _thresholds(y_true, score)
    ap = float(np.sum(np.diff(np.r_[0.0, tp / positives]) * tp / predicted))
    if negatives == 0:
        return ap, float("nan")
    tp_prev, fp = np.r_[0, tp[:-1]], predicted - tp
    fp_prev = np.r_[0, fp[:-1]]
    auc = float(np.sum((fp - fp_prev) * (tp + tp_prev)) / (2.0 * positives * negatives))
    return ap, auc


def f1(y_true: np.ndarray, predicted: np.ndarray) -> float:
    """F1 of the positive class for boolean predictions (0 when nothing is predicted or present)."""
    y_true, predicted = np.asarray(y_true).astype(bool), np.asarray(predicted).astype(bool)
    tp = np.sum(y_true & predicted)
    denominator = y_true.sum() + predicted.sum()
    return float(2 * tp / denominator) if denominator else 0.0


def confusion_matrix(y_true: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, K) counts: row = true class, column = predicted class."""
    cells = np.asarray(y_true, dtype=np.int64) * num_classes + np.asarray(predicted, dtype=np.int64)
    return np.bincount(cells, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_recall(confusion: np.ndarray) -> np.ndarray:
    """Recall of each class from a confusion matrix; NaN for a class without examples."""
    support = confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(confusion) / support, np.nan)


def balanced_accuracy(y_true: np.ndarray, predicted: np.ndarray, num_classes: int) -> float:
    """Mean recall over the classes present in `y_true`."""
    return float(np.nanmean(per_class_recall(confusion_matrix(y_true, predicted, num_classes))))


def macro_f1(confusion: np.ndarray) -> float:
    """F1 averaged over all K classes with equal weight; a class never true nor predicted counts 0."""
    tp = np.diag(confusion)
    denominator = confusion.sum(axis=0) + confusion.sum(axis=1)  # 2 tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.mean(np.where(denominator > 0, 2 * tp / denominator, 0.0)))


def group_accuracy(recalls: np.ndarray, groups: Sequence[str]) -> dict[str, float]:
    """`{group}_accuracy`: mean recall over the classes of each group that have examples (NaN if none).

    The mean of per-class recalls, not the share of a group's examples classified correctly, so a group's
    figure does not depend on how its classes are represented in the evaluation split (the many/medium/few-shot
    accuracy of long-tail benchmarks, which evaluate on balanced splits where the two coincide).
    """
    groups = np.asarray(groups)
    out = {}
    for group in GROUPS:
        present = recalls[(groups == group) & ~np.isnan(recalls)]
        out[f"{group}_accuracy"] = float(np.mean(present)) if len(present) else float("nan")
    return out


def best_f1_threshold(y_true: np.ndarray, score: np.ndarray) -> float:
    """The score threshold (predict positive when score >= it) that maximises F1 on (y_true, score)."""
    thresholds, predicted, tp = _thresholds(y_true, score)
    f1s = 2 * tp / (predicted + np.asarray(y_true).astype(bool).sum())
    return float(thresholds[int(np.argmax(f1s))])


def log_loss(y_true: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean negative log-likelihood; `probabilities` is (N,) P(class 1) for binary, (N, K) otherwise.

    Probabilities are clipped to [eps, 1 - eps], eps the machine precision of their dtype (float64 for
    non-float input), as scikit-learn does.
    """
    dtype = np.asarray(probabilities).dtype
    eps = np.finfo(dtype if np.issubdtype(dtype, np.floating) else np.float64).eps
    p = _class_probabilities(probabilities)
    picked = p[np.arange(len(y_true)), np.asarray(y_true)]
    return float(-np.mean(np.log(np.clip(picked, eps, 1 - eps))))


def brier(y_true: np.ndarray, probabilities: np.ndarray) -> float:
    """Brier score: mean squared error of P(positive) for binary; summed over classes for K > 2."""
    p = _class_probabilities(probabilities)
    onehot = np.eye(p.shape[1])[np.asarray(y_true)]
    if p.shape[1] == 2:
        return float(np.mean((p[:, 1] - onehot[:, 1]) ** 2))
    return float(np.mean(np.sum((p - onehot) ** 2, axis=1)))


def classification_metrics(
    y_true: np.ndarray,
    probabilities: np.ndarray,
    *,
    threshold: float | None = None,
    groups: Sequence[str] | None = None,
) -> dict[str, float]:
    """All evaluation figures of one split (definitions in the module docstring).

    Args:
      y_true: integer labels (N,) in [0, K).
      probabilities: (N,) or (N, 1) P(positive) for binary, or (N, K) class probabilities.
      threshold: a decision threshold chosen elsewhere (on validation) for `f1_at_best_threshold`; binary only.
      groups: optional length-K sequence of "head" / "medium" / "tail", one per class, for the group accuracies.

    Returns:
      `average_precision`, `roc_auc`, `balanced_accuracy`, `macro_f1`, `recall_class_{c}` for every class c,
      `log_loss`, `brier`; for binary also `f1_at_0.5` and, when a threshold is given, `f1_at_best_threshold`;
      with `groups`, `head_accuracy`, `medium_accuracy` and `tail_accuracy`.

    Raises:
      UserInputError: `groups` does not give one of "head", "medium", "tail" for each of the K classes.
    """
    y_true = np.asarray(y_true)
    log = log_loss(y_true, probabilities)
    p = _class_probabilities(probabilities)
    k = p.shape[1]
    if groups is not None and (len(groups) != k or not set(groups) <= set(GROUPS)):
        raise UserInputError(
            f"groups must give one of {', '.join(GROUPS)} for each of the {k} classes. Received: groups={groups!r}"
        )
    if k == 2:
        score = p[:, 1]
        predicted = (score >= 0.5).astype(np.int64)
        ap, auc = _ranking_metrics(y_true == 1, score)
        out = {"average_precision": ap, "roc_auc": auc, "f1_at_0.5": f1(y_true == 1, predicted == 1)}
        if threshold is not None:
            out["f1_at_best_threshold"] = f1(y_true == 1, score >= threshold)
    else:
        predicted = np.argmax(p, axis=1)
        ranking = [_ranking_metrics(y_true == c, p[:, c]) for c in range(k)]
        out = {"average_precision": _nanmean([r[0] for r in ranking]), "roc_auc": _nanmean([r[1] for r in ranking])}
    confusion = confusion_matrix(y_true, predicted, k)
    recalls = per_class_recall(confusion)
    out["balanced_accuracy"] = _nanmean(recalls)
    out["macro_f1"] = macro_f1(confusion)
    out.update({f"recall_class_{c}": float(r) for c, r in enumerate(recalls)})
    if groups is not None:
        out.update(group_accuracy(recalls, groups))
    out["log_loss"] = log
    out["brier"] = brier(y_true, p)
    return out


def _nanmean(values) -> float:
    """Mean of the non-NaN values; NaN (without a warning) when there are none."""
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    return float(np.mean(values)) if len(values) else float("nan")


def _class_probabilities(probabilities: np.ndarray) -> np.ndarray:
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim == 2 and p.shape[1] == 1:
        p = p[:, 0]
    return np.stack([1 - p, p], axis=1) if p.ndim == 1 else p
