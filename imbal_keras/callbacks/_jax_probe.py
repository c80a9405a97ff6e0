"""The probe on the JAX backend: recorders see each batch trained on and the state it was trained from.

Keras's JAX trainer keeps the model's state outside its variables during `fit` and calls
`model.train_function(state, iterator)`, which runs the pure step `train_step(state, data) -> (logs, state)`
compiled with `jax.jit`. While recorders are attached, the probe's train function runs, per batch:

1. the recorders due in the step, in one compiled function of the state before the step and the batch: each
   composition row, and for gradient recorders the loss, its regularization part, each class's part, the total
   gradient (`jax.grad` of the trainer's own `compute_loss_and_updates`, the function Keras differentiates),
   each class's gradient (the output gradient of the compiled loss masked to the class's rows, pulled back with
   one `jax.vjp` for all classes) and the clipped gradient (the optimizer's own clipping);
2. Keras's step, `model.train_step` compiled as Keras's `make_train_function` compiles it, on the same state and
   batch: nothing of step 1 enters it, so the trained weights are those of a plain fit;
3. for gradient recorders, a compiled function of step 1's results and the weights after the step: the update
   and the row (`_jax_rows.gradient_row`).

The rows stay on the device until the recorder reads them (`read_rows`, every few hundred calls and at each
epoch's end), so a step waits for nothing. Steps are counted on the host; a step no recorder is due in runs
Keras's step alone. The model's own train function comes back when the last recorder leaves, when the train
function raises, or when Keras makes a train function again while the probe is attached (a fit that did not end).
"""

from __future__ import annotations

import weakref

import jax
import jax.numpy as jnp
import keras
import numpy as np

from imbal_keras.callbacks import _jax_adapter, _jax_rows, _keras_adapter, probe, rows
from imbal_keras.errors import UserInputError

_PROBES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def check_supported(recorder) -> None:
    """Raises, from `on_train_begin`, for a recorder or model the JAX probe does not observe.

    Raises:
      UserInputError: see `_jax_adapter.check_supported`; also recorders that read the step's logs, and for
        gradient recorders a compiled loss that cannot be split per class.
    """
    name = type(recorder).__name__
    model = recorder.model
    if recorder.record_logs is not None:
        raise UserInputError(f"{name} does not support the JAX backend. Received: backend 'jax'")
    _jax_adapter.check_supported(name, model, gradients=recorder.needs_gradients)
    if not recorder.needs_gradients:
        return
    compiled = _keras_adapter.compiled_losses(model)
    if len(compiled) != 1:
        raise UserInputError(
            f"{name} needs one loss passed to compile() for a single-output model. "
            f"Received: loss={_keras_adapter.user_loss(model)!r}"
        )
    reduction = getattr(compiled[0][1], "reduction", None)
    if reduction not in rows.ADDITIVE_REDUCTIONS:
        raise UserInputError(
            f"{name} needs a loss reduced over the batch (sum, sum_over_batch_size, mean or "
            f"mean_with_sample_weight). Received: reduction={reduction!r}"
        )


def attach(model: keras.Model, recorder) -> None:
    """Starts feeding `recorder` from the model's train step (replaces `model.train_function`).

    Raises:
      UserInputError: a recorder of several outputs, dense (per pixel or token) or multi-label targets, which the
        callbacks observe on TensorFlow only.
    """
    kinds = [target.kind for target in recorder.targets]
    if kinds != ["classes"]:
        raise UserInputError(
            f"{type(recorder).__name__} observes one output with one class per example on the JAX backend "
            f"(see docs/callbacks.md, Backends). Received: outputs of kind {kinds}"
        )
    probe = _PROBES.get(model)
    if probe is None:
        probe = _PROBES[model] = _Probe(model)
    probe.add(recorder)


def detach(model: keras.Model, recorder) -> None:
    """Stops feeding `recorder`; the last one to leave restores the model."""
    probe = _PROBES.get(model)
    if probe is not None and probe.remove(recorder):
        del _PROBES[model]


def restore(model: keras.Model) -> None:
    """Detaches every recorder: the model trains as if it had never been observed."""
    probe = _PROBES.pop(model, None)
    if probe is not None:
        probe.restore()


def read_rows(recorder) -> tuple[np.ndarray, np.ndarray]:
    """The rows recorded for `recorder` since the last read: `(steps (N,), raw rows (N, raw width))`."""
    probe = _PROBES.get(recorder.model)
    pending = probe.pending.pop(recorder, []) if probe is not None else []
    if not pending:
        return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
    steps, values = zip(*pending, strict=True)
    return np.asarray(steps, np.int64), np.asarray(jnp.stack(values))


