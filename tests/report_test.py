"""Tests of `imbal_keras.grid.report`: convergence figures, seed statistics, verdict, tables and the report.

The grid folders here are written by hand (result.json + metrics.csv per run, as `experiment.run` writes them), so
every number in the tables is known in advance and no model is trained.
"""

import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from imbal_keras import runs
from imbal_keras.config import ExperimentConfig
from imbal_keras.grid import report, sweep

STEPS = (10, 20, 30, 40)
SEEDS = tuple(range(8))


def test_evaluation_noise_is_the_binomial_standard_error():
    assert report.evaluation_noise(0.5, 100) == pytest.approx(0.05)
    assert np.isnan(report.evaluation_noise(0.5, 0)) and np.isnan(report.evaluation_noise(np.nan, 10))


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
    curve["test_average_precision"] = curve["validation_average_precision"] = ap
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
    """upsample and class_weight (two normalisations), 8 seeds; `curves(config)` gives each run's AUPRC curve."""
    spec = sweep.make_spec(
        BASE,
        {
            "strategy": ("class_weight", "upsample"),
            "class_weight_normalization": ("mean_one", "sum_to_num_classes"),
            "seed": SEEDS,
        },
        question=sweep.SEED_QUESTION,
    )
    sweep.prepare(grid_dir, spec)
    configs = sweep.expand(spec, grid_dir)
    for config in configs:
        noise = config.training.seed + 1.0
        _write_run(grid_dir, config, curves(config), instrumentation={"gradient_noise_scale": noise})
    return configs


def _fast_steady_upsample(config):
    """upsample: AUPRC 0.60 +- 0.001 from step 10 (even seeds) or 20 (odd); class_weight: 0.3..0.65 at step 40."""
    seed = config.training.seed
    if config.strategy.name == "upsample":
        final = 0.6 + 0.001 * (seed % 2)
        return [final, final, final, final] if seed % 2 == 0 else [0.5, final, final, final]
    final = 0.3 + 0.05 * seed
    return [0.1, 0.2, 0.3, final]


def test_tables_rebuilt_from_run_folders(tmp_path):
    d = str(tmp_path)
    configs = _seed_question_grid(d, _fast_steady_upsample)
    results, curves, summary = report.write_tables(d)
    assert len(configs) == 24
    assert len(results) == 24 and sorted(results["run_name"]) == sorted(c.output.run_name for c in configs)
    assert len(curves) == 24 * 4
    for name, table in ((report.RESULTS_FILE, results), (report.CURVES_FILE, curves), (report.SUMMARY_FILE, summary)):
        loaded = pd.read_csv(os.path.join(d, name))  # one read_csv each; '' (empty config strings) reads as NaN
        assert loaded.columns.tolist() == table.columns.tolist() and len(loaded) == len(table)
        numbers = table.select_dtypes("number").columns
        pd.testing.assert_frame_equal(loaded[numbers], table[numbers], check_dtype=False)
    variant = "class_weight[class_weight_normalization=sum_to_num_classes]"
    row = results[(results["strategy_variant"] == variant) & (results["seed"] == 0)].iloc[0]
    # The common target is 90% of the best mean curve of the cell (upsample's, 0.6005 at every step from 20).
    assert row["target"] == pytest.approx(0.9 * 0.6005)
    assert not row["reached"] and row["restricted_steps"] == 40  # 0.3 at the end: censored at the horizon
    assert row["roughness"] == pytest.approx((0.1 + 0.1 + 0.0) / 3)  # mean |change| of 0.1, 0.2, 0.3, 0.3
    assert row["auprc_curve_area"] == pytest.approx((0.15 + 0.25 + 0.3) * 10 / 30)
    assert row["mean_example_weight"] == pytest.approx((594 * 0.0202 + 6 * 1.98) / 600)
    assert row["instrumentation_gradient_noise_scale"] == 1.0
    assert row["final_step"] == 40 and row["test_average_precision"] == 0.3
    assert row["test_average_precision_se"] == pytest.approx(np.sqrt(0.3 * 0.7 / 2))
    metrics = report.summary_metrics(results)
    assert "instrumentation_gradient_noise_scale" in metrics and "restricted_steps" in metrics
    # Verdict rows: upsample against each of the 2 class-weight variants.
    assert summary["kind"].value_counts().to_dict() == {
        "cell": 3 * len(metrics),
        "pair": 3 * len(metrics),
        "verdict": 2,
    }
    cell = summary[(summary["kind"] == "cell") & (summary["metric"] == "test_average_precision")]
    cw = cell[cell["strategy_variant"] == "class_weight"].iloc[0]
    assert (cw["n"], cw["mean"], cw["min"], cw["max"]) == (8, pytest.approx(0.475), 0.3, pytest.approx(0.65))
    pair = summary[(summary["kind"] == "pair") & (summary["metric"] == "test_average_precision")].iloc[0]
    assert pair["pairing"] == "paired" and pair["n"] == 8


