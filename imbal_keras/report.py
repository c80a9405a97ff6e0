"""Tables, seed statistics, plots and the human-readable report of a grid folder.

Everything here is rebuilt from the finished run folders (read through `imbal_keras.runs`), so it can be
regenerated at any time and never disagrees with them:

  results.csv   one row per run: config, final metrics, convergence figures, instrumentation summaries
  curves.csv    one row per run per evaluation
  summary.csv   per cell and strategy variant: n, mean, std, min, max, bootstrap CI of each metric; per pair of
                variants in a cell: difference of means with CI, variance ratio with a Brown-Forsythe p-value
  report.md / report.html / plots/*.png

A *cell* is a combination of the varying axes other than the seeds, the strategy and its parameters; a
*strategy variant* is the strategy name plus the parameters that differ from their defaults
(`class_weight[weight_reduction=mean_with_sample_weight]`, see `StrategyConfig.variant`).
"""

from __future__ import annotations

import html
import itertools
import math
import os
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from imbal_keras import runs, strategies, sweep

RESULTS_FILE = "results.csv"
CURVES_FILE = "curves.csv"
SUMMARY_FILE = "summary.csv"
REPORT_FILES = ("report.md", "report.html")
PLOTS_DIR = "plots"

AUPRC = "test_average_precision"
CONVERGENCE_FRACTIONS = (0.90, 0.95)
CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 4999
BOOTSTRAP_SEED = 0
_INSTRUMENTATION_PREFIX = runs.INSTRUMENTATION_PREFIX


def steps_to_fraction(steps: Sequence[float], values: Sequence[float], fraction: float) -> float:
    """First evaluation step at which `values` reaches `fraction` of its maximum (NaN if all are NaN)."""
    values = np.asarray(values, dtype=float)
    if np.isnan(values).all():
        return math.nan
    reached = np.flatnonzero(values >= fraction * np.nanmax(values))
    return float(np.asarray(steps)[reached[0]])


def curve_area(steps: Sequence[float], values: Sequence[float]) -> float:
    """Area under the values-vs-step curve divided by its step span (= mean value over training).

    Trapezoid rule from the first to the last evaluation; a one-point curve gives that point.
    """
    steps, values = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    if len(steps) == 1:
        return float(values[0])
    return float(np.trapezoid(values, steps) / (steps[-1] - steps[0]))


def convergence_columns(curve: pd.DataFrame) -> dict[str, float]:
    """`steps_to_90pct_best_auprc`, `steps_to_95pct_best_auprc` and `auprc_curve_area` of one run's test curve."""
    figures = {
        f"steps_to_{round(f * 100)}pct_best_auprc": steps_to_fraction(curve["step"], curve[AUPRC], f)
        for f in CONVERGENCE_FRACTIONS
    }
    figures["auprc_curve_area"] = curve_area(curve["step"], curve[AUPRC])
    return figures


