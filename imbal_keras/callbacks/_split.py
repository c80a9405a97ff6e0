"""Splitting one output's compiled loss into its classes' parts: per example, pixel, token or label.

The compiled loss of an output is a weighted sum of terms divided by one divisor (`_keras_adapter.loss_weighting`).
Each term belongs to classes through a membership (B, N, K): one term per example for "classes" targets (its
class), one per pixel or token for "dense" targets (the element's class; an ignored element belongs to none and its
term is 0), and one per label for "multi_label" targets (label l's binary cross-entropy term belongs to "class" l).
A class's part is the sum of its terms over the whole batch's divisor, so the parts sum to the output's loss, and
masking the gradient of the loss with respect to the output to a class's terms gives the gradient of its part.
"""

from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf

from imbal_keras.callbacks import _keras_adapter, _labels, rows
from imbal_keras.errors import UserInputError

_NAME = "PerClassGradients"


@dataclasses.dataclass
class Split:
    """One output's loss split into classes for a batch.

    Attributes:
      losses: (K,) each class's part of the output's weighted loss.
      membership: (B, N, K) class membership of each of the loss's terms.
      counts: (K,) what the row logs as the class's examples: examples, pixels or tokens, or positive labels.
      complete: whether every term is in a class; not when the callback's `ignore_class` leaves out elements the
        loss counts (a loss without that `ignore_class`), whose terms are then in the loss and in no class's part.
    """

    losses: tf.Tensor
    membership: tf.Tensor
    counts: tf.Tensor
    complete: bool = True


def output_loss(model: keras.Model, target: _labels.Target) -> tuple:
    """`(loss_fn, loss_weight, dtype)` compiled for `target`'s output (dtype: the compiled loss's).

    Raises:
      UserInputError: no compiled loss for the output, or one not reduced by summing over the batch.
    """
    compiled = _keras_adapter.compiled_losses(model)
    if target.name is None:
        matches = compiled if len(compiled) == 1 else []
        wanted = "one loss passed to compile() for a single-output model"
    else:
        matches = [entry for entry in compiled if entry[0] == target.name]
        wanted = f"a loss passed to compile() for output {target.name!r} (or outputs= naming outputs with one)"
    if not matches:
        raise UserInputError(f"{_NAME} needs {wanted}. Received: loss={_keras_adapter.user_loss(model)!r}")
    _, loss_fn, loss_weight = matches[0]
    reduction = getattr(loss_fn, "reduction", None)
    if reduction not in rows.ADDITIVE_REDUCTIONS:
        raise UserInputError(
            f"{_NAME} needs a loss reduced over the batch (sum, sum_over_batch_size, mean or "
            f"mean_with_sample_weight). Received: reduction={reduction!r}"
        )
    return loss_fn, loss_weight, _keras_adapter.compiled_loss_dtype(model)


def split(loss: tuple, target: _labels.Target, y, y_pred, sample_weight) -> Split:
    """The classes' parts of the output's compiled loss `loss` (`output_loss`) on a batch.

    Args:
      loss: `(loss_fn, loss_weight, dtype)`.
      target: the output.
      y, y_pred, sample_weight: the output's labels, prediction and sample weights (or None).

    Raises:
      UserInputError: (at trace time) a loss that does not return a value per example (per element for dense
        labels).
    """
    loss_fn, loss_weight, dtype = loss
    y_cast, pred_cast = tf.cast(y, loss_fn.dtype), tf.cast(y_pred, loss_fn.dtype)
    values = loss_fn.call(y_cast, pred_cast)
    dense = target.kind == _labels.DENSE
    per_element = values.shape.rank == target.output_rank - 1 if dense else values.shape.rank >= 1
    if not per_element or values.shape[0] != y_pred.shape[0]:
        unit = "pixel or token" if dense else "example"
        raise UserInputError(
            f"{_NAME} needs a loss that returns one value per {unit}. "
            f"Received: loss={loss_fn.name!r} returning shape {values.shape}"
        )
    weight, divisor = _keras_adapter.loss_weighting(loss_fn, values, y_pred, sample_weight)
    weighted = values if weight is None else values * weight
    batch = tf.shape(values)[0]
    if target.kind == _labels.MULTI_LABEL:
        elements = _label_terms(loss_fn, y_cast, pred_cast)
        elements = elements if weight is None else elements * tf.reshape(weight, [batch, 1])
        membership = tf.broadcast_to(tf.eye(target.num_classes, dtype=tf.float32), [batch, *[target.num_classes] * 2])
        counts = tf.reduce_sum(_labels.positives(y, target, _NAME), axis=0)
    else:
        ids = _labels.class_ids(y, target, _NAME)
        membership = tf.one_hot(ids if dense else ids[:, None], target.num_classes)
        elements = tf.reshape(weighted, [batch, -1])
        if not dense:
            elements = tf.reduce_sum(elements, axis=1, keepdims=True)
        counts = tf.reduce_sum(membership, axis=[0, 1])
    sums = tf.einsum("bn,bnk->k", elements, tf.cast(membership, elements.dtype))
    losses = tf.cast(tf.math.divide_no_nan(sums, divisor), dtype)
    complete = not dense or target.ignore_class in (None, loss_fn.get_config().get("ignore_class"))
    return Split(losses if loss_weight is None else losses * loss_weight, membership, counts, complete)


def _label_terms(loss_fn, y, y_pred) -> tf.Tensor:
    """(B, L): label l's term of each example's multi-label loss, the loss of that label alone divided by L.

    A multi-label binary cross-entropy averages its L labels' terms; computing it on (B, L, 1) gives every term.
    The output's logits, which Keras's cross-entropies read instead of the probabilities, go along.
    """
    expanded = y_pred[..., None]
    logits = _keras_adapter.logits(y_pred)
    if logits is not None:
        expanded._keras_logits = logits[..., None]
    terms = loss_fn.call(y[..., None], expanded)
    return terms / tf.cast(tf.shape(terms)[-1], terms.dtype)


def class_mask(membership: tf.Tensor, column: int, like: tf.Tensor) -> tf.Tensor:
    """Column `column` of a (B, N, K) membership, shaped to mask the gradient `like` with respect to the output.

    An output (B, K) takes a (B, 1) mask, a dense output (B, ..., K) a (B, ..., 1) one, a multi-label (B, L) one
    a (B, L) one.
    """
    shape = tf.concat([tf.shape(like)[:-1], [-1]], axis=0)
    return tf.reshape(tf.cast(membership[..., column], like.dtype), shape)
