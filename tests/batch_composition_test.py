"""BatchComposition: counts, shares, weights and flags of the batches actually trained on."""

import callback_testing as ct
import keras
import numpy as np
import pytest
import tensorflow as tf

from imbal_keras.callbacks import BatchComposition, recorder
from imbal_keras.errors import UserInputError

# Batches of 4: minority counts 1, 0, 2 and a final partial batch of 2 with 1.
LABELS = [0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 1, 0, 1, 0]
WEIGHTS = [1, 2, 3, 1, 1, 1, 1, 1, 0.5, 2, 0.5, 1, 4, 1]


def test_rows_equal_the_labels_and_weights_of_each_batch(tmp_path):
    callback = BatchComposition(str(tmp_path))
    ct.fit(ct.model(), ct.dataset(LABELS, 4, weights=WEIGHTS), [callback], epochs=2)

    frame = callback.dataframe()
    assert frame["step"].tolist() == list(range(8))
    assert frame["epoch"].tolist() == [0] * 4 + [1] * 4
    epoch = frame[frame["epoch"] == 1]
    assert epoch["composition_batch_size"].tolist() == [4, 4, 4, 2]
    assert epoch["composition_count_class_1"].tolist() == [1, 0, 2, 1]
    assert epoch["composition_count_class_0"].tolist() == [3, 4, 2, 1]
    assert epoch["composition_share_class_1"].tolist() == [0.25, 0.0, 0.5, 0.5]
    assert epoch["composition_weight_class_0"].tolist() == [4, 4, 3, 1]
    assert epoch["composition_weight_class_1"].tolist() == [3, 0, 1, 4]
    assert epoch["composition_no_minority"].tolist() == [0, 1, 0, 0]


def test_class_weight_with_numpy_arrays_is_counted_as_sample_weight(tmp_path):
    callback = BatchComposition(str(tmp_path))
    labels = np.array(LABELS[:12], np.int32)
    ct.model().fit(
        ct.features(12),
        labels,
        batch_size=4,
        class_weight={0: 1.0, 1: 5.0},
        shuffle=False,
        verbose=0,
        callbacks=[callback],
    )

    frame = callback.dataframe()
    assert frame["composition_weight_class_1"].tolist() == [5.0, 0.0, 10.0]
    assert frame["composition_weight_class_0"].tolist() == [3.0, 4.0, 2.0]


def test_one_hot_labels_and_configured_minority_class(tmp_path):
    labels = np.array([0, 1, 1, 0, 0, 1, 2, 2])
    one_hot = np.eye(3, dtype=np.float32)[labels]
    data = tf.data.Dataset.from_tensor_slices((ct.features(8), one_hot)).batch(4)
    callback = BatchComposition(str(tmp_path), minority_class=2)
    ct.fit(ct.model(3, loss="categorical_crossentropy"), data, [callback])

    frame = callback.dataframe()
    assert frame[[f"composition_count_class_{c}" for c in range(3)]].values.tolist() == [
        [2, 2, 0],
        [1, 1, 2],
    ]
    assert frame["composition_no_minority"].tolist() == [1, 0]


def test_driven_without_fit_across_buffer_wraparound(tmp_path, monkeypatch):
    # A 4-row buffer is read every 4 calls; 7 steps wrap it, and every step must still come back.
    monkeypatch.setattr(recorder, "_BUFFER_ROWS", 4)
    net = ct.model()
    net.make_train_function()
    callback = BatchComposition(str(tmp_path))
    callback.set_model(net)
    callback.on_train_begin()
    iterator = iter(ct.dataset(LABELS, 2))
    for batch in range(7):
        callback.on_train_batch_begin(batch)
        net.train_function(iterator)
    callback.on_epoch_end(0)
    callback.on_train_end()

    expected = np.array(LABELS).reshape(7, 2).sum(axis=1).tolist()
    assert callback.dataframe()["composition_count_class_1"].tolist() == expected


def test_labels_outside_the_model_classes_raise(tmp_path):
    net = ct.model()
    with pytest.raises(UserInputError, match="num_classes=2"):
        ct.fit(net, ct.dataset([0, 2, 1, 0], 2), [BatchComposition(str(tmp_path))])
    assert "train_step" not in net.__dict__


def test_custom_train_step_is_observed_unchanged(tmp_path):
    class CustomStep(keras.Sequential):
        def train_step(self, data):
            return super().train_step(data)

    keras.utils.set_random_seed(0)
    net = CustomStep([keras.Input((ct.FEATURES,)), keras.layers.Dense(1, activation="sigmoid")])
    net.compile(optimizer="sgd", loss="binary_crossentropy")
    callback = BatchComposition(str(tmp_path))
    ct.fit(net, ct.dataset(LABELS[:8], 4), [callback])

    assert callback.dataframe()["composition_count_class_1"].tolist() == [1, 0]
    assert "train_step" not in net.__dict__
