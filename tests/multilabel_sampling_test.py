"""Multi-label targets: positive weights, label weight maps, repeat-factor and rarest-label sampling against their
formulas, and iterative stratification's per-label proportions against the whole set's."""

import numpy as np
import pytest

from imbal_keras.data import dense, dense_shares, iterative_stratification
from imbal_keras.errors import UserInputError

RATES = np.array([0.4, 0.15, 0.05, 0.02])


def _labels(n: int = 400, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y = (rng.uniform(size=(n, len(RATES))) < RATES).astype(np.int32)
    y[:3, -1] = 1  # the rarest label has at least a few positives
    return y


def test_positive_weights_are_negatives_over_positives():
    y = _labels()
    positives = y.sum(axis=0)
    np.testing.assert_allclose(dense_shares.positive_weights(y), (len(y) - positives) / positives)
    np.testing.assert_allclose(
        dense_shares.positive_weights(y, method="inverse_sqrt"), np.sqrt((len(y) - positives) / positives)
    )


def test_label_weight_maps_match_numpy():
    y = _labels(40)
    x = np.arange(len(y), dtype=np.float32)
    weights = np.array([1.5, 3.0, 10.0, 20.0])
    for xb, yb, wb in dense.label_weighted(x, y, batch_size=8, seed=1, positive_weights=weights).take(10):
        rows = y[xb.numpy().astype(int)]
        np.testing.assert_array_equal(yb.numpy(), rows)
        np.testing.assert_allclose(wb.numpy(), np.where(rows > 0, weights, 1.0))


def test_repeat_factor_sampling_draws_each_example_as_often_as_its_factor():
    y = _labels(200)
    x = np.arange(len(y), dtype=np.float32)
    factors = dense_shares.repeat_factors(y, threshold=0.2)
    stream = dense.repeat_factor_sampled(x, y, batch_size=20, seed=3, contains=y, threshold=0.2)
    drawn = np.concatenate([xb.numpy().astype(int) for xb, _ in stream.take(400)])
    share = factors / factors.sum()
    # Examples holding the rarest label: their pooled count is a sum of stochastic roundings, so within binomial
    # bounds of its expectation.
    rare = y[:, -1] > 0
    count, p = int(rare[drawn].sum()), share[rare].sum()
    assert abs(count - len(drawn) * p) <= 4 * np.sqrt(len(drawn) * p * (1 - p)), (count, len(drawn) * p)
    assert factors[rare].min() == pytest.approx(np.sqrt(0.2 / y[:, -1].mean()))


def test_repeat_factor_sampling_returns_each_example_with_its_labels():
    y = _labels(50)
    x = np.arange(len(y), dtype=np.float32)
    xb, yb = next(iter(dense.repeat_factor_sampled(x, y, batch_size=16, seed=0, contains=y)))
    np.testing.assert_array_equal(yb.numpy(), y[xb.numpy().astype(int)])


def test_rarest_label_upsampling_evens_out_the_groups():
    y = _labels(300, seed=2)
    x = np.arange(len(y), dtype=np.float32)
    groups = dense_shares.rarest_present(y)
    present = np.unique(groups)
    stream = dense.presence_resampled(x, y, batch_size=30, seed=4, contains=y, method="stratified")
    drawn = groups[np.concatenate([xb.numpy().astype(int) for xb, _ in stream.take(50)])]
    counts = np.bincount(drawn, minlength=len(RATES) + 1)[present]
    np.testing.assert_array_equal(counts, [len(drawn) // len(present)] * len(present))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_iterative_stratification_keeps_every_labels_share_in_every_subset(seed):
    y = _labels(600, seed=seed)
    fractions = [0.6, 0.2, 0.2]
    parts = iterative_stratification(y, fractions, seed=seed)
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.arange(len(y)))  # a partition
    positives = y.sum(axis=0)
    for part, r in zip(parts, fractions, strict=True):
        assert abs(len(part) - r * len(y)) <= 2
        # Sechidis et al.'s procedure deals each label's positives by the subsets' remaining demand: every
        # subset holds its share of every label's positives to within about one example.
        assert np.all(np.abs(y[part].sum(axis=0) - r * positives) <= 1.5), (y[part].sum(axis=0), r * positives)


def test_iterative_stratification_beats_a_random_split_on_the_rare_label():
    y = _labels(600, seed=5)
    parts = iterative_stratification(y, [0.8, 0.2], seed=5)
    rng = np.random.default_rng(5)
    # Over many random splits the test subset's count of the rarest label strays; the stratified one does not.
    random_errors = [abs(y[rng.permutation(len(y))[:120], -1].sum() - 0.2 * y[:, -1].sum()) for _ in range(200)]
    stratified_error = abs(y[parts[1], -1].sum() - 0.2 * y[:, -1].sum())
    assert stratified_error <= 1 < np.mean(random_errors)


def test_iterative_stratification_refuses_fractions_that_do_not_sum_to_one():
    with pytest.raises(UserInputError, match=r"fractions must be non-negative and sum to 1. Received: fractions="):
        iterative_stratification(_labels(10), [0.5, 0.4])


def test_multilabel_weights_refuse_non_binary_labels():
    with pytest.raises(UserInputError, match=r"labels must be a non-empty \(N, L\) array of 0 and 1"):
        dense_shares.positive_weights(np.array([[0, 2]]))
