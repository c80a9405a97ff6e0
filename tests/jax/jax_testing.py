"""Tiny models on the JAX backend and an independent recomputation of what the callbacks log.

A model is a list of dense layers (`Case.layers`); `keras_model` builds it in Keras and `forward` computes the
same function in `jax.numpy` from the weights alone. `Trajectory` keeps the weights before every step of a
fit. `expected_gradient_rows` recomputes each logged value of `PerClassGradients` with `jax.grad` over per-class
losses written here, with none of the callback's or Keras's code.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pandas as pd

EPS = 1e-7
ACTIVATIONS = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "softmax": lambda z: jax.nn.softmax(z, axis=-1),
    "linear": lambda z: z,
}


@dataclasses.dataclass
class Case:
    """A model, its data and how it trains."""

    layers: list  # (units, activation) per dense layer
    inputs: tuple = (3,)  # widths of the model's inputs (concatenated before the first layer)
    num_classes: int = 2
    examples: int = 48
    batch_size: int = 16
    weighted: bool = False
    one_hot: bool = False  # one-hot labels (B, K) and categorical cross-entropy, else class ids
    from_logits: bool = False  # the last layer is linear and the loss takes logits (K > 2)
    optimizer: dict = dataclasses.field(default_factory=lambda: {"class_name": "SGD", "config": {"learning_rate": 0.1}})

    def data(self, seed: int = 0) -> tuple:
        rng = np.random.default_rng(seed)
        x = [rng.normal(size=(self.examples, width)).astype(np.float32) for width in self.inputs]
        ids = rng.choice(
            self.num_classes, size=self.examples, p=[0.6] + [0.4 / (self.num_classes - 1)] * (self.num_classes - 1)
        )
        y = ids.astype(np.float32) if self.num_classes == 2 else ids.astype(np.int32)
        if self.one_hot:
            y = np.eye(self.num_classes, dtype=np.float32)[ids]
        weights = rng.uniform(0.5, 2.0, size=self.examples).astype(np.float32) if self.weighted else None
        return (x[0] if len(x) == 1 else x), y, weights

    def loss(self):
        if self.num_classes == 2:
            return "binary_crossentropy"
        if self.one_hot:
            return keras.losses.CategoricalCrossentropy(from_logits=self.from_logits)
        return keras.losses.SparseCategoricalCrossentropy(from_logits=self.from_logits)


def keras_model(case: Case) -> keras.Model:
    """The case's model, compiled, with the same initial weights every time."""
    keras.utils.set_random_seed(1)
    dense = [keras.layers.Dense(units, activation=activation) for units, activation in case.layers]
    if len(case.inputs) == 1:
        model = keras.Sequential([keras.Input((case.inputs[0],)), *dense])
    else:
        inputs = [keras.Input((width,)) for width in case.inputs]
        h = keras.layers.Concatenate()(inputs)
        for layer in dense:
            h = layer(h)
        model = keras.Model(inputs, h)
    model.compile(keras.optimizers.get(case.optimizer), case.loss())
    return model


def forward(case: Case, weights: list, x) -> jax.Array:
    """The model's output computed from its weights `[kernel, bias, kernel, bias, ...]`."""
    h = jnp.concatenate(x, axis=-1) if isinstance(x, list) else x
    for i, (_, activation) in enumerate(case.layers):
        h = ACTIVATIONS[activation](h @ weights[2 * i] + weights[2 * i + 1])
    return h


def per_example_loss(case: Case, y, y_pred) -> jax.Array:
    """Keras's cross-entropies, one value per example: on probabilities clipped to [eps, 1 - eps], or on logits."""
    if case.num_classes == 2:
        p = jnp.clip(y_pred[:, 0], EPS, 1 - EPS)
        return -(y * jnp.log(p) + (1 - y) * jnp.log(1 - p))
    ids = class_ids(case, y)
    if case.from_logits:
        return -jnp.take_along_axis(jax.nn.log_softmax(y_pred, axis=-1), ids[:, None], axis=-1)[:, 0]
    p = jnp.clip(y_pred / jnp.sum(y_pred, axis=-1, keepdims=True), EPS, 1 - EPS)
    return -jnp.log(jnp.take_along_axis(p, ids[:, None], axis=-1)[:, 0])


def class_ids(case: Case, y):
    """The class id of every example, (B,) int32."""
    y = jnp.asarray(y)
    return jnp.argmax(y, axis=-1).astype(jnp.int32) if case.one_hot else y.astype(jnp.int32)


