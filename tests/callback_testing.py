"""Tiny seeded models and datasets shared by the callback tests."""

from __future__ import annotations

import keras
import numpy as np
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


def fit(net: keras.Model, data, callbacks, **kwargs) -> keras.Model:
    net.fit(data, callbacks=callbacks, verbose=0, shuffle=False, **kwargs)
    return net
