"""The exact one-sided sign-flip counts (meet in the middle) against every sign pattern written out."""

import itertools
import math

import numpy as np
import pytest

from imbal_keras.grid import sign_flip


def _upper_p_by_enumeration(d, delta):
    """p of "mean <= delta": the share of sign patterns of d - delta whose sum reaches the observed one."""
    e = np.asarray(d) - delta
    patterns = np.array(list(itertools.product((1, -1), repeat=len(e))))
    return np.mean(patterns @ e >= e.sum() - 1e-12)


@pytest.mark.parametrize("n", [1, 2, 5, 9, 12])
def test_one_sided_p_values_equal_full_enumeration(n):
    rng = np.random.default_rng(n)
    for rounded in (False, True):
        d = rng.standard_t(3, n) * 0.01 + 0.004
        d = np.round(d, 2) if rounded else d  # rounding makes sums that tie the observed one
        for delta in (-0.02, -0.005, 0.0, 0.004, 0.01, 0.02):
            assert sign_flip.upper_p(d, delta) == pytest.approx(_upper_p_by_enumeration(d, delta))
            assert sign_flip.lower_p(d, delta) == pytest.approx(_upper_p_by_enumeration(-d, -delta))


@pytest.mark.parametrize("n", [6, 11, 20])
def test_interval_bounds_are_where_the_one_sided_tests_stop_rejecting(n):
    rng = np.random.default_rng(10 + n)
    d = rng.lognormal(0, 1, n) - rng.lognormal(0, 1, n)
    low, high = sign_flip.interval(d, 0.9)
    step = 1e-9 * np.ptp(d)
    assert sign_flip.upper_p(d, low - step) <= 0.05 < sign_flip.upper_p(d, low + step)
    assert sign_flip.lower_p(d, high + step) <= 0.05 < sign_flip.lower_p(d, high - step)
    if n <= 11:  # the bounds are order statistics of the means over the flipped sets
        patterns = np.array(list(itertools.product((0, 1), repeat=n)))[1:]
        means = np.sort(patterns @ d / patterns.sum(axis=1))
        allowed = math.floor(0.05 * 2**n) - 1
        assert (low, high) == pytest.approx((means[allowed], means[-allowed - 1]), abs=1e-10)


def test_interval_is_infinite_where_the_level_cannot_be_reached():
    assert sign_flip.interval([0.1, 0.2, 0.3], 0.9) == (-math.inf, math.inf)  # 1/8 > 5%


def test_one_sided_test_keeps_its_level_at_twenty_pairs_under_heavy_tails():
    rng = np.random.default_rng(7)
    trials = 2000
    rejected = sum(sign_flip.upper_p(rng.standard_t(3, 20), 0.0) <= 0.05 for _ in range(trials))
    # Exact: the level is at most 5%; the bound allows four binomial standard errors.
    assert rejected / trials <= 0.05 + 4 * math.sqrt(0.05 * 0.95 / trials)
    assert rejected / trials >= 0.05 - 4 * math.sqrt(0.05 * 0.95 / trials)


def test_more_pairs_than_exact_counting_is_refused():
    with pytest.raises(ValueError, match="25 pairs"):
        sign_flip.upper_p(np.ones(25), 0.0)


def test_interval_of_differences_far_from_zero_that_barely_vary_ends_and_holds_them():
    """The bisection stops at adjacent floats (1e6 +- 1e-9: the range is below the floats' spacing there)."""
    d = 1e6 + np.random.default_rng(0).normal(size=10) * 1e-9
    low, high = sign_flip.interval(d, 0.9)
    assert d.min() - 1e-6 <= low <= high <= d.max() + 1e-6
