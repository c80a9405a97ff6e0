"""In-memory pipelines: exact counts, the replica count matrix and unreachable classes (beyond the contract suite)."""

import numpy as np
import pytest

from imbal_keras.data import pipelines
from imbal_keras.data.shares import (
    acceptance_probabilities,
    deal_counts,
    power_shares,
    progressive_shares,
    stratified_counts,
)
from imbal_keras.errors import UserInputError


def _data(num_neg=190, num_pos=10):
    y = np.r_[np.zeros(num_neg, np.int32), np.ones(num_pos, np.int32)]
    # Feature 0 is the row number, so a batch shows which rows it drew.
    x = np.c_[np.arange(len(y)), np.zeros(len(y))].astype(np.float32)
    return x, y


def _take(ds, n):
    return [tuple(t.numpy() for t in b) for b in ds.take(n)]


@pytest.mark.parametrize(
    ("counts", "replicas", "expected"),
    [
        ([3, 3], 2, [[2, 1], [1, 2]]),  # class-by-class layout dealt round robin
        ([15, 1], 2, [[8, 0], [7, 1]]),
        ([4, 4, 4], 3, [[2, 1, 1], [1, 2, 1], [1, 1, 2]]),
        ([5, 3], 1, [[5, 3]]),
    ],
)
def test_deal_counts_splits_a_global_batch_evenly(counts, replicas, expected):
    dealt = deal_counts(counts, replicas)
    np.testing.assert_array_equal(dealt, expected)
    np.testing.assert_array_equal(dealt.sum(axis=0), counts)


def test_stratified_with_a_count_matrix_cycles_its_rows():
    x, y = _data()
    per_batch = np.array([[7, 1], [5, 3]])
    batches = _take(pipelines.stratified(x, y, batch_size=8, seed=3, class_counts_per_batch=per_batch), 40)
    positives = [int(b[1].sum()) for b in batches]
    assert positives == [1, 3] * 20
    for bx, by in batches:  # rows are the labelled rows
        np.testing.assert_array_equal(y[bx[:, 0].astype(int)], by)


def test_stratified_count_matrix_must_sum_to_the_batch():
    x, y = _data()
    with pytest.raises(UserInputError, match=r"sum to batch_size=8. Received: class_counts_per_batch=\[\[7, 2\]\]"):
        pipelines.stratified(x, y, batch_size=8, seed=3, class_counts_per_batch=[[7, 2]])


def test_stratified_cycles_each_class_without_repeats_within_a_class_pass():
    x, y = _data()
    # 5 positives per batch and 10 positives: every two batches hold each positive exactly once.
    ds = pipelines.stratified(x, y, batch_size=8, seed=5, class_counts_per_batch=[[3, 5]])
    batches = _take(ds, 8)
    for pair in range(4):
        rows = np.concatenate([bx[by == 1, 0] for bx, by in batches[2 * pair : 2 * pair + 2]])
        assert sorted(rows.astype(int).tolist()) == list(range(190, 200))


@pytest.mark.parametrize(
    "builder", [pipelines.upsample, pipelines.downsample, pipelines.rejection, pipelines.stratified]
)
def test_target_on_an_absent_class_fails_naming_it(builder):
    x, y = _data()
    with pytest.raises(UserInputError, match=r"asks for class 2, which has no examples.*class_counts=\[190, 10, 0\]"):
        builder(x, y, batch_size=8, seed=0, target_distribution=[0.4, 0.4, 0.2])


@pytest.mark.parametrize(
    "builder", [pipelines.upsample, pipelines.downsample, pipelines.rejection, pipelines.stratified]
)
def test_zero_share_for_an_absent_class_is_fine(builder):
    x, y = _data()
    (batch,) = _take(builder(x, y, batch_size=8, seed=0, target_distribution=[0.5, 0.5, 0.0]), 1)
    assert set(batch[1].tolist()) <= {0, 1}


def test_all_zero_target_fails_instead_of_hanging():
    x, y = _data()
    with pytest.raises(UserInputError, match=r"no positive share. Received: target_distribution=\[0.0, 0.0\]"):
        pipelines.rejection(x, y, batch_size=8, seed=0, target_distribution=[0.0, 0.0])


