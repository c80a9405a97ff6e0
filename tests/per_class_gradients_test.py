"""PerClassGradients: exact per-class losses, gradients and updates of the step that was trained."""

import callback_testing as ct
import keras
import numpy as np
import pytest
import tensorflow as tf

from imbal_keras import losses
from imbal_keras.callbacks import BatchComposition, PerClassGradients

LABELS = [0, 1, 0, 0, 1, 1, 0, 0, 0, 1, 0, 0]
WEIGHTS = [1.0, 2.0, 0.5, 1.0, 3.0, 1.0, 1.0, 2.0, 1.0, 1.0, 1.0, 4.0]
LEARNING_RATE = 0.1
RTOL = 1e-5

# reduction -> the loss denominator for a batch with sample weights w (B examples).
DENOMINATORS = {
    "sum_over_batch_size": lambda w: len(w),
    "sum": lambda w: 1.0,
    "mean_with_sample_weight": lambda w: np.sum(w),
}


def _first_step_by_hand(net, reduction):
    """L, L_c, ||grad L|| and ||grad L_c|| of the first batch of 4, from per-example losses."""
    x, y, w = ct.features(4), np.array(LABELS[:4]), np.array(WEIGHTS[:4], np.float32)
    with tf.GradientTape(persistent=True) as tape:
        per_example = keras.losses.binary_crossentropy(y[:, None].astype(np.float32), net(x))
        weighted = per_example * w / DENOMINATORS[reduction](w)
        class_losses = [tf.reduce_sum(weighted[y == c]) for c in (0, 1)]
        loss = tf.reduce_sum(weighted)
    norm = lambda target: np.sqrt(sum(np.sum(g.numpy() ** 2) for g in tape.gradient(target, net.trainable_weights)))
    return (
        float(loss),
        [float(v) for v in class_losses],
        norm(loss),
        [norm(v) for v in class_losses],
    )


@pytest.mark.parametrize("reduction", sorted(DENOMINATORS))
def test_first_step_equals_hand_computation_and_classes_sum_to_total(tmp_path, reduction):
    loss = keras.losses.BinaryCrossentropy(reduction=reduction)
    net = ct.model(loss=loss)
    expected_loss, expected_class_losses, expected_norm, expected_class_norms = _first_step_by_hand(net, reduction)
    callback = PerClassGradients(str(tmp_path), every_n_steps=1)
    ct.fit(net, ct.dataset(LABELS[:8], 4, weights=WEIGHTS[:8]), [callback])

    row = callback.dataframe().iloc[0]
    class_losses = row[["loss_class_0", "loss_class_1"]].to_numpy(float)
    class_norms = row[["gradients_norm_class_0", "gradients_norm_class_1"]].to_numpy(float)
    np.testing.assert_allclose(row["loss_total"], expected_loss, rtol=RTOL)
    np.testing.assert_allclose(class_losses, expected_class_losses, rtol=RTOL)
    np.testing.assert_allclose(class_losses.sum(), row["loss_total"], rtol=RTOL)
    np.testing.assert_allclose(row["gradients_norm_total"], expected_norm, rtol=RTOL)
    np.testing.assert_allclose(class_norms, expected_class_norms, rtol=RTOL)
    # grad L_0 + grad L_1 = grad L: |g|^2 = |g0|^2 + |g1|^2 + 2 |g0| |g1| cos(g0, g1).
    cosine = row["gradients_cosine_class_0_vs_rest"]
    assert cosine == pytest.approx(row["gradients_cosine_class_1_vs_rest"], rel=RTOL)
    total_squared = np.sum(class_norms**2) + 2 * np.prod(class_norms) * cosine
    np.testing.assert_allclose(total_squared, row["gradients_norm_total"] ** 2, rtol=RTOL)
    # Plain SGD: the update is lr * grad L, and class c's share of it is lr * grad L_c.
    np.testing.assert_allclose(row["gradients_update_norm"], LEARNING_RATE * expected_norm, RTOL)
    effective = row[["gradients_effective_step_class_0", "gradients_effective_step_class_1"]]
    np.testing.assert_allclose(effective.to_numpy(float), LEARNING_RATE * class_norms, rtol=RTOL)


class _WeightsBeforeLastStep(keras.callbacks.Callback):
    def __init__(self, last_step):
        super().__init__()
        self.last_step = last_step

    def on_train_batch_begin(self, batch, logs=None):
        if int(self.model.optimizer.iterations) == self.last_step:
            self.weights = self.model.get_weights()


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_observing_does_not_change_training_and_update_norm_is_the_weight_change(tmp_path, optimizer):
    def train(callbacks):
        net = ct.model(optimizer=keras.optimizers.get(optimizer))
        ct.fit(net, ct.dataset(LABELS, 4, weights=WEIGHTS), callbacks, epochs=2)
        return net

    # 6 steps; with every_n_steps=5 the last one (5) is recorded, and steps in between are not.
    before_last = _WeightsBeforeLastStep(5)
    plain = train([before_last])
    gradients = PerClassGradients(str(tmp_path), every_n_steps=5)
    observed = train([BatchComposition(str(tmp_path)), gradients])

    for expected, actual in zip(plain.get_weights(), observed.get_weights(), strict=True):
        np.testing.assert_allclose(actual, expected, atol=1e-5)
    assert int(observed.optimizer.iterations) == int(plain.optimizer.iterations) == 6
    assert "train_step" not in observed.__dict__
    frame = gradients.dataframe()
    assert frame["step"].tolist() == [0, 5]
    change = np.sqrt(sum(np.sum((a - b) ** 2) for a, b in zip(plain.get_weights(), before_last.weights, strict=True)))
    assert frame["gradients_update_norm"].iloc[-1] == pytest.approx(change, rel=1e-4)


