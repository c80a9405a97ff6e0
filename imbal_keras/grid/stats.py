"""Statistics of a grid of runs over seeds: summaries, intervals, paired comparisons, the spread by seed source.

Runs that share a seed share whatever that seed fixes (the data, the split, the initial weights, the batch
order), so two strategies' results on one seed are a *pair*: their difference removes what the seed did to both.
Comparisons therefore pair runs on a key (`pair_on`, the seed by default) and fall back to unpaired statistics
only for arms that share no key. Every interval and test here is chosen to hold at the handful of seeds a grid
has, and every one of them is checked by simulation (`benchmarks/stats_calibration.py`, tabulated in
`docs/statistics.md`):

- mean of one arm: Student t interval;
- paired difference: t interval of the differences, and the sign-flip test of their mean over the 2^n sign
  patterns: exact up to 24 pairs (`sign_flip`), Monte Carlo (9,999 patterns, fixed seed) beyond; valid whenever
  the arms are exchangeable within a pair, ties and censored values included; never 0 (at least 2 / 2^n);
- paired spread: the paired Brown-Forsythe statistic (Grambsch, Biometrika 1994) under within-pair swaps
  (`swap_spread_p`) by default, or Pitman-Morgan (exact under bivariate normality, but it calls equal variances
  different 8-11% of the time for gamma(2) values and 10-22% for t(3) values at 6-20 seeds);
- probability of improvement P(A > B) (rliable, Agarwal et al., NeurIPS 2021): the share of pairs where A wins
  (ties count half) with a Clopper-Pearson interval; unpaired, the Mann-Whitney share of all (a, b) pairs with
  Newcombe's score interval (Statistics in Medicine 2006, method 5);
- family-wise error: Holm over every test of a verdict table.

Below `MIN_SEEDS` pairs no test can say anything at the 5% level (the sign-flip test's smallest p-value is
2 / 2^n: 1/16 at 5 seeds, 1/32 at 6), so a comparison with fewer answers "too few seeds"; a comparison whose
values do not vary answers "no spread to compare"; two arms equal to within float rounding (`identical`) answer
"identical" and are not tested, since a test of rounding noise can reject. None of them ever takes a side.

Convergence and the verdict built on these tests are in `imbal_keras.grid.verdict`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from imbal_keras.errors import check
from imbal_keras.grid import sign_flip

CONFIDENCE = 0.95
# The smallest number of pairs at which the exact sign-flip test can reach p < 0.05 (two-sided minimum 2 / 2^n).
MIN_SEEDS = 6
SEED_SOURCES = ("data_seed", "init_seed", "order_seed")
VARIANCE_TESTS = ("brown_forsythe", "pitman_morgan")

# Status of a comparison.
OK = "ok"
TOO_FEW_SEEDS = "too few seeds"
NO_SPREAD = "no spread to compare"
IDENTICAL = "identical"
# Two arms whose values agree to this relative (and absolute) tolerance, pair by pair, trained identically: float
# rounding (a reduction summed in another order) moves a figure by far less, a real difference by far more.
_TIE_RTOL = 1e-5
_TIE_ATOL = 1e-8

# Pattern tests (swaps, bands) enumerate every pattern up to this many pairs; beyond, they and the unpaired
# permutation test draw 9,999 at random, fixed seed: the same data give the same p-value.
_EXACT_MAX_PAIRS = 16
_RANDOM_PATTERNS = 9999
_PERMUTATION_SEED = 0


@dataclasses.dataclass(frozen=True)
class Settings:
    """How two arms are tested (see `paired`).

    Attributes:
      confidence: coverage of the intervals.
      min_seeds: fewer pairs (or runs per arm, unpaired) than this give the status "too few seeds".
      variance_test: the paired spread test, "brown_forsythe" or "pitman_morgan".

    Raises:
      UserInputError: an unknown `variance_test`.
    """

    confidence: float = CONFIDENCE
    min_seeds: int = MIN_SEEDS
    variance_test: str = "brown_forsythe"

    def __post_init__(self):
        _check_variance_test(self.variance_test)


def describe(values: Sequence[float], *, confidence: float = CONFIDENCE) -> dict[str, float | int | str]:
    """n, mean, std (ddof=1), min, max and the Student t interval of the mean of the non-NaN `values`.

    Args:
      values: one figure per seed.
      confidence: coverage of the interval.

    Returns:
      Keys n, mean, std, min, max, ci_low, ci_high, status. The interval is NaN when the status is not "ok":
      "too few seeds" below 2 values, "no spread to compare" when every value is the same (a zero-width interval
      would claim a certainty that a constant sample cannot give).
    """
    x = _finite(values)
    n = len(x)
    out = {
        "n": n,
        "mean": float(np.mean(x)) if n else math.nan,
        "std": float(np.std(x, ddof=1)) if n > 1 else math.nan,
        "min": float(np.min(x)) if n else math.nan,
        "max": float(np.max(x)) if n else math.nan,
        "ci_low": math.nan,
        "ci_high": math.nan,
        "status": _status(n, 2, n > 1 and np.ptp(x) > 0),
    }
    if out["status"] == OK:
        out["ci_low"], out["ci_high"] = _t_interval(x, confidence)
    return out


def paired(
    a: Sequence[float],
    b: Sequence[float],
    *,
    confidence: float = CONFIDENCE,
    min_seeds: int = MIN_SEEDS,
    variance_test: str = "brown_forsythe",
) -> dict[str, float | int | str]:
    """Compares arm `a` with arm `b` run by run: `a[i]` and `b[i]` share a seed. Pairs with a NaN are dropped.

    Args:
      a: the first arm's figure per seed.
      b: the second arm's figure on the same seeds, in the same order.
      confidence: coverage of the intervals.
      min_seeds: fewer pairs than this give the status "too few seeds".
      variance_test: "brown_forsythe" (robust; the default) or "pitman_morgan" (exact under bivariate normality).

    Returns:
      n, n_other (pairs), pairing ("paired"), mean, mean_other, std, std_other, correlation; difference (mean of
      a - b), difference_std, difference_ci_low/high (t interval), difference_p (sign-flip test),
      difference_status; variance_ratio var(a) / var(b), spread_statistic (negative when a spreads less: the
      Brown-Forsythe statistic, or the Pitman-Morgan correlation), spread_p (`swap_spread_p`), spread_status;
      probability_of_improvement P(a > b) on a pair (ties half), poi_ci_low/high (Clopper-Pearson); status, "ok"
      when both statuses are. p-values and intervals are NaN where the status is "no spread to compare".

    Raises:
      UserInputError: `a` and `b` differ in length, or `variance_test` is unknown.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    check(
        a.shape == b.shape and a.ndim == 1,
        f"a and b must be two sequences of the same length for a paired comparison. Received: {len(a)} and {len(b)} "
        "values",
    )
    _check_variance_test(variance_test)
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    n, d = len(a), a - b
    out = {"pairing": "paired", **_arm_figures(a, b)}
    if n >= max(min_seeds, 2) and identical(a, b):
        return _identical(out, wins=0.5 * n, n=n, confidence=confidence)
    out["correlation"] = float(np.corrcoef(a, b)[0, 1]) if n > 2 and np.ptp(a) > 0 and np.ptp(b) > 0 else math.nan
    out["difference"] = float(np.mean(d)) if n else math.nan
    out["difference_std"] = float(np.std(d, ddof=1)) if n > 1 else math.nan
    out["difference_status"] = _status(n, min_seeds, n > 1 and np.ptp(d) > 0)
    out["difference_ci_low"] = out["difference_ci_high"] = out["difference_p"] = math.nan
    if n > 1 and np.ptp(d) > 0:
        out["difference_ci_low"], out["difference_ci_high"] = _t_interval(d, confidence)
        out["difference_p"] = sign_flip_p(d)
    out.update(_paired_spread(a, b, min_seeds, variance_test))
    wins = float(np.sum(a > b) + 0.5 * np.sum(a == b))
    out.update(_proportion(wins, n, confidence))
    return _with_status(out)


