"""Evaluation metrics: exact figures in numpy, and Keras metrics for dense targets where Keras lacks them.

- `scores`: the figures of one-label classification (AP, ROC AUC, balanced accuracy, macro F1, per-class recall,
  log loss, Brier), each following scikit-learn's definition, NaN where scikit-learn returns a convention value;
- `dense`: per-class IoU, Dice, pixel AP and recall of masks and sequences (`segmentation_metrics`) and macro /
  micro AP and per-label AP and recall of multi-label targets (`multilabel_metrics`);
- `multi_output`: each head of a multi-output model scored by the figures of its kind (`multi_output_metrics`);
- `batched`: the figures of `scores` for R replicas at once (runs trained side by side), one sort per replica;
- `keras_metrics`: `ClassDice` and `PixelAveragePrecision`, streaming Keras metrics for `fit` and `evaluate`.

Every name is importable from `imbal_keras.metrics`; the numpy figures import no TensorFlow (the Keras metrics
are loaded when first used).
"""

from __future__ import annotations

import importlib
from typing import Any

from imbal_keras.metrics.batched import batched_best_f1_thresholds, batched_classification_metrics
from imbal_keras.metrics.dense import multilabel_metrics, segmentation_metrics
from imbal_keras.metrics.multi_output import multi_output_metrics
from imbal_keras.metrics.scores import (
    GROUPS,
    average_precision,
    balanced_accuracy,
    best_f1_threshold,
    brier,
    classification_metrics,
    confusion_matrix,
    f1,
    group_accuracy,
    log_loss,
    macro_f1,
    per_class_recall,
    roc_auc,
)

_KERAS_METRICS = ("ClassDice", "PixelAveragePrecision")

__all__ = [
    "ClassDice",
    "GROUPS",
    "PixelAveragePrecision",
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
    "multi_output_metrics",
    "multilabel_metrics",
    "per_class_recall",
    "roc_auc",
    "segmentation_metrics",
    "batched_best_f1_thresholds",
    "batched_classification_metrics",
]


def __getattr__(name: str) -> Any:
    if name in _KERAS_METRICS:
        return getattr(importlib.import_module("imbal_keras.metrics.keras_metrics"), name)
    raise AttributeError(f"module 'imbal_keras.metrics' has no attribute {name!r}")
