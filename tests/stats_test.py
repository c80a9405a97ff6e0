"""Grid statistics: by-hand values, agreement with scipy/statsmodels, and calibration by small seeded simulations.

The large simulations are in benchmarks/stats_calibration.py; here each runs a few hundred replicates and checks
a binomial bound loose enough to pass by chance with probability above 99.9% but tight enough to fail the
statistics the report used before (BCa intervals covering 84% at 4 seeds, verdicts firing 11-30% under the null).
"""

import itertools
import math
import os
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from benchmarks import stats_calibration
from imbal_keras.errors import UserInputError
from imbal_keras.grid import stats, verdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METRIC, ROUGHNESS = stats_calibration.METRIC, stats_calibration.ROUGHNESS


# describe


def test_describe_by_hand():
    out = stats.describe([1.0, 2.0, 3.0, 4.0, np.nan])
    half = scipy_stats.t.ppf(0.975, 3) * np.std([1, 2, 3, 4], ddof=1) / 2
    assert out["n"] == 4 and out["mean"] == 2.5 and out["min"] == 1 and out["max"] == 4
    assert out["std"] == pytest.approx(math.sqrt(5 / 3))
    assert (out["ci_low"], out["ci_high"]) == pytest.approx((2.5 - half, 2.5 + half))
    assert out["status"] == stats.OK


@pytest.mark.parametrize(
    ("values", "status"),
    [([0.5], stats.TOO_FEW_SEEDS), ([], stats.TOO_FEW_SEEDS), ([0.5, 0.5, 0.5, 0.5], stats.NO_SPREAD)],
    ids=["one", "none", "constant"],
)
def test_describe_degenerate_samples_get_no_interval(values, status):
    out = stats.describe(values)
    assert out["status"] == status
    assert math.isnan(out["ci_low"]) and math.isnan(out["ci_high"])  # never a zero-width "exact" interval


@pytest.mark.parametrize("n", [3, 5, 10])
def test_describe_interval_covers_95_percent_at_small_n(n):
    rng = np.random.default_rng(n)
    covered = [(d := stats.describe(rng.normal(0.3, 0.1, n)))["ci_low"] <= 0.3 <= d["ci_high"] for _ in range(400)]
    # Binomial(400, 0.95) lies in [364, 392] with probability > 99.9%; 84% coverage (336) fails.
    assert 364 <= sum(covered) <= 392


# Sign-flip test, Holm, Clopper-Pearson


@pytest.mark.parametrize("n", [5, 8])
def test_sign_flip_p_equals_scipy_exact_permutation_test(n):
    rng = np.random.default_rng(n)
    for _ in range(5):
        d = np.round(rng.normal(0.3, 1, n), 1)  # rounding makes tied |means| across sign patterns
        reference = scipy_stats.permutation_test(
            (d,), np.mean, permutation_type="samples", n_resamples=np.inf, vectorized=True
        ).pvalue
        assert stats.sign_flip_p(d) == pytest.approx(reference)


def test_sign_flip_p_smallest_value_is_two_in_two_to_the_n_never_zero():
    assert stats.sign_flip_p(np.full(6, -50.0)) == pytest.approx(2 / 64)
    assert stats.sign_flip_p([1.0, 2.0]) == pytest.approx(2 / 4)  # |1 + 2| twice, |1 - 2| twice
    assert stats.sign_flip_p(np.zeros(4)) == 1.0


def test_sign_flip_p_is_exact_at_twenty_pairs_and_draws_patterns_reproducibly_beyond_24():
    rng = np.random.default_rng(0)
    d = np.round(rng.normal(0.5, 1, 18), 1)
    reference = scipy_stats.permutation_test(
        (d,), np.mean, permutation_type="samples", n_resamples=np.inf, vectorized=True
    ).pvalue
    assert stats.sign_flip_is_exact(24) and stats.sign_flip_p(d) == pytest.approx(reference)
    assert stats.sign_flip_p(np.full(20, 1.0)) == pytest.approx(2 / 2**20)  # the observed pattern and its mirror
    d = rng.normal(0.3, 1, 30)
    p = stats.sign_flip_p(d)
    reference = scipy_stats.permutation_test(
        (d,), np.mean, permutation_type="samples", n_resamples=200_000, vectorized=True, rng=1
    ).pvalue
    assert not stats.sign_flip_is_exact(30) and p == stats.sign_flip_p(d)
    assert p == pytest.approx(reference, abs=4 * math.sqrt(reference * (1 - reference) / 9999) + 1e-4)
    assert stats.sign_flip_p(np.full(30, 1.0)) == pytest.approx(1 / 10000)  # only the observed pattern


