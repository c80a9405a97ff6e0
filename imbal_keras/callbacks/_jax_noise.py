"""`GradientNoise` on the JAX backend: the exact mode's per-example gradients with `jax.vmap` of `jax.grad`.

On TensorFlow `imbal_keras.diagnostics.class_moments` takes them with `tf.GradientTape`, which cannot differentiate
a model whose variables hold JAX arrays. Here one compiled function per model and loss takes the gradient of each
example's loss through the model's `stateless_call` in inference mode (`training=False`, as on TensorFlow), for
chunks of examples, and `ClassMoments.from_gradients` reduces the (N, P) matrix to the same moments.
"""

from __future__ import annotations

import weakref

import jax
import jax.numpy as jnp
import keras
import numpy as np

from imbal_keras.callbacks import _jax_adapter, _jax_rows
from imbal_keras.diagnostics.moments import DEFAULT_MAX_PARAMETERS, ClassMoments
from imbal_keras.errors import UserInputError

# Examples per compiled call: at most this many, and at most 64 MiB of gradients.
_MAX_CHUNK = 512
_CHUNK_BYTES = 64 * 2**20
# The (N, P) float64 matrix `ClassMoments.from_gradients` reduces is held whole: at most this many bytes.
_MAX_MATRIX_BYTES = 2 * 2**30

# model -> (loss given, ids of the trainable weights, compiled chunk function).
_PROGRAMS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def class_moments(model: keras.Model, features, labels: np.ndarray, *, num_classes: int, class_counts, loss):
    """`imbal_keras.diagnostics.class_moments` of the model's current weights, on the JAX backend.

    Called from a callback during `fit`, it first puts the fit's state back into the model's variables (Keras's JAX
    trainer keeps it outside them between steps).

    Args:
      model: a compiled single-output Keras model.
      features: arrays (or a structure of arrays), leading dimension N.
      labels: class ids (N,).
      num_classes: K.
      class_counts: n_c of the data the strategies draw from (`features` is a per-class subsample of it).
      loss: a per-example Keras loss, its name or a function; None means the model's compiled loss.

    Raises:
      UserInputError: a model over `DEFAULT_MAX_PARAMETERS` parameters, or a gradient matrix over 2 GiB.
    """
    _jax_adapter.keep_model_state(model)
    size = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    if size > DEFAULT_MAX_PARAMETERS or 8 * size * len(labels) > _MAX_MATRIX_BYTES:
        raise UserInputError(
            f"GradientNoise on the JAX backend takes models of at most {DEFAULT_MAX_PARAMETERS:,} parameters and "
            f"2 GiB of per-example gradients (lower examples_per_class). Received: {size} parameters x "
            f"{len(labels)} examples"
        )
    program = _program(model, loss)
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]
    chunk = max(1, min(_MAX_CHUNK, _CHUNK_BYTES // (4 * max(size, 1)), len(labels)))
    parts = []
    for start in range(0, len(labels), chunk):
        index = np.arange(start, start + chunk)
        index[index >= len(labels)] = 0  # the last chunk is padded with the first example: one compiled shape
        x = jax.tree_util.tree_map(lambda f, i=index: np.asarray(f)[i], features)
        parts.append(np.asarray(program(trainable, non_trainable, x, labels[index]))[: len(labels) - start])
    return ClassMoments.from_gradients(
        np.concatenate(parts), labels, num_classes=num_classes, class_counts=class_counts
    )


def _program(model: keras.Model, loss):
    """The compiled `(trainable, non_trainable, x, y) -> (C, P)` per-example gradients of a chunk."""
    trainable_ids = tuple(id(w) for w in model.trainable_weights)
    kept = _PROGRAMS.get(model)
    if kept is not None and kept[0] is loss and kept[1] == trainable_ids:
        return kept[2]
    per_example = _jax_adapter.per_example_loss(model, loss)

    def one(trainable, non_trainable, x, y):
        y_pred = _jax_adapter.inference_forward(model, trainable, non_trainable, jax.tree_util.tree_map(_one, x))
        return jnp.sum(per_example(_one(y), y_pred))

    gradient = jax.grad(one)

    def chunk(trainable, non_trainable, x, y):
        gradients = jax.vmap(gradient, in_axes=(None, None, 0, 0))(trainable, non_trainable, x, y)
        return jax.vmap(_jax_rows.flatten)(gradients)

    program = jax.jit(chunk)
    _PROGRAMS[model] = (loss, trainable_ids, program)
    return program


def _one(t):
    """One example as a batch of one."""
    return t[None]
