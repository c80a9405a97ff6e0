"""Tests of `imbal_keras.report`: convergence figures, seed statistics, verdict, tables and the report.

The grid folders here are written by hand (result.json + metrics.csv per run, as `experiment.run` writes them), so
every number in the tables is known in advance and no model is trained.
"""

import json
import os

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from imbal_keras import report, runs, sweep
from imbal_keras.config import ExperimentConfig

STEPS = (10, 20, 30, 40)


@pytest.mark.parametrize(
    "values, fraction, expected",
    [
        ((0.2, 0.5, 0.9, 1.0), 0.9, 30),
        ((0.2, 0.5, 0.9, 1.0), 0.95, 40),
        ((0.8, 0.5, 0.3, 0.1), 0.9, 10),
        ((np.nan, 0.5, 1.0, 0.95), 0.95, 30),
        ((np.nan,) * 4, 0.9, np.nan),
    ],
)
def test_steps_to_fraction(values, fraction, expected):
    np.testing.assert_equal(report.steps_to_fraction(STEPS, values, fraction), expected)


def test_curve_area_is_the_mean_value_over_the_step_span():
    # Trapezoids over [0, 10] and [10, 20]: 5 + 10 = 15, over a span of 20 steps.
    assert report.curve_area([0, 10, 20], [0, 1, 1]) == pytest.approx(0.75)
    assert report.curve_area([50], [0.3]) == 0.3


def test_describe():
    d = report.describe([1.0, 2.0, 3.0, 4.0, np.nan])
    assert (d["n"], d["mean"], d["min"], d["max"]) == (4, 2.5, 1.0, 4.0)
    assert d["std"] == pytest.approx(np.std([1, 2, 3, 4], ddof=1))
    assert 1.0 <= d["ci_low"] < 2.5 < d["ci_high"] <= 4.0
    constant = report.describe([0.3, 0.3, 0.3])
    assert (constant["ci_low"], constant["ci_high"], constant["std"]) == (0.3, 0.3, 0.0)
    single = report.describe([0.3])
    assert single["n"] == 1 and np.isnan(single["std"]) and np.isnan(single["ci_low"])


def test_describe_ci_is_reproducible_and_covers_the_mean_of_a_normal_sample():
    x = np.random.default_rng(1).normal(10.0, 1.0, size=40)
    d = report.describe(x)
    assert d == report.describe(x)
    assert d["ci_low"] < 10.0 < d["ci_high"]
    # A 95% interval of the mean of 40 N(., 1) values is about 2 * 1.96 / sqrt(40) = 0.62 wide.
    assert 0.4 < d["ci_high"] - d["ci_low"] < 0.9


def test_compare():
    a = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    b = 10 * a + 5
    c = report.compare(a, b)
    assert c["difference"] == pytest.approx(2.5 - 30.0)
    assert c["variance_ratio"] == pytest.approx(0.01)
    assert c["levene_p"] == pytest.approx(stats.levene(a, b, center="median").pvalue)
    assert c["difference_ci_low"] < -27.5 < c["difference_ci_high"] < 0
    assert (c["n"], c["n_other"], c["mean"], c["mean_other"]) == (6, 6, 2.5, 30.0)
    equal = report.compare([1.0, 1.0], [2.0, 2.0])
    assert (equal["difference"], equal["difference_ci_low"], equal["difference_ci_high"]) == (-1.0, -1.0, -1.0)
    assert np.isnan(equal["levene_p"]) and np.isnan(equal["variance_ratio"])


BASE = {"num_examples": 1000, "steps": 40, "eval_every": 10, "hidden_units": (8,)}
TRAIN_COUNTS = [594, 6]


def _write_run(grid_dir: str, config: ExperimentConfig, ap: list[float], *, instrumentation=None) -> None:
    """A finished run folder with test AUPRC `ap` at STEPS and every other metric fixed."""
    run_dir = os.path.join(sweep.runs_dir(grid_dir), config.output.run_name)
    os.makedirs(run_dir)
    curve = pd.DataFrame({"step": STEPS, "elapsed_seconds": [1.0, 2.0, 3.0, 4.0], "train_loss": 0.1})
    for split in ("validation", "test"):
        for name in runs.METRIC_NAMES:
            curve[f"{split}_{name}"] = 0.5
    curve["test_average_precision"] = ap
    curve["threshold"] = 0.4
    curve.to_csv(os.path.join(run_dir, runs.METRICS_FILE), index=False)
    with open(os.path.join(run_dir, runs.CONFIG_FILE), "w") as f:
        f.write(config.to_json())
    normalization = config.strategy.params.get("class_weight_normalization", "mean_one")
    weights = {"mean_one": [0.505, 50.0], "sum_to_num_classes": [0.0202, 1.98]}[normalization]
    summary = {
        "config": config.to_dict(),
        "final": curve.iloc[-1].to_dict(),
        "class_counts": {"train": TRAIN_COUNTS, "validation": [198, 2], "test": [198, 2]},
        "training_distribution": [0.5, 0.5],
        "class_weights": weights if config.strategy.name == "class_weight" else None,
        "best_validation_average_precision_step": 10,
        "train_seconds": 4.0,
    }
    if instrumentation:
        summary["instrumentation"] = instrumentation
    with open(os.path.join(run_dir, runs.RESULT_FILE), "w") as f:
        json.dump(summary, f)


