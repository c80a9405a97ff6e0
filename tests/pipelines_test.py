"""In-memory pipelines: exact counts, the replica count matrix and unreachable classes (beyond the contract suite)."""

import numpy as np
import pytest

from imbal_keras import pipelines
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
    dealt = pipelines.deal_counts(counts, replicas)
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
    np.testing.assert_allclose(pipelines.acceptance_probabilities([190, 10], [0.5, 0.5]), [10 / 190, 1.0])
    rows = np.concatenate([b[0][:, 0] for b in _take(pipelines.rejection(x, y, batch_size=10, seed=1), 300)])
    positives = rows[rows >= 190]
    # 3000 kept rows, about half positives; every positive appears about equally often (once per pass).
    per_example = np.bincount(positives.astype(int) - 190, minlength=10)
    assert per_example.max() - per_example.min() <= 1
    assert abs(len(positives) / len(rows) - 0.5) < 3 * np.sqrt(0.25 / len(rows)) + 0.02
