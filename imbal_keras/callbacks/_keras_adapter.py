"""Every private Keras name the callbacks use, and the range of Keras versions they are tested on.

The callbacks re-state how Keras's TensorFlow trainer builds its train function
(`keras/src/backend/tensorflow/trainer.py`), recompute its forward pass and loss from the state before a
step so that they can differentiate the loss per class, and split the compiled loss per class. That
needs names Keras does not export; they are all here, so that a Keras release that moves one breaks
one module, and `check_supported` refuses a Keras outside the tested range with one line instead of
recording wrong numbers (Keras 3.3 never traces the replaced train function; 3.8 is the oldest release
the callback tests ran on)."""

from __future__ import annotations

import inspect

import keras
import numpy as np
import tensorflow as tf
from keras.src.backend.tensorflow.trainer import TensorFlowTrainer, reduce_per_replica
from keras.src.losses import loss as loss_module
from keras.src.trainers.trainer import Trainer

from imbal_keras.errors import UserInputError

# The oldest and newest Keras the callback tests pass on (benchmarks/keras_versions.sh, docs/callbacks.md).
OLDEST_TESTED = (3, 8)
NEWEST_TESTED = (3, 15)

STANDARD_TRAIN_STEP = TensorFlowTrainer.train_step
_STANDARD_COMPUTE_LOSS = Trainer.compute_loss


def keras_version() -> tuple[int, int]:
    """(major, minor) of the installed Keras."""
    major, minor = keras.version().split(".")[:2]
    return int(major), int(minor)


def check_supported(callback_name: str) -> None:
    """Raises unless the installed Keras is at least the oldest tested one, on the TensorFlow or JAX backend.

    Newer releases than the newest tested are accepted: every name below is checked when used. On JAX the
    probe is `_jax_probe` (its private Keras names are in `_jax_adapter`).

    Raises:
      UserInputError: an older Keras or another backend.
    """
    backend = keras.backend.backend()
    if keras_version() < OLDEST_TESTED or backend not in ("tensorflow", "jax"):
        raise UserInputError(
            f"{callback_name} needs Keras >= {'.'.join(map(str, OLDEST_TESTED))} with the TensorFlow or JAX backend. "
            f"Received: keras {keras.version()} with backend {backend!r}"
        )


def check_loss_scaling_supported(callback_name: str, optimizer) -> None:
    """Raises for a `LossScaleOptimizer` on a Keras older than 3.10.

    On Keras 3.8 with TensorFlow 2.16 the recorded rows of such a model never came back (measured
    by benchmarks/keras_versions.sh); 3.10 is the oldest Keras where it is tested to work.

    Raises:
      UserInputError: a `LossScaleOptimizer` with Keras < 3.10.
    """
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer) and keras_version() < (3, 10):
        raise UserInputError(
            f"{callback_name} needs Keras >= 3.10 to observe a LossScaleOptimizer. Received: keras {keras.version()}"
        )


