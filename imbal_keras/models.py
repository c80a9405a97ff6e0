"""Small model factories whose output bias starts at the class prior training actually sees."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np


def output_bias(training_distribution: Sequence[float]) -> np.ndarray:
    """Initial output bias for a class distribution pi.

    Binary (sigmoid, one unit): log(pi_1 / pi_0), the log-odds, shape (1,). K classes (softmax): log(pi_c),
    shape (K,), defined up to a constant. Zero shares are clipped to 1e-7 so the bias stays finite.
    """
    pi = np.clip(np.asarray(training_distribution, dtype=np.float64), 1e-7, None)
    pi = pi / pi.sum()
    if len(pi) == 2:
        return np.array([np.log(pi[1] / pi[0])])
    return np.log(pi)


def build(
    input_shape: Sequence[int],
    num_classes: int,
    *,
    kind: str = "tabular",
    hidden_units: Sequence[int] = (64, 64),
    training_distribution: Sequence[float] | None = None,
    seed: int = 0,
) -> keras.Model:
    """An MLP (tabular) or a small CNN (image) classifier.

    Args:
      input_shape: shape of one example.
      num_classes: K; K = 2 gives one sigmoid output, K > 2 a softmax over K.
      kind: `tabular` or `image`.
      hidden_units: MLP widths (tabular) or the dense head after the convolutions (image).
      training_distribution: class distribution the output bias starts at; None means uniform.
      seed: seeds the weight initialisers.

    Returns:
      An uncompiled `keras.Model` that outputs probabilities.
    """
    if kind not in ("tabular", "image"):
        raise ValueError(f"kind must be 'tabular' or 'image'. Received: kind={kind!r}")
    seeds = iter(range(seed * 1000, seed * 1000 + 1000))
    init = lambda: keras.initializers.GlorotUniform(seed=next(seeds))  # noqa: E731
    inputs = keras.Input(shape=tuple(input_shape))
    h = inputs
    if kind == "image":
        for filters in (16, 32):
            h = keras.layers.Conv2D(filters, 3, activation="relu", kernel_initializer=init())(h)
            h = keras.layers.MaxPooling2D()(h)
        h = keras.layers.GlobalAveragePooling2D()(h)
    for width in hidden_units:
        h = keras.layers.Dense(width, activation="relu", kernel_initializer=init())(h)
    prior = np.full(num_classes, 1.0 / num_classes) if training_distribution is None else training_distribution
    bias = keras.initializers.Constant(output_bias(prior))
    units, activation = (1, "sigmoid") if num_classes == 2 else (num_classes, "softmax")
    outputs = keras.layers.Dense(
        units,
        activation=activation,
        kernel_initializer=init(),
        bias_initializer=bias,
        name="output",
    )(h)
    return keras.Model(inputs, outputs, name=f"{kind}_classifier")


def loss(num_classes: int, *, reduction: str = "sum_over_batch_size") -> keras.losses.Loss:
    """Cross-entropy with the given reduction of per-example (weighted) losses.

    `sum_over_batch_size` is sum_i w_i l_i / B (Keras' default); `mean_with_sample_weight` is
    sum_i w_i l_i / sum_i w_i (PyTorch's `weight=` behaviour). They differ only when weights are present.
    """
    if num_classes == 2:
        return keras.losses.BinaryCrossentropy(reduction=reduction)
    return keras.losses.SparseCategoricalCrossentropy(reduction=reduction)


def optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    """`sgd` (plain, no momentum, so steps are comparable across strategies) or `adam`."""
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=learning_rate)
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=learning_rate)
    raise ValueError(f"optimizer must be 'sgd' or 'adam'. Received: optimizer={name!r}")
