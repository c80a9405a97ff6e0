"""The report's ranking of many strategies: per cell with three or more strategy variants, the Friedman test,
each variant's difference from the best with its simultaneous interval, the group tied with the best, and an
interval plot (`ranking.rank` on the question's metric, runs paired on their seeds).

Blocks are the report's: ("h2" | "p", text), ("table", frame), ("img", caption, path).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from imbal_keras import runs as runs_lib
from imbal_keras.grid import answer, figures, ranking, stats

RANKING_FILE = "ranking.csv"
# Shown beside the ranking when results.csv has them (K > 2 with class groups): mean over the ranked seeds.
GROUP_METRICS = ("test_head_accuracy", "test_medium_accuracy", "test_tail_accuracy")
_MIN_VARIANTS = 3


def rankings(results: pd.DataFrame, cell_fields: Sequence[str], setup: answer.Setup) -> pd.DataFrame:
    """Per cell with three or more variants: the ranking table of `ranking.rank` on `setup.metric`.

    Only the `answer.sgd_runs` take part, paired on their seeds; seeds a variant lacks are left out.

    Returns:
      One row per cell and variant: the cell fields, strategy_variant, seeds, mean, mean_rank, difference (from
      the best), ci_low, ci_high, tied_with_best, friedman_p, status, and the mean of each of `GROUP_METRICS`
      results.csv holds over the same seeds; empty when no cell qualifies.
    """
    runs = results[answer.sgd_runs(results)]
    keys = [c for c in (*setup.pair_on, "seed") if c in runs and c not in cell_fields]
    frames = []
    for cell, group in stats.groups(runs, cell_fields):
        values = group.pivot_table(index=keys, columns="strategy_variant", values=setup.metric, aggfunc="first")
        values = values[list(dict.fromkeys(group["strategy_variant"]))].dropna()
        if values.shape[1] < _MIN_VARIANTS:
            continue
        out = ranking.rank(values.to_numpy(), list(values.columns), higher_is_better=setup.larger_is_better())
        table = out.table.rename(columns={"strategy": "strategy_variant"})
        table.insert(1, "seeds", len(values))
        for metric in (m for m in GROUP_METRICS if m in group):
            means = group.set_index(keys).loc[values.index].groupby("strategy_variant")[metric].mean()
            table[metric] = table["strategy_variant"].map(means)
        frames.append(table.assign(friedman_p=out.friedman_p, status=out.status, **cell))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def blocks(
    grid_dir: str, results: pd.DataFrame, cell_fields: Sequence[str], setup: answer.Setup, plots_dir: str
) -> list[tuple]:
    """The ranking's blocks; also writes the table to `grid_dir/ranking.csv`. None for grids of two variants."""
    table = rankings(results, cell_fields, setup)
    if table.empty:
        return []
    runs_lib.write_atomically(os.path.join(grid_dir, RANKING_FILE), table.to_csv(index=False))
    labels = answer.short_labels(results["strategy_variant"])
    direction = "higher" if setup.larger_is_better() else "lower"
    out = [
        ("h2", f"Ranking on {setup.metric} ({direction} is better)"),
        ("p", _method()),
    ]
    for i, (cell, rows) in enumerate(stats.groups(table, cell_fields)):
        name = ", ".join(f"{k}={v}" for k, v in cell.items())
        out.append(("p", _sentence(name, rows, labels)))
        shown = rows.assign(label=rows["strategy_variant"].map(labels))
        columns = ["label", "seeds", "mean", "mean_rank", "difference", "ci_low", "ci_high", "tied_with_best"]
        groups = [m for m in GROUP_METRICS if m in shown and shown[m].notna().any()]
        out.append(("table", shown[columns + groups].rename(columns={m: m.removeprefix("test_") for m in groups})))
        relative = os.path.join(plots_dir, f"ranking_{i}.png")
        _plot(os.path.join(grid_dir, relative), shown, setup.metric, name)
        out.append(("img", f"{name or 'all runs'}: difference from the best with simultaneous 95% intervals", relative))
        out += published_blocks(rows, setup, labels)
    return out


