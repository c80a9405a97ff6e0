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

In the non-linear cases `initial_output_bias` draws batches of labels (and weights) from the strategy's own
pipeline and minimises the mean of the loss the model is compiled with over the constant prediction: in closed
form for Keras' cross-entropy (`cross_entropy_minimiser`: the logits of each class's share of the batches'
normalised weights), numerically (L-BFGS-B) for the strategies' own losses. It is exact up to the sampling of
batches, which a test bounds: at the bias found, the mean bias gradient over fresh batches is zero within its
standard error.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import threading
from collections.abc import Sequence

import numpy as np

from imbal_keras import strategies

__all__ = [
    "DEFAULT_NUM_BATCHES",
    "batch_losses_fn",
    "cross_entropy_minimiser",
    "draw_batches",
    "initial_output_bias",
    "initial_output_biases",
    "is_closed_form",
]

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


def initial_output_biases(
    runs: Sequence[tuple[strategies.Strategy, strategies.StrategyContext, np.ndarray]],
    *,
    num_batches: int = DEFAULT_NUM_BATCHES,
    cache: dict | None = None,
) -> list[np.ndarray]:
    """`initial_output_bias` of several runs (a pack's), equal to it run by run. Runs with equal strategies,
    contexts (seeds included) and labels have one bias, found once; the runs of one strategy, context and labels
    (differing in their seeds alone) draw their batches through one pipeline that takes the seed as an input (a
    pipeline costs more to build than to read 512 batches from), and minimise in lockstep: each run has its own
    L-BFGS-B, and every round of objective evaluations is one call of a traced function that repeats the one-run
    objective per run (the same ops on the same shapes, so the same values).

    Args:
      runs: per run its strategy, context and training labels (N,).
      num_batches: batches drawn per run when there is no closed form.
      cache: biases found before, by strategy, context and labels (a worker's, kept between packs: a grid's runs
        that differ only in their initialisation seeds, or share an order seed, reuse them); found ones are added.

    Returns:
      One bias per run, in order.
    """
    from imbal_keras import models

    biases: list[np.ndarray | None] = [None] * len(runs)
    found: dict[tuple, list[int]] = {}  # the runs of each distinct (strategy, context, labels) still to find
    digests: dict[int, str] = {}
    for i, (strategy, ctx, labels) in enumerate(runs):
        if is_closed_form(strategy, ctx):
            biases[i] = models.output_bias(strategy.training_distribution(ctx))
            continue
        if id(labels) not in digests:
            digests[id(labels)] = hashlib.blake2b(np.ascontiguousarray(labels).tobytes(), digest_size=16).hexdigest()
        key = (strategy.name, repr(ctx), digests[id(labels)])
        if cache is not None and key in cache:
            biases[i] = cache[key].copy()
        else:
            found.setdefault(key, []).append(i)
    groups: dict[tuple, list[tuple]] = {}
    for key, members in found.items():
        strategy, ctx, labels = runs[members[0]]
        groups.setdefault((strategy.name, repr(dataclasses.replace(ctx, seed=0)), key[2]), []).append(key)
    for keys in groups.values():
        firsts = [found[key][0] for key in keys]
        strategy, ctx, labels = runs[firsts[0]]
        draws = list(_draw_for_seeds(strategy, ctx, np.asarray(labels), [runs[i][1].seed for i in firsts], num_batches))
        for key, bias in zip(keys, _minimised_together(strategy, [runs[i][1] for i in firsts], draws), strict=True):
            for i in found[key]:
                biases[i] = bias.copy()
            if cache is not None:
                cache[key] = bias
    return biases


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


def _draw_for_seeds(strategy, ctx, labels: np.ndarray, seeds: Sequence[int], num_batches: int):
    """`draw_batches` for every seed (the context's other fields shared), through one pipeline with the seed as
    an input. Every random op of a strategy's pipeline is stateless and seeded from the seed, so each seed's
    batches are those its own pipeline yields."""
    import tensorflow as tf

    placeholder = np.zeros((len(labels), 1), np.float32)
    labels = labels.astype(np.int32)
    pipeline = strategies.seeded_pipeline(strategy, placeholder, labels, ctx)

    def drawn(seed):
        return pipeline(seed).take(num_batches).batch(num_batches)

    stream = tf.data.Dataset.from_tensor_slices(np.asarray(seeds, np.int64)).interleave(drawn, cycle_length=1)
    for batch in stream:
        y = batch[1].numpy()
        w = batch[2].numpy() if len(batch) > 2 else np.ones_like(y, np.float32)
        yield y, w.astype(np.float32)


