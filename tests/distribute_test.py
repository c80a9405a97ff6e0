"""MirroredStrategy over 2 logical CPU devices (tests/conftest.py): global batch composition and replica seeds."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

import imbal_keras.strategies.long_tail  # noqa: F401  (registers the class-aware samplers)
from imbal_keras import strategies
from imbal_keras.errors import UserInputError
from imbal_keras.strategies import distribute

NUM_NEG, NUM_POS = 190, 10


@pytest.fixture(scope="module")
def mirrored():
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


def _arrays():
    y = np.r_[np.zeros(NUM_NEG, np.int64), np.ones(NUM_POS, np.int64)]
    x = np.c_[np.arange(len(y)), np.ones(len(y))].astype(np.float32)
    return x, y


def _ctx(batch_size=6, seed=1):
    return strategies.StrategyContext(
        class_counts=np.array([NUM_NEG, NUM_POS]),
        target_distribution=np.array([0.5, 0.5]),
        batch_size=batch_size,
        seed=seed,
        shuffle_buffer=64,
    )


def _steps(mirrored, dist_ds, n):
    """Per-step lists of per-replica (x, y) numpy batches."""
    steps = []
    for _, batch in zip(range(n), dist_ds, strict=False):
        xs, ys = (mirrored.experimental_local_results(t) for t in batch)
        steps.append([(x.numpy(), y.numpy()) for x, y in zip(xs, ys, strict=True)])
    return steps


def _stream_fn(input_context):
    return tf.data.Dataset.from_tensor_slices(_arrays()).shard(
        input_context.num_input_pipelines, input_context.input_pipeline_id
    )


@pytest.mark.parametrize("form", ["in_memory", "streaming"])
def test_stratified_global_batch_keeps_exact_counts(mirrored, form):
    # Global batch 6 at 50/50 is 3 + 3; a per-replica batch of 3 alone would round to 2 + 1 on both replicas.
    if form == "in_memory":
        dist = distribute.distribute_pipeline(mirrored, "stratified", *_arrays(), _ctx())
    else:
        dist = distribute.distribute_stream(mirrored, "stratified", _stream_fn, _ctx())
    steps = _steps(mirrored, dist, 10)
    for step in steps:
        assert [len(y) for _, y in step] == [3, 3]
        assert [int(y.sum()) for _, y in step] == [1, 2]  # deal_counts([3, 3], 2) positives per replica
        labels = np.concatenate([y for _, y in step])
        assert labels.sum() == 3
        rows = np.concatenate([x[:, 0] for x, _ in step]).astype(int)
        np.testing.assert_array_equal(_arrays()[1][rows], labels)


def test_upsample_global_share_within_binomial_bounds(mirrored):
    dist = distribute.distribute_pipeline(mirrored, "upsample", *_arrays(), _ctx(batch_size=20))
    labels = np.concatenate([y for step in _steps(mirrored, dist, 30) for _, y in step])
    assert len(labels) == 600
    assert abs(labels.mean() - 0.5) < 4 * np.sqrt(0.25 / 600)


def test_replicas_draw_different_rows_and_the_seed_repeats(mirrored):
    first, again = (
        _steps(mirrored, distribute.distribute_pipeline(mirrored, "none", *_arrays(), _ctx()), 5) for _ in "ab"
    )
    for a, b in zip(first, again, strict=True):
        for (xa, _), (xb, _) in zip(a, b, strict=True):
            np.testing.assert_array_equal(xa, xb)
    assert not np.array_equal(first[0][0][0], first[0][1][0])


def test_replica_seeds_are_distinct_and_stable():
    seeds = [distribute.replica_seed(0, i) for i in range(4)] + [distribute.replica_seed(1, 0)]
    assert len(set(seeds)) == 5
    assert distribute.replica_seed(0, 1) == distribute.replica_seed(0, 1)


def test_global_batch_must_split_over_replicas(mirrored):
    with pytest.raises(UserInputError, match=r"multiple of the 2 replicas. Received: batch_size=7"):
        distribute.distribute_pipeline(mirrored, "none", *_arrays(), _ctx(batch_size=7))


def test_progressive_schedule_follows_the_global_step(mirrored):
    # Global batch 256 (128 per replica), schedule over 2 steps: step 0 is natural (5% positives) on both
    # replicas; a schedule counted in per-replica batches would put the second replica at 27.5% already.
    ctx = dataclasses.replace(_ctx(batch_size=256), total_steps=2)
    for form in ("in_memory", "streaming"):
        if form == "in_memory":
            dist = distribute.distribute_pipeline(mirrored, "progressive_sampling", *_arrays(), ctx)
        else:
            dist = distribute.distribute_stream(mirrored, "progressive_sampling", _stream_fn, ctx)
        steps = _steps(mirrored, dist, 6)
        shares = np.array([[y.mean() for _, y in step] for step in steps])
        bound = 4.5 * np.sqrt(0.05 * 0.95 / 128)
        assert (np.abs(shares[0] - 0.05) < bound).all(), (form, shares[0])
        assert (np.abs(shares[2:] - 0.5) < 4.5 * np.sqrt(0.25 / 128)).all(), (form, shares[2:])
        for step in steps:
            rows = np.concatenate([x[:, 0] for x, _ in step]).astype(int)
            np.testing.assert_array_equal(_arrays()[1][rows], np.concatenate([y for _, y in step]))


def test_sqrt_sampling_global_share_within_binomial_bounds(mirrored):
    expected = np.sqrt(NUM_POS) / (np.sqrt(NUM_POS) + np.sqrt(NUM_NEG))
    dist = distribute.distribute_pipeline(mirrored, "sqrt_sampling", *_arrays(), _ctx(batch_size=40))
    steps = _steps(mirrored, dist, 30)
    labels = np.concatenate([y for step in steps for _, y in step])
    assert len(labels) == 1200
    assert abs(labels.mean() - expected) < 4.5 * np.sqrt(expected * (1 - expected) / 1200)
