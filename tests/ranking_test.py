"""The ranking of many strategies: a clear winner, the group tied with the best, and the false "better than"
rate under simulated nulls (a small seeded simulation with a binomial bound)."""

import numpy as np
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.proportion import proportion_confint

from imbal_keras.errors import UserInputError
from imbal_keras.grid import ranking, stats


def test_a_clear_winner_stands_alone_and_ties_are_grouped():
    rng = np.random.default_rng(0)
    seed_effect = rng.normal(0, 0.1, (10, 1))
    values = 0.5 + seed_effect + np.array([0.0, 0.0, 0.2]) + rng.normal(0, 0.01, (10, 3))
    out = ranking.rank(values, ["a", "b", "c"])
    assert out.status == stats.OK and out.table["strategy"].iloc[0] == "c"
    assert out.table.set_index("strategy")["tied_with_best"].to_dict() == {"c": True, "a": False, "b": False}
    assert out.table.set_index("strategy").loc["c", "mean_rank"] == 1.0
    pairs = out.pairs.set_index(["a", "b"])
    assert not pairs.loc[("a", "b"), "different"] and pairs.loc[("a", "c"), "different"]
    assert out.friedman_p < 0.01
    # Lower is better: the same values now rank c last.
    assert ranking.rank(values, ["a", "b", "c"], higher_is_better=False).table["strategy"].iloc[-1] == "c"


def test_the_critical_value_exceeds_one_pairs_t_quantile():
    rng = np.random.default_rng(1)
    out = ranking.rank(rng.normal(0, 1, (10, 5)), list("abcde"))
    assert out.critical > scipy_stats.t.ppf(0.975, 9)  # ten pairs at once need a wider interval than one


@pytest.mark.parametrize(("seeds", "strategies"), [(6, 3), (10, 5), (20, 3)])
def test_under_the_null_a_pair_is_rarely_called_different(seeds, strategies):
    rng = np.random.default_rng(seeds * strategies)
    trials, wrong = 200, 0
    for _ in range(trials):
        values = rng.normal(0, 1, (seeds, 1)) + rng.lognormal(0, 1, (seeds, strategies))
        wrong += ranking.rank(values, [str(i) for i in range(strategies)]).pairs["different"].any()
    assert wrong / trials <= proportion_confint(10, 200, alpha=0.002, method="beta")[1]


def test_too_few_seeds_take_no_side():
    out = ranking.rank(np.arange(12.0).reshape(4, 3), ["a", "b", "c"])
    assert out.status == stats.TOO_FEW_SEEDS and not out.pairs["different"].any()
    assert out.table["tied_with_best"].all()


def test_bad_shapes_are_refused():
    with pytest.raises(UserInputError, match="one column per name"):
        ranking.rank(np.zeros((6, 3)), ["a", "b"])


def test_under_a_null_of_unequal_spreads_a_pair_is_rarely_called_different():
    """Alike means, spreads 1 to 3 (strategies not exchangeable within a seed): still at most about 5%."""
    rng = np.random.default_rng(7)
    trials, wrong = 200, 0
    for _ in range(trials):
        values = rng.normal(0, 1, (10, 1)) + rng.normal(0, 1, (10, 5)) * np.linspace(1, 3, 5)
        wrong += ranking.rank(values, list("abcde")).pairs["different"].any()
    assert wrong / trials <= proportion_confint(10, 200, alpha=0.002, method="beta")[1]