def test_holm_equals_statsmodels_and_skips_nan():
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 0.1, 9)
    np.testing.assert_allclose(stats.holm(p), multipletests(p, method="holm")[1])
    with_nan = np.array([0.01, np.nan, 0.04, 0.03])
    adjusted = stats.holm(with_nan)
    assert np.isnan(adjusted[1])
    np.testing.assert_allclose(adjusted[[0, 2, 3]], multipletests([0.01, 0.04, 0.03], method="holm")[1])
    assert stats.holm([np.nan]).tolist() != [0.0]


@pytest.mark.parametrize(
    ("a", "b", "wins"),
    [
        ([0] * 6, [1] * 6, 0),
        ([1] * 6, [0] * 6, 6),
        ([1, 1, 1, 1, 0, 0], [0, 0, 0, 0, 0, 1], 4.5),  # a tie counts half a win
        ([1] * 7 + [0] * 3, [0] * 7 + [1] * 3, 7),
    ],
    ids=["none", "all", "tie", "seven"],
)
def test_probability_of_improvement_interval_is_clopper_pearson(a, b, wins):
    out = stats.paired(np.array(a, dtype=float), np.array(b, dtype=float))
    assert out["probability_of_improvement"] == pytest.approx(wins / len(a))
    low, high = proportion_confint(wins, len(a), alpha=0.05, method="beta")
    assert (out["poi_ci_low"], out["poi_ci_high"]) == pytest.approx((low, high))


# Paired comparison


def test_paired_by_hand():
    a = np.array([0.50, 0.62, 0.55, 0.71, 0.58, 0.66, 0.60])
    b = np.array([0.48, 0.55, 0.50, 0.69, 0.57, 0.60, 0.61])
    out = stats.paired(a, b)
    d = a - b
    interval = scipy_stats.ttest_rel(a, b).confidence_interval(0.95)
    assert out["pairing"] == "paired" and out["n"] == 7 and out["status"] == stats.OK
    assert out["difference"] == pytest.approx(d.mean())
    assert (out["difference_ci_low"], out["difference_ci_high"]) == pytest.approx((interval.low, interval.high))
    assert out["difference_p"] == pytest.approx(stats.sign_flip_p(d))
    assert out["variance_ratio"] == pytest.approx(np.var(a, ddof=1) / np.var(b, ddof=1))
    assert out["correlation"] == pytest.approx(np.corrcoef(a, b)[0, 1])
    deviations = np.abs(a - np.median(a)) - np.abs(b - np.median(b))
    assert out["spread_statistic"] == pytest.approx(deviations.mean())
    assert out["spread_p"] == pytest.approx(_swap_p_by_enumeration(a, b))
    assert out["probability_of_improvement"] == pytest.approx(6 / 7)


def _swap_p_by_enumeration(a, b):
    """The paired Brown-Forsythe swap p-value written out: every swap pattern, pandas' medians, plain loops."""

    def statistic(x, y):
        x, y = pd.Series(x), pd.Series(y)
        return abs((x - x.median()).abs().mean() - (y - y.median()).abs().mean())

    observed, count, total = statistic(a, b), 0, 0
    for swaps in itertools.product((False, True), repeat=len(a)):
        x = [bi if s else ai for ai, bi, s in zip(a, b, swaps, strict=True)]
        y = [ai if s else bi for ai, bi, s in zip(a, b, swaps, strict=True)]
        count += statistic(x, y) >= observed * (1 - 1e-9)
        total += 1
    return count / total


def test_swap_spread_p_enumerates_every_swap_and_draws_beyond_sixteen_pairs():
    rng = np.random.default_rng(4)
    a, b = rng.lognormal(size=(2, 9))
    assert stats.swap_spread_p(a, 3 * b) == pytest.approx(_swap_p_by_enumeration(a, 3 * b))
    assert stats.swap_spread_p(a, a + 1) == 1.0  # a shift changes no spread
    # Beyond 16 pairs: 9,999 random patterns plus the observed one, so the p-value is a multiple of 1 / 10,000.
    a, b = rng.normal(size=(2, 20))
    p = stats.swap_spread_p(a, 4 * b)
    assert p * 10_000 == pytest.approx(round(p * 10_000)) and 1e-4 <= p < 0.01