def test_verdict_supported_when_upsample_is_faster_and_steadier(tmp_path):
    d = str(tmp_path)
    _seed_question_grid(d, _fast_steady_upsample)
    results, curves, _ = report.write_tables(d)
    (table,) = report.verdict(results, curves, sweep.SEED_QUESTION, [])
    assert table["control"].tolist() == ["class_weight", "class_weight[class_weight_normalization=sum_to_num_classes]"]
    # upsample: step 10 (even seeds) or 20 (odd); class_weight: censored at 40 except seeds reaching 0.54 at 40.
    assert table["steps_difference"].tolist() == [pytest.approx(-25.0)] * 2
    assert (table["pairing"] == "paired on data_seed, init_seed, order_seed").all() and (table["seeds"] == "8").all()
    # 8 pairs all one way: exact sign-flip p = 2 / 2^8; Holm over 6 tests (steps, mean over training and spread
    # per row): 6 x 2/256.
    np.testing.assert_allclose(table["steps_p_holm"], 6 * 2 / 256)
    assert (table["converges_faster"] == "supported").all()
    # The spread test swaps the two runs of a pair; with means this far apart (0.6005 against 0.475) a swapped arm
    # mixes both locations, so 16 of the 256 swap patterns spread as much as the observed one: p = 1/16, no side
    # at 8 seeds (the test's price for keeping its level under skewed values; docs/statistics.md).
    np.testing.assert_allclose(table["spread_p"], 16 / 256)
    assert (table["varies_less"] == "inconclusive").all() and (table["verdict"] == "inconclusive").all()
    assert (table["faster_by_area"] == "supported").all()
    # sum_to_num_classes under the default reduction (sum over the batch size): its weight scale reaches the loss.
    assert "effective_weight_scale DIFFERS" in table["held_equal"][1]
    assert table["held_equal"][0].startswith("steps=40; batch_size=16; optimizer=sgd; learning_rate=0.05")


def test_verdict_takes_no_side_without_evidence(tmp_path):
    # upsample now the slow, noisy one: both parts contradicted.
    d = str(tmp_path / "contradicted")
    _seed_question_grid(
        d,
        lambda c: _fast_steady_upsample(
            c.replace(strategy="upsample" if c.strategy.name != "upsample" else "class_weight")
        ),
    )
    results, curves, _ = report.write_tables(d)
    (table,) = report.verdict(results, curves, sweep.SEED_QUESTION, [])
    assert (table["converges_faster"] == "contradicted").all() and (table["verdict"] == "contradicted").all()
    # Identical curves for every variant: nothing to tell apart.
    d = str(tmp_path / "same")
    _seed_question_grid(d, lambda c: [0.1, 0.2, 0.3, 0.3 + 0.01 * c.training.seed])
    results, curves, _ = report.write_tables(d)
    (table,) = report.verdict(results, curves, sweep.SEED_QUESTION, [])
    assert set(table["verdict"]) <= {"identical", "no spread to compare", "inconclusive"}
    assert not set(table["converges_faster"]) & {"supported", "contradicted"}


def test_two_seeds_are_too_few_for_any_side(tmp_path):
    d = str(tmp_path)
    spec = sweep.make_spec(BASE, {"strategy": ("class_weight", "upsample"), "seed": (0, 1)})
    sweep.prepare(d, spec)
    for config in sweep.expand(spec, d):
        _write_run(d, config, _fast_steady_upsample(config))
    results, curves, _ = report.write_tables(d)
    (table,) = report.verdict(results, curves, sweep.SEED_QUESTION, [])
    assert table["verdict"].tolist() == ["too few seeds"]
    assert table["steps_p_holm"].isna().all() or (table["steps_p_holm"] > 0.05).all()


