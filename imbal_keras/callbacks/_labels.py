"""Reading class ids out of the labels a compiled model trains on."""

from __future__ import annotations

import keras
import tensorflow as tf

from imbal_keras.callbacks import _keras_adapter
from imbal_keras.errors import UserInputError


def num_classes(model: keras.Model, callback_name: str) -> int:
    """Number of classes K the model predicts: 2 for a (B, 1) sigmoid output, else the output width.

    Args:
      model: a built, single-output Keras model.
      callback_name: named in the error message.

    Returns:
      K >= 2.

    Raises:
      UserInputError: the output width cannot be determined or the model has several outputs.
    """
    spec = _output_spec(model)
    if isinstance(spec, (list, tuple, dict)):
        raise UserInputError(
            f"{callback_name} supports single-output models. Received: a model with {len(spec)} outputs"
        )
    width = spec.shape[-1] if spec is not None and len(spec.shape) == 2 else None
    if width is None:
        raise UserInputError(
            f"{callback_name} cannot infer the number of classes from the model output; pass "
            f"num_classes=. Received: output shape={None if spec is None else spec.shape}"
        )
    return 2 if width == 1 else int(width)


def output_classes(model: keras.Model) -> int | None:
    """K as `num_classes` infers it from the model output, or None where it cannot."""
    try:
        return num_classes(model, "")
    except UserInputError:
        return None


def _output_spec(model: keras.Model):
    """The model's output spec: `outputs` (functional) or a symbolic call on the built input."""
    try:
        outputs = model.outputs
    except (AttributeError, ValueError):
        outputs = None
    if outputs:
        return outputs[0] if len(outputs) == 1 else outputs
    shape = _keras_adapter.built_input_shape(model)
    return None if shape is None else model.compute_output_spec(keras.KerasTensor(shape))


def check_labels(y, num_classes: int, callback_name: str) -> None:
    """Raises unless `class_ids` can read labels like `y` (a tensor or a `tf.TensorSpec`: only its structure,
    dtype and shape are read), so that labels it cannot read are refused before a step is traced.

    Raises:
      UserInputError: labels of another structure, rank, width or dtype.
    """
    _layout(y, num_classes, callback_name)


def class_ids(y: tf.Tensor, num_classes: int, callback_name: str) -> tf.Tensor:
    """Integer class id of every example, shape (B,) int32.

    Accepted labels: integer, boolean or float class ids of shape (B,) or (B, 1) (for K = 2 a float label
    counts as class 1 when it is >= 0.5, so smoothed binary labels work), and one-hot or soft labels
    of shape (B, K) (class = argmax).

    Args:
      y: the batch labels as the train step sees them.
      num_classes: K.
      callback_name: named in the error message.

    Raises:
      UserInputError: (at trace time) labels of another structure, rank, width or dtype.
    """
    layout = _layout(y, num_classes, callback_name)
    if layout == "one_hot":
        return tf.argmax(y, axis=-1, output_type=tf.int32)
    if layout == "column":
        y = tf.squeeze(y, axis=-1)
    if y.dtype.is_floating and num_classes == 2:
        return tf.cast(y >= 0.5, tf.int32)
    return tf.cast(y, tf.int32)


def _layout(y, num_classes: int, callback_name: str) -> str:
    """How labels like `y` hold the classes: "ids" (B,), "column" (B, 1) or "one_hot" (B, K)."""
    numeric = hasattr(y, "dtype") and (y.dtype.is_integer or y.dtype.is_floating or y.dtype == tf.bool)
    if isinstance(y, (list, tuple, dict)) or not numeric:
        raise UserInputError(
            f"{callback_name} cannot interpret the labels: expected numeric class ids (B,) or "
            f"one-hot labels (B, {num_classes}). Received: y={y!r}"
        )
    rank, width = y.shape.rank, y.shape[-1] if y.shape.rank else None
    if rank == 2 and width == 1:
        return "column"
    if rank == 2 and width == num_classes and y.dtype != tf.bool:
        return "one_hot"
    if rank != 1:
        raise UserInputError(
            f"{callback_name} cannot interpret labels for a model with {num_classes} classes: "
            f"expected class ids (B,) or (B, 1), or one-hot (B, {num_classes}). "
            f"Received: y.shape={y.shape}"
        )
    return "ids"
