"""Exact one-sided sign-flip tests of a paired mean, and the interval that inverts them, up to 24 pairs.

The one-sided sign-flip test of "mean(d) <= delta" flips the signs of e = d - delta: the pattern that flips the
set F of pairs reaches at least the observed sum exactly when sum_F e <= 0, so the p-value is
#{F: sum_F e <= 0} / 2^n (the empty set, the observed pattern, included). All 2^n subset sums need not be listed:
split the pairs in two halves, list each half's 2^(n/2) subset sums, sort one, and count the pairs of sums that
add up to at most 0 with one `searchsorted` (meet in the middle; 2 x 1,024 sums at 20 pairs). That makes the
test exact at the seed counts grids use, where drawing 9,999 random patterns made it a Monte Carlo test.
The interval's bounds are the points where the count jumps past alpha * 2^n, found by bisection to within
1e-12 of the differences' range.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

EXACT_MAX_PAIRS = 24
_RELATIVE_TIE = 1e-12


def is_exact(n: int) -> bool:
    """Whether `upper_p` and `interval` enumerate every sign pattern of `n` pairs."""
    return n <= EXACT_MAX_PAIRS


def upper_p(differences: Sequence[float], delta: float) -> float:
    """One-sided p-value of "mean(differences) <= delta" against "greater", exact: every sign pattern counted.

    Valid (level at most alpha) whenever the differences are symmetric about delta under the null, whatever
    their tails. Sums within 1e-12 of the differences' scale of the observed one count as ties (conservative).

    Args:
      differences: the paired differences a - b, at most `EXACT_MAX_PAIRS` of them.
      delta: the boundary of the null.

    Returns:
      The share of the 2^n sign patterns whose sum of d - delta is at least the observed one.
    """
    d = np.asarray(differences, dtype=float)
    return _Halves(d).count(delta) / 2.0 ** len(d)


def lower_p(differences: Sequence[float], delta: float) -> float:
    """One-sided p-value of "mean(differences) >= delta" against "smaller", exact (`upper_p` mirrored)."""
    return upper_p(-np.asarray(differences, dtype=float), -delta)


def interval(differences: Sequence[float], coverage: float) -> tuple[float, float]:
    """The interval of the mean difference that inverts the two one-sided exact tests at (1 - coverage) / 2 each.

    `low` is the smallest delta that "mean <= delta" does not reject (its count passes (1 - coverage) / 2 * 2^n);
    `high` mirrors it. At least `coverage` for differences symmetric about their mean. Infinite where that level
    cannot be reached (too few pairs).

    Args:
      differences: the paired differences, at most `EXACT_MAX_PAIRS` of them.
      coverage: e.g. 0.9 for two one-sided tests at 5%.

    Returns:
      (low, high).
    """
    d = np.asarray(differences, dtype=float)
    allowed = math.floor((1 - coverage) / 2 * 2.0 ** len(d) + 1e-9)
    if allowed < 1:
        return -math.inf, math.inf
    return _lowest_kept(d, allowed), -_lowest_kept(-d, allowed)


def _lowest_kept(d: np.ndarray, allowed: int) -> float:
    """The smallest delta whose count #{F: sum_F (d - delta) <= 0} exceeds `allowed`, by bisection."""
    halves = _Halves(d)
    span = float(np.ptp(d)) or float(np.max(np.abs(d))) or 1.0
    low, high = float(np.min(d)) - span, float(np.max(d))  # count(low) = 1 (the empty set), count(high) = 2^n
    while high - low > _RELATIVE_TIE * span:
        middle = 0.5 * (low + high)
        if not low < middle < high:  # adjacent floats: differences far from 0 that barely vary
            break
        if halves.count(middle) > allowed:
            high = middle
        else:
            low = middle
    return high


class _Halves:
    """Every subset sum and size of each half of the pairs, so that a count at a new delta needs one sort."""

    def __init__(self, d: np.ndarray):
        if len(d) > EXACT_MAX_PAIRS:
            raise ValueError(f"exact sign-flip counts go up to {EXACT_MAX_PAIRS} pairs. Received: {len(d)} pairs")
        half = len(d) // 2
        self._left, self._right = _subsets(d[:half]), _subsets(d[half:])
        self._scale, self._n = float(np.sum(np.abs(d))), len(d)

    def count(self, delta: float) -> int:
        """#{F: sum_F (d - delta) <= tie}, the empty set included (meet in the middle)."""
        tie = _RELATIVE_TIE * (self._scale + self._n * abs(delta))  # of the order of sum |d - delta|
        left = self._left[0] - self._left[1] * delta
        right = np.sort(self._right[0] - self._right[1] * delta)
        return int(np.searchsorted(right, tie - left, side="right").sum())


def _subsets(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sum and the size of every subset of `values` (2^m of each, the empty subset first)."""
    sums, sizes = np.zeros(1), np.zeros(1)
    for value in values:
        sums, sizes = np.concatenate([sums, sums + value]), np.concatenate([sizes, sizes + 1])
    return sums, sizes


__all__ = ["EXACT_MAX_PAIRS", "interval", "is_exact", "lower_p", "upper_p"]
