"""Hooks into a compiled model's train step: callbacks see the batch and gradients trained on.

Keras callbacks only receive running-mean logs after a step. To see the labels, sample weights and
gradients of the batch that was actually trained on, the probe replaces `model.train_function`
while training with functions built from its own train step (Keras builds them inside the same
`tf.function` and `strategy.run`) and restores the model afterwards. Recorders write their numbers
into variables inside that graph; nothing is read back per step.

The probe keeps one compiled train function per set of recorders that are due in a step, built on
first use, and picks the one for the next step on the host (it counts the steps). A step in which
nothing is due runs the model's own train function, so `every_n_steps` costs nothing in between.
When one call runs several steps (`steps_per_execution > 1`) a single function with every recorder
is used and each recorder checks in the graph whether its step is due; when a gradient recorder is not
due every step, the whole step goes into a `tf.cond`, so the steps no gradient recorder is due in run
the model's own train step.

With one step per call (`steps_per_execution == 1`, Keras's default) a function with recorders is built by
`_keras_adapter.one_step_train_function`: Keras's own nesting of `tf.function`s, distribution and
`jit_compile` around the step, returning the step's logs as they are. Keras wraps them in a
`tf.experimental.Optional` that for one step per call always holds a value; unwrapping it costs two eager
ops per call, which for a small model is more than recording composition and gradients costs, so a
recorded step runs faster than the model's own (BENCHMARKS.md, callback overhead). With several steps per
call the function is Keras's own `make_train_function` around the probe's train step.

A step function runs the model's own `train_step`, unchanged, between the recorders' ops:
- composition recorders read `(y, sample_weight)` before it;
- gradient recorders receive the batch and the state before the step (trainable and non-trainable values,
  loss scale; `GradientStep`) and recompute what they log from it in a graph of their own
  (`_keras_adapter.in_separate_graph`). They read nothing the step computes: TensorFlow's graph optimizer
  rewrites an op depending on how many ops consume its output (Grappler's arithmetic optimizer reorders a
  product only while its intermediate results have one consumer each), so a recorder reading the gradient
  Keras applies changed the update in its last bits (on an AVX-512 CPU, BatchNormalization with momentum
  ended 36 steps 3.4e-7 away from a plain fit). The trained weights are bit for bit those of a plain fit.

Restoring: the last recorder to leave (`on_train_end`) restores the model. A fit that stops with an
exception never reaches `on_train_end`, so the probe also restores the model when its train
function raises, and when Keras calls `make_train_function` again (every `fit` and
`train_on_batch` does, before any callback runs) while the probe is still attached, which only
happens after a fit that did not end. The model then trains as if it had never been observed.
"""

from __future__ import annotations

import weakref

import keras
import tensorflow as tf

from imbal_keras.callbacks import _keras_adapter as adapter
from imbal_keras.errors import UserInputError

__all__ = [
    "GradientStep",
    "ProbeBase",
    "attach",
    "batch_count",
    "detach",
    "forget_compiled",
    "is_attached",
    "is_due",
    "keep_compiled",
    "observe_gradients",
    "restore",
]

_PROBES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# Models whose custom train step is being traced with a gradient recorder due -> the `GradientStep`s it handed over.
_OBSERVING: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# Models whose compiled step functions outlive a fit: model -> (functions by due recorders, the ids of those
# recorders' buffers when each function was built).
_KEPT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def keep_compiled(model: keras.Model) -> None:
    """Keeps the step functions compiled for `model` between fits, keyed by the recorders they feed.

    A later fit that attaches the same recorder objects (reused with `StepRecorder.reuse`, which keeps their
    buffers) runs the functions already traced. Only for a model that is not compiled again (warm grid runs).
    """
    _KEPT.setdefault(model, ({}, {}))


def forget_compiled(model: keras.Model) -> None:
    """Undoes `keep_compiled`."""
    _KEPT.pop(model, None)


class GradientStep:
    """What a gradient recorder receives after an instrumented step (tensors are per replica).

    Keras's own `train_step` trains on the batch, unchanged. A recorder computes what it logs from the state
    before that step (`weights_before`, `state_before`, `loss_scale`) and the batch, apart from the step's graph
    (`_keras_adapter.stateless_forward`, `_keras_adapter.in_separate_graph`), so that nothing it computes feeds
    into the update or changes how TensorFlow's graph optimizer rewrites it.

    Attributes:
      step: the optimizer's batch counter before the step (int64 scalar; `optimizer.iterations` unless the
        optimizer accumulates gradients, see `_keras_adapter.batch_counter`).
      x: the batch features.
      y: the batch labels.
      sample_weight: the batch sample weights or None.
      weights_before: the values of the trainable weights before the update.
      state_before: the values of `model.non_trainable_variables` before the step (BatchNormalization
        statistics, random-seed state).
      loss_scale: the factor the optimizer scaled the loss by before differentiating, or None.
      weights: the trainable variables (already updated).
    """

    def __init__(self, **fields):
        self.__dict__.update(fields)