def _write_instrumentation(run_dir: str, minority_counts: list[int]) -> None:
    """composition.csv and gradients.csv as the training callbacks write them (one row per recorded step)."""
    steps = range(len(minority_counts))
    pd.DataFrame({"step": steps, "composition_count_class_1": minority_counts}).to_csv(
        os.path.join(run_dir, runs.COMPOSITION_FILE), index=False
    )
    pd.DataFrame(
        {"step": steps, "gradients_norm_class_0": [1.0 / (s + 1) for s in steps], "gradients_norm_class_1": 2.0}
    ).to_csv(os.path.join(run_dir, runs.GRADIENTS_FILE), index=False)
    pd.DataFrame({"step": steps, "strategy": "s", "simple_noise_scale": [10.0 * (s + 1) for s in steps]}).to_csv(
        os.path.join(run_dir, runs.DIAGNOSTICS_FILE), index=False
    )


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
    # Two band plots per comparison (upsample against each of 2 class-weight variants), then the cell's plots.
    assert plots == [
        "answer_0_difference.png",
        "answer_0_spread.png",
        "answer_1_difference.png",
        "answer_1_spread.png",
        "auprc_vs_step",
        "final_auprc",
        "gradient_norms",
        "instrumentation_gradient_noise_scale",
        "minority_per_batch",
        "noise_scale",
        "ranking_0.png",
        "roughness",
        "steps_to_target",
    ]
    with open(os.path.join(d, "report.md")) as f:
        markdown = f.read()
    assert "24 of 24 runs finished" in markdown
    # The answer comes first, before the cell sections, and its short table says "supported" for each comparison
    # (converges faster, faster by area, varies less, verdict); the appendix repeats the full table.
    assert "## The question: upsample against class_weight on test_average_precision, higher is better." in markdown
    assert markdown.index("## The question") < markdown.index("## Answers at a glance") < markdown.index("## Cell")
    glance = markdown[markdown.index("## Answers at a glance") : markdown.index("Labels:")]
    assert glance.count(" supported ") == 2 * 2  # faster and faster by area; spread and verdict: no side (above)
    assert "| cw2 | class_weight[class_weight_normalization=sum_to_num_classes] |" in markdown
    assert "## Appendix" in markdown
    # The sensitivity table: 2 comparisons x 4 targets.
    sensitivity = markdown[markdown.index("## Steps to the target") : markdown.index("## How many seeds")]
    assert sum(line.startswith("| upsample vs cw") for line in sensitivity.splitlines()) == 2 * 4
    # Every step of both comparisons' two bands (4 evaluations each).
    bands = pd.read_csv(os.path.join(d, "bands.csv"))
    assert len(bands) == 2 * 2 * 4 and set(bands["figure"]) == {"difference", "sd_ratio"}
    banded = bands.dropna(subset=["low"])  # a spread ratio has no band where an arm has no spread yet
    assert len(banded) >= 8 and (banded["low"] <= banded["estimate"] + 1e-12).all()
    assert "Evaluation noise" in markdown
    for _, relative in (line.split("](") for line in markdown.splitlines() if line.startswith("![")):
        assert os.path.exists(os.path.join(d, relative.rstrip(")")))
    with open(os.path.join(d, "report.html")) as f:
        assert f.read().count("<img src='plots/") == 8 + 4 + 1  # the cell's, the answer's, the ranking's


def test_unfinished_and_foreign_folders_are_left_out(tmp_path):
    d = str(tmp_path)
    configs = _seed_question_grid(d, _fast_steady_upsample)
    runs_dir = sweep.runs_dir(d)
    names = [c.output.run_name for c in configs]
    os.remove(os.path.join(runs_dir, names[0], runs.RESULT_FILE))
    shutil.copytree(os.path.join(runs_dir, names[1]), os.path.join(runs_dir, names[1] + "-2"))
    results, curves = report.load_runs(d)
    assert sorted(results["run_name"]) == sorted(names[1:])  # the copy of names[1] counts once
    assert len(curves) == 23 * 4


