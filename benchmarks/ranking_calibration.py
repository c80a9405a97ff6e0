"""Calibration of the ranking of many strategies (`imbal_keras.grid.ranking.rank`) by simulation.

Under each null every strategy has the same mean on every seed; the table gives how often the ranking calls any
pair different (a false "better than"), with its Clopper-Pearson 95% interval and the one-sided exact binomial
p-value of "the rate is above 5%", for 3, 5 and 10 strategies at 6, 10 and 20 seeds. Nulls: normal values with a
shared seed effect; lognormal(0, 1) values; normal values whose spread differs between strategies (sd 1 to 3, so
the strategies are not exchangeable within a seed).

    python -m benchmarks.ranking_calibration [--replicates 400] [--nulls "normal;lognormal"] [--strategies 3,5]
        [--seeds 6,10] [--seed 0]
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from imbal_keras.grid import ranking

STRATEGIES = (3, 5, 10)
SEEDS = (6, 10, 20)
LEVEL = 0.05


def _normal(rng, n, k):
    return rng.normal(0, 1, (n, 1)) + rng.normal(0, 1, (n, k))


def _lognormal(rng, n, k):
    return rng.lognormal(0, 1, (n, k))


def _unequal_spread(rng, n, k):
    return rng.normal(0, 1, (n, 1)) + rng.normal(0, 1, (n, k)) * np.linspace(1, 3, k)


NULLS = {"normal": _normal, "lognormal(0, 1)": _lognormal, "unequal sd": _unequal_spread}


def false_better(null: str, n: int, k: int, replicates: int, seed: int = 0) -> dict:
    """The share of simulated null grids where the ranking calls any pair different, with its binomial figures."""
    rng = np.random.default_rng([seed, n, k, list(NULLS).index(null)])
    names = [str(i) for i in range(k)]
    wrong = sum(bool(ranking.rank(NULLS[null](rng, n, k), names).pairs["different"].any()) for _ in range(replicates))
    low, high = proportion_confint(wrong, replicates, alpha=0.05, method="beta")
    above = stats.binomtest(wrong, replicates, LEVEL, alternative="greater").pvalue
    return {"null": null, "strategies": k, "seeds": n, "replicates": replicates, "false_better": wrong / replicates,
            "ci_low": low, "ci_high": high, "p_above_5%": above}  # fmt: skip


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(","))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=400)
    parser.add_argument("--nulls", default="normal;lognormal;unequal", help="semicolon-separated prefixes of NULLS")
    parser.add_argument("--strategies", type=_ints, default=STRATEGIES)
    parser.add_argument("--seeds", type=_ints, default=SEEDS)
    parser.add_argument("--seed", type=int, default=0, help="the simulation's seed (another draws new grids)")
    args = parser.parse_args()
    nulls = [null for null in NULLS if any(null.startswith(p.strip()) for p in args.nulls.split(";"))]
    for null in nulls:
        for k in args.strategies:
            for n in args.seeds:
                row = false_better(null, n, k, args.replicates, seed=args.seed)
                print(pd.DataFrame([row]).to_string(index=False, header=False, float_format=lambda x: f"{x:.3f}"),
                      flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
