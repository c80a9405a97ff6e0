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


def test_the_published_ordering_is_compared_with_a_recomputation_by_scipy():
    results = _results(10)
    published = (("upsample", 3.0), ("ldam", 4.0), ("none", 1.0), ("focal", 2.0), ("stratified", 5.0))
    setup = answer.Setup(metric="test_balanced_accuracy", published=published, published_source="a paper, Table 2")
    rows = ranking_section.rankings(results, (), setup)
    labels = {v: v for v in VARIANTS}
    heading, (_, text), (_, table) = ranking_section.published_blocks(rows, setup, labels)
    means = results.groupby("strategy_variant")["test_balanced_accuracy"].mean()
    names = ["upsample", "ldam", "none", "focal"]  # stratified did not run
    tau = scipy_stats.kendalltau([3.0, 4.0, 1.0, 2.0], means[names].to_numpy())
    assert f"tau-b = {tau.statistic:.2f} (p = {tau.pvalue:.3g})" in text and "a paper, Table 2" in text
    # Pairs the paper orders one way and the runs the other, written out.
    expected = [
        f"{b} above {a}"
        for a, b in [
            ("ldam", "upsample"),
            ("upsample", "none"),
            ("upsample", "focal"),
            ("ldam", "none"),
            ("ldam", "focal"),
            ("focal", "none"),
        ]  # fmt: skip
        if means[b] > means[a]
    ]
    listed = text.split("Ordered the other way here: ")[1].rstrip(".")
    assert sorted(listed.split("; ")) == sorted(expected) and expected
    assert table["label"].tolist() == names and table["measured mean"].tolist() == pytest.approx(means[names].tolist())
    assert table["measured rank"].tolist() == means[names].rank(ascending=False).tolist()
    assert table["tail_accuracy"].tolist() == pytest.approx(
        results.groupby("strategy_variant")["test_tail_accuracy"].mean()[names].tolist()
    )
    assert heading == ("h3", "Against the published ordering")
    assert ranking_section.published_blocks(rows, answer.Setup(metric="test_balanced_accuracy"), labels) == []
