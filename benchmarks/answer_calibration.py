"""Calibration of the answer over the whole run (`imbal_keras.grid.curves`, `equivalence`) by simulation.

Prints these tables, each at 6, 10 and 20 seeds, under paired values drawn from one of five distributions
(normal, lognormal(0, 1), t(3), discrete: normal rounded to 0.5, censored: normal cut at 0.5, a third of the
values) with a correlation of 0.5 within a pair, and (over training) 0.7 between consecutive evaluations:

  bands        difference band: how often it misses the true mean curve anywhere (target <= 5%); spread band:
               how often it names a step where the spreads are equal (target <= 5%)
  equivalence  how often "equivalent" is said when the true difference sits on the margin (difference +0.02,
               or a spread ratio of 1.5 or 1/1.5; target <= 5%), and the coverage of the 90% interval behind it
  coverage     coverage of one 95% interval of the spread ratio (true ratio 2)
  spread_test  the verdict's paired spread test of the final value at 5%, equal spreads (exchangeable pairs, or
               one arm shifted by one unit): how often it rejects
  spread_power the same test when the first arm spreads twice as much (normal values): how often it rejects
  verdict      simulated grids where every variant comes from one distribution: how often the verdict table
               takes any side on converges faster, faster by area or varies less (target <= 5%)

The ranking has its own: benchmarks/ranking_calibration.py.

    python -m benchmarks.answer_calibration [--section bands|equivalence|coverage|spread_test|spread_power|verdict]
        [--replicates 1000] [--seeds 6,10,20] [--draw 0]
"""

from __future__ import annotations

import argparse
import math
import zlib

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from benchmarks import stats_calibration
from imbal_keras.grid import curves, equivalence, stats

SEEDS = (6, 10, 20)
STEPS = np.arange(50, 401, 50, dtype=float)
KINDS = ("normal", "lognormal(0, 1)", "t(3)", "discrete", "censored")
MARGIN, SPREAD_MARGIN = 0.02, 1.5


