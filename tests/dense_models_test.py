"""Built-in models for dense and multi-label targets: shapes, sizes, starting biases, and a few steps of training
on the dense pipelines with the dense losses."""

import keras
import numpy as np
import pytest

from imbal_keras import data, losses, models
from imbal_keras.data import dense, dense_shares
from imbal_keras.errors import UserInputError


def test_unet_maps_images_to_per_pixel_class_probabilities():
    model = models.unet((16, 16, 1), 3)
    out = model(np.zeros((2, 16, 16, 1), np.float32)).numpy()
    assert out.shape == (2, 16, 16, 3)
    np.testing.assert_allclose(out.sum(axis=-1), 1.0, rtol=1e-5)
    assert model.count_params() == 6443  # the size its docstring states


def test_unet_output_starts_at_the_class_shares():
    shares = [0.98, 0.015, 0.005]
    model = models.unet((8, 8, 1), 3, class_shares=shares)
    np.testing.assert_allclose(model.layers[-1].bias.numpy(), np.log(shares), rtol=1e-6)


def test_unet_refuses_a_size_its_pooling_cannot_halve():
    with pytest.raises(UserInputError, match=r"divisible by 4. Received: input_shape=\(10, 12, 1\)"):
        models.unet((10, 12, 1), 2, filters=(4, 8, 16))


def test_models_are_functions_of_their_seed():
    a, b = models.sequence_tagger(20, 3, seed=1), models.sequence_tagger(20, 3, seed=1)
    c = models.sequence_tagger(20, 3, seed=2)
    tokens = np.arange(10, dtype=np.int32)[None]
    np.testing.assert_array_equal(a(tokens).numpy(), b(tokens).numpy())
    assert not np.array_equal(a(tokens).numpy(), c(tokens).numpy())
    assert a(tokens).shape == (1, 10, 3)


def test_multilabel_mlp_bias_starts_at_the_label_log_odds():
    model = models.multilabel_mlp(5, 3, label_shares=[0.5, 0.1, 0.01])
    p = np.array([0.5, 0.1, 0.01])
    np.testing.assert_allclose(model.layers[-1].bias.numpy(), np.log(p / (1 - p)), rtol=1e-5)
    assert model(np.zeros((4, 5), np.float32)).shape == (4, 3)


def test_unet_trains_on_weight_maps_with_a_dice_loss():
    keras.utils.set_random_seed(0)
    d = data.segmentation(num_examples=48, size=16, seed=0)
    counts = dense_shares.pixel_counts(d.train.y, 3)
    stream = dense.weighted(
        d.train.x, d.train.y, batch_size=8, seed=0, class_weights=dense_shares.frequency_weights(counts)
    )
    model = models.unet((16, 16, 1), 3, class_shares=counts / counts.sum())
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=losses.CrossEntropyDiceLoss())
    history = model.fit(stream, steps_per_epoch=4, epochs=2, verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"]).all()


def test_tagger_trains_on_windows_forced_to_hold_a_rare_tag():
    d = data.token_sequences(num_examples=64, length=16, seed=0)
    options = dense.Patches(size=(8,), foreground_share=0.5)
    stream = dense.patches(d.train.x, d.train.y, batch_size=8, seed=1, options=options)
    model = models.sequence_tagger(64, 3)
    model.compile(optimizer="adam", loss=losses.DenseFocalLoss())
    history = model.fit(stream, steps_per_epoch=3, epochs=1, verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"]).all()


def test_mlp_trains_on_label_weight_maps():
    d = data.multilabel_tags(num_examples=200, num_labels=4, seed=0)
    weights = dense_shares.positive_weights(d.train.y)
    stream = dense.label_weighted(d.train.x, d.train.y, batch_size=16, seed=0, positive_weights=weights)
    model = models.multilabel_mlp(16, 4, label_shares=d.train.y.mean(axis=0))
    model.compile(optimizer="adam", loss=losses.LabelwiseBinaryCrossentropy())
    history = model.fit(stream, steps_per_epoch=3, epochs=1, verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"]).all()


def test_keras_refuses_class_weight_for_masks_where_the_weight_map_trains():
    d = data.segmentation(num_examples=24, size=8, radius=1, seed=0)
    model = models.unet((8, 8, 1), 3)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    # tf.keras 2 said "class_weight not supported for 3+ dimensional targets"; Keras 3 reads the masks' last axis
    # as one-hot classes and fails (a TypeError for arrays, a graph error for tf.data).
    with pytest.raises((TypeError, ValueError)):
        model.fit(d.train.x, d.train.y, class_weight={0: 1.0, 1: 50.0, 2: 100.0}, epochs=1, verbose=0)
    stream = dense.weighted(d.train.x, d.train.y, batch_size=4, seed=0, class_weights=[1.0, 50.0, 100.0])
    assert np.isfinite(model.fit(stream, steps_per_epoch=2, epochs=1, verbose=0, shuffle=False).history["loss"]).all()
