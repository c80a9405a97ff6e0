"""The report's answer: plain sentences first, two plots per comparison, then the tables; the full table last.

Blocks are the report's: ("h1" | "h2" | "p", text), ("table", frame), ("img", caption, path).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import pandas as pd

from imbal_keras import runs
from imbal_keras.grid import answer, figures, stats, sweep

BANDS_FILE = "bands.csv"

# Columns of the short verdict table: (header, verdict column or formatter).
_SHORT_COLUMNS = ("seeds", "converges_faster", "faster_by_area", "varies_less", "metric_equivalent", "verdict")


def blocks(
    grid_dir: str,
    results: pd.DataFrame,
    curve_table: pd.DataFrame,
    question: sweep.Question,
    cell_fields: Sequence[str],
    setup: answer.Setup,
    plots_dir: str,
) -> tuple[list[tuple], list[tuple]]:
    """The answer's blocks (for the top of the report) and the appendix's (the full verdict tables).

    Also writes every comparison's bands, step by step, to `grid_dir/bands.csv` (`answer.band_frame`).

    Args:
      grid_dir: the grid folder; plots are written to `grid_dir/plots_dir`.
      results: the results table.
      curve_table: the curves table.
      question: the grid's question.
      cell_fields: the fields that define a cell.
      setup: how the question is answered.
      plots_dir: the plots folder, relative to `grid_dir`.

    Returns:
      (answer blocks, appendix blocks).
    """
    asked = question.describe(num_classes(results))
    heading = ("h2", f"The question: {asked}. Faster, less variable, or equivalent?")
    if setup.metric not in results:
        return [heading, ("p", f"Not assessable: results.csv has no column {setup.metric}.")], []
    if setup.metric not in curve_table:
        text = f"Not assessable over training: {setup.metric} is a column of results.csv without a curve in curves.csv."
        return [heading, ("p", text)], []
    tables, comparisons = answer.compare_over_training(results, curve_table, question, cell_fields, setup)
    if not comparisons:
        text = "Not assessable: no cell holds runs of both strategies of any comparison the question names."
        return [heading, ("p", text)], []
    labels = answer.short_labels(results["strategy_variant"])
    bands = answer.band_frame(comparisons, labels)
    runs.write_atomically(os.path.join(grid_dir, BANDS_FILE), bands.to_csv(index=False))
    out = [heading, ("p", _method(setup))]
    out += [("p", answer.sentences(c, labels, setup)) for c in comparisons]
    for i, comparison in enumerate(comparisons):
        out += _comparison_plots(grid_dir, plots_dir, i, comparison, labels, setup)
    out += _tables(tables, comparisons, labels, cell_fields, setup)
    appendix = [("h2", "Appendix: the full verdict tables (also in summary.csv, kind = verdict)")]
    appendix += [("table", _labelled(t, labels)) for t in tables]
    return out, appendix


def num_classes(results: pd.DataFrame) -> int:
    """The number of classes of the grid's task (2 when results.csv does not say)."""
    return int(results["num_classes"].max()) if "num_classes" in results and len(results) else 2


def _method(setup: answer.Setup) -> str:
    return (
        f"How to read it: runs paired on their seeds ({', '.join(setup.pair_on)}), only runs whose every training "
        "seed varies. Over training, a difference or a spread ratio is named only at steps where its simultaneous "
        "95% band (sign-flip max-|t| for the difference; jackknife, Bonferroni over the steps, for the ratio) "
        "excludes no difference. The mean over training, the steps to the target and the spread of the final "
        f"value are tested in one Holm family per table at {1 - stats.CONFIDENCE:.0%}; equivalence is two one-sided "
        f"sign-flip tests within +-{setup.margins.metric:g} (final value), +-{setup.margins.area:g} (mean over "
        f"training) and a factor {setup.margins.spread:g} (sd ratio). 'too few seeds', 'identical' and 'no spread to "
        f"compare' take no side. The sd ratio's interval (90%, the one its equivalence test uses) is approximate "
        "for skewed values: in simulation a 95% one covered 85-91% of the time under lognormal(0, 1) values and "
        f"92-94% under t(3) ones. Every step's estimate and band: {BANDS_FILE}. docs/statistics.md gives every "
        "test and its calibration."
    )