def identical(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether two arms' values are equal pair by pair to within float rounding (relative 1e-5, absolute 1e-8).

    Two variants that train identically (a weight scale that the loss reduction cancels) differ only by the
    order in which floats were summed; their figures are reported as identical instead of being tested.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=_TIE_RTOL, atol=_TIE_ATOL, equal_nan=True))


def _identical(out: dict, *, wins: float, n: int, confidence: float) -> dict:
    """The figures of two identical arms: every difference 0, no p-value, every status "identical"."""
    out.update(correlation=math.nan, difference=0.0, difference_std=0.0, difference_ci_low=0.0, difference_ci_high=0.0)
    out.update(difference_p=math.nan, spread_statistic=0.0, spread_p=math.nan)
    out.update(_proportion(wins, n, confidence))
    out["difference_status"] = out["spread_status"] = out["status"] = IDENTICAL
    return out


def unpaired(
    a: Sequence[float],
    b: Sequence[float],
    *,
    confidence: float = CONFIDENCE,
    min_seeds: int = MIN_SEEDS,
) -> dict[str, float | int | str]:
    """Compares two arms whose runs share no seed. NaN values are dropped.

    Welch's t interval and a permutation test (9,999 relabellings, fixed seed) for the difference of means; the
    Brown-Forsythe test (Levene's around the median) for the spread; the Mann-Whitney P(a > b), Newcombe's interval.

    Args:
      a: the first arm's figure per run.
      b: the second arm's figure per run.
      confidence: coverage of the intervals.
      min_seeds: fewer runs than this in either arm give the status "too few seeds".

    Returns:
      The keys of `paired`, with pairing "unpaired" and correlation NaN.
    """
    a, b = _finite(a), _finite(b)
    n = min(len(a), len(b))
    out = {"pairing": "unpaired", **_arm_figures(a, b), "correlation": math.nan}
    out["difference"] = float(np.mean(a) - np.mean(b)) if n else math.nan
    out["difference_std"] = math.nan
    varies = n > 1 and (np.ptp(a) > 0 or np.ptp(b) > 0)
    out["difference_status"] = _status(n, min_seeds, varies)
    out["difference_ci_low"] = out["difference_ci_high"] = out["difference_p"] = math.nan
    if varies:
        # Welch: the standard error of each mean from its own variance, Welch-Satterthwaite degrees of freedom.
        squared = [np.var(x, ddof=1) / len(x) for x in (a, b)]
        df = sum(squared) ** 2 / sum(v**2 / (len(x) - 1) for v, x in zip(squared, (a, b), strict=True))
        half = _t_critical(df, confidence) * math.sqrt(sum(squared))
        out["difference_ci_low"], out["difference_ci_high"] = out["difference"] - half, out["difference"] + half
        out["difference_p"] = _relabel_p(a, b)
    deviations = [np.abs(x - np.median(x)) if len(x) else x for x in (a, b)]
    spread_varies = n > 1 and np.ptp(a) > 0 and np.ptp(b) > 0 and not all(np.ptp(v) == 0 for v in deviations)
    out["spread_status"] = _status(n, min_seeds, spread_varies)
    out["spread_statistic"] = float(np.mean(deviations[0]) - np.mean(deviations[1])) if n else math.nan
    out["spread_p"] = float(stats.levene(a, b, center="median").pvalue) if spread_varies else math.nan
    wins = float(np.sum(a[:, None] > b[None, :]) + 0.5 * np.sum(a[:, None] == b[None, :]))
    out["probability_of_improvement"] = wins / (len(a) * len(b)) if n else math.nan
    out["poi_ci_low"], out["poi_ci_high"] = (
        newcombe_interval(out["probability_of_improvement"], len(a), len(b), confidence=confidence)
        if n
        else (math.nan, math.nan)
    )
    return _with_status(out)


