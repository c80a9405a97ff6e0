"""Calibration of the grid statistics (`imbal_keras.grid.stats`) by simulation, and the cost of the metrics.

Prints five tables:

  coverage  how often each interval holds the true value, 3 to 10 seeds, normal / skewed / tied values; the
            BCa bootstrap the report used before is measured alongside for comparison
  null      simulated grids where every variant comes from one distribution (paired or not, with ties, skewed):
            how often the verdict table takes any side, per family of 4 controls (target: at most 5%)
  spread    one paired spread test at the 5% level on arms with equal variances (skewed, heavy-tailed, with
            different means): how often each variance test says they differ
  power     simulated grids where the treatment converges twice as fast and/or spreads a third as much, on data
            that varies with the seed or is fixed: how often each answer is "supported"
  metrics   `imbal_keras.metrics.classification_metrics` against the same figures from scikit-learn, time per call

    python -m benchmarks.stats_calibration [--section coverage|null|spread|power|metrics] [--replicates 1000]
"""

from __future__ import annotations

import argparse
import math
import timeit
import warnings

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from imbal_keras import metrics
from imbal_keras.grid import stats, verdict

TREATMENT = "T"
CONTROLS = ("C1", "C2", "C3", "C4")
STEPS = np.arange(50, 401, 50)
METRIC = "test_average_precision"
ROUGHNESS = "validation_average_precision"
SIDES = (verdict.SUPPORTED, verdict.CONTRADICTED)


