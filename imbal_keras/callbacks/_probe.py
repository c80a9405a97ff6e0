"""Hooks into a compiled model's train step: callbacks see the batch and gradients trained on.

Keras callbacks only receive running-mean logs after a step. To see the labels, sample weights and
gradients of the batch that was actually trained on, the probe replaces `model.train_step` while
training (Keras builds `train_function` from it, inside the same `tf.function` and `strategy.run`)
and restores the model afterwards. Recorders write their numbers into variables inside that graph;
nothing is read back per step.

The probe keeps one compiled train function per set of recorders that are due in a step, built on
first use, and picks the one for the next step on the host (it counts the steps). A step in which
nothing is due runs the model's own train function, so `every_n_steps` costs nothing in between.
When one call runs several steps (`steps_per_execution > 1`) a single function with every recorder
is used and each recorder checks in the graph whether its step is due.

A step function is one of:
- composition only: the recorders read `(y, sample_weight)` and the model's own `train_step` runs
  unchanged, so custom train steps keep working;
- with a gradient recorder: Keras's standard TensorFlow train step, re-stated with a persistent tape
  so the recorder can differentiate again. The loss, the applied gradient and the metrics come from
  the same calls, in the same order, as in `keras/src/backend/tensorflow/trainer.py`, so the
  trained weights are identical.
"""

from __future__ import annotations

import weakref

import keras
import tensorflow as tf
from keras.src.backend.tensorflow.trainer import TensorFlowTrainer
from keras.src.losses import loss as loss_module
from keras.src.trainers.data_adapters import data_adapter_utils

from imbal_keras.errors import UserInputError

_PROBES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class GradientStep:
    """What a gradient recorder receives after an instrumented step (tensors are per replica).

    Attributes:
      step: `optimizer.iterations` before the update (int64 scalar).
      tape: the persistent tape that recorded the forward pass and the loss.
      y: the batch labels.
      y_pred: the model output, recorded by `tape`.
      sample_weight: the batch sample weights or None.
      loss: the training loss the gradient was taken of (before optimizer loss scaling).
      regularization: the part of `loss` that comes from `model.losses`.
      gradients: the gradient that was applied, one tensor per trainable weight.
      gradients_of_data_loss: whether `gradients` is exactly the gradient of the compiled loss
        (no regularization term and no optimizer loss scaling), so that recorders may derive one
        class's gradient from it and the others'.
      weights_before: the trainable weights before the update.
      weights: the trainable variables (already updated).
    """

    def __init__(self, **fields):
        self.__dict__.update(fields)


def attach(model: keras.Model, recorder) -> None:
    """Starts feeding `recorder` from the model's train step (rebuilds `model.train_function`)."""
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
    """Stops feeding `recorder`; the last one to leave restores the model's train step."""
    probe = _PROBES.get(model)
    if probe is not None and probe.remove(recorder):
        del _PROBES[model]


class _Probe:
    def __init__(self, model: keras.Model):
        self._model = model
        self._recorders = []
        self._saved_train_function = model.train_function
        self._functions = {}
        self._step = int(model.optimizer.iterations.numpy())

    def add(self, recorder) -> None:
        if recorder.needs_gradients and type(self._model).train_step is not TensorFlowTrainer.train_step:
            raise UserInputError(
                f"{type(recorder).__name__} re-states Keras's standard train step and cannot "
                "observe a custom one. Received: model class "
                f"{type(self._model).__name__} overriding train_step"
            )
        if recorder not in self._recorders:
            self._recorders.append(recorder)
        self._functions = {}
        self._model.train_function = self._train_function

    def remove(self, recorder) -> bool:
        """Returns True when no recorder is left and the model has been restored."""
        if recorder in self._recorders:
            self._recorders.remove(recorder)
        if self._recorders:
            self._functions = {}
            return False
        self.restore()
        return True

    def restore(self) -> None:
        self._recorders = []
        self._functions = {}
        self._model.__dict__.pop("train_step", None)
        self._model.train_function = self._saved_train_function

    def _train_function(self, iterator):
        model = self._model
        if model.steps_per_execution == 1:
            due = tuple(r for r in self._recorders if self._step % r.every_n_steps == 0)
        else:
            due = tuple(self._recorders)
        function = self._functions.get(due)
        if function is None:
            function = self._functions[due] = self._build(due)
        # Bad input is detected while tracing, inside fit, where no callback hook runs
        # afterwards: restore the model here so the error does not leave it instrumented.
        try:
            logs = function(iterator)
        except UserInputError:
            restore(model)
            raise
        self._step += model.steps_per_execution
        return logs

    def _build(self, recorders: tuple):
        """The compiled train function feeding `recorders` (the model's own one for none)."""
        model = self._model
        if not recorders and self._saved_train_function is not None:
            return self._saved_train_function
        # An instance attribute shadows the class's train_step; Keras's make_train_function reads
        # `self.train_step` when it builds the tf.function, which is traced on the first call.
        model.__dict__["train_step"] = lambda data: self._train_step(data, recorders)
        try:
            model.make_train_function(force=True)
            return model.train_function
        finally:
            model.__dict__.pop("train_step")
            model.train_function = self._train_function

    def _train_step(self, data, recorders: tuple):
        model = self._model
        x, y, sample_weight = data_adapter_utils.unpack_x_y_sample_weight(data)
        step = tf.convert_to_tensor(model.optimizer.iterations)
        gradient_recorders = [r for r in recorders if r.needs_gradients]
        for recorder in recorders:
            if not recorder.needs_gradients:
                recorder.record_batch(step, y, sample_weight)
        if not gradient_recorders:
            return type(model).train_step(model, data)

        with tf.GradientTape(persistent=True) as tape:
            y_pred = model(x, training=True) if model._call_has_training_arg else model(x)
            loss = model._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
            model._loss_tracker.update_state(
                loss_module.unscale_loss_for_distribution(loss),
                sample_weight=tf.shape(next(i for i in tf.nest.flatten(x) if i is not None))[0],
            )
            regularization = tf.add_n(
                [tf.zeros((), loss.dtype)]
                + [tf.cast(model._aggregate_additional_loss(v), loss.dtype) for v in model.losses]
            )
            scaled_loss = model.optimizer.scale_loss(loss)
        trainable = model.trainable_weights
        gradients = tape.gradient(scaled_loss, trainable)
        # Read before the update: automatic control dependencies keep program order.
        weights_before = [tf.identity(w.value) for w in trainable]
        model.optimizer.apply_gradients(zip(gradients, trainable, strict=True))
        gradient_step = GradientStep(
            step=step,
            tape=tape,
            y=y,
            y_pred=y_pred,
            sample_weight=sample_weight,
            loss=loss,
            regularization=regularization,
            gradients=gradients,
            gradients_of_data_loss=scaled_loss is loss and not model.losses,
            weights_before=weights_before,
            weights=trainable,
        )
        for recorder in gradient_recorders:
            recorder.record_gradients(gradient_step)
        return model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