def test_swap_spread_test_keeps_its_level_under_skewed_and_censored_values():
    """Equal spreads, exchangeable or shifted pairs: at most 5% rejections (binomial bound, 400 replicates)."""
    rng = np.random.default_rng(5)
    rejected = {}
    for kind, shift in (("lognormal", 0.0), ("lognormal", 1.0), ("censored", 0.0)):
        hits = 0
        for _ in range(400):
            z = rng.normal(size=(2, 10))
            z[1] = 0.5 * z[0] + math.sqrt(0.75) * z[1]
            values = np.exp(z) if kind == "lognormal" else np.minimum(z, 0.5)
            hits += stats.swap_spread_p(values[0] + shift, values[1]) < 0.05
        rejected[(kind, shift)] = hits
    # P(at least 36 of 400 | rate 5%) < 0.001; a test rejecting 9% of the time passes with probability 0.47.
    assert max(rejected.values()) < 36, rejected


def test_pitman_morgan_by_hand():
    rng = np.random.default_rng(1)
    x = rng.normal(size=12)
    a, b = x + rng.normal(0, 0.5, 12), x + rng.normal(0, 1.5, 12)
    out = stats.paired(a, b, variance_test="pitman_morgan")
    # Pitman (1939), Morgan (1939): t = r sqrt(n - 2) / sqrt(1 - r^2), r the correlation of a + b and a - b.
    r = np.corrcoef(a + b, a - b)[0, 1]
    t = r * math.sqrt(10) / math.sqrt(1 - r**2)
    assert out["spread_statistic"] == pytest.approx(r)
    assert out["spread_p"] == pytest.approx(2 * scipy_stats.t.sf(abs(t), 10))
    assert out["spread_statistic"] < 0 and out["variance_ratio"] < 1  # the sign of r is that of var(a) - var(b)


def test_paired_two_seeds_take_no_side_and_no_zero_p():
    # The case: 2 seeds with tied values gave Brown-Forsythe p ~ 1e-31 and a zero-width interval.
    out = stats.paired([100.0, 150.0], [150.0, 200.0])
    assert out["status"] == out["difference_status"] == stats.TOO_FEW_SEEDS
    assert math.isnan(out["difference_ci_low"]) and math.isnan(out["difference_p"])  # differences -50, -50
    assert out["spread_status"] == stats.TOO_FEW_SEEDS and math.isnan(out["spread_p"])


def test_paired_degenerate_arms():
    constant = stats.paired(np.full(8, 0.5), np.linspace(0.4, 0.6, 8))
    assert constant["spread_status"] == stats.NO_SPREAD and math.isnan(constant["spread_p"])
    assert constant["difference_status"] == stats.OK and constant["difference_p"] > 0
    shifted = stats.paired(np.arange(8.0), np.arange(8.0) + 1, variance_test="pitman_morgan")
    assert shifted["difference_status"] == stats.NO_SPREAD
    assert shifted["spread_p"] == 1.0  # b = a + 1: the variances are equal exactly
    few = stats.paired(np.arange(5.0), np.arange(5.0)[::-1])
    assert few["status"] == stats.TOO_FEW_SEEDS and few["difference_p"] > 0.05


def test_paired_drops_pairs_with_nan():
    out = stats.paired([1.0, np.nan, 3.0, 4.0], [0.5, 2.0, np.nan, 3.5])
    assert out["n"] == 2 and out["difference"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"a": [1.0, 2.0], "b": [1.0]}, r"same length .* Received: 2 and 1 values"),
        ({"a": [1.0], "b": [1.0], "variance_test": "levene"}, r"Received: variance_test='levene'"),
    ],
    ids=["lengths", "variance_test"],
)
def test_paired_bad_input(kwargs, match):
    with pytest.raises(UserInputError, match=match):
        stats.paired(**kwargs)


def test_paired_null_family_of_eight_tests_rarely_takes_a_side():
    # Four controls against one treatment, 10 pairs each, both parts: one Holm family of 8 tests. Values from one
    # distribution with a shared seed effect and ties (rounded); any rejection is a false verdict.
    rng = np.random.default_rng(7)
    fired = 0
    for _ in range(300):
        seed_effect = rng.normal(0, 1, 10)
        arms = np.round(seed_effect + rng.normal(0, 1, (5, 10)), 0)
        figures = [stats.paired(arms[0], arms[c]) for c in range(1, 5)]
        p = [f["difference_p"] for f in figures] + [f["spread_p"] for f in figures]
        fired += bool(np.any(stats.holm(p) < 0.05))
    assert fired <= 27  # Binomial(300, 0.05) exceeds 27 with probability 0.13%


