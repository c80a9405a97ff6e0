"""Dense and multi-label losses: values against numpy formulas, finite gradients, both reductions, round trips."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from imbal_keras import losses
from imbal_keras.errors import UserInputError

IGNORE = 9
RTOL = 1e-5


def _case(seed: int = 0, batch: int = 3, size: int = 4, k: int = 3):
    """Logits (B, H, W, K), labels (B, H, W) with a few ignored pixels, a weight map (B, H, W)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(batch, size, size, k))
    labels = rng.choice(k, size=(batch, size, size), p=[0.7, 0.2, 0.1][:k] if k == 3 else None)
    labels[0, 0, :2] = IGNORE
    weights = rng.uniform(0.5, 3.0, size=labels.shape)
    return logits, labels, weights


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _counts_by_hand(logits, labels, weights):
    """Soft TP, FP, FN per example and class, (B, K) each, ignored pixels left out."""
    k = logits.shape[-1]
    valid = labels != IGNORE
    p = _softmax(logits).reshape(len(labels), -1, k)
    g = np.eye(k)[np.where(valid, labels, 0)].reshape(p.shape)
    w = (weights * valid).reshape(len(labels), -1, 1)
    return (w * p * g).sum(1), (w * p * (1 - g)).sum(1), (w * (1 - p) * g).sum(1)


def _dice_by_hand(logits, labels, weights, smooth):
    tp, fp, fn = _counts_by_hand(logits, labels, weights)
    return 1 - ((2 * tp + smooth) / (2 * tp + fp + fn + smooth)).mean(axis=1)


def _tversky_by_hand(logits, labels, weights, smooth, alpha, beta):
    tp, fp, fn = _counts_by_hand(logits, labels, weights)
    return 1 - ((tp + smooth) / (tp + alpha * fp + beta * fn + smooth)).mean(axis=1)


def _pixel_ce_by_hand(logits, labels):
    p = _softmax(logits)
    safe = np.where(labels == IGNORE, 0, labels)
    return -np.log(np.take_along_axis(p, safe[..., None], axis=-1)[..., 0])


@pytest.mark.parametrize("smooth", [0.0, 1.0])
def test_dice_matches_the_numpy_formula_with_weights_and_ignored_pixels(smooth):
    logits, labels, weights = _case()
    loss = losses.DiceLoss(smooth=smooth, from_logits=True, ignore_label=IGNORE, reduction=None)
    np.testing.assert_allclose(
        loss(labels, logits, sample_weight=weights).numpy(), _dice_by_hand(logits, labels, weights, smooth), rtol=RTOL
    )
    mean = losses.DiceLoss(smooth=smooth, from_logits=True, ignore_label=IGNORE)
    assert float(mean(labels, logits, sample_weight=weights)) == pytest.approx(
        _dice_by_hand(logits, labels, weights, smooth).mean(), rel=RTOL
    )


def test_dice_on_probabilities_equals_dice_on_logits():
    logits, labels, weights = _case(1)
    from_logits = losses.DiceLoss(from_logits=True, ignore_label=IGNORE)(labels, logits, sample_weight=weights)
    probabilities = tf.nn.softmax(tf.constant(logits, tf.float32))
    direct = losses.DiceLoss(ignore_label=IGNORE)(labels[..., None], probabilities, sample_weight=weights)
    assert float(direct) == pytest.approx(float(from_logits), rel=1e-4)


@pytest.mark.parametrize(("alpha", "beta"), [(0.3, 0.7), (0.5, 0.5), (0.9, 0.1)])
def test_tversky_matches_the_numpy_formula(alpha, beta):
    logits, labels, weights = _case(2)
    loss = losses.TverskyLoss(alpha=alpha, beta=beta, from_logits=True, ignore_label=IGNORE, reduction=None)
    np.testing.assert_allclose(
        loss(labels, logits, sample_weight=weights).numpy(),
        _tversky_by_hand(logits, labels, weights, 1.0, alpha, beta),
        rtol=RTOL,
    )


def test_tversky_with_equal_halves_is_dice_without_smoothing():
    logits, labels, _ = _case(3)
    dice = losses.DiceLoss(smooth=0.0, from_logits=True, ignore_label=IGNORE)(labels, logits)
    tversky = losses.TverskyLoss(alpha=0.5, beta=0.5, smooth=0.0, from_logits=True, ignore_label=IGNORE)
    assert float(tversky(labels, logits)) == pytest.approx(float(dice), rel=RTOL)


