"""The exact mode: each strategy's mini-batch gradient in closed form from the per-class moments.

A strategy's `BatchSampling` fixes the distribution of a batch's class counts (`BatchCounts`: fixed,
multivariate hypergeometric or multinomial); conditioning on them gives the mean G and tr Cov(g_B) of the batch
gradient as forms in the class moments, split into a within-class and a between-class term (`predict`), for every
strategy from one set of moments (`noise_table`, `exact`). `describe` reads a registered strategy's
`BatchSampling` from the registry.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import keras
import numpy as np
import pandas as pd
from scipy.special import gammaln

from imbal_keras import strategies
from imbal_keras.data.batch_sampling import BatchSampling
from imbal_keras.data.shares import apportion, balanced, stratified_counts
from imbal_keras.diagnostics._common import check_int
from imbal_keras.diagnostics.moments import DEFAULT_MAX_PARAMETERS, ClassMoments, check_labels, class_moments
from imbal_keras.errors import UserInputError, check, is_integer

__all__ = [
    "MAX_COMPOSITIONS",
    "QUANTITIES",
    "BatchCounts",
    "NoisePrediction",
    "check_batch_size",
    "check_samplings",
    "describable",
    "describe",
    "exact",
    "noise_table",
    "predict",
]

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


@dataclasses.dataclass(frozen=True)
class BatchCounts:
    """The distribution of a batch's class counts k (K,) under a `BatchSampling` at batch size B."""

    batch_size: int
    shares: np.ndarray
    fixed: np.ndarray | None = None
    pass_counts: np.ndarray | None = None

    @classmethod
    def of(cls, sampling: BatchSampling, batch_size: int) -> BatchCounts:
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
    counts = BatchCounts.of(sampling, batch_size)
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
        p_no_minority=BatchCounts.of(sampling, batch_size).p_absent(minority),
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
    check_samplings(samplings)
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
    check_samplings(samplings)
    labels = check_labels(labels)
    num_classes = samplings[0].num_classes
    counts = np.bincount(labels, minlength=num_classes)[:num_classes] if class_counts is None else class_counts
    for s in samplings:
        check_batch_size(np.asarray(counts), s, batch_size)
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


def check_samplings(samplings) -> None:
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
    check_batch_size(moments.class_counts, sampling, batch_size)


def check_batch_size(class_counts: np.ndarray, sampling: BatchSampling, batch_size: int) -> None:
    """B must fit the data and the sampling: one pass, and a stratified batch's classes."""
    check_int(batch_size, "batch_size", minimum=1)
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
        is_integer(minority_class) and 0 <= minority_class < len(class_counts),
        f"minority_class must be a class id in [0, {len(class_counts)}). Received: minority_class={minority_class!r}",
        argument="minority_class",
    )
    return int(minority_class)
