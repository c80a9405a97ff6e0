"""A fit that stops with an error leaves a model that trains exactly as a never-observed one.

Keras calls no `on_train_end` after an error, so the callbacks cannot restore the model from their
own hooks. Each test stops a fit at one point (another callback raising in each hook, Ctrl-C, an
error in the input pipeline, bad input found by one of ours), then trains on plainly and with new
callbacks, and checks that the old callbacks' buffers are untouched, that nothing of the probe is left
on the model, and that the weights equal those of a twin that went through the same failure unobserved.
"""

from __future__ import annotations

import re

import callback_testing as ct
import keras
import numpy as np
import pytest
import tensorflow as tf

from imbal_keras.callbacks import BatchComposition, PerClassGradients, probe
from imbal_keras.errors import UserInputError

LABELS = [0, 1, 0, 0, 0, 0, 1, 0, 1, 0, 1, 1]
HOOKS = ["on_train_begin", "on_epoch_begin", "on_train_batch_begin", "on_train_batch_end", "on_epoch_end"]


class _Stop(keras.callbacks.Callback):
    """Raises `error` in `hook`, at the second batch for batch hooks."""

    def __init__(self, hook: str, error: BaseException):
        super().__init__()
        self.hook, self.error = hook, error

    def _maybe_raise(self, hook, batch=1):
        if hook == self.hook and batch == 1:
            raise self.error

    def on_train_begin(self, logs=None):
        self._maybe_raise("on_train_begin")

    def on_epoch_begin(self, epoch, logs=None):
        self._maybe_raise("on_epoch_begin")

    def on_train_batch_begin(self, batch, logs=None):
        self._maybe_raise("on_train_batch_begin", batch)

    def on_train_batch_end(self, batch, logs=None):
        self._maybe_raise("on_train_batch_end", batch)

    def on_epoch_end(self, epoch, logs=None):
        self._maybe_raise("on_epoch_end")


def _ours(log_dir, **kwargs):
    return [BatchComposition(str(log_dir)), PerClassGradients(str(log_dir), every_n_steps=1, **kwargs)]


def _assert_never_observed(net: keras.Model):
    assert not probe.is_attached(net)
    assert not {"train_step", "make_train_function"} & set(net.__dict__)


def _continue_and_compare(tmp_path, net, twin, old_callbacks):
    """Trains `net` and its unobserved `twin` on, plainly and then observed, and compares them."""
    buffers = [c._buffer.numpy() for c in old_callbacks if hasattr(c, "_buffer")]
    rows = [len(c.dataframe()) for c in old_callbacks]
    for model in (net, twin):
        ct.fit(model, ct.dataset(LABELS, 4), [])
    _assert_never_observed(net)
    assert [c._buffer.numpy().tolist() for c in old_callbacks if hasattr(c, "_buffer")] == [b.tolist() for b in buffers]
    new = _ours(tmp_path / "later")
    ct.fit(net, ct.dataset(LABELS, 4), new)
    ct.fit(twin, ct.dataset(LABELS, 4), [])
    _assert_never_observed(net)
    assert [len(c.dataframe()) for c in old_callbacks] == rows
    assert new[0].dataframe()["composition_count_class_1"].tolist() == [1, 1, 3]
    for expected, actual in zip(twin.get_weights(), net.get_weights(), strict=True):
        np.testing.assert_array_equal(actual, expected)


@pytest.mark.parametrize("error", [RuntimeError("stop"), KeyboardInterrupt()], ids=["error", "ctrl_c"])
@pytest.mark.parametrize("hook", HOOKS)
def test_an_exception_in_another_callback(tmp_path, hook, error):
    net, twin = ct.model(), ct.model()
    ours = _ours(tmp_path)
    for model, callbacks in ((net, [*ours, _Stop(hook, error)]), (twin, [_Stop(hook, error)])):
        with pytest.raises(type(error)):
            ct.fit(model, ct.dataset(LABELS, 4), callbacks, epochs=2)
    if hook == "on_train_begin":
        _assert_never_observed(net)
    _continue_and_compare(tmp_path, net, twin, ours)


def test_an_error_inside_the_train_function_restores_the_model_at_once(tmp_path):
    def batches():
        x = ct.features(len(LABELS))
        for i in range(0, 8, 4):
            yield x[i : i + 4], np.array(LABELS[i : i + 4], np.float32)[:, None]
        raise ValueError("the input pipeline broke")

    signature = (tf.TensorSpec((None, ct.FEATURES), tf.float32), tf.TensorSpec((None, 1), tf.float32))
    net, twin = ct.model(), ct.model()
    ours = _ours(tmp_path)
    for model, callbacks in ((net, ours), (twin, [])):
        data = tf.data.Dataset.from_generator(batches, output_signature=signature)
        with pytest.raises(Exception, match="the input pipeline broke"):
            ct.fit(model, data, callbacks, steps_per_epoch=3)
    _assert_never_observed(net)
    _continue_and_compare(tmp_path, net, twin, ours)


BAD_INPUT = {
    "minority_class_of_a_later_callback": (
        lambda log_dir: _ours(log_dir, minority_class=2),
        {},
        "Received: minority_class=2",
    ),
    "loss_that_cannot_be_split": (
        _ours,
        {"loss": keras.losses.BinaryCrossentropy(reduction=None)},
        "Received: reduction=None",
    ),
    "custom_train_step_not_handing_over": (_ours, {"train_step": True}, "calling it 0 times"),
}


@pytest.mark.parametrize("name", BAD_INPUT)
def test_bad_input_in_a_callback_restores_the_model_at_once(tmp_path, name):
    make_callbacks, model_kwargs, message = BAD_INPUT[name]
    if model_kwargs.pop("train_step", False):

        class CustomStep(keras.Sequential):
            def train_step(self, data):
                return super().train_step(data)

        keras.utils.set_random_seed(0)
        net = CustomStep([keras.Input((ct.FEATURES,)), keras.layers.Dense(1, activation="sigmoid")])
        net.compile(optimizer="sgd", loss="binary_crossentropy")
    else:
        net = ct.model(**model_kwargs)
    callbacks = make_callbacks(tmp_path)
    with pytest.raises(UserInputError, match=re.escape(message)):
        ct.fit(net, ct.dataset(LABELS, 4), callbacks, epochs=2)
    _assert_never_observed(net)


def test_labels_outside_the_classes_found_at_an_epoch_end_restore_the_model(tmp_path):
    net = ct.model()
    with pytest.raises(UserInputError, match="num_classes=2"):
        ct.fit(net, ct.dataset([0, 2, 1, 0], 2), _ours(tmp_path))
    _assert_never_observed(net)
