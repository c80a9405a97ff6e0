"""The answer over the whole run: bands, equivalence, power, ties, spread by source, against by-hand values,
scipy/statsmodels, and small seeded simulations with binomial bounds (the large ones: benchmarks/stats_calibration.py).

A bound here is the 99.9% upper Clopper-Pearson limit for the nominal rate at the simulation's size: it passes by
chance with probability above 99.9% when the statistic is calibrated.
"""

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import optimize
from scipy import stats as scipy_stats
from statsmodels.stats.proportion import proportion_confint

from imbal_keras.errors import UserInputError
from imbal_keras.grid import answer, curves, equivalence, power, stats

STEPS = np.arange(50, 401, 50, dtype=float)


def _upper(rate: float, trials: int) -> float:
    """99.9% upper limit of the share of `trials` that a statistic at `rate` can reach by chance."""
    return proportion_confint(int(rate * trials), trials, alpha=0.002, method="beta")[1]


# Ties


def test_arms_equal_within_rounding_are_identical_and_not_tested():
    rng = np.random.default_rng(0)
    a = rng.uniform(0.2, 0.4, 10)
    out = stats.paired(a, a + rng.normal(0, 1e-8, 10))  # the two variants that train identically
    assert out["status"] == out["difference_status"] == out["spread_status"] == stats.IDENTICAL
    assert math.isnan(out["difference_p"]) and math.isnan(out["spread_p"])
    real = stats.paired(a, a + rng.normal(0, 1e-3, 10))
    assert real["status"] == stats.OK and real["difference_p"] > 0


# Spread by source


def test_a_source_row_with_one_degree_of_freedom_says_too_few_seeds():
    results = pd.DataFrame(
        {"data_seed": [0, 1], "init_seed": 5, "order_seed": 5, "m": [0.1, 0.9], "g": 0}
    )  # two datasets, the df = 1 row
    row = stats.seed_variance(results, metric="m", group_fields=("g",), value_range=(0, 1)).iloc[0]
    assert row["source"] == "data_seed" and row["df"] == 1 and row["status"] == stats.TOO_FEW_SEEDS
    assert math.isnan(row["std_ci_low"]) and math.isnan(row["std_ci_high"])


def test_a_bounded_metric_caps_the_upper_bound_at_half_its_range():
    results = pd.DataFrame({"data_seed": [0, 1, 2], "init_seed": 5, "order_seed": 5, "m": [0.0, 1.0, 0.0], "g": 0})
    row = stats.seed_variance(results, metric="m", group_fields=("g",), value_range=(0, 1)).iloc[0]
    unbounded = math.sqrt(2 * row["std"] ** 2 / scipy_stats.chi2.ppf(0.025, 2))
    assert unbounded > 0.5 and row["std_ci_high"] == 0.5


def test_seed_variance_all_row_from_the_runs_marked_together():
    # Runs 0-2 vary both training seeds; runs 3-5 hold init fixed (order varies alone).
    results = pd.DataFrame(
        {
            "data_seed": 0,
            "init_seed": [0, 1, 2, 99, 99, 99],
            "order_seed": [0, 1, 2, 0, 1, 2],
            "m": [0.1, 0.5, 0.3, 0.2, 0.25, 0.3],
            "g": 0,
        }
    )
    together = answer.sgd_runs(results.assign(seed=[0, 1, 2, 0, 1, 2]))
    assert together.tolist() == [True, True, True, False, False, False]
    out = stats.seed_variance(results, metric="m", group_fields=("g",), together=together).set_index("source")
    assert out.loc["all", "std"] == pytest.approx(np.std([0.1, 0.5, 0.3], ddof=1))
    assert out.loc["order_seed", "std"] == pytest.approx(np.std([0.2, 0.25, 0.3], ddof=1))


# Spread ratio


def test_spread_ratio_interval_holds_the_pitman_morgan_interval_found_by_inverting_the_test():
    # At a bound lambda of sd(a) / sd(b), a + lambda b and a - lambda b have a Pearson p-value of exactly 5%.
    rng = np.random.default_rng(6)
    a = rng.normal(0, 1, 10)
    b = 0.5 * a + rng.normal(0, 1, 10)
    ratio, low, high = (x[0] for x in stats.spread_ratio_interval(a, b))
    excess = lambda lam: scipy_stats.pearsonr(a + lam * b, a - lam * b).pvalue - 0.05
    pitman_morgan = optimize.brentq(excess, 1e-3, ratio), optimize.brentq(excess, ratio, 1e3)
    assert low <= pitman_morgan[0] * (1 + 1e-9) and high >= pitman_morgan[1] * (1 - 1e-9)