def attach(model: keras.Model, recorder) -> None:
    """Starts feeding `recorder` from the model's train step (replaces `model.train_function`)."""
    probe = _PROBES.get(model)
    if probe is None:
        probe = _PROBES[model] = _Probe(model)
    probe.add(recorder)


def restore(model: keras.Model) -> None:
    """Detaches every recorder: the model trains as if it had never been observed."""
    probe = _PROBES.pop(model, None)
    if probe is not None:
        probe.restore()


def detach(model: keras.Model, recorder) -> None:
    """Stops feeding `recorder`; the last one to leave restores the model."""
    probe = _PROBES.get(model)
    if probe is not None and probe.remove(recorder):
        del _PROBES[model]


def is_attached(model: keras.Model) -> bool:
    return model in _PROBES


def batch_count(model: keras.Model) -> int:
    """The batches the model's optimizer has trained on (read on the host)."""
    return int(adapter.batch_counter(model.optimizer).numpy())


def is_due(step, every_n_steps: int, accumulation: int):
    """Whether batch `step` (an int or a tensor) is recorded by a recorder due every `every_n_steps` updates.

    Every batch of a due update is: with `gradient_accumulation_steps=k` an update takes k batches.
    """
    return (step // accumulation) % every_n_steps == 0


class ProbeBase:
    """What the TensorFlow and the JAX probe share: recorders come and go, and the last to leave restores the
    model. A subclass keeps `_recorders` and defines `_forget_functions` and `restore`."""

    def remove(self, recorder) -> bool:
        """Returns True when no recorder is left and the model has been restored."""
        if recorder in self._recorders:
            self._recorders.remove(recorder)
        if self._recorders:
            self._forget_functions()
            return False
        self.restore()
        return True


class _Probe(ProbeBase):
    def __init__(self, model: keras.Model):
        self._model = model
        self._recorders = []
        # Recorders that have not seen the spec of a batch yet (`StepRecorder.prepare`).
        self._unprepared = []
        self._saved_train_function = model.train_function
        self._kept = model in _KEPT
        self._functions, self._built_with = _KEPT[model] if self._kept else ({}, {})
        self._step = batch_count(model)
        self._accumulation = adapter.accumulation_steps(model.optimizer)
        # An instance attribute shadows the class's method; `restore` removes it.
        model.__dict__["make_train_function"] = self._make_train_function

    def add(self, recorder) -> None:
        if recorder not in self._recorders:
            self._recorders.append(recorder)
            self._unprepared.append(recorder)
        self._forget_functions()
        self._model.train_function = self._train_function

    def restore(self) -> None:
        model = self._model
        self._recorders = []
        self._forget_functions()
        model.__dict__.pop("make_train_function", None)
        model.__dict__.pop("train_step", None)
        # compile() in between resets train_function to None; keep that.
        if model.train_function == self._train_function:
            model.train_function = self._saved_train_function

    def _forget_functions(self) -> None:
        # A kept function stays valid while the recorders it writes for keep the buffers it writes into.
        if not self._kept:
            self._functions = {}
            return
        for due, buffers in list(self._built_with.items()):
            if buffers != _buffer_ids(due):
                del self._functions[due], self._built_with[due]

    def _make_train_function(self, force: bool = False):
        # Keras calls this at the start of every fit and train_on_batch, before any callback: the
        # probe is still here only if an earlier fit stopped without on_train_end.
        restore(self._model)
        return self._model.make_train_function(force=force)

    def _train_function(self, iterator):
        model = self._model
        if self._unprepared:
            self._prepare(adapter.batch_spec(iterator))
        if model.steps_per_execution == 1:
            due = tuple(r for r in self._recorders if is_due(self._step, r.every_n_steps, self._accumulation))
        else:
            due = tuple(self._recorders)
        function = self._functions.get(due)
        if function is None:
            function = self._functions[due] = self._build(due)
            self._built_with[due] = _buffer_ids(due)
        try:
            logs = function(iterator)
        except (StopIteration, tf.errors.OutOfRangeError):
            # The end of a dataset of unknown length: Keras advances optimizer.iterations in this
            # call although no batch is trained on, so the host count is read again.
            self._step = batch_count(model)
            raise
        except BaseException:
            # Bad input found while tracing, another error or KeyboardInterrupt: fit stops here and
            # no callback hook runs afterwards.
            restore(model)
            raise
        self._step += model.steps_per_execution
        return logs

    def _prepare(self, element_spec) -> None:
        try:
            for recorder in self._unprepared:
                recorder.prepare(element_spec)
        except BaseException:
            restore(self._model)
            raise
        self._unprepared = []

    def _build(self, recorders: tuple):
        """The compiled train function feeding `recorders` (the model's own one for none)."""
        model = self._model
        if not recorders and self._saved_train_function is not None:
            return self._saved_train_function
        if model.steps_per_execution == 1:
            step_function = (lambda data: self._train_step(data, recorders)) if recorders else model.train_step
            return adapter.one_step_train_function(model, step_function)
        # Keras's make_train_function reads `self.train_step` when it builds the tf.function, which
        # is traced on the first call.
        model.__dict__["train_step"] = lambda data: self._train_step(data, recorders)
        try:
            type(model).make_train_function(model, force=True)
            return model.train_function
        finally:
            model.__dict__.pop("train_step")
            model.train_function = self._train_function

    def _train_step(self, data, recorders: tuple):
        model = self._model
        gradient_recorders = [r for r in recorders if r.needs_gradients]
        if (
            model.steps_per_execution > 1
            and any(r.every_n_steps > 1 for r in gradient_recorders)
            # The optimizer's update synchronises replicas, which control flow must not contain.
            and not tf.distribute.has_strategy()
        ):
            # One compiled call runs several steps with one step function: the whole step goes into a tf.cond, so
            # the steps no gradient recorder is due in run the model's own train step, at its cost.
            step = tf.convert_to_tensor(adapter.batch_counter(model.optimizer))
            due = tf.reduce_any(
                tf.stack([is_due(step, r.every_n_steps, self._accumulation) for r in gradient_recorders])
            )
            others = tuple(r for r in recorders if not r.needs_gradients)
            return tf.cond(due, lambda: self._one_step(data, recorders), lambda: self._one_step(data, others))
        return self._one_step(data, recorders)

    def _one_step(self, data, recorders: tuple):
        model = self._model
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        step = tf.convert_to_tensor(adapter.batch_counter(model.optimizer))
        gradient_recorders = [r for r in recorders if r.needs_gradients]
        for recorder in recorders:
            if not recorder.needs_gradients:
                recorder.record_batch(step, y, sample_weight)
        observed = []
        if gradient_recorders and adapter.overrides_train_step(model):
            # A custom train step hands its batch and state over by calling `observe_gradients`.
            _OBSERVING[model] = observed
        elif gradient_recorders:
            # Read before Keras's step updates them: automatic control dependencies keep program order.
            observed.append(_gradient_step(model, x, y, sample_weight))
        try:
            logs = type(model).train_step(model, data)
        finally:
            _OBSERVING.pop(model, None)
        if gradient_recorders and len(observed) != 1:
            raise UserInputError(
                f"PerClassGradients: a custom train_step must call "
                f"imbal_keras.callbacks.observe_gradients(self, x, y, sample_weight) once, before it updates the "
                f"weights. Received: model class {type(model).__name__} calling it {len(observed)} times"
            )
        for recorder in gradient_recorders:
            recorder.record_gradients(observed[0])
        return _with_logs_recorded(logs, step, recorders)


def observe_gradients(model: keras.Model, x, y, sample_weight=None) -> None:
    """Hands a custom `train_step`'s batch to `PerClassGradients` (call it first in the step).

    A model that overrides `train_step` calls this once per step, before its forward pass, with the batch it
    trains on: the callback then recomputes from the weights and state at that point what it logs, as for
    Keras's own step (forward pass, `compute_loss`, gradients per class). It does nothing when no gradient
    recorder is due in the step, or when the model is not observed.

    Args:
      model: the model whose `train_step` is running (`self`).
      x: the batch's features.
      y: the batch's labels.
      sample_weight: the batch's sample weights, or None.
    """
    observed = _OBSERVING.get(model)
    if observed is not None:
        observed.append(_gradient_step(model, x, y, sample_weight))


def _gradient_step(model: keras.Model, x, y, sample_weight) -> GradientStep:
    """The batch and the model's state now, before the step updates it."""
    return GradientStep(
        step=tf.convert_to_tensor(adapter.batch_counter(model.optimizer)),
        x=x,
        y=y,
        sample_weight=sample_weight,
        weights_before=[tf.identity(w.value) for w in model.trainable_weights],
        state_before=[tf.identity(v.value) for v in model.non_trainable_variables],
        loss_scale=adapter.loss_scale(model.optimizer),
        weights=model.trainable_weights,
    )


def _with_logs_recorded(logs, step, recorders: tuple):
    """Hands the step's returned logs (the running means of the loss and metrics) to the recorders that read them."""
    for recorder in recorders:
        if recorder.record_logs is not None:
            recorder.record_logs(step, logs)
    return logs


def _buffer_ids(recorders: tuple) -> tuple:
    return tuple(id(getattr(r, "_buffer", None)) for r in recorders)
