"""Gradient-noise diagnostics: the mean and covariance of each strategy's mini-batch gradient at the current weights.

Whether class weights make SGD "more stochastic" than upsampling has an exact answer at any point of training:
the mean G and the covariance of the mini-batch gradient g_B under each strategy's way of forming batches. This
module measures it two ways (formulas, tolerances and measured speed in docs/diagnostics.md):

- **Exact** (`class_moments`, `predict`, `exact`): per-example gradients g_i of the model's per-example loss,
  vectorised and chunked, reduced to per-class moments (mean mu_c, second moment s_c = E[|g|^2 | c], Gram matrix
  mu_c . mu_d). A strategy's batch formation, described as data by a `BatchSampling`, then gives G, tr Cov(g_B)
  split into a within-class and a between-class term, |G|^2, the simple noise scale B_simple = tr Sigma / |G|^2
  (McCandlish et al. 2018, "An Empirical Model of Large-Batch Training"), the distance of G to the gradient of the
  balanced risk, the bias of the self-normalised reduction and the probability that a batch holds no minority
  example, all in closed form. One set of moments serves every strategy.
- **Sampled** (`sampled`, `two_batch_sizes`): batch gradients drawn through a strategy's real `tf.data` pipeline,
  for any model; estimates of G, tr Cov, |G|^2, tr Sigma and B_simple with jackknife standard errors, and the
  two-batch-size estimator of McCandlish et al. (Appendix A).

`GradientNoise` is a Keras callback that runs the exact mode every N optimizer steps on a fixed, seeded subsample
of the training data and writes `diagnostics/<strategy>/<quantity>` TensorBoard scalars and a table.

Gradients are taken with `training=False` (no dropout noise, batch-norm in inference mode: the loss of an example
then depends on that example only) and of the data loss alone (regularization terms are not part of the noise).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from scipy.special import gammaln

from imbal_keras import strategies
from imbal_keras.callbacks import events
from imbal_keras.data.batch_sampling import BatchSampling
from imbal_keras.data.shares import apportion, balanced, stratified_counts
from imbal_keras.errors import UserInputError, check

__all__ = [
    "CLASS_QUANTITIES",
    "DEFAULT_EVERY_N_STEPS",
    "DEFAULT_EXAMPLES_PER_CLASS",
    "DEFAULT_MAX_PARAMETERS",
    "QUANTITIES",
    "BatchSampling",
    "ClassMoments",
    "GradientNoise",
    "NoiseEstimate",
    "NoisePrediction",
    "class_moments",
    "describable",
    "describe",
    "exact",
    "noise_table",
    "per_example_gradients",
    "predict",
    "sampled",
    "subsample",
    "two_batch_sizes",
]

SUPPORTED_STRATEGIES = ("none", "class_weight", "upsample", "downsample", "rejection", "stratified")
# Above this many trainable parameters the exact mode refuses: per-example gradients cost one backward pass per
# example each and memory proportional to examples x parameters per chunk.
DEFAULT_MAX_PARAMETERS = 1_000_000
# A chunk of vectorised per-example gradients stays within this many bytes (float32) and this many examples; 512
# was the fastest of 512, 1024 and 2048 for the 2x64 MLP on 2 cores. The Dense-chain closed form holds no (C, P)
# matrix (only each layer's inputs and pre-activation gradients), so its chunks are larger.
_CHUNK_BYTES = 64 * 2**20
_MAX_CHUNK = 512
_MAX_DENSE_CHUNK = 8192
# Batches stacked into one graph call (tf.map_fn) of the sampled mode.
_MAX_STACKED_BATCHES = 256
_CACHE_ATTRIBUTE = "_imbal_keras_gradient_programs"
# The self-normalised reduction is computed exactly by enumerating the batch's class counts up to this many
# count vectors (K = 2: B + 1 of them), by the delta method beyond.
MAX_COMPOSITIONS = 100_000
# Quantities of one strategy, in table and TensorBoard order.
QUANTITIES = (
    "grad_sq_norm",
    "trace_cov",
    "within_class",
    "between_class",
    "trace_sigma",
    "simple_noise_scale",
    "distance_to_balanced",
    "relative_distance_to_balanced",
    "bias_norm",
    "mse_to_balanced",
    "p_no_minority",
)
CLASS_QUANTITIES = ("mean_norm", "second_moment", "within_variance")
# Examples per class in the callback's subsample (classes with fewer are taken whole).
DEFAULT_EXAMPLES_PER_CLASS = 1024
DEFAULT_EVERY_N_STEPS = 200


# ---------------------------------------------------------------------------------------------------------------
# How a strategy forms batches, as data.


def describable() -> list[str]:
    """Names of the registered strategies that declare their batch sampling, in registration order."""
    return [s.name for s in strategies.STRATEGIES.values() if s.batch_sampling is not None]


def describe(
    strategy: str,
    class_counts: Sequence[int],
    *,
    target_distribution: Sequence[float] | None = None,
    params: Mapping[str, Any] | None = None,
) -> BatchSampling:
    """The `BatchSampling` a registered strategy declares (`Strategy.batch_sampling`), for these class counts.

    Args:
      strategy: the name of a registered strategy that declares one (`describable()`).
      class_counts: training examples per class n_c.
      target_distribution: target shares t; None means uniform.
      params: values of the strategy's parameters (e.g. `weight_reduction`); missing ones take their defaults.

    Returns:
      The strategy's `BatchSampling`.

    Raises:
      UserInputError: a strategy that declares no batch sampling (schedules, unknown names), or a parameter it
        does not declare.
    """
    able = describable()
    if strategy not in able:
        raise UserInputError(
            f"strategy must be one of {', '.join(able)} for the gradient-noise diagnostics (they describe one fixed "
            f"way of drawing batches; schedules change it during training). Received: strategy={strategy!r}",
            argument="strategy",
        )
    registered = strategies.get(strategy)
    counts = np.asarray(class_counts)
    target = balanced(len(counts)) if target_distribution is None else np.asarray(target_distribution)
    ctx = strategies.StrategyContext(
        class_counts=counts,
        target_distribution=target,
        batch_size=1,
        seed=0,
        params=registered.resolve_params(params or {}),
    )
    return registered.batch_sampling(ctx)


# ---------------------------------------------------------------------------------------------------------------
# The class counts of one batch.


@dataclasses.dataclass(frozen=True)
class _BatchCounts:
    """The distribution of a batch's class counts k (K,) under a `BatchSampling` at batch size B."""

    batch_size: int
    shares: np.ndarray
    fixed: np.ndarray | None = None
    pass_counts: np.ndarray | None = None

    @classmethod
    def of(cls, sampling: BatchSampling, batch_size: int) -> _BatchCounts:
        shares = np.asarray(sampling.class_shares)
        if sampling.fixed_counts:
            fixed = stratified_counts(batch_size, shares)
            return cls(batch_size, fixed / batch_size, fixed=fixed)
        if sampling.pass_size is not None:
            pass_counts = apportion(sampling.pass_size, shares)
            return cls(batch_size, pass_counts / sampling.pass_size, pass_counts=pass_counts)
        return cls(batch_size, shares)

    def mean(self) -> np.ndarray:
        return self.batch_size * self.shares

    def cov(self) -> np.ndarray:
        if self.fixed is not None:
            return np.zeros((len(self.shares),) * 2)
        b = self.batch_size
        cov = b * (np.diag(self.shares) - np.outer(self.shares, self.shares))
        if self.pass_counts is not None:
            size = int(self.pass_counts.sum())
            cov *= (size - b) / (size - 1) if size > 1 else 0.0
        return cov

    def p_absent(self, c: int) -> float:
        """Probability that the batch holds no example of class c."""
        b = self.batch_size
        if self.fixed is not None:
            return float(self.fixed[c] == 0)
        if self.pass_counts is None:
            return float((1 - self.shares[c]) ** b)
        size, others = int(self.pass_counts.sum()), int(self.pass_counts.sum() - self.pass_counts[c])
        if others < b:
            return 0.0
        return float(np.exp(_log_comb(others, b) - _log_comb(size, b)))

    def support(self, limit: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Every possible count vector (S, K) and its probability (S,), or None when S would exceed `limit`."""
        if self.fixed is not None:
            return self.fixed[None, :], np.ones(1)
        b, k = self.batch_size, len(self.shares)
        active = np.flatnonzero(self.shares > 0)
        if math.comb(b + len(active) - 1, len(active) - 1) > limit:
            return None
        caps = np.full(len(active), b) if self.pass_counts is None else np.minimum(self.pass_counts[active], b)
        active_counts = _compositions(b, caps)
        counts = np.zeros((len(active_counts), k), np.int64)
        counts[:, active] = active_counts
        if self.pass_counts is None:
            log_p = gammaln(b + 1) - gammaln(active_counts + 1).sum(1) + active_counts @ np.log(self.shares[active])
        else:
            m = self.pass_counts[active]
            log_p = _log_comb(m, active_counts).sum(1) - _log_comb(int(self.pass_counts.sum()), b)
        p = np.exp(log_p)
        return counts, p / p.sum()


def _compositions(total: int, caps: np.ndarray) -> np.ndarray:
    """All integer vectors k (S, len(caps)) with 0 <= k_c <= caps[c] and sum(k) = total."""
    rows = np.zeros((1, 0), np.int64)
    left = np.array([total])
    after = np.concatenate([np.cumsum(caps[::-1])[::-1][1:], [0]])  # capacity of the classes after c
    for c, cap in enumerate(caps):
        low = np.maximum(0, left - after[c])
        high = np.minimum(cap, left)
        n = np.maximum(high - low + 1, 0)
        k = np.repeat(low, n) + np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
        rows = np.column_stack([np.repeat(rows, n, axis=0), k])
        left = np.repeat(left, n) - k
    return rows


def _log_comb(n, k):
    n, k = np.asarray(n, np.float64), np.asarray(k, np.float64)
    return gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)


# ---------------------------------------------------------------------------------------------------------------
# Closed forms.


@dataclasses.dataclass(frozen=True)
class _Coefficients:
    """The mean and covariance of g_B as forms in the class moments.

    E[g_B] = mean @ mu; tr Cov(g_B) = within @ v + sum(between * gram), where v_c is class c's within-class
    variance; the reduction estimates target @ mu (for the self-normalised reduction, the ratio of expectations).
    """

    mean: np.ndarray
    between: np.ndarray
    within: np.ndarray
    target: np.ndarray
    method: str


def _coefficients(sampling: BatchSampling, batch_size: int) -> _Coefficients:
    """Conditions on the batch's class counts k: given k, class c contributes w_c sum of k_c draws / D(k).

    E[g | k] = sum_c alpha_c(k) mu_c with alpha_c = w_c k_c / D(k), and tr Cov(g | k) = sum_c (w_c / D(k))^2 k_c
    f_c(k_c) v_c with f_c(k) = (P_c - k) / (P_c - 1) for draws without replacement from P_c (1 with replacement).
    The law of total variance splits tr Cov(g) into E_k[tr Cov(g | k)] (within) and tr Cov_k(E[g | k]) (between).
    D(k) = B is linear in k and exact from the first two moments of k; D(k) = sum_c w_c k_c (self-normalised) is
    exact by enumerating k, or by the delta method when there are more than `MAX_COMPOSITIONS` count vectors.
    """
    counts = _BatchCounts.of(sampling, batch_size)
    b = batch_size
    weights = np.ones(sampling.num_classes) if sampling.class_weights is None else np.asarray(sampling.class_weights)
    active = counts.shares > 0
    self_normalised = sampling.reduction == "mean_with_sample_weight"
    if self_normalised and np.ptp(weights[active]) == 0:
        # Equal weights cancel between numerator and denominator: the plain mean.
        weights, self_normalised = np.ones_like(weights), False
    population = None if sampling.class_population is None else np.asarray(sampling.class_population, dtype=np.float64)

    def kf(k):
        """k f(k) for count vectors k (..., K): the within-class variance factor of k draws."""
        if population is None:
            return k
        return np.where(population > 1, k * (population - k) / np.maximum(population - 1, 1), 0.0)

    mean_k, cov_k = counts.mean(), counts.cov()
    # E[k_c f_c(k_c)] from E[k_c] and E[k_c^2] (f is linear in k).
    second_k = np.diag(cov_k) + mean_k**2
    expected_kf = (
        mean_k
        if population is None
        else np.where(population > 1, (population * mean_k - second_k) / np.maximum(population - 1, 1), 0.0)
    )
    if not self_normalised:
        mean = weights * mean_k / b
        return _Coefficients(
            mean, np.outer(weights, weights) * cov_k / b**2, weights**2 * expected_kf / b**2, mean, "linear"
        )
    target = counts.shares * weights / (counts.shares @ weights)
    support = counts.support(MAX_COMPOSITIONS)
    if support is not None:
        k, p = support
        total = k @ weights
        safe = np.where(total > 0, total, 1.0)[:, None]
        alpha = np.where(total[:, None] > 0, weights * k / safe, 0.0)
        mean = p @ alpha
        between = (alpha * p[:, None]).T @ alpha - np.outer(mean, mean)
        within = p @ np.where(total[:, None] > 0, weights**2 * kf(k) / safe**2, 0.0)
        return _Coefficients(mean, between, within, target, "enumerated")
    total = weights @ mean_k
    cov_w = cov_k @ weights
    mean = weights * mean_k / total - weights * cov_w / total**2 + weights * mean_k * (weights @ cov_w) / total**3
    jacobian = np.diag(weights) / total - np.outer(weights * mean_k, weights) / total**2
    return _Coefficients(mean, jacobian @ cov_k @ jacobian.T, weights**2 * expected_kf / total**2, target, "delta")


# ---------------------------------------------------------------------------------------------------------------
# Per-class moments.


@dataclasses.dataclass(frozen=True)
class ClassMoments:
    """Per-class moments of the per-example gradient g_i = d l_i / d theta at one set of weights.

    Attributes:
      class_counts: n_c, examples of class c in the data the strategies draw from, (K,).
      examples: m_c, examples of class c the moments were computed from, (K,): m_c = n_c is the whole class,
        m_c < n_c a uniform subsample without replacement.
      means: mu_c, the mean gradient of class c, (K, P).
      second_moments: s_c = E[|g|^2 | class c], (K,).
      gram: mu_c . mu_d, (K, K). For a subsampled class its diagonal is the unbiased estimate
        |mean|^2 - (1 - m_c / n_c) S_c^2 / m_c (S_c^2: the sample variance), since |mean|^2 alone overstates
        |mu_c|^2 by the variance of the mean.
    """

    class_counts: np.ndarray
    examples: np.ndarray
    means: np.ndarray
    second_moments: np.ndarray
    gram: np.ndarray

    @property
    def num_classes(self) -> int:
        return len(self.class_counts)

    @property
    def within_variance(self) -> np.ndarray:
        """v_c = s_c - |mu_c|^2 = E[|g - mu_c|^2 | class c], (K,)."""
        return self.second_moments - np.diag(self.gram)

    @property
    def balanced_gradient(self) -> np.ndarray:
        """The gradient of the balanced risk (1/K) sum_c E[l | c]: the mean of mu_c over the classes, (P,)."""
        return self.means.mean(axis=0)

    def as_row(self) -> dict[str, float]:
        """Per-class scalars: `mean_norm_class_c` (|mu_c|), `second_moment_class_c`, `within_variance_class_c`."""
        row = {}
        values = {
            "mean_norm": np.sqrt(np.maximum(np.diag(self.gram), 0)),
            "second_moment": self.second_moments,
            "within_variance": self.within_variance,
        }
        for c in range(self.num_classes):
            for name in CLASS_QUANTITIES:
                row[f"{name}_class_{c}"] = float(values[name][c])
        return row

    @classmethod
    def from_gradients(
        cls,
        gradients: np.ndarray,
        labels: np.ndarray,
        *,
        num_classes: int,
        class_counts: Sequence[int] | None = None,
    ) -> ClassMoments:
        """Moments from per-example gradients computed elsewhere.

        Args:
          gradients: g_i, (N, P).
          labels: class ids, (N,).
          num_classes: K.
          class_counts: n_c of the data the strategies draw from, when `labels` is a per-class subsample of it;
            None means `gradients` covers the whole data.

        Returns:
          The `ClassMoments`.
        """
        gradients = np.asarray(gradients, dtype=np.float64)
        one_hot = _one_hot(labels, num_classes)
        return _moments_from_sums(
            one_hot.T @ gradients, one_hot.T @ np.einsum("ij,ij->i", gradients, gradients), one_hot.sum(0), class_counts
        )


def _moments_from_sums(sums, squares, examples, class_counts) -> ClassMoments:
    """`ClassMoments` from per-class sums of g (K, P), of |g|^2 (K,) and example counts m_c (K,)."""
    examples = np.asarray(examples, dtype=np.int64)
    counts = examples if class_counts is None else np.asarray(class_counts, dtype=np.int64)
    check(
        counts.shape == examples.shape,
        f"class_counts must have one entry per class ({len(examples)}). Received: class_counts={counts.tolist()}",
        argument="class_counts",
    )
    missing = np.flatnonzero(examples == 0)
    check(
        not len(missing),
        f"labels must hold every class; class {missing[0] if len(missing) else ''} has no example. "
        f"Received: examples per class {examples.tolist()}",
        argument="labels",
    )
    check(
        ((examples <= counts) & ((examples == counts) | (examples >= 2))).all(),
        f"class_counts must be at least the examples given per class, and a subsampled class needs 2 examples. "
        f"Received: class_counts={counts.tolist()}, examples per class {examples.tolist()}",
        argument="class_counts",
    )
    m = examples.astype(np.float64)
    means = sums / m[:, None]
    second = squares / m
    gram = means @ means.T
    # Unbiased |mu_c|^2 under a subsample without replacement: E|mean|^2 = |mu|^2 + (1 - m/n) S^2 / m.
    sample_variance = np.where(m > 1, (second - np.diag(gram)) * m / np.maximum(m - 1, 1), 0.0)
    gram[np.diag_indices_from(gram)] -= (1 - m / counts) * sample_variance / m
    return ClassMoments(counts, examples, means, second, gram)


def class_moments(
    model: keras.Model,
    features,
    labels,
    *,
    num_classes: int | None = None,
    class_counts: Sequence[int] | None = None,
    loss=None,
    max_parameters: int = DEFAULT_MAX_PARAMETERS,
) -> ClassMoments:
    """Per-class moments of the per-example gradients at the model's current weights (the exact mode).

    Per-example gradients come in closed form for a chain of Dense layers (one batched backward pass, chunks of up
    to 8192 examples) and from `tf.vectorized_map` over one example's GradientTape for any other model (chunks of
    at most 512 examples and 64 MiB); per-class sums accumulate in float64 and the (N, P) matrix is never held.

    Args:
      model: a single-output Keras model.
      features: array (or nested structure of arrays) with leading dimension N.
      labels: integer class ids, (N,).
      num_classes: K; None means max(labels) + 1.
      class_counts: n_c of the data the strategies draw from, when `features` is a per-class subsample of it
        (see `subsample`); None means the whole data.
      loss: a per-example Keras loss (object, name or function); None means the model's compiled loss.
      max_parameters: refuse models with more trainable parameters than this.

    Returns:
      The `ClassMoments`.

    Raises:
      UserInputError: a loss that is not per-example, a model over `max_parameters`, labels missing a class.
    """
    labels = _check_labels(labels)
    k = int(labels.max()) + 1 if num_classes is None else num_classes
    sums, squares = _PerExample.of(model, loss, max_parameters=max_parameters).class_sums(features, labels, k)
    return _moments_from_sums(sums, squares, np.bincount(labels, minlength=k)[:k], class_counts)


def per_example_gradients(model: keras.Model, features, labels, *, loss=None) -> np.ndarray:
    """The per-example gradients g_i = d l_i / d theta over the trainable weights, flattened, (N, P) float32.

    Args:
      model: a single-output Keras model.
      features: array (or nested structure of arrays) with leading dimension N.
      labels: integer class ids, (N,).
      loss: a per-example Keras loss; None means the model's compiled loss.

    Returns:
      (N, P) array, weights in `model.trainable_weights` order.
    """
    return _PerExample.of(model, loss, max_parameters=DEFAULT_MAX_PARAMETERS).matrix(features, _check_labels(labels))


class _PerExample:
    """Per-example gradients of one model and loss in chunks, by one traced function.

    A model that is a plain chain of `Dense` layers (the default MLP, logistic regression) gets them in closed form
    from one batched backward pass: with a the input and delta = dl_i/dz the pre-activation gradient of a layer, the
    example's kernel gradient is the outer product a_i delta_i and its bias gradient delta_i (Goodfellow 2015,
    "Efficient per-example gradient computations"). The traced graph returns a and delta and the per-class sums are
    formed from them by a few eager ops, which keeps the graph small (tracing is most of a diagnosis's cost). Any other
    model goes through `tf.vectorized_map` over one example's GradientTape; both give the same numbers, but tracing
    the vectorised one takes seconds.
    """

    def __init__(self, model: keras.Model, loss: keras.losses.Loss, max_chunk: int):
        self._model = model
        self._loss = loss
        self._dense = _dense_chain(model)
        self.max_chunk = max_chunk if self._dense is None else _MAX_DENSE_CHUNK
        self._checked = False
        # Chunks of one size trace once; a second size traces a shape-generic function. The code is plain tensor
        # code: without AutoGraph's source conversion tracing takes a fraction of the time.
        program = self._vectorised if self._dense is None else self._dense_pieces
        self._program = tf.function(program, reduce_retracing=True, autograph=False)

    @classmethod
    def of(cls, model: keras.Model, loss, *, max_parameters: int) -> _PerExample:
        """The per-example gradient program of `model`, reused while the model and loss stay the same."""
        _check_single_output(model)
        size = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
        check(
            size <= max_parameters,
            f"model has {size:,} trainable parameters, more than the exact mode takes (max_parameters="
            f"{max_parameters:,}); use the sampled mode (diagnostics.sampled or two_batch_sizes) for it. "
            f"Received: a model with {size} parameters",
            argument="model",
        )
        chunk = max(1, min(_MAX_CHUNK, _CHUNK_BYTES // (4 * max(size, 1))))
        return _cached(model, loss, cls, lambda: cls(model, _resolve_loss(model, loss), chunk))

    @property
    def closed_form(self) -> bool:
        """Whether the Dense-chain closed form is used (else `tf.vectorized_map`)."""
        return self._dense is not None

    def _vectorised(self, x, y) -> tf.Tensor:
        """g_i of every example of the chunk, (C, P)."""
        weights = self._model.trainable_weights

        def one(example):
            xi, yi = example
            with tf.GradientTape() as tape:
                y_pred = self._model(tf.nest.map_structure(lambda t: t[None], xi), training=False)
                value = tf.reduce_sum(self._loss.call(tf.cast(yi[None], self._loss.dtype), y_pred))
            grads = tape.gradient(value, weights, unconnected_gradients=tf.UnconnectedGradients.ZERO)
            return tf.concat([tf.reshape(tf.cast(g, tf.float32), [-1]) for g in grads], 0)

        return tf.vectorized_map(one, (x, y))

    def _dense_pieces(self, x, y):
        """Per Dense layer: its input a (C, in) and dl_i/dz (C, out), from one backward pass of sum_i l_i."""
        with tf.GradientTape() as tape:
            out, inputs, outputs = _dense_forward(self._dense, x)
            total = tf.reduce_sum(self._loss.call(tf.cast(y, self._loss.dtype), out))
        # z_i feeds l_i only, so d(sum_j l_j)/dz_i = dl_i/dz_i row by row.
        deltas = tape.gradient(total, outputs)
        return [(tf.cast(a, tf.float32), tf.cast(d, tf.float32)) for a, d in zip(inputs, deltas, strict=True)]

    def _sums(self, x, y, one_hot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-class sums of g_i (K, P) and of |g_i|^2 (K,) of a chunk; rows with a zero one-hot row count 0."""
        h = tf.constant(one_hot, tf.float32)
        if self._dense is None:
            g = self._program(x, tf.constant(y))
            sums, squares = (
                tf.matmul(h, g, transpose_a=True),
                tf.linalg.matvec(h, tf.reduce_sum(g * g, 1), transpose_a=True),
            )
            return sums.numpy().astype(np.float64), squares.numpy().astype(np.float64)
        # A dozen large eager ops: cheaper than tracing them into the program.
        trainable = {id(w) for w in self._model.trainable_weights}
        parts, squares = {}, tf.zeros(len(one_hot))
        for layer, (a, delta) in zip(self._dense, self._program(x, tf.constant(y)), strict=True):
            delta_sq = tf.reduce_sum(delta * delta, 1)
            if id(layer.kernel) in trainable:
                # sum over class-k rows of a_i delta_i^T for every class k in one product: (K * in, out).
                by_class = tf.reshape(h[:, :, None] * a[:, None, :], [len(one_hot), -1])
                parts[id(layer.kernel)] = tf.reshape(
                    tf.matmul(by_class, delta, transpose_a=True), [one_hot.shape[1], -1]
                )
                squares += tf.reduce_sum(a * a, 1) * delta_sq  # |a_i delta_i^T|^2 = |a_i|^2 |delta_i|^2
            if layer.use_bias and id(layer.bias) in trainable:
                parts[id(layer.bias)] = tf.matmul(h, delta, transpose_a=True)
                squares += delta_sq
        flat = tf.concat([parts[id(w)] for w in self._model.trainable_weights], 1)
        return flat.numpy().astype(np.float64), tf.linalg.matvec(h, squares, transpose_a=True).numpy().astype(
            np.float64
        )

    def _gradients(self, x, y) -> np.ndarray:
        """g_i of every example of the chunk, (C, P) float32."""
        if self._dense is None:
            return self._program(x, tf.constant(y)).numpy()
        parts = {}
        for layer, (a, delta) in zip(self._dense, self._program(x, tf.constant(y)), strict=True):
            parts[id(layer.kernel)] = tf.reshape(a[:, :, None] * delta[:, None, :], [a.shape[0], -1])
            if layer.use_bias:
                parts[id(layer.bias)] = delta
        return tf.concat([parts[id(w)] for w in self._model.trainable_weights], 1).numpy()

    def _check_per_example(self, features, labels) -> None:
        if self._checked:
            return
        n = min(2, len(labels))
        x = tf.nest.map_structure(lambda f: tf.constant(np.asarray(f)[:n]), features)
        values = self._loss.call(tf.cast(tf.constant(labels[:n]), self._loss.dtype), self._model(x, training=False))
        check(
            tuple(values.shape) == (n,),
            f"loss must return one value per example for the gradient-noise diagnostics. "
            f"Received: loss={getattr(self._loss, 'name', self._loss)!r} returning shape {tuple(values.shape)} "
            f"for {n} examples",
            argument="loss",
        )
        self._checked = True

    def _chunks(self, features, labels, max_chunk: int):
        """(x, y, valid) per chunk of equal size, the last one padded with copies of the first example."""
        self._check_per_example(features, labels)
        n = len(labels)
        chunk = -(-n // -(-n // max_chunk))  # as few chunks as the limit allows, as even as possible
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            pad = chunk - (stop - start)
            x = tf.nest.map_structure(lambda f, a=start, b=stop, p=pad: _padded(np.asarray(f)[a:b], p), features)
            yield x, _padded(labels[start:stop], pad), stop - start

    def class_sums(self, features, labels, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
        size = sum(int(np.prod(w.shape)) for w in self._model.trainable_weights)
        sums, squares = np.zeros((num_classes, size)), np.zeros(num_classes)
        for x, y, valid in self._chunks(features, labels, self.max_chunk):
            one_hot = _one_hot(y, num_classes)
            one_hot[valid:] = 0
            s, q = self._sums(x, y, one_hot)
            sums += s
            squares += q
        return sums, squares

    def matrix(self, features, labels) -> np.ndarray:
        # Chunks of the (N, P) matrix itself, so bounded by bytes whichever way the gradients are computed.
        size = sum(int(np.prod(w.shape)) for w in self._model.trainable_weights)
        chunk = max(1, min(self.max_chunk, _CHUNK_BYTES // (4 * max(size, 1))))
        parts = [self._gradients(x, y)[:valid] for x, y, valid in self._chunks(features, labels, chunk)]
        return np.concatenate(parts)


def _dense_chain(model: keras.Model) -> list | None:
    """The model's Dense layers in order when it is exactly a chain of plain Dense layers on one input, else None.

    Checked by structure (every layer a plain `Dense`, every trainable weight one of theirs) and by value (the chain
    recomputed by hand gives the model's output on a probe), so skip connections or custom calls fall back.
    """
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    inputs = model.inputs or []
    if (
        not layers
        or len(inputs) != 1
        or None in tuple(inputs[0].shape)[1:]
        or any(
            type(layer) is not keras.layers.Dense
            or getattr(layer, "lora_enabled", False)
            or getattr(layer, "quantization_mode", None)
            for layer in layers
        )
    ):
        return None
    owned = {id(w) for layer in layers for w in layer.weights}
    if any(id(w) not in owned for w in model.trainable_weights):
        return None
    probe = np.random.default_rng(0).normal(size=(2, *tuple(inputs[0].shape)[1:])).astype(np.float32)
    expected = keras.ops.convert_to_numpy(model(probe, training=False))
    try:
        by_hand = _dense_forward(layers, tf.constant(probe))[0].numpy()
    except (ValueError, tf.errors.InvalidArgumentError):  # the layers do not even compose in this order
        return None
    return layers if by_hand.shape == expected.shape and np.allclose(by_hand, expected, rtol=1e-5, atol=1e-6) else None


def _dense_forward(layers, x):
    """The chain's output, and each layer's input a and pre-activation output z = a W + b."""
    a, inputs, outputs = x, [], []
    for layer in layers:
        a = tf.cast(a, layer.compute_dtype)
        z = tf.matmul(a, layer.kernel)
        if layer.use_bias:
            z = z + layer.bias
        inputs.append(a)
        outputs.append(z)
        a = layer.activation(z)
    return a, inputs, outputs


def _cached(model: keras.Model, loss, kind: type, build):
    """One traced program of each kind per model, kept while it is asked for with the same loss.

    Tracing a vectorised gradient costs seconds, more than a diagnosis of a small model, so repeated calls (the
    callback, a loop over pipelines) reuse it. It lives on the model and goes with it.
    """
    source = getattr(model, "loss", None) if loss is None else loss
    # The trainable set is part of the key: a program differentiates the weights it was traced with.
    trainable = tuple(id(w) for w in model.trainable_weights)
    programs = model.__dict__.setdefault(_CACHE_ATTRIBUTE, {})
    cached = programs.get(kind)
    if cached is None or cached[0] is not source or cached[1] != trainable:
        cached = programs[kind] = (source, trainable, build())
    return cached[2]


def _padded(a: np.ndarray, pad: int) -> np.ndarray:
    return a if pad == 0 else np.concatenate([a, np.repeat(a[:1], pad, axis=0)])


def _resolve_loss(model: keras.Model, loss) -> keras.losses.Loss:
    """A Keras `Loss` object: `loss`, else the model's compiled loss; names and functions are wrapped."""
    loss = getattr(model, "loss", None) if loss is None else loss
    check(
        loss is not None,
        "loss is needed: compile the model with one or pass loss=. Received: loss=None",
        argument="loss",
    )
    check(
        not isinstance(loss, (list, tuple, dict)),
        f"loss must be one loss for a single-output model. Received: loss={loss!r}",
        argument="loss",
    )
    if isinstance(loss, keras.losses.Loss):
        return loss
    fn = keras.losses.get(loss)
    if isinstance(fn, keras.losses.Loss):
        return fn
    check(callable(fn), f"loss must be a Keras loss, its name or a function. Received: loss={loss!r}", argument="loss")
    return _FunctionLoss(fn)


class _FunctionLoss(keras.losses.Loss):
    """A loss function `fn(y_true, y_pred) -> (B,)` with Keras' default reduction, as `compile` wraps functions."""

    def __init__(self, fn):
        super().__init__(name=getattr(fn, "__name__", "loss"))
        self._fn = fn

    def call(self, y_true, y_pred):
        # As Keras' wrapper does: labels (B,) meet a (B, 1) sigmoid output as (B, 1).
        if len(y_pred.shape) == len(y_true.shape) + 1 and y_pred.shape[-1] == 1:
            y_true = tf.expand_dims(y_true, -1)
        return self._fn(y_true, y_pred)


# ---------------------------------------------------------------------------------------------------------------
# Exact mode: predictions.


@dataclasses.dataclass(frozen=True)
class NoisePrediction:
    """The mini-batch gradient g_B of one strategy at one batch size, from the class moments in closed form.

    Attributes:
      strategy: the `BatchSampling` name.
      batch_size: B.
      coefficients: a (K,) with G = E[g_B] = sum_c a_c mu_c.
      mean_gradient: G, (P,).
      grad_sq_norm: |G|^2.
      trace_cov: tr Cov(g_B) = within_class + between_class.
      within_class: E_k[tr Cov(g_B | class counts k)], the noise of drawing examples within classes.
      between_class: tr Cov_k(E[g_B | k]), the noise of the batch's class counts (0 for stratified batches).
      trace_sigma: B tr Cov(g_B), the per-example noise tr Sigma (tr Cov(g_B) = tr Sigma / B for independent draws).
      simple_noise_scale: B_simple = tr Sigma / |G|^2 (NaN when the estimate of |G|^2 is not positive).
      distance_to_balanced: |G - G_bal|, G_bal the gradient of the balanced risk (mean of mu_c over classes).
      relative_distance_to_balanced: |G - G_bal| / |G_bal|.
      bias_norm: |G - R|, R what the reduction estimates: the ratio of expectations sum_c pi_c w_c mu_c /
        sum_c pi_c w_c for `mean_with_sample_weight` (0 for `sum_over_batch_size`).
      mse_to_balanced: E|g_B - G_bal|^2 = |G - G_bal|^2 + tr Cov(g_B).
      p_no_minority: probability that a batch holds no example of the minority class.
      closed_form: `linear` (exact), `enumerated` (exact over every count vector) or `delta` (delta method).
    """

    strategy: str
    batch_size: int
    coefficients: np.ndarray
    mean_gradient: np.ndarray
    grad_sq_norm: float
    trace_cov: float
    within_class: float
    between_class: float
    trace_sigma: float
    simple_noise_scale: float
    distance_to_balanced: float
    relative_distance_to_balanced: float
    bias_norm: float
    mse_to_balanced: float
    p_no_minority: float
    closed_form: str

    def as_row(self) -> dict[str, Any]:
        """The scalar fields: `strategy`, `batch_size`, `closed_form` and `QUANTITIES`."""
        row = {"strategy": self.strategy, "batch_size": self.batch_size, "closed_form": self.closed_form}
        row.update({name: getattr(self, name) for name in QUANTITIES})
        return row


def predict(
    moments: ClassMoments, sampling: BatchSampling, *, batch_size: int, minority_class: int | None = None
) -> NoisePrediction:
    """The mean and covariance of one strategy's mini-batch gradient, in closed form from the class moments.

    Args:
      moments: the per-class moments (`class_moments`).
      sampling: how the strategy forms batches.
      batch_size: B.
      minority_class: the class of `p_no_minority`; None means the rarest class of `moments.class_counts`.

    Returns:
      The `NoisePrediction`.

    Raises:
      UserInputError: B larger than the data (or than one pass, or than a class a stratified batch draws from
        without replacement), a sampling with another number of classes or with a share on an empty class.
    """
    _check_sampling(moments, sampling, batch_size)
    minority = _minority(moments.class_counts, minority_class)
    coef = _coefficients(sampling, batch_size)
    gram = moments.gram
    present = moments.class_counts > 0
    balanced = present / present.sum()

    def quadratic(a, b=None):
        return float(a @ gram @ (a if b is None else b))

    grad_sq = quadratic(coef.mean)
    within = float(coef.within @ moments.within_variance)
    between = float(np.sum(coef.between * gram))
    trace_cov = within + between
    distance_sq = quadratic(coef.mean - balanced)
    balanced_sq = quadratic(balanced)
    return NoisePrediction(
        strategy=sampling.name,
        batch_size=batch_size,
        coefficients=coef.mean,
        mean_gradient=coef.mean @ moments.means,
        grad_sq_norm=grad_sq,
        trace_cov=trace_cov,
        within_class=within,
        between_class=between,
        trace_sigma=batch_size * trace_cov,
        simple_noise_scale=batch_size * trace_cov / grad_sq if grad_sq > 0 else float("nan"),
        distance_to_balanced=math.sqrt(max(distance_sq, 0.0)),
        relative_distance_to_balanced=math.sqrt(max(distance_sq, 0.0) / balanced_sq)
        if balanced_sq > 0
        else float("nan"),
        bias_norm=math.sqrt(max(quadratic(coef.mean - coef.target), 0.0)),
        mse_to_balanced=distance_sq + trace_cov,
        p_no_minority=_BatchCounts.of(sampling, batch_size).p_absent(minority),
        closed_form=coef.method,
    )


def noise_table(
    moments: ClassMoments,
    samplings: Sequence[BatchSampling],
    *,
    batch_size: int,
    minority_class: int | None = None,
) -> pd.DataFrame:
    """One row per strategy: `NoisePrediction.as_row()` plus the per-class moments (`ClassMoments.as_row()`)."""
    _check_samplings(samplings)
    classes = moments.as_row()
    return pd.DataFrame(
        [
            {**predict(moments, s, batch_size=batch_size, minority_class=minority_class).as_row(), **classes}
            for s in samplings
        ]
    )


def exact(
    model: keras.Model,
    features,
    labels,
    samplings: Sequence[BatchSampling],
    *,
    batch_size: int,
    class_counts: Sequence[int] | None = None,
    minority_class: int | None = None,
    loss=None,
    max_parameters: int = DEFAULT_MAX_PARAMETERS,
) -> pd.DataFrame:
    """The exact mode in one call: `class_moments` once, then `noise_table` for every strategy.

    Args:
      model: a single-output Keras model at the weights to diagnose.
      features: array (or nested structure of arrays) with leading dimension N.
      labels: integer class ids, (N,).
      samplings: the strategies to compare.
      batch_size: B.
      class_counts: n_c of the whole data when `features` is a per-class subsample; None: `features` is all of it.
      minority_class: the class of `p_no_minority`; None means the rarest.
      loss: a per-example Keras loss; None means the model's compiled loss.
      max_parameters: refuse models with more trainable parameters than this.

    Returns:
      DataFrame, one row per strategy (see `noise_table`).
    """
    _check_samplings(samplings)
    labels = _check_labels(labels)
    num_classes = samplings[0].num_classes
    counts = np.bincount(labels, minlength=num_classes)[:num_classes] if class_counts is None else class_counts
    for s in samplings:
        _check_batch_size(np.asarray(counts), s, batch_size)
    moments = class_moments(
        model,
        features,
        labels,
        num_classes=num_classes,
        class_counts=class_counts,
        loss=loss,
        max_parameters=max_parameters,
    )
    return noise_table(moments, samplings, batch_size=batch_size, minority_class=minority_class)


def _check_samplings(samplings) -> None:
    check(
        len(samplings) > 0 and all(isinstance(s, BatchSampling) for s in samplings),
        f"samplings must be a non-empty list of BatchSampling. Received: samplings={samplings!r}",
        argument="samplings",
    )
    names = [s.name for s in samplings]
    check(
        len(set(names)) == len(names),
        f"samplings must have distinct names. Received: names {names}",
        argument="samplings",
    )
    sizes = {s.num_classes for s in samplings}
    check(
        len(sizes) == 1,
        f"samplings must all have the same number of classes. Received: {sorted(sizes)} classes",
        argument="samplings",
    )


def _check_sampling(moments: ClassMoments, sampling: BatchSampling, batch_size: int) -> None:
    check(
        sampling.num_classes == moments.num_classes,
        f"sampling {sampling.name!r} has {sampling.num_classes} classes but the moments have {moments.num_classes}. "
        f"Received: class_shares={list(sampling.class_shares)}",
        argument="sampling",
    )
    _check_batch_size(moments.class_counts, sampling, batch_size)


def _check_batch_size(class_counts: np.ndarray, sampling: BatchSampling, batch_size: int) -> None:
    """B must fit the data and the sampling: one pass, and a stratified batch's classes."""
    _check_int(batch_size, "batch_size", minimum=1)
    total = int(np.sum(class_counts))
    check(
        batch_size <= total,
        f"batch_size={batch_size} is larger than the data ({total} examples). Received: batch_size={batch_size}",
        argument="batch_size",
    )
    shares = np.asarray(sampling.class_shares)
    empty = np.flatnonzero((shares > 0) & (np.asarray(class_counts) == 0))
    check(
        not len(empty),
        f"sampling {sampling.name!r} draws class {empty[0] if len(empty) else ''}, which has no examples. "
        f"Received: class_shares={shares.tolist()}",
        argument="sampling",
    )
    if sampling.pass_size is not None:
        check(
            batch_size <= sampling.pass_size,
            f"batch_size={batch_size} is larger than one pass of {sampling.name!r} ({sampling.pass_size} examples), "
            f"which batches without replacement. Received: batch_size={batch_size}",
            argument="batch_size",
        )
    if sampling.fixed_counts and sampling.class_population is not None:
        per_batch = stratified_counts(batch_size, shares)
        over = np.flatnonzero(per_batch > np.asarray(sampling.class_population))
        check(
            not len(over),
            f"batch_size={batch_size} asks {per_batch[over[0]] if len(over) else ''} examples of class "
            f"{over[0] if len(over) else ''} per stratified batch, more than the class holds. "
            f"Received: batch_size={batch_size}",
            argument="batch_size",
        )


def _minority(class_counts: np.ndarray, minority_class: int | None) -> int:
    if minority_class is None:
        counts = np.where(np.asarray(class_counts) > 0, class_counts, np.iinfo(np.int64).max)
        return int(np.argmin(counts))
    check(
        _is_int(minority_class) and 0 <= minority_class < len(class_counts),
        f"minority_class must be a class id in [0, {len(class_counts)}). Received: minority_class={minority_class!r}",
        argument="minority_class",
    )
    return int(minority_class)


# ---------------------------------------------------------------------------------------------------------------
# Sampled mode.


@dataclasses.dataclass(frozen=True)
class NoiseEstimate:
    """Noise measured from batches of a real pipeline, with standard errors (`*_se`).

    Attributes:
      method: `one_batch_size` (`sampled`) or `two_batch_sizes` (`two_batch_sizes`).
      batch_sizes: (B,) or (B_small, B_big).
      num_batches: batches (or pairs of batches) used.
      grad_sq_norm: |G|^2, unbiased.
      trace_cov: tr Cov(g_B), unbiased (one batch size only; NaN otherwise).
      trace_sigma: tr Sigma: B tr Cov(g_B) (one size), or the two-batch-size estimate.
      simple_noise_scale: B_simple = tr Sigma / |G|^2.
      p_no_minority: share of batches without the minority class (NaN without `minority_class`).
      mean_gradient: G estimated as the mean batch gradient, (P,) (one batch size only; None otherwise).
    """

    method: str
    batch_sizes: tuple[int, ...]
    num_batches: int
    grad_sq_norm: float
    grad_sq_norm_se: float
    trace_cov: float
    trace_cov_se: float
    trace_sigma: float
    trace_sigma_se: float
    simple_noise_scale: float
    simple_noise_scale_se: float
    p_no_minority: float
    p_no_minority_se: float
    mean_gradient: np.ndarray | None = None

    def as_row(self) -> dict[str, Any]:
        """The scalar fields, with `batch_sizes` as text ("16" or "8,64")."""
        row = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "mean_gradient"}
        row["batch_sizes"] = ",".join(str(b) for b in self.batch_sizes)
        return row


# Batches are dealt round robin into this many groups; the jackknife leaves out one group at a time.
_JACKKNIFE_GROUPS = 32


def sampled(
    model: keras.Model,
    dataset: tf.data.Dataset,
    *,
    num_batches: int,
    loss=None,
    minority_class: int | None = None,
) -> NoiseEstimate:
    """Estimates G, tr Cov, |G|^2, tr Sigma and B_simple from batches of a strategy's real pipeline.

    With g_j the gradient of batch j (the loss with its reduction and the batch's sample weights) over n batches:
    G = mean g_j; tr Cov = sum |g_j - G|^2 / (n - 1); |G|^2 = (|sum g_j|^2 - sum |g_j|^2) / (n (n - 1)) (unbiased:
    the mean of g_i . g_j over pairs i != j); tr Sigma = B tr Cov; B_simple = tr Sigma / |G|^2. Standard errors:
    delete-a-group jackknife over 32 groups of batches. Memory: 32 gradient-sized vectors.

    Args:
      model: any single-output Keras model.
      dataset: batches `(x, y)` or `(x, y, sample_weight)` of one size B, at least `num_batches` of them.
      num_batches: batches to draw, >= 2 (docs/diagnostics.md states the agreement with the exact mode per count).
      loss: the Keras loss with the reduction training uses; None means the model's compiled loss.
      minority_class: also estimate the share of batches without this class.

    Returns:
      A `NoiseEstimate`.

    Raises:
      UserInputError: too few batches, batches of varying size, no loss.
    """
    _check_int(num_batches, "num_batches", minimum=2)
    gradients = _BatchGradients.of(model, loss)
    groups = min(_JACKKNIFE_GROUPS, num_batches)
    sums = np.zeros((groups, gradients.size))
    squares, counts = np.zeros(groups), np.zeros(groups)
    absent, seen = 0, 0
    for g, y in gradients.stream(dataset, num_batches):
        group = (seen + np.arange(len(g))) % groups
        np.add.at(sums, group, g)
        np.add.at(squares, group, np.einsum("ij,ij->i", g, g))
        np.add.at(counts, group, 1)
        seen += len(g)
        if minority_class is not None:
            absent += int(np.sum(~np.any(y == minority_class, axis=1)))
    batch_size = int(y.shape[1])
    estimates = _one_size_estimates(sums, squares, counts, batch_size)
    p, p_se = (float("nan"),) * 2
    if minority_class is not None:
        p = absent / num_batches
        p_se = math.sqrt(p * (1 - p) / num_batches)
    return NoiseEstimate(
        method="one_batch_size",
        batch_sizes=(batch_size,),
        num_batches=num_batches,
        p_no_minority=p,
        p_no_minority_se=p_se,
        mean_gradient=sums.sum(0) / num_batches,
        **estimates,
    )


def _one_size_estimates(sums: np.ndarray, squares: np.ndarray, counts: np.ndarray, batch_size: int) -> dict:
    """Estimates and jackknife standard errors from per-group sums of g_j (J, P), of |g_j|^2 (J,), counts (J,)."""
    total, total_sq, n = sums.sum(0), squares.sum(), counts.sum()
    cross = sums @ total  # S_g . S
    group_sq = np.einsum("ij,ij->i", sums, sums)

    def values(s_sq, q, m):
        trace_cov = (q - s_sq / m) / (m - 1)
        grad_sq = (s_sq - q) / (m * (m - 1))
        return np.array([grad_sq, trace_cov, batch_size * trace_cov, batch_size * trace_cov / grad_sq])

    full = values(total @ total, total_sq, n)
    # |S - S_g|^2 = |S|^2 - 2 S . S_g + |S_g|^2: every leave-one-group-out estimate from dot products.
    with np.errstate(divide="ignore", invalid="ignore"):
        left_out = np.stack(
            [
                values(total @ total - 2 * cross[g] + group_sq[g], total_sq - squares[g], n - counts[g])
                for g in range(len(counts))
            ]
        )
    groups = len(counts)
    se = np.sqrt((groups - 1) / groups * ((left_out - left_out.mean(0)) ** 2).sum(0))
    names = ("grad_sq_norm", "trace_cov", "trace_sigma", "simple_noise_scale")
    return {
        **dict(zip(names, full.tolist(), strict=True)),
        **{f"{k}_se": float(v) for k, v in zip(names, se, strict=True)},
    }


def two_batch_sizes(
    model: keras.Model,
    small_batches: tf.data.Dataset,
    big_batches: tf.data.Dataset,
    *,
    num_batches: int,
    loss=None,
) -> NoiseEstimate:
    """The two-batch-size estimator of |G|^2 and tr Sigma (McCandlish et al. 2018, Appendix A).

    With E|g_B|^2 = |G|^2 + tr Sigma / B, each pair of a small and a big batch gives the unbiased estimates
    |G|^2 = (B_big |g_big|^2 - B_small |g_small|^2) / (B_big - B_small) and
    tr Sigma = (|g_small|^2 - |g_big|^2) / (1 / B_small - 1 / B_big); both are averaged over the pairs (standard
    error: their standard deviation / sqrt(n)), and B_simple is the ratio of the averages (delta-method standard
    error), as the paper recommends. Only gradient norms are kept, so memory does not grow with the model.

    Args:
      model: any single-output Keras model.
      small_batches: a strategy's pipeline at batch size B_small.
      big_batches: the same pipeline at B_big > B_small (another seed keeps the pairs independent).
      num_batches: pairs to draw, >= 2.
      loss: the Keras loss training uses; None means the model's compiled loss.

    Returns:
      A `NoiseEstimate` (`trace_cov` and `mean_gradient` are not measured: NaN and None).

    Raises:
      UserInputError: too few batches, B_big <= B_small, batches of varying size.
    """
    _check_int(num_batches, "num_batches", minimum=2)
    gradients = _BatchGradients.of(model, loss)
    norms, sizes = [], []
    for dataset in (small_batches, big_batches):
        parts = [(np.einsum("ij,ij->i", g, g), y.shape[1]) for g, y in gradients.stream(dataset, num_batches)]
        norms.append(np.concatenate([n for n, _ in parts]))
        sizes.append(int(parts[0][1]))
    norms = np.stack(norms, axis=1)
    small, big = sizes
    check(
        big > small,
        f"big_batches must hold more examples than small_batches. Received: batch sizes {small} and {big}",
        argument="big_batches",
    )
    grad_sq = (big * norms[:, 1] - small * norms[:, 0]) / (big - small)
    sigma = (norms[:, 0] - norms[:, 1]) / (1 / small - 1 / big)
    g_mean, s_mean = grad_sq.mean(), sigma.mean()
    cov = np.cov(np.stack([sigma, grad_sq])) / num_batches
    ratio = s_mean / g_mean
    ratio_var = (cov[0, 0] - 2 * ratio * cov[0, 1] + ratio**2 * cov[1, 1]) / g_mean**2
    return NoiseEstimate(
        method="two_batch_sizes",
        batch_sizes=(small, big),
        num_batches=num_batches,
        grad_sq_norm=float(g_mean),
        grad_sq_norm_se=float(math.sqrt(cov[1, 1])),
        trace_cov=float("nan"),
        trace_cov_se=float("nan"),
        trace_sigma=float(s_mean),
        trace_sigma_se=float(math.sqrt(cov[0, 0])),
        simple_noise_scale=float(ratio),
        simple_noise_scale_se=float(math.sqrt(max(ratio_var, 0.0))),
        p_no_minority=float("nan"),
        p_no_minority_se=float("nan"),
    )


class _BatchGradients:
    """Flat gradients of the loss of many batches at once (with the loss's reduction and each batch's weights).

    Batches are stacked `chunk` at a time and differentiated one after the other inside one graph (`tf.map_fn`),
    so a batch costs its backward pass rather than a Python round trip; unlike `tf.vectorized_map` it traces in a
    fraction of a second.
    """

    def __init__(self, model: keras.Model, loss: keras.losses.Loss):
        self._model = model
        self._loss = loss
        self.size = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
        self._chunk = max(1, min(_MAX_STACKED_BATCHES, _CHUNK_BYTES // (4 * max(self.size, 1))))
        self._fn = tf.function(self._gradients, reduce_retracing=True, autograph=False)

    @classmethod
    def of(cls, model: keras.Model, loss) -> _BatchGradients:
        """The batch-gradient program of `model`, reused while the model and loss stay the same."""
        _check_single_output(model)
        return _cached(model, loss, cls, lambda: cls(model, _resolve_loss(model, loss)))

    def _gradients(self, x, y, w):
        weights = self._model.trainable_weights

        def one(batch):
            xb, yb, wb = batch
            with tf.GradientTape() as tape:
                value = self._loss(yb, self._model(xb, training=False), sample_weight=wb)
            grads = tape.gradient(value, weights, unconnected_gradients=tf.UnconnectedGradients.ZERO)
            return tf.concat([tf.reshape(tf.cast(g, tf.float32), [-1]) for g in grads], 0)

        return tf.map_fn(one, (x, y, w), fn_output_signature=tf.float32)

    def stream(self, dataset: tf.data.Dataset, num_batches: int):
        """Yields (gradients (c, P) float64, labels (c, B)) for the first `num_batches` batches of `dataset`.

        Raises:
          UserInputError: the dataset holds fewer batches, or batches of different sizes.
        """
        taken = 0
        stacked = dataset.take(num_batches).map(_with_weights).batch(self._chunk)
        try:
            for x, y, w in stacked:
                taken += int(y.shape[0])
                yield self._fn(x, y, w).numpy().astype(np.float64), y.numpy()
        except tf.errors.InvalidArgumentError as error:
            raise UserInputError(
                "dataset must yield batches of one size (build it with drop_remainder=True). "
                f"Received: batches of different sizes ({str(error).splitlines()[0][:80]})",
                argument="dataset",
            ) from None
        check(
            taken == num_batches,
            f"num_batches={num_batches} is more than the dataset holds ({taken} batches); repeat it. "
            f"Received: num_batches={num_batches}",
            argument="num_batches",
        )


def _with_weights(*element):
    """(x, y) or (x, y, w) -> (x, y, w) with w = 1 when absent (same loss under either reduction)."""
    x, y, w = keras.utils.unpack_x_y_sample_weight(element if len(element) > 1 else element[0])
    return x, y, tf.ones(tf.shape(y)[:1]) if w is None else tf.cast(w, tf.float32)


def _check_single_output(model: keras.Model) -> None:
    check(
        len(model.outputs or []) <= 1,
        f"model must have one output for the gradient-noise diagnostics. Received: {len(model.outputs)} outputs",
        argument="model",
    )


# ---------------------------------------------------------------------------------------------------------------
# During training.


def subsample(labels, *, examples_per_class: int = DEFAULT_EXAMPLES_PER_CLASS, seed: int = 0) -> np.ndarray:
    """Indices of a per-class subsample: up to `examples_per_class` of each class, without replacement, sorted.

    Classes with fewer examples are taken whole, so a rare class keeps all of its examples. Same seed, same
    indices.
    """
    labels = _check_labels(labels)
    _check_int(examples_per_class, "examples_per_class", minimum=2)
    rng = np.random.default_rng(seed)
    chosen = []
    for c in range(int(labels.max()) + 1):
        index = np.flatnonzero(labels == c)
        chosen.append(
            index if len(index) <= examples_per_class else rng.choice(index, examples_per_class, replace=False)
        )
    return np.sort(np.concatenate(chosen))


class GradientNoise(keras.callbacks.Callback):
    """Computes the gradient-noise diagnostics of several strategies every N optimizer steps during `fit`.

    At optimizer steps 0, N, 2N, ... (and after the last step) the exact mode runs at the current weights on a
    fixed, seeded per-class subsample of the training data (`subsample`: up to `examples_per_class` examples of
    each class, 1024 by default), once, and `predict` evaluates every strategy from those moments. The model's
    weights, optimizer state and random state are left untouched: training is the same as without the callback.

    Logged per diagnosis: TensorBoard scalars `diagnostics/<strategy>/<quantity>` for every `QUANTITIES` entry and
    `diagnostics/class_<c>/<mean_norm|second_moment|within_variance>`, in `log_dir/train`; the same numbers in
    `dataframe()` (one row per step and strategy).

    Args:
      log_dir: TensorBoard directory; events go to `log_dir/train`.
      features: the training features (array or nested structure), leading dimension N.
      labels: the training labels, (N,).
      samplings: the strategies to diagnose (the run's own, or all to compare).
      batch_size: B.
      every_n_steps: diagnose every this many optimizer steps.
      examples_per_class: subsample size per class.
      minority_class: the class of `p_no_minority`; None means the rarest.
      loss: per-example Keras loss; None means the model's compiled loss.
      seed: seeds the subsample.

    Example:
    ```python
    noise = GradientNoise("logs/run1", x, y, [BatchSampling.natural(counts)], batch_size=16)
    model.fit(ds, epochs=5, callbacks=[noise])
    noise.dataframe()
    ```
    """

    def __init__(
        self,
        log_dir: str,
        features,
        labels,
        samplings: Sequence[BatchSampling],
        *,
        batch_size: int,
        every_n_steps: int = DEFAULT_EVERY_N_STEPS,
        examples_per_class: int = DEFAULT_EXAMPLES_PER_CLASS,
        minority_class: int | None = None,
        loss=None,
        seed: int = 0,
    ):
        super().__init__()
        check(
            isinstance(log_dir, (str, os.PathLike)) and bool(str(log_dir)),
            f"log_dir must be a directory path. Received: log_dir={log_dir!r}",
            argument="log_dir",
        )
        _check_int(every_n_steps, "every_n_steps", minimum=1)
        _check_samplings(samplings)
        self.labels = _check_labels(labels)
        self.log_dir = os.fspath(log_dir)
        self.features = features
        self.samplings = list(samplings)
        self.batch_size = batch_size
        self.every_n_steps = every_n_steps
        self.examples_per_class = examples_per_class
        self.minority_class = minority_class
        self.loss = loss
        self.seed = seed
        k = self.samplings[0].num_classes
        self._class_counts = np.bincount(self.labels, minlength=k)[:k]
        for s in self.samplings:
            _check_batch_size(self._class_counts, s, batch_size)
        index = subsample(self.labels, examples_per_class=examples_per_class, seed=seed)
        self._features = tf.nest.map_structure(lambda f: np.asarray(f)[index], features)
        self._labels = self.labels[index]
        self._rows = []
        self._events = None

    def get_config(self) -> dict:
        return {
            "log_dir": self.log_dir,
            "features": self.features,
            "labels": self.labels,
            "samplings": [s.to_dict() for s in self.samplings],
            "batch_size": self.batch_size,
            "every_n_steps": self.every_n_steps,
            "examples_per_class": self.examples_per_class,
            "minority_class": self.minority_class,
            "loss": self.loss if self.loss is None or isinstance(self.loss, str) else keras.losses.serialize(self.loss),
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config: dict) -> GradientNoise:
        config = dict(config)
        config["samplings"] = [BatchSampling.from_dict(s) for s in config["samplings"]]
        if isinstance(config["loss"], dict):
            config["loss"] = keras.losses.deserialize(config["loss"])
        return cls(**config)

    def tags(self) -> list[str]:
        """TensorBoard tags of one diagnosis, in column order."""
        tags = [f"diagnostics/{s.name}/{q}" for s in self.samplings for q in QUANTITIES]
        k = self.samplings[0].num_classes
        return tags + [f"diagnostics/class_{c}/{q}" for c in range(k) for q in CLASS_QUANTITIES]

    def diagnose(self, step: int) -> list[dict[str, Any]]:
        """Runs the diagnostics at the current weights and records them as optimizer step `step`.

        Returns:
          The rows recorded: one dict per strategy (the columns of `dataframe()`).
        """
        moments = class_moments(
            self.model,
            self._features,
            self._labels,
            num_classes=self.samplings[0].num_classes,
            class_counts=self._class_counts,
            loss=self.loss,
        )
        classes = moments.as_row()
        rows = [
            {
                "step": step,
                "epoch": self._epoch,
                **predict(moments, s, batch_size=self.batch_size, minority_class=self.minority_class).as_row(),
                **classes,
            }
            for s in self.samplings
        ]
        self._rows.extend(rows)
        values = [row[q] for row in rows for q in QUANTITIES] + list(classes.values())
        if self._events is None:
            self._events = events.ScalarEventFile(os.path.join(self.log_dir, "train"), self.tags())
        self._events.write_scalars(np.array([step]), np.array([values], np.float64))
        self._last = step
        return rows

    def dataframe(self) -> pd.DataFrame:
        """One row per diagnosis and strategy: `step`, `epoch`, `NoisePrediction.as_row()`, per-class moments."""
        if not self._rows:
            return pd.DataFrame(columns=["step", "epoch", "strategy", "batch_size", "closed_form", *QUANTITIES])
        return pd.DataFrame(self._rows)

    def to_csv(self, path: str) -> None:
        """Writes `dataframe()` to `path` (no index column)."""
        self.dataframe().to_csv(path, index=False)

    def summary(self) -> dict[str, float]:
        """Scalar columns per strategy s: `diagnostics_<s>_<q>_mean` and `_final` for the main quantities q
        (simple_noise_scale, trace_cov, grad_sq_norm, distance_to_balanced), and `diagnostics_<s>_p_no_minority`."""
        frame = self.dataframe()
        summary = {}
        for name, rows in frame.groupby("strategy", sort=False):
            for q in ("simple_noise_scale", "trace_cov", "grad_sq_norm", "distance_to_balanced"):
                summary[f"diagnostics_{name}_{q}_mean"] = float(rows[q].mean())
                summary[f"diagnostics_{name}_{q}_final"] = float(rows[q].iloc[-1])
            summary[f"diagnostics_{name}_p_no_minority"] = float(rows["p_no_minority"].iloc[-1])
        return summary

    # Keras hooks.

    def on_train_begin(self, logs=None):
        os.makedirs(self.log_dir, exist_ok=True)
        self._step = int(self.model.optimizer.iterations.numpy())
        self._steps_per_call = self.model.steps_per_execution
        self._next = self._step
        self._last = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        # The step is counted on the host: reading optimizer.iterations would wait for the device every step.
        if self._step >= self._next:
            self.diagnose(self._step)
            self._next = (self._step // self.every_n_steps + 1) * self.every_n_steps
        self._step += self._steps_per_call

    def on_train_end(self, logs=None):
        if self._last != self._step:
            self.diagnose(self._step)
        if self._events is not None:
            self._events.close()
            self._events = None


# ---------------------------------------------------------------------------------------------------------------
# Small helpers.


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_int(value, argument: str, *, minimum: int) -> None:
    check(
        _is_int(value) and value >= minimum,
        f"{argument} must be an integer >= {minimum}. Received: {argument}={value!r}",
        argument=argument,
    )


def _check_labels(labels) -> np.ndarray:
    labels = np.asarray(labels)
    check(
        labels.ndim == 1 and len(labels) > 0 and np.issubdtype(labels.dtype, np.integer) and labels.min() >= 0,
        f"labels must be a non-empty 1-D array of class ids >= 0. Received: labels of shape {labels.shape}, "
        f"dtype {labels.dtype}",
        argument="labels",
    )
    return labels.astype(np.int64)


def _one_hot(labels, num_classes: int) -> np.ndarray:
    labels = np.asarray(labels)
    check(
        labels.max() < num_classes,
        f"labels must be class ids below num_classes={num_classes}. Received: a label {labels.max()}",
        argument="labels",
    )
    return np.eye(num_classes)[labels]
