"""The callbacks on JAX under `class_weight=`, `steps_per_execution`, gradient accumulation, Dropout and BatchNorm."""

import jax_testing as jt
import keras
import numpy as np
import pytest

import imbal_keras.callbacks as ik

CASE = jt.Case([(8, "relu"), (1, "sigmoid")])
RTOL, ATOL = 2e-6, 2e-7  # as tests/jax/callbacks_jax_test.py
EFFECTIVE_STEP_RTOL = 5e-5


def _fit(model, data, callbacks, **kwargs):
    x, y, weights = data
    model.fit(x, y, sample_weight=weights, batch_size=CASE.batch_size, epochs=2, shuffle=False, verbose=0,
              callbacks=callbacks, **kwargs)  # fmt: skip


def _assert_same_weights(a, b):
    for u, v in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(u, v)


def _assert_rows_match(frame, expected):
    for column in expected.columns:
        rtol = EFFECTIVE_STEP_RTOL if "effective_step" in column else RTOL
        np.testing.assert_allclose(frame[column], expected[column], rtol=rtol, atol=ATOL, err_msg=column)


def test_class_weight_enters_the_logged_weights_and_losses(tmp_path):
    x, y, _ = CASE.data()
    class_weight = {0: 0.5, 1: 3.0}
    plain, reference, observed = jt.keras_model(CASE), jt.keras_model(CASE), jt.keras_model(CASE)
    trajectory = jt.Trajectory()
    composition, gradients = ik.BatchComposition(str(tmp_path)), ik.PerClassGradients(str(tmp_path), every_n_steps=1)
    _fit(plain, (x, y, None), [], class_weight=class_weight)
    _fit(reference, (x, y, None), [trajectory], class_weight=class_weight)
    _fit(observed, (x, y, None), [composition, gradients], class_weight=class_weight)

    _assert_same_weights(observed, plain)
    # Keras turns class_weight into per-example weights: the reference computation takes them as sample weights.
    weighted = (x, y, np.array([class_weight[int(label)] for label in y], np.float32))
    rows = composition.dataframe()
    for step, batch in enumerate(jt.batches(CASE, weighted, len(rows))):
        expected = jt.expected_composition(CASE, batch)
        for column, value in expected.items():
            assert rows[column][step] == pytest.approx(value, rel=1e-7), (step, column)
    frame = gradients.dataframe()
    _assert_rows_match(frame, jt.expected_gradient_rows(CASE, weighted, trajectory, frame["step"].tolist(), list))


def test_several_steps_per_call_record_every_step(tmp_path):
    data = CASE.data()
    reference = jt.keras_model(CASE)
    trajectory = jt.Trajectory()
    _fit(reference, data, [trajectory])
    plain, observed = jt.keras_model(CASE), jt.keras_model(CASE)
    for model in (plain, observed):
        model.compile(keras.optimizers.get(CASE.optimizer), CASE.loss(), steps_per_execution=2)
    composition, gradients = ik.BatchComposition(str(tmp_path)), ik.PerClassGradients(str(tmp_path), every_n_steps=1)
    _fit(plain, data, [])
    _fit(observed, data, [composition, gradients])

    _assert_same_weights(observed, plain)
    _assert_same_weights(observed, reference)  # several steps per call train as one step per call does
    steps = len(trajectory.weights) - 1
    assert composition.dataframe()["step"].tolist() == list(range(steps))
    frame = gradients.dataframe()
    assert frame["step"].tolist() == list(range(steps))
    _assert_rows_match(frame, jt.expected_gradient_rows(CASE, data, trajectory, frame["step"].tolist(), list))


def test_composition_under_gradient_accumulation_records_every_batch_of_a_due_update(tmp_path):
    data = CASE.data()
    optimizer = {"class_name": "SGD", "config": {"learning_rate": 0.1, "gradient_accumulation_steps": 2}}
    case = jt.Case(CASE.layers, optimizer=optimizer)
    plain, observed = jt.keras_model(case), jt.keras_model(case)
    composition = ik.BatchComposition(str(tmp_path), every_n_steps=2)
    _fit(plain, data, [])
    _fit(observed, data, [composition])

    _assert_same_weights(observed, plain)
    rows = composition.dataframe()
    # 6 batches, 3 updates of 2 batches; updates 0 and 2 are due.
    assert rows["step"].tolist() == [0, 1, 4, 5]
    assert rows["optimizer_step"].tolist() == [0, 0, 2, 2]
    found = jt.batches(case, data, 6)
    for i, step in enumerate(rows["step"]):
        expected = jt.expected_composition(case, found[step])
        assert rows["composition_count_class_1"][i] == expected["composition_count_class_1"]


def test_dropout_and_batch_norm_train_like_a_plain_fit_and_split_the_loss_exactly(tmp_path):
    def model():
        keras.utils.set_random_seed(1)
        net = keras.Sequential(
            [
                keras.Input((3,)),
                keras.layers.Dense(8, activation="relu"),
                keras.layers.BatchNormalization(momentum=0.9),
                keras.layers.Dropout(0.3),
                keras.layers.Dense(1, activation="sigmoid"),
            ]
        )
        net.compile(keras.optimizers.SGD(0.1, momentum=0.9), "binary_crossentropy")
        return net

    data = CASE.data()
    plain, observed = model(), model()
    gradients = ik.PerClassGradients(str(tmp_path), every_n_steps=1)
    _fit(plain, data, [])
    _fit(observed, data, [ik.BatchComposition(str(tmp_path)), gradients])

    _assert_same_weights(observed, plain)  # BatchNorm's moving statistics and the dropout seed included
    frame = gradients.dataframe()
    assert len(frame) == 6
    classes = frame["loss_class_0"] + frame["loss_class_1"] + frame["loss_regularization"]
    np.testing.assert_allclose(classes, frame["loss_total"], rtol=1e-6)
