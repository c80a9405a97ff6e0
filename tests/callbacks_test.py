"""The callbacks package: configs, bad input, Keras versions, runner integration, TensorBoard layout."""

import glob
import os
import re

import callback_testing as ct
import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from imbal_keras import callbacks as ik
from imbal_keras.callbacks import _keras_adapter
from imbal_keras.errors import UserInputError

CALLBACKS = [ik.BatchComposition, ik.PerClassGradients]
# Batches of 2: minority counts 0, 1, 0, 2.
LABELS = [0, 0, 1, 0, 0, 0, 1, 1]


@pytest.mark.parametrize("cls", CALLBACKS, ids=lambda cls: cls.__name__)
def test_get_config_round_trips(cls):
    callback = cls("logs", every_n_steps=5, minority_class=0, num_classes=3)
    restored = cls.from_config(callback.get_config())
    assert (
        restored.get_config()
        == callback.get_config()
        == {
            "log_dir": "logs",
            "every_n_steps": 5,
            "minority_class": 0,
            "num_classes": 3,
            "class_names": None,
            "outputs": None,
            "ignore_class": None,
        }
    )


@pytest.mark.parametrize("cls", CALLBACKS, ids=lambda cls: cls.__name__)
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"every_n_steps": 0}, "Received: every_n_steps=0"),
        ({"every_n_steps": -2}, "Received: every_n_steps=-2"),
        ({"every_n_steps": 1.5}, "Received: every_n_steps=1.5"),
        ({"minority_class": -1}, "Received: minority_class=-1"),
        ({"num_classes": 1}, "Received: num_classes=1"),
    ],
)
def test_bad_arguments_name_the_argument_and_value(cls, kwargs, message):
    with pytest.raises(UserInputError, match=re.escape(message)):
        cls("logs", **kwargs)


@pytest.mark.parametrize("version, backend", [("3.7.0", "tensorflow"), ("3.3.3", "tensorflow"), ("3.15.1", "torch")])
@pytest.mark.parametrize("cls", CALLBACKS, ids=lambda cls: cls.__name__)
def test_an_unsupported_keras_is_refused_in_one_line(monkeypatch, cls, version, backend):
    monkeypatch.setattr(keras, "version", lambda: version)
    monkeypatch.setattr(keras.backend, "backend", lambda: backend)
    with pytest.raises(UserInputError) as raised:
        cls("logs")
    assert str(raised.value) == (
        f"{cls.__name__} needs Keras >= 3.8 with the TensorFlow or JAX backend. "
        f"Received: keras {version} with backend {backend!r}"
    )


def test_a_loss_scale_optimizer_needs_keras_3_10(tmp_path, monkeypatch):
    monkeypatch.setattr(keras, "version", lambda: "3.8.0")
    net = ct.model(optimizer=keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1)))
    with pytest.raises(UserInputError, match=re.escape("Received: keras 3.8.0")):
        ct.fit(net, ct.dataset(LABELS, 2), [ik.PerClassGradients(str(tmp_path))])


def test_the_installed_keras_is_in_the_tested_range():
    assert _keras_adapter.OLDEST_TESTED <= _keras_adapter.keras_version() <= _keras_adapter.NEWEST_TESTED


@pytest.mark.parametrize("cls", CALLBACKS, ids=lambda cls: cls.__name__)
def test_unwritable_log_dir_is_reported_at_train_begin(tmp_path, cls):
    blocker = tmp_path / "file"
    blocker.write_text("")
    log_dir = str(blocker / "logs")
    with pytest.raises(UserInputError, match=re.escape(f"Received: log_dir={log_dir!r}")):
        ct.fit(ct.model(), ct.dataset(LABELS, 2), [cls(log_dir)])


def test_minority_class_outside_the_model_is_reported(tmp_path):
    with pytest.raises(UserInputError, match="Received: minority_class=2"):
        ct.fit(ct.model(), ct.dataset(LABELS, 2), [ik.BatchComposition(tmp_path, minority_class=2)])


@pytest.mark.parametrize(
    "loss, message",
    [
        (keras.losses.BinaryCrossentropy(reduction=None), "Received: reduction=None"),
        (lambda y, p: tf.reduce_mean(tf.square(y - p)), "returning shape ()"),
    ],
    ids=["no_reduction", "batch_scalar"],
)
def test_losses_that_cannot_be_split_per_class_raise_and_restore_the_model(tmp_path, loss, message):
    net = ct.model(loss=loss)
    with pytest.raises(UserInputError, match=re.escape(message)):
        ct.fit(net, ct.dataset(LABELS, 2), [ik.PerClassGradients(tmp_path, every_n_steps=1)])
    assert "train_step" not in net.__dict__


