"""BatchComposition and PerClassGradients on the JAX backend: plain-fit weights, independently recomputed values.

Every case trains three copies of one model on the same data: without callbacks, with `jax_testing.Trajectory`
(the weights before every step) and with both callbacks. The observed fit must end with the plain fit's weights
bit for bit, and every logged value must match `jax_testing`'s recomputation with `jax.grad`.
"""

import re

import jax_testing as jt
import keras
import numpy as np
import pytest

import imbal_keras.callbacks as ik
from imbal_keras.errors import UserInputError

# The callbacks' XLA computation and the test's jax.grad run the same float32 arithmetic in different orders.
# Effective steps divide by grad L per coordinate, which amplifies round-off where the classes' gradients nearly
# cancel. The same bounds as the TensorFlow matrix (tests/callbacks_matrix_test.py).
RTOL, ATOL = 2e-6, 2e-7
EFFECTIVE_STEP_RTOL = 5e-5

BINARY = [(8, "relu"), (1, "sigmoid")]
CASES = {
    "sequential_binary": jt.Case(BINARY),
    "softmax_3_sample_weights": jt.Case(
        [(8, "tanh"), (3, "softmax")],
        num_classes=3,
        weighted=True,
        optimizer={"class_name": "SGD", "config": {"learning_rate": 0.05, "momentum": 0.9}},
    ),
    "functional_two_inputs": jt.Case(
        [(6, "tanh"), (1, "sigmoid")],
        inputs=(3, 2),
        optimizer={"class_name": "RMSprop", "config": {"learning_rate": 0.01}},
    ),
    "one_hot_labels_from_logits": jt.Case([(8, "tanh"), (3, "linear")], num_classes=3, one_hot=True, from_logits=True),
    "adam_global_clipnorm": jt.Case(
        BINARY, optimizer={"class_name": "Adam", "config": {"learning_rate": 0.01, "global_clipnorm": 0.1}}
    ),
}
EVERY_N_STEPS = {"softmax_3_sample_weights": 2}


def _fit(model, case, data, callbacks, epochs=2):
    x, y, weights = data
    model.fit(
        x,
        y,
        sample_weight=weights,
        batch_size=case.batch_size,
        epochs=epochs,
        shuffle=False,
        verbose=0,
        callbacks=callbacks,
    )


def _clip(optimizer):
    def clip(gradients):
        if not optimizer.global_clipnorm:
            return gradients
        norm = np.sqrt(sum(np.sum(g**2) for g in gradients))
        return [g * min(1.0, optimizer.global_clipnorm / norm) for g in gradients]

    return clip


def _assert_same_weights(a, b):
    for u, v in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(u, v)


def _assert_rows_match(case, data, trajectory, frame, clip):
    expected = jt.expected_gradient_rows(case, data, trajectory, frame["step"].tolist(), clip)
    for column in expected.columns:
        rtol = EFFECTIVE_STEP_RTOL if "effective_step" in column else RTOL
        np.testing.assert_allclose(frame[column], expected[column], rtol=rtol, atol=ATOL, err_msg=column)


@pytest.mark.parametrize("name", CASES)
def test_callbacks_train_like_a_plain_fit_and_log_recomputed_values(tmp_path, name):
    case, data = CASES[name], CASES[name].data()
    plain, reference, observed = jt.keras_model(case), jt.keras_model(case), jt.keras_model(case)
    _fit(plain, case, data, [])
    trajectory = jt.Trajectory()
    _fit(reference, case, data, [trajectory])
    composition = ik.BatchComposition(str(tmp_path))
    gradients = ik.PerClassGradients(str(tmp_path), every_n_steps=EVERY_N_STEPS.get(name, 1))
    _fit(observed, case, data, [composition, gradients])

    _assert_same_weights(observed, plain)
    _assert_same_weights(reference, plain)
    rows = composition.dataframe()
    steps = len(trajectory.weights) - 1
    assert rows["step"].tolist() == list(range(steps))
    expected = [jt.expected_composition(case, batch) for batch in jt.batches(case, data, steps)]
    for column in expected[0]:
        np.testing.assert_allclose(rows[column], [row[column] for row in expected], rtol=1e-7, err_msg=column)
    frame = gradients.dataframe()
    assert frame["step"].tolist() == list(range(0, steps, EVERY_N_STEPS.get(name, 1)))
    _assert_rows_match(case, data, trajectory, frame, _clip(observed.optimizer))
    assert observed.train_function is not None and "iterator_step" in observed.train_function.__qualname__


