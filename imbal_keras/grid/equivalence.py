"""Equivalence: can two arms be called equal within a margin that does not matter?

A test of "no difference" that does not reject says nothing; equivalence has to be shown. Two one-sided tests
(TOST, Schuirmann 1987) call two arms equivalent within +-margin at level alpha when the (1 - 2 alpha) interval
of the difference lies inside (-margin, +margin); the chance of that when the true difference sits on the margin
is at most alpha. Here:

- a paired difference (final metric, mean metric over training): the two one-sided tests as sign-flip tests
  (`sign_flip_interval`): exact, every sign pattern counted (meet in the middle, `imbal_keras.grid.sign_flip`),
  up to 24 pairs, whenever the differences are symmetric about the margin, heavy tails included, where the
  paired t TOST said "equivalent" 6.2% of the time for t(3) values at 20 seeds; a Monte Carlo test (9,999
  random patterns plus the observed one) beyond;
- a ratio of spreads: the (1 - 2 alpha) jackknife interval of sd(a) / sd(b) (`stats.spread_ratio_interval`)
  inside (1 / margin, margin).

Calibration under normal, skewed, heavy-tailed, discrete and censored values: docs/statistics.md.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from imbal_keras.errors import check
from imbal_keras.grid import sign_flip, stats

EQUIVALENT = "equivalent"
NOT_SHOWN = "not shown equivalent"


@dataclasses.dataclass(frozen=True)
class Margins:
    """What counts as a difference that does not matter, per figure of a verdict.

    Attributes:
      metric: the final metric, absolute (0.02 = two points of AUPRC).
      area: the mean metric over training, absolute.
      spread: the ratio of standard deviations, a factor > 1 (1.5: either arm's spread within 1.5 times the
        other's).

    Raises:
      UserInputError: a margin that is not positive, or a spread margin not above 1.
    """

    metric: float = 0.02
    area: float = 0.02
    spread: float = 1.5

    def __post_init__(self):
        for name in ("metric", "area"):
            value = getattr(self, name)
            check(value > 0, f"the {name} equivalence margin must be positive. Received: {name}={value!r}")
        check(self.spread > 1, f"the spread equivalence margin must exceed 1. Received: spread={self.spread!r}")


def paired_difference(
    a: Sequence[float],
    b: Sequence[float],
    margin: float,
    *,
    confidence: float = stats.CONFIDENCE,
    min_seeds: int = stats.MIN_SEEDS,
) -> dict[str, float | str]:
    """TOST of "mean(a - b) lies within +-margin", paired; pairs with a NaN are dropped.

    Args:
      a: the first arm's figure per seed.
      b: the second arm's figure on the same seeds.
      margin: the half-width of the equivalence region, > 0.
      confidence: 1 - alpha of each one-sided test; the interval reported has coverage 1 - 2 alpha.
      min_seeds: fewer pairs than this answer "too few seeds".

    Returns:
      equivalence_p (the larger one-sided sign-flip p-value), equivalence_ci_low/high (the 1 - 2 alpha interval
      of the mean difference that inverts the same tests, `sign_flip_interval`) and equivalence: "equivalent",
      "not shown equivalent", "identical", "too few seeds" or "no spread to compare".
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    d = a - b
    out = {"equivalence_p": math.nan, "equivalence_ci_low": math.nan, "equivalence_ci_high": math.nan}
    status = stats.difference_status(a, b, min_seeds)
    if status != stats.OK:
        return {**out, "equivalence": status}
    if sign_flip.is_exact(len(d)):
        above, below = sign_flip.upper_p(d, -margin), sign_flip.lower_p(d, margin)
    else:
        means, ties = _flipped_means(d)
        total = len(means) + ties
        above, below = (ties + np.sum(means <= -margin)) / total, (ties + np.sum(means >= margin)) / total
    out["equivalence_p"] = float(max(above, below))
    out["equivalence_ci_low"], out["equivalence_ci_high"] = sign_flip_interval(d, 1 - 2 * (1 - confidence))
    out["equivalence"] = EQUIVALENT if out["equivalence_p"] <= 1 - confidence else NOT_SHOWN
    return out


def spread_ratio(
    a: Sequence[float],
    b: Sequence[float],
    margin: float,
    *,
    confidence: float = stats.CONFIDENCE,
    min_seeds: int = stats.MIN_SEEDS,
) -> dict[str, float | str]:
    """Whether sd(a) / sd(b) lies within (1 / margin, margin): its (1 - 2 alpha) jackknife interval inside it.

    Args:
      a: the first arm's figure per seed.
      b: the second arm's figure on the same seeds.
      margin: the largest ratio that does not matter, > 1.
      confidence: 1 - alpha of each one-sided test.
      min_seeds: fewer pairs than this answer "too few seeds".

    Returns:
      spread_ratio, spread_ratio_ci_low/high (the 1 - 2 alpha interval) and spread_equivalence.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    ratio, low, high = (float(x[0]) for x in stats.spread_ratio_interval(a, b, confidence=1 - 2 * (1 - confidence)))
    out = {"spread_ratio": ratio, "spread_ratio_ci_low": low, "spread_ratio_ci_high": high}
    if len(a) < max(min_seeds, 2):
        answer = stats.TOO_FEW_SEEDS
    elif stats.identical(a, b):
        answer = stats.IDENTICAL
    elif math.isnan(low):
        answer = stats.NO_SPREAD
    else:
        answer = EQUIVALENT if 1 / margin < low and high < margin else NOT_SHOWN
    return {**out, "spread_equivalence": answer}


def sign_flip_interval(differences: Sequence[float], coverage: float) -> tuple[float, float]:
    """The interval of the mean paired difference that inverts the one-sided sign-flip tests.

    The one-sided test of "mean <= delta" flips the signs of d - delta; a pattern that flips the set F of pairs
    reaches the observed sum exactly when the mean of d over F is at most delta, so its p-value is
    (1 + #{F: mean_F(d) <= delta}) / 2^n, and the bounds are order statistics of the means over the flipped
    sets: each one-sided test at level (1 - coverage) / 2 rejects outside. Exact (at least `coverage` for
    differences symmetric about their mean, whatever their tails) up to 24 pairs, every pattern counted
    (`sign_flip.interval`); a Monte Carlo interval from 9,999 random patterns plus the observed one beyond.
    Infinite where the level cannot be reached.

    Args:
      differences: the paired differences a - b.
      coverage: the interval's coverage, e.g. 0.9 for the two one-sided tests at 5%.

    Returns:
      (low, high).
    """
    d = np.asarray(differences, dtype=float)
    if sign_flip.is_exact(len(d)):
        return sign_flip.interval(d, coverage)
    means, ties = _flipped_means(d)
    means = np.sort(means)
    # Reject delta when ties + #{mean_F <= delta} <= alpha * patterns, i.e. when delta < means[allowed].
    allowed = math.floor((1 - coverage) / 2 * (len(means) + ties) + 1e-9) - ties
    if allowed < 0:
        return -math.inf, math.inf
    return float(means[allowed]), float(means[-allowed - 1])


def _flipped_means(d: np.ndarray) -> tuple[np.ndarray, int]:
    """The mean of `d` over the pairs each sign pattern flips, and the number of patterns that flip none.

    A pattern that flips nothing (the observed one, and any random one that happens to be all +1) ties the
    observed sum for every delta, so it counts on both sides of every test.
    """
    flipped = stats.sign_patterns(len(d)) < 0
    count = flipped.sum(axis=1)
    some = count > 0
    return (flipped[some] @ d) / count[some], int(np.sum(~some))


__all__ = ["EQUIVALENT", "NOT_SHOWN", "Margins", "paired_difference", "sign_flip_interval", "spread_ratio"]