def published_blocks(rows: pd.DataFrame, setup: answer.Setup, labels: Mapping[str, str]) -> list[tuple]:
    """The measured ordering of one cell's ranking beside the question's published one (`ranking.agreement`).

    Args:
      rows: one cell's rows of `rankings`.
      setup: how the question is answered; nothing is shown without `setup.published`.
      labels: short label per strategy variant.

    Returns:
      A heading, a sentence (Kendall's tau-b with its p-value, the pairs ordered the other way) and a table:
      per strategy both name, the published figure, the measured mean, its rank among them and the class groups'
      accuracies results.csv holds.
    """
    published = dict(setup.published)
    sign = 1.0 if setup.larger_is_better() else -1.0
    measured = {v: sign * m for v, m in zip(rows["strategy_variant"], rows["mean"], strict=True)}
    found = ranking.agreement(measured, published)
    if len(found["strategies"]) < 3:
        return []
    pairs = "; ".join(f"{labels[b]} above {labels[a]}" for a, b in found["disagree"]) or "none"
    text = (
        f"Against the published ordering ({setup.published_source}): over the {len(found['strategies'])} strategies "
        f"both name, Kendall's tau-b = {found['tau']:.2f} (p = {found['p']:.3g}). Ordered the other way here: {pairs}."
    )
    shown = rows.set_index("strategy_variant").loc[found["strategies"]]
    table = pd.DataFrame({"label": [labels[v] for v in shown.index], "published": [published[v] for v in shown.index]})
    table["measured mean"] = shown["mean"].to_numpy()
    table["measured rank"] = pd.Series(sign * shown["mean"].to_numpy()).rank(ascending=False).to_numpy()
    for metric in (m for m in GROUP_METRICS if m in shown and shown[m].notna().any()):
        table[metric.removeprefix("test_")] = shown[metric].to_numpy()
    return [("h3", "Against the published ordering"), ("p", text), ("table", table)]


def _method() -> str:
    return (
        "Runs paired on their seeds. Friedman test on the ranks within each seed (do the strategies differ at "
        "all?); each strategy's mean difference from the best with a simultaneous 95% interval (the critical "
        "value of the largest pairwise |t| when each seed's values are shuffled across the strategies, so every "
        "pair's interval holds together); tied with the best: the interval includes 0. Fewer than "
        f"{stats.MIN_SEEDS} complete seeds give 'too few seeds' and call no strategy better. Table: {RANKING_FILE}; "
        "calibration: docs/statistics.md."
    )


def _sentence(cell: str, rows: pd.DataFrame, labels: Mapping[str, str]) -> str:
    where = f"{cell}: " if cell else ""
    status = rows["status"].iloc[0]
    if status != stats.OK:
        return f"{where}{status} ({int(rows['seeds'].iloc[0])} complete seeds): no strategy is called better."
    tied = [labels[v] for v in rows.loc[rows["tied_with_best"], "strategy_variant"]]
    best = labels[rows["strategy_variant"].iloc[0]]
    return (
        f"{where}Friedman p = {rows['friedman_p'].iloc[0]:.3g} over {int(rows['seeds'].iloc[0])} seeds. Best mean: "
        f"{best}. Tied with the best: {', '.join(tied)}; "
        f"{len(rows) - len(tied)} of {len(rows)} are below it by more than their simultaneous interval."
    )


def _plot(path: str, rows: pd.DataFrame, metric: str, title: str) -> str:
    def draw(plt):
        fig, ax = plt.subplots(figsize=(5.2, 0.6 + 0.3 * len(rows)))
        y = np.arange(len(rows))[::-1]
        low = (rows["difference"] - rows["ci_low"]).to_numpy()
        high = (rows["ci_high"] - rows["difference"]).to_numpy()
        colors = np.where(rows["tied_with_best"], "tab:blue", "tab:red")
        ax.errorbar(rows["difference"], y, xerr=[low, high], fmt="none", ecolor="grey", lw=1)
        ax.scatter(rows["difference"], y, c=colors, s=16, zorder=3)
        ax.axvline(0, color="black", lw=0.8, ls="--")
        ax.set_yticks(y, rows["label"], fontsize=7)
        ax.set_xlabel(f"difference from the best, {metric}", fontsize=8)
        ax.set_title(title or "ranking", fontsize=9)
        ax.tick_params(labelsize=7)
        return fig

    return figures.save_figure(path, draw)


__all__ = ["RANKING_FILE", "blocks", "published_blocks", "rankings"]
