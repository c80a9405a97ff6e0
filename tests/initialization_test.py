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


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("reduction", ["mean_with_sample_weight", "sum_over_batch_size", "sum"])
def test_cross_entropy_minimiser_matches_a_numeric_minimisation(k, reduction):
    """The closed form against scipy's L-BFGS-B on the mean cross-entropy of a constant prediction over the same
    drawn batches, written here in float64; and the compiled loss's mean gradient there is zero."""
    from scipy import optimize, special

    strategy = strategies.get("class_weight")
    ctx = _ctx(k, reduction, seed=3)
    y, w = initialization.draw_batches(strategy, ctx, LABELS[k], 256)
    closed = initialization.cross_entropy_minimiser(strategy, ctx, y, w)
    onehot = np.eye(k)[y.astype(int)]  # (n, B, k)
    scale = {"mean_with_sample_weight": w.sum(axis=1, keepdims=True), "sum": 1.0}.get(reduction, y.shape[1])

    def objective(b):
        logits = np.concatenate([[0.0], b]) if k == 2 else b
        per_example = -(onehot * special.log_softmax(logits)).sum(axis=-1)
        return float(np.mean((w * per_example / scale).sum(axis=1)))

    found = optimize.minimize(objective, np.zeros(1 if k == 2 else k), method="BFGS", options={"gtol": 1e-10}).x
    found = found if k == 2 else found - found.mean()
    np.testing.assert_allclose(closed, found, atol=1e-5)
    losses = initialization.batch_losses_fn(strategy, ctx)
    b = tf.constant(closed.astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(b)
        mean = tf.reduce_mean(losses(b, tf.constant(y, tf.float32), tf.constant(w, tf.float32)))
    np.testing.assert_allclose(tape.gradient(mean, b).numpy(), 0.0, atol=1e-5)


def test_cross_entropy_minimiser_declines_other_losses_and_missing_classes():
    ctx = _ctx(2, None, seed=0)
    y, w = initialization.draw_batches(strategies.get("focal"), ctx, LABELS[2], 16)
    assert initialization.cross_entropy_minimiser(strategies.get("focal"), ctx, y, w) is None
    negatives = np.zeros((4, BATCH))  # no positive drawn: the minimiser is clipped, left to L-BFGS-B
    weights = np.ones_like(negatives)
    assert initialization.cross_entropy_minimiser(strategies.get("none"), ctx, negatives, weights) is None
