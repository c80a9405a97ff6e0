"""Speed and spread over the whole run: two arms compared at every evaluation, with simultaneous bands.

A comparison at the last evaluation misses differences that hold earlier (one arm rising first, the other
catching up). Here two paired arms' curves are compared at every evaluation step the runs share:

- the paired difference of the metric, with a simultaneous band from the sign-flip max-|t| distribution
  (Westfall and Young 1993): the largest |t| over the steps of the centred differences under every sign
  pattern (all 2^n up to 16 pairs, 9,999 drawn beyond) gives one critical value for all steps, so the chance
  that the band misses the true mean curve anywhere is about 1 - confidence, and a step is called different
  only where the band excludes 0, family-wise;
- the ratio of the arms' spreads across seeds, sd(a) / sd(b), with its interval at each step
  (`stats.spread_ratio_interval`), Bonferroni over the steps (each step at 1 - (1 - confidence) / steps), so
  the band is simultaneous too; a step is called different only where the band of the arms' aligned ranks
  agrees, which keeps the level under skewed and heavy-tailed values.

`describe_when` turns a band into words: where in training the difference holds and where it does not.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from imbal_keras.grid import stats


@dataclasses.dataclass(frozen=True)
class Band:
    """A figure at every evaluation step with a simultaneous band.

    Attributes:
      steps: the evaluation steps, increasing.
      estimate: the figure at each step (a difference, or a ratio of standard deviations).
      low: the band's lower edge at each step.
      high: its upper edge.
      null: the value of "no difference" (0 for a difference, 1 for a ratio).
      status: "ok", "too few seeds", "identical" or "no spread to compare".
      confirmed: per step, the side a second, robust band takes (-1, 0, +1); None when the band decides alone.
    """

    steps: np.ndarray
    estimate: np.ndarray
    low: np.ndarray
    high: np.ndarray
    null: float
    status: str
    confirmed: np.ndarray | None = None

    def side(self) -> np.ndarray:
        """Per step: -1 where the band lies wholly below `null`, +1 wholly above, 0 otherwise (or not ok); where a
        robust band confirms, only the steps on which both agree keep their side."""
        if self.status != stats.OK:
            return np.zeros(len(self.steps), dtype=int)
        side = np.where(self.high < self.null, -1, np.where(self.low > self.null, 1, 0))
        return side if self.confirmed is None else np.where(side == self.confirmed, side, 0)


def paired_curves(
    curves: pd.DataFrame,
    runs: pd.DataFrame,
    other_runs: pd.DataFrame,
    metric: str,
    *,
    pair_on: Sequence[str],
    run_column: str = "run_name",
    step_column: str = "step",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The two arms' curves as matrices, pair by pair, on the steps every run of both arms evaluated.

    Args:
      curves: one row per run per evaluation, with the run and step columns and `metric`.
      runs: the first arm's runs (one row each) with the run column and `pair_on`.
      other_runs: the second arm's runs.
      metric: the curve compared.
      pair_on: the columns identifying a seed shared by both arms.
      run_column: the column naming a run.
      step_column: the evaluation step column.

    Returns:
      steps (s,), a (n, s) and b (n, s): row i of a and b is the i-th pair. Empty when the arms share no key.
    """
    rows = stats.pair_rows(runs, other_runs, pair_on) if pair_on else None
    table = curves.pivot_table(index=run_column, columns=step_column, values=metric, aggfunc="first")
    if rows is None or table.empty:
        return np.array([]), np.empty((0, 0)), np.empty((0, 0))
    names = [runs[run_column].to_numpy()[rows[0]], other_runs[run_column].to_numpy()[rows[1]]]
    a, b = (table.reindex(n) for n in names)
    shared = a.columns[a.notna().all().to_numpy() & b.notna().all().to_numpy()]
    return shared.to_numpy(dtype=float), a[shared].to_numpy(dtype=float), b[shared].to_numpy(dtype=float)


def difference_band(
    a: np.ndarray, b: np.ndarray, steps: np.ndarray, *, confidence: float = stats.CONFIDENCE, min_seeds: int = 6
) -> Band:
    """mean(a - b) at every step with a simultaneous sign-flip max-|t| band (see the module docstring).

    Steps where every pair's difference is the same (at the first evaluation, arms that start from the same
    weights) have a zero-width band at that difference and never count as "different" unless it is non-zero.
    """
    d = a - b
    n = len(d)
    estimate = d.mean(axis=0) if n else np.full(len(steps), np.nan)
    status = stats.difference_status(a, b, min_seeds, fewest=3)
    if status != stats.OK:
        return Band(steps, estimate, estimate.copy(), estimate.copy(), 0.0, status)
    se = d.std(axis=0, ddof=1) / math.sqrt(n)
    varies = se > 0
    residuals = (d - estimate)[:, varies]
    flipped = stats.sign_patterns(n) @ residuals / n  # (patterns, varying steps): means of the sign-flipped residuals
    sums = (residuals**2).sum(axis=0)
    flipped_se = np.sqrt(np.maximum(sums - n * flipped**2, 0) / (n - 1) / n)
    with np.errstate(divide="ignore", invalid="ignore"):
        largest = np.nanmax(np.abs(flipped) / flipped_se, axis=1)
    critical = float(np.quantile(largest, confidence, method="higher"))
    half = np.zeros(len(steps))
    half[varies] = critical * se[varies]
    return Band(steps, estimate, estimate - half, estimate + half, 0.0, status)


