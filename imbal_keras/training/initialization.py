"""Where the output bias starts: the minimiser of the expected initial loss over the strategy's real batches.

With a zero output kernel the model first predicts the same probabilities for every example, set by the output
bias b alone. The best such constant depends on how the strategy forms batches and reduces the loss:

- when the expected loss is linear in the per-class losses (no loss weights, or weights reduced by
  `sum_over_batch_size`, with the cross-entropy) the minimiser is the log-odds of the training distribution
  pi_c proportional to (class share of the stream) x (class weight): `models.output_bias(pi)`;
- with `mean_with_sample_weight` (sum w l / sum w) a batch's loss is a ratio, and E[ratio] is not linear: at 1:99
  and batch 16 most batches hold no positive and weigh only negatives, so the best constant is far below the
  weighted prior (about 0.13 against 0.5); strategies with losses of their own (focal, LDAM, ...) have other
  minimisers still.

`initial_output_bias` finds the minimiser numerically in the non-linear cases: it draws batches of labels (and
weights) from the strategy's own pipeline and minimises the mean of the loss the model is compiled with over
the constant prediction. It is exact up to the sampling of batches, which a test bounds: at the bias found, the
mean bias gradient over fresh batches is zero within its standard error.
"""

from __future__ import annotations

import numpy as np

from imbal_keras import strategies

__all__ = ["DEFAULT_NUM_BATCHES", "batch_losses_fn", "draw_batches", "initial_output_bias", "is_closed_form"]

DEFAULT_NUM_BATCHES = 512


def is_closed_form(strategy: strategies.Strategy, ctx: strategies.StrategyContext) -> bool:
    """Whether the expected initial loss is linear in the per-class losses (so the prior's log-odds minimise it).

    A schedule (no single `batch_sampling`) trains on another distribution at first than on average, so its
    initial batches are drawn and minimised over too.
    """
    if strategy.loss is not None or strategy.batch_sampling is None:
        return False
    return not strategy.uses_sample_weights or ctx.params.get("weight_reduction") != "mean_with_sample_weight"


def initial_output_bias(
    strategy: strategies.Strategy | str,
    ctx: strategies.StrategyContext,
    labels: np.ndarray,
    *,
    num_batches: int = DEFAULT_NUM_BATCHES,
) -> np.ndarray:
    """The output bias that minimises the expected loss of a constant prediction over the strategy's batches.

    Args:
      strategy: the strategy (or its name).
      ctx: its context for the run (class counts, batch size, seed, parameters).
      labels: the training labels, shape (N,).
      num_batches: batches drawn from the strategy's pipeline when there is no closed form.

    Returns:
      Shape (1,) for two classes (the sigmoid's logit), (K,) for K classes (softmax logits, centred to mean 0
      where numeric; the closed form is log pi).
    """
    from imbal_keras import models

    strategy = strategies.get(strategy) if isinstance(strategy, str) else strategy
    if is_closed_form(strategy, ctx):
        return models.output_bias(strategy.training_distribution(ctx))
    return _numeric_bias(strategy, ctx, np.asarray(labels), num_batches)


def batch_losses_fn(strategy: strategies.Strategy, ctx: strategies.StrategyContext):
    """`(bias, y (N, B), w (N, B)) -> (N,)` losses of a constant prediction, one per batch, as the model reduces them.

    `bias` is (units,) or one row per batch (N, units), so that one backward pass gives every batch's gradient.
    The strategy's loss computes the per-example values (its reduction switched off); each batch is then reduced
    as the loss's own reduction does (`sum_over_batch_size`/`mean`: / B, `mean_with_sample_weight`: / sum w,
    `sum`: the sum). The tests take its gradient over fresh batches.
    """
    import tensorflow as tf

    loss = strategies.build_loss(strategy, ctx)
    reduction = loss.reduction
    per_example = type(loss).from_config({**loss.get_config(), "reduction": None})
    binary = ctx.num_classes == 2

    def losses(bias, y, w):
        n, batch = tf.shape(y)[0], tf.shape(y)[1]
        units = tf.shape(bias)[-1]
        logits = tf.broadcast_to(tf.reshape(bias, [-1, 1, units]), tf.stack([n, batch, units]))
        probabilities = tf.sigmoid(logits) if binary else tf.nn.softmax(logits)
        flat = per_example(
            tf.reshape(y, [-1]), tf.reshape(probabilities, tf.stack([-1, units])), sample_weight=tf.reshape(w, [-1])
        )
        total = tf.reduce_sum(tf.reshape(flat, tf.stack([n, batch])), axis=1)
        if reduction == "mean_with_sample_weight":
            return total / tf.reduce_sum(w, axis=1)
        if reduction == "sum":
            return total
        return total / tf.cast(batch, total.dtype)

    return losses


def draw_batches(
    strategy: strategies.Strategy, ctx: strategies.StrategyContext, labels: np.ndarray, num_batches: int
) -> tuple[np.ndarray, np.ndarray]:
    """Labels and weights of `num_batches` batches of the strategy's pipeline, each (num_batches, B)."""
    placeholder = np.zeros((len(labels), 1), np.float32)  # only labels and weights matter here
    stream = strategies.build_pipeline(strategy, placeholder, labels.astype(np.int32), ctx)
    # The first num_batches batches in one read: (num_batches, B) labels and weights.
    batch = next(iter(stream.take(num_batches).batch(num_batches)))
    y = batch[1].numpy()
    w = batch[2].numpy() if len(batch) > 2 else np.ones_like(y, np.float32)
    return y, w.astype(np.float32)


def _numeric_bias(strategy, ctx, labels, num_batches) -> np.ndarray:
    import tensorflow as tf
    from scipy import optimize

    from imbal_keras import models

    y, w = draw_batches(strategy, ctx, labels, num_batches)
    y = tf.constant(y.astype(np.float32))
    w = tf.constant(w)
    value_and_gradient = _objective(strategy, ctx)

    def objective(b):
        value, gradient = value_and_gradient(tf.constant(b, tf.float32), y, w)
        return float(value), gradient.numpy().astype(np.float64)

    start = models.output_bias(strategy.training_distribution(ctx))
    # The loss of a constant prediction is convex in its logits: L-BFGS finds the one minimum.
    result = optimize.minimize(objective, start, jac=True, method="L-BFGS-B", options={"gtol": 1e-7, "maxiter": 200})
    bias = result.x
    return bias if len(bias) == 1 else bias - bias.mean()


# Traced objectives by everything but the seed: the runs of a grid that differ only in their seeds share one.
_OBJECTIVES: dict[str, object] = {}


def _objective(strategy, ctx):
    """`(bias, y, w) -> (mean loss over the batches, its gradient)`, traced once per strategy and context."""
    import dataclasses

    import tensorflow as tf

    key = f"{strategy.name}|{dataclasses.replace(ctx, seed=0)!r}"
    function = _OBJECTIVES.get(key)
    if function is None:
        losses = batch_losses_fn(strategy, ctx)

        @tf.function(reduce_retracing=True)
        def function(bias, y, w):
            with tf.GradientTape() as tape:
                tape.watch(bias)
                mean = tf.reduce_mean(losses(bias, y, w))
            return mean, tape.gradient(mean, bias)

        if len(_OBJECTIVES) >= 32:
            _OBJECTIVES.clear()
        _OBJECTIVES[key] = function
    return function
