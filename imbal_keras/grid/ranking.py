"""A ranking of many strategies over paired seeds, with multiplicity handled (issue 29's first piece).

With k strategies run on the same n seeds, the honest summary is a ranking with its uncertainty, not k(k-1)/2
separate tests. `rank` gives:

- the Friedman test (scipy's `friedmanchisquare`), the omnibus "do the strategies differ at all?" on the ranks
  within each seed (Demsar, JMLR 2006);
- every pair's paired mean difference with a *simultaneous* interval: the critical value is the 95th percentile
  of the largest pairwise |t| when each seed's values are shuffled across the strategies (exact under "the
  strategies are exchangeable within a seed"; every arrangement is equally likely), so all k(k-1)/2 intervals
  hold together with probability about 95%, and selecting the best by the data does not bias them;
- the group tied with the best: the strategies whose interval against the strategy with the best mean includes
  0.

The report's ranking section (`ranking_section`) shows it for every cell with three or more strategy variants.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from imbal_keras.errors import check
from imbal_keras.grid import stats

_PERMUTATIONS = 9999
_PERMUTATION_SEED = 0


@dataclasses.dataclass(frozen=True)
class Ranking:
    """The ranking of k strategies on n paired seeds.

    Attributes:
      table: one row per strategy, best first: strategy, mean, mean_rank (1 = best), difference (from the best,
        mean over seeds), ci_low, ci_high (its simultaneous interval), tied_with_best.
      pairs: one row per pair (a, b): difference (a - b, mean over seeds), ci_low, ci_high (simultaneous),
        different (the interval excludes 0).
      friedman_p: the Friedman test's p-value (NaN when not computed).
      critical: the simultaneous critical value of |t|.
      status: "ok", "too few seeds" or "no spread to compare".
    """

    table: pd.DataFrame
    pairs: pd.DataFrame
    friedman_p: float
    critical: float
    status: str


def rank(
    values: np.ndarray,
    names: Sequence[str],
    *,
    higher_is_better: bool = True,
    confidence: float = stats.CONFIDENCE,
    min_seeds: int = stats.MIN_SEEDS,
) -> Ranking:
    """Ranks the strategies (columns of `values`) over the paired seeds (rows).

    Args:
      values: (n seeds, k strategies), one figure per run; row i holds every strategy's run on seed i.
      names: the k strategy names.
      higher_is_better: the metric's direction.
      confidence: the simultaneous coverage of the pairwise intervals.
      min_seeds: fewer seeds than this give "too few seeds" and no intervals.

    Returns:
      The `Ranking`.

    Raises:
      UserInputError: `values` is not (n, k) with k = len(names) >= 2, or holds NaN.
    """
    values = np.asarray(values, dtype=float)
    check(
        values.ndim == 2 and values.shape[1] == len(names) >= 2,
        f"values must be (seeds, strategies) with one column per name and at least 2 names. Received: shape "
        f"{values.shape} and {len(names)} names",
    )
    check(not np.isnan(values).any(), "values must not hold NaN: drop the seeds a strategy lacks. Received: NaN")
    n, k = values.shape
    oriented = values if higher_is_better else -values
    means = values.mean(axis=0)
    ranks = scipy_stats.rankdata(-oriented, axis=1).mean(axis=0)
    pairs = list(itertools.combinations(range(k), 2))
    status = stats.OK if n >= max(min_seeds, 2) else stats.TOO_FEW_SEEDS
    if status == stats.OK and all(np.ptp(values[:, a] - values[:, b]) == 0 for a, b in pairs):
        status = stats.NO_SPREAD
    critical = _critical(values, pairs, confidence) if status == stats.OK else math.nan
    pair_rows = [_pair(values, a, b, critical, names) for a, b in pairs]
    best = int(np.argmax(oriented.mean(axis=0)))
    order = np.argsort(-oriented.mean(axis=0), kind="stable")
    from_best = pd.DataFrame([_pair(values, i, best, critical, names) for i in order])
    tied = ~from_best["different"]  # a NaN interval (too few seeds) is never "different"
    table = pd.DataFrame(
        {"strategy": [names[i] for i in order], "mean": means[order], "mean_rank": ranks[order],
         "difference": from_best["difference"], "ci_low": from_best["ci_low"], "ci_high": from_best["ci_high"],
         "tied_with_best": tied.to_numpy()}
    )  # fmt: skip
    friedman = scipy_stats.friedmanchisquare(*values.T).pvalue if k >= 3 and status == stats.OK else math.nan
    return Ranking(table, pd.DataFrame(pair_rows), float(friedman), critical, status)


def agreement(measured: Mapping[str, float], published: Mapping[str, float]) -> dict:
    """How a measured ordering agrees with a published one, over the strategies both name.

    Args:
      measured: strategy -> its measured figure (a mean over seeds), larger = better.
      published: strategy -> the published figure, larger = better.

    Returns:
      strategies (those both name, in `published` order), tau (Kendall's tau-b, which allows ties), p (its
      two-sided p-value, scipy's `kendalltau`), disagree: the pairs (a, b) the published figures order a above b
      and the measured ones b above a. tau and p are NaN below 3 strategies.
    """
    names = [name for name in published if name in measured]
    tau = p = math.nan
    if len(names) >= 3:
        result = scipy_stats.kendalltau([published[n] for n in names], [measured[n] for n in names])
        tau, p = float(result.statistic), float(result.pvalue)
    disagree = [
        (a, b) if published[a] > published[b] else (b, a)
        for a, b in itertools.combinations(names, 2)
        if (published[a] - published[b]) * (measured[a] - measured[b]) < 0
    ]
    return {"strategies": names, "tau": tau, "p": p, "disagree": disagree}


def _critical(values: np.ndarray, pairs: list[tuple[int, int]], confidence: float) -> float:
    """The `confidence` quantile of the largest pairwise |t| over within-seed shuffles (the observed included)."""
    rng = np.random.default_rng(_PERMUTATION_SEED)
    shuffled = rng.permuted(np.broadcast_to(values, (_PERMUTATIONS, *values.shape)), axis=2)
    shuffled = np.concatenate([values[None], shuffled])
    a, b = (np.array(x) for x in zip(*pairs, strict=True))
    d = shuffled[:, :, a] - shuffled[:, :, b]  # (arrangements, seeds, pairs)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.abs(d.mean(axis=1)) / (d.std(axis=1, ddof=1) / math.sqrt(values.shape[0]))
    largest = np.nanmax(np.where(np.isfinite(t), t, np.nan), axis=1)
    return float(np.nanquantile(largest, confidence, method="higher"))


def _pair(values: np.ndarray, a: int, b: int, critical: float, names: Sequence[str]) -> dict:
    d = values[:, a] - values[:, b]
    half = critical * np.std(d, ddof=1) / math.sqrt(len(d)) if len(d) > 1 else math.nan
    low, high = d.mean() - half, d.mean() + half
    return {"a": names[a], "b": names[b], "difference": float(d.mean()), "ci_low": float(low),
            "ci_high": float(high), "different": bool(low > 0 or high < 0)}  # fmt: skip


__all__ = ["Ranking", "agreement", "rank"]
