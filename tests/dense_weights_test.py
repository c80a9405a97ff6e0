"""Dense targets: pixel counts, class weights and weight maps against numpy; presence and repeat factors by hand."""

import numpy as np
import pytest

from imbal_keras.data import dense, dense_shares
from imbal_keras.errors import UserInputError

IGNORE = 255


def _masks(seed: int = 0, n: int = 24, size: int = 8) -> np.ndarray:
    rng = np.random.default_rng(seed)
    masks = rng.choice(3, size=(n, size, size), p=[0.9, 0.08, 0.02]).astype(np.int32)
    masks[0, 0, :3] = IGNORE
    return masks


def test_pixel_counts_leave_the_ignore_label_out():
    masks = _masks()
    valid = masks[masks != IGNORE]
    expected = [np.sum(valid == c) for c in range(3)]
    np.testing.assert_array_equal(dense_shares.pixel_counts(masks, 3, ignore_label=IGNORE), expected)


@pytest.mark.parametrize(
    ("method", "raw"),
    [
        ("inverse", lambda n: 1 / n),
        ("inverse_sqrt", lambda n: 1 / np.sqrt(n)),
        ("effective_number", lambda n: (1 - 0.99) / (1 - 0.99**n)),
    ],
)
def test_frequency_weights_follow_their_formula_with_mean_one_over_pixels(method, raw):
    counts = np.array([900.0, 80.0, 20.0])
    weights = dense_shares.frequency_weights(counts, method=method, beta=0.99)
    expected = raw(counts) * counts.sum() / (raw(counts) @ counts)
    np.testing.assert_allclose(weights, expected, rtol=1e-12)
    assert weights @ counts == pytest.approx(counts.sum())


def test_inverse_weights_give_every_class_the_same_mass_and_an_empty_class_zero():
    weights = dense_shares.frequency_weights([900, 100, 0])
    assert weights[2] == 0
    assert weights[0] * 900 == pytest.approx(weights[1] * 100)


def test_frequency_weights_refuse_an_unknown_method():
    with pytest.raises(UserInputError, match="method must be one of .*Received: method='log'"):
        dense_shares.frequency_weights([1, 2], method="log")


@pytest.mark.parametrize("ignore_label", [IGNORE, None])
def test_weight_map_batches_match_numpy_and_zero_the_ignore_label(ignore_label):
    masks = _masks() if ignore_label is not None else np.where(_masks() == IGNORE, 2, _masks())
    x = np.arange(len(masks), dtype=np.float32)  # the feature names the example
    weights = np.array([0.5, 2.0, 7.0])
    stream = dense.weighted(x, masks[..., None], batch_size=6, seed=3, class_weights=weights, ignore_label=ignore_label)
    for xb, yb, wb in stream.take(8):
        original = masks[xb.numpy().astype(int)]
        valid = original != IGNORE
        np.testing.assert_array_equal(yb.numpy(), np.where(valid, original, 0))
        np.testing.assert_allclose(wb.numpy(), np.where(valid, weights[np.where(valid, original, 0)], 0.0))


def test_weighted_stream_is_a_function_of_the_seed():
    masks = _masks()
    x = np.arange(len(masks), dtype=np.float32)

    def first(seed):
        return np.concatenate(
            [
                b[0].numpy()
                for b in dense.weighted(
                    x, masks, batch_size=4, seed=seed, class_weights=[1, 1, 1], ignore_label=IGNORE
                ).take(6)
            ]
        )

    np.testing.assert_array_equal(first(1), first(1))
    assert not np.array_equal(first(1), first(2))


def test_presence_and_rarest_present_by_hand():
    masks = np.array([[[0, 1], [0, 0]], [[0, 2], [1, 0]], [[0, 0], [0, 0]], [[IGNORE, 1], [1, 1]]], np.int32)
    contains = dense_shares.presence(masks, 3, ignore_label=IGNORE)
    np.testing.assert_array_equal(contains, [[1, 1, 0], [1, 1, 1], [1, 0, 0], [0, 1, 0]])
    # Examples containing each class: 3, 3, 1, so class 2 is rarest, then 0 and 1 tie (lower id first).
    np.testing.assert_array_equal(dense_shares.rarest_present(contains), [0, 2, 0, 1])


def test_repeat_factors_are_lvis_formula():
    contains = np.array([[1, 0], [1, 0], [1, 0], [1, 1], [0, 0]], bool)
    # f = (0.8, 0.2); t = 0.5: r = (1, sqrt(2.5)); example 3 holds class 1; example 4 holds nothing.
    np.testing.assert_allclose(
        dense_shares.repeat_factors(contains, threshold=0.5), [1, 1, 1, np.sqrt(2.5), 1], rtol=1e-12
    )


def test_class_ids_outside_the_classes_are_one_error_line():
    with pytest.raises(UserInputError, match="targets must be class ids 0..2 or the ignore label None"):
        dense_shares.pixel_counts(np.array([[0, 5]]), 3)