def test_paired_interval_coverage_and_power_with_a_known_effect():
    rng = np.random.default_rng(3)
    covered = rejected = 0
    for _ in range(300):
        seed_effect = rng.normal(0, 1, 10)
        a, b = seed_effect + 1.2 + rng.normal(0, 0.7, 10), seed_effect + rng.normal(0, 0.7, 10)
        out = stats.paired(a, b)
        covered += out["difference_ci_low"] <= 1.2 <= out["difference_ci_high"]
        rejected += out["difference_p"] < 0.05
    assert 273 <= covered <= 294  # 91-98% of 300
    # Effect 1.2, sd of the differences 0.99: the paired t-test's power at 10 pairs, from the noncentral t.
    t_power = scipy_stats.nct.sf(scipy_stats.t.ppf(0.975, 9), 9, 1.2 / (0.7 * math.sqrt(2)) * math.sqrt(10))
    assert t_power == pytest.approx(0.93, abs=0.01)
    assert rejected >= 0.85 * 300  # the exact test loses a little of the t-test's power


# Unpaired comparison


def test_unpaired_by_hand():
    a = np.array([0.61, 0.55, 0.70, 0.52, 0.66, 0.59])
    b = np.array([0.48, 0.57, 0.50, 0.45, 0.53, 0.60, 0.44])
    out = stats.unpaired(a, b)
    va, vb = np.var(a, ddof=1) / 6, np.var(b, ddof=1) / 7
    df = (va + vb) ** 2 / (va**2 / 5 + vb**2 / 6)
    half = scipy_stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    assert out["pairing"] == "unpaired" and out["status"] == stats.OK
    assert (out["difference_ci_low"], out["difference_ci_high"]) == pytest.approx(
        (a.mean() - b.mean() - half, a.mean() - b.mean() + half)
    )
    u = scipy_stats.mannwhitneyu(a, b).statistic
    assert out["probability_of_improvement"] == pytest.approx(u / 42)
    assert out["spread_p"] == pytest.approx(scipy_stats.levene(a, b, center="median").pvalue)
    assert 0 < out["difference_p"] < 0.05


def test_unpaired_permutation_p_matches_scipy_exact_test_within_sampling_error():
    rng = np.random.default_rng(4)
    a, b = rng.normal(0.8, 1, 5), rng.normal(0, 1, 6)  # 462 relabellings: scipy enumerates them all
    exact = scipy_stats.permutation_test(
        (a, b), lambda x, y, axis: x.mean(axis) - y.mean(axis), n_resamples=np.inf, vectorized=True
    ).pvalue
    p = stats.unpaired(a, b, min_seeds=5)["difference_p"]
    assert p == pytest.approx(exact, abs=4 * math.sqrt(exact * (1 - exact) / 9999))


def test_newcombe_interval_at_complete_separation_and_coverage():
    low, high = stats.newcombe_interval(1.0, 6, 6)
    assert high == 1.0 and 0.5 < low < 0.95
    assert stats.newcombe_interval(0.0, 6, 6) == pytest.approx((1 - high, 1 - low))
    rng = np.random.default_rng(5)
    truth = scipy_stats.norm.cdf(1 / math.sqrt(2))  # P(A > B) for A ~ N(1, 1), B ~ N(0, 1)
    covered = 0
    for _ in range(300):
        u = scipy_stats.mannwhitneyu(rng.normal(1, 1, 6), rng.normal(0, 1, 6)).statistic
        low, high = stats.newcombe_interval(u / 36, 6, 6)
        covered += low <= truth <= high
    assert covered >= 273  # at least 91% of 300


def test_unpaired_too_few_and_constant():
    assert stats.unpaired([1.0, 2.0, 3.0], np.arange(8.0))["status"] == stats.TOO_FEW_SEEDS
    both = stats.unpaired(np.ones(6), np.zeros(6))
    assert both["difference_status"] == stats.NO_SPREAD and math.isnan(both["difference_p"])
    assert both["spread_status"] == stats.NO_SPREAD


# compare: pairing by key


def _arm(seeds, values, **columns):
    return pd.DataFrame({"seed": seeds, "m": values, **columns})