def test_spread_ratio_interval_holds_millers_jackknife_by_hand():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, 9), rng.normal(0, 2, 9)
    theta = math.log(np.std(a, ddof=1) / np.std(b, ddof=1))
    left_out = [math.log(np.std(np.delete(a, i), ddof=1) / np.std(np.delete(b, i), ddof=1)) for i in range(9)]
    pseudo = 9 * theta - 8 * np.array(left_out)
    half = scipy_stats.t.ppf(0.975, 8) * np.std(pseudo, ddof=1) / 3
    ratio, low, high = (x[0] for x in stats.spread_ratio_interval(a, b))
    assert ratio == pytest.approx(math.exp(theta))
    assert low <= math.exp(pseudo.mean() - half) * (1 + 1e-12)
    assert high >= math.exp(pseudo.mean() + half) * (1 - 1e-12)


# Bands over training


def test_difference_band_critical_value_by_enumeration():
    rng = np.random.default_rng(2)
    a, b = rng.normal(0, 1, (6, 3)), rng.normal(0, 1, (6, 3))
    d = a - b
    residuals = d - d.mean(axis=0)
    largest = []
    for signs in itertools.product([1.0, -1.0], repeat=6):
        flipped = residuals * np.array(signs)[:, None]
        t = flipped.mean(axis=0) / (flipped.std(axis=0, ddof=1) / math.sqrt(6))
        largest.append(np.max(np.abs(t)))
    critical = np.quantile(largest, 0.95, method="higher")
    band = curves.difference_band(a, b, np.array([1.0, 2.0, 3.0]))
    se = d.std(axis=0, ddof=1) / math.sqrt(6)
    np.testing.assert_allclose(band.high - band.estimate, critical * se)
    assert critical > scipy_stats.t.ppf(0.975, 5)  # wider than one step's interval: simultaneous


@pytest.mark.parametrize("n", [6, 10])
def test_difference_band_covers_the_whole_true_curve(n):
    rng = np.random.default_rng(n)
    truth = np.linspace(0, 0.1, len(STEPS))
    trials, missed = 300, 0
    for _ in range(trials):
        shared = rng.normal(0, 1, (n, 1)) + rng.normal(0, 0.5, (n, len(STEPS))).cumsum(axis=1)
        a = shared + truth + rng.normal(0, 0.3, (n, len(STEPS)))
        b = shared + rng.normal(0, 0.3, (n, len(STEPS)))
        band = curves.difference_band(a, b, STEPS)
        missed += np.any((band.low > truth) | (band.high < truth))
    assert missed / trials <= _upper(0.05, trials)


@pytest.mark.parametrize("n", [6, 10])
def test_spread_band_names_no_step_under_equal_spreads_often(n):
    rng = np.random.default_rng(100 + n)
    trials, wrong = 300, 0
    for _ in range(trials):
        a = rng.normal(0, 1, (n, 1)) + rng.normal(0, 1, (n, len(STEPS)))
        b = rng.normal(0, 1, (n, 1)) + rng.normal(0, 1, (n, len(STEPS)))
        wrong += np.any(curves.spread_band(a, b, STEPS).side() != 0)
    assert wrong / trials <= _upper(0.05, trials)


def test_describe_when_names_the_steps_and_the_largest_effect():
    band = curves.Band(
        steps=STEPS,
        estimate=np.array([0.9, 0.5, 0.4, 0.8, 0.9, 1.0, 1.0, 1.1]),
        low=np.array([0.5, 0.3, 0.2, 0.5, 0.6, 0.7, 0.7, 0.8]),
        high=np.array([1.2, 0.8, 0.7, 1.2, 1.3, 1.4, 1.4, 1.5]),
        null=1.0,
        status=stats.OK,
    )
    text = curves.describe_when(band, lower="A varies less", higher="A varies more", same="no difference shown")
    assert text == (
        "A varies less at steps 100-150 (25-37.5% of training; 0.4 [0.2, 0.7] at step 150); "
        "no difference shown at steps 50, 200-400"
    )


def test_paired_curves_pairs_on_keys_and_keeps_shared_steps():
    runs = pd.DataFrame({"run_name": ["a0", "a1"], "seed": [0, 1]})
    other = pd.DataFrame({"run_name": ["b1", "b0"], "seed": [1, 0]})
    curve = pd.DataFrame(
        {
            "run_name": ["a0", "a0", "a1", "a1", "b0", "b0", "b1"],
            "step": [1, 2, 1, 2, 1, 2, 1],
            "m": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7],
        }
    )
    steps, a, b = curves.paired_curves(curve, runs, other, "m", pair_on=("seed",))
    assert steps.tolist() == [1.0] and a.ravel().tolist() == [0.1, 0.3] and b.ravel().tolist() == [0.5, 0.7]


# Equivalence


def _one_sided_sign_flip_p(d, delta, side):
    """p-value of "mean <= delta" (side +1) or "mean >= delta" (side -1), every sign pattern written out."""
    x = side * (np.asarray(d) - delta)
    patterns = list(itertools.product((1, -1), repeat=len(x)))
    return sum(np.dot(s, x) >= x.sum() - 1e-12 for s in patterns) / len(patterns)