def one_step_train_function(model: keras.Model, step_function):
    """`model`'s train function for one step per call, running `step_function(data)` as Keras runs `train_step`.

    Re-states `TensorFlowTrainer._make_function` for `steps_per_execution == 1`: the step runs under the model's
    distribution strategy, its outputs are reduced as Keras reduces them, it is traced in a `tf.function` with the
    model's `jit_compile` nested inside one that takes the next batch from the iterator, so the traced step is the
    one Keras traces and trains to the same weights. The end of the data raises `OutOfRangeError` from the
    iterator, as in Keras. Unlike Keras, the logs are returned as they are: Keras wraps them in a
    `tf.experimental.Optional`, which for one step per call always holds a value and costs two eager ops per call
    to unwrap.
    """

    @tf.autograph.experimental.do_not_convert
    def one_step_on_data(data):
        outputs = model.distribute_strategy.run(step_function, args=(data,))
        return reduce_per_replica(outputs, model.distribute_strategy, reduction="auto")

    if not model.run_eagerly:
        one_step_on_data = tf.function(one_step_on_data, reduce_retracing=True, jit_compile=model.jit_compile)
    # Newer Keras (3.15, not 3.10) turns optional inputs (a tf.experimental.Optional in the data) into None first.
    autoconvert = getattr(model, "_autoconvert_optionals", None)
    if autoconvert is not None:
        one_step_on_data = autoconvert(one_step_on_data)

    @tf.autograph.experimental.do_not_convert
    def one_step_on_iterator(iterator):
        return one_step_on_data(iterator.get_next())

    if not model.run_eagerly:
        one_step_on_iterator = tf.function(one_step_on_iterator, reduce_retracing=True)

    def function(iterator):
        if isinstance(iterator, (tf.data.Iterator, tf.distribute.DistributedIterator)):
            return one_step_on_iterator(iterator)
        # Any other iterable of batches (train_on_batch passes a generator): Keras runs its first batch.
        for data in iterator:
            return one_step_on_data(data)
        raise StopIteration

    return function


def _inner(optimizer: keras.optimizers.Optimizer) -> keras.optimizers.Optimizer:
    """The optimizer that updates the weights (a `LossScaleOptimizer`'s inner one)."""
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return optimizer.inner_optimizer
    return optimizer


def accumulation_steps(optimizer: keras.optimizers.Optimizer) -> int:
    """k of `gradient_accumulation_steps=k`: the batches averaged into one update (1 without accumulation)."""
    return int(getattr(_inner(optimizer), "gradient_accumulation_steps", None) or 1)


def ema_overwrite_frequency(optimizer: keras.optimizers.Optimizer) -> int:
    """Every how many updates an optimizer with `use_ema=True` overwrites the weights with their average (0: never)."""
    inner = _inner(optimizer)
    return int(inner.ema_overwrite_frequency or 0) if inner.use_ema else 0


def batch_counter(optimizer: keras.optimizers.Optimizer):
    """The variable counting the batches the optimizer received (`optimizer.iterations` is it, or it // k).

    With `gradient_accumulation_steps=k`, `optimizer.iterations` is the number of updates, the counter divided by
    k, so the k batches of one update share it; the counter tells them apart.
    """
    return _inner(optimizer)._iterations


def batch_spec(iterator):
    """The `tf.TensorSpec`s of one replica's batch from the iterator a train function receives, or None.

    A `tf.distribute` iterator's spec holds a `PerReplicaSpec` per tensor: its first replica's spec is taken.
    """
    spec = getattr(iterator, "element_spec", None)
    if spec is None:
        return None
    return tf.nest.map_structure(lambda s: s._value_specs[0] if hasattr(s, "_value_specs") else s, spec)


def build_from_spec(model: keras.Model, element_spec) -> None:
    """Builds an unbuilt model, its compiled loss and metrics and its optimizer from a batch's `tf.TensorSpec`s.

    What Keras's TensorFlow trainer does before `fit` under a distribution strategy (`_symbolic_build`), and
    otherwise inside the first traced step: symbolic tensors of the batch's shapes and dtypes go through the model.
    """
    with model.distribute_strategy.scope():
        model._symbolic_build(data_batch=element_spec)


def overrides_train_step(model: keras.Model) -> bool:
    return type(model).train_step is not STANDARD_TRAIN_STEP


def overrides_compute_loss(model: keras.Model) -> bool:
    return type(model).compute_loss is not _STANDARD_COMPUTE_LOSS