def compare(
    runs: pd.DataFrame,
    other_runs: pd.DataFrame,
    metric: str,
    *,
    pair_on: Sequence[str] = ("seed",),
    confidence: float = CONFIDENCE,
    min_seeds: int = MIN_SEEDS,
    variance_test: str = "brown_forsythe",
) -> dict[str, float | int | str]:
    """Compares `metric` between two arms, paired on the `pair_on` columns when the arms share keys.

    Args:
      runs: one row per run of the first arm.
      other_runs: one row per run of the second arm.
      metric: the column to compare.
      pair_on: the columns whose values identify a seed shared by both arms; () compares unpaired.
      confidence: coverage of the intervals.
      min_seeds: fewer pairs (or runs per arm, unpaired) than this give the status "too few seeds".
      variance_test: the paired spread test, see `paired`.

    Returns:
      The keys of `paired`/`unpaired`, plus `unmatched`: runs left out because their key is in one arm only.
      When the arms share no key the comparison is unpaired and `unmatched` is 0.

    Raises:
      UserInputError: a column is missing, or `pair_on` does not identify the runs of an arm uniquely.
    """
    check_columns(runs, [metric, *pair_on], "runs")
    check_columns(other_runs, [metric, *pair_on], "other_runs")
    settings = Settings(confidence=confidence, min_seeds=min_seeds, variance_test=variance_test)
    return compare_columns(runs, other_runs, [metric], pair_on=pair_on, settings=settings)[metric]