def test_rejection_keeps_every_minority_example_once_per_pass():
    x, y = _data()
    # a_1 = 1: each pass keeps all 10 positives; a_0 = 10/190, so a pass keeps ~10 negatives: ~20 rows per pass.
    np.testing.assert_allclose(acceptance_probabilities([190, 10], [0.5, 0.5]), [10 / 190, 1.0])
    rows = np.concatenate([b[0][:, 0] for b in _take(pipelines.rejection(x, y, batch_size=10, seed=1), 300)])
    positives = rows[rows >= 190]
    # 3000 kept rows, about half positives; every positive appears about equally often (once per pass).
    per_example = np.bincount(positives.astype(int) - 190, minlength=10)
    assert per_example.max() - per_example.min() <= 1
    assert abs(len(positives) / len(rows) - 0.5) < 3 * np.sqrt(0.25 / len(rows)) + 0.02


def test_rejection_batches_are_less_spread_than_multinomial_as_documented():
    # 20 minority examples at 1:99 towards 50/50, batch 16: documented variance 3.34 (multinomial 4.00, the
    # within-pass hypergeometric 16/4 * 24/39 = 2.46). 4,000 batches: the variance's standard error is about 0.1.
    x, y = _data(num_neg=1980, num_pos=20)
    counts = np.array([b[1].sum() for b in _take(pipelines.rejection(x, y, batch_size=16, seed=0), 4000)])
    assert abs(counts.mean() - 8) < 4.5 * np.sqrt(4 / 4000)
    assert 2.46 + 0.4 < counts.var() < 4.0 - 0.25


@pytest.mark.parametrize(
    ("batch_size", "target", "expected"),
    [(7, [0.4, 0.3, 0.2, 0.1], [3, 2, 1, 1]), (10, [0.34, 0.33, 0.33], [4, 3, 3]), (2, [0.25, 0.75], [1, 1])],
)
def test_stratified_counts_are_the_largest_remainder_split(batch_size, target, expected):
    assert stratified_counts(batch_size, target).tolist() == expected


@pytest.mark.parametrize(
    ("q", "expected"),
    [(0.5, [10 / 17, 5 / 17, 2 / 17]), (0.0, [1 / 3] * 3), (1.0, [100 / 129, 25 / 129, 4 / 129])],
)
def test_power_shares_by_hand(q, expected):
    np.testing.assert_allclose(power_shares([100, 25, 4], q), expected)


def test_progressive_shares_by_hand():
    # (1 - t/T) n/N + (t/T)/K at n = [90, 10], T = 100; capped at t = T.
    shares = progressive_shares([90, 10], np.array([0, 50, 100, 200]), 100)
    np.testing.assert_allclose(shares, [[0.9, 0.1], [0.7, 0.3], [0.5, 0.5], [0.5, 0.5]])


LONG_TAIL_COUNTS = [300, 60, 12]


def _long_tail_data():
    y = np.repeat(np.arange(3), LONG_TAIL_COUNTS).astype(np.int32)
    x = np.c_[np.arange(len(y)), np.zeros(len(y))].astype(np.float32)
    return x, y


def _binomial_bound(p, n, sigmas=4.5):
    return sigmas * np.sqrt(p * (1 - p) / n)


def test_class_sampled_batches_are_multinomial_and_rows_are_their_own():
    from scipy import stats

    x, y = _long_tail_data()
    p = power_shares(LONG_TAIL_COUNTS, 0.5)
    ds = pipelines.class_sampled(x, y, batch_size=16, seed=2, shares=p)
    assert ds.element_spec[0].shape == (16, 2) and ds.element_spec[1].shape == (16,)
    batches = _take(ds, 1500)
    labels = np.stack([b[1] for b in batches])
    for bx, by in batches:
        np.testing.assert_array_equal(y[bx[:, 0].astype(int)], by)
    shares = np.bincount(labels.ravel(), minlength=3) / labels.size
    assert (np.abs(shares - p) < _binomial_bound(p, labels.size)).all()
    # The tail count per batch follows Binomial(16, p_2): chi-square over counts 0, 1, 2, 3+.
    tail = (labels == 2).sum(axis=1)
    pmf = stats.binom.pmf(np.arange(3), 16, p[2])
    expected = 1500 * np.r_[pmf, 1 - pmf.sum()]
    observed = np.bincount(np.minimum(tail, 3), minlength=4)
    assert stats.chisquare(observed, expected).pvalue > 1e-3
    # Within a class every example is drawn equally often (uniform, with replacement).
    rows = np.concatenate([b[0][b[1] == 2, 0] for b in batches]).astype(int) - 360
    per_row = np.bincount(rows, minlength=12)
    assert stats.chisquare(per_row).pvalue > 1e-3