class _Probe(probe.ProbeBase):
    def __init__(self, model: keras.Model):
        self._model = model
        self._recorders = []
        self.pending = {}
        self._saved_train_function = model.train_function
        self._keras_step = _jax_adapter.compiled_step(model)
        self._functions = {}
        # Attached at the first batch of a fit, while the model still holds its variables.
        self._step = _jax_adapter.batch_count(model)
        self._accumulation = _keras_adapter.accumulation_steps(model.optimizer)
        self._train_function = _jax_adapter.train_function(model, self._one_step)
        model.__dict__["make_train_function"] = self._make_train_function

    def add(self, recorder) -> None:
        if recorder not in self._recorders:
            self._recorders.append(recorder)
        self._forget_functions()
        self._model.train_function = self._guarded

    def _forget_functions(self) -> None:
        self._functions = {}

    def restore(self) -> None:
        model = self._model
        self._recorders = []
        self._functions = {}
        model.__dict__.pop("make_train_function", None)
        if model.train_function == self._guarded:
            model.train_function = self._saved_train_function

    def _make_train_function(self, force: bool = False):
        # Keras calls this at the start of every fit and train_on_batch, before any callback: the probe is still
        # here only if an earlier fit stopped without on_train_end.
        restore(self._model)
        return self._model.make_train_function(force=force)

    def _guarded(self, state, iterator):
        try:
            return self._train_function(state, iterator)
        except StopIteration:
            raise
        except BaseException:
            restore(self._model)
            raise

    def _one_step(self, state, data):
        step = self._step
        self._step += 1
        due = tuple(r for r in self._recorders if probe.is_due(step, r.every_n_steps, self._accumulation))
        if not due:
            return self._keras_step(state, data)
        functions = self._functions.get(due)
        if functions is None:
            functions = self._functions[due] = _step_functions(self._model, due)
        before, after, ordered = functions
        composition, gradients = before(state, data)
        logs, state = self._keras_step(state, data)
        recorded = list(composition)
        if gradients is not None:
            recorded += after(gradients, state[0])
        for recorder, row in zip(ordered, recorded, strict=True):
            self.pending.setdefault(recorder, []).append((step, row))
        return logs, state


def _step_functions(model: keras.Model, recorders: tuple) -> tuple:
    """The compiled functions of the recorders due in a step (see the module docstring), and the recorders in the
    order of the rows they return: composition recorders first, then gradient recorders.

    `before(state, data)` returns the composition recorders' rows and, if a gradient recorder is due, what the
    gradient rows are made of; `after(gradients, trainable)` returns one gradient row per gradient recorder.
    """
    composition = [r for r in recorders if not r.needs_gradients]
    gradient = [r for r in recorders if r.needs_gradients]
    num_classes = gradient[0].num_classes if gradient else None
    name = type(gradient[0]).__name__ if gradient else None

    def before(state, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        recorded = [_composition_row(r, y, sample_weight) for r in composition]
        if not gradient:
            return recorded, None
        return recorded, _gradient_parts(model, state, (x, y, sample_weight), num_classes, name)

    def after(gradients, trainable):
        *parts, flat_before = gradients
        update = _jax_rows.flatten(trainable) - flat_before
        row = _jax_rows.gradient_row(tuple(parts[:3]), update, *parts[3:])
        return [row] * len(gradient)

    return jax.jit(before), jax.jit(after), (*composition, *gradient)


def _composition_row(recorder, y, sample_weight):
    ids = _jax_rows.class_ids(y, recorder.num_classes, type(recorder).__name__)
    one_hot = jax.nn.one_hot(ids, recorder.num_classes, dtype=jnp.float32)
    return _jax_rows.composition_row(one_hot, sample_weight)


def _gradient_parts(model: keras.Model, state, batch: tuple, num_classes: int, name: str) -> tuple:
    """From the state before a step and its batch: `(per_class (K, P), total (P,), applied (P,) or None,
    losses (2 + K,), counts (K,), weights before (P,))`, the parts of `_jax_rows.gradient_row`."""
    trainable, non_trainable, optimizer_variables, metrics_variables = state
    x, y, sample_weight = batch
    (_, (loss, *_)), total = jax.value_and_grad(model.compute_loss_and_updates, has_aux=True)(
        trainable,
        non_trainable,
        metrics_variables,
        x,
        y,
        sample_weight,
        training=True,
        optimizer_variables=optimizer_variables,
    )

    def output(weights):
        return _jax_adapter.forward(model, weights, non_trainable, x)

    y_pred, pullback, additional_losses = jax.vjp(output, trainable, has_aux=True)
    data_loss, output_gradient = jax.value_and_grad(lambda p: _jax_adapter.compiled_loss(model, y, p, sample_weight))(
        y_pred
    )
    one_hot = jax.nn.one_hot(_jax_rows.class_ids(y, num_classes, name), num_classes, dtype=jnp.float32)
    # The compiled loss sums terms that each depend on one example's prediction, so the output gradient masked to
    # the rows of class c and pulled back is grad L_c exactly; all K pullbacks in one vectorized call.
    masks = jnp.reshape(one_hot.T, (num_classes, -1) + (1,) * (output_gradient.ndim - 1))
    per_class = jax.vmap(lambda m: _jax_rows.flatten(pullback(output_gradient * m.astype(output_gradient.dtype))[0]))(
        masks
    )
    custom_loss = _keras_adapter.overrides_compute_loss(model)
    regularization = loss - data_loss if (additional_losses or custom_loss) else jnp.zeros((), loss.dtype)
    ((_, loss_fn, loss_weight),) = _keras_adapter.compiled_losses(model)
    class_losses = _jax_rows.class_losses(
        loss_fn, loss_weight, _keras_adapter.compiled_loss_dtype(model), (y, y_pred, sample_weight), one_hot
    )
    losses = jnp.concatenate([jnp.stack([loss, regularization]), class_losses.astype(loss.dtype)])
    applied = _jax_adapter.clipped(model.optimizer, total)
    return (
        per_class,
        _jax_rows.flatten(total),
        None if applied is None else _jax_rows.flatten(applied),
        losses,
        jnp.sum(one_hot, axis=0),
        _jax_rows.flatten(trainable),
    )
