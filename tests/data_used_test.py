"""The data a run actually used: its results columns (`runs.data_used`) and the report's section
(`grid.data_used.blocks`, `section`), against counts derived by hand."""

import io
import math

import numpy as np
import pandas as pd

from imbal_keras import runs
from imbal_keras.config import ExperimentConfig
from imbal_keras.data import sources
from imbal_keras.grid import data_used


def _record(dataset, summary_extra=None, **flat):
    summary = {"class_counts": {"train": [340, 20], "validation": [114, 6], "test": [114, 6]}, **(summary_extra or {})}
    config = ExperimentConfig.from_flat({"dataset": dataset, **flat})
    return runs.RunRecord("r", config, pd.DataFrame(), summary)


def test_a_users_data_is_described_by_what_was_used_not_by_config_defaults():
    row = runs.data_used(_record("csv:/d/t.csv", {"num_features": 4, "dropped": [0, 0]}))
    assert row == {
        "data_rows": 600,
        "data_features": 4,
        "data_class_counts_train": "340/20",
        "data_class_counts_validation": "114/6",
        "data_class_counts_test": "114/6",
        "data_dropped": "",
        "num_examples": row["num_examples"],
        "num_features": row["num_features"],
    }
    # The synthetic-only settings say nothing about a user's data: NaN, not 50000 and 20.
    assert math.isnan(row["num_examples"]) and math.isnan(row["num_features"])
    # Runs that did not record their features: unknown for a user's data, the setting for synthetic data.
    assert math.isnan(runs.data_used(_record("csv:/d/t.csv"))["data_features"])
    synthetic = runs.data_used(_record("synthetic", num_features=7, num_examples=600))
    assert synthetic["data_features"] == 7 and "num_examples" not in synthetic  # the setting describes it


def test_the_section_lists_each_layout_once_with_its_runs():
    dropped = _record("csv:/d/t.csv", {"num_features": 4, "dropped": [0, 170]}, imbalance_ratio=99)
    as_given = _record("csv:/d/t.csv", {"num_features": 4})
    rows = [{"dataset": r.config.data.dataset, "imbalance_ratio": r.config.data.imbalance_ratio, **runs.data_used(r)}
            for r in (dropped, dropped, as_given)]  # fmt: skip
    table = pd.read_csv(io.StringIO(pd.DataFrame(rows).to_csv(index=False)))  # as the report reads results.csv
    text = data_used.section(table)
    assert text.splitlines()[0] == "## Data used"
    assert "- csv:/d/t.csv at 1:99: 600 rows, 4 features; train 340/20, validation 114/6, test 114/6; the ratio " \
           "dropped 0/170 rows per class (2 runs)" in text  # fmt: skip
    assert "- csv:/d/t.csv at its own class ratio: 600 rows, 4 features; train 340/20, validation 114/6, test " \
           "114/6 (1 run)" in text  # fmt: skip
    assert data_used.section(pd.DataFrame()) == ""


def test_an_imposed_ratio_reports_the_rows_it_dropped():
    # 1,200 rows at 1:24 (1,152 / 48): kept as given by default; at 1:99 the negatives stay and 48 - 11 = 37
    # positives go (floor(1152 / 99) = 11).
    y = np.repeat([0, 1], [1152, 48])
    x = np.random.default_rng(0).normal(size=(1200, 3)).astype(np.float32)
    given = sources.from_arrays((x, y))
    assert given.dropped == (0, 0)
    assert sum(s.class_counts(2) for s in given.splits().values()).tolist() == [1152, 48]
    imposed = sources.from_arrays((x, y), imbalance_ratio=99)
    assert imposed.dropped == (0, 37)
    assert sum(s.class_counts(2) for s in imposed.splits().values()).tolist() == [1152, 11]
    assert imposed.describe().endswith("; the imposed class ratio dropped 0/37 rows")
    assert "dropped" not in given.describe()
