"""Metrics of a multi-output model, head by head, in numpy.

Each head is scored by the figures of its kind, read from the shapes of its labels and predictions:

- a classification head, labels (N,) or (N, 1) class ids with probabilities (N,) / (N, 1) (a sigmoid: P(class 1))
  or (N, K) (a softmax): `scores.classification_metrics` (average precision, ROC AUC, per-class recall, ...);
- a multi-label head, labels and scores both (N, L) with L >= 2: `dense.multilabel_metrics`;
- a dense head, labels (N, H, W) or (N, T) with probabilities of one more axis (..., K):
  `dense.segmentation_metrics`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from imbal_keras.errors import check
from imbal_keras.metrics.dense import multilabel_metrics, segmentation_metrics
from imbal_keras.metrics.scores import classification_metrics

__all__ = ["multi_output_metrics"]


def multi_output_metrics(y_true, predictions, *, heads: Sequence | None = None) -> dict:
    """Per-head metrics of a multi-output model.

    Args:
      y_true: per-head labels, a dict `{output name: labels}` or a list in output order.
      predictions: what `model.predict` returns for the same examples: a dict with the same keys, or a list in
        the same order.
      heads: the heads to score (keys, or positions for lists); None: every head of `y_true`. Leave out heads
        that are not classification, multi-label or dense (a regression head).

    Returns:
      `{head: {metric: value}}`, each head's figures as its kind's function returns them (see the module
      docstring).

    Raises:
      UserInputError: labels and predictions of different structures, a head either lacks, a head whose number
        of examples differs between the two, or shapes that are no kind above.
    """
    labels, scores = _by_head(y_true, "y_true"), _by_head(predictions, "predictions")
    chosen = list(labels) if heads is None else list(heads)
    for head in chosen:
        check(
            head in labels and head in scores,
            f"heads names {head!r}, which y_true or predictions lacks; y_true heads: {list(labels)}, predictions "
            f"heads: {list(scores)}",
            argument="heads",
        )
    return {head: _head_metrics(labels[head], scores[head], head) for head in chosen}


def _head_metrics(y: np.ndarray, p: np.ndarray, head) -> dict[str, float]:
    """The figures of one head, by the kind its shapes say."""
    check(
        len(y) == len(p) and len(y) > 0,
        f"head {head!r} has {len(y)} labels but {len(p)} predictions. Received: y_true[{head!r}].shape={y.shape}, "
        f"predictions[{head!r}].shape={p.shape}",
        argument="predictions",
    )
    if y.ndim >= 2 and p.ndim == y.ndim + 1 and p.shape[:-1] == y.shape:
        return segmentation_metrics(y, p)
    if y.ndim == 2 and y.shape == p.shape and y.shape[1] >= 2:
        return multilabel_metrics(y, p)
    ids = y[:, 0] if y.ndim == 2 and y.shape[1] == 1 else y
    k = 2 if p.ndim == 1 or p.shape[1] == 1 else p.shape[1]
    whole = ids.ndim == 1 and p.ndim <= 2 and np.all(ids == np.round(ids)) and ids.min() >= 0 and ids.max() < k
    check(
        bool(whole),
        f"head {head!r} is not a classification, multi-label or dense head: labels of shape {y.shape} with "
        f"values {np.unique(ids)[:5].tolist()} and predictions of shape {p.shape}; leave it out with heads=",
        argument="heads",
    )
    return classification_metrics(ids.astype(np.int64), p)


def _by_head(values, argument: str) -> dict:
    check(
        isinstance(values, (Mapping, list, tuple)) and len(values) > 0,
        f"{argument} must be a non-empty dict {{output name: values}} or list of per-output values. Received: "
        f"{type(values).__name__}",
        argument=argument,
    )
    items = values.items() if isinstance(values, Mapping) else enumerate(values)
    return {head: np.asarray(v) for head, v in items}
