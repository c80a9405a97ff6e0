"""Fewer refusals: an unbuilt subclassed model, boolean labels, and labels refused before a step is traced."""

import callback_testing as ct
import keras
import numpy as np
import pytest
import tensorflow as tf

from imbal_keras.callbacks import BatchComposition, PerClassGradients
from imbal_keras.errors import UserInputError

BATCH = 6
RTOL = 1e-5


class CallOnlyNet(keras.Model):
    """A subclassed model with `call()` only: nothing says its output width until it is called."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.hidden = keras.layers.Dense(4, activation="tanh")
        self.out = keras.layers.Dense(num_classes, activation="softmax")

    def call(self, x):
        return self.out(self.hidden(x))


class _WeightsBeforeEachBatch(keras.callbacks.Callback):
    """The trainable weights before every batch: `initial`, then the weights after each batch but the last."""

    def __init__(self, initial: list):
        super().__init__()
        self.weights = [initial]

    def on_train_batch_end(self, batch, logs=None):
        self.weights.append([w.numpy() for w in self.model.trainable_weights])


def _initial_weights(make) -> list:
    """The weights a model from `make()` starts training with (it is built by calling it, as Keras does)."""
    net = make()
    net(ct.features(1))
    return [w.numpy() for w in net.trainable_weights]


def _call_only(num_classes: int) -> keras.Model:
    keras.utils.set_random_seed(0)
    net = CallOnlyNet(num_classes)
    net.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    return net


def _class_norms(net, weights, x, y, num_classes, per_example_loss) -> np.ndarray:
    """||grad L_c|| of a batch of the mean loss, by a GradientTape on the model holding `weights`."""
    for variable, value in zip(net.trainable_weights, weights, strict=True):
        variable.assign(value)
    with tf.GradientTape(persistent=True) as tape:
        per_example = per_example_loss(y, net(x, training=True))
        parts = [tf.reduce_sum(per_example[ct.class_ids(y) == c]) / len(y) for c in range(num_classes)]
    return np.array(
        [np.sqrt(sum(np.sum(g.numpy() ** 2) for g in tape.gradient(p, net.trainable_weights))) for p in parts]
    )


def _check_rows(net, composition, gradients, before, x, y, num_classes, per_example_loss):
    """Every row's counts against numpy and class gradient norms against a GradientTape."""
    batches = len(y) // BATCH
    counts = np.stack(
        [np.bincount(ct.class_ids(y[b * BATCH : (b + 1) * BATCH]), minlength=num_classes) for b in range(batches)]
    )
    count_columns = [f"composition_count_class_{c}" for c in range(num_classes)]
    np.testing.assert_array_equal(composition.dataframe()[count_columns], counts)
    rows = gradients.dataframe()
    assert len(rows) == batches
    for b in range(batches):
        part = slice(b * BATCH, (b + 1) * BATCH)
        expected = _class_norms(net, before.weights[b], x[part], y[part], num_classes, per_example_loss)
        logged = rows.loc[b, [f"gradients_norm_class_{c}" for c in range(num_classes)]].to_numpy(float)
        np.testing.assert_allclose(logged, expected, rtol=RTOL, atol=1e-7)


def test_an_unbuilt_subclassed_model_is_observed_without_num_classes(tmp_path):
    x, y = ct.features(24), np.random.default_rng(1).integers(0, 3, 24)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH)
    plain = ct.fit(_call_only(3), data, [])
    before = _WeightsBeforeEachBatch(_initial_weights(lambda: _call_only(3)))
    net = _call_only(3)
    composition = BatchComposition(str(tmp_path / "c"))
    gradients = PerClassGradients(str(tmp_path / "g"), every_n_steps=1)
    ct.fit(net, data, [before, composition, gradients])

    assert composition.num_classes == gradients.num_classes == 3
    for observed, expected in zip(net.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_array_equal(observed, expected)
    _check_rows(net, composition, gradients, before, x, y, 3, keras.losses.sparse_categorical_crossentropy)


def test_boolean_labels_are_read_as_classes_0_and_1(tmp_path):
    x, y = ct.features(24), np.random.default_rng(2).random(24) < 0.3
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH)
    plain = ct.fit(ct.model(), data, [])
    before = _WeightsBeforeEachBatch(_initial_weights(ct.model))
    net = ct.model()
    composition = BatchComposition(str(tmp_path / "c"))
    gradients = PerClassGradients(str(tmp_path / "g"), every_n_steps=1)
    ct.fit(net, data, [before, composition, gradients])

    for observed, expected in zip(net.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_array_equal(observed, expected)

    def binary(labels, y_pred):
        return keras.losses.binary_crossentropy(labels[:, None].astype(np.float32), y_pred)

    _check_rows(net, composition, gradients, before, x, y, 2, binary)


class _TracedComposition(BatchComposition):
    """Counts the traces of its in-graph recording."""

    traces = 0

    def record_batch(self, step, y, sample_weight):
        type(self).traces += 1
        super().record_batch(step, y, sample_weight)


def test_labels_it_cannot_read_are_refused_in_one_line_before_a_step_is_traced(tmp_path):
    x, y = ct.features(12), np.zeros((12, 3, 2), np.float32)
    net = ct.model()
    net.compile(optimizer="sgd", loss="mse")
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH)
    message = r"^_TracedComposition cannot interpret labels .* Received: y.shape=\(None, 3, 2\)$"
    with pytest.raises(UserInputError, match=message):
        net.fit(data, verbose=0, callbacks=[_TracedComposition(str(tmp_path))])
    assert _TracedComposition.traces == 0
