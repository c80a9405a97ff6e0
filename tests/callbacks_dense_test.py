"""Dense targets: segmentation masks and label sequences, with an ignore label and per-pixel weight maps.

Composition counts pixels (tokens) per class and the examples holding each class, against numpy; the per-class
gradients split the loss by pixel class with the whole loss's denominator, against a GradientTape written here; and
the trained weights are bitwise those of a plain fit.
"""

import callback_testing as ct
import keras
import numpy as np
import pytest
import tensorflow as tf

from imbal_keras.callbacks import BatchComposition, PerClassGradients

N, SIDE, K, BATCH, IGNORE = 8, 4, 3, 4, 255
T, VOCABULARY = 6, 7


def _masks(trailing_axis: bool) -> np.ndarray:
    """Masks with a rare class 2, one image without it, and ignored pixels."""
    rng = np.random.default_rng(1)
    masks = rng.choice(3, size=(N, SIDE, SIDE), p=[0.7, 0.25, 0.05]).astype(np.int32)
    masks[0, 0, :2] = 2
    masks[1][masks[1] == 2] = 0
    masks[rng.random(masks.shape) < 0.1] = IGNORE
    return masks[..., None] if trailing_axis else masks


def _images() -> np.ndarray:
    return np.random.default_rng(2).normal(size=(N, SIDE, SIDE, 2)).astype(np.float32)


def _pixel_weights() -> np.ndarray:
    return np.random.default_rng(3).uniform(0.5, 2.0, size=(N, SIDE, SIDE)).astype(np.float32)


def _segmenter() -> keras.Model:
    keras.utils.set_random_seed(0)
    net = keras.Sequential(
        [
            keras.Input((SIDE, SIDE, 2)),
            keras.layers.Conv2D(4, 3, padding="same", activation="tanh"),
            keras.layers.Conv2D(K, 1, activation="softmax"),
        ]
    )
    loss = keras.losses.SparseCategoricalCrossentropy(ignore_class=IGNORE)
    net.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss)
    return net


def _segmentation_parts(net, batch: ct.Batch) -> dict:
    """Keras's masked mean of a sparse cross-entropy over pixels, written out: the sum over the not-ignored pixels
    of weight * -log p(label), divided by the not-ignored pixels; class c's part sums its pixels only."""
    labels = batch.y.reshape(len(batch.y), SIDE, SIDE)
    valid = labels != IGNORE
    probabilities = net(batch.x, training=True)
    terms = -tf.math.log(tf.gather(probabilities, np.where(valid, labels, 0), batch_dims=3))
    weight = np.ones(labels.shape, np.float32) if batch.sample_weight is None else batch.sample_weight
    divisor = np.float32(valid.sum())
    return {
        "": [tf.reduce_sum(terms[valid & (labels == c)] * weight[valid & (labels == c)]) / divisor for c in range(K)]
    }


def _batches(y, w=None) -> list:
    x = _images()
    return [
        ct.Batch(x[b : b + BATCH], y[b : b + BATCH], None if w is None else w[b : b + BATCH])
        for b in range(0, N, BATCH)
    ]


