"""Tables, seed statistics, plots and the human-readable report of a grid folder.

Everything here is rebuilt from the finished run folders (read through `imbal_keras.runs`), so it can be
regenerated at any time and never disagrees with them:

  results.csv   one row per run: config, final metrics, convergence figures, instrumentation summaries
  curves.csv    one row per run per evaluation
  summary.csv   per cell and strategy variant: n, mean, std, min, max, t interval of each metric; per pair of
                variants in a cell: the paired comparison of `stats.compare` (runs paired on their seeds)
  report.md / report.html / plots/*.png

A *cell* is a combination of the varying axes other than the seeds, the strategy and its parameters; a
*strategy variant* is the strategy name plus the parameters that differ from their defaults
(`class_weight[weight_reduction=mean_with_sample_weight]`, see `StrategyConfig.variant`).
"""

from __future__ import annotations

import dataclasses
import html
import itertools
import math
import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from imbal_keras import runs, strategies
from imbal_keras.grid import answer, answer_section, data_used, equivalence, figures, ranking_section, stats, sweep
from imbal_keras.grid import verdict as verdict_lib

RESULTS_FILE = "results.csv"
CURVES_FILE = "curves.csv"
SUMMARY_FILE = "summary.csv"
REPORT_FILES = ("report.md", "report.html")
PLOTS_DIR = "plots"

AUPRC = "test_average_precision"
TARGET_FRACTION = 0.9
# Runs that share these seeds share the data, the initial weights and the batch order: they are pairs.
PAIR_ON = stats.SEED_SOURCES
# What the verdict reports as held equal (or differing) between the two arms of a comparison. The effective weight
# scale is what a loss reduction leaves of the mean example weight (`effective_weight_scale`).
HELD_EQUAL = ("steps", "batch_size", "optimizer", "learning_rate", "effective_weight_scale")
# How the report answers a grid's question.
SETUP = answer.Setup(metric="test_average_precision", pair_on=PAIR_ON, held_equal=HELD_EQUAL,
                     target_fraction=TARGET_FRACTION)  # fmt: skip
# A standard deviation of an AUPRC cannot exceed half its range.
AUPRC_RANGE = (0.0, 1.0)
_INSTRUMENTATION_PREFIX = runs.INSTRUMENTATION_PREFIX


def evaluation_noise(average_precision: float, positives: int) -> float:
    """Standard error of one AUPRC from the test split's finite positives: sqrt(AP (1 - AP) / n_pos).

    The binomial approximation of Boyd, Eng and Page (ECML 2013): how much a run's test AUPRC would move on
    another test split of the same size, to set beside the spread across seeds.
    """
    if positives <= 0 or not np.isfinite(average_precision):
        return math.nan
    return math.sqrt(average_precision * (1 - average_precision) / positives)


def effective_weight_scale(results: pd.DataFrame) -> np.ndarray:
    """Per run: the factor by which example weights scale its loss, which is what a comparison should hold equal.

    Under `weight_reduction=mean_with_sample_weight` the loss is sum(w l) / sum(w): any common scale of the
    weights cancels, so the effective scale is 1 whatever `mean_example_weight` says; otherwise (sum over the
    batch size) the mean example weight scales every step.
    """
    scale = results["mean_example_weight"].to_numpy(dtype=float)
    if "weight_reduction" not in results.columns:
        return scale
    return np.where(results["weight_reduction"] == "mean_with_sample_weight", 1.0, scale)