def state_before_step(model: keras.Model, weights: list, state: list, step) -> keras.StatelessScope:
    """A scope in which the model's variables hold given values from before a step, and keep them.

    Inside it the trainable variables read as `weights`, the others (BatchNormalization statistics, random-seed
    state) as `state` and `optimizer.iterations` as `step` (a loss may read it), so a forward pass computes what
    the step computed from that state, random numbers included; every assignment (moving statistics, the seed's
    advance) stays inside the scope, which also collects the `model.losses` terms of the calls in it.

    Args:
      model: a built, compiled model.
      weights: values of `model.trainable_variables`, in order.
      state: values of `model.non_trainable_variables`, in order.
      step: the value of `batch_counter(model.optimizer)` (`optimizer.iterations` reads it).
    """
    mapping = list(zip(model.trainable_variables, weights, strict=True))
    mapping += zip(model.non_trainable_variables, state, strict=True)
    mapping.append((batch_counter(model.optimizer), step))
    return keras.StatelessScope(state_mapping=mapping, collect_losses=True)


def forward(model: keras.Model, x) -> tuple:
    """The forward pass of Keras's train step: `(y_pred, losses)`, the model output and its `model.losses` terms."""
    y_pred = model(x, training=True) if model._call_has_training_arg else model(x)
    return y_pred, model.losses


def compiled_loss(model: keras.Model, y, y_pred, sample_weight) -> tf.Tensor:
    """The compiled loss of a batch, as `compute_loss` computes its first term."""
    return model._compile_loss(y, y_pred, sample_weight)


def model_loss(model: keras.Model, x, y, y_pred, sample_weight) -> tf.Tensor:
    """The model's own `compute_loss` of a batch, as Keras's train step calls it."""
    if "training" in inspect.signature(model.compute_loss).parameters:
        return model.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
    return model.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight)


def regularization(model: keras.Model, losses: list, dtype) -> tf.Tensor:
    """The part of the training loss that comes from the `model.losses` terms `losses`, summed as Keras sums it."""
    return tf.add_n([tf.zeros((), dtype)] + [tf.cast(model._aggregate_additional_loss(v), dtype) for v in losses])


def in_separate_graph(function):
    """`function` as a callable whose ops TensorFlow's graph optimizer rewrites apart from the caller's.

    Called while a `tf.function` traces, it runs as one call of a function marked `_noinline`: Grappler
    neither inlines it nor merges its ops with the caller's, and the caller's ops gain no consumers but the
    call's arguments. Eagerly, there is no graph optimizer and `function` runs as it is.
    """
    if not tf.inside_function():
        return function
    return tf.function(function, autograph=False, experimental_attributes={"_noinline": True})


def compiled_losses(model: keras.Model) -> list:
    """`(output name, loss_fn, loss_weight)` of every compiled loss (one per output that has a loss)."""
    flat = getattr(getattr(model, "_compile_loss", None), "_flat_losses", None) or []
    return [(entry[3] if len(entry) > 3 else None, entry[1], entry[2]) for entry in flat]


def user_loss(model: keras.Model):
    """The `loss=` passed to `compile()`, for error messages."""
    return getattr(getattr(model, "_compile_loss", None), "_user_loss", None)


def compiled_loss_dtype(model: keras.Model):
    return model._compile_loss.dtype


def loss_weighting(loss_fn, values: tf.Tensor, y_pred: tf.Tensor, sample_weight) -> tuple:
    """How `loss_fn(y, y_pred, sample_weight)` weights and divides its values `values = loss_fn.call(y, y_pred)`.

    Re-states `Loss.__call__` (`keras/src/losses/loss.py`): the output's mask and the values' own mask (which
    `ignore_class` sets) merged into the sample weights, the weights broadcast to the values, the reduction's
    divisor and its scaling under `tf.distribute`, so that the loss is sum(values * weight) / divisor and a part of
    the terms divided by the same divisor is that part's share of it.

    Args:
      loss_fn: the compiled `keras.losses.Loss`.
      values: its values, (B, ...).
      y_pred: the model output (for its mask).
      sample_weight: (B,) or (B, ...) weights, or None.

    Returns:
      `(weight, divisor)`: weights of the shape of `values` (None: every value weighs 1) and the scalar divisor.
    """
    dtype = values.dtype
    masks = [keras.src.backend.get_keras_mask(t) for t in (y_pred, values)]
    masks = [m for m in masks if m is not None]
    mask = tf.logical_and(*masks) if len(masks) == 2 else (masks[0] if masks else None)
    weight = loss_module.apply_mask(sample_weight, mask, dtype=dtype, reduction=loss_fn.reduction)
    if weight is not None:
        shaped, weight = loss_module.squeeze_or_expand_to_same_rank(values, tf.cast(weight, dtype))
        weight = tf.reshape(tf.broadcast_to(weight, tf.shape(shaped)), tf.shape(values))
    if loss_fn.reduction == "sum":
        return weight, tf.ones((), dtype)
    if loss_fn.reduction == "mean_with_sample_weight" and weight is not None:
        divisor = tf.reduce_sum(weight)
    else:
        count = values.shape.num_elements()
        divisor = tf.cast(tf.size(values) if count is None else count, dtype)
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return weight, divisor * replicas if replicas > 1 else divisor