def test_compare_pairs_on_shared_keys_and_counts_unmatched():
    a = _arm([0, 1, 2, 3, 4, 5, 6, 9], [1.0, 2, 3, 4, 5, 6, 7, 100])
    b = _arm([6, 5, 4, 3, 2, 1, 0, 8], [6.5, 5.5, 4.5, 3.5, 2.5, 1.5, 0.5, -100])
    out = stats.compare(a, b, "m")
    assert out["pairing"] == "paired" and out["n"] == 7 and out["unmatched"] == 2
    assert out["difference"] == pytest.approx(0.5) and out["difference_status"] == stats.NO_SPREAD


def test_compare_falls_back_to_unpaired():
    a, b = _arm(range(6), np.arange(6.0)), _arm(range(10, 16), np.arange(6.0) + 1)
    assert stats.compare(a, b, "m")["pairing"] == "unpaired"
    assert stats.compare(a, _arm(range(6), np.arange(6.0)), "m", pair_on=())["pairing"] == "unpaired"


def test_compare_rejects_a_key_that_is_not_unique():
    a = _arm([0, 0, 1], [1.0, 2, 3])
    with pytest.raises(
        UserInputError, match=r"runs has several runs with the same key\. Received: pair_on=\('seed',\)"
    ):
        stats.compare(a, a, "m")
    with pytest.raises(UserInputError, match=r"runs lacks the column\(s\) 'x'"):
        stats.compare(a, a, "x")


# Convergence and roughness


def _curves(values_by_run, steps=(10, 20, 30, 40)):
    rows = [
        {"run_name": run, "step": s, "acc": v, "val": v / 2}
        for run, values in values_by_run.items()
        for s, v in zip(steps, values, strict=False)
    ]
    return pd.DataFrame(rows)


def test_convergence_common_target_censoring_and_roughness_by_hand():
    results = pd.DataFrame(
        {"run_name": ["a0", "a1", "b0", "b1", "c0"], "v": ["A", "A", "B", "B", "C"], "cell": ["x"] * 4 + ["y"]}
    )
    curves = _curves(
        {
            "a0": [0.2, 0.6, 0.8, 1.0],
            "a1": [0.4, 0.8, 1.0, 1.0],  # A's mean curve peaks at 1.0: the cell's target is 0.9
            "b0": [0.1, 0.1, 0.1, 0.1],  # never learns: censored, not fast
            "b1": [0.5, 0.95, 0.3],  # its last evaluation is step 30: the cell's horizon
            "c0": [0.1, 0.2],
        }
    )
    out = verdict.convergence(
        results,
        curves,
        cell_fields=("cell",),
        metric="acc",
        roughness_metric="val",
        columns=verdict.Columns(variant="v"),
    ).set_index("run_name")
    assert out.loc["a0", "target"] == pytest.approx(0.9) and out.loc["c0", "target"] == pytest.approx(0.18)
    assert out.loc["a0", "horizon"] == 30 and out.loc["c0", "horizon"] == 20
    # a0 reaches 0.9 only at step 40, after the horizon: censored at 30. a1 reaches it at 30, b1 at 20.
    assert out["steps_to_target"].to_dict() == pytest.approx(
        {"a0": np.nan, "a1": 30, "b0": np.nan, "b1": 20, "c0": 20}, nan_ok=True
    )
    assert out["reached"].tolist() == [False, True, False, True, True]
    assert out["restricted_steps"].tolist() == [30, 30, 30, 20, 20]
    assert out.loc["a0", "roughness"] == pytest.approx((0.2 + 0.1 + 0.1) / 3 / 1)  # mean |change| of val = acc / 2
    assert out.loc["b1", "roughness"] == pytest.approx((0.225 + 0.325) / 2)
    assert out.loc["b0", "roughness"] == 0


def test_convergence_run_without_curve_is_not_timed():
    results = pd.DataFrame({"run_name": ["a", "b"], "strategy_variant": ["A", "A"]})
    curves = _curves({"a": [0.5, 1.0]}).rename(columns={"acc": "test_average_precision", "val": "v"})
    out = verdict.convergence(results, curves, cell_fields=(), roughness_metric="v")
    assert out["restricted_steps"].tolist()[0] == 20 and math.isnan(out["restricted_steps"].tolist()[1])
    assert not out["reached"].tolist()[1]