def load_runs(grid_dir: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """results and curves of the finished runs in `grid_dir/runs`: what actually ran.

    A second folder of the same config (a `-2` copy) is left out: the first in name order counts. Folders are
    matched by their configs, not their names, so a grid written before a setting was added still reads.
    Rows are ordered by strategy (registry order), variant, then seed.
    """
    spec = sweep.load_spec(grid_dir)
    rows, curves = [], []
    runs_dir = sweep.runs_dir(grid_dir)
    seen = set()
    for name in runs.finished_runs(runs_dir):
        record = runs.read(os.path.join(runs_dir, name))
        identity = sweep.run_name(record.config)
        if identity in seen:
            continue  # a second run of the same config (a `-2` copy): the first one counts
        seen.add(identity)
        row = runs.results_row(record)
        row["auprc_curve_area"] = verdict_lib.curve_area(record.curve["step"], record.curve[AUPRC])
        test_counts = record.summary["class_counts"]["test"]
        row["test_average_precision_se"] = evaluation_noise(row.get(AUPRC, math.nan), int(min(test_counts)))
        rows.append(row)
        curves.append(record.curve.assign(run_name=row["run_name"]))
    results = pd.DataFrame(rows)
    if results.empty:
        return results, pd.DataFrame()
    order = {name: i for i, name in enumerate(strategies.names())}
    results = results.sort_values(
        ["strategy", "strategy_variant", "seed"], key=lambda c: c.map(order) if c.name == "strategy" else c
    ).reset_index(drop=True)
    timing = verdict_lib.convergence(results, pd.concat(curves, ignore_index=True), cell_fields=spec.cell_fields(),
                               metric=AUPRC, fraction=TARGET_FRACTION)  # fmt: skip
    results = results.merge(timing, on="run_name")
    results["effective_weight_scale"] = effective_weight_scale(results)
    identifying = ["run_name", "strategy_variant", *(a for a in spec.ordered_axes() if a in results.columns)]
    curve_table = pd.concat(curves, ignore_index=True).merge(results[identifying], on="run_name")
    curve_table = curve_table[identifying + [c for c in curve_table.columns if c not in identifying]]
    order_of_run = {name: i for i, name in enumerate(results["run_name"])}
    curve_table = curve_table.sort_values(
        ["run_name", "step"], key=lambda c: c.map(order_of_run) if c.name == "run_name" else c
    )
    return results, curve_table.reset_index(drop=True)


def _groups(table: pd.DataFrame, fields: Sequence[str]):
    """(values, rows) per combination of `fields` in order of appearance; one group of everything without fields."""
    if not fields:
        yield (), table
        return
    for values, rows in table.groupby(list(fields), sort=False):
        yield (values if isinstance(values, tuple) else (values,)), rows


def summary_metrics(results: pd.DataFrame) -> list[str]:
    """Columns summarised per cell: final test metrics, validation AUPRC, convergence, instrumentation."""
    metrics = [f"test_{m}" for m in runs.METRIC_NAMES] + ["validation_average_precision"]
    metrics += ["restricted_steps", "roughness", "auprc_curve_area", "train_seconds"]
    metrics += [
        c
        for c in results.columns
        if c.startswith(_INSTRUMENTATION_PREFIX) and pd.api.types.is_numeric_dtype(results[c])
    ]
    return [m for m in metrics if m in results.columns]


def summarize(results: pd.DataFrame, cell_fields: Sequence[str]) -> pd.DataFrame:
    """The summary table: `kind`=`cell` rows (per cell, variant, metric: `stats.describe`) and `kind`=`pair` rows
    (per cell, pair of variants in order, metric: `stats.compare`, paired on the runs' seeds). Statistics are
    descriptive here; the verdict is where tests are adjusted for multiplicity. Only the runs whose training seeds
    all vary take part (`answer.sgd_runs`); runs that hold a seed fixed serve the spread by source."""
    results = results[answer.sgd_runs(results)]
    metrics = summary_metrics(results)
    rows = []
    for cell, group in _groups(results, cell_fields):
        keys = dict(zip(cell_fields, cell, strict=True))
        variants = list(dict.fromkeys(group["strategy_variant"]))
        by_variant = {v: group[group["strategy_variant"] == v] for v in variants}
        for variant, metric in itertools.product(variants, metrics):
            rows.append(
                {"kind": "cell", **keys, "strategy_variant": variant, "metric": metric}
                | stats.describe(by_variant[variant][metric])
            )
        for (a, b), metric in itertools.product(itertools.combinations(variants, 2), metrics):
            rows.append(
                {"kind": "pair", **keys, "strategy_variant": a, "other_variant": b, "metric": metric}
                | stats.compare(by_variant[a], by_variant[b], metric, pair_on=PAIR_ON)
            )
    return pd.DataFrame(rows)


def write_tables(grid_dir: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Writes results.csv, curves.csv and summary.csv atomically and returns them.

    summary.csv holds `summarize`'s rows and, with `kind`=`verdict`, every row of the verdict tables.
    """
    results, curves = load_runs(grid_dir)
    spec = sweep.load_spec(grid_dir)
    cell_fields = spec.cell_fields()
    summary = pd.DataFrame()
    if not results.empty:
        metric = setup_for(spec.question, answer_section.num_classes(results)).metric
        results = answer.with_metric(results, curves, spec.question.metric, metric)
        verdicts = [t.assign(kind="verdict") for t in verdict(results, curves, spec.question, cell_fields)]
        summary = pd.concat([summarize(results, cell_fields), *verdicts], ignore_index=True)
    for name, table in ((RESULTS_FILE, results), (CURVES_FILE, curves), (SUMMARY_FILE, summary)):
        runs.write_atomically(os.path.join(grid_dir, name), table.to_csv(index=False))
    return results, curves, summary


# Verdict on the question of the grid ("does the treatment converge faster and vary less than the control?").


def setup_for(question: sweep.Question, num_classes: int = 2) -> answer.Setup:
    """How the report answers `question`: `SETUP` with the question's metric (`Question.resolved_metric` for a
    task of `num_classes`), its roughness on the validation split, and its equivalence margins."""
    margins = equivalence.Margins(
        metric=question.metric_margin, area=question.area_margin, spread=question.spread_margin
    )
    metric, higher = question.resolved_metric(num_classes), question.higher_is_better(num_classes)
    # A recorded metric's roughness is that of its validation curve; another column's, that of its own curve.
    roughness = "validation_" + metric.partition("_")[2] if sweep.is_recorded_metric(metric) else metric
    published = {"published": question.published, "published_source": question.published_source}
    return dataclasses.replace(
        SETUP, metric=metric, higher_is_better=higher, roughness_metric=roughness, margins=margins, **published
    )


def verdict(
    results: pd.DataFrame, curves: pd.DataFrame, question: sweep.Question, cell_fields: Sequence[str]
) -> list[pd.DataFrame]:
    """One verdict table per treatment variant of each family of the question (`answer.families`; one Holm family
    each), on the question's metric for this task.

    Runs are paired on their seeds, and only the runs whose training seeds all vary take part (`answer.sgd_runs`).
    """
    return answer.verdict_tables(
        results, curves, question, cell_fields, setup_for(question, answer_section.num_classes(results))
    )


def spread_by_source(results: pd.DataFrame, cell_fields: Sequence[str]) -> pd.DataFrame:
    """The spread of the final test AUPRC by source of randomness (`stats.seed_variance`), per cell and variant.

    The data seed's row pools over the datasets; the training seeds' rows (init, order, and "all": the runs whose
    training seeds all vary, `answer.sgd_runs`) are per dataset, so they measure SGD's own spread on fixed data.
    """
    group = [*(f for f in cell_fields if f not in PAIR_ON), "strategy_variant"]
    options = {"metric": AUPRC, "value_range": AUPRC_RANGE}
    if not {"init_seed", "order_seed"} <= set(results.columns):
        return stats.seed_variance(results, group_fields=group, sources=PAIR_ON, **options)
    data = stats.seed_variance(results, group_fields=group, sources=PAIR_ON, **options)
    training = stats.seed_variance(
        results,
        group_fields=["data_seed", *group],
        sources=("init_seed", "order_seed"),
        together=answer.sgd_runs(results),
        **options,
    )
    table = pd.concat([data[data["source"] == "data_seed"], training], ignore_index=True)
    return table[["data_seed", *(c for c in table.columns if c != "data_seed")]]


# Plots.


def _cell_groups(table: pd.DataFrame, cell_fields: Sequence[str]):
    """(label, slug, rows) per cell, in grid order."""
    for cell, rows in _groups(table, cell_fields):
        label = ", ".join(f"{k}={v}" for k, v in zip(cell_fields, cell, strict=True)) or "all runs"
        slug = "_".join(str(v) for v in cell).replace("/", "-").replace(":", "-").replace(".", "p") or "all"
        yield label, slug, rows


def _plot_curves(path: str, curves: pd.DataFrame, metric: str) -> str:
    """Metric vs step, one panel per variant: every seed a thin line, the mean over seeds a thick one."""

    def draw_panel(ax, frame: pd.DataFrame) -> None:
        for _, run in frame.groupby("run_name"):
            ax.plot(run["step"], run[metric], color="tab:blue", alpha=0.3, lw=0.8)
        mean = frame.groupby("step")[metric].mean()
        ax.plot(mean.index, mean.values, color="black", lw=2)
        ax.set_xlabel("step", fontsize=7)

    panels = dict(tuple(curves.groupby("strategy_variant", sort=False)))
    return _plot_small_multiples(path, panels, draw_panel, f"{metric} vs step: every seed (thin), mean (thick)")


def _plot_seeds(path: str, results: pd.DataFrame, metric: str) -> str:
    """Every seed's value per variant (dots), with the mean and its bootstrap CI."""

    def draw(plt):
        variants = list(dict.fromkeys(results["strategy_variant"]))
        fig, ax = plt.subplots(figsize=(8, 0.45 * len(variants) + 1.5))
        jitter = np.random.default_rng(0)
        for i, variant in enumerate(variants):
            values = results.loc[results["strategy_variant"] == variant, metric].to_numpy(dtype=float)
            ax.scatter(values, i + jitter.uniform(-0.15, 0.15, len(values)), s=14, alpha=0.7)
            d = stats.describe(values)
            ax.errorbar(d["mean"], i, xerr=[[d["mean"] - d["ci_low"]], [d["ci_high"] - d["mean"]]], fmt="k|", ms=12)
        ax.set_yticks(range(len(variants)), variants, fontsize=7)
        ax.set_xlabel(metric)
        ax.set_title(f"{metric}: every seed; bar = mean and 95% t interval")
        return fig

    return figures.save_figure(path, draw)


def _plot_small_multiples(path: str, panels: dict[str, pd.DataFrame], draw_panel, title: str) -> str:
    """One panel per variant, four per row, shared y axis."""
    columns = min(4, len(panels))
    rows = math.ceil(len(panels) / columns)

    def draw(plt):
        fig, axes = plt.subplots(rows, columns, figsize=(3.4 * columns, 2.6 * rows + 0.4), squeeze=False, sharey=True)
        for ax, (name, frame) in zip(axes.flat, panels.items(), strict=False):
            draw_panel(ax, frame)
            ax.set_title(name, fontsize=7)
        for ax in axes.flat[len(panels) :]:
            ax.set_visible(False)
        fig.suptitle(title, fontsize=9)
        return fig

    return figures.save_figure(path, draw)


def instrumentation_steps(grid_dir: str, results: pd.DataFrame, file: str, columns: Sequence[str]) -> pd.DataFrame:
    """Per-step instrumentation of every run that recorded it, long format.

    Args:
      grid_dir: the grid folder.
      results: the results table (run_name and strategy_variant are used).
      file: the per-step file the training callbacks write into a run folder (`runs.COMPOSITION_FILE`, ...).
      columns: the columns of that file to keep.

    Returns:
      Columns step, column, value, run_name, strategy_variant; empty when no run has the file or the columns.
    """
    frames = []
    for r in results.itertuples():
        path = os.path.join(sweep.runs_dir(grid_dir), r.run_name, file)
        if not os.path.exists(path):
            continue
        steps = pd.read_csv(path)
        present = [c for c in columns if c in steps.columns]
        frames.append(
            steps.melt(id_vars="step", value_vars=present, var_name="column").assign(
                run_name=r.run_name, strategy_variant=r.strategy_variant
            )
        )
    empty = pd.DataFrame(columns=["step", "column", "value", "run_name", "strategy_variant"])
    return pd.concat(frames, ignore_index=True) if frames else empty


def _plots(
    grid_dir: str, results: pd.DataFrame, curves: pd.DataFrame, cell_fields: Sequence[str]
) -> dict[str, list[tuple[str, str]]]:
    """Writes the PNGs; returns per cell label a list of (caption, path relative to the grid folder)."""
    os.makedirs(os.path.join(grid_dir, PLOTS_DIR), exist_ok=True)
    counts = _train_counts(results)
    scalars = {
        "composition": instrumentation_steps(
            grid_dir, results, runs.COMPOSITION_FILE, [f"composition_count_class_{int(np.argmin(counts))}"]
        ),
        "gradients": instrumentation_steps(
            grid_dir, results, runs.GRADIENTS_FILE, [f"gradients_norm_class_{c}" for c in range(len(counts))]
        ),
        "diagnostics": instrumentation_steps(grid_dir, results, runs.DIAGNOSTICS_FILE, ["simple_noise_scale"]),
    }
    return {
        label: _cell_plots(grid_dir, slug, rows, curves, scalars)
        for label, slug, rows in _cell_groups(results, cell_fields)
    }


def _cell_plots(
    grid_dir: str, slug: str, rows: pd.DataFrame, curves: pd.DataFrame, scalars: dict[str, pd.DataFrame]
) -> list[tuple[str, str]]:
    """The plots of one cell; instrumentation plots only where the runs measured it."""
    names = set(rows["run_name"])
    cell = {k: v[v["run_name"].isin(names)] if not v.empty else v for k, v in scalars.items()}
    out = []

    def plot(kind: str, caption: str, make) -> None:
        relative = os.path.join(PLOTS_DIR, f"{kind}_{slug}.png")
        make(os.path.join(grid_dir, relative))
        out.append((caption, relative))

    plot(
        "auprc_vs_step",
        "Test AUPRC vs step per variant, every seed and the mean",
        lambda p: _plot_curves(p, curves[curves["run_name"].isin(names)], AUPRC),
    )
    plot("final_auprc", "Final test AUPRC, every seed", lambda p: _plot_seeds(p, rows, AUPRC))
    if class_table(rows) is not None:
        plot(
            "class_recall",
            "Final test recall per class, mean over seeds (classes from most to fewest training examples)",
            lambda p: _plot_class_recall(p, rows),
        )
    plot(
        "steps_to_target",
        f"Steps to {TARGET_FRACTION:.0%} of the cell's best mean test AUPRC curve, every seed (a run that never "
        "reaches it is drawn at the last evaluation: censored)",
        lambda p: _plot_seeds(p, rows, "restricted_steps"),
    )
    plot(
        "roughness",
        "Roughness: mean absolute change of a run's validation AUPRC between evaluations, every seed",
        lambda p: _plot_seeds(p, rows, "roughness"),
    )
    per_step = (
        ("composition", "minority_per_batch", "Minority examples per batch (every recorded batch of every seed)",
         _draw_histogram, "minority count per batch"),
        ("gradients", "gradient_norms", "Per-class gradient norm over training (mean over seeds)",
         _draw_gradient_norms, "||grad L_c|| per class, mean over seeds"),
        ("diagnostics", "noise_scale", "Gradient noise over training: simple noise scale B_simple = tr Sigma / |G|^2 "
         "of each strategy's mini-batch gradient (mean over seeds; docs/diagnostics.md)",
         _draw_gradient_norms, "B_simple, mean over seeds"),
    )  # fmt: skip
    for key, kind, caption, draw_panel, title in per_step:
        if not cell[key].empty:
            panels = dict(tuple(cell[key].groupby("strategy_variant", sort=False)))
            plot(kind, caption, lambda p, a=panels, d=draw_panel, t=title: _plot_small_multiples(p, a, d, t))
    for column in rows.columns:
        if column.startswith(_INSTRUMENTATION_PREFIX) and "noise" in column and rows[column].notna().any():
            plot(column, f"{column} per strategy, every seed", lambda p, c=column: _plot_seeds(p, rows, c))
    return out


def _train_counts(results: pd.DataFrame) -> np.ndarray:
    columns = sorted(c for c in results.columns if c.startswith("train_count_class_"))
    return results[columns].sum().to_numpy()


def _draw_histogram(ax, frame: pd.DataFrame) -> None:
    ax.hist(frame["value"], bins=np.arange(frame["value"].max() + 2) - 0.5)


def _draw_gradient_norms(ax, frame: pd.DataFrame) -> None:
    """Each column's mean over the seeds against the step, log scale (per-class norms, or the noise scale)."""
    for column, rows in frame.groupby("column"):
        mean = rows.groupby("step")["value"].mean()
        ax.plot(mean.index, mean.values, label=column.removeprefix("gradients_norm_").replace("_", " "))
    ax.set_yscale("log")
    ax.legend(fontsize=6)


# The report: one list of blocks rendered as Markdown and as HTML.


def _blocks(grid_dir: str, results: pd.DataFrame, curves: pd.DataFrame, summary: pd.DataFrame) -> list[tuple]:
    """The report's blocks: the grid, the answer in sentences, its plots and tables, evaluation noise, spread by
    source, one section per cell, and the full verdict tables as an appendix."""
    spec = sweep.load_spec(grid_dir)
    cell_fields = spec.cell_fields()
    total = len(sweep.expand(spec, grid_dir))
    axes = "; ".join(f"{k} = {', '.join(map(str, v))}" for k, v in spec.ordered_axes().items())
    blocks: list[tuple] = [
        ("h1", f"Grid report: {os.path.basename(os.path.abspath(grid_dir))}"),
        (
            "p",
            f"{len(results)} of {total} runs finished. Axes: {axes}. Every run: {spec.base.training.steps} steps "
            f"(evaluated every {spec.base.training.eval_every}). A strategy parameter axis varies only the "
            "strategies that declare it.",
        ),
    ]
    blocks += data_used.blocks(results)
    os.makedirs(os.path.join(grid_dir, PLOTS_DIR), exist_ok=True)
    setup = setup_for(spec.question, answer_section.num_classes(results))
    answer_blocks, appendix = answer_section.blocks(
        grid_dir, results, curves, spec.question, cell_fields, setup, PLOTS_DIR
    )
    blocks += ranking_section.blocks(grid_dir, results, cell_fields, setup, PLOTS_DIR)
    blocks += answer_blocks
    blocks += _spread_blocks(results, cell_fields)
    blocks += _cell_blocks(grid_dir, results[answer.sgd_runs(results)], curves, summary, cell_fields)
    blocks += appendix
    blocks.append(
        (
            "p",
            f"Tables: {RESULTS_FILE} (one row per run), {CURVES_FILE} (one row per evaluation), {SUMMARY_FILE} "
            "(statistics per cell and per pair of strategy variants, and the verdict rows). TensorBoard with "
            f"HParams: tensorboard --logdir {grid_dir}",
        )
    )
    return blocks


def _spread_blocks(results: pd.DataFrame, cell_fields: Sequence[str]) -> list[tuple]:
    """Evaluation noise beside the spread across seeds, and the spread by source of randomness."""
    noise = results["test_average_precision_se"].median()
    spread = results.groupby(["strategy_variant", *cell_fields], sort=False)[AUPRC].std().median()
    blocks: list[tuple] = [
        (
            "p",
            f"Evaluation noise: the standard error of one run's test AUPRC from the test split's finite positives "
            f"(binomial approximation, Boyd et al. 2013) is {noise:.3g} (median over runs), against a spread across "
            f"seeds of {spread:.3g} (median standard deviation of a variant in a cell).",
        )
    ]
    sources = spread_by_source(results, cell_fields)
    labels = answer.short_labels(results["strategy_variant"])
    if not sources.empty:
        blocks += [
            ("h2", "Spread of the final test AUPRC by source of randomness"),
            (
                "p",
                "Standard deviation when only one seed varies (data = generation and split, init = initial "
                "weights, order = batch draws) and over runs that vary every training seed ('all'), with "
                "chi-square intervals (Bouthillier et al., MLSys 2021); a row with one degree of freedom says "
                "'too few seeds' and has no interval. Labels as in the answer's legend.",
            ),
            ("table", sources.assign(strategy_variant=sources["strategy_variant"].map(labels))),
        ]
    return blocks


def _cell_blocks(
    grid_dir: str, results: pd.DataFrame, curves: pd.DataFrame, summary: pd.DataFrame, cell_fields: Sequence[str]
) -> list[tuple]:
    """Per cell: its summary table, its per-class table (K > 2) and its plots."""
    figures = _plots(grid_dir, results, curves, cell_fields)
    cells = summary[summary["kind"] == "cell"]
    per_class = {label: class_table(rows) for label, _, rows in _cell_groups(results, cell_fields)}
    blocks: list[tuple] = []
    for label, _, rows in _cell_groups(cells, cell_fields):
        blocks.append(("h2", f"Cell: {label}"))
        blocks.append(("table", _cell_table(rows)))
        if per_class.get(label) is not None:
            blocks += [
                (
                    "p",
                    "Per class: final test recall, mean over seeds, classes from most to fewest training examples "
                    "(group, training count). Groups by training count: the round(K/3) largest classes are head, "
                    "the round(K/3) smallest tail, the rest medium; a group's accuracy is the mean recall of its "
                    "classes (docs/long_tail.md).",
                ),
                ("table", per_class[label]),
            ]
        blocks += [("img", caption, path) for caption, path in figures[label]]
    return blocks


def _cell_table(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per variant: mean [CI] and std of final AUPRC, steps to the common target, roughness, curve area."""
    table = {}
    for variant, group in rows.groupby("strategy_variant", sort=False):
        by_metric = group.set_index("metric")
        entry = {"n": int(by_metric.loc[AUPRC, "n"])}
        for metric in (AUPRC, "restricted_steps", "roughness", "auprc_curve_area", "test_roc_auc"):
            if metric not in by_metric.index:
                continue
            r = by_metric.loc[metric]
            entry[f"{metric} mean [95% CI]"] = f"{r['mean']:.4g} [{r['ci_low']:.4g}, {r['ci_high']:.4g}]"
            entry[f"{metric} std"] = r["std"]
        table[variant] = entry
    return pd.DataFrame.from_dict(table, orient="index").rename_axis("strategy_variant").reset_index()


def class_table(rows: pd.DataFrame) -> pd.DataFrame | None:
    """K > 2: per variant, the mean over its runs of the final test balanced accuracy, macro-F1, head / medium /
    tail accuracy and every class's recall; classes in order of training count, labelled with their group and
    count. None for binary cells."""
    classes = [c for c in _class_ids(rows) if rows[f"test_recall_class_{c}"].notna().any()]
    if len(classes) <= 2:
        return None
    counts = rows[[f"train_count_class_{c}" for c in classes]].iloc[0].to_numpy()
    classes = [c for _, c in sorted(zip(-counts, classes, strict=True))]
    summary_columns = [
        f"test_{m}" for m in ("balanced_accuracy", "macro_f1", "head_accuracy", "medium_accuracy", "tail_accuracy")
    ]
    columns = [c for c in summary_columns if c in rows] + [f"test_recall_class_{c}" for c in classes]
    grouped = rows.groupby("strategy_variant", sort=False)
    table = grouped[columns].mean()
    table.insert(0, "n", grouped.size())
    labels = {}
    for c in classes:
        group = rows[f"class_group_class_{c}"].iloc[0] if f"class_group_class_{c}" in rows else ""
        labels[f"test_recall_class_{c}"] = f"recall {c} ({group}, {int(rows[f'train_count_class_{c}'].iloc[0])})"
    labels.update({c: c.removeprefix("test_") for c in summary_columns})
    return table.rename(columns=labels).reset_index()


def _class_ids(rows: pd.DataFrame) -> list[int]:
    prefix = "test_recall_class_"
    return sorted(int(c.removeprefix(prefix)) for c in rows.columns if c.startswith(prefix))


def _plot_class_recall(path: str, rows: pd.DataFrame) -> str:
    """Mean final test recall per class (classes by training count, largest first), one line per variant."""
    table = class_table(rows)

    def draw(plt):
        fig, ax = plt.subplots(figsize=(7, 4))
        recalls = [c for c in table.columns if c.startswith("recall ")]
        for _, row in table.iterrows():
            ax.plot(range(len(recalls)), row[recalls].to_numpy(float), marker="o", label=row["strategy_variant"])
        ax.set_xticks(range(len(recalls)), [c.removeprefix("recall ") for c in recalls], rotation=60, fontsize=6)
        ax.set_ylabel("final test recall (mean over seeds)")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=6)
        fig.tight_layout()
        return fig

    return figures.save_figure(path, draw)


def _cell_text(value) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def to_markdown(blocks: list[tuple]) -> str:
    lines = []
    for kind, *content in blocks:
        if kind in ("h1", "h2", "h3"):
            lines += [f"{'#' * int(kind[1])} {content[0]}", ""]
        elif kind == "p":
            lines += [content[0], ""]
        elif kind == "img":
            lines += [f"![{content[0]}]({content[1]})", ""]
        else:
            frame = content[0]
            lines.append("| " + " | ".join(map(str, frame.columns)) + " |")
            lines.append("|" + "---|" * len(frame.columns))
            lines += ["| " + " | ".join(_cell_text(v) for v in row) + " |" for row in frame.itertuples(index=False)]
            lines.append("")
    return "\n".join(lines)


def to_html(blocks: list[tuple]) -> str:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Grid report</title><style>"
        "body{font-family:sans-serif;max-width:1200px;margin:auto}table{border-collapse:collapse;font-size:12px}"
        "td,th{border:1px solid #ccc;padding:2px 6px}</style></head><body>"
    ]
    for kind, *content in blocks:
        if kind in ("h1", "h2", "h3", "p"):
            parts.append(f"<{kind}>{html.escape(content[0])}</{kind}>")
        elif kind == "img":
            caption, path = (html.escape(c) for c in content)
            parts.append(f"<figure><img src='{path}'><figcaption>{caption}</figcaption></figure>")
        else:
            parts.append(content[0].map(_cell_text).to_html(index=False))
    parts.append("</body></html>")
    return "\n".join(parts)


def build(grid_dir: str) -> list[str]:
    """Writes the tables, the plots and report.md / report.html of the grid in `grid_dir`.

    Returns:
      The paths written (tables and reports).
    """
    results, curves, summary = write_tables(grid_dir)
    paths = [os.path.join(grid_dir, name) for name in (RESULTS_FILE, CURVES_FILE, SUMMARY_FILE)]
    if results.empty:
        return paths
    blocks = _blocks(grid_dir, results, curves, summary)
    for name, text in zip(REPORT_FILES, (to_markdown(blocks), to_html(blocks)), strict=True):
        runs.write_atomically(os.path.join(grid_dir, name), text)
        paths.append(os.path.join(grid_dir, name))
    return paths


__all__ = [
    "AUPRC",
    "AUPRC_RANGE",
    "CURVES_FILE",
    "HELD_EQUAL",
    "PAIR_ON",
    "PLOTS_DIR",
    "REPORT_FILES",
    "RESULTS_FILE",
    "SETUP",
    "SUMMARY_FILE",
    "TARGET_FRACTION",
    "build",
    "class_table",
    "effective_weight_scale",
    "evaluation_noise",
    "setup_for",
    "instrumentation_steps",
    "load_runs",
    "spread_by_source",
    "summarize",
    "summary_metrics",
    "to_html",
    "to_markdown",
    "verdict",
    "write_tables",
]