def test_dropout_gradients_are_those_of_the_mask_trained_with(tmp_path):
    # The callback recomputes the step's gradients from the state before it, the dropout seed included: with plain
    # SGD the update is lr * grad L, so its norm and the classes' shares of it match the recorded gradients only
    # if the recomputation drew the dropout mask the step trained with.
    def train(callbacks):
        keras.utils.set_random_seed(0)
        net = keras.Sequential(
            [
                keras.Input((ct.FEATURES,)),
                keras.layers.Dense(8, activation="tanh"),
                keras.layers.Dropout(0.5),
                keras.layers.Dense(1, activation="sigmoid"),
            ]
        )
        net.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE), loss="binary_crossentropy")
        return ct.fit(net, ct.dataset(LABELS, 4), callbacks, epochs=2)

    plain = train([])
    callback = PerClassGradients(str(tmp_path), every_n_steps=1)
    observed = train([callback])

    for expected, actual in zip(plain.get_weights(), observed.get_weights(), strict=True):
        np.testing.assert_array_equal(actual, expected)
    frame = callback.dataframe()
    assert frame["step"].tolist() == list(range(6))
    np.testing.assert_allclose(frame["gradients_update_norm"], LEARNING_RATE * frame["gradients_norm_total"], RTOL)
    norms = frame[["gradients_norm_class_0", "gradients_norm_class_1"]].to_numpy()
    effective = frame[["gradients_effective_step_class_0", "gradients_effective_step_class_1"]].to_numpy()
    np.testing.assert_allclose(effective, LEARNING_RATE * norms, rtol=RTOL)


def test_a_loss_reading_the_optimizer_step_is_split_as_the_step_computed_it(tmp_path):
    # Deferred re-weighting weighs class 1 ten times from optimizer step 1 on. The callback records a step after the
    # optimizer has counted it, yet step 0's losses are the unweighted ones and step 1's the weighted ones.
    net = ct.model()
    weighted = losses.DeferredReweighting(keras.losses.BinaryCrossentropy(), [1.0, 10.0], switch_step=1)
    net.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE), loss=weighted)
    first = _first_step_by_hand(net, "sum_over_batch_size")
    before_second = _WeightsBeforeLastStep(1)
    callback = PerClassGradients(str(tmp_path), every_n_steps=1)
    # The same batch twice: steps 0 and 1.
    callbacks = [weighted.switch_callback(), before_second, callback]
    ct.fit(net, ct.dataset(LABELS[:4], 4, weights=WEIGHTS[:4]), callbacks, epochs=2)
    copy = keras.models.clone_model(net)
    copy.set_weights(before_second.weights)
    second = _first_step_by_hand(copy, "sum_over_batch_size")

    frame = callback.dataframe()
    assert frame["step"].tolist() == [0, 1]
    class_losses = frame[["loss_class_0", "loss_class_1"]].to_numpy(float)
    np.testing.assert_allclose(class_losses[0], first[1], rtol=RTOL)
    np.testing.assert_allclose(class_losses[1], np.multiply(second[1], [1.0, 10.0]), rtol=RTOL)
    np.testing.assert_allclose(frame["loss_total"], class_losses.sum(axis=1), rtol=RTOL)
    np.testing.assert_allclose(frame["gradients_norm_total"].iloc[0], first[2], rtol=RTOL)


def test_regularization_is_reported_apart_from_the_class_losses(tmp_path):
    net = ct.model(kernel_regularizer=keras.regularizers.L2(0.5))
    expected = 0.5 * np.sum(net.layers[0].kernel.numpy() ** 2)
    callback = PerClassGradients(str(tmp_path), every_n_steps=1)
    ct.fit(net, ct.dataset(LABELS[:4], 4), [callback])

    row = callback.dataframe().iloc[0]
    assert row["loss_regularization"] == pytest.approx(expected, rel=RTOL)
    assert row["loss_class_0"] + row["loss_class_1"] + row["loss_regularization"] == pytest.approx(
        row["loss_total"], rel=RTOL
    )