def test_labels_the_callback_cannot_interpret_raise(tmp_path):
    labels = np.zeros((4, 2, 2), np.float32)
    data = tf.data.Dataset.from_tensor_slices((ct.features(4), labels)).batch(2)
    net = ct.model(loss="mse")
    with pytest.raises(UserInputError, match=re.escape("Received: y.shape=(None, 2, 2)")):
        ct.fit(net, data, [ik.BatchComposition(tmp_path)])
    assert "train_step" not in net.__dict__


def test_a_custom_train_step_that_does_not_hand_over_its_batch_is_refused_in_one_line(tmp_path):
    class CustomStep(keras.Sequential):
        def train_step(self, data):
            return super().train_step(data)

    net = CustomStep([keras.Input((ct.FEATURES,)), keras.layers.Dense(1, activation="sigmoid")])
    net.compile(optimizer="sgd", loss="binary_crossentropy")
    with pytest.raises(UserInputError, match="observe_gradients.*Received: model class CustomStep calling it 0 times$"):
        ct.fit(net, ct.dataset(LABELS, 2), [ik.PerClassGradients(tmp_path)])


@pytest.mark.parametrize("steps_per_execution", [1, 2])
def test_every_n_steps_records_steps_divisible_by_n(tmp_path, steps_per_execution):
    # One call per step: the probe picks the step's function on the host. Several steps per call:
    # each recorder checks in the graph whether its step is due.
    net = ct.model()
    net.compile(optimizer=net.optimizer, loss=net.loss, steps_per_execution=steps_per_execution)
    callbacks = [cls(str(tmp_path), every_n_steps=3) for cls in CALLBACKS]
    ct.fit(net, ct.dataset(LABELS, 2), callbacks, epochs=2)

    composition, gradients = (callback.dataframe() for callback in callbacks)
    assert composition["step"].tolist() == gradients["step"].tolist() == [0, 3, 6]
    assert composition["epoch"].tolist() == [0, 0, 1]
    assert composition["composition_count_class_1"].tolist() == [0, 2, 0]
    assert np.all(gradients["gradients_norm_total"] > 0)


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({}, [(ik.BatchComposition, 1), (ik.PerClassGradients, 10)]),
        ({"gradient_every_n_steps": 3}, [(ik.BatchComposition, 1), (ik.PerClassGradients, 3)]),
        ({"gradient_every_n_steps": 0}, [(ik.BatchComposition, 1)]),
        ({"log_composition": False}, [(ik.PerClassGradients, 10)]),
        ({"log_composition": False, "gradient_every_n_steps": 0}, []),
    ],
)
def test_experiment_callbacks(kwargs, expected):
    callbacks = ik.experiment_callbacks("logs", minority_class=0, **kwargs)
    assert [(type(c), c.every_n_steps) for c in callbacks] == expected
    assert all(c.minority_class == 0 and c.log_dir == "logs" for c in callbacks)


def test_runner_contract_summary_csv_and_tensorboard_layout(tmp_path):
    log_dir = str(tmp_path / "run")
    callbacks = ik.experiment_callbacks(log_dir, gradient_every_n_steps=3)
    data = ct.dataset(LABELS, 2).repeat()
    ct.fit(ct.model(), data, callbacks, steps_per_epoch=4, epochs=2)

    summary = ik.summarize(callbacks + [keras.callbacks.History()])
    # Minority counts per batch: 0, 1, 0, 2 in both epochs.
    assert summary["composition_frac_batches_without_minority"] == 0.5
    assert summary["composition_mean_minority_per_batch"] == 0.75
    assert summary["composition_std_minority_per_batch"] == pytest.approx(np.sqrt(0.6875))
    assert summary["composition_mean_minority_share"] == 0.375
    gradients = callbacks[1].dataframe()
    assert gradients["step"].tolist() == [0, 3, 6]
    assert gradients["gradients_examples_class_1"].tolist() == [0, 2, 0]
    assert summary["gradients_mean_norm_class_1"] == pytest.approx(gradients["gradients_norm_class_1"].mean())
    # The cosine of the minority is summarised over the steps whose batch had one: step 3 only.
    assert summary["gradients_frac_steps_with_minority"] == pytest.approx(1 / 3)
    assert summary["gradients_mean_cosine_minority_vs_rest"] == gradients["gradients_cosine_class_1_vs_rest"][1]
    assert gradients["gradients_cosine_class_1_vs_rest"][[0, 2]].tolist() == [0, 0]
    assert set(summary) >= {
        "gradients_mean_norm_total",
        "gradients_mean_norm_applied",
        "gradients_mean_norm_class_0",
        "gradients_mean_cosine_minority_vs_rest",
        "gradients_mean_update_norm",
        "gradients_mean_effective_step_class_0",
        "gradients_mean_effective_step_class_1",
        "loss_mean_class_1",
    }

    for callback in callbacks:
        path = tmp_path / f"{type(callback).__name__}.csv"
        callback.to_csv(path)
        pd.testing.assert_frame_equal(pd.read_csv(path), callback.dataframe(), check_dtype=False)

    scalars, histograms = _read_events(os.path.join(log_dir, "train"))
    assert set(scalars) == {tag for callback in callbacks for tag in callback._tags()}
    assert "gradients/cosine/class_1_vs_rest" in scalars
    assert scalars["composition/count/class_1"] == [(s, [0, 1, 0, 2][s % 4]) for s in range(8)]
    assert [step for step, _ in scalars["gradients/norm/total"]] == [0, 3, 6]
    assert histograms == {"composition/minority_count": [0, 1]}