def test_class_sampled_same_seed_same_batches():
    x, y = _long_tail_data()
    first, again, other = (
        _take(pipelines.class_sampled(x, y, batch_size=8, seed=s, shares=[1, 1, 1]), 30) for s in (5, 5, 6)
    )
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a[0], b[0])
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(first, other, strict=True))


@pytest.mark.parametrize("num_replicas", [1, 2])
def test_schedule_moves_at_exactly_the_global_step(num_replicas):
    # From all class 0 to all class 1 over 4 steps: step 0 is all 0, steps >= 4 all 1, steps 1-3 mixed.
    x, y = _long_tail_data()
    ds = pipelines.class_sampled(
        x, y, batch_size=64, seed=0, shares=[1, 0, 0], final_shares=[0, 1, 0], schedule_steps=4,
        num_replicas=num_replicas,
    )  # fmt: skip
    ones = np.array([b[1].mean() for b in _take(ds, 8 * num_replicas)]).reshape(8, num_replicas)
    assert (ones[0] == 0).all() and (ones[4:] == 1).all()
    for step in (1, 2, 3):
        assert (np.abs(ones[step] - step / 4) < _binomial_bound(step / 4, 64)).all()


def test_progressive_shares_at_start_middle_and_end_within_binomial_bounds():
    x, y = _long_tail_data()
    steps = 400
    ds = pipelines.class_sampled(
        x, y, batch_size=32, seed=4, shares=LONG_TAIL_COUNTS, final_shares=[1, 1, 1], schedule_steps=steps
    )
    labels = np.stack([b[1] for b in _take(ds, 500)])
    for start in (0, 180, 400):
        window = labels[start : start + 40]
        expected = progressive_shares(LONG_TAIL_COUNTS, np.arange(start, start + 40), steps).mean(axis=0)
        observed = np.bincount(window.ravel(), minlength=3) / window.size
        assert (np.abs(observed - expected) < _binomial_bound(expected, window.size)).all(), (start, observed)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"shares": [1, 1]}, r"^shares must be non-negative class probabilities, one per class \(3 in the labels\)"),
        ({"shares": [1, 0, 1, 1]}, r"^shares asks for class 3, which has no examples"),
        ({"shares": [1, 1, 1], "final_shares": [1, 1, 1]}, r"^schedule_steps must be an integer >= 1. Received: "),
        (
            {"shares": [1, 1, 1], "final_shares": [1, -1, 1], "schedule_steps": 3},
            r"^final_shares must be non-negative",
        ),
    ],
)
def test_class_sampled_bad_input(kwargs, message):
    x, y = _long_tail_data()
    with pytest.raises(UserInputError, match=message):
        pipelines.class_sampled(x, y, batch_size=8, seed=0, **kwargs)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: power_shares([10, 1], 1.5), r"^q must be in \[0, 1\]. Received: q=1.5$"),
        (lambda: power_shares([10, 1], -0.1), r"^q must be in \[0, 1\]. Received: q=-0.1$"),
        (lambda: power_shares([10, 0, 1], 0.5), r"^class_counts must be >= 1 for every class sampled by "
         r"class; class 1 has 0. Received: class_counts=\[10, 0, 1\]$"),
        (lambda: progressive_shares([10, 1], 3, 0), r"^total_steps must be an integer >= 1. "
         r"Received: total_steps=0$"),
    ],
)  # fmt: skip
def test_share_bad_input(call, message):
    with pytest.raises(UserInputError, match=message):
        call()