def test_sparse_multiclass_with_class_weight(tmp_path):
    labels = np.array([0, 1, 2, 0, 0, 2, 1, 0], np.int32)
    callback = PerClassGradients(str(tmp_path), every_n_steps=1, minority_class=2)
    net = ct.model(3)
    net.fit(
        ct.features(8),
        labels,
        batch_size=4,
        class_weight={0: 1.0, 1: 2.0, 2: 4.0},
        shuffle=False,
        verbose=0,
        callbacks=[callback],
    )

    frame = callback.dataframe()
    class_losses = frame[[f"loss_class_{c}" for c in range(3)]].to_numpy()
    np.testing.assert_allclose(class_losses.sum(axis=1), frame["loss_total"], rtol=RTOL)
    norms = frame[[f"gradients_norm_class_{c}" for c in range(3)]].to_numpy()
    effective = frame[[f"gradients_effective_step_class_{c}" for c in range(3)]].to_numpy()
    np.testing.assert_allclose(effective, LEARNING_RATE * norms, rtol=RTOL)
    assert np.all(np.abs(frame[[f"gradients_cosine_class_{c}_vs_rest" for c in range(3)]]) <= 1)


def test_mirrored_strategy_logs_the_global_batch(tmp_path):
    with ct.mirrored_strategy().scope():
        net = ct.model()
    expected_loss, expected_class_losses, expected_norm, expected_class_norms = _first_step_by_hand(
        net, "sum_over_batch_size"
    )
    callbacks = [BatchComposition(str(tmp_path)), PerClassGradients(str(tmp_path), every_n_steps=1)]
    # Global batches of 4, two examples per replica.
    ct.fit(net, ct.dataset(LABELS[:8], 4, weights=WEIGHTS[:8]), callbacks)

    composition, gradients = (callback.dataframe() for callback in callbacks)
    assert composition["composition_batch_size"].tolist() == [4, 4]
    assert composition["composition_count_class_1"].tolist() == [1, 2]
    assert composition["composition_weight_class_1"].tolist() == [2, 4]
    row = gradients.iloc[0]
    np.testing.assert_allclose(row["loss_total"], expected_loss, rtol=RTOL)
    np.testing.assert_allclose(row[["loss_class_0", "loss_class_1"]].to_numpy(float), expected_class_losses, rtol=RTOL)
    np.testing.assert_allclose(row["gradients_norm_total"], expected_norm, rtol=RTOL)
    class_norms = row[["gradients_norm_class_0", "gradients_norm_class_1"]].to_numpy(float)
    np.testing.assert_allclose(class_norms, expected_class_norms, rtol=RTOL)
    np.testing.assert_allclose(row["gradients_update_norm"], LEARNING_RATE * expected_norm, rtol=RTOL)


class _MaskRows(keras.layers.Layer):
    """Passes its input through and masks the examples whose first feature is negative."""

    def __init__(self):
        super().__init__()
        self.supports_masking = True

    def call(self, x):
        return x

    def compute_mask(self, x, mask=None):
        return x[:, 0] >= 0


@pytest.mark.parametrize("reduction", sorted(DENOMINATORS))
def test_output_mask_weights_the_class_losses_as_keras_weights_the_loss(tmp_path, reduction):
    # Keras merges an output's mask into the sample weights (rescaled by total / valid for the mean
    # reductions); the class losses follow the same rule, so they still sum to the loss trained on.
    keras.utils.set_random_seed(0)
    inputs = keras.Input((ct.FEATURES,))
    outputs = keras.layers.Dense(1, activation="sigmoid")(_MaskRows()(keras.layers.Dense(4)(inputs)))
    net = keras.Model(inputs, outputs)
    net.compile(
        optimizer=keras.optimizers.SGD(LEARNING_RATE), loss=keras.losses.BinaryCrossentropy(reduction=reduction)
    )
    x, y, w = ct.features(8), np.array(LABELS[:8]), np.array(WEIGHTS[:8], np.float32)
    hidden = net.layers[1](x).numpy()
    assert 0 < np.sum(hidden[:, 0] >= 0) < 8, "the mask must drop some examples but not all"
    mask = (hidden[:, 0] >= 0).astype(np.float32)
    per_example = keras.losses.binary_crossentropy(y[:, None].astype(np.float32), net(x)).numpy()
    masked_weight = w * mask * (len(mask) / mask.sum() if reduction == "sum_over_batch_size" else 1.0)
    denominator = {"sum_over_batch_size": len(w), "sum": 1.0, "mean_with_sample_weight": masked_weight.sum()}
    expected = [np.sum((per_example * masked_weight)[y == c]) / denominator[reduction] for c in (0, 1)]
    callback = PerClassGradients(str(tmp_path), every_n_steps=1)
    ct.fit(net, ct.dataset(LABELS[:8], 8, weights=WEIGHTS[:8]), [callback])

    row = callback.dataframe().iloc[0]
    class_losses = row[["loss_class_0", "loss_class_1"]].to_numpy(float)
    np.testing.assert_allclose(class_losses, expected, rtol=RTOL)
    np.testing.assert_allclose(class_losses.sum(), row["loss_total"], rtol=RTOL)
