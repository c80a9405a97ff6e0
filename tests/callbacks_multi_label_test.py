"""Multi-label targets: y (N, L) of 0/1 under sigmoid outputs and a binary cross-entropy.

Composition counts the positives of each label per batch and the examples with no positive label, against numpy;
the per-label gradients are those of label l's term of the loss, against a GradientTape written here; and the
trained weights are bitwise those of a plain fit.
"""

import callback_testing as ct
import keras
import numpy as np
import pytest
import tensorflow as tf

from imbal_keras.callbacks import BatchComposition, PerClassGradients

N, L, BATCH = 16, 4, 4


def _labels() -> np.ndarray:
    """Long-tailed label frequencies (label 3 is rare), a batch without label 3, examples without any label."""
    rng = np.random.default_rng(5)
    y = (rng.random((N, L)) < np.array([0.6, 0.4, 0.2, 0.1])).astype(np.float32)
    y[4:8, 3] = 0
    y[0] = 0
    y[1, 3] = 1
    return y


def _model(from_logits: bool) -> keras.Model:
    keras.utils.set_random_seed(0)
    net = keras.Sequential(
        [
            keras.Input((ct.FEATURES,)),
            keras.layers.Dense(5, activation="tanh"),
            keras.layers.Dense(L, activation=None if from_logits else "sigmoid"),
        ]
    )
    loss = keras.losses.BinaryCrossentropy(from_logits=True) if from_logits else "binary_crossentropy"
    net.compile(optimizer=keras.optimizers.Adam(0.05), loss=loss)
    return net


def _label_parts(from_logits: bool):
    def parts(net, batch: ct.Batch) -> dict:
        """Label l's term of the mean over labels and examples: sum_b w_b bce(y_bl, p_bl) / L / B."""
        out = net(batch.x, training=True)
        if from_logits:
            terms = tf.nn.sigmoid_cross_entropy_with_logits(labels=batch.y, logits=out)
        else:
            p = tf.clip_by_value(out, 1e-7, 1 - 1e-7)
            terms = -(batch.y * tf.math.log(p) + (1 - batch.y) * tf.math.log(1 - p))
        weight = np.ones(len(batch.y), np.float32) if batch.sample_weight is None else batch.sample_weight
        return {"": list(tf.reduce_sum(terms * weight[:, None], axis=0) / L / len(batch.y))}

    return parts


@pytest.mark.parametrize("from_logits", [False, True], ids=["sigmoid", "logits"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "sample_weights"])
def test_multi_label_matches_numpy_and_a_gradient_tape(tmp_path, from_logits, weighted):
    x, y = ct.features(N), _labels()
    w = np.random.default_rng(6).uniform(0.5, 2.0, N).astype(np.float32) if weighted else None
    data = tf.data.Dataset.from_tensor_slices((x, y) if w is None else (x, y, w)).batch(BATCH)
    composition = BatchComposition(tmp_path / "c", minority_class=3)
    gradients = PerClassGradients(tmp_path / "g", every_n_steps=1, minority_class=3)
    trajectory = ct.Trajectory()
    observed = ct.fit(_model(from_logits), data, [composition, gradients, trajectory])
    plain = ct.fit(_model(from_logits), data, [])
    for a, b in zip(observed.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)

    batches = [
        ct.Batch(x[b : b + BATCH], y[b : b + BATCH], None if w is None else w[b : b + BATCH])
        for b in range(0, N, BATCH)
    ]
    frame = composition.dataframe()
    positives = np.stack([batch.y.sum(axis=0) for batch in batches]).astype(int)
    np.testing.assert_array_equal(frame[[f"composition_count_class_{label}" for label in range(L)]], positives)
    np.testing.assert_array_equal(frame["composition_no_label"], [int(np.sum(b.y.sum(axis=1) == 0)) for b in batches])
    np.testing.assert_array_equal(frame["composition_no_minority"], (positives[:, 3] == 0).astype(int))
    weights = np.stack([(b.y * (1 if b.sample_weight is None else b.sample_weight[:, None])).sum(0) for b in batches])
    np.testing.assert_allclose(frame[[f"composition_weight_class_{label}" for label in range(L)]], weights, rtol=1e-6)
    np.testing.assert_allclose(frame["composition_share_class_3"], positives[:, 3] / BATCH)

    rows = gradients.dataframe()
    expected = ct.expected_class_parts(observed, trajectory, list(enumerate(batches)), _label_parts(from_logits))
    ct.assert_rows_match(rows, expected)
    # The labels' terms sum to the batch loss; the examples column counts each label's positives.
    np.testing.assert_allclose(
        rows[[f"loss_class_{label}" for label in range(L)]].sum(axis=1), rows["loss_total"], 1e-6
    )
    np.testing.assert_array_equal(rows[[f"gradients_examples_class_{label}" for label in range(L)]], positives)
    assert np.isfinite(gradients.summary()["gradients_mean_cosine_minority_vs_rest"])


def test_a_weight_per_example_and_label_sums_over_each_labels_positives(tmp_path):
    """A (B, L) weight map (`data.dense.label_weighted`) under the labelwise loss: each label's weight column is
    the sum of that label's weights over the batch's positives, against numpy; training is unchanged."""
    from imbal_keras.losses import LabelwiseBinaryCrossentropy

    x, y = ct.features(N), _labels()
    w = np.random.default_rng(7).uniform(0.5, 3.0, (N, L)).astype(np.float32)
    data = tf.data.Dataset.from_tensor_slices((x, y, w)).batch(BATCH)

    def model():
        net = _model(from_logits=True)
        net.compile(optimizer=keras.optimizers.Adam(0.05), loss=LabelwiseBinaryCrossentropy(from_logits=True))
        return net

    composition = BatchComposition(tmp_path / "c", minority_class=3)
    observed = ct.fit(model(), data, [composition])
    plain = ct.fit(model(), data, [])
    for a, b in zip(observed.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    frame = composition.dataframe()
    expected = np.stack([(y[b : b + BATCH] * w[b : b + BATCH]).sum(axis=0) for b in range(0, N, BATCH)])
    np.testing.assert_allclose(frame[[f"composition_weight_class_{label}" for label in range(L)]], expected, rtol=1e-6)
    positives = np.stack([y[b : b + BATCH].sum(axis=0) for b in range(0, N, BATCH)]).astype(int)
    np.testing.assert_array_equal(frame[[f"composition_count_class_{label}" for label in range(L)]], positives)
