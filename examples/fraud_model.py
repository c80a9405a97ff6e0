"""A small functional Keras model for the transactions table: an embedding per categorical column.

`imbal_keras` calls `build_model` with the arguments it names (see docs/models.md) and compiles the model with
each strategy's loss; it sets the output bias of the final sigmoid Dense to the training prior.
"""

from __future__ import annotations

import keras


def build_model(input_shape, num_classes, features, seed):
    """Numeric columns through as they are, each categorical code through its own 4-wide embedding.

    Args:
      input_shape: (D,), the table's feature columns.
      num_classes: K (2: one sigmoid unit; more: a softmax).
      features: `imbal_keras.data.Feature` per column: which are categorical and their number of codes.
      seed: seeds the initialisers, so the same seed builds the same model.

    Returns:
      An uncompiled `keras.Model` that outputs probabilities.
    """
    inputs = keras.Input(shape=input_shape)
    categorical = [i for i, f in enumerate(features) if f.kind == "categorical"]
    numeric = [i for i in range(input_shape[0]) if i not in categorical]
    parts = [keras.ops.take(inputs, numeric, axis=1)]
    for i in categorical:
        embedding = keras.layers.Embedding(
            features[i].cardinality, 4, embeddings_initializer=keras.initializers.RandomUniform(seed=seed + i)
        )
        parts.append(keras.layers.Flatten()(embedding(keras.ops.cast(inputs[:, i], "int32"))))
    h = keras.layers.Concatenate()(parts)
    h = keras.layers.Dense(32, activation="relu", kernel_initializer=keras.initializers.GlorotUniform(seed=seed))(h)
    units, activation = (1, "sigmoid") if num_classes == 2 else (num_classes, "softmax")
    outputs = keras.layers.Dense(units, activation=activation)(h)
    return keras.Model(inputs, outputs, name="transactions_model")
