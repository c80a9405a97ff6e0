"""Keras callbacks that observe training from inside the compiled train step.

`BatchComposition` logs the class make-up of every batch trained on; `PerClassGradients` logs
per-class loss contributions, gradient norms, cosines and update sizes. Both work in a plain
`model.fit` (a custom `train_step` calls `observe_gradients`) and write TensorBoard scalars plus a pandas
DataFrame (`dataframe()`, `to_csv()`). See docs/callbacks.md.
"""

from __future__ import annotations

import keras

from imbal_keras.callbacks.batch_composition import BatchComposition
from imbal_keras.callbacks.gradient_noise import GradientNoise
from imbal_keras.callbacks.per_class_gradients import PerClassGradients
from imbal_keras.callbacks.probe import observe_gradients

__all__ = [
    "BatchComposition",
    "GradientNoise",
    "PerClassGradients",
    "experiment_callbacks",
    "observe_gradients",
    "summarize",
]


def experiment_callbacks(
    log_dir: str,
    *,
    log_composition: bool = True,
    gradient_every_n_steps: int = 10,
    minority_class: int = 1,
) -> list[keras.callbacks.Callback]:
    """The callbacks a run attaches by default.

    Args:
      log_dir: the run's TensorBoard directory.
      log_composition: record the class make-up of every batch.
      gradient_every_n_steps: record per-class gradients every n steps; 0 turns them off.
      minority_class: the class counted as minority (absent-minority flag, summary columns).

    Returns:
      `[BatchComposition, PerClassGradients]`, the enabled subset of it, or `[]`.
    """
    callbacks = []
    if log_composition:
        callbacks.append(BatchComposition(log_dir, minority_class=minority_class))
    if gradient_every_n_steps:
        callbacks.append(
            PerClassGradients(log_dir, every_n_steps=gradient_every_n_steps, minority_class=minority_class)
        )
    return callbacks


def summarize(callbacks) -> dict[str, float]:
    """One flat dict of scalar summary columns over the run, from every callback of this package.

    Other callbacks in the list are ignored; the columns are documented in docs/callbacks.md.

    Args:
      callbacks: the callbacks of a fit, any mix of this package's and others.

    Returns:
      Column name -> value, from each `BatchComposition` and `PerClassGradients` in `callbacks`.
    """
    summary = {}
    for callback in callbacks:
        if isinstance(callback, (BatchComposition, PerClassGradients)):
            summary.update(callback.summary())
    return summary