def test_long_tail_report_shows_per_class_recall_and_groups(tmp_path):
    """K = 4: the per-class table is the mean over seeds of each class's recall, classes by training count."""
    d = str(tmp_path)
    spec = sweep.make_spec({**BASE, "num_classes": 4}, {"strategy": ("none", "upsample"), "seed": (0, 1, 2)})
    sweep.prepare(d, spec)
    train_counts = [50, 400, 10, 140]  # by count: class 1 (head), 3, 0 (medium), 2 (tail)
    groups = ["medium", "head", "tail", "medium"]
    expected = {}
    for config in sweep.expand(spec, d):
        seed, lift = config.training.seed, 0.2 if config.strategy.name == "upsample" else 0.0
        recalls = [0.3 + lift + 0.01 * seed, 0.9, 0.1 + lift + 0.02 * seed, 0.6]
        expected.setdefault(config.strategy.variant(), []).append(recalls)
        _write_run(d, config, [0.2, 0.3, 0.4, 0.5])
        path = os.path.join(sweep.runs_dir(d), config.output.run_name, runs.RESULT_FILE)
        with open(path) as f:
            summary = json.load(f)
        summary["class_counts"] = {"train": train_counts, "validation": [5] * 4, "test": [5] * 4}
        summary["training_distribution"] = [0.25] * 4
        summary["class_groups"] = groups
        summary["final"].update({f"test_recall_class_{c}": r for c, r in enumerate(recalls)})
        summary["final"]["test_tail_accuracy"] = recalls[2]
        with open(path, "w") as f:
            json.dump(summary, f)
    results, _, _ = report.write_tables(d)
    table = report.class_table(results).set_index("strategy_variant")
    order = [1, 3, 0, 2]
    labels = [f"recall {c} ({groups[c]}, {train_counts[c]})" for c in order]
    assert [c for c in table.columns if c.startswith("recall")] == labels
    for variant, rows in expected.items():
        means = np.mean(rows, axis=0)
        np.testing.assert_allclose(table.loc[variant, labels].to_numpy(float), means[order])
        assert table.loc[variant, "tail_accuracy"] == pytest.approx(means[2])
        assert table.loc[variant, "n"] == 3
    report.build(d)
    with open(os.path.join(d, "report.md")) as f:
        markdown = f.read()
    assert "recall 2 (tail, 10)" in markdown and "round(K/3) largest classes are head" in markdown
    assert os.path.exists(os.path.join(d, report.PLOTS_DIR, "class_recall_all.png"))
    # Binary grids have no per-class table.
    assert report.class_table(results.assign(**{"test_recall_class_2": np.nan, "test_recall_class_3": np.nan})) is None


def test_the_default_question_compares_every_strategy_with_none_and_the_heading_says_so(tmp_path):
    d = str(tmp_path)
    spec = sweep.make_spec(
        BASE,
        {
            "strategy": ("none", "class_weight", "upsample"),
            "class_weight_normalization": ("mean_one", "sum_to_num_classes"),
            "seed": SEEDS,
        },
    )
    sweep.prepare(d, spec)
    for config in sweep.expand(spec, d):
        _write_run(d, config, _fast_steady_upsample(config))
    results, curves, summary = report.write_tables(d)
    tables = report.verdict(results, curves, spec.question, spec.cell_fields())
    assert [t["treatment"].iloc[0].split("[")[0] for t in tables] == ["class_weight", "class_weight", "upsample"]
    assert all(list(t["control"]) == ["none"] for t in tables)
    assert (summary.query("kind == 'verdict'")["control"] == "none").all()
    report.build(d)
    with open(os.path.join(d, "report.md")) as f:
        markdown = f.read()
    heading = "## The question: every strategy against none on test_average_precision, higher is better (the default"
    assert heading in markdown
    # The ranking comes first, and its numbers are those of a recomputation from results.csv.
    assert markdown.index("## Ranking on test_average_precision") < markdown.index("## The question")
    ranked = pd.read_csv(os.path.join(d, "ranking.csv")).set_index("strategy_variant")
    values = pd.read_csv(os.path.join(d, report.RESULTS_FILE)).pivot(
        index="seed", columns="strategy_variant", values="test_average_precision"
    )
    assert ranked["mean"].to_dict() == pytest.approx(values.mean().to_dict())
    mean_ranks = pd.Series(scipy_stats.rankdata(-values.to_numpy(), axis=1).mean(axis=0), index=values.columns)
    assert ranked["mean_rank"].to_dict() == pytest.approx(mean_ranks.to_dict())
    assert ranked["friedman_p"].iloc[0] == pytest.approx(scipy_stats.friedmanchisquare(*values.to_numpy().T).pvalue)
    best = values.mean().idxmax()
    assert ranked.index[0] == best and bool(ranked.loc[best, "tied_with_best"])
    assert ranked["difference"].to_dict() == pytest.approx((values.mean() - values.mean()[best]).to_dict())