@pytest.mark.parametrize("fraction", [0, 1.5])
def test_convergence_bad_fraction(fraction):
    results = pd.DataFrame({"run_name": ["a"], "strategy_variant": ["A"]})
    curves = _curves({"a": [0.5]}).rename(columns={"acc": "test_average_precision", "val": "v"})
    with pytest.raises(UserInputError, match=rf"fraction must be in \(0, 1\]\. Received: fraction={fraction}"):
        verdict.convergence(results, curves, cell_fields=(), roughness_metric="v", fraction=fraction)


def test_curve_area_is_mean_value_over_training():
    assert verdict.curve_area([0, 10, 20], [0.0, 1.0, 1.0]) == pytest.approx(0.75)
    assert verdict.curve_area([5], [0.3]) == 0.3


# Variance decomposition


def test_seed_variance_one_source_at_a_time_and_all_by_hand():
    # Variant A: order varies alone (data 0, init 0) in 4 runs; init varies alone (data 0, order 0) in 3 runs;
    # and 3 runs with every seed different. Variant B: only "all".
    order_runs = [(0, 0, o, v) for o, v in zip([0, 1, 2, 3], [0.50, 0.52, 0.49, 0.53], strict=True)]
    init_runs = [(0, i, 0, v) for i, v in zip([1, 2], [0.45, 0.56], strict=True)]
    all_runs = [(s, s, s, v) for s, v in zip([11, 12, 13], [0.30, 0.60, 0.45], strict=True)]
    rows = [("A", *r) for r in order_runs + init_runs + all_runs] + [("B", s, s, s, 0.1 * s) for s in range(3)]
    results = pd.DataFrame(rows, columns=["v", "data_seed", "init_seed", "order_seed", "m"])
    out = stats.seed_variance(results, metric="m", group_fields=("v",)).set_index(["v", "source"])
    assert set(out.index) == {("A", "order_seed"), ("A", "init_seed"), ("A", "all"), ("B", "all")}
    order = np.var([0.50, 0.52, 0.49, 0.53], ddof=1)
    init = np.var([0.50, 0.45, 0.56], ddof=1)  # (data 0, order 0) holds init 0, 1, 2
    every = np.var([0.30, 0.60, 0.45], ddof=1)
    assert out.loc[("A", "order_seed"), "std"] == pytest.approx(math.sqrt(order))
    assert out.loc[("A", "order_seed"), "df"] == 3 and out.loc[("A", "init_seed"), "runs"] == 3
    assert out.loc[("A", "init_seed"), "std"] == pytest.approx(math.sqrt(init))
    assert out.loc[("A", "all"), "std"] == pytest.approx(math.sqrt(every))
    assert out.loc[("A", "order_seed"), "fraction_of_all"] == pytest.approx(order / every)
    low, high = out.loc[("A", "order_seed"), ["std_ci_low", "std_ci_high"]]
    assert low == pytest.approx(math.sqrt(3 * order / scipy_stats.chi2.ppf(0.975, 3)))
    assert high == pytest.approx(math.sqrt(3 * order / scipy_stats.chi2.ppf(0.025, 3)))


def test_seed_variance_pools_groups_and_recovers_known_spreads():
    # Crossed design: 6 data seeds x 6 order seeds, y = data effect (sd 0.2) + order effect (sd 0.05).
    rng = np.random.default_rng(0)
    data, order = np.meshgrid(np.arange(6), np.arange(6), indexing="ij")
    y = rng.normal(0, 0.2, 6)[data] + rng.normal(0, 0.05, (6, 6))
    results = pd.DataFrame(
        {"data_seed": data.ravel(), "init_seed": 0, "order_seed": order.ravel() + 100, "m": y.ravel(), "g": 0}
    )
    out = stats.seed_variance(results, metric="m", group_fields=("g",)).set_index("source")
    # 6 groups of 6 runs, 30 degrees of freedom pooled, but only 6 distinct seeds of each source.
    assert out.loc["order_seed", "runs"] == 36 and out.loc["order_seed", "df"] == 5
    assert out.loc["order_seed", "std_ci_low"] < 0.05 < out.loc["order_seed", "std_ci_high"]
    truth = math.sqrt(0.2**2 + 0.05**2)  # data effect plus the order noise that comes with every run
    assert out.loc["data_seed", "std_ci_low"] < truth < out.loc["data_seed", "std_ci_high"]
    assert "init_seed" not in out.index and "all" not in out.index


# Verdict


