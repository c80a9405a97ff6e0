"""Tiny seeded models and datasets shared by the callback tests, and an independent recomputation.

`Trajectory` keeps every weight before every step of a fit. `expected_gradient_rows` recomputes what
`PerClassGradients` should log for a step from those weights and the batch alone: a GradientTape
over per-example losses written in the test, on a copy of the model, with none of the callback's
code.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

FEATURES = 3


def features(num_examples: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(num_examples, FEATURES)).astype(np.float32)


def dataset(labels, batch_size: int, *, weights=None, seed: int = 0) -> tf.data.Dataset:
    """Batches of (x, y) or (x, y, w) in order, so every batch's labels are known."""
    labels = np.asarray(labels)
    parts = (features(len(labels), seed), labels)
    if weights is not None:
        parts += (np.asarray(weights, np.float32),)
    return tf.data.Dataset.from_tensor_slices(parts).batch(batch_size)


def model(
    num_classes: int = 2,
    *,
    loss=None,
    optimizer=None,
    seed: int = 0,
    **dense_kwargs,
) -> keras.Model:
    """A seeded 3-4-K MLP: sigmoid + binary cross-entropy for K = 2, else softmax + sparse CE."""
    keras.utils.set_random_seed(seed)
    binary = num_classes == 2
    net = keras.Sequential(
        [
            keras.Input((FEATURES,)),
            keras.layers.Dense(4, activation="tanh", **dense_kwargs),
            keras.layers.Dense(1 if binary else num_classes, activation="sigmoid" if binary else "softmax"),
        ]
    )
    default_loss = "binary_crossentropy" if binary else "sparse_categorical_crossentropy"
    net.compile(optimizer=optimizer or keras.optimizers.SGD(0.1), loss=loss or default_loss)
    return net


@functools.cache
def mirrored_strategy() -> tf.distribute.MirroredStrategy:
    """One MirroredStrategy over the two logical CPUs for every test in the process.

    Fits under two MirroredStrategy objects in one process can abort with "Shape mismatch in the
    collective instance" (TensorFlow 2.21), with or without callbacks: the second strategy's
    collectives reuse the first one's instance keys.
    """
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


def fit(net: keras.Model, data, callbacks, **kwargs) -> keras.Model:
    net.fit(data, callbacks=callbacks, verbose=0, shuffle=False, **kwargs)
    return net


class Trajectory(keras.callbacks.Callback):
    """Every weight of the model (trainable or not) before each call of the train function.

    Attributes:
      weights: optimizer step -> `model.get_weights()` before that step (and at each epoch end).
      epoch_starts: the optimizer step at the start of each epoch.
    """

    def on_train_begin(self, logs=None):
        self.weights, self.epoch_starts = {}, []

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_starts.append(self._step())

    def on_train_batch_begin(self, batch, logs=None):
        self.weights[self._step()] = self.model.get_weights()

    def on_epoch_end(self, epoch, logs=None):
        self.weights[self._step()] = self.model.get_weights()

    def _step(self) -> int:
        return int(self.model.optimizer.iterations.numpy())

    def around(self, step: int) -> tuple[list, list]:
        """The weights before `step` and after it (before the next step that was recorded)."""
        after = min(s for s in self.weights if s > step)
        return self.weights[step], self.weights[after]

    def trained_steps(self, batches_per_epoch: int) -> list[int]:
        """The steps that trained on a batch: each epoch's first `batches_per_epoch` steps."""
        return [start + j for start in self.epoch_starts for j in range(batches_per_epoch)]


@dataclasses.dataclass(frozen=True)
class Batch:
    """One batch as the train step receives it: features, labels, sample weights (None if none)."""

    x: np.ndarray
    y: np.ndarray
    sample_weight: np.ndarray | None = None