def compare_columns(
    runs: pd.DataFrame,
    other_runs: pd.DataFrame,
    columns: Sequence[str],
    *,
    pair_on: Sequence[str],
    settings: Settings,
) -> dict[str, dict]:
    """`compare` of several columns with one alignment of the two arms (the columns are not checked).

    Returns:
      Column -> the figures `compare` returns for it.
    """
    rows = pair_rows(runs, other_runs, pair_on)
    out = {}
    for column in columns:
        a, b = runs[column].to_numpy(dtype=float), other_runs[column].to_numpy(dtype=float)
        if rows is None:
            out[column] = {
                **unpaired(a, b, confidence=settings.confidence, min_seeds=settings.min_seeds),
                "unmatched": 0,
            }
        else:
            figures = paired(
                a[rows[0]],
                b[rows[1]],
                confidence=settings.confidence,
                min_seeds=settings.min_seeds,
                variance_test=settings.variance_test,
            )
            out[column] = {**figures, "unmatched": len(a) + len(b) - 2 * len(rows[0])}
    return out


def pair_rows(runs: pd.DataFrame, other_runs: pd.DataFrame, pair_on: Sequence[str]) -> tuple[list, list] | None:
    """Row positions of the runs of both arms that share a key, in `runs` order; None when no key is shared.

    Raises:
      UserInputError: `pair_on` does not identify the runs of an arm uniquely.
    """
    keys = [list(zip(*(frame[c].tolist() for c in pair_on), strict=True)) for frame in (runs, other_runs)]
    for name, arm_keys in zip(("runs", "other_runs"), keys, strict=True):
        check(
            len(set(arm_keys)) == len(arm_keys),
            f"pair_on must identify each run of an arm; {name} has several runs with the same key. "
            f"Received: pair_on={tuple(pair_on)!r}",
        )
    position = {key: i for i, key in enumerate(keys[1])}
    matched = [(i, position[key]) for i, key in enumerate(keys[0]) if key in position]
    if not pair_on or not matched:
        return None
    return [i for i, _ in matched], [j for _, j in matched]


def sign_flip_p(differences: Sequence[float]) -> float:
    """Two-sided p-value of "the mean of `differences` is 0" from the sign-flip (paired permutation) test.

    Under the null every difference is as likely with either sign: the p-value is the share of the 2^n sign
    patterns whose |mean| is at least the observed one (the observed included): twice the smaller one-sided
    count (`sign_flip.upper_p`), exact up to 24 pairs; beyond, (b + 1) / (B + 1) from 9,999 random patterns,
    fixed seed (`sign_flip_is_exact`). Never 0.
    """
    d = np.asarray(differences, dtype=float)
    if sign_flip.is_exact(len(d)):
        return min(1.0, 2 * min(sign_flip.upper_p(d, 0.0), sign_flip.lower_p(d, 0.0)))
    flipped = np.abs(sign_patterns(len(d)) @ d)  # row 0 observed; the tolerance keeps ties up to rounding
    return float(np.mean(flipped >= flipped[0] * (1 - 1e-9)))


def swap_spread_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p-value of "equal spreads" for paired arms: the paired Brown-Forsythe statistic under swaps.

    The statistic: mean absolute deviation of `a` from its median minus that of `b`. Under "the two runs of a pair
    are exchangeable" every swap pattern is equally likely: the p-value is the share of the 2^n patterns (medians
    computed again for each) whose |statistic| is at least the observed one, the observed included. Exact up to
    16 pairs, (b + 1) / (B + 1) from 9,999 random patterns (fixed seed) beyond. Conservative when the means differ
    (a swapped arm mixes both locations); it keeps its level under skewed and censored values (docs/statistics.md).
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    swapped = sign_patterns(len(a)) < 0
    first, second = np.where(swapped, b, a), np.where(swapped, a, b)
    statistic = np.abs(_mean_deviation(first) - _mean_deviation(second))
    # Row 0 is the observed pattern; the tolerance keeps patterns that tie the observed statistic up to rounding.
    return float(np.mean(statistic >= statistic[0] * (1 - 1e-9)))


def _mean_deviation(x: np.ndarray) -> np.ndarray:
    """Mean absolute deviation from the median along the last axis."""
    return np.mean(np.abs(x - np.median(x, axis=-1, keepdims=True)), axis=-1)