def logits(y_pred: tf.Tensor) -> tf.Tensor | None:
    """The pre-activation of a sigmoid or softmax output, which Keras attaches to the output.

    Keras's cross-entropies read it instead of the probabilities (`from_logits` rewriting), so the
    gradient of the loss reaches the weights either through the probabilities or through it.
    """
    return getattr(y_pred, "_keras_logits", None)


def loss_scale(optimizer: keras.optimizers.Optimizer):
    """The factor `optimizer.scale_loss` multiplies the loss by now (a tensor), or None.

    A `LossScaleOptimizer` scales by its dynamic scale, which its update then changes, so it is
    read here, before the update; other optimizers by their constant `loss_scale_factor`.
    """
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return tf.identity(optimizer.dynamic_scale if optimizer.built else optimizer.initial_scale)
    return optimizer.loss_scale_factor


def unscale_gradients(gradients: list, scale) -> list:
    """The gradients divided by the loss scale, as the optimizer divides them before its update."""
    if scale is None:
        return gradients
    return [None if g is None else g / tf.cast(scale, g.dtype) for g in gradients]


def clipped_gradient(optimizer: keras.optimizers.Optimizer, flat: tf.Tensor, shapes: list) -> tf.Tensor | None:
    """A replica's flattened gradient after the optimizer's clipping, or None if it does not clip.

    Keras clips each replica's gradient after unscaling it and before summing over replicas
    (`_clip_gradients`: `clipnorm` per weight, then `global_clipnorm`, then `clipvalue`). This
    re-states that on the recorder's flattened gradient, a few ops for all weights at once, instead of
    calling the optimizer's per-weight clipping.

    Args:
      optimizer: the model's optimizer.
      flat: the gradient of all trainable weights, flattened and concatenated.
      shapes: the shapes of the weights, in the order of `flat`.
    """
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        optimizer = optimizer.inner_optimizer
    if optimizer.clipnorm and optimizer.clipnorm > 0:
        sizes = [int(np.prod(shape)) for shape in shapes]
        weight_of = tf.repeat(tf.range(len(sizes)), sizes)
        norms = tf.sqrt(tf.math.unsorted_segment_sum(tf.square(flat), weight_of, len(sizes)))
        return flat * tf.gather(optimizer.clipnorm / tf.maximum(norms, optimizer.clipnorm), weight_of)
    if optimizer.global_clipnorm and optimizer.global_clipnorm > 0:
        return flat * (optimizer.global_clipnorm / tf.maximum(tf.norm(flat), optimizer.global_clipnorm))
    if optimizer.clipvalue and optimizer.clipvalue > 0:
        return tf.clip_by_value(flat, -optimizer.clipvalue, optimizer.clipvalue)
    return None


def built_input_shape(model: keras.Model):
    """The one input shape a subclassed model was built with, or None."""
    shapes = getattr(model, "_build_shapes_dict", None) or {}
    if len(shapes) != 1:
        return None
    (shape,) = shapes.values()
    return shape