def _verdict(results, curves, **kwargs):
    options = {"treatment": "T", "controls": stats_calibration.CONTROLS, "cell_fields": ("cell",)} | kwargs
    return verdict.verdict(results, curves, **options)


@pytest.mark.parametrize("seeds", [2, 4])
def test_verdict_below_minimum_seeds_never_takes_a_side(seeds):
    rng = np.random.default_rng(seeds)
    for _ in range(10):
        table = _verdict(*stats_calibration.simulate_grid(rng, seeds=seeds, ties=True))
        assert set(table["converges_faster"]) | set(table["varies_less"]) <= {stats.TOO_FEW_SEEDS, stats.NO_SPREAD}
        assert set(table["verdict"]) <= {stats.TOO_FEW_SEEDS, stats.NO_SPREAD}
        assert table[["steps_p_holm", "spread_p_holm"]].isna().all().all()


def test_verdict_null_grids_take_a_side_at_most_five_percent_of_the_time():
    rng = np.random.default_rng(11)
    tables = stats_calibration.verdicts(rng, 100, seeds=10, ties=True)
    # Binomial(100, 0.05) exceeds 11 with probability 0.4%. (The benchmark runs 400 grids per setting.)
    assert stats_calibration.false_verdict_rate(tables) <= 0.11


def test_verdict_power_for_a_treatment_twice_as_fast_and_steadier_on_fixed_data():
    # The benchmark's "2x faster and 1/3 the spread, data fixed" setting at 10 seeds: 92% of rows find the
    # treatment faster (docs/statistics.md). 20 tables here; below 75% would be a defect, not bad luck.
    rng = np.random.default_rng(12)
    tables = stats_calibration.verdicts(rng, 20, seeds=10, faster=0.5, steadier=1 / 3, data="fixed")
    assert stats_calibration.supported_rate(tables, "converges_faster") >= 0.75
    assert not any(t[["converges_faster", "varies_less"]].isin([verdict.CONTRADICTED]).any().any() for t in tables)


def _clear_grid(sign):
    """Two variants on 8 seeds: B's curve reaches its plateau at step 10 or 20, A's at 40 (sign=1), or reversed.

    Final values are 0.8 + 0.01 * seed, plus 0.1 * (-1)^seed for A: every A run lies further from its arm's
    median than any B run. The target, 90% of the best mean curve (0.835), is 0.7515: three A runs (0.71, 0.73,
    0.75) never reach it and count at the horizon, step 40, where the others reach it too.
    """
    results, curves = [], []
    for seed in range(8):
        for variant, fast in (("A", sign < 0), ("B", sign > 0)):
            name = f"{variant}{seed}"
            final = 0.8 + 0.01 * seed + (0.1 * (-1) ** seed if variant == "A" else 0.0)
            values = [final if seed % 2 else 0.3, final, final, final] if fast else [0.1, 0.2, 0.3, final]
            results.append({"run_name": name, "strategy_variant": variant, "seed": seed, METRIC: final})
            for step, value in zip((10, 20, 30, 40), values, strict=True):
                curves.append({"run_name": name, "step": step, METRIC: value, ROUGHNESS: value})
    return pd.DataFrame(results), pd.DataFrame(curves)


def test_verdict_takes_the_side_of_clear_evidence_with_names_it_is_given():
    table = verdict.verdict(*_clear_grid(1), treatment="B", controls=["A"], cell_fields=(), held_equal=("seed",))
    row = table.iloc[0]
    assert row["converges_faster"] == verdict.SUPPORTED and row["steps_difference"] == pytest.approx(-25)
    assert row["steps_p"] == pytest.approx(2 / 256)  # every seed faster: the exact test's smallest p-value
    assert row["reached"] == "8/8 vs 5/8" and row["pairing"] == "paired on seed"
    assert row["varies_less"] == verdict.SUPPORTED and row["spread_p"] == pytest.approx(2 / 256)
    assert row["verdict"] == verdict.SUPPORTED
    assert row["held_equal"].startswith("seed DIFFERS")
    reverse = verdict.verdict(*_clear_grid(1), treatment="A", controls=["B"], cell_fields=()).iloc[0]
    assert reverse["converges_faster"] == reverse["varies_less"] == reverse["verdict"] == verdict.CONTRADICTED


