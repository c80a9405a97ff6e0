"""The initial output bias minimises the expected initial loss over each strategy's real batches.

Checked independently: at the bias found, the mean gradient of the loss with respect to the bias over fresh
batches of the strategy's pipeline (another seed) is zero within 4 standard errors, for every registered strategy,
every weight reduction it declares and K = 2 and 3.
"""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from imbal_keras import models, strategies
from imbal_keras.training import initialization

LABELS = {
    2: np.repeat([0, 1], [594, 6]).astype(np.int32),  # 1:99
    3: np.repeat([0, 1, 2], [300, 60, 12]).astype(np.int32),
}
BATCH = 16


def _cases():
    for name, k in itertools.product(strategies.names("tabular"), (2, 3)):
        reductions = {p.name: p for p in strategies.get(name).params}.get("weight_reduction")
        for reduction in reductions.choices if reductions else (None,):
            yield pytest.param(name, k, reduction, id=f"{name}-K{k}-{reduction or 'plain'}")


def _ctx(k, reduction, seed):
    params = {} if reduction is None else {"weight_reduction": reduction}
    labels = LABELS[k]
    return strategies.StrategyContext(
        class_counts=np.bincount(labels), target_distribution=np.full(k, 1 / k), batch_size=BATCH, seed=seed,
        params=params, total_steps=100_000,  # schedules: the batches drawn here are the initial ones
    )  # fmt: skip


@pytest.mark.parametrize("name, k, reduction", _cases())
def test_expected_bias_gradient_is_zero_at_the_initial_bias(name, k, reduction):
    strategy = strategies.get(name)
    bias = initialization.initial_output_bias(strategy, _ctx(k, reduction, seed=0), LABELS[k], num_batches=128)
    fresh = _ctx(k, reduction, seed=12345)
    y, w = initialization.draw_batches(strategy, fresh, LABELS[k], 400)
    losses = initialization.batch_losses_fn(strategy, fresh)
    # One bias row per batch: the gradient of the summed losses is every batch's own gradient.
    b = tf.Variable(np.tile(bias.astype(np.float32), (len(y), 1)))
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(losses(b, tf.constant(y, tf.float32), tf.constant(w)))
    gradients = tape.gradient(total, b).numpy()  # (batches, len(bias))
    mean, se = gradients.mean(axis=0), gradients.std(axis=0, ddof=1) / np.sqrt(len(gradients))
    assert np.all(np.abs(mean) <= 4 * se + 2e-4), (mean, se)


def test_mean_with_sample_weight_at_1_to_99_starts_far_below_the_weighted_prior():
    ctx = _ctx(2, "mean_with_sample_weight", seed=0)
    bias = initialization.initial_output_bias("class_weight", ctx, LABELS[2])
    probability = 1 / (1 + np.exp(-bias[0]))
    # Batches of 16 at 1:99 hold no positive 85% of the time, and those weigh only negatives.
    assert 0.08 < probability < 0.2
    closed = initialization.initial_output_bias("class_weight", _ctx(2, "sum_over_batch_size", seed=0), LABELS[2])
    np.testing.assert_allclose(closed, models.output_bias([0.5, 0.5]), atol=1e-12)