def _fit_twice(tmp_path, make, data):
    composition = BatchComposition(tmp_path / "c")
    gradients = PerClassGradients(tmp_path / "g", every_n_steps=1)
    trajectory = ct.Trajectory()
    observed = ct.fit(make(), data, [composition, gradients, trajectory], epochs=2)
    plain = ct.fit(make(), data, [], epochs=2)
    for a, b in zip(observed.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    return observed, composition, gradients, trajectory


def _expected_composition(batches, num_classes, ignore) -> dict:
    columns = {"composition_elements": []}
    for c in range(num_classes):
        columns |= {f"composition_count_class_{c}": [], f"composition_examples_class_{c}": []}
        columns[f"composition_weight_class_{c}"] = []
    for batch in batches:
        labels = batch.y.reshape(len(batch.y), -1)
        weight = np.ones(labels.shape) if batch.sample_weight is None else batch.sample_weight.reshape(labels.shape)
        columns["composition_elements"].append(int(np.sum(labels != ignore)))
        for c in range(num_classes):
            member = (labels == c) & (labels != ignore)
            columns[f"composition_count_class_{c}"].append(int(np.sum(member)))
            columns[f"composition_examples_class_{c}"].append(int(np.sum(np.any(member, axis=1))))
            columns[f"composition_weight_class_{c}"].append(float(np.sum(weight[member])))
    return columns


@pytest.mark.parametrize("trailing_axis", [False, True], ids=["NHW", "NHW1"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "pixel_weights"])
def test_segmentation_masks_match_numpy_and_a_gradient_tape(tmp_path, trailing_axis, weighted):
    y, w = _masks(trailing_axis), _pixel_weights() if weighted else None
    parts = (_images(), y) if w is None else (_images(), y, w)
    data = tf.data.Dataset.from_tensor_slices(parts).batch(BATCH)
    observed, composition, gradients, trajectory = _fit_twice(tmp_path, _segmenter, data)
    batches = _batches(y, w) * 2

    frame = composition.dataframe()
    for column, values in _expected_composition(batches, K, IGNORE).items():
        np.testing.assert_allclose(frame[column], values, rtol=1e-6, err_msg=column)
    np.testing.assert_array_equal(frame["composition_batch_size"], BATCH)
    shares = frame["composition_count_class_2"] / frame["composition_elements"]
    np.testing.assert_allclose(frame["composition_share_class_2"], shares)
    assert frame["composition_no_minority"].tolist() == [
        int(frame["composition_count_class_1"][i] == 0) for i in range(4)
    ]

    rows = gradients.dataframe()
    expected = ct.expected_class_parts(observed, trajectory, list(enumerate(batches)), _segmentation_parts)
    ct.assert_rows_match(rows, expected)
    # The pixel classes' parts sum to the batch loss.
    np.testing.assert_allclose(rows[[f"loss_class_{c}" for c in range(K)]].sum(axis=1), rows["loss_total"], rtol=1e-6)
    np.testing.assert_array_equal(
        rows[[f"gradients_examples_class_{c}" for c in range(K)]],
        frame[[f"composition_count_class_{c}" for c in range(K)]],
    )


def _tagger() -> keras.Model:
    keras.utils.set_random_seed(0)
    net = keras.Sequential(
        [
            keras.Input((T,), dtype="int32"),
            keras.layers.Embedding(VOCABULARY, 4),
            keras.layers.Dense(K, activation="softmax"),
        ]
    )
    net.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    return net


def test_label_sequences_with_an_ignore_class_given_to_the_callback(tmp_path):
    """Token labels (N, T) under a plain sparse cross-entropy: every token counts in the loss; `ignore_class=0`
    given to the callbacks leaves padding tokens out of the counts, and their loss terms in no class."""
    rng = np.random.default_rng(4)
    tokens = rng.integers(1, VOCABULARY, size=(N, T)).astype(np.int32)
    labels = rng.choice(K, size=(N, T), p=[0.3, 0.6, 0.1]).astype(np.int32)
    data = tf.data.Dataset.from_tensor_slices((tokens, labels)).batch(BATCH)
    composition = BatchComposition(tmp_path / "c", ignore_class=0)
    gradients = PerClassGradients(tmp_path / "g", every_n_steps=1, ignore_class=0)
    trajectory = ct.Trajectory()
    observed = ct.fit(_tagger(), data, [composition, gradients, trajectory])
    plain = ct.fit(_tagger(), data, [])
    for a, b in zip(observed.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)

    frame = composition.dataframe()
    batches = [ct.Batch(tokens[b : b + BATCH], labels[b : b + BATCH]) for b in range(0, N, BATCH)]
    for column, values in _expected_composition(batches, K, 0).items():
        np.testing.assert_allclose(frame[column], values, err_msg=column)
    assert frame["composition_count_class_0"].sum() == 0

    def parts(net, batch):
        terms = -tf.math.log(tf.gather(net(batch.x, training=True), batch.y, batch_dims=2))
        return {"": [tf.reduce_sum(terms[batch.y == c]) / batch.y.size if c else tf.zeros(()) for c in range(K)]}

    expected = ct.expected_class_parts(observed, trajectory, list(enumerate(batches)), parts)
    for row in expected:
        # The loss holds the padding tokens' terms too, which are in no class.
        del row["loss_total"]
    ct.assert_rows_match(gradients.dataframe(), expected)
