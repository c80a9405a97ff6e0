"""The data a grid's runs actually used, as a short Markdown section of its report.

Config defaults describe only synthetic data (`num_examples`, `num_features`); what a run trained and was
evaluated on is in its results row (`runs.data_used`: rows, features, class counts per split, rows an imposed
ratio dropped). `section` turns those columns of the results table into the report's "Data used" section: one
line per distinct dataset layout, with the runs that used it.
"""

from __future__ import annotations

import math

import pandas as pd

from imbal_keras import runs

# The columns that tell one dataset layout from another, in the order the section shows them.
_KEYS = ("dataset", "imbalance_ratio", *runs.DATA_USED_COLUMNS)
_SPLITS = ("train", "validation", "test")


def section(results: pd.DataFrame) -> str:
    """The report's "Data used" section as Markdown (see `blocks`); empty when there is nothing to say."""
    lines = []
    for kind, text in blocks(results):
        lines += [f"## {text}" if kind == "h2" else text, ""]
    return "\n".join(lines[:-1]) + "\n" if lines else ""


def blocks(results: pd.DataFrame) -> list[tuple[str, str]]:
    """The report's "Data used" section as report blocks: per distinct layout, rows, features, class counts per
    split and what an imposed ratio dropped, with how many runs used it.

    Args:
      results: the results table (one row per run, `runs.results_row`).

    Returns:
      `[("h2", "Data used"), ("p", ...), ...]`; empty when the table has no data columns (runs written by an
      older version).
    """
    if results.empty or not set(runs.DATA_USED_COLUMNS) <= set(results.columns):
        return []
    keys = [k for k in _KEYS if k in results.columns]
    layouts = results[keys].fillna("").astype(str).value_counts(sort=False, dropna=False).reset_index(name="runs")
    found = [
        ("h2", "Data used"),
        ("p", "Rows, features and class counts (per class id, `/`-separated) as the runs used them."),
    ]
    return found + [("p", _describe(layout)) for layout in layouts.to_dict("records")]


def _describe(layout: dict) -> str:
    """One bullet: `- DATASET at 1:r (or at its own class ratio): N rows, D features; train a/b, ...`."""
    ratio = _number(layout.get("imbalance_ratio"))
    imposed = f" at 1:{ratio:g}" if ratio else " at its own class ratio"
    features = _number(layout["data_features"])
    shown = "unknown" if features is None else f"{features:g}"
    counts = ", ".join(f"{split} {layout[f'data_class_counts_{split}']}" for split in _SPLITS)
    text = f"- {layout.get('dataset', 'data')}{imposed}: {layout['data_rows']} rows, {shown} features; {counts}"
    dropped = layout["data_dropped"]
    if dropped:
        text += f"; the ratio dropped {dropped} rows per class"
    runs_count = layout["runs"]
    return f"{text} ({runs_count} run{'s' if runs_count != 1 else ''})"


def _number(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


__all__ = ["blocks", "section"]
