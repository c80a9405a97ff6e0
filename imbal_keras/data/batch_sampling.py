"""How a strategy forms its mini-batches, described as data (`BatchSampling`), in plain NumPy.

Each registered strategy that draws its batches one fixed way declares its `BatchSampling`
(`Strategy.batch_sampling`); the gradient-noise diagnostics (`imbal_keras.diagnostics`) turn it into the mean and
covariance of the strategy's mini-batch gradient. No TensorFlow: the registry imports this module at its top.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from imbal_keras.data.shares import acceptance_probabilities, check_reachable, pass_sizes, resolve_target
from imbal_keras.errors import check, is_integer

__all__ = ["REDUCTIONS", "BatchSampling"]

REDUCTIONS = ("sum_over_batch_size", "mean_with_sample_weight")


@dataclasses.dataclass(frozen=True)
class BatchSampling:
    """How a strategy forms its mini-batches, as data.

    A batch of B examples is drawn in two stages. Its class counts (k_1, ..., k_K) are
    - fixed at `shares.stratified_counts(B, class_shares)` when `fixed_counts` (stratified batches);
    - multivariate hypergeometric when `pass_size` is set: B examples drawn without replacement from one pass of
      `pass_size` examples holding `shares.apportion(pass_size, class_shares)` of each class;
    - multinomial(B, class_shares) otherwise (independent draws).
    Given the counts, the k_c examples of class c are uniform draws from class c: without replacement from
    `class_population[c]` examples (or copies) when given, with replacement otherwise. Example i carries the weight
    `class_weights[y_i]` (1 when None), and the batch gradient is sum_i w_i g_i / B (`sum_over_batch_size`) or
    sum_i w_i g_i / sum_i w_i (`mean_with_sample_weight`).

    Use the constructors, one per pipeline of `imbal_keras.data.pipelines`; what each gets exactly and what it
    approximates is in their docstrings. Schedules (class shares or weights that change during training) are not
    one `BatchSampling`; describe each phase separately.

    Attributes:
      name: the strategy name, used in tables and TensorBoard tags.
      class_shares: expected share of each class in a batch, (K,), summing to 1.
      class_weights: per-class loss weights (K,), or None for weight 1.
      reduction: `sum_over_batch_size` or `mean_with_sample_weight`.
      fixed_counts: every batch holds exactly `stratified_counts(B, class_shares)` examples per class.
      pass_size: examples in one pass when a batch is drawn without replacement from a pass; None: independent.
      class_population: per class, how many examples (or copies) a class's draws are taken from without
        replacement within a pass, (K,); None: with replacement.
    """

    name: str
    class_shares: tuple[float, ...]
    class_weights: tuple[float, ...] | None = None
    reduction: str = "sum_over_batch_size"
    fixed_counts: bool = False
    pass_size: int | None = None
    class_population: tuple[int, ...] | None = None

    def __post_init__(self):
        check(
            isinstance(self.name, str) and bool(self.name) and "/" not in self.name,
            f"name must be a non-empty string without '/'. Received: name={self.name!r}",
            argument="name",
        )
        shares = np.asarray(self.class_shares, dtype=np.float64)
        check(
            shares.ndim == 1
            and len(shares) >= 2
            and np.isfinite(shares).all()
            and (shares >= 0).all()
            and abs(shares.sum() - 1) < 1e-6,
            f"class_shares must be K >= 2 non-negative shares summing to 1. "
            f"Received: class_shares={np.atleast_1d(shares).tolist()}",
            argument="class_shares",
        )
        object.__setattr__(self, "class_shares", tuple((shares / shares.sum()).tolist()))
        if self.class_weights is not None:
            weights = np.asarray(self.class_weights, dtype=np.float64)
            check(
                weights.shape == shares.shape and np.isfinite(weights).all() and (weights >= 0).all(),
                f"class_weights must be {len(shares)} non-negative finite weights, one per class. "
                f"Received: class_weights={np.atleast_1d(weights).tolist()}",
                argument="class_weights",
            )
            check(
                float(weights @ shares) > 0,
                f"class_weights give every sampled class weight 0. Received: class_weights={weights.tolist()}",
                argument="class_weights",
            )
            object.__setattr__(self, "class_weights", tuple(weights.tolist()))
        check(
            self.reduction in REDUCTIONS,
            f"reduction must be one of {', '.join(REDUCTIONS)}. Received: reduction={self.reduction!r}",
            argument="reduction",
        )
        if self.pass_size is not None:
            check(
                is_integer(self.pass_size) and self.pass_size >= 1,
                f"pass_size must be an integer >= 1. Received: pass_size={self.pass_size!r}",
                argument="pass_size",
            )
            object.__setattr__(self, "pass_size", int(self.pass_size))
        if self.class_population is not None:
            population = np.asarray(self.class_population)
            check(
                population.shape == shares.shape
                and np.issubdtype(population.dtype, np.integer)
                and (population >= 0).all(),
                f"class_population must be {len(shares)} non-negative integers, one per class. "
                f"Received: class_population={np.atleast_1d(population).tolist()}",
                argument="class_population",
            )
            object.__setattr__(self, "class_population", tuple(int(p) for p in population))

    @property
    def num_classes(self) -> int:
        return len(self.class_shares)

    @classmethod
    def iid(
        cls,
        class_shares: Sequence[float],
        *,
        class_weights: Sequence[float] | None = None,
        reduction: str = "sum_over_batch_size",
        name: str = "class_sampled",
    ) -> BatchSampling:
        """Independent draws: class c with probability `class_shares[c]`, then an example of it uniformly.

        Exact for `pipelines.class_sampled` with constant shares (class-aware sampling, with replacement).
        """
        return cls(name, tuple(class_shares), _tuple(class_weights), reduction)

    @classmethod
    def natural(cls, class_counts: Sequence[int], *, name: str = "none") -> BatchSampling:
        """`pipelines.natural`: each pass is a permutation of the N examples, cut into batches.

        Exact for every batch inside a pass (all of them when B divides N): B examples without replacement from N.
        """
        return cls.weighted(class_counts, None, name=name)

    @classmethod
    def weighted(
        cls,
        class_counts: Sequence[int],
        class_weights: Sequence[float] | None,
        *,
        reduction: str = "sum_over_batch_size",
        name: str = "class_weight",
    ) -> BatchSampling:
        """`pipelines.weighted`: natural batches, example i weighted by `class_weights[y_i]`. Exact as `natural`."""
        n = _counts(class_counts)
        return cls(
            name,
            tuple(n / n.sum()),
            _tuple(class_weights),
            reduction,
            pass_size=int(n.sum()),
            class_population=tuple(int(c) for c in n),
        )

    @classmethod
    def upsample(
        cls, class_counts: Sequence[int], *, target_distribution: Sequence[float] | None = None, name: str = "upsample"
    ) -> BatchSampling:
        """`pipelines.upsample`: a pass holds m_c = `pass_sizes(mode='up')` draws of class c, shuffled.

        Exact when every m_c is a multiple of n_c (each example then has m_c / n_c copies in a pass) and B divides
        the pass; otherwise the copies are uneven by one and the error is of order B / m_c.
        """
        return cls._resampled(class_counts, target_distribution, "up", name)

    @classmethod
    def downsample(
        cls,
        class_counts: Sequence[int],
        *,
        target_distribution: Sequence[float] | None = None,
        name: str = "downsample",
    ) -> BatchSampling:
        """`pipelines.downsample`: a pass holds m_c <= n_c examples of class c drawn without replacement, shuffled.

        Exact for every batch inside a pass (B divides the pass).
        """
        return cls._resampled(class_counts, target_distribution, "down", name)

    @classmethod
    def rejection(
        cls,
        class_counts: Sequence[int],
        *,
        target_distribution: Sequence[float] | None = None,
        name: str = "rejection",
    ) -> BatchSampling:
        """`pipelines.rejection`: each example is kept with probability a_c in each pass, kept ones in random order.

        Approximated as a pass of its expected size sum_c a_c n_c with the target composition: the binomial spread
        of the kept counts is left out (the class shares of a batch are then slightly less variable than in the
        real stream).
        """
        n = _counts(class_counts)
        t = _target(n, target_distribution)
        kept = acceptance_probabilities(n, t) * n
        return cls(
            name,
            tuple(kept / kept.sum()),
            pass_size=max(1, int(round(kept.sum()))),
            class_population=tuple(int(c) for c in n),
        )

    @classmethod
    def stratified(
        cls,
        class_counts: Sequence[int],
        *,
        target_distribution: Sequence[float] | None = None,
        name: str = "stratified",
    ) -> BatchSampling:
        """`pipelines.stratified`: exactly `stratified_counts(B, t)[c]` examples of class c in every batch.

        Each class is read as its own stream of permutations: exact for every batch whose class-c rows lie inside one
        permutation of the class (all of them when k_c divides n_c for every class).
        """
        n = _counts(class_counts)
        return cls(
            name,
            tuple(_target(n, target_distribution)),
            fixed_counts=True,
            class_population=tuple(int(c) for c in n),
        )

    @classmethod
    def _resampled(cls, class_counts, target_distribution, mode: str, name: str) -> BatchSampling:
        n = _counts(class_counts)
        m = pass_sizes(n, _target(n, target_distribution), mode=mode)
        # A class drawn at most n_c times per pass is a subset without replacement of its n_c examples; one drawn
        # more often is a shuffled multiset of m_c copies.
        return cls(
            name,
            tuple(m / m.sum()),
            pass_size=int(m.sum()),
            class_population=tuple(int(p) for p in np.maximum(m, n)),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able fields (for `GradientNoise.get_config`)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BatchSampling:
        """Inverse of `to_dict`."""
        return cls(**d)


def _tuple(values) -> tuple[float, ...] | None:
    return None if values is None else tuple(float(v) for v in np.asarray(values, dtype=np.float64))


def _counts(class_counts) -> np.ndarray:
    n = np.asarray(class_counts)
    check(
        n.ndim == 1 and len(n) >= 2 and np.issubdtype(n.dtype, np.integer) and (n >= 0).all() and n.sum() > 0,
        f"class_counts must be K >= 2 non-negative integers. Received: class_counts={np.atleast_1d(n).tolist()}",
        argument="class_counts",
    )
    return n.astype(np.int64)


def _target(counts: np.ndarray, target_distribution) -> np.ndarray:
    t = resolve_target(target_distribution, len(counts))
    check_reachable(counts, t)
    return t / t.sum()