def test_cross_entropy_dice_is_the_weighted_pixel_mean_plus_dice():
    logits, labels, weights = _case(4)
    loss = losses.CrossEntropyDiceLoss(dice_weight=0.5, from_logits=True, ignore_label=IGNORE, reduction=None)
    w = weights * (labels != IGNORE)
    cross_entropy = (w * _pixel_ce_by_hand(logits, labels)).reshape(len(labels), -1).mean(axis=1)
    expected = cross_entropy + 0.5 * _dice_by_hand(logits, labels, weights, 1.0)
    np.testing.assert_allclose(loss(labels, logits, sample_weight=weights).numpy(), expected, rtol=RTOL)


def test_dense_focal_gives_both_reductions_of_a_weight_map():
    logits, labels, weights = _case(5)
    p = _softmax(logits)
    safe = np.where(labels == IGNORE, 0, labels)
    py = np.take_along_axis(p, safe[..., None], axis=-1)[..., 0]
    pixel = np.where(labels == IGNORE, 0.0, -((1 - py) ** 2) * np.log(py))
    w = np.where(labels == IGNORE, 0.0, weights)
    per_pixels = losses.DenseFocalLoss(gamma=2.0, from_logits=True, ignore_label=IGNORE)
    per_weight = losses.DenseFocalLoss(
        gamma=2.0, from_logits=True, ignore_label=IGNORE, reduction="mean_with_sample_weight"
    )
    assert float(per_pixels(labels, logits, sample_weight=w)) == pytest.approx((w * pixel).sum() / w.size, rel=RTOL)
    assert float(per_weight(labels, logits, sample_weight=w)) == pytest.approx((w * pixel).sum() / w.sum(), rel=RTOL)


def test_labelwise_cross_entropy_weights_each_label():
    rng = np.random.default_rng(6)
    y = (rng.uniform(size=(5, 4)) < 0.3).astype(np.float32)
    p = rng.uniform(0.05, 0.95, size=(5, 4)).astype(np.float32)
    w = np.where(y > 0, np.array([1.0, 4.0, 9.0, 2.0]), 1.0)
    per_label = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    value = losses.LabelwiseBinaryCrossentropy()(y, p, sample_weight=w)
    assert float(value) == pytest.approx((w * per_label).mean(), rel=1e-4)


@pytest.mark.parametrize(
    "loss",
    [
        losses.DiceLoss(from_logits=True, ignore_label=IGNORE),
        losses.TverskyLoss(from_logits=True, ignore_label=IGNORE),
        losses.CrossEntropyDiceLoss(from_logits=True, ignore_label=IGNORE),
        losses.DenseFocalLoss(from_logits=True, ignore_label=IGNORE),
    ],
    ids=lambda loss: type(loss).__name__,
)
def test_gradients_are_finite_also_for_an_absent_class(loss):
    logits, labels, weights = _case(7)
    labels[1] = 0  # an example holding only the background: classes 1 and 2 absent
    z = tf.Variable(tf.constant(logits, tf.float32))
    with tf.GradientTape() as tape:
        value = loss(labels, z, sample_weight=weights)
    gradient = tape.gradient(value, z).numpy()
    assert np.isfinite(gradient).all() and np.abs(gradient).sum() > 0
    np.testing.assert_array_equal(gradient[0, 0, :2], 0.0)  # ignored pixels pull nothing


@pytest.mark.parametrize(
    "loss",
    [
        losses.DiceLoss(smooth=0.5, ignore_label=255),
        losses.TverskyLoss(alpha=0.2, beta=0.8),
        losses.CrossEntropyDiceLoss(dice_weight=2.0, from_logits=True),
        losses.DenseFocalLoss(gamma=1.0, alpha=[1.0, 3.0], ignore_label=255),
        losses.LabelwiseBinaryCrossentropy(from_logits=True),
    ],
    ids=lambda loss: type(loss).__name__,
)
def test_losses_survive_a_serialisation_round_trip(loss):
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(again) is type(loss) and again.get_config() == loss.get_config()


def test_overlap_losses_refuse_a_pixel_reduction():
    with pytest.raises(UserInputError, match="Received: reduction='mean_with_sample_weight'"):
        losses.DiceLoss(reduction="mean_with_sample_weight")


def test_a_model_fits_with_a_weight_map_and_keras_applies_it():
    logits, labels, weights = _case(8)
    labels = np.where(labels == IGNORE, 0, labels)
    inputs = keras.Input(shape=(4, 4, 3))
    model = keras.Model(inputs, keras.layers.Activation("softmax")(keras.layers.Conv2D(3, 1)(inputs)))
    loss = losses.DiceLoss()
    model.compile(optimizer="sgd", loss=loss)
    x = logits.astype(np.float32)
    expected = float(loss(labels, model(x), sample_weight=weights))
    assert model.evaluate(x, labels, sample_weight=weights, verbose=0) == pytest.approx(expected, rel=1e-4)
    history = model.fit(x, labels, sample_weight=weights, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