def _seed_question_grid(grid_dir: str, curves) -> list[ExperimentConfig]:
    """upsample and class_weight (two normalisations), 4 seeds; `curves(config)` gives each run's AUPRC curve."""
    spec = sweep.make_spec(
        BASE,
        {
            "strategy": ("class_weight", "upsample"),
            "class_weight_normalization": ("mean_one", "sum_to_num_classes"),
            "seed": (0, 1, 2, 3),
        },
    )
    sweep.prepare(grid_dir, spec)
    configs = sweep.expand(spec, grid_dir)
    for config in configs:
        noise = config.training.seed + 1.0
        _write_run(grid_dir, config, curves(config), instrumentation={"gradient_noise_scale": noise})
    return configs


def _fast_steady_upsample(config):
    """upsample: best at step 10, AUPRC 0.60 +- 0.001; class_weight: best at step 40, AUPRC 0.3..0.9."""
    seed = config.training.seed
    if config.strategy.name == "upsample":
        final = 0.6 + 0.001 * (seed % 2)
        return [final, final, final, final]
    final = 0.3 + 0.2 * seed
    return [0.1, 0.2, 0.3, final]


def test_tables_rebuilt_from_run_folders(tmp_path):
    d = str(tmp_path)
    configs = _seed_question_grid(d, _fast_steady_upsample)
    results, curves, summary = report.write_tables(d)
    assert len(configs) == 12
    assert len(results) == 12 and sorted(results["run_name"]) == sorted(c.output.run_name for c in configs)
    assert len(curves) == 12 * 4
    for name, table in ((report.RESULTS_FILE, results), (report.CURVES_FILE, curves), (report.SUMMARY_FILE, summary)):
        loaded = pd.read_csv(os.path.join(d, name))  # one read_csv each; '' (empty config strings) reads as NaN
        assert loaded.columns.tolist() == table.columns.tolist() and len(loaded) == len(table)
        numbers = table.select_dtypes("number").columns
        pd.testing.assert_frame_equal(loaded[numbers], table[numbers], check_dtype=False)
    row = results[results["strategy_variant"] == "class_weight[class_weight_normalization=sum_to_num_classes]"].iloc[0]
    # Best 0.3 (seed 0) is reached at step 30 and 40; 90% of it (0.27) first at step 30.
    assert (row["steps_to_90pct_best_auprc"], row["steps_to_95pct_best_auprc"]) == (30, 30)
    assert row["auprc_curve_area"] == pytest.approx((0.15 + 0.25 + 0.3) * 10 / 30)
    assert row["mean_example_weight"] == pytest.approx((594 * 0.0202 + 6 * 1.98) / 600)
    assert row["instrumentation_gradient_noise_scale"] == 1.0
    assert row["final_step"] == 40 and row["test_average_precision"] == 0.3
    # 3 variants x metrics cell rows, 3 pairs x metrics pair rows.
    metrics = report.summary_metrics(results)
    assert "instrumentation_gradient_noise_scale" in metrics
    assert summary["kind"].value_counts().to_dict() == {"cell": 3 * len(metrics), "pair": 3 * len(metrics)}
    cell = summary[(summary["kind"] == "cell") & (summary["metric"] == "test_average_precision")]
    cw = cell[cell["strategy_variant"] == "class_weight"].iloc[0]
    assert (cw["n"], cw["mean"], cw["min"], cw["max"]) == (4, pytest.approx(0.6), 0.3, pytest.approx(0.9))


def test_verdict_supported_when_upsample_is_faster_and_steadier(tmp_path):
    d = str(tmp_path)
    _seed_question_grid(d, _fast_steady_upsample)
    results, _, _ = report.write_tables(d)
    table = report.verdict(results, sweep.SEED_QUESTION, [])
    assert table["control_variant"].tolist() == [
        "class_weight",
        "class_weight[class_weight_normalization=sum_to_num_classes]",
    ]
    # upsample: step 10 every seed; class_weight: 30 (seed 0: 90% of 0.3 first at 30), then 40, 40, 40.
    assert table["steps_to_90pct_difference"].tolist() == [10 - 37.5, 10 - 37.5]
    assert (table["converges_faster"] == "supported").all()
    assert (table["varies_less"] == "supported").all()
    assert (table["verdict"] == "supported").all()
    assert "weight scale equal (mean example weight" in table["held_equal"][0]
    assert "weight scale NOT equal" in table["held_equal"][1]
    assert table["held_equal"][0].startswith("steps=40; batch=16; sgd lr=0.05; reduction=sum_over_batch_size")