def _numeric_bias(strategy, ctx, labels, num_batches) -> np.ndarray:
    y, w = draw_batches(strategy, ctx, labels, num_batches)
    return _minimised(strategy, ctx, y, w)


def _minimised(strategy, ctx, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The bias minimising the mean loss of a constant prediction over these batches' labels and weights."""
    exact = cross_entropy_minimiser(strategy, ctx, y, w)
    return exact if exact is not None else _numerically_minimised(strategy, ctx, y, w)


def _numerically_minimised(strategy, ctx, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """`_minimised` by L-BFGS-B on the compiled loss."""
    import tensorflow as tf

    y = tf.constant(y.astype(np.float32))
    w = tf.constant(w)
    value_and_gradient = _objective(strategy, ctx)

    def objective(b):
        value, gradient = value_and_gradient(tf.constant(b, tf.float32), y, w)
        return float(value), gradient.numpy().astype(np.float64)

    return _lbfgs(objective, strategy, ctx)


def cross_entropy_minimiser(strategy, ctx, y: np.ndarray, w: np.ndarray) -> np.ndarray | None:
    """The exact minimiser of `_minimised`'s objective when the model's loss is Keras' plain cross-entropy
    (binary or sparse categorical, on probabilities, no label smoothing), else None.

    Each batch's loss is then sum_i c_i l(y_i, p) with c_i = w_i / sum w (`mean_with_sample_weight`), w_i / B
    (`sum_over_batch_size`) or w_i (`sum`), so the mean over the batches is -sum_k A_k log p_k with A_k the summed
    c_i of the examples of class k: minimised at p_k = A_k / sum A (Gibbs' inequality), that is the logits log A_k
    (centred to mean 0 for softmax; log(A_1 / A_0) for the sigmoid). None too when a class has no weight in the
    batches or the minimiser lies where Keras clips probabilities (epsilon): L-BFGS then, as for other losses.
    """
    import keras

    loss = strategies.build_loss(strategy, ctx)
    config = loss.get_config()
    if type(loss) not in (keras.losses.BinaryCrossentropy, keras.losses.SparseCategoricalCrossentropy):
        return None
    if config.get("from_logits") or config.get("label_smoothing") or config.get("ignore_class") is not None:
        return None
    y = np.asarray(y).astype(np.int64)
    w = np.asarray(w, np.float64)
    if loss.reduction == "mean_with_sample_weight":
        share = w / w.sum(axis=1, keepdims=True)
    elif loss.reduction == "sum":
        share = w
    else:
        share = w / w.shape[1]
    totals = np.bincount(y.ravel(), weights=share.ravel(), minlength=ctx.num_classes)[: ctx.num_classes]
    if not np.all(np.isfinite(totals)) or np.any(totals <= 0):
        return None
    probabilities = totals / totals.sum()
    epsilon = keras.config.epsilon()
    if np.any(probabilities <= epsilon) or np.any(probabilities >= 1 - epsilon):
        return None
    logits = np.log(totals)
    return np.array([logits[1] - logits[0]]) if ctx.num_classes == 2 else logits - logits.mean()


def _lbfgs(objective, strategy, ctx) -> np.ndarray:
    """L-BFGS-B from the closed form's bias; softmax logits centred to mean 0."""
    from scipy import optimize

    start = _lbfgs_start(strategy, ctx)
    # The loss of a constant prediction is convex in its logits: L-BFGS finds the one minimum.
    result = optimize.minimize(objective, start, jac=True, method="L-BFGS-B", options={"gtol": 1e-7, "maxiter": 200})
    bias = result.x
    return bias if len(bias) == 1 else bias - bias.mean()


def _minimised_together(strategy, ctxs, draws) -> list[np.ndarray]:
    """`_minimised` of each run (its context and drawn batches): in closed form where it has one, the others'
    L-BFGS-B in lockstep (`_numerically_minimised_together`)."""
    biases = [cross_entropy_minimiser(strategy, ctx, *draw) for ctx, draw in zip(ctxs, draws, strict=True)]
    numeric = [i for i, bias in enumerate(biases) if bias is None]
    if numeric:
        found = _numerically_minimised_together(strategy, [ctxs[i] for i in numeric], [draws[i] for i in numeric])
        for i, bias in zip(numeric, found, strict=True):
            biases[i] = bias
    return biases


def _numerically_minimised_together(strategy, ctxs, draws) -> list[np.ndarray]:
    """`_numerically_minimised` of each run, in lockstep: one thread per run's L-BFGS-B, each round's
    evaluations in one call (`_Lockstep`)."""
    import concurrent.futures

    import tensorflow as tf

    if len(ctxs) == 1:
        return [_numerically_minimised(strategy, ctxs[0], *draws[0])]
    # Padded to a power of two with copies of the first run (their results unused): one trace serves packs
    # whose groups differ in size.
    padded = 2 ** math.ceil(math.log2(len(ctxs)))
    draws = [*draws, *[draws[0]] * (padded - len(draws))]
    y = tf.constant(np.stack([d[0] for d in draws]).astype(np.float32))
    w = tf.constant(np.stack([d[1] for d in draws]))
    function = _objective(strategy, ctxs[0], replicas=padded)
    units = len(_lbfgs_start(strategy, ctxs[0]))

    def evaluate(biases: np.ndarray):
        values, gradients = function(tf.constant(biases, tf.float32), y, w)
        return values.numpy(), gradients.numpy().astype(np.float64)

    lockstep = _Lockstep(np.zeros((padded, units)), evaluate, running=len(ctxs))

    def minimise(r):
        try:
            return _lbfgs(lambda b: lockstep(r, b), strategy, ctxs[r])
        finally:
            lockstep.finish(r)

    with concurrent.futures.ThreadPoolExecutor(len(ctxs)) as pool:
        return list(pool.map(minimise, range(len(ctxs))))


def _lbfgs_start(strategy, ctx) -> np.ndarray:
    from imbal_keras import models

    return models.output_bias(strategy.training_distribution(ctx))


class _Lockstep:
    """Objective evaluations of several minimisations, one call per round: each asks with its point and waits
    until every minimisation still running has asked; then one call evaluates every row of `points` (a finished
    one, or a padding row, at its last point, its result unused)."""

    def __init__(self, points: np.ndarray, evaluate, *, running: int):
        self._points, self._evaluate = points, evaluate
        self._running = set(range(running))
        self._asking: set[int] = set()
        self._answers: dict[int, object] = {}
        self._condition = threading.Condition()

    def __call__(self, r: int, point: np.ndarray) -> tuple[float, np.ndarray]:
        with self._condition:
            self._points[r] = point
            self._asking.add(r)
            self._answer_if_all_asked()
            while r not in self._answers:
                self._condition.wait()
            answer = self._answers.pop(r)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def finish(self, r: int) -> None:
        with self._condition:
            self._running.discard(r)
            self._answer_if_all_asked()

    def _answer_if_all_asked(self) -> None:
        if not self._asking or self._asking != self._running:
            return
        try:
            values, gradients = self._evaluate(self._points.copy())
            answers = {r: (float(values[r]), gradients[r]) for r in self._asking}
        except Exception as e:  # noqa: BLE001  (raised in every waiting minimisation)
            answers = dict.fromkeys(self._asking, e)
        self._answers.update(answers)
        self._asking.clear()
        self._condition.notify_all()


# Traced objectives by everything but the seed: the runs of a grid that differ only in their seeds share one.
_OBJECTIVES: dict[str, object] = {}


def _objective(strategy, ctx, *, replicas: int = 0):
    """`(bias, y, w) -> (mean loss over the batches, its gradient)`, traced once per strategy and context; with
    `replicas`, the same objective of each replica on stacked inputs ((R, units), (R, n, B), (R, n, B)) in one
    function, returning (R,) values and (R, units) gradients."""
    import tensorflow as tf

    key = f"{strategy.name}|{dataclasses.replace(ctx, seed=0)!r}|{replicas}"
    function = _OBJECTIVES.get(key)
    if function is None:
        losses = batch_losses_fn(strategy, ctx)

        def one(bias, y, w):
            with tf.GradientTape() as tape:
                tape.watch(bias)
                mean = tf.reduce_mean(losses(bias, y, w))
            return mean, tape.gradient(mean, bias)

        def stacked(biases, y, w):
            values, gradients = zip(*(one(biases[r], y[r], w[r]) for r in range(replicas)), strict=True)
            return tf.stack(values), tf.stack(gradients)

        function = tf.function(stacked if replicas else one, reduce_retracing=True)
        if len(_OBJECTIVES) >= 32:
            _OBJECTIVES.clear()
        _OBJECTIVES[key] = function
    return function
