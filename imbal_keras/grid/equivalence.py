"""Equivalence: can two arms be called equal within a margin that does not matter?

A test of "no difference" that does not reject says nothing; equivalence has to be shown. Two one-sided tests
(TOST, Schuirmann 1987) call two arms equivalent within +-margin at level alpha when the (1 - 2 alpha) interval
of the difference lies inside (-margin, +margin); the chance of that when the true difference sits on the margin
is at most alpha. Here:

- a paired difference (final metric, mean metric over training): the paired t TOST of statsmodels
  (`ttost_paired`);
- a ratio of spreads: the (1 - 2 alpha) jackknife interval of sd(a) / sd(b) (`stats.spread_ratio_interval`)
  inside (1 / margin, margin).

Calibration under normal, skewed, heavy-tailed, discrete and censored values: docs/statistics.md.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
from statsmodels.stats import weightstats

from imbal_keras.errors import check
from imbal_keras.grid import stats

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
      equivalence_p (the larger one-sided p-value), equivalence_ci_low/high (the 1 - 2 alpha t interval of the
      difference) and equivalence: "equivalent", "not shown equivalent", "identical", "too few seeds" or "no
      spread to compare".
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    d = a - b
    out = {"equivalence_p": math.nan, "equivalence_ci_low": math.nan, "equivalence_ci_high": math.nan}
    status = stats.paired(a, b, min_seeds=min_seeds)["difference_status"] if len(d) else stats.TOO_FEW_SEEDS
    if status != stats.OK:
        return {**out, "equivalence": status}
    out["equivalence_p"] = float(weightstats.ttost_paired(a, b, -margin, margin)[0])
    low, high = _t_bounds(d, 1 - 2 * (1 - confidence))
    out["equivalence_ci_low"], out["equivalence_ci_high"] = low, high
    out["equivalence"] = EQUIVALENT if out["equivalence_p"] < 1 - confidence else NOT_SHOWN
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


def _t_bounds(d: np.ndarray, coverage: float) -> tuple[float, float]:
    low, high = weightstats.DescrStatsW(d).tconfint_mean(alpha=1 - coverage)
    return float(low), float(high)


__all__ = ["EQUIVALENT", "NOT_SHOWN", "Margins", "paired_difference", "spread_ratio"]
