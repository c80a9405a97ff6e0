"""`GradientNoise`: the gradient-noise diagnostics of several strategies every N optimizer steps during `fit`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from imbal_keras.callbacks import events
from imbal_keras.data.batch_sampling import BatchSampling
from imbal_keras.diagnostics.exact_mode import QUANTITIES, check_batch_size, check_samplings, predict
from imbal_keras.diagnostics.moments import (
    CLASS_QUANTITIES,
    DEFAULT_EXAMPLES_PER_CLASS,
    check_labels,
    class_moments,
    subsample,
)
from imbal_keras.errors import check

__all__ = [
    "DEFAULT_EVERY_N_STEPS",
    "GradientNoise",
]

DEFAULT_EVERY_N_STEPS = 200


class GradientNoise(keras.callbacks.Callback):
    """Computes the gradient-noise diagnostics of several strategies every N optimizer steps during `fit`.

    At optimizer steps 0, N, 2N, ... (and after the last step) the exact mode runs at the current weights on a
    fixed, seeded per-class subsample of the training data (`subsample`: up to `examples_per_class` examples of
    each class, 1024 by default), once, and `predict` evaluates every strategy from those moments. The model's
    weights, optimizer state and random state are left untouched: training is the same as without the callback.

    Logged per diagnosis: TensorBoard scalars `diagnostics/<strategy>/<quantity>` for every `QUANTITIES` entry and
    `diagnostics/class_<c>/<mean_norm|second_moment|within_variance>`, in `log_dir/train`; the same numbers in
    `dataframe()` (one row per step and strategy).

    Args:
      log_dir: TensorBoard directory; events go to `log_dir/train`.
      features: the training features (array or nested structure), leading dimension N.
      labels: the training labels, (N,).
      samplings: the strategies to diagnose (the run's own, or all to compare).
      batch_size: B.
      every_n_steps: diagnose every this many optimizer steps.
      examples_per_class: subsample size per class.
      minority_class: the class of `p_no_minority`; None means the rarest.
      loss: per-example Keras loss; None means the model's compiled loss.
      seed: seeds the subsample.

    Example:
    ```python
    noise = GradientNoise("logs/run1", x, y, [BatchSampling.natural(counts)], batch_size=16)
    model.fit(ds, epochs=5, callbacks=[noise])
    noise.dataframe()
    ```
    """

    def __init__(
        self,
        log_dir: str,
        features,
        labels,
        samplings: Sequence[BatchSampling],
        *,
        batch_size: int,
        every_n_steps: int = DEFAULT_EVERY_N_STEPS,
        examples_per_class: int = DEFAULT_EXAMPLES_PER_CLASS,
        minority_class: int | None = None,
        loss=None,
        seed: int = 0,
    ):
        super().__init__()
        check(
            isinstance(log_dir, (str, os.PathLike)) and bool(str(log_dir)),
            f"log_dir must be a directory path. Received: log_dir={log_dir!r}",
            argument="log_dir",
        )
        check(
            isinstance(every_n_steps, (int, np.integer)) and not isinstance(every_n_steps, bool) and every_n_steps >= 1,
            f"every_n_steps must be an integer >= 1. Received: every_n_steps={every_n_steps!r}",
            argument="every_n_steps",
        )
        check_samplings(samplings)
        self.labels = check_labels(labels)
        self.log_dir = os.fspath(log_dir)
        self.features = features
        self.samplings = list(samplings)
        self.batch_size = batch_size
        self.every_n_steps = every_n_steps
        self.examples_per_class = examples_per_class
        self.minority_class = minority_class
        self.loss = loss
        self.seed = seed
        k = self.samplings[0].num_classes
        self._class_counts = np.bincount(self.labels, minlength=k)[:k]
        for s in self.samplings:
            check_batch_size(self._class_counts, s, batch_size)
        index = subsample(self.labels, examples_per_class=examples_per_class, seed=seed)
        self._features = tf.nest.map_structure(lambda f: np.asarray(f)[index], features)
        self._labels = self.labels[index]
        self._rows = []
        self._events = None

    def get_config(self) -> dict:
        return {
            "log_dir": self.log_dir,
            "features": self.features,
            "labels": self.labels,
            "samplings": [s.to_dict() for s in self.samplings],
            "batch_size": self.batch_size,
            "every_n_steps": self.every_n_steps,
            "examples_per_class": self.examples_per_class,
            "minority_class": self.minority_class,
            "loss": self.loss if self.loss is None or isinstance(self.loss, str) else keras.losses.serialize(self.loss),
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config: dict) -> GradientNoise:
        config = dict(config)
        config["samplings"] = [BatchSampling.from_dict(s) for s in config["samplings"]]
        if isinstance(config["loss"], dict):
            config["loss"] = keras.losses.deserialize(config["loss"])
        return cls(**config)

    def tags(self) -> list[str]:
        """TensorBoard tags of one diagnosis, in column order."""
        tags = [f"diagnostics/{s.name}/{q}" for s in self.samplings for q in QUANTITIES]
        k = self.samplings[0].num_classes
        return tags + [f"diagnostics/class_{c}/{q}" for c in range(k) for q in CLASS_QUANTITIES]

    def diagnose(self, step: int) -> list[dict[str, Any]]:
        """Runs the diagnostics at the current weights and records them as optimizer step `step`.

        Returns:
          The rows recorded: one dict per strategy (the columns of `dataframe()`).
        """
        moments_of = class_moments
        if keras.backend.backend() == "jax":
            from imbal_keras.callbacks import _jax_noise  # imported on JAX only: a TensorFlow install may lack jax

            moments_of = _jax_noise.class_moments
        moments = moments_of(
            self.diagnosed_model(),
            self._features,
            self._labels,
            num_classes=self.samplings[0].num_classes,
            class_counts=self._class_counts,
            loss=self.loss,
        )
        classes = moments.as_row()
        rows = [
            {
                "step": step,
                "epoch": self._epoch,
                **predict(moments, s, batch_size=self.batch_size, minority_class=self.minority_class).as_row(),
                **classes,
            }
            for s in self.samplings
        ]
        self._rows.extend(rows)
        values = [row[q] for row in rows for q in QUANTITIES] + list(classes.values())
        if self._events is None:
            self._events = events.ScalarEventFile(os.path.join(self.log_dir, "train"), self.tags())
        self._events.write_scalars(np.array([step]), np.array([values], np.float64))
        self._last = step
        return rows

    def diagnosed_model(self) -> keras.Model:
        """The model whose weights a diagnosis reads: the one being trained (runs side by side diagnose each
        replica's own, `imbal_keras.training.side_by_side`)."""
        return self.model

    def dataframe(self) -> pd.DataFrame:
        """One row per diagnosis and strategy: `step`, `epoch`, `NoisePrediction.as_row()`, per-class moments."""
        if not self._rows:
            return pd.DataFrame(columns=["step", "epoch", "strategy", "batch_size", "closed_form", *QUANTITIES])
        return pd.DataFrame(self._rows)

    def to_csv(self, path: str) -> None:
        """Writes `dataframe()` to `path` (no index column)."""
        self.dataframe().to_csv(path, index=False)

    def summary(self) -> dict[str, float]:
        """Scalar columns per strategy s: `diagnostics_<s>_<q>_mean` and `_final` for the main quantities q
        (simple_noise_scale, trace_cov, grad_sq_norm, distance_to_balanced), and `diagnostics_<s>_p_no_minority`."""
        frame = self.dataframe()
        summary = {}
        for name, rows in frame.groupby("strategy", sort=False):
            for q in ("simple_noise_scale", "trace_cov", "grad_sq_norm", "distance_to_balanced"):
                summary[f"diagnostics_{name}_{q}_mean"] = float(rows[q].mean())
                summary[f"diagnostics_{name}_{q}_final"] = float(rows[q].iloc[-1])
            summary[f"diagnostics_{name}_p_no_minority"] = float(rows["p_no_minority"].iloc[-1])
        return summary

    # Keras hooks.

    def on_train_begin(self, logs=None):
        os.makedirs(self.log_dir, exist_ok=True)
        self._step = int(self.model.optimizer.iterations.numpy())
        self._steps_per_call = self.model.steps_per_execution
        self._next = self._step
        self._last = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        # The step is counted on the host: reading optimizer.iterations would wait for the device every step.
        if self._step >= self._next:
            self.diagnose(self._step)
            self._next = (self._step // self.every_n_steps + 1) * self.every_n_steps
        self._step += self._steps_per_call

    def on_train_end(self, logs=None):
        if self._last != self._step:
            self.diagnose(self._step)
        if self._events is not None:
            self._events.close()
            self._events = None
