"""What the exact and the sampled mode share: their traced programs' cache, loss resolution and argument checks."""

from __future__ import annotations

import keras
import tensorflow as tf

from imbal_keras.errors import check, is_integer

__all__ = [
    "CHUNK_BYTES",
    "cached",
    "check_int",
    "check_single_output",
    "resolve_loss",
]

# A chunk of vectorised per-example gradients stays within this many bytes (float32) and this many examples; 512
# was the fastest of 512, 1024 and 2048 for the 2x64 MLP on 2 cores. The Dense-chain closed form holds no (C, P)
# matrix (only each layer's inputs and pre-activation gradients), so its chunks are larger.
CHUNK_BYTES = 64 * 2**20


_CACHE_ATTRIBUTE = "_imbal_keras_gradient_programs"


def cached(model: keras.Model, loss, kind: type, build):
    """One traced program of each kind per model, kept while it is asked for with the same loss.

    Tracing a vectorised gradient costs seconds, more than a diagnosis of a small model, so repeated calls (the
    callback, a loop over pipelines) reuse it. It lives on the model and goes with it.
    """
    source = getattr(model, "loss", None) if loss is None else loss
    # The trainable set is part of the key: a program differentiates the weights it was traced with.
    trainable = tuple(id(w) for w in model.trainable_weights)
    programs = model.__dict__.setdefault(_CACHE_ATTRIBUTE, {})
    cached = programs.get(kind)
    if cached is None or cached[0] is not source or cached[1] != trainable:
        cached = programs[kind] = (source, trainable, build())
    return cached[2]


def resolve_loss(model: keras.Model, loss) -> keras.losses.Loss:
    """A Keras `Loss` object: `loss`, else the model's compiled loss; names and functions are wrapped."""
    loss = getattr(model, "loss", None) if loss is None else loss
    check(
        loss is not None,
        "loss is needed: compile the model with one or pass loss=. Received: loss=None",
        argument="loss",
    )
    check(
        not isinstance(loss, (list, tuple, dict)),
        f"loss must be one loss for a single-output model. Received: loss={loss!r}",
        argument="loss",
    )
    if isinstance(loss, keras.losses.Loss):
        return loss
    fn = keras.losses.get(loss)
    if isinstance(fn, keras.losses.Loss):
        return fn
    check(callable(fn), f"loss must be a Keras loss, its name or a function. Received: loss={loss!r}", argument="loss")
    return _FunctionLoss(fn)


class _FunctionLoss(keras.losses.Loss):
    """A loss function `fn(y_true, y_pred) -> (B,)` with Keras' default reduction, as `compile` wraps functions."""

    def __init__(self, fn):
        super().__init__(name=getattr(fn, "__name__", "loss"))
        self._fn = fn

    def call(self, y_true, y_pred):
        # As Keras' wrapper does: labels (B,) meet a (B, 1) sigmoid output as (B, 1).
        if len(y_pred.shape) == len(y_true.shape) + 1 and y_pred.shape[-1] == 1:
            y_true = tf.expand_dims(y_true, -1)
        return self._fn(y_true, y_pred)


def check_single_output(model: keras.Model) -> None:
    check(
        len(model.outputs or []) <= 1,
        f"model must have one output for the gradient-noise diagnostics. Received: {len(model.outputs)} outputs",
        argument="model",
    )


def check_int(value, argument: str, *, minimum: int) -> None:
    check(
        is_integer(value) and value >= minimum,
        f"{argument} must be an integer >= {minimum}. Received: {argument}={value!r}",
        argument=argument,
    )
