"""How many seeds you need, from your own grid's measured noise.

A power claim transfers only to grids with the same noise and the same number of tests. So the figures here
come from a finished grid: the standard deviation of the paired differences it measured, its number of pairs
and the size of the test family its verdict adjusts over (Holm's first step is Bonferroni: each test at
alpha / tests). The paired t-test's power (scipy's noncentral t; statsmodels' `TTestPower` returns NaN beyond
about 100 pairs at small levels) stands in for the sign-flip test's, which is close to it for normal
differences and can never reject below 2 / 2^n, so no seed count smaller than that floor is returned.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize
from scipy import stats as scipy_stats

from imbal_keras.errors import check
from imbal_keras.grid import stats

POWER = 0.8
# No search beyond this many seeds: an effect that needs more is reported as needing more than this.
MAX_SEEDS = 10_000


def detectable_effect(
    difference_std: float, seeds: int, *, tests: int = 1, power: float = POWER, alpha: float = 1 - stats.CONFIDENCE
) -> float:
    """The smallest true mean difference a paired two-sided test detects with probability `power`.

    Args:
      difference_std: the standard deviation of the paired differences (per seed).
      seeds: the number of pairs.
      tests: the size of the test family the answer is adjusted over.
      power: the detection probability wanted.
      alpha: the family-wise error rate.

    Returns:
      The effect in the metric's units; infinity when `seeds` pairs cannot reject at alpha / tests at all
      (2 / 2^seeds is the sign-flip test's smallest p-value), NaN without a standard deviation.

    Raises:
      UserInputError: `tests` < 1 or `power` outside (0, 1).
    """
    _check(tests, power)
    if not np.isfinite(difference_std) or seeds < 2:
        return math.nan
    if 2 / 2**seeds >= alpha / tests:
        return math.inf
    level = alpha / tests
    standardized = optimize.brentq(lambda e: _power(e, seeds, level) - power, 1e-9, 100.0)
    return float(standardized * difference_std)


def seeds_needed(
    effect: float,
    difference_std: float,
    *,
    tests: int = 1,
    power: float = POWER,
    alpha: float = 1 - stats.CONFIDENCE,
) -> int:
    """The fewest pairs with which a paired two-sided test detects a true mean difference `effect` with `power`.

    Args:
      effect: the true difference, in the metric's units (its sign does not matter).
      difference_std: the standard deviation of the paired differences.
      tests: the size of the test family.
      power: the detection probability wanted.
      alpha: the family-wise error rate.

    Returns:
      The number of seeds, at least the sign-flip floor (the smallest n with 2 / 2^n < alpha / tests); `MAX_SEEDS`
      + 1 when even that many are not enough, -1 without a standard deviation or with a zero effect.

    Raises:
      UserInputError: `tests` < 1 or `power` outside (0, 1).
    """
    _check(tests, power)
    if not np.isfinite(difference_std) or effect == 0 or not np.isfinite(effect):
        return -1
    if difference_std == 0:
        return _floor(alpha / tests)
    standardized, level = abs(effect) / difference_std, alpha / tests
    if _power(standardized, MAX_SEEDS, level) < power:
        return MAX_SEEDS + 1
    low, high = 2, MAX_SEEDS  # the power grows with n: bisect for the first n that reaches it
    while low < high:
        middle = (low + high) // 2
        if _power(standardized, middle, level) >= power:
            high = middle
        else:
            low = middle + 1
    return max(low, _floor(level))


def _power(standardized: float, seeds: int, level: float) -> float:
    """Power of the two-sided paired t-test at `level` for a mean difference of `standardized` sds, `seeds` pairs."""
    critical = scipy_stats.t.ppf(1 - level / 2, seeds - 1)
    noncentrality = standardized * math.sqrt(seeds)
    value = scipy_stats.nct.sf(critical, seeds - 1, noncentrality) + scipy_stats.nct.cdf(
        -critical, seeds - 1, noncentrality
    )
    if np.isnan(value):  # scipy's noncentral t fails far in its tails, where the power is 0 or 1
        return 1.0 if noncentrality > critical else 0.0
    return float(value)


def _floor(level: float) -> int:
    """The smallest n with 2 / 2^n < level."""
    return int(math.floor(math.log2(2 / level))) + 1


def _check(tests: int, power: float) -> None:
    check(tests >= 1, f"tests must be at least 1. Received: tests={tests!r}")
    check(0 < power < 1, f"power must be in (0, 1). Received: power={power!r}")


__all__ = ["MAX_SEEDS", "POWER", "detectable_effect", "seeds_needed"]