def test_verdict_counts_runs_that_never_reach_the_target_at_the_horizon_not_as_fast():
    # A is now the fast variant, but three of its runs never reach the target: those seeds tie with B at the
    # horizon, leaving 5 informative pairs, too few for the exact test (smallest p-value 2 / 2^5).
    row = verdict.verdict(*_clear_grid(-1), treatment="B", controls=["A"], cell_fields=()).iloc[0]
    assert row["reached"] == "8/8 vs 5/8"
    assert row["steps_difference"] > 0 and row["steps_p"] == pytest.approx(2 / 32)
    assert row["converges_faster"] == verdict.INCONCLUSIVE


def test_verdict_compares_within_cells_only():
    rng = np.random.default_rng(2)
    grids = []
    for cell, faster in (("slow cell", 1.0), ("fast cell", 1 / 4)):
        results, curves = stats_calibration.simulate_grid(rng, seeds=8, faster=faster)
        rename = {name: f"{cell}/{name}" for name in results["run_name"]}
        grids.append((results.assign(cell=cell).replace({"run_name": rename}), curves.replace({"run_name": rename})))
    table = _verdict(pd.concat([g[0] for g in grids]), pd.concat([g[1] for g in grids]))
    assert table["cell"].tolist() == ["slow cell"] * 4 + ["fast cell"] * 4
    # Each cell's rows are what the cell alone gives, Holm aside (the family is the whole table).
    alone = pd.concat([_verdict(*g) for g in grids], ignore_index=True)
    answers = ["steps_p_holm", "spread_p_holm", "area_p_holm", "converges_faster", "varies_less", "faster_by_area"]
    answers.append("verdict")
    pd.testing.assert_frame_equal(table.drop(columns=answers), alone.drop(columns=answers))
    assert table["target"].nunique() == 2


def test_verdict_identical_runs_are_reported_identical_not_tested():
    results, curves = _clear_grid(1)
    results["test_average_precision"] = 0.5
    curves["test_average_precision"] = curves["validation_average_precision"] = 0.5
    row = verdict.verdict(results, curves, treatment="B", controls=["A"], cell_fields=()).iloc[0]
    assert row["converges_faster"] == row["varies_less"] == row["verdict"] == stats.IDENTICAL
    assert math.isnan(row["steps_p"]) and math.isnan(row["spread_p"])


def test_verdict_constant_but_different_arms_have_no_spread_to_compare():
    results, curves = _clear_grid(1)
    results["test_average_precision"] = np.where(results["strategy_variant"] == "A", 0.5, 0.6)
    row = verdict.verdict(results, curves, treatment="B", controls=["A"], cell_fields=()).iloc[0]
    assert row["varies_less"] == stats.NO_SPREAD and math.isnan(row["spread_p"])


def test_verdict_unpaired_when_asked():
    results, curves = _clear_grid(1)
    table = verdict.verdict(results, curves, treatment="B", controls=["A"], cell_fields=(), pair_on=())
    assert table.iloc[0]["pairing"] == "unpaired" and table.iloc[0]["seeds"] == "8 vs 8"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"treatment": "upsample"}, r"treatment must be a value of results\['strategy_variant'\] \(A, B\)\. "
                                    r"Received: treatment='upsample'"),
        ({"controls": ["A", "class_weight"]}, r"Received: controls=\('A', 'class_weight'\)"),
        ({"pair_on": ("order_seed",)}, r"results lacks the column\(s\) 'order_seed'"),
        ({"variance_test": "f"}, r"Received: variance_test='f'"),
    ],
    ids=["treatment", "controls", "pair_on", "variance_test"],
)  # fmt: skip
def test_verdict_bad_input(kwargs, match):
    options = {"treatment": "B", "controls": ["A"], "cell_fields": ()} | kwargs
    with pytest.raises(UserInputError, match=match):
        verdict.verdict(*_clear_grid(1), **options)


def test_verdict_ignores_stale_convergence_columns_of_a_results_table():
    results, curves = _clear_grid(1)
    stale = results.assign(restricted_steps=0.0, roughness=9.0, target=9.0)
    pd.testing.assert_frame_equal(
        verdict.verdict(stale, curves, treatment="B", controls=["A"], cell_fields=()),
        verdict.verdict(results, curves, treatment="B", controls=["A"], cell_fields=()),
    )


# docs/statistics.md


def test_statistics_doc_python_blocks_run():
    with open(os.path.join(ROOT, "docs", "statistics.md")) as f:
        blocks = re.findall(r"```python\n(.*?)```", f.read(), re.S)
    assert blocks
    scope = {}
    for block in blocks:
        exec(block, scope)