def spread_band(
    a: np.ndarray, b: np.ndarray, steps: np.ndarray, *, confidence: float = stats.CONFIDENCE, min_seeds: int = 6
) -> Band:
    """sd(a) / sd(b) at every step with its interval (`stats.spread_ratio_interval`), Bonferroni over the steps
    that have a spread; a step is called different only where the same band of aligned ranks agrees.

    Standard deviations of skewed or heavy-tailed values (lognormal, t(3)) swing with one extreme run, so the
    band of their ratio alone names equal spreads different too often. The confirming band is that of the
    ranks of both arms pooled at each step after each arm is centred on its median (as in the Siegel-Tukey
    test): it has no tails, so it keeps the level, at the cost of power (docs/statistics.md).
    """
    status = stats.difference_status(a, b, min_seeds, fewest=3)
    if status != stats.OK or a.shape[1] == 0:
        ratio = np.full(len(steps), 1.0 if status == stats.IDENTICAL else np.nan)
        return Band(steps, ratio, ratio.copy(), ratio.copy(), 1.0, status)
    tested = max(1, int(np.sum((a.std(axis=0) > 0) & (b.std(axis=0) > 0))))
    level = 1 - (1 - confidence) / tested
    ratio, low, high = stats.spread_ratio_interval(a, b, confidence=level)
    ranks = scipy_stats.rankdata(np.vstack([a - np.median(a, axis=0), b - np.median(b, axis=0)]), axis=0)
    _, rank_low, rank_high = stats.spread_ratio_interval(ranks[: len(a)], ranks[len(a) :], confidence=level)
    confirmed = np.where(rank_high < 1, -1, np.where(rank_low > 1, 1, 0))
    return Band(steps, ratio, low, high, 1.0, status, confirmed)


def describe_when(band: Band, *, lower: str, higher: str, same: str, horizon: float | None = None) -> str:
    """Where in training a band lies below, above or around its null, in words with the largest effect.

    Args:
      band: the band.
      lower: what a band below its null means ("upsample varies less").
      higher: what a band above it means.
      same: what a band around it means ("no difference shown").
      horizon: the step that is 100% of training (default: the last step).

    Returns:
      For example "upsample varies less at steps 100-200 (25-50% of training; 0.55 [0.31, 0.92] at step 100);
      no difference shown at steps 50, 250-400".
    """
    if band.status != stats.OK:
        return f"{band.status}"
    horizon = horizon or float(band.steps[-1])
    side = band.side()
    side[np.isnan(band.estimate) | np.isnan(band.low)] = 2  # an arm without spread there: nothing to compare
    spacing = float(np.min(np.diff(band.steps))) if len(band.steps) > 1 else 1.0
    parts = []
    for value, meaning in ((-1, lower), (1, higher), (0, same), (2, stats.NO_SPREAD)):
        chosen = np.flatnonzero(side == value)
        if not len(chosen):
            continue
        text = f"{meaning} at steps {_ranges(band.steps[chosen], spacing)}"
        if value in (-1, 1):
            best = chosen[np.argmax(np.abs(band.estimate[chosen] - band.null))]
            share = _ranges(100 * band.steps[chosen] / horizon, 100 * spacing / horizon)
            text += (
                f" ({share}% of training; {band.estimate[best]:.3g} [{band.low[best]:.3g}, {band.high[best]:.3g}] "
                f"at step {band.steps[best]:g})"
            )
        parts.append(text)
    return "; ".join(parts)


def _ranges(values: np.ndarray, spacing: float) -> str:
    """Consecutive runs of `values` (a subset of a grid evenly spaced by `spacing`) as "a-b", separated by commas."""
    values = np.asarray(values, dtype=float)
    if len(values) == 1:
        return f"{values[0]:g}"
    breaks = np.flatnonzero(np.diff(values) > spacing * 1.5)
    starts, ends = np.r_[0, breaks + 1], np.r_[breaks, len(values) - 1]
    return ", ".join(
        f"{values[s]:g}" if s == e else f"{values[s]:g}-{values[e]:g}" for s, e in zip(starts, ends, strict=True)
    )


__all__ = ["Band", "describe_when", "difference_band", "paired_curves", "spread_band"]
