"""Models with their own `train_step` (handing their batch over with `observe_gradients`) or `compute_loss`."""

import callback_testing as ct
import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from imbal_keras.callbacks import BatchComposition, PerClassGradients, observe_gradients

LABELS = [0, 1, 0, 0, 1, 1, 0, 0, 0, 1, 0, 0]
WEIGHTS = [1.0, 2.0, 0.5, 1.0, 3.0, 1.0, 1.0, 2.0, 1.0, 1.0, 1.0, 4.0]
PENALTY = 0.01


class CustomStep(keras.Sequential):
    """The train step of a research codebase: its own tape and update, handing the batch over first."""

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        observe_gradients(self, x, y, sample_weight)
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight)
        self.optimizer.apply(tape.gradient(loss, self.trainable_variables), self.trainable_variables)
        return {"loss": loss}


class CustomLoss(keras.Sequential):
    """A compiled loss plus a penalty on the first kernel, added in `compute_loss`."""

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)
        return loss + PENALTY * tf.reduce_sum(tf.square(self.layers[0].kernel))


def _model(cls) -> keras.Model:
    keras.utils.set_random_seed(0)
    net = cls(
        [
            keras.Input((ct.FEATURES,)),
            keras.layers.Dense(4, activation="tanh"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    net.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.5), loss="binary_crossentropy")
    return net


def _observed_fit(cls, tmp_path):
    data = ct.dataset(LABELS, 4, weights=WEIGHTS)
    plain = ct.fit(_model(cls), data, [], epochs=2)
    net, trajectory = _model(cls), ct.Trajectory()
    composition = BatchComposition(str(tmp_path / "c"))
    gradients = PerClassGradients(str(tmp_path / "g"), every_n_steps=1)
    ct.fit(net, data, [trajectory, composition, gradients], epochs=2)
    for observed, expected in zip(net.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_array_equal(observed, expected)
    return net, trajectory, composition, gradients


def _batches() -> list[tuple[int, ct.Batch]]:
    x, y, w = ct.features(len(LABELS)), np.array(LABELS), np.array(WEIGHTS, np.float32)
    batches = [ct.Batch(x[i : i + 4], y[i : i + 4], w[i : i + 4]) for i in range(0, len(LABELS), 4)]
    return list(enumerate(batches + batches))


def test_a_custom_train_step_is_observed_exactly(tmp_path):
    net, trajectory, composition, gradients = _observed_fit(CustomStep, tmp_path)
    counts = [np.bincount(batch.y, minlength=2) for _, batch in _batches()]
    np.testing.assert_array_equal(
        composition.dataframe()[["composition_count_class_0", "composition_count_class_1"]], counts
    )
    expected = ct.expected_gradient_rows(
        net,
        trajectory,
        _batches(),
        per_example_loss=lambda y, y_pred: keras.losses.binary_crossentropy(y[:, None].astype(np.float32), y_pred),
        denominator=len,
        num_classes=2,
    )
    logged = gradients.dataframe().drop(columns="epoch")
    pd.testing.assert_frame_equal(logged, expected, check_dtype=False, rtol=2e-5, atol=2e-7)


def test_what_a_custom_compute_loss_adds_counts_as_regularization(tmp_path):
    net, trajectory, _, gradients = _observed_fit(CustomLoss, tmp_path)
    copy = keras.models.clone_model(net)
    rows = gradients.dataframe()
    for step, batch in _batches():
        copy.set_weights(trajectory.weights[step])
        with tf.GradientTape() as tape:
            per_example = keras.losses.binary_crossentropy(batch.y[:, None].astype(np.float32), copy(batch.x))
            data_loss = tf.reduce_sum(per_example * batch.sample_weight) / len(batch.y)
            penalty = PENALTY * tf.reduce_sum(tf.square(copy.layers[0].kernel))
            loss = data_loss + penalty
        norm = np.sqrt(sum(np.sum(g.numpy() ** 2) for g in tape.gradient(loss, copy.trainable_weights)))
        row = rows.iloc[step]
        np.testing.assert_allclose(row["loss_total"], float(loss), rtol=1e-5)
        np.testing.assert_allclose(row["loss_regularization"], float(penalty), rtol=1e-4)
        np.testing.assert_allclose(row["loss_class_0"] + row["loss_class_1"], float(data_loss), rtol=1e-5)
        np.testing.assert_allclose(row["gradients_norm_total"], norm, rtol=1e-5)
