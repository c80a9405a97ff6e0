"""The report's ranking section: its numbers against a recomputation from a results table."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from imbal_keras.grid import answer, ranking_section

VARIANTS = ("none", "focal", "ldam", "upsample")


def _results(seeds: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(seeds):
        level = rng.normal(0, 0.02)
        for i, variant in enumerate(VARIANTS):
            accuracy = 0.5 + level + 0.05 * (i == 3) + rng.normal(0, 0.01)
            rows.append({"strategy_variant": variant, "strategy": variant, "seed": seed, "data_seed": 0,
                         "test_balanced_accuracy": accuracy, "test_head_accuracy": 0.9 - 0.01 * i,
                         "test_medium_accuracy": 0.5, "test_tail_accuracy": 0.1 + 0.1 * i + rng.normal(0, 0.01),
                         "test_log_loss": 1 - accuracy})  # fmt: skip
    return pd.DataFrame(rows)


def test_the_ranking_matches_a_recomputation_and_shows_the_class_groups():
    results = _results(10)
    table = ranking_section.rankings(results, (), answer.Setup(metric="test_balanced_accuracy")).set_index(
        "strategy_variant"
    )
    wide = results.pivot(index="seed", columns="strategy_variant", values="test_balanced_accuracy")
    assert table.index[0] == "upsample" and table.loc["upsample", "tied_with_best"]
    assert not table.loc[["none", "focal", "ldam"], "tied_with_best"].any()
    assert table["mean"].to_dict() == pytest.approx(wide.mean().to_dict())
    assert table["friedman_p"].iloc[0] == pytest.approx(scipy_stats.friedmanchisquare(*wide.to_numpy().T).pvalue)
    tail = results.groupby("strategy_variant")["test_tail_accuracy"].mean()
    assert table["test_tail_accuracy"].to_dict() == pytest.approx(tail.to_dict())


def test_a_lower_is_better_metric_ranks_the_lowest_first():
    table = ranking_section.rankings(_results(10), (), answer.Setup(metric="test_log_loss"))
    assert table["strategy_variant"].iloc[0] == "upsample"


def test_too_few_seeds_call_no_strategy_better_and_two_variants_give_no_ranking(tmp_path):
    table = ranking_section.rankings(_results(4), (), answer.Setup(metric="test_balanced_accuracy"))
    assert (table["status"] == "too few seeds").all() and table["tied_with_best"].all()
    two = _results(10).query("strategy_variant in ('none', 'focal')")
    assert ranking_section.blocks(str(tmp_path), two, (), answer.Setup(metric="test_balanced_accuracy"), "p") == []