def _comparison_plots(
    grid_dir: str, plots_dir: str, index: int, comparison: answer.Comparison, labels: dict, setup: answer.Setup
) -> list[tuple]:
    t, c = labels[comparison.row["treatment"]], labels[comparison.row["control"]]
    cell = ", ".join(f"{k}={v}" for k, v in comparison.cell.items())
    metric = setup.metric.removeprefix("test_").replace("_", " ")
    out = []
    for kind, band, ylabel, ratio in (
        ("difference", comparison.difference, f"{t} - {c}, test {metric}", False),
        ("spread", comparison.spread, f"sd {t} / sd {c}", True),
    ):
        relative = os.path.join(plots_dir, f"answer_{index}_{kind}.png")
        title = f"{cell}: {t} vs {c}" if cell else f"{t} vs {c}"
        figures.plot_band(os.path.join(grid_dir, relative), band, title=title, ylabel=ylabel, ratio=ratio)
        what = "paired difference of test " + metric if kind == "difference" else "ratio of spreads across seeds"
        out.append(("img", f"{title}: {what} at every evaluation, with its simultaneous 95% band", relative))
    return out


def _tables(
    tables: list[pd.DataFrame],
    comparisons: list[answer.Comparison],
    labels: dict,
    cell_fields: Sequence[str],
    setup: answer.Setup,
) -> list[tuple]:
    short = pd.concat([_short(t, labels, cell_fields) for t in tables], ignore_index=True)
    legend = pd.DataFrame({"label": list(labels.values()), "strategy variant": list(labels)})
    power_rows = answer.power_table(comparisons, labels, setup)
    return [
        ("h2", "Answers at a glance"),
        ("table", short),
        ("p", "Labels:"),
        ("table", legend),
        ("h2", "Steps to the target, at several targets"),
        (
            "p",
            "Steps to 80, 85, 90 and 95% of the cell's best mean curve, treatment minus control (runs that never "
            "reach a target count at the last evaluation); all rows of a treatment in one Holm family. Where the "
            "answers differ between targets, the speed answer depends on the target.",
        ),
        ("table", _sensitivity(comparisons, labels, cell_fields)),
        ("h2", "How many seeds you need, from this grid's own noise"),
        (
            "p",
            "Per comparison and figure: the standard deviation of the paired differences this grid measured, the "
            "smallest true difference its seeds detect with 80% probability at its family size (two-sided, "
            "Bonferroni, noncentral t; 'inf' where 2 / 2^n cannot reach the level), and the seeds a reference "
            "effect needs (the equivalence margin; for steps, a twofold speed-up).",
        ),
        ("table", power_rows),
    ]


def _short(table: pd.DataFrame, labels: dict, cell_fields: Sequence[str]) -> pd.DataFrame:
    out = table[[*cell_fields]].copy()
    pairs = zip(table["treatment"], table["control"], strict=True)
    out["comparison"] = [f"{labels[t]} vs {labels[c]}" for t, c in pairs]
    for prefix, header in (("steps", "steps to target"), ("area", "mean over training"), ("metric", "final")):
        out[f"{header} [95% CI]"] = [
            f"{d:.3g} [{lo:.3g}, {hi:.3g}]"
            for d, lo, hi in zip(
                table[f"{prefix}_difference"], table[f"{prefix}_ci_low"], table[f"{prefix}_ci_high"], strict=True
            )  # fmt: skip
        ]
    out["sd ratio [90% CI]"] = [
        f"{r:.3g} [{lo:.3g}, {hi:.3g}]"
        for r, lo, hi in zip(table["sd_ratio"], table["sd_ratio_ci_low"], table["sd_ratio_ci_high"], strict=True)
    ]
    for column in _SHORT_COLUMNS:
        out[column] = table[column].to_numpy()
    return out


def _sensitivity(comparisons: list[answer.Comparison], labels: dict, cell_fields: Sequence[str]) -> pd.DataFrame:
    rows = []
    for comparison in comparisons:
        name = f"{labels[comparison.row['treatment']]} vs {labels[comparison.row['control']]}"
        for _, r in comparison.sensitivity.iterrows():
            rows.append(
                {
                    **{f: r[f] for f in cell_fields},
                    "comparison": name,
                    "target": f"{r['target_fraction']:.0%} ({r['target']:.3g})",
                    "reached": r["reached"],
                    "steps difference [95% CI]": (
                        f"{r['steps_difference']:.3g} [{r['steps_ci_low']:.3g}, {r['steps_ci_high']:.3g}]"
                    ),
                    "p (Holm)": r["steps_p_holm"],
                    "converges faster": r["converges_faster"],
                }
            )
    return pd.DataFrame(rows)


def _labelled(table: pd.DataFrame, labels: dict) -> pd.DataFrame:
    return table.assign(treatment=table["treatment"].map(labels), control=table["control"].map(labels))


__all__ = ["BANDS_FILE", "blocks", "num_classes"]
