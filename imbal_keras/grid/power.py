"""How many seeds you need, from your own grid's measured noise.

A power claim transfers only to grids with the same noise and the same number of tests. So the figures here
come from a finished grid: the standard deviation of the paired differences it measured, its number of pairs
and the size of the test family its verdict adjusts over (Holm's first step is Bonferroni: each test at
alpha / tests). The t-test's power (statsmodels' `TTestPower`, the noncentral t) stands in for the sign-flip
test's, which is close to it for normal differences and can never reject below 2 / 2^n, so no seed count
smaller than that floor is returned.
"""

from __future__ import annotations

import math

import numpy as np
from statsmodels.stats.power import TTestPower

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
    standardized = TTestPower().solve_power(nobs=seeds, alpha=alpha / tests, power=power, alternative="two-sided")
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
    standardized = abs(effect) / difference_std
    analysis = TTestPower()
    if analysis.power(standardized, MAX_SEEDS, alpha / tests) < power:
        return MAX_SEEDS + 1
    low, high = 2, MAX_SEEDS  # the power grows with n: bisect for the first n that reaches it
    while low < high:
        middle = (low + high) // 2
        if analysis.power(standardized, middle, alpha / tests, alternative="two-sided") >= power:
            high = middle
        else:
            low = middle + 1
    return max(low, _floor(alpha / tests))


def _floor(level: float) -> int:
    """The smallest n with 2 / 2^n < level."""
    return int(math.floor(math.log2(2 / level))) + 1


def _check(tests: int, power: float) -> None:
    check(tests >= 1, f"tests must be at least 1. Received: tests={tests!r}")
    check(0 < power < 1, f"power must be in (0, 1). Received: power={power!r}")


__all__ = ["MAX_SEEDS", "POWER", "detectable_effect", "seeds_needed"]
