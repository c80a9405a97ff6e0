"""The recorded rows on the JAX backend: `rows` and `_labels` re-stated in `jax.numpy` for one batch.

The same quantities, in the same order and with the same arithmetic as the TensorFlow definitions in
`imbal_keras.callbacks.rows` and `_labels`, for the functions the JAX probe compiles (tests/jax/ checks every
logged value against an independent `jax.grad` recomputation).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from imbal_keras.callbacks import _jax_adapter
from imbal_keras.errors import UserInputError


def class_ids(y, num_classes: int, callback_name: str):
    """Integer class id of every example (B,) int32, read as `_labels.class_ids` reads them: ids (B,) or (B, 1)
    (integer, boolean or float; for K = 2 a float label >= 0.5 is class 1) or one-hot (B, K) (the argmax).

    Raises:
      UserInputError: (at trace time) labels of another structure, rank, width or dtype.
    """
    dtype = getattr(y, "dtype", None)
    numeric = dtype is not None and (np.issubdtype(dtype, np.number) or dtype == np.bool_)
    if isinstance(y, (list, tuple, dict)) or not numeric:
        raise UserInputError(
            f"{callback_name} cannot interpret the labels: expected numeric class ids (B,) or "
            f"one-hot labels (B, {num_classes}). Received: y={y!r}"
        )
    if y.ndim == 2 and y.shape[-1] == num_classes and dtype != np.bool_ and num_classes > 1:
        return jnp.argmax(y, axis=-1).astype(jnp.int32)
    if y.ndim == 2 and y.shape[-1] == 1:
        y = y[:, 0]
    elif y.ndim != 1:
        raise UserInputError(
            f"{callback_name} cannot interpret labels for a model with {num_classes} classes: "
            f"expected class ids (B,) or (B, 1), or one-hot (B, {num_classes}). Received: y.shape={y.shape}"
        )
    if np.issubdtype(dtype, np.floating) and num_classes == 2:
        return (y >= 0.5).astype(jnp.int32)
    return y.astype(jnp.int32)


def composition_row(one_hot, sample_weight):
    """`rows.composition_row` of one batch, concatenated: batch size, counts (K), weights (K); float32."""
    counts = jnp.sum(one_hot, axis=0)
    batch_size = jnp.full((1,), one_hot.shape[0], jnp.float32)
    weights = counts if sample_weight is None else one_hot.T @ jnp.reshape(sample_weight, (-1,)).astype(jnp.float32)
    return jnp.concatenate([batch_size, counts, weights])


def class_losses(loss_fn, loss_weight, dtype, batch: tuple, one_hot):
    """Each class's part of the compiled loss (K,), with the whole batch's divisor (`_split.split`
    without output masks, which JAX arrays do not carry), times the loss's `loss_weights` entry.

    Args:
      loss_fn: the compiled `keras.losses.Loss`.
      loss_weight: its weight, or None.
      dtype: the compiled loss's dtype.
      batch: `(y, y_pred, sample_weight)`.
      one_hot: (B, K) class membership.

    Raises:
      UserInputError: a loss that does not return one value per example.
    """
    y, y_pred, sample_weight = batch
    values = loss_fn.call(y.astype(loss_fn.dtype), y_pred.astype(loss_fn.dtype))
    if values.ndim == 0 or values.shape[0] != y_pred.shape[0]:
        raise UserInputError(
            "PerClassGradients needs a loss that returns one value per example. "
            f"Received: loss={loss_fn.name!r} returning shape {values.shape}"
        )
    weight = None
    if sample_weight is not None:
        values, weight = _jax_adapter.same_rank(values, jnp.reshape(sample_weight, (-1,)).astype(values.dtype))
        values = values * weight
    per_example = values if values.ndim == 1 else jnp.sum(values, axis=tuple(range(1, values.ndim)))
    sums = one_hot.astype(values.dtype).T @ per_example
    if loss_fn.reduction == "sum":
        parts = sums
    else:
        weighted = loss_fn.reduction == "mean_with_sample_weight" and weight is not None
        parts = divide_no_nan(sums, jnp.sum(weight) if weighted else jnp.asarray(values.size, values.dtype))
    parts = parts.astype(dtype)
    return parts if loss_weight is None else parts * loss_weight


def divide_no_nan(numerator, denominator):
    """numerator / denominator, 0 where the denominator is 0 (`tf.math.divide_no_nan`)."""
    safe = jnp.where(denominator == 0, 1, denominator)
    return jnp.where(denominator == 0, 0, numerator / safe)


def flatten(arrays) -> jax.Array:
    """The arrays as one float32 vector."""
    return jnp.concatenate([jnp.reshape(a, (-1,)).astype(jnp.float32) for a in arrays])


def gradient_row(gradients: tuple, update, losses, counts):
    """`rows.gradient_row` of one step, concatenated in the order of `rows.gradient_tags` (no accumulation).

    Args:
      gradients: `(per_class (K, P), total (P,), applied (P,) or None)`, as `rows.gradient_row` takes them.
      update: (P,) the change of the trainable weights the step made.
      losses: (2 + K,) the loss, its regularization part and each class's part.
      counts: (K,) examples per class.
    """
    per_class, total, applied = gradients
    k = per_class.shape[0]
    rest = jnp.sum(per_class, axis=0, keepdims=True) - per_class
    shares = update[None, :] * divide_no_nan(per_class, total[None, :])
    heads = [total] if applied is None else [total, applied]
    first = len(heads)
    matrix = jnp.concatenate([jnp.stack(heads), per_class, update[None, :], shares, rest])
    norms = jnp.linalg.norm(matrix, axis=-1)
    class_norms, rest_norms = norms[first : first + k], norms[first + 1 + 2 * k :]
    cosines = divide_no_nan(jnp.sum(per_class * rest, axis=-1), class_norms * rest_norms)
    parts = [
        losses,
        norms[:1],
        norms[first - 1 : first],
        class_norms,
        cosines,
        norms[first + k : first + 1 + 2 * k],
        counts,
    ]
    return jnp.concatenate([p.astype(jnp.float32) for p in parts])