def simulate_grid(
    rng: np.random.Generator,
    *,
    seeds: int,
    data: str = "shared",
    ties: bool = False,
    skewed: bool = False,
    faster: float = 1.0,
    steadier: float = 1.0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A grid of one cell: variants T, C1..C4 on `seeds` seeds, with curves evaluated every 50 steps to 400.

    A run's curve is level * (1 - exp(-step / tau)) plus evaluation noise (sd 0.01). The level is 0.6 plus a
    data effect (sd 0.05) plus the run's own noise (sd 0.03, a centred gamma(2) when `skewed`); tau is 120 steps
    times a data effect and the run's own (log-normal, sd 0.3 each). The data effects are shared by every
    variant of a seed (`data="shared"`: the seed fixes the data), drawn per run ("per run") or absent ("fixed":
    one dataset for the whole grid, only SGD's own noise remains). The treatment's tau is multiplied by `faster`
    and its own noise (level and tau) by `steadier`; 1 and 1 give the null (every variant from one
    distribution). With `ties`, curve values are rounded to 0.02.

    Returns:
      results (run_name, strategy_variant, cell, seed, test_average_precision = last test value) and curves
      (run_name, step, test_average_precision, validation_average_precision).
    """
    variants = (TREATMENT, *CONTROLS)
    n_runs = seeds * len(variants)
    seed_of = np.repeat(np.arange(seeds), len(variants))
    variant_of = np.tile(np.arange(len(variants)), seeds)
    if data == "shared":
        level_shift, log_tau_shift = rng.normal(0, 0.05, seeds)[seed_of], rng.normal(0, 0.3, seeds)[seed_of]
    elif data == "per run":
        level_shift, log_tau_shift = rng.normal(0, 0.05, n_runs), rng.normal(0, 0.3, n_runs)
    else:
        level_shift, log_tau_shift = np.zeros(n_runs), np.zeros(n_runs)
    own = (rng.gamma(2.0, 1.0, n_runs) - 2.0) / math.sqrt(2.0) if skewed else rng.normal(0, 1, n_runs)
    is_treatment = variant_of == 0
    scale = np.where(is_treatment, steadier, 1.0)
    level = 0.6 + level_shift + 0.03 * own * scale
    tau = 120 * np.exp(log_tau_shift + rng.normal(0, 0.3, n_runs) * scale) * np.where(is_treatment, faster, 1.0)
    clean = level[:, None] * (1 - np.exp(-STEPS[None, :] / tau[:, None]))
    test = clean + rng.normal(0, 0.01, clean.shape)
    validation = clean + rng.normal(0, 0.01, clean.shape)
    if ties:
        test, validation = np.round(test / 0.02) * 0.02, np.round(validation / 0.02) * 0.02
    names = np.array([f"{variants[v]}_{s}" for v, s in zip(variant_of, seed_of, strict=True)])
    results = pd.DataFrame(
        {
            "run_name": names,
            "strategy_variant": np.array(variants)[variant_of],
            "cell": "only",
            "seed": seed_of,
            METRIC: test[:, -1],
        }
    )
    curves = pd.DataFrame(
        {
            "run_name": np.repeat(names, len(STEPS)),
            "step": np.tile(STEPS, n_runs),
            METRIC: test.ravel(),
            ROUGHNESS: validation.ravel(),
        }
    )
    return results, curves


def verdicts(
    rng: np.random.Generator,
    replicates: int,
    *,
    seeds: int,
    pair_on: tuple[str, ...] = ("seed",),
    variance_test: str = "brown_forsythe",
    **grid,
) -> list[pd.DataFrame]:
    """The verdict table of `replicates` simulated grids (`simulate_grid` keyword arguments in `grid`)."""
    return [
        verdict.verdict(
            *simulate_grid(rng, seeds=seeds, **grid),
            treatment=TREATMENT,
            controls=CONTROLS,
            cell_fields=("cell",),
            pair_on=pair_on,
            variance_test=variance_test,
        )
        for _ in range(replicates)
    ]


def false_verdict_rate(tables: list[pd.DataFrame]) -> float:
    """Share of tables in which any tested answer (converges faster, faster by area, varies less; any control)
    takes a side."""
    parts = ["converges_faster", "faster_by_area", "varies_less"]
    return float(np.mean([t[parts].isin(SIDES).to_numpy().any() for t in tables]))


def supported_rate(tables: list[pd.DataFrame], column: str) -> float:
    """Share of rows, over all tables, whose `column` answer is "supported"."""
    return float(np.mean(np.concatenate([(t[column] == verdict.SUPPORTED).to_numpy() for t in tables])))


NULL_SETTINGS = {  # label -> (simulate_grid keyword arguments, verdict pair_on)
    "paired": ({"data": "shared"}, ("seed",)),
    "paired, ties": ({"data": "shared", "ties": True}, ("seed",)),
    "paired, skewed": ({"data": "shared", "skewed": True}, ("seed",)),
    "independent, analysed paired": ({"data": "per run"}, ("seed",)),
    "independent, unpaired": ({"data": "per run"}, ()),
    "independent, unpaired, ties": ({"data": "per run", "ties": True}, ()),
}


def null_table(replicates: int, seeds: tuple[int, ...] = (2, 4, 6, 10, 20)) -> pd.DataFrame:
    rows = []
    for label, (grid, pair_on) in NULL_SETTINGS.items():
        tests = ("brown_forsythe", "pitman_morgan") if pair_on else ("brown_forsythe",)
        for variance_test in tests:
            row = {"setting": label, "variance test": variance_test}
            for n in seeds:
                rng = np.random.default_rng(n)
                tables = verdicts(rng, replicates, seeds=n, pair_on=pair_on, variance_test=variance_test, **grid)
                row[f"{n} seeds"] = false_verdict_rate(tables)
            rows.append(row)
    return pd.DataFrame(rows)


SPREAD_MARGINS = {  # label -> (a, b) of unit spread with a shared seed effect: equal variances, any means
    "normal": lambda rng, n: (rng.normal(0, 1, n), rng.normal(0, 1, n)),
    "normal, means differ": lambda rng, n: (rng.normal(2, 1, n), rng.normal(0, 1, n)),
    "gamma(2)": lambda rng, n: (rng.gamma(2.0, 1.0, n), rng.gamma(2.0, 1.0, n)),
    "lognormal(0.5)": lambda rng, n: (rng.lognormal(0, 0.5, n), rng.lognormal(0, 0.5, n)),
    "lognormal(0.5), means differ": lambda rng, n: (rng.lognormal(0, 0.5, n) + 1, rng.lognormal(0, 0.5, n)),
    "t(3)": lambda rng, n: (rng.standard_t(3, n), rng.standard_t(3, n)),
}


def spread_table(replicates: int, seeds: tuple[int, ...] = (6, 10, 20)) -> pd.DataFrame:
    """Share of single paired spread tests at the 5% level that reject equal variances when they hold."""
    rows = []
    for label, draw in SPREAD_MARGINS.items():
        for variance_test in stats.VARIANCE_TESTS:
            row = {"values": label, "variance test": variance_test}
            for n in seeds:
                rng = np.random.default_rng(n)
                rejected = []
                for _ in range(replicates):
                    a, b = draw(rng, n)
                    shared = rng.normal(0, 1, n)  # the seed's effect on both arms
                    out = stats.paired(a + shared, b + shared, variance_test=variance_test, min_seeds=n)
                    rejected.append(out["spread_status"] == stats.OK and out["spread_p"] < 0.05)
                row[f"{n} seeds"] = float(np.mean(rejected))
            rows.append(row)
    return pd.DataFrame(rows)


POWER_SETTINGS = {  # label -> (simulate_grid keyword arguments, variance tests to run)
    "2x faster, data varies with the seed": ({"faster": 0.5}, ("brown_forsythe",)),
    "2x faster, data fixed": ({"faster": 0.5, "data": "fixed"}, ("brown_forsythe",)),
    "1/3 the spread, data varies with the seed": ({"steadier": 1 / 3}, ("brown_forsythe",)),
    "1/3 the spread, data fixed": ({"steadier": 1 / 3, "data": "fixed"}, stats.VARIANCE_TESTS),
    "2x faster and 1/3 the spread, data fixed": (
        {"faster": 0.5, "steadier": 1 / 3, "data": "fixed"},
        stats.VARIANCE_TESTS,
    ),
}


def power_table(replicates: int, seeds: tuple[int, ...] = (6, 10, 20)) -> pd.DataFrame:
    rows = []
    for label, (effect, variance_tests) in POWER_SETTINGS.items():
        for variance_test in variance_tests:
            for n in seeds:
                tables = verdicts(np.random.default_rng(n), replicates, seeds=n, variance_test=variance_test, **effect)
                rows.append(
                    {
                        "effect": label,
                        "variance test": variance_test,
                        "seeds": n,
                        "converges_faster supported": supported_rate(tables, "converges_faster"),
                        "varies_less supported": supported_rate(tables, "varies_less"),
                        "verdict supported": supported_rate(tables, "verdict"),
                    }
                )
    return pd.DataFrame(rows)


def _draw(rng: np.random.Generator, shape: str, size) -> np.ndarray:
    """Unit-variance noise: normal, skewed (centred gamma(2)) or tied (normal rounded to half a unit)."""
    if shape == "skewed":
        return (rng.gamma(2.0, 1.0, size) - 2.0) / math.sqrt(2.0)
    x = rng.normal(0, 1, size)
    return np.round(x * 2) / 2 if shape == "tied" else x


def _bca(x: np.ndarray) -> tuple[float, float]:
    """The interval the report used before: 95% BCa bootstrap of the mean, 4999 resamples."""
    if np.ptp(x) == 0:
        return math.nan, math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ci = scipy_stats.bootstrap((x,), np.mean, n_resamples=4999, method="BCa", rng=0).confidence_interval
    return ci.low, ci.high


def coverage_table(replicates: int, seeds: tuple[int, ...] = (3, 4, 6, 8, 10)) -> pd.DataFrame:
    """Coverage of each interval; `given` is the share of samples that got an interval (the rest are degenerate)."""
    rows = []
    for shape in ("normal", "skewed", "tied"):
        for n in seeds:
            rng = np.random.default_rng(n)
            hits = {k: [] for k in ("mean (t)", "mean (BCa, before)", "paired difference (t)", "P(A>B) paired",
                                    "P(A>B) unpaired", "std (chi-square)")}  # fmt: skip
            # Paired arms: a shared seed effect plus each arm's own noise; A is 0.5 higher and spreads 1.5x.
            true_poi = _true_poi(shape)
            for _ in range(replicates):
                x = _draw(rng, shape, n)
                hits["mean (t)"].append(_covers(stats.describe(x), "ci_low", "ci_high", 0.0))
                hits["mean (BCa, before)"].append(_covers(dict(zip(("l", "h"), _bca(x), strict=True)), "l", "h", 0.0))
                seed_effect = rng.normal(0, 1, n)
                a = seed_effect + 0.5 + 1.5 * _draw(rng, shape, n)
                b = seed_effect + _draw(rng, shape, n)
                pair = stats.paired(a, b)
                hits["paired difference (t)"].append(_covers(pair, "difference_ci_low", "difference_ci_high", 0.5))
                hits["P(A>B) paired"].append(_covers(pair, "poi_ci_low", "poi_ci_high", true_poi))
                other = stats.unpaired(0.5 + 1.5 * _draw(rng, shape, n), _draw(rng, shape, n))
                hits["P(A>B) unpaired"].append(_covers(other, "poi_ci_low", "poi_ci_high", true_poi))
                spread = stats.seed_variance(
                    pd.DataFrame({"m": x, "g": 0, "s": np.arange(n)}), metric="m", group_fields=("g",), sources=("s",)
                )
                hits["std (chi-square)"].append(
                    _covers(spread.iloc[0].to_dict() if len(spread) else {}, "std_ci_low", "std_ci_high", 1.0)
                )
            for interval, outcome in hits.items():
                given = [h for h in outcome if h is not None]
                rows.append(
                    {
                        "values": shape,
                        "seeds": n,
                        "interval": interval,
                        "coverage": float(np.mean(given)) if given else math.nan,
                        "given": len(given) / len(outcome),
                    }
                )
    table = pd.DataFrame(rows)
    return table.pivot_table(index=["values", "interval"], columns="seeds", values="coverage", sort=False)


def _covers(figures: dict, low: str, high: str, truth: float) -> bool | None:
    """Whether [low, high] holds `truth`; None when no interval was given."""
    if low not in figures or math.isnan(figures[low]):
        return None
    return bool(figures[low] <= truth <= figures[high])


def _true_poi(shape: str) -> float:
    """P(0.5 + 1.5 e_a > e_b) for independent noises (the seed effect cancels within a pair), by 2e6 draws."""
    rng = np.random.default_rng(12345)
    return float(np.mean(0.5 + 1.5 * _draw(rng, shape, 2_000_000) > _draw(rng, shape, 2_000_000)))


def metrics_cost_table(repeats: int = 5, number: int = 20) -> pd.DataFrame:
    """Milliseconds per `classification_metrics` call against the same figures computed by scikit-learn."""
    from sklearn import metrics as skm

    def reference(y: np.ndarray, p: np.ndarray, k: int) -> None:
        probabilities = p if p.ndim == 2 else np.stack([1 - p, p], axis=1)
        predicted = probabilities.argmax(axis=1) if k > 2 else (p >= 0.5).astype(int)
        onehot = np.eye(k)[y]
        skm.average_precision_score(onehot if k > 2 else y, p)
        skm.roc_auc_score(onehot if k > 2 else y, p)
        skm.balanced_accuracy_score(y, predicted)
        skm.f1_score(y, predicted, labels=range(k), average="macro", zero_division=0)
        skm.recall_score(y, predicted, labels=range(k), average=None, zero_division=np.nan)
        skm.log_loss(y, p, labels=range(k))
        skm.brier_score_loss(y, p, labels=range(k))
        if k == 2:
            skm.f1_score(y, predicted)
            skm.f1_score(y, p >= 0.3)

    rng = np.random.default_rng(0)
    rows = []
    for n, k in ((2_000, 2), (10_000, 2), (10_000, 10)):
        if k == 2:
            y, p = (rng.random(n) < 0.01).astype(int), rng.random(n).astype(np.float32)
        else:
            y, p = rng.integers(0, k, n), rng.dirichlet(np.ones(k), n).astype(np.float32)
        calls = (
            lambda y=y, p=p: metrics.classification_metrics(y, p, threshold=0.3),
            lambda y=y, p=p, k=k: reference(y, p, k),
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ours, theirs = (min(timeit.repeat(call, number=number, repeat=repeats)) / number for call in calls)
        rows.append(
            {
                "examples": n,
                "classes": k,
                "imbal_keras ms": round(ours * 1e3, 2),
                "scikit-learn ms": round(theirs * 1e3, 2),
                "ratio": round(theirs / ours, 1),
            }
        )
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--section", choices=("all", "coverage", "null", "spread", "power", "metrics"), default="all")
    parser.add_argument("--replicates", type=int, default=1000, help="simulated grids or samples per setting")
    args = parser.parse_args()
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 20)
    sections = {
        "coverage": lambda: coverage_table(args.replicates),
        "null": lambda: null_table(args.replicates),
        "spread": lambda: spread_table(args.replicates),
        "power": lambda: power_table(args.replicates),
        "metrics": metrics_cost_table,
    }
    for name, make in sections.items():
        if args.section in ("all", name):
            replicates = "" if name == "metrics" else f" ({args.replicates} replicates per setting)"
            print(f"\n== {name}{replicates} ==")
            print(make().round(3).to_string())


if __name__ == "__main__":
    main()