def _read_events(directory):
    """scalars: tag -> [(step, value)] in step order; histograms: tag -> [step]."""
    scalars, histograms = {}, {}
    for path in sorted(glob.glob(os.path.join(directory, "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "custom_scalars":
                    continue  # the per-class layout (tests/callbacks_readability_test.py)
                tensor = tf.make_ndarray(value.tensor)
                if value.metadata.plugin_data.plugin_name == "histograms":
                    histograms.setdefault(value.tag, []).append(event.step)
                else:
                    scalars.setdefault(value.tag, []).append((event.step, float(tensor)))
    return {tag: sorted(rows) for tag, rows in scalars.items()}, histograms


def _end_of_data(function, iterator):
    try:
        function(iterator)
    except Exception as error:  # noqa: BLE001 - the type is what is compared
        return type(error)
    return None


@pytest.mark.parametrize("mode", ["graph", "jit_compile", "run_eagerly"])
def test_the_probes_step_function_trains_and_ends_as_keras_does(mode):
    """`one_step_train_function` (the logs without Keras's Optional wrapper) gives Keras's weights and logs step by
    step, for tf.data and for a plain iterable of batches, and ends the data with Keras's exception."""
    nets = []
    for _ in range(2):
        net = ct.model(seed=3)
        net.compile(
            optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
            loss="binary_crossentropy",
            jit_compile=mode == "jit_compile",
            run_eagerly=mode == "run_eagerly",
        )
        nets.append(net)
    keras_net, our_net = nets
    keras_net.make_train_function()
    ours = _keras_adapter.one_step_train_function(our_net, our_net.train_step)
    data = ct.dataset([0, 1, 0, 0, 1, 0, 0, 0, 1, 1], 4)  # batches of 4, 4 and 2
    keras_batches, our_batches = iter(data), iter(data)
    for _ in range(3):
        keras_logs, our_logs = keras_net.train_function(keras_batches), ours(our_batches)
        assert sorted(our_logs) == sorted(keras_logs)
        for key, value in keras_logs.items():
            np.testing.assert_array_equal(np.asarray(our_logs[key]), np.asarray(value))
        for expected, actual in zip(keras_net.get_weights(), our_net.get_weights(), strict=True):
            np.testing.assert_array_equal(actual, expected)
    assert _end_of_data(ours, our_batches) is _end_of_data(keras_net.train_function, keras_batches) is not None
    batch = next(iter(data))
    keras_logs, our_logs = keras_net.train_function(iter([batch])), ours(iter([batch]))
    np.testing.assert_array_equal(np.asarray(our_logs["loss"]), np.asarray(keras_logs["loss"]))
    for expected, actual in zip(keras_net.get_weights(), our_net.get_weights(), strict=True):
        np.testing.assert_array_equal(actual, expected)


def test_callbacks_record_a_model_that_runs_eagerly(tmp_path):
    """`run_eagerly=True` (debugging): the recording steps run eagerly too, with the same rows and weights."""
    labels = [0, 1, 0, 0, 1, 1, 0, 0]
    rows = {}
    weights = {}
    for run_eagerly in (False, True):
        net = ct.model(seed=5)
        net.compile(optimizer=keras.optimizers.SGD(0.1), loss="binary_crossentropy", run_eagerly=run_eagerly)
        log_dir = str(tmp_path / str(run_eagerly))
        callbacks = [ik.BatchComposition(log_dir), ik.PerClassGradients(log_dir, every_n_steps=2)]
        ct.fit(net, ct.dataset(labels, 2), callbacks, epochs=2)
        rows[run_eagerly] = [c.dataframe() for c in callbacks]
        weights[run_eagerly] = net.get_weights()
    assert rows[True][0]["composition_count_class_1"].tolist() == [1, 0, 2, 0] * 2
    pd.testing.assert_frame_equal(rows[True][0], rows[False][0])
    assert rows[True][1]["step"].tolist() == [0, 2, 4, 6]
    pd.testing.assert_frame_equal(rows[True][1], rows[False][1], rtol=1e-6)
    for expected, actual in zip(weights[False], weights[True], strict=True):
        np.testing.assert_allclose(actual, expected, rtol=1e-6)