def test_tost_is_two_one_sided_sign_flip_tests_and_its_interval_inverts_them():
    rng = np.random.default_rng(3)
    for shift in (0.0, 0.01, 0.03):
        a = rng.normal(0.3, 0.02, 9)
        b = a - shift + rng.standard_t(3, 9) * 0.01
        d = a - b
        p = max(_one_sided_sign_flip_p(d, -0.02, 1), _one_sided_sign_flip_p(d, 0.02, -1))
        out = equivalence.paired_difference(a, b, 0.02)
        assert out["equivalence_p"] == pytest.approx(p)
        assert (out["equivalence"] == equivalence.EQUIVALENT) == (p <= 0.05)
        low, high = out["equivalence_ci_low"], out["equivalence_ci_high"]
        # Each bound is where its one-sided test at 5% stops rejecting.
        assert _one_sided_sign_flip_p(d, low - 1e-9, 1) <= 0.05 < _one_sided_sign_flip_p(d, low + 1e-9, 1)
        assert _one_sided_sign_flip_p(d, high + 1e-9, -1) <= 0.05 < _one_sided_sign_flip_p(d, high - 1e-9, -1)


@pytest.mark.parametrize(("n", "tails"), [(6, "normal"), (10, "normal"), (20, "normal"), (20, "t(3)")])
def test_tost_rarely_calls_a_difference_on_the_margin_equivalent(n, tails):
    rng = np.random.default_rng(200 + n)
    trials, wrong = 400, 0
    for _ in range(trials):
        b = rng.normal(0.3, 0.02, n)
        noise = rng.normal(0, 0.01, n) if tails == "normal" else rng.standard_t(3, n) * 0.01
        a = b + 0.02 + noise  # the true difference sits on the margin
        wrong += equivalence.paired_difference(a, b, 0.02)["equivalence"] == equivalence.EQUIVALENT
    assert wrong / trials <= _upper(0.05, trials)


def test_spread_equivalence_needs_the_interval_inside_the_factor():
    rng = np.random.default_rng(4)
    a, b = rng.normal(0, 1, 400), rng.normal(0, 1, 400)
    assert equivalence.spread_ratio(a, b, 1.5)["spread_equivalence"] == equivalence.EQUIVALENT
    assert equivalence.spread_ratio(a[:8], b[:8], 1.5)["spread_equivalence"] == equivalence.NOT_SHOWN
    assert equivalence.spread_ratio(a[:3], b[:3], 1.5)["spread_equivalence"] == stats.TOO_FEW_SEEDS


@pytest.mark.parametrize(
    ("margins", "match"),
    [({"metric": 0.0}, r"Received: metric=0\.0"), ({"spread": 1.0}, r"Received: spread=1\.0")],
    ids=["metric", "spread"],
)
def test_margins_refuse_bad_values(margins, match):
    with pytest.raises(UserInputError, match=match):
        equivalence.Margins(**margins)


# Power


def test_detectable_effect_has_the_asked_power_by_the_noncentral_t():
    sd, n, tests = 0.03, 12, 12
    effect = power.detectable_effect(sd, n, tests=tests)
    level = 0.05 / tests
    critical = scipy_stats.t.ppf(1 - level / 2, n - 1)
    noncentral = scipy_stats.nct(n - 1, effect / sd * math.sqrt(n))
    assert noncentral.sf(critical) + noncentral.cdf(-critical) == pytest.approx(0.8, abs=1e-6)


def test_detectable_effect_by_simulation_of_the_sign_flip_test():
    rng = np.random.default_rng(5)
    effect = power.detectable_effect(1.0, 10, tests=1)
    trials = 300
    detected = sum(stats.sign_flip_p(rng.normal(effect, 1.0, 10)) < 0.05 for _ in range(trials))
    assert 0.7 <= detected / trials <= 0.9  # the sign-flip test's power is close to the t-test's


def test_seeds_needed_is_the_first_count_with_the_power():
    n = power.seeds_needed(0.01, 0.02, tests=4)
    level = 0.05 / 4

    def reached(k):
        critical = scipy_stats.t.ppf(1 - level / 2, k - 1)
        noncentral = scipy_stats.nct(k - 1, 0.5 * math.sqrt(k))
        return noncentral.sf(critical) + noncentral.cdf(-critical) >= 0.8

    assert reached(n) and not reached(n - 1)


def test_seed_counts_respect_the_sign_flip_floor():
    assert power.detectable_effect(1.0, 5, tests=1) == math.inf  # 2 / 2^5 = 0.0625 > 0.05
    assert power.seeds_needed(10.0, 0.001, tests=16) == 10  # 2 / 2^10 < 0.05 / 16 < 2 / 2^9


# Labels


def test_short_labels_keep_single_variants_and_number_the_others():
    labels = answer.short_labels(["none", "class_weight", "class_weight[weight_reduction=x]", "upsample"])
    assert labels == {
        "none": "none",
        "class_weight": "cw1",
        "class_weight[weight_reduction=x]": "cw2",
        "upsample": "upsample",
    }