def load_runs(grid_dir: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """results and curves of the finished runs in `grid_dir/runs`: what actually ran.

    A folder whose name is not the run name of its own config (a `-2` copy, a folder renamed by hand) is left
    out. Rows are ordered by strategy (registry order), variant, then seed.
    """
    spec = sweep.load_spec(grid_dir)
    rows, curves = [], []
    runs_dir = sweep.runs_dir(grid_dir)
    for name in runs.finished_runs(runs_dir):
        record = runs.read(os.path.join(runs_dir, name))
        if name != sweep.run_name(record.config):
            continue  # a copy (`-2`) or a folder renamed by hand: its name no longer names its config
        row = runs.results_row(record)
        row.update(convergence_columns(record.curve))
        rows.append(row)
        curves.append(record.curve.assign(run_name=row["run_name"]))
    results = pd.DataFrame(rows)
    if results.empty:
        return results, pd.DataFrame()
    order = {name: i for i, name in enumerate(strategies.names())}
    results = results.sort_values(
        ["strategy", "strategy_variant", "seed"], key=lambda c: c.map(order) if c.name == "strategy" else c
    ).reset_index(drop=True)
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
    metrics += [f"steps_to_{round(f * 100)}pct_best_auprc" for f in CONVERGENCE_FRACTIONS]
    metrics += ["auprc_curve_area", "train_seconds"]
    metrics += [
        c
        for c in results.columns
        if c.startswith(_INSTRUMENTATION_PREFIX) and pd.api.types.is_numeric_dtype(results[c])
    ]
    return [m for m in metrics if m in results.columns]


def _bootstrap_ci(samples: tuple[np.ndarray, ...], statistic) -> tuple[float, float]:
    """95% BCa bootstrap interval (fixed seed); exact for constant data; NaN for fewer than 2 values."""
    if min(len(s) for s in samples) < 2:
        return math.nan, math.nan
    if all(np.ptp(s) == 0 for s in samples):
        value = float(statistic(*samples, axis=-1))
        return value, value
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DegenerateDataWarning for near-constant samples: interval is then NaN
        result = stats.bootstrap(
            samples,
            statistic,
            confidence_level=CONFIDENCE,
            n_resamples=BOOTSTRAP_RESAMPLES,
            method="BCa",
            rng=np.random.default_rng(BOOTSTRAP_SEED),
        )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def _mean(x, axis=-1):
    return np.mean(x, axis=axis)


def _difference_of_means(a, b, axis=-1):
    return np.mean(a, axis=axis) - np.mean(b, axis=axis)


def describe(values: Sequence[float]) -> dict[str, float]:
    """n, mean, std (ddof=1), min, max and the 95% bootstrap CI of the mean of the non-NaN `values`."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    low, high = _bootstrap_ci((x,), _mean)
    return {
        "n": len(x),
        "mean": float(np.mean(x)) if len(x) else math.nan,
        "std": float(np.std(x, ddof=1)) if len(x) > 1 else math.nan,
        "min": float(np.min(x)) if len(x) else math.nan,
        "max": float(np.max(x)) if len(x) else math.nan,
        "ci_low": low,
        "ci_high": high,
    }


def compare(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Two groups of seeds: difference of means a - b with its bootstrap CI, variance ratio var(a)/var(b) and
    the Brown-Forsythe test (Levene's test around the median) p-value for equal variances."""
    a, b = (np.asarray(v, dtype=float) for v in (a, b))
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    low, high = _bootstrap_ci((a, b), _difference_of_means)
    enough = len(a) > 1 and len(b) > 1
    var_a, var_b = (float(np.var(v, ddof=1)) if enough else math.nan for v in (a, b))
    p = math.nan
    if enough and (var_a > 0 or var_b > 0):
        with np.errstate(divide="ignore", invalid="ignore"):  # equal spreads around the median: p is NaN or 0
            p = float(stats.levene(a, b, center="median").pvalue)
    return {
        "n": len(a),
        "n_other": len(b),
        "mean": float(np.mean(a)) if len(a) else math.nan,
        "mean_other": float(np.mean(b)) if len(b) else math.nan,
        "difference": float(np.mean(a) - np.mean(b)) if len(a) and len(b) else math.nan,
        "difference_ci_low": low,
        "difference_ci_high": high,
        "variance_ratio": var_a / var_b if enough and var_b > 0 else math.nan,
        "levene_p": p,
    }


def summarize(results: pd.DataFrame, cell_fields: Sequence[str]) -> pd.DataFrame:
    """The summary table: `kind`=`cell` rows (per cell, variant, metric) and `kind`=`pair` rows (per cell, pair
    of variants in registration/grid order, metric)."""
    metrics = summary_metrics(results)
    rows = []
    for cell, group in _groups(results, cell_fields):
        keys = dict(zip(cell_fields, cell, strict=True))
        variants = list(dict.fromkeys(group["strategy_variant"]))
        by_variant = {v: group[group["strategy_variant"] == v] for v in variants}
        for variant, metric in itertools.product(variants, metrics):
            rows.append(
                {"kind": "cell", **keys, "strategy_variant": variant, "metric": metric}
                | describe(by_variant[variant][metric])
            )
        for (a, b), metric in itertools.product(itertools.combinations(variants, 2), metrics):
            rows.append(
                {"kind": "pair", **keys, "strategy_variant": a, "other_variant": b, "metric": metric}
                | compare(by_variant[a][metric], by_variant[b][metric])
            )
    return pd.DataFrame(rows)


def write_tables(grid_dir: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Writes results.csv, curves.csv and summary.csv atomically and returns them."""
    results, curves = load_runs(grid_dir)
    cell_fields = sweep.load_spec(grid_dir).cell_fields()
    summary = summarize(results, cell_fields) if not results.empty else pd.DataFrame()
    for name, table in ((RESULTS_FILE, results), (CURVES_FILE, curves), (SUMMARY_FILE, summary)):
        runs.write_atomically(os.path.join(grid_dir, name), table.to_csv(index=False))
    return results, curves, summary


# Verdict on the claim "upsampling converges faster and varies less than class weights".


def verdict(results: pd.DataFrame, question: sweep.Question, cell_fields: Sequence[str]) -> pd.DataFrame:
    """Per cell and class-weight variant: upsample vs that variant, with evidence and the confounds held equal.

    Convergence is `steps_to_90pct_best_auprc` (difference upsample - class_weight with 95% CI: faster is
    supported when the whole CI is below 0, contradicted when above 0). Variability is the variance ratio of the
    final test AUPRC across seeds (upsample / class_weight; less is supported when the ratio is < 1 with
    Brown-Forsythe p < 0.05, contradicted when > 1 with p < 0.05). The claim is supported when both parts are,
    contradicted when either part is, inconclusive otherwise.
    """
    rows = []
    speed_metric = "steps_to_90pct_best_auprc"
    for cell, group in _groups(results, cell_fields):
        up = group[group["strategy"] == question.treatment]
        weighted = group[group["strategy"] == question.control]
        if up.empty or weighted.empty:
            continue
        for variant, cw in weighted.groupby("strategy_variant", sort=False):
            speed = compare(up[speed_metric], cw[speed_metric])
            final = compare(up[AUPRC], cw[AUPRC])
            faster = _direction(speed["difference_ci_high"] < 0, speed["difference_ci_low"] > 0)
            steadier = _direction(
                final["variance_ratio"] < 1 and final["levene_p"] < 1 - CONFIDENCE,
                final["variance_ratio"] > 1 and final["levene_p"] < 1 - CONFIDENCE,
            )
            parts = (faster, steadier)
            overall = (
                "supported"
                if all(p == "supported" for p in parts)
                else "contradicted"
                if "contradicted" in parts
                else "inconclusive"
            )
            rows.append(
                {
                    **dict(zip(cell_fields, cell, strict=True)),
                    "treatment": question.treatment,
                    "control_variant": variant,
                    "seeds": f"{len(up)} vs {len(cw)}",
                    "steps_to_90pct_difference": speed["difference"],
                    "steps_to_90pct_ci": _interval(speed),
                    "converges_faster": faster,
                    "final_auprc_difference": final["difference"],
                    "final_auprc_ci": _interval(final),
                    "auprc_variance_ratio": final["variance_ratio"],
                    "brown_forsythe_p": final["levene_p"],
                    "varies_less": steadier,
                    "verdict": overall,
                    "held_equal": _confounds(up, cw),
                }
            )
    return pd.DataFrame(rows)


def _direction(supported: bool, contradicted: bool) -> str:
    return "supported" if supported else "contradicted" if contradicted else "inconclusive"


def _interval(figures: dict) -> str:
    return f"[{figures['difference_ci_low']:.4g}, {figures['difference_ci_high']:.4g}]"


def _confounds(up: pd.DataFrame, cw: pd.DataFrame) -> str:
    """What the two arms share, and whether the loss-weight scale differs (it changes the effective step size)."""
    first = cw.iloc[0]
    shared = [
        f"steps={int(first['steps'])}",
        f"batch={int(first['batch_size'])}",
        f"{first['optimizer']} lr={first['learning_rate']:g}",
    ]
    if "weight_reduction" in first and isinstance(first["weight_reduction"], str):
        shared.append(f"reduction={first['weight_reduction']}")
    if not (up["steps"] == first["steps"]).all():
        shared[0] = "steps DIFFER"
    weight = float(cw["mean_example_weight"].mean())
    if first.get("weight_reduction") == "mean_with_sample_weight":
        shared.append("weight scale equal (normalised away by the reduction)")
    elif abs(weight - 1) < 0.05:
        shared.append(f"weight scale equal (mean example weight {weight:.3g})")
    else:
        shared.append(f"weight scale NOT equal: mean example weight {weight:.3g} scales the step vs upsample's 1")
    return "; ".join(shared)


# Plots.


def _cell_groups(table: pd.DataFrame, cell_fields: Sequence[str]):
    """(label, slug, rows) per cell, in grid order."""
    for cell, rows in _groups(table, cell_fields):
        label = ", ".join(f"{k}={v}" for k, v in zip(cell_fields, cell, strict=True)) or "all runs"
        slug = "_".join(str(v) for v in cell).replace("/", "-").replace(":", "-").replace(".", "p") or "all"
        yield label, slug, rows


def _figure(path: str, draw) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = draw(plt)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


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
            d = describe(values)
            ax.errorbar(d["mean"], i, xerr=[[d["mean"] - d["ci_low"]], [d["ci_high"] - d["mean"]]], fmt="k|", ms=12)
        ax.set_yticks(range(len(variants)), variants, fontsize=7)
        ax.set_xlabel(metric)
        ax.set_title(f"final {metric}: every seed; bar = mean and 95% bootstrap CI")
        return fig

    return _figure(path, draw)


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

    return _figure(path, draw)


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
    plot(
        "steps_to_90pct",
        "Steps to 90% of the run's best AUPRC, every seed",
        lambda p: _plot_seeds(p, rows, "steps_to_90pct_best_auprc"),
    )
    per_step = (
        ("composition", "minority_per_batch", "Minority examples per batch (every recorded batch of every seed)",
         _draw_histogram, "minority count per batch"),
        ("gradients", "gradient_norms", "Per-class gradient norm over training (mean over seeds)",
         _draw_gradient_norms, "||grad L_c|| per class, mean over seeds"),
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
    for column, rows in frame.groupby("column"):
        mean = rows.groupby("step")["value"].mean()
        ax.plot(mean.index, mean.values, label=column.removeprefix("gradients_norm_"))
    ax.set_yscale("log")
    ax.legend(fontsize=6)


# The report: one list of blocks rendered as Markdown and as HTML.


def _blocks(grid_dir: str, results: pd.DataFrame, curves: pd.DataFrame, summary: pd.DataFrame) -> list[tuple]:
    spec = sweep.load_spec(grid_dir)
    cell_fields = spec.cell_fields()
    total = len(sweep.expand(spec, grid_dir))
    axes = "; ".join(f"{k} = {', '.join(map(str, v))}" for k, v in spec.ordered_axes().items())
    question = spec.question
    blocks: list[tuple] = [
        ("h1", f"Grid report: {os.path.basename(os.path.abspath(grid_dir))}"),
        (
            "p",
            f"{len(results)} of {total} runs finished. Axes: {axes}. Every run: {spec.base.training.steps} steps "
            f"(evaluated every {spec.base.training.eval_every}), {spec.base.data.num_examples} examples. A strategy "
            "parameter axis varies only the strategies that declare it.",
        ),
    ]
    table = verdict(results, question, cell_fields)
    blocks.append(("h2", f'Verdict: "{question.treatment} converges faster and varies less than {question.control}"'))
    if table.empty:
        blocks.append(
            ("p", f"Not assessable: the grid needs both {question.treatment} and {question.control} runs in a cell.")
        )
    else:
        blocks += [
            (
                "p",
                f"Per cell and {question.control} variant, {question.treatment} vs that variant at 95%. Converges "
                "faster: difference of mean steps to 90% of the run's best test AUPRC (treatment - control), "
                "bootstrap CI entirely below 0. Varies less: variance ratio of final test AUPRC across seeds "
                "(treatment / control) below 1 with Brown-Forsythe p < 0.05. held_equal lists the confounds both "
                "arms share.",
            ),
            (
                "table",
                table,
            ),
        ]
    figures = _plots(grid_dir, results, curves, cell_fields)
    cells = summary[summary["kind"] == "cell"]
    for label, _, rows in _cell_groups(cells, cell_fields):
        blocks.append(("h2", f"Cell: {label}"))
        blocks.append(("table", _cell_table(rows)))
        blocks += [("img", caption, path) for caption, path in figures[label]]
    blocks.append(
        (
            "p",
            f"Tables: {RESULTS_FILE} (one row per run), {CURVES_FILE} (one row per evaluation), {SUMMARY_FILE} "
            "(statistics per cell and per pair of strategy variants). TensorBoard with HParams: "
            f"tensorboard --logdir {grid_dir}",
        )
    )
    return blocks


def _cell_table(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per variant: mean [CI] and std of final AUPRC, steps to 90% and curve area."""
    table = {}
    for variant, group in rows.groupby("strategy_variant", sort=False):
        by_metric = group.set_index("metric")
        entry = {"n": int(by_metric.loc[AUPRC, "n"])}
        for metric in (AUPRC, "steps_to_90pct_best_auprc", "auprc_curve_area", "test_roc_auc"):
            r = by_metric.loc[metric]
            entry[f"{metric} mean [95% CI]"] = f"{r['mean']:.4g} [{r['ci_low']:.4g}, {r['ci_high']:.4g}]"
            entry[f"{metric} std"] = r["std"]
        table[variant] = entry
    return pd.DataFrame.from_dict(table, orient="index").rename_axis("strategy_variant").reset_index()


def _cell_text(value) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def to_markdown(blocks: list[tuple]) -> str:
    lines = []
    for kind, *content in blocks:
        if kind in ("h1", "h2"):
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
        if kind in ("h1", "h2", "p"):
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