def paired_values(rng: np.random.Generator, kind: str, n: int, m: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Two exchangeable arms (n pairs, m evaluations) of one distribution `kind`, unit scale.

    Within a pair the underlying normals correlate 0.5; along the m evaluations each run's normals follow an
    AR(1) with coefficient 0.7, as a run's curve does.
    """
    z = np.empty((2, n, m))
    z[..., 0] = rng.normal(size=(2, n))
    for step in range(1, m):
        z[..., step] = 0.7 * z[..., step - 1] + math.sqrt(1 - 0.49) * rng.normal(size=(2, n))
    z[1] = 0.5 * z[0] + math.sqrt(0.75) * z[1]
    if kind == "lognormal(0, 1)":
        values = np.exp(z)
    elif kind == "t(3)":
        values = z / np.sqrt(rng.chisquare(3, size=z.shape) / 3)
    elif kind == "discrete":
        values = np.round(z * 2) / 2
    elif kind == "censored":
        values = np.minimum(z, 0.5)
    else:
        values = z
    return values[0], values[1]


def _rng(section: int, draw: int, setting: str, n: int, shift: float = 0.0) -> np.random.Generator:
    """An independent stream per table, draw, kind of values (or setting), seed count and shift.

    Kinds must not share a stream: normal, lognormal and censored values are transforms of the same normals, so
    one stream would give them the same sign patterns and nearly the same rates, one draw counted three times.
    """
    return np.random.default_rng([section, draw, zlib.crc32(setting.encode()), n, int(shift * 10)])


def _rate(hits: int, replicates: int, interval: bool) -> float | str:
    """The share, with its Clopper-Pearson 95% interval when asked."""
    if not interval:
        return hits / replicates
    ci = binomtest(hits, replicates).proportion_ci(0.95, method="exact")
    return f"{hits / replicates:.4f} [{ci.low:.3f}, {ci.high:.3f}]"


def bands_table(replicates: int, seeds: tuple[int, ...] = SEEDS, draw: int = 0) -> pd.DataFrame:
    rows = []
    truth = np.linspace(0.0, 0.5, len(STEPS))
    for kind in KINDS:
        for band in ("difference: misses the true curve", "spread: names a step, spreads equal"):
            row = {"values": kind, "band": band}
            for n in seeds:
                rng = _rng(1, draw, kind, n)
                wrong = 0
                for _ in range(replicates):
                    a, b = paired_values(rng, kind, n, len(STEPS))
                    if band.startswith("difference"):
                        out = curves.difference_band(a + truth, b, STEPS)
                        wrong += np.any((out.low > truth) | (out.high < truth))
                    else:
                        wrong += np.any(curves.spread_band(a, b, STEPS).side() != 0)
                row[f"{n} seeds"] = wrong / replicates
            rows.append(row)
    return pd.DataFrame(rows)


def equivalence_table(replicates: int, seeds: tuple[int, ...] = SEEDS, draw: int = 0) -> pd.DataFrame:
    rows = []
    for kind in KINDS:
        for figure in ("difference on the margin", "90% interval covers", "spread ratio on the margin"):
            row = {"values": kind, "figure": figure}
            for n in seeds:
                rng = _rng(2, draw, kind, n)
                hits = 0
                for i in range(replicates):
                    a, b = (x[:, 0] for x in paired_values(rng, kind, n))
                    hits += _equivalence_hit(figure, a, b, sign=1 if i % 2 else -1)
                row[f"{n} seeds"] = _rate(hits, replicates, figure.startswith("difference"))
            rows.append(row)
    return pd.DataFrame(rows)


def _equivalence_hit(figure: str, a: np.ndarray, b: np.ndarray, *, sign: int) -> bool:
    """One replicate: a false "equivalent" on either margin (alternating), or the interval covering the truth."""
    if figure.startswith("spread"):
        factor = SPREAD_MARGIN**sign
        out = equivalence.spread_ratio(a * factor, b, SPREAD_MARGIN)
        return out["spread_equivalence"] == equivalence.EQUIVALENT
    # Values of sd 0.005 (normal) against a margin of 0.02: the far side of the margin is out of reach, so a
    # false "equivalent" is as likely as the near one-sided test allows, the hardest case for TOST.
    out = equivalence.paired_difference(a * 0.005 + sign * MARGIN, b * 0.005, MARGIN)
    if figure.startswith("difference"):
        return out["equivalence"] == equivalence.EQUIVALENT
    return not np.isnan(out["equivalence_ci_low"]) and (
        out["equivalence_ci_low"] <= sign * MARGIN <= out["equivalence_ci_high"]
    )


def coverage_table(replicates: int, seeds: tuple[int, ...] = SEEDS, draw: int = 0) -> pd.DataFrame:
    rows = []
    for kind in KINDS:
        row = {"values": kind, "interval": "sd ratio, 95% (truth 2)"}
        for n in seeds:
            rng = _rng(3, draw, kind, n)
            covered = 0
            for _ in range(replicates):
                a, b = paired_values(rng, kind, n)
                _, low, high = stats.spread_ratio_interval(2 * a, b)
                covered += bool(low[0] <= 2 <= high[0])
            row[f"{n} seeds"] = covered / replicates
        rows.append(row)
    return pd.DataFrame(rows)


def spread_test_table(replicates: int, seeds: tuple[int, ...] = SEEDS, draw: int = 0) -> pd.DataFrame:
    """One paired spread test of the final value at 5%, equal spreads: exchangeable pairs, or the first arm shifted."""
    rows = []
    for kind in KINDS:
        for shift in (0.0, 1.0):
            row = {"values": kind, "first arm shifted by": shift}
            for n in seeds:
                row[f"{n} seeds"] = _spread_rejected(_rng(4, draw, kind, n, shift), kind, n, replicates, 1, shift)
            rows.append(row)
    return pd.DataFrame(rows)


def spread_power_table(replicates: int, seeds: tuple[int, ...] = SEEDS, draw: int = 0) -> pd.DataFrame:
    """The same spread test when the first arm spreads twice as much (normal values), means equal or apart."""
    rows = []
    for shift in (0.0, 1.0):
        row = {"values": "normal, first arm's sd x2", "first arm shifted by": shift}
        for n in seeds:
            rng = _rng(5, draw, "normal", n, shift)
            row[f"{n} seeds"] = _spread_rejected(rng, "normal", n, replicates, 2, shift)
        rows.append(row)
    return pd.DataFrame(rows)


def _spread_rejected(rng, kind: str, n: int, replicates: int, scale: float, shift: float) -> float:
    """How often the verdict's paired spread test rejects at 5% when the first arm is scale * a + shift."""
    rejected = 0
    for _ in range(replicates):
        a, b = (x[:, 0] for x in paired_values(rng, kind, n))
        out = stats.paired(scale * a + shift, b, min_seeds=n)
        rejected += out["spread_status"] == stats.OK and out["spread_p"] < 0.05
    return rejected / replicates


def verdict_table(replicates: int, seeds: tuple[int, ...] = SEEDS, draw: int = 0) -> pd.DataFrame:
    """Any side taken on converges faster, faster by area or varies less, per table of 4 controls (12 tests)."""
    rows = []
    for label, (grid, pair_on) in stats_calibration.NULL_SETTINGS.items():
        if not pair_on:
            continue
        row = {"setting": label}
        for n in seeds:
            rng = _rng(6, draw, label, n)
            tables = stats_calibration.verdicts(rng, replicates, seeds=n, pair_on=pair_on, **grid)
            row[f"{n} seeds"] = stats_calibration.false_verdict_rate(tables)
        rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--section",
        choices=("all", "bands", "equivalence", "coverage", "spread_test", "spread_power", "verdict"),
        default="all",
    )
    parser.add_argument("--replicates", type=int, default=1000)
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)), help="comma-separated numbers of seeds")
    parser.add_argument("--draw", type=int, default=0, help="another value draws other simulated data")
    args = parser.parse_args()
    seeds = tuple(int(n) for n in args.seeds.split(","))
    sections = {
        "bands": bands_table,
        "equivalence": equivalence_table,
        "coverage": coverage_table,
        "spread_test": spread_test_table,
        "spread_power": spread_power_table,
        "verdict": verdict_table,
    }
    for name, make in sections.items():
        if args.section in ("all", name):
            print(f"\n## {name} ({args.replicates} replicates)\n")
            print(make(args.replicates, seeds, args.draw).round(3).to_string(index=False))


if __name__ == "__main__":
    main()