def class_ids(y: np.ndarray) -> np.ndarray:
    """Class of each example: one-hot rows by argmax, anything else as an integer id."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        return y.argmax(axis=1)
    return np.rint(y.reshape(-1)).astype(int)


def expected_gradient_rows(
    net: keras.Model,
    trajectory: Trajectory,
    steps_and_batches: list[tuple[int, Batch]],
    *,
    per_example_loss: Callable,
    denominator: Callable,
    num_classes: int,
) -> pd.DataFrame:
    """What `PerClassGradients` should log for each (step, batch), recomputed independently.

    Args:
      net: the trained model; a clone of it gets the weights from `trajectory`.
      trajectory: the weights before every step, from a fit of the same model.
      steps_and_batches: the recorded steps and the batch each one trained on.
      per_example_loss: `f(y, y_pred) -> (B,)`, the loss of each example, written by the test.
      denominator: `f(sample_weight (B,)) -> float`, what the loss reduction divides by.
      num_classes: K.

    Returns:
      One row per step with the columns of `PerClassGradients.dataframe()` except `epoch`.
    """
    copy = keras.models.clone_model(net)
    rows = []
    for step, batch in steps_and_batches:
        before, after = trajectory.around(step)
        copy.set_weights(before)
        weights = copy.trainable_weights
        start = [w.numpy() for w in weights]
        copy.set_weights(after)
        update = np.concatenate([(w.numpy() - s).ravel() for w, s in zip(weights, start, strict=True)])
        copy.set_weights(before)
        ids = class_ids(batch.y)
        weight = np.ones(len(ids), np.float32) if batch.sample_weight is None else batch.sample_weight.reshape(-1)
        scale = np.float32(denominator(weight))
        with tf.GradientTape(persistent=True) as tape:
            y_pred = copy(batch.x, training=True)
            weighted = per_example_loss(batch.y, y_pred) * weight / scale
            class_losses = [tf.reduce_sum(tf.boolean_mask(weighted, ids == c)) for c in range(num_classes)]
            regularization = tf.add_n([tf.zeros(())] + [tf.reduce_sum(v) for v in copy.losses])
        grads = [
            [np.zeros(w.shape, np.float32) if g is None else g.numpy() for w, g in zip(weights, gradient, strict=True)]
            for gradient in (tape.gradient(target, weights) for target in [*class_losses, regularization])
        ]
        per_variable_total = [np.sum(parts, axis=0) for parts in zip(*grads, strict=True)]
        class_grads, total = [_flat(g) for g in grads[:-1]], _flat(per_variable_total)
        applied = _flat(_clip(net.optimizer, per_variable_total))
        row = {"step": step, "loss_total": float(sum(class_losses) + regularization)}
        row["loss_regularization"] = float(regularization)
        for c in range(num_classes):
            row[f"loss_class_{c}"] = float(class_losses[c])
        row["gradients_norm_total"] = np.linalg.norm(total)
        row["gradients_norm_applied"] = np.linalg.norm(applied)
        everything = np.sum(class_grads, axis=0)
        for c, g in enumerate(class_grads):
            row[f"gradients_norm_class_{c}"] = np.linalg.norm(g)
        for c, g in enumerate(class_grads):
            row[f"gradients_cosine_class_{c}_vs_rest"] = _cosine(g, everything - g)
        row["gradients_update_norm"] = np.linalg.norm(update)
        for c, g in enumerate(class_grads):
            share = np.divide(g, total, out=np.zeros_like(g), where=total != 0)
            row[f"gradients_effective_step_class_{c}"] = np.linalg.norm(update * share)
        for c in range(num_classes):
            row[f"gradients_examples_class_{c}"] = float(np.sum(ids == c))
        rows.append(row)
    return pd.DataFrame(rows)


def _flat(tensors) -> np.ndarray:
    return np.concatenate([np.asarray(t, np.float64).ravel() for t in tensors])


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    norms = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / norms) if norms else 0.0


def _clip(optimizer, gradients: list) -> list:
    """Keras's documented clipping options, in numpy."""
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        optimizer = optimizer.inner_optimizer
    if optimizer.clipnorm:
        return [g * min(1.0, optimizer.clipnorm / max(np.linalg.norm(g), 1e-30)) for g in gradients]
    if optimizer.global_clipnorm:
        norm = np.sqrt(sum(np.sum(g.astype(np.float64) ** 2) for g in gradients))
        return [g * min(1.0, optimizer.global_clipnorm / norm) for g in gradients]
    if optimizer.clipvalue:
        return [np.clip(g, -optimizer.clipvalue, optimizer.clipvalue) for g in gradients]
    return gradients


def expected_class_parts(net: keras.Model, trajectory: Trajectory, steps_and_batches: list, parts: Callable) -> list:
    """Each recorded step's class losses and class gradient norms, by a GradientTape on a copy of the model.

    Args:
      net: the trained model; a clone of it gets the weights from `trajectory`.
      trajectory: the weights before every step.
      steps_and_batches: `(step, batch)` of each recorded step, the batch as `parts` takes it.
      parts: `f(model, batch) -> {prefix: (K,) class losses}`, written by the test (the prefix names the output:
        "" or "main_").

    Returns:
      Per step a dict of logged column -> value: `{prefix}loss_class_{c}`, `{prefix}gradients_norm_class_{c}` and
      `loss_total`, the sum of every part.
    """
    copy = keras.models.clone_model(net)
    expected = []
    for step, batch in steps_and_batches:
        copy.set_weights(trajectory.around(step)[0])
        with tf.GradientTape(persistent=True) as tape:
            split = parts(copy, batch)
        row = {"loss_total": float(sum(tf.reduce_sum(losses) for losses in split.values()))}
        for prefix, losses in split.items():
            for c, loss in enumerate(losses):
                weights = copy.trainable_weights
                gradients = tape.gradient(loss, weights)
                gradients = [
                    np.zeros(w.shape) if g is None else tf.convert_to_tensor(g)
                    for w, g in zip(weights, gradients, strict=True)
                ]
                row[f"{prefix}loss_class_{c}"] = float(loss)
                row[f"{prefix}gradients_norm_class_{c}"] = np.linalg.norm(_flat(gradients))
        expected.append(row)
    return expected


def assert_rows_match(frame: pd.DataFrame, expected: list, *, rtol: float = 1e-5, atol: float = 1e-7) -> None:
    """Every expected column of every row (`expected_class_parts`) against the logged rows, in order."""
    assert len(frame) == len(expected)
    for i, row in enumerate(expected):
        for column, value in row.items():
            np.testing.assert_allclose(frame[column].iloc[i], value, rtol=rtol, atol=atol, err_msg=f"{column}, row {i}")