class Trajectory(keras.callbacks.Callback):
    """The trainable weights before every step (and after the last) of one or more fits of a model."""

    def __init__(self):
        super().__init__()
        self.weights = []

    def on_train_begin(self, logs=None):
        if not self.weights:
            self.weights.append([np.array(w) for w in self.model.trainable_weights])

    def on_train_batch_end(self, batch, logs=None):
        # Keras keeps the state outside the variables during a JAX fit; a callback syncs it to read it.
        self.model.jax_state_sync()
        self.weights.append([np.array(w) for w in self.model.trainable_weights])


def batches(case: Case, data: tuple, steps: int) -> list[tuple]:
    """The (x, y, sample_weight) of steps 0..steps-1 of fits with `shuffle=False`."""
    x, y, weights = data
    per_epoch = -(-case.examples // case.batch_size)
    found = []
    for step in range(steps):
        part = slice((step % per_epoch) * case.batch_size, (step % per_epoch + 1) * case.batch_size)
        xs = [a[part] for a in x] if isinstance(x, list) else x[part]
        found.append((xs, y[part], None if weights is None else weights[part]))
    return found


def expected_composition(case: Case, batch: tuple) -> dict:
    _, y, weights = batch
    ids = np.asarray(class_ids(case, y))
    weights = np.ones(len(ids)) if weights is None else weights
    row = {"composition_batch_size": len(ids)}
    for c in range(case.num_classes):
        row[f"composition_count_class_{c}"] = int(np.sum(ids == c))
        row[f"composition_share_class_{c}"] = np.mean(ids == c)
        row[f"composition_weight_class_{c}"] = float(np.sum(weights[ids == c]))
    return row


def expected_gradient_row(case: Case, batch: tuple, before: list, after: list, clip) -> dict:
    """What `PerClassGradients` should log for a step from `before` to `after` on `batch`.

    Args:
      case: the model.
      batch: `(x, y, sample_weight)` of the step.
      before, after: the trainable weights before and after the step.
      clip: `f(gradients) -> gradients`, the optimizer's clipping written by the test (identity without).
    """
    x, y, weights = batch
    ids = np.asarray(class_ids(case, y))
    weights = np.ones(len(ids), np.float32) if weights is None else weights
    params = [jnp.asarray(w) for w in before]

    def class_loss(p, c):
        values = per_example_loss(case, jnp.asarray(y), forward(case, p, x)) * weights
        return jnp.sum(jnp.where(ids == c, values, 0.0)) / len(ids)

    losses = [float(class_loss(params, c)) for c in range(case.num_classes)]
    grads = [_flat(jax.grad(class_loss)(params, c)) for c in range(case.num_classes)]
    total = np.sum(grads, axis=0)
    update = _flat(after) - _flat(before)
    row = {"loss_total": sum(losses), "loss_regularization": 0.0}
    row.update({f"loss_class_{c}": v for c, v in enumerate(losses)})
    row["gradients_norm_total"] = np.linalg.norm(total)
    unflat = jax.grad(lambda p: sum(class_loss(p, c) for c in range(case.num_classes)))(params)
    row["gradients_norm_applied"] = np.linalg.norm(_flat(clip([np.asarray(g, np.float64) for g in unflat])))
    for c, g in enumerate(grads):
        row[f"gradients_norm_class_{c}"] = np.linalg.norm(g)
    for c, g in enumerate(grads):
        rest = total - g
        norms = np.linalg.norm(g) * np.linalg.norm(rest)
        row[f"gradients_cosine_class_{c}_vs_rest"] = float(g @ rest / norms) if norms else 0.0
    row["gradients_update_norm"] = np.linalg.norm(update)
    for c, g in enumerate(grads):
        share = np.divide(g, total, out=np.zeros_like(g), where=total != 0)
        row[f"gradients_effective_step_class_{c}"] = np.linalg.norm(update * share)
    for c in range(case.num_classes):
        row[f"gradients_examples_class_{c}"] = int(np.sum(ids == c))
    return row


def expected_gradient_rows(case: Case, data: tuple, trajectory: Trajectory, steps, clip) -> pd.DataFrame:
    found = batches(case, data, max(steps) + 1)
    rows = [
        {"step": s, **expected_gradient_row(case, found[s], trajectory.weights[s], trajectory.weights[s + 1], clip)}
        for s in steps
    ]
    return pd.DataFrame(rows)


def _flat(arrays) -> np.ndarray:
    return np.concatenate([np.asarray(a, np.float64).ravel() for a in arrays])