def test_a_second_fit_continues_the_steps_and_the_weights(tmp_path):
    case = CASES["sequential_binary"]
    data = case.data()
    plain, reference, observed = jt.keras_model(case), jt.keras_model(case), jt.keras_model(case)
    trajectory = jt.Trajectory()
    composition = ik.BatchComposition(str(tmp_path))
    gradients = ik.PerClassGradients(str(tmp_path), every_n_steps=2)
    for _ in range(2):
        _fit(plain, case, data, [], epochs=1)
        _fit(reference, case, data, [trajectory], epochs=1)
        _fit(observed, case, data, [composition, gradients], epochs=1)

    _assert_same_weights(observed, plain)
    _assert_same_weights(reference, plain)
    assert composition.dataframe()["step"].tolist() == list(range(6))
    frame = gradients.dataframe()
    assert frame["step"].tolist() == [0, 2, 4]
    _assert_rows_match(case, data, trajectory, frame, _clip(observed.optimizer))


class _OwnStep(keras.Sequential):
    def train_step(self, state, data):
        return super().train_step(state, data)


@pytest.mark.parametrize(
    "model, message",
    [
        (
            lambda: _OwnStep([keras.Input((3,)), keras.layers.Dense(1, activation="sigmoid")]),
            "PerClassGradients does not support a custom train_step on the JAX backend (see docs/callbacks.md, "
            "Backends). Received: model class _OwnStep",
        ),
        (
            lambda: keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, activation="sigmoid")]),
            "PerClassGradients does not support gradient accumulation on the JAX backend (see docs/callbacks.md, "
            "Backends). Received: gradient_accumulation_steps=2",
        ),
    ],
    ids=["custom_train_step", "gradient_accumulation"],
)
def test_what_jax_does_not_observe_is_refused_in_one_line_before_training(tmp_path, model, message):
    net = model()
    net.compile(
        keras.optimizers.SGD(0.1, gradient_accumulation_steps=2 if "accumulation" in message else None),
        "binary_crossentropy",
    )
    before = [w.copy() for w in net.get_weights()]
    x, y, _ = CASES["sequential_binary"].data()
    with pytest.raises(UserInputError, match=f"^{re.escape(message)}$"):
        net.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[ik.PerClassGradients(str(tmp_path))])
    for u, v in zip(before, net.get_weights(), strict=True):
        np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("cls", [ik.BatchComposition, ik.PerClassGradients], ids=lambda cls: cls.__name__)
def test_multi_label_targets_are_refused_in_one_line_before_the_first_step(tmp_path, cls):
    """Several outputs, masks and multi-label targets are observed on TensorFlow only; JAX says so."""
    net = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="sigmoid")])
    net.compile(keras.optimizers.SGD(0.1), "binary_crossentropy")
    before = [w.copy() for w in net.get_weights()]
    x = np.random.default_rng(0).normal(size=(32, 3)).astype("float32")
    y = (np.random.default_rng(1).random((32, 4)) < 0.2).astype("float32")
    message = (
        f"{cls.__name__} observes one output with one class per example on the JAX backend "
        "(see docs/callbacks.md, Backends). Received: outputs of kind ['multi_label']"
    )
    with pytest.raises(UserInputError, match=f"^{re.escape(message)}$"):
        net.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[cls(str(tmp_path))])
    for u, v in zip(before, net.get_weights(), strict=True):
        np.testing.assert_array_equal(u, v)