def sign_flip_is_exact(n: int) -> bool:
    """Whether `sign_flip_p` counts every sign pattern of `n` pairs (True) or draws them (Monte Carlo)."""
    return sign_flip.is_exact(n)


def spread_ratio_interval(
    a: np.ndarray, b: np.ndarray, *, confidence: float = CONFIDENCE
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """sd(a) / sd(b) with an interval, column by column, for paired arms (rows are pairs).

    The interval is the hull of the Pitman-Morgan interval (exact for bivariate normal pairs) and Miller's
    jackknife (JASA 1968) of the log ratio (leave one pair out, Student t on n - 1 degrees of freedom). Their hull
    keeps the level for normal and t(3) values and covers 85-91% under lognormal(0, 1) ones (docs/statistics.md).
    Columns where an arm, or an arm without one of its pairs, has no spread beyond float rounding get NaN.

    Args:
      a: (n, m) values of the first arm, n pairs, m figures (for instance m evaluation steps).
      b: (n, m) values of the second arm on the same pairs.
      confidence: coverage of each column's interval.

    Returns:
      ratio, low, high: arrays of m values.
    """
    a, b = np.atleast_2d(np.asarray(a, dtype=float).T).T, np.atleast_2d(np.asarray(b, dtype=float).T).T
    n = len(a)
    if n < 3:
        nan = np.full(a.shape[1], np.nan)
        return nan, nan.copy(), nan.copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        theta = 0.5 * np.log(np.var(a, axis=0, ddof=1) / np.var(b, axis=0, ddof=1))
        left_out = 0.5 * np.log(_leave_one_out_variances(a) / _leave_one_out_variances(b))
        pseudo = n * theta - (n - 1) * left_out
        centre = pseudo.mean(axis=0)
        half = _t_critical(n - 1, confidence) * pseudo.std(axis=0, ddof=1) / math.sqrt(n)
    # A spread at the level of float rounding (an arm that has not moved yet) is no spread: its ratio means nothing.
    spreads = [np.ptp(x, axis=0) > _TIE_ATOL + _TIE_RTOL * np.max(np.abs(x), axis=0) for x in (a, b)]
    valid = spreads[0] & spreads[1] & np.isfinite(theta) & np.all(np.isfinite(left_out), axis=0)
    low, high = _pitman_morgan_interval(a, b, confidence)
    low, high = np.minimum(low, np.exp(centre - half)), np.maximum(high, np.exp(centre + half))
    return np.where(valid, np.exp(theta), np.nan), np.where(valid, low, np.nan), np.where(valid, high, np.nan)


def _pitman_morgan_interval(a: np.ndarray, b: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Per column, the interval of sd(a) / sd(b) that inverts the Pitman-Morgan test (exact under normality).

    With F the variance ratio, r the correlation of a and b, and c Student's t quantile on n - 2 degrees of
    freedom, the variance ratio's bounds are F (K -+ sqrt(K^2 - 1)), K = 1 + 2 (1 - r^2) c^2 / (n - 2).
    """
    n = len(a)
    centred_a, centred_b = a - a.mean(axis=0), b - b.mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (centred_a**2).sum(axis=0) / (centred_b**2).sum(axis=0)
        r = (centred_a * centred_b).sum(axis=0) / np.sqrt(ratio) / (centred_b**2).sum(axis=0)
        k = 1 + 2 * (1 - r**2) * _t_critical(n - 2, confidence) ** 2 / (n - 2)
        root = np.sqrt(np.maximum(k**2 - 1, 0))
        return np.sqrt(ratio * (k - root)), np.sqrt(ratio * (k + root))


def _leave_one_out_variances(x: np.ndarray) -> np.ndarray:
    """(n, m): row i is each column's sample variance without row i."""
    n = len(x)
    total, squares = x.sum(axis=0), (x**2).sum(axis=0)
    rest_total, rest_squares = total - x, squares - x**2
    return (rest_squares - rest_total**2 / (n - 1)) / (n - 2)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm-adjusted p-values of a family; NaN entries (tests not run) stay NaN and are not counted."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full_like(p, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    order = tested[np.argsort(p[tested], kind="stable")]
    # Step-down: the k-th smallest of m p-values is multiplied by m - k + 1, then made non-decreasing.
    steps = p[order] * (len(order) - np.arange(len(order)))
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(steps))
    return adjusted


def newcombe_interval(estimate: float, n_a: int, n_b: int, *, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Score interval for a Mann-Whitney probability P(A > B) from `n_a` and `n_b` runs (Newcombe 2006, method 5).

    The bounds are the theta where (estimate - theta)^2 equals z^2 V(theta), V being the Hanley-McNeil variance
    with both sample sizes replaced by their mean. Unlike a bootstrap or a Wald interval it has positive width
    when one arm beats the other on every pair.
    """
    z2 = stats.norm.ppf(0.5 + confidence / 2) ** 2
    m = (n_a + n_b) / 2 - 1

    def excess(theta: float) -> float:
        variance = theta * (1 - theta) * (1 + m * ((1 - theta) / (2 - theta) + theta / (1 + theta))) / (n_a * n_b)
        return (estimate - theta) ** 2 - z2 * variance

    tiny = 1e-12  # keeps the search off the trivial root theta = estimate at 0 and 1
    low = 0.0 if estimate <= 0 else optimize.brentq(excess, 0.0, min(estimate, 1 - tiny))
    high = 1.0 if estimate >= 1 else optimize.brentq(excess, max(estimate, tiny), 1.0)
    return float(low), float(high)


def seed_variance(
    results: pd.DataFrame,
    *,
    metric: str,
    group_fields: Sequence[str],
    sources: Sequence[str] = SEED_SOURCES,
    confidence: float = CONFIDENCE,
    together: Sequence[bool] | None = None,
    value_range: tuple[float, float] | None = None,
) -> pd.DataFrame:
    """How much of the spread of `metric` comes from each source of randomness (Bouthillier et al., MLSys 2021).

    For each source, the spread when only that source varies: runs are grouped by the values of every other
    source, and the within-group variances (over groups where this source takes at least 2 values) are pooled
    with their degrees of freedom, counted as at most the number of distinct seeds of the source minus 1 (in a
    crossed design the groups reuse the same seeds, so their variances are not independent). The row "all" is
    the spread over the runs that share no source value with another run of their group (each an independent
    draw of every source), or over the runs marked in `together`. A source the grid never varied alone gets no
    row. Intervals for the standard deviations are chi-square intervals (valid for normal values;
    docs/statistics.md gives their coverage otherwise); a row with a single degree of freedom has status "too few
    seeds" and no interval, and an upper bound beyond what a bounded metric allows (half its range) is cut there.

    Args:
      results: one row per run with `metric`, `group_fields` and the `sources` columns.
      metric: the figure whose spread is decomposed.
      group_fields: the columns that define a group (e.g. the cell fields and the variant).
      sources: the seed columns, one per source of randomness.
      confidence: coverage of the intervals.
      together: per row of `results`, whether the run is one of the runs that vary every source at once (the
        "all" row); None: the runs that share no source value with another run of their group.
      value_range: the metric's (low, high) when it is bounded, e.g. (0, 1) for an AUPRC.

    Returns:
      Columns *group_fields, source, runs, df, std, std_ci_low, std_ci_high, fraction_of_all (the source's
      variance over that of "all", when both exist), status.

    Raises:
      UserInputError: a column is missing.
    """
    sources = list(sources)
    check_columns(results, [metric, *group_fields, *sources], "results")
    results = results.assign(_together=True if together is None else np.asarray(together, dtype=bool))
    rows = []
    for keys, group in groups(results.dropna(subset=[metric]), group_fields):
        found = {}
        for source in sources:
            others = [s for s in sources if s != source]
            varied = [g for _, g in groups(group, others) if g[source].nunique() > 1]
            if varied:
                runs, df, variance = _pooled([g[metric] for g in varied])
                # Groups that reuse the same seeds of this source share their effects: the estimate has no more
                # degrees of freedom than distinct seeds - 1.
                distinct = pd.concat([g[source] for g in varied]).nunique()
                found[source] = (runs, min(df, distinct - 1), variance)
        if together is None:
            alone = np.logical_and.reduce([~group[s].duplicated(keep=False) for s in sources])
        else:
            alone = group["_together"].to_numpy()
        if alone.sum() > 1:
            found["all"] = _pooled([group.loc[alone, metric]])
        total = found.get("all", (0, 0, math.nan))[2]
        for source, (runs, df, variance) in found.items():
            row = {**keys, "source": source, "runs": runs, "df": df, "std": math.sqrt(variance)}
            row["std_ci_low"], row["std_ci_high"] = _std_interval(variance, df, confidence, value_range)
            row["fraction_of_all"] = variance / total if total > 0 else math.nan
            row["status"] = OK if df >= 2 else TOO_FEW_SEEDS
            rows.append(row)
    columns = [*group_fields, "source", "runs", "df", "std", "std_ci_low", "std_ci_high", "fraction_of_all", "status"]
    return pd.DataFrame(rows, columns=columns)


def _paired_spread(a: np.ndarray, b: np.ndarray, min_seeds: int, variance_test: str) -> dict[str, float | str]:
    """Spread figures of a paired comparison: variance_ratio, spread_statistic, spread_p, spread_status."""
    n = len(a)
    varies = n > 2 and np.ptp(a) > 0 and np.ptp(b) > 0
    out = {"spread_statistic": math.nan, "spread_p": math.nan}
    if varies and variance_test == "brown_forsythe":
        out["spread_statistic"] = float(_mean_deviation(a) - _mean_deviation(b))
        out["spread_p"] = swap_spread_p(a, b)
    elif varies and (np.ptp(a + b) == 0 or np.ptp(a - b) == 0):
        out["spread_statistic"], out["spread_p"] = 0.0, 1.0  # b = c - a or b = a + c: equal variances exactly
    elif varies:
        # Pitman-Morgan: var(a) = var(b) exactly when a + b and a - b are uncorrelated.
        with warnings.catch_warnings():  # nearly constant sums or differences: r is still what we test
            warnings.simplefilter("ignore", stats.NearConstantInputWarning)
            r, p = stats.pearsonr(a + b, a - b)
        # |r| = 1 (b an exact linear function of a) gives a t statistic of infinity: a degenerate test, no p-value.
        varies = abs(r) < 1 - 1e-12
        out["spread_statistic"], out["spread_p"] = float(r), float(p) if varies else math.nan
    out["spread_status"] = _status(n, min_seeds, varies)
    return out


def _arm_figures(a: np.ndarray, b: np.ndarray) -> dict[str, float | int]:
    var_a, var_b = (float(np.var(x, ddof=1)) if len(x) > 1 else math.nan for x in (a, b))
    return {
        "n": len(a),
        "n_other": len(b),
        "mean": float(np.mean(a)) if len(a) else math.nan,
        "mean_other": float(np.mean(b)) if len(b) else math.nan,
        "std": math.sqrt(var_a),
        "std_other": math.sqrt(var_b),
        "variance_ratio": var_a / var_b if var_b > 0 else math.nan,
    }


def _proportion(wins: float, n: int, confidence: float) -> dict[str, float]:
    """Share of pairs won with its Clopper-Pearson interval (ties counted half, which only widens it)."""
    if n == 0:
        return {"probability_of_improvement": math.nan, "poi_ci_low": math.nan, "poi_ci_high": math.nan}
    tail = (1 - confidence) / 2
    # Beta quantiles through scipy.special: the same function as stats.beta.ppf without its per-call overhead,
    # which the calibration simulations would pay hundreds of thousands of times.
    low = special.betaincinv(wins, n - wins + 1, tail) if wins > 0 else 0.0
    high = special.betaincinv(wins + 1, n - wins, 1 - tail) if wins < n else 1.0
    return {"probability_of_improvement": wins / n, "poi_ci_low": float(low), "poi_ci_high": float(high)}


def difference_status(a: np.ndarray, b: np.ndarray, min_seeds: int, *, fewest: int = 2) -> str:
    """The status of paired arms' difference before it is tested: "too few seeds" below max(min_seeds, fewest)
    pairs, "identical" to within float rounding, "no spread to compare" when every pair differs by the same
    amount, else "ok"."""
    if len(a) < max(min_seeds, fewest):
        return TOO_FEW_SEEDS
    if identical(a, b):
        return IDENTICAL
    return OK if np.ptp(np.asarray(a) - np.asarray(b)) > 0 else NO_SPREAD


def _with_status(out: dict) -> dict:
    out["status"] = next((s for s in (out["difference_status"], out["spread_status"]) if s != OK), OK)
    return out


def _status(n: int, min_seeds: int, varies: bool) -> str:
    if n < max(min_seeds, 2):
        return TOO_FEW_SEEDS
    return OK if varies else NO_SPREAD


def _t_interval(x: np.ndarray, confidence: float) -> tuple[float, float]:
    half = _t_critical(len(x) - 1, confidence) * np.std(x, ddof=1) / math.sqrt(len(x))
    return float(np.mean(x) - half), float(np.mean(x) + half)


@functools.cache
def _t_critical(df: float, confidence: float) -> float:
    return float(stats.t.ppf(0.5 + confidence / 2, df))


def _std_interval(
    variance: float, df: int, confidence: float, value_range: tuple[float, float] | None
) -> tuple[float, float]:
    """Chi-square interval of a standard deviation from a (pooled) variance with `df` degrees of freedom.

    None below 2 degrees of freedom (NaN bounds); the upper bound is cut at half of a bounded metric's range,
    the largest standard deviation its values can have.
    """
    if variance <= 0 or df < 2:
        return math.nan, math.nan
    tail = (1 - confidence) / 2
    high = math.sqrt(df * variance / stats.chi2.ppf(tail, df))
    if value_range is not None:
        high = min(high, (value_range[1] - value_range[0]) / 2)
    return math.sqrt(df * variance / stats.chi2.ppf(1 - tail, df)), high


def _pooled(pieces: Sequence[pd.Series]) -> tuple[int, int, float]:
    """Runs, degrees of freedom and pooled variance of several groups of values."""
    df = sum(len(p) - 1 for p in pieces)
    return sum(len(p) for p in pieces), df, float(sum((len(p) - 1) * np.var(p, ddof=1) for p in pieces) / df)


def _relabel_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided permutation p-value of "equal means": 9,999 random relabellings (fixed seed) plus the observed.

    Counting the observed labelling makes the p-value valid at any number of relabellings and never 0.
    """
    rng = np.random.default_rng(_PERMUTATION_SEED)
    shuffled = rng.permuted(np.tile(np.concatenate([a, b]), (_RANDOM_PATTERNS, 1)), axis=1)
    relabelled = np.abs(shuffled[:, : len(a)].mean(axis=1) - shuffled[:, len(a) :].mean(axis=1))
    observed = abs(np.mean(a) - np.mean(b))
    return float((1 + np.sum(relabelled >= observed * (1 - 1e-9))) / (_RANDOM_PATTERNS + 1))


@functools.cache
def sign_patterns(n: int) -> np.ndarray:
    """(patterns, n) of +-1, the first row all +1: every pattern up to 16 pairs, 9,999 drawn (fixed seed) beyond.

    The returned array is cached and shared: do not modify it.
    """
    if n <= _EXACT_MAX_PAIRS:
        return 1.0 - 2.0 * ((np.arange(2**n)[:, None] >> np.arange(n)) & 1)
    rng = np.random.default_rng(_PERMUTATION_SEED)
    return np.vstack([np.ones(n), rng.choice([-1.0, 1.0], size=(_RANDOM_PATTERNS, n))])


def groups(frame: pd.DataFrame, fields: Sequence[str]):
    """(dict of field values, rows) per group of `fields` in order of appearance; one group when no fields."""
    if not fields:
        yield {}, frame
        return
    for values, rows in frame.groupby(list(fields), sort=False, dropna=False):
        yield dict(zip(fields, values, strict=True)), rows


def _finite(values: Sequence[float]) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    return x[~np.isnan(x)]


def check_columns(frame: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    """Raises `UserInputError` naming the `columns` that `frame` (the argument `name`) lacks."""
    missing = [c for c in dict.fromkeys(columns) if c not in frame.columns]
    check(
        not missing,
        f"{name} lacks the column(s) {', '.join(map(repr, missing))}. Received: columns={list(frame.columns)}",
    )


def _check_variance_test(variance_test: str) -> None:
    check(
        variance_test in VARIANCE_TESTS,
        f"variance_test must be one of {', '.join(VARIANCE_TESTS)}. Received: variance_test={variance_test!r}",
    )


# fmt: off
__all__ = [
    "CONFIDENCE", "IDENTICAL", "MIN_SEEDS", "NO_SPREAD", "OK", "SEED_SOURCES", "TOO_FEW_SEEDS", "VARIANCE_TESTS",
    "Settings", "check_columns", "compare", "compare_columns", "describe", "difference_status", "groups", "holm",
    "identical", "newcombe_interval", "pair_rows", "paired", "seed_variance", "sign_flip_is_exact", "sign_flip_p",
    "sign_patterns", "spread_ratio_interval", "swap_spread_p", "unpaired",
]
# fmt: on
