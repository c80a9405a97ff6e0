"""Gradient accumulation (`gradient_accumulation_steps=k`): a row per batch, the update where it is applied."""

import callback_testing as ct
import keras
import numpy as np
import pytest
import tensorflow as tf

from imbal_keras.callbacks import BatchComposition, PerClassGradients

BATCH = 6
BATCHES = 12
LEARNING_RATE = 0.1
RTOL = 1e-5
LABELS = np.random.default_rng(3).binomial(1, 0.3, size=BATCH * BATCHES)


class _WeightsBeforeEachBatch(keras.callbacks.Callback):
    """The trainable weights before every batch of a one-epoch fit, and after its last one."""

    def on_train_begin(self, logs=None):
        self.weights = []

    def on_train_batch_begin(self, batch, logs=None):
        self.weights.append([w.numpy() for w in self.model.trainable_weights])

    def on_train_end(self, logs=None):
        self.weights.append([w.numpy() for w in self.model.trainable_weights])


def _model(accumulation: int) -> keras.Model:
    return ct.model(optimizer=keras.optimizers.SGD(LEARNING_RATE, gradient_accumulation_steps=accumulation))


def _class_gradients(net: keras.Model, weights: list, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(2, P) gradient of each class's part of the mean binary cross-entropy of the batch, by GradientTape."""
    copy = keras.models.clone_model(net)
    for variable, value in zip(copy.trainable_weights, weights, strict=True):
        variable.assign(value)
    with tf.GradientTape(persistent=True) as tape:
        per_example = keras.losses.binary_crossentropy(y[:, None].astype(np.float32), copy(x, training=True))
        parts = [tf.reduce_sum(per_example[y == c]) / len(y) for c in (0, 1)]
    return np.stack([_flat(tape.gradient(part, copy.trainable_weights)) for part in parts])


def _flat(tensors) -> np.ndarray:
    return np.concatenate([np.asarray(t, np.float64).ravel() for t in tensors])


@pytest.mark.parametrize("accumulation", [2, 3])
def test_a_row_per_batch_with_its_composition_gradients_and_the_applied_update(tmp_path, accumulation):
    data = ct.dataset(LABELS, BATCH)
    plain = ct.fit(_model(accumulation), data, [])
    net = _model(accumulation)
    composition = BatchComposition(str(tmp_path / "c"))
    gradients = PerClassGradients(str(tmp_path / "g"), every_n_steps=1)
    before = _WeightsBeforeEachBatch()
    ct.fit(net, data, [before, composition, gradients])

    # Observing changes nothing: the weights are bit for bit those of the plain fit.
    for observed, expected in zip(net.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_array_equal(observed, expected)

    labels = LABELS.reshape(BATCHES, BATCH)
    counts = np.stack([(labels == c).sum(axis=1) for c in (0, 1)], axis=1)
    frame = composition.dataframe()
    np.testing.assert_array_equal(frame["step"], np.arange(BATCHES))
    np.testing.assert_array_equal(frame["optimizer_step"], np.arange(BATCHES) // accumulation)
    np.testing.assert_array_equal(frame[["composition_count_class_0", "composition_count_class_1"]], counts)

    rows = gradients.dataframe()
    np.testing.assert_array_equal(rows["step"], np.arange(BATCHES))
    np.testing.assert_array_equal(rows[["gradients_examples_class_0", "gradients_examples_class_1"]], counts)
    x = ct.features(len(LABELS)).reshape(BATCHES, BATCH, -1)
    class_gradients = [_class_gradients(net, before.weights[b], x[b], labels[b]) for b in range(BATCHES)]
    for b, row in rows.iterrows():
        norms = np.linalg.norm(class_gradients[b], axis=1)
        np.testing.assert_allclose(row[["gradients_norm_class_0", "gradients_norm_class_1"]], norms, rtol=RTOL)
        np.testing.assert_allclose(row["gradients_norm_total"], np.linalg.norm(class_gradients[b].sum(0)), rtol=RTOL)
        applies = (b + 1) % accumulation == 0
        assert row["gradients_accumulation_update_applied"] == applies
        update = _flat(before.weights[b + 1]) - _flat(before.weights[b])
        np.testing.assert_allclose(row["gradients_update_norm"], np.linalg.norm(update), rtol=RTOL)
        if not applies:
            assert row["gradients_update_norm"] == 0
            assert row["gradients_norm_applied"] == row["gradients_accumulation_batches_in_split"] == 0
            continue
        # Plain SGD: the update is -lr times the mean gradient of the update's batches, and each class's share
        # of it is lr times the mean of its gradients.
        group = np.stack(class_gradients[b + 1 - accumulation : b + 1])
        mean = group.mean(axis=0)
        assert row["gradients_accumulation_batches_in_split"] == accumulation
        np.testing.assert_allclose(row["gradients_norm_applied"], np.linalg.norm(mean.sum(0)), rtol=RTOL)
        np.testing.assert_allclose(row["gradients_update_norm"], LEARNING_RATE * np.linalg.norm(mean.sum(0)), rtol=RTOL)
        effective = [row[f"gradients_effective_step_class_{c}"] for c in (0, 1)]
        np.testing.assert_allclose(effective, LEARNING_RATE * np.linalg.norm(mean, axis=1), rtol=1e-4)


def test_every_n_steps_counts_updates_and_records_every_batch_of_a_due_update(tmp_path):
    gradients = PerClassGradients(str(tmp_path), every_n_steps=2)
    ct.fit(_model(2), ct.dataset(LABELS, BATCH), [gradients])
    rows = gradients.dataframe()
    np.testing.assert_array_equal(rows["step"], [0, 1, 4, 5, 8, 9])
    np.testing.assert_array_equal(rows["optimizer_step"], [0, 0, 2, 2, 4, 4])
    np.testing.assert_array_equal(rows["gradients_accumulation_batches_in_split"], [0, 2] * 3)