def test_verdict_contradicted_and_inconclusive(tmp_path):
    # upsample now the slow, noisy one: both parts contradicted.
    d = str(tmp_path / "contradicted")
    _seed_question_grid(
        d,
        lambda c: _fast_steady_upsample(
            c.replace(strategy="upsample" if c.strategy.name != "upsample" else "class_weight")
        ),
    )
    table = report.verdict(report.write_tables(d)[0], sweep.SEED_QUESTION, [])
    assert (table["converges_faster"] == "contradicted").all() and (table["verdict"] == "contradicted").all()
    # Identical curves: no evidence either way.
    d = str(tmp_path / "same")
    _seed_question_grid(d, lambda c: [0.1, 0.2, 0.3, 0.3 + 0.1 * c.training.seed])
    table = report.verdict(report.write_tables(d)[0], sweep.SEED_QUESTION, [])
    assert (table["verdict"] == "inconclusive").all()


def _write_instrumentation(run_dir: str, minority_counts: list[int]) -> None:
    """composition.csv and gradients.csv as the training callbacks write them (one row per recorded step)."""
    steps = range(len(minority_counts))
    pd.DataFrame({"step": steps, "composition_count_class_1": minority_counts}).to_csv(
        os.path.join(run_dir, runs.COMPOSITION_FILE), index=False
    )
    pd.DataFrame(
        {"step": steps, "gradients_norm_class_0": [1.0 / (s + 1) for s in steps], "gradients_norm_class_1": 2.0}
    ).to_csv(os.path.join(run_dir, runs.GRADIENTS_FILE), index=False)


def test_instrumentation_steps_reads_the_callback_files(tmp_path):
    d = str(tmp_path)
    configs = _seed_question_grid(d, _fast_steady_upsample)
    _write_instrumentation(os.path.join(sweep.runs_dir(d), configs[0].output.run_name), [0, 2, 1])
    results, _ = report.load_runs(d)
    frame = report.instrumentation_steps(d, results, "composition.csv", ["composition_count_class_1", "absent"])
    assert frame[["step", "column", "value", "run_name"]].to_dict("list") == {
        "step": [0, 1, 2],
        "column": ["composition_count_class_1"] * 3,
        "value": [0, 2, 1],
        "run_name": [configs[0].output.run_name] * 3,
    }


def test_build_writes_report_and_plots(tmp_path):
    d = str(tmp_path)
    configs = _seed_question_grid(d, _fast_steady_upsample)
    for config in configs:
        _write_instrumentation(os.path.join(sweep.runs_dir(d), config.output.run_name), [0, 1, 2, 1])
    paths = report.build(d)
    assert [os.path.basename(p) for p in paths] == [
        "results.csv",
        "curves.csv",
        "summary.csv",
        "report.md",
        "report.html",
    ]
    plots = sorted(f.removesuffix("_all.png") for f in os.listdir(os.path.join(d, report.PLOTS_DIR)))
    assert plots == [
        "auprc_vs_step",
        "final_auprc",
        "gradient_norms",
        "instrumentation_gradient_noise_scale",
        "minority_per_batch",
        "steps_to_90pct",
    ]
    with open(os.path.join(d, "report.md")) as f:
        markdown = f.read()
    assert "12 of 12 runs finished" in markdown
    assert markdown.count(" supported ") == 2 * 3  # two verdict rows: converges faster, varies less, verdict
    for _, relative in (line.split("](") for line in markdown.splitlines() if line.startswith("![")):
        assert os.path.exists(os.path.join(d, relative.rstrip(")")))
    with open(os.path.join(d, "report.html")) as f:
        assert f.read().count("<img src='plots/") == 6


def test_unfinished_and_foreign_folders_are_left_out(tmp_path):
    d = str(tmp_path)
    configs = _seed_question_grid(d, _fast_steady_upsample)
    runs_dir = sweep.runs_dir(d)
    names = [c.output.run_name for c in configs]
    os.remove(os.path.join(runs_dir, names[0], runs.RESULT_FILE))
    os.rename(os.path.join(runs_dir, names[1]), os.path.join(runs_dir, names[1] + "-2"))
    results, curves = report.load_runs(d)
    assert sorted(results["run_name"]) == sorted(names[2:])
    assert len(curves) == 10 * 4
