"""Every private Keras name the callbacks use on the JAX backend (`_keras_adapter` is TensorFlow's).

On JAX a train step is a pure function `train_step(state, data) -> (logs, state)` that Keras compiles with
`jax.jit` (`keras/src/backend/jax/trainer.py`, `make_train_function`). The callbacks run that function,
compiled as Keras compiles it, on the batch and state Keras hands over, and compute what they log in functions
of their own from the same state and batch. Nothing they compute enters Keras's step, so the trained weights
are those of a plain fit by construction. The names Keras does not export are here, so a Keras release that
moves one breaks one module.
"""

from __future__ import annotations

import jax
import keras
import numpy as np
from keras.src.backend.jax.trainer import JAXTrainer
from keras.src.losses import loss as loss_module
from keras.src.losses.losses import LossFunctionWrapper

from imbal_keras.callbacks import _keras_adapter
from imbal_keras.errors import UserInputError

STANDARD_TRAIN_STEP = JAXTrainer.train_step


def check_supported(callback_name: str, model: keras.Model, *, gradients: bool) -> None:
    """Raises, before the first step, for what the callbacks do not observe on JAX.

    Refused: a Keras distribution (sharded state), Flax NNX models, and for gradient recorders a model with its
    own `train_step`, loss scaling (`LossScaleOptimizer`, `loss_scale_factor`) and gradient accumulation.

    Raises:
      UserInputError: one of those.
    """
    optimizer = model.optimizer
    refusals = [
        (keras.distribution.distribution() is not None, "a keras.distribution", "distribution"),
        (getattr(keras.config, "is_nnx_enabled", lambda: False)(), "Flax NNX", "nnx enabled"),  # Keras >= 3.11
        (gradients and overrides_train_step(model), "a custom train_step", f"model class {type(model).__name__}"),
        (
            gradients and (isinstance(optimizer, keras.optimizers.LossScaleOptimizer) or optimizer.loss_scale_factor),
            "loss scaling",
            f"optimizer {type(optimizer).__name__}",
        ),
        (
            gradients and _keras_adapter.accumulation_steps(optimizer) > 1,
            "gradient accumulation",
            f"gradient_accumulation_steps={_keras_adapter.accumulation_steps(optimizer)}",
        ),
    ]
    for refused, what, received in refusals:
        if refused:
            raise UserInputError(
                f"{callback_name} does not support {what} on the JAX backend (see docs/callbacks.md, Backends). "
                f"Received: {received}"
            )


def overrides_train_step(model: keras.Model) -> bool:
    return type(model).train_step is not STANDARD_TRAIN_STEP


def batch_count(model: keras.Model) -> int:
    """The optimizer's batch counter, read on the host while the model holds its variables (outside a step)."""
    return int(np.asarray(_keras_adapter.batch_counter(model.optimizer).value))


def compiled_step(model: keras.Model):
    """`model.train_step(state, data)` compiled as Keras's `make_train_function` compiles it (without a
    distribution): with `jax.jit`, the state donated, unless the model runs eagerly or without `jit_compile`."""
    if model.run_eagerly or not model.jit_compile:
        return model.train_step
    return jax.jit(model.train_step, donate_argnums=0)


def train_function(model: keras.Model, step_function):
    """The train function Keras builds around a step function: `(state, iterator) -> (logs, state)`, running
    `steps_per_execution` steps on the batches it takes from the iterator."""
    return model._make_function(step_function)


def forward(model: keras.Model, trainable, non_trainable, x) -> tuple:
    """The forward pass of Keras's train step from given variable values: `(y_pred, losses)`, the output and the
    `model.losses` terms of the call."""
    kwargs = {"training": True} if model._call_has_training_arg else {}
    y_pred, _, losses = model.stateless_call(trainable, non_trainable, x, return_losses=True, **kwargs)
    return y_pred, losses


def compiled_loss(model: keras.Model, y, y_pred, sample_weight):
    """The compiled loss of a batch, as `compute_loss` computes its first term."""
    return model._compile_loss(y, y_pred, sample_weight)


def clipped(optimizer: keras.optimizers.Optimizer, gradients: list) -> list | None:
    """The gradients after the optimizer's `clipnorm`, `global_clipnorm` or `clipvalue`, or None if it does not
    clip (Keras's own clipping, as its update applies it)."""
    if not (optimizer.clipnorm or optimizer.global_clipnorm or optimizer.clipvalue):
        return None
    return optimizer._clip_gradients(gradients)


def same_rank(values, weight) -> tuple:
    """Per-example loss values and sample weights brought to the same rank, as `Loss.__call__` does."""
    return loss_module.squeeze_or_expand_to_same_rank(values, weight)


def keep_model_state(model: keras.Model) -> None:
    """Puts the state of the running fit back into the model's variables (a no-op outside a step of `fit`)."""
    model.jax_state_sync()


def inference_forward(model: keras.Model, trainable, non_trainable, x):
    """The model's output in inference mode (`training=False`) from given variable values."""
    kwargs = {"training": False} if model._call_has_training_arg else {}
    y_pred, _ = model.stateless_call(trainable, non_trainable, x, **kwargs)
    return y_pred


def per_example_loss(model: keras.Model, loss):
    """`f(y, y_pred) -> (B,)`, the per-example values of `loss` (a `Loss`, its name or a function; None: the
    model's compiled loss), as `compile` wraps a name or function.

    Raises:
      UserInputError: no loss, or one per output.
    """
    given = model.loss if loss is None else loss
    if given is None or isinstance(given, (list, tuple, dict)):
        raise UserInputError(f"GradientNoise needs one loss for a single-output model. Received: loss={given!r}")
    if not isinstance(given, keras.losses.Loss):
        given = keras.losses.get(given)
    if not isinstance(given, keras.losses.Loss):
        given = LossFunctionWrapper(given)
    return lambda y, y_pred: given.call(keras.ops.cast(y, given.dtype), y_pred)
