"""Convergence and the verdict of a grid: does a treatment converge faster and vary less than its controls?

`convergence` times every run against one target per cell and measures how rough its curve is; `verdict` compares
a treatment with each control in every cell on those figures, on a threshold-free convergence measure (the mean
metric over training) and on the spread of the final metric, with the tests of `imbal_keras.grid.stats`, all of a
table's tests in one Holm family; it says whether the final metric, the mean over training and the spread are
equivalent within their margins (`imbal_keras.grid.equivalence`). `target_sensitivity` times the runs against
several targets, so a verdict can say when its speed answer depends on the target.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from imbal_keras.errors import check
from imbal_keras.grid import equivalence, stats
from imbal_keras.grid.stats import IDENTICAL, NO_SPREAD, OK, TOO_FEW_SEEDS

# The answers of a verdict (besides "too few seeds", "no spread to compare" and "identical", which take no side).
SUPPORTED = "supported"
CONTRADICTED = "contradicted"
INCONCLUSIVE = "inconclusive"
# The targets of the sensitivity table, as fractions of the cell's best mean curve.
TARGET_FRACTIONS = (0.8, 0.85, 0.9, 0.95)


@dataclasses.dataclass(frozen=True)
class Columns:
    """The names of the columns that identify a run, its variant and an evaluation's step."""

    run: str = "run_name"
    variant: str = "strategy_variant"
    step: str = "step"


@dataclasses.dataclass(frozen=True)
class Criteria:
    """What a verdict compares and how (`verdict`'s keyword arguments).

    Attributes:
      variant_column: the column naming a run's variant.
      pair_on: the columns identifying a seed shared across variants; () compares unpaired.
      metric: the final figure whose spread is compared.
      curve_metric: the curve that sets the convergence target (default: `metric`).
      target_fraction: the target as a fraction of the cell's best mean curve.
      roughness_metric: the curve whose roughness is compared.
      run_column: the column naming a run.
      step_column: the evaluation step column of the curves.
      variance_test: "brown_forsythe" or "pitman_morgan", see `stats.paired`.
      min_seeds: the fewest pairs for which a part can take a side.
      confidence: 1 - the family-wise error rate, and the coverage of the intervals.
      held_equal: columns reported as held equal between the arms ("name=value"), or as differing.
      margins: the equivalence margins of the final metric, the mean over training and the spread ratio.
      target_fractions: the targets of the sensitivity of the speed answer (`target_sensitivity`).

    Raises:
      UserInputError: an unknown `variance_test`.
    """

    variant_column: str = "strategy_variant"
    pair_on: Sequence[str] = ("seed",)
    metric: str = "test_average_precision"
    curve_metric: str | None = None
    target_fraction: float = 0.9
    roughness_metric: str = "validation_average_precision"
    run_column: str = "run_name"
    step_column: str = "step"
    variance_test: str = "brown_forsythe"
    min_seeds: int = stats.MIN_SEEDS
    confidence: float = stats.CONFIDENCE
    held_equal: Sequence[str] = ()
    margins: equivalence.Margins = equivalence.Margins()
    target_fractions: Sequence[float] = TARGET_FRACTIONS

    @property
    def columns(self) -> Columns:
        """The run, variant and step column names."""
        return Columns(run=self.run_column, variant=self.variant_column, step=self.step_column)

    @property
    def settings(self) -> stats.Settings:
        """How the arms are tested; checks `variance_test`."""
        return stats.Settings(confidence=self.confidence, min_seeds=self.min_seeds, variance_test=self.variance_test)


def curve_area(steps: Sequence[float], values: Sequence[float]) -> float:
    """Area under the values-vs-step curve divided by its step span (= mean value over training).

    Trapezoid rule from the first to the last evaluation; a one-point curve gives that point.
    """
    steps, values = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    if len(steps) == 1:
        return float(values[0])
    return float(np.trapezoid(values, steps) / (steps[-1] - steps[0]))


def convergence(
    results: pd.DataFrame,
    curves: pd.DataFrame,
    *,
    cell_fields: Sequence[str],
    metric: str = "test_average_precision",
    fraction: float = 0.9,
    roughness_metric: str = "validation_average_precision",
    columns: Columns = Columns(),
) -> pd.DataFrame:
    """Per run: steps to reach a target common to its cell, and the roughness of its curve.

    The target is `fraction` of the best mean curve of the cell: the mean over runs of `metric` at each step,
    per variant, maximised over variants and steps (`metric` must be higher-is-better). Every run of the cell
    is timed against that one target, so a run that never learns does not "converge" at its first evaluation.
    A run that has not reached it by the cell's horizon (the last step every run evaluated) is censored:
    `steps_to_target` is NaN and `reached` False, and `restricted_steps` counts it at the horizon, so means of
    `restricted_steps` are restricted means (the mean of min(steps to target, horizon)), fully observed for
    every run.

    Roughness is the mean absolute change of `roughness_metric` between consecutive evaluations of the run:
    how much a run's own curve jumps, whatever its level.

    Args:
      results: one row per run with the run and variant columns and the `cell_fields`.
      curves: one row per run per evaluation with the run and step columns, `metric` and `roughness_metric`.
      cell_fields: the columns whose values define a cell (every axis but the seed and the variant).
      metric: the higher-is-better curve the target is set on.
      fraction: the target as a fraction of the best mean value, in (0, 1].
      roughness_metric: the curve whose roughness is measured.
      columns: the names of the run, variant and step columns.

    Returns:
      One row per run of `results`: the run column, target, horizon, steps_to_target, reached, restricted_steps
      (NaN for a run without curve rows), roughness.

    Raises:
      UserInputError: a column is missing or `fraction` is outside (0, 1].
    """
    check(0 < fraction <= 1, f"fraction must be in (0, 1]. Received: fraction={fraction!r}")
    run_column, step_column = columns.run, columns.step
    stats.check_columns(results, [run_column, columns.variant, *cell_fields], "results")
    stats.check_columns(curves, [run_column, step_column, metric, roughness_metric], "curves")
    check(
        not results[run_column].duplicated().any(),
        f"results must hold one row per run; some values of {run_column} repeat. Received: run_column={run_column!r}",
    )
    # Integer codes instead of names: every group-by below runs on numbers.
    run_of_point = pd.Index(results[run_column]).get_indexer(curves[run_column])
    known = run_of_point >= 0
    run_of_point = run_of_point[known]
    cell_of_run = _cell_ids(results, cell_fields)
    points = pd.DataFrame(
        {
            "run": run_of_point,
            "cell": cell_of_run[run_of_point],
            "variant": pd.factorize(results[columns.variant])[0][run_of_point],
            "step": curves[step_column].to_numpy(dtype=float)[known],
            "value": curves[metric].to_numpy(dtype=float)[known],
            "rough": curves[roughness_metric].to_numpy(dtype=float)[known],
        }
    ).sort_values(["run", "step"])
    target = fraction * points.groupby(["cell", "variant", "step"])["value"].mean().groupby(level="cell").max()
    horizon = points.groupby(["cell", "run"])["step"].max().groupby(level="cell").min()
    on_time = points["step"].to_numpy() <= points["cell"].map(horizon).to_numpy()
    hits = points[on_time & (points["value"].to_numpy() >= points["cell"].map(target).to_numpy())]
    first = hits.groupby("run")["step"].min()
    roughness = points.groupby("run")["rough"].diff().abs().groupby(points["run"]).mean()
    runs = pd.RangeIndex(len(results))
    out = pd.DataFrame({run_column: results[run_column].to_numpy()})
    out["target"] = pd.Series(cell_of_run).map(target).to_numpy()
    out["horizon"] = pd.Series(cell_of_run).map(horizon).to_numpy()
    out["steps_to_target"] = first.reindex(runs).to_numpy()
    out["reached"] = out["steps_to_target"].notna()
    timed = runs.isin(points["run"]) & out["target"].notna().to_numpy()
    out["restricted_steps"] = np.where(timed, out["steps_to_target"].fillna(out["horizon"]), np.nan)
    out["roughness"] = roughness.reindex(runs).to_numpy()
    return out


def verdict(
    results: pd.DataFrame,
    curves: pd.DataFrame,
    *,
    treatment: str,
    controls: Sequence[str],
    cell_fields: Sequence[str],
    **criteria,
) -> pd.DataFrame:
    """Per cell and control variant: does `treatment` converge faster and vary less than that control?

    Converges faster: `restricted_steps` to the cell's common target (`convergence`), treatment minus control,
    paired on `pair_on`; supported when the sign-flip test rejects "no difference" after Holm adjustment and the
    treatment is faster, contradicted when it rejects the other way. Faster by area: the same for the mean metric
    over training (`curve_area`, no threshold; higher is faster). Varies less: the spread of the final `metric`
    across seeds, compared with the paired spread test (`variance_test`); supported or contradicted the same
    way. Every test of the table (3 per row) is one Holm family, so the chance that any answer of the table takes
    a side when no variant differs from another is at most 1 - `confidence`. The verdict is supported when
    converges faster and varies less both are, contradicted when either is, otherwise the first of "too few
    seeds", "identical", "no spread to compare", "inconclusive" that applies. Arms equal pair by pair to within
    float rounding answer "identical" and are not tested.

    Equivalence is answered apart from the tests: the final metric and the mean over training are "equivalent"
    when the paired TOST shows their difference within +-margin, the spread when the 1 - 2 alpha interval of
    sd(treatment) / sd(control) lies within (1 / margin, margin) (`equivalence`); each at level alpha per answer.

    With fewer than `min_seeds` pairs (6 by default: the exact test's smallest p-value, 2 / 2^n, is 1/32 there
    and 1/16 at 5 pairs) a part answers "too few seeds"; with values that do not vary, "no spread to compare".
    With m tests in the family, rejecting even one needs 2 / 2^n < alpha / m: n >= 10 for 12 tests (4 controls).

    Also reported, as description (intervals not adjusted, not part of the answers): the difference of the
    final metric, the probability that the treatment scores higher on a seed, and the difference of roughness.

    Args:
      results: one row per run: the run and variant columns, `cell_fields`, `pair_on`, `metric`.
      curves: one row per run per evaluation: the run and step columns, the curve and roughness metrics.
      treatment: the variant under test (a value of the variant column).
      controls: the variants it is compared with.
      cell_fields: the columns that define a cell; comparisons never cross cells.
      **criteria: the fields of `Criteria` (metric, pair_on, variance_test, ...); defaults otherwise.

    Returns:
      One row per cell and control present: the cell fields, treatment, control, pairing, seeds, target,
      reached (runs that reached the target, treatment vs control), steps_difference, steps_sd (of the paired
      differences), steps_ci_low/high, steps_p, steps_p_holm, converges_faster; the same for area (the mean
      metric over training, higher is faster) with faster_by_area; metric_difference, metric_sd,
      metric_ci_low/high, probability_of_improvement, poi_ci_low/high; std_treatment, std_control,
      variance_ratio, spread_p, spread_p_holm, varies_less; roughness_difference, roughness_sd,
      roughness_ci_low/high; metric_equivalent, area_equivalent (paired TOST within the margins), sd_ratio with
      its 1 - 2 alpha jackknife interval and spread_equivalent; verdict; held_equal (when asked).

    Raises:
      UserInputError: a column is missing, a variant name is not in `results`, `pair_on` is not unique, or a
        criterion is invalid.
    """
    how = Criteria(**criteria)
    settings = how.settings
    _check_arms(results, treatment, controls, cell_fields, how)
    runs = _timed_runs(results, curves, cell_fields, how)
    rows = []
    for keys, control, arm, other in _arm_pairs(runs, treatment, controls, cell_fields, how):
        figures = _comparison(arm, other, how, settings)
        rows.append({**keys, "treatment": treatment, "control": control, **figures})
    return _answers(rows, list(cell_fields), 1 - how.confidence, how.held_equal)


def target_sensitivity(
    results: pd.DataFrame,
    curves: pd.DataFrame,
    *,
    treatment: str,
    controls: Sequence[str],
    cell_fields: Sequence[str],
    **criteria,
) -> pd.DataFrame:
    """The speed answer of `verdict` at each of the `target_fractions`: does it depend on the target?

    Curves that cross (one arm rising first and plateauing lower) make steps-to-target answer differently at
    different targets. Each row times both arms against one target and tests the paired difference of
    `restricted_steps` as `verdict` does; the whole table is one Holm family.

    Args:
      results: as for `verdict`.
      curves: as for `verdict`.
      treatment: the variant under test.
      controls: the variants it is compared with.
      cell_fields: the columns that define a cell.
      **criteria: the fields of `Criteria`; `target_fractions` sets the targets.

    Returns:
      One row per cell, control and target: the cell fields, treatment, control, target_fraction, target,
      reached, steps_difference, steps_ci_low/high, steps_p, steps_p_holm, converges_faster.

    Raises:
      UserInputError: as for `verdict`, or a target fraction outside (0, 1].
    """
    how = Criteria(**criteria)
    _check_arms(results, treatment, controls, cell_fields, how)
    rows = []
    for fraction in how.target_fractions:
        runs = _timed_runs(results, curves, cell_fields, dataclasses.replace(how, target_fraction=fraction))
        for keys, control, arm, other in _arm_pairs(runs, treatment, controls, cell_fields, how):
            speed = stats.compare_columns(arm, other, ["restricted_steps"], pair_on=how.pair_on, settings=how.settings)
            speed = speed["restricted_steps"]
            row = {**keys, "treatment": treatment, "control": control, "target_fraction": fraction}
            row["target"] = float(arm["target"].iloc[0])
            row["reached"] = f"{int(arm['reached'].sum())}/{len(arm)} vs {int(other['reached'].sum())}/{len(other)}"
            rows.append({**row, **_figures(speed, "steps", test=True), "_status": speed["difference_status"]})
    alpha = 1 - how.confidence
    for row, adjusted in zip(rows, stats.holm([r["steps_p"] for r in rows]), strict=True):
        row["steps_p_holm"] = adjusted
        row["converges_faster"] = _answer(row.pop("_status"), adjusted, row["steps_difference"], alpha)
    return pd.DataFrame(rows)


def depends_on_target(sensitivity: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Per group of `keys` (cell fields and control): the answers over the targets, and whether they differ.

    Returns:
      The `keys` columns, answers ("80%: supported; 90%: inconclusive") and depends (True when the targets that
      could be tested do not all give the same answer: supported, contradicted or inconclusive).
    """
    rows = []
    for values, group in stats.groups(sensitivity, list(keys)):
        answers = "; ".join(
            f"{f:.0%}: {a}" for f, a in zip(group["target_fraction"], group["converges_faster"], strict=True)
        )
        decided = group["converges_faster"].isin((SUPPORTED, CONTRADICTED, INCONCLUSIVE))
        rows.append({**values, "answers": answers, "depends": group.loc[decided, "converges_faster"].nunique() > 1})
    return pd.DataFrame(rows, columns=[*keys, "answers", "depends"])


def _arm_pairs(runs: pd.DataFrame, treatment: str, controls: Sequence[str], cell_fields: Sequence[str], how: Criteria):
    """(cell keys, control, treatment's runs, control's runs) for every cell and control present."""
    for keys, cell in stats.groups(runs, cell_fields):
        variants = dict(tuple(cell.groupby(how.variant_column, sort=False)))
        arm = variants.get(treatment)
        for control in controls:
            other = variants.get(control)
            if arm is not None and other is not None:
                yield keys, control, arm, other


def _check_arms(
    results: pd.DataFrame, treatment: str, controls: Sequence[str], cell_fields: Sequence[str], how: Criteria
) -> None:
    """Raises `UserInputError` for a missing column or a treatment or control that is not a variant of `results`."""
    needed = [how.run_column, how.variant_column, how.metric, *cell_fields, *how.pair_on, *how.held_equal]
    stats.check_columns(results, needed, "results")
    known = ", ".join(map(str, dict.fromkeys(results[how.variant_column])))
    check(
        treatment in set(results[how.variant_column]),
        f"treatment must be a value of results[{how.variant_column!r}] ({known}). Received: treatment={treatment!r}",
    )
    check(
        set(controls) <= set(results[how.variant_column]),
        f"controls must be values of results[{how.variant_column!r}] ({known}). Received: controls={tuple(controls)!r}",
    )


def _timed_runs(results: pd.DataFrame, curves: pd.DataFrame, cell_fields: Sequence[str], how: Criteria) -> pd.DataFrame:
    """`results` with every run's convergence figures (`convergence`) in place of any stale ones."""
    timing = convergence(
        results,
        curves,
        cell_fields=cell_fields,
        metric=how.curve_metric or how.metric,
        fraction=how.target_fraction,
        roughness_metric=how.roughness_metric,
        columns=how.columns,
    )
    timing["curve_area"] = timing[how.run_column].map(_curve_areas(curves, how.curve_metric or how.metric, how.columns))
    stale = [c for c in timing.columns if c != how.run_column and c in results.columns]  # e.g. from a results.csv
    return results.drop(columns=stale).merge(timing, on=how.run_column)


def _curve_areas(curves: pd.DataFrame, metric: str, columns: Columns) -> pd.Series:
    """Per run: the mean of `metric` over training (`curve_area`), a convergence measure without a threshold."""
    ordered = curves.sort_values([columns.run, columns.step])
    return ordered.groupby(columns.run, sort=False).apply(
        lambda run: curve_area(run[columns.step], run[metric]), include_groups=False
    )


def _comparison(arm: pd.DataFrame, other: pd.DataFrame, how: Criteria, settings: stats.Settings) -> dict:
    """The figures of one treatment-control row, before the answers (`_answers` adds them)."""
    columns = ("restricted_steps", how.metric, "roughness", "curve_area")
    figures = stats.compare_columns(arm, other, columns, pair_on=how.pair_on, settings=settings)
    speed, final, rough, area = (figures[c] for c in columns)
    row = {"pairing": _pairing(final, how.pair_on)}
    row["seeds"] = str(final["n"]) if final["pairing"] == "paired" else f"{final['n']} vs {final['n_other']}"
    row["target"] = float(arm["target"].iloc[0])
    row["reached"] = f"{int(arm['reached'].sum())}/{len(arm)} vs {int(other['reached'].sum())}/{len(other)}"
    row.update(_figures(speed, "steps", test=True))
    row.update(_figures(final, "metric", test=False))
    row["probability_of_improvement"] = final["probability_of_improvement"]
    row["poi_ci_low"], row["poi_ci_high"] = final["poi_ci_low"], final["poi_ci_high"]
    row["std_treatment"], row["std_control"] = final["std"], final["std_other"]
    row["variance_ratio"] = final["variance_ratio"]
    row["spread_p"] = final["spread_p"] if final["spread_status"] == OK else math.nan
    row.update(_figures(rough, "roughness", test=False))
    row.update(_figures(area, "area", test=True))
    row.update(_equivalence(arm, other, how, settings))
    row["_speed"], row["_spread"], row["_area"] = speed, final, area
    if how.held_equal:
        row["held_equal"] = _held_equal(pd.concat([arm, other]), how.held_equal)
    return row


def _equivalence(arm: pd.DataFrame, other: pd.DataFrame, how: Criteria, settings: stats.Settings) -> dict:
    """Equivalence within the margins of the final metric, the mean over training and the spread (paired only)."""
    rows = stats.pair_rows(arm, other, how.pair_on) if how.pair_on else None
    if rows is None:
        return dict.fromkeys(("metric_equivalent", "area_equivalent", "spread_equivalent"), "unpaired: not assessed")
    options = {"confidence": settings.confidence, "min_seeds": settings.min_seeds}
    a, b = arm.iloc[rows[0]], other.iloc[rows[1]]
    final = equivalence.paired_difference(a[how.metric], b[how.metric], how.margins.metric, **options)
    area = equivalence.paired_difference(a["curve_area"], b["curve_area"], how.margins.area, **options)
    spread = equivalence.spread_ratio(a[how.metric], b[how.metric], how.margins.spread, **options)
    return {
        "metric_equivalent": final["equivalence"],
        "area_equivalent": area["equivalence"],
        "sd_ratio": spread["spread_ratio"],
        "sd_ratio_ci_low": spread["spread_ratio_ci_low"],
        "sd_ratio_ci_high": spread["spread_ratio_ci_high"],
        "spread_equivalent": spread["spread_equivalence"],
    }


_VERDICT_COLUMNS = (
    "treatment", "control", "pairing", "seeds", "target", "reached",
    "steps_difference", "steps_sd", "steps_ci_low", "steps_ci_high", "steps_p", "steps_p_holm", "converges_faster",
    "area_difference", "area_sd", "area_ci_low", "area_ci_high", "area_p", "area_p_holm", "faster_by_area",
    "metric_difference", "metric_sd", "metric_ci_low", "metric_ci_high",
    "probability_of_improvement", "poi_ci_low", "poi_ci_high",
    "std_treatment", "std_control", "variance_ratio", "spread_p", "spread_p_holm", "varies_less",
    "roughness_difference", "roughness_sd", "roughness_ci_low", "roughness_ci_high",
    "metric_equivalent", "area_equivalent", "sd_ratio", "sd_ratio_ci_low", "sd_ratio_ci_high", "spread_equivalent",
    "verdict",
)  # fmt: skip


def _answers(rows: list[dict], cell_fields: list[str], alpha: float, held_equal: Sequence[str]) -> pd.DataFrame:
    """Holm over every test of the table, then each part's answer and the verdict."""
    m = len(rows)
    adjusted = stats.holm([r[p] for p in ("steps_p", "spread_p", "area_p") for r in rows])
    for i, row in enumerate(rows):
        speed, spread, area = row.pop("_speed"), row.pop("_spread"), row.pop("_area")
        row["steps_p_holm"], row["spread_p_holm"], row["area_p_holm"] = (
            adjusted[i],
            adjusted[m + i],
            adjusted[2 * m + i],
        )
        row["converges_faster"] = _answer(speed["difference_status"], row["steps_p_holm"], speed["difference"], alpha)
        row["varies_less"] = _answer(spread["spread_status"], row["spread_p_holm"], spread["spread_statistic"], alpha)
        # A larger mean over training is faster: the statistic is negated so that negative favours the treatment.
        row["faster_by_area"] = _answer(area["difference_status"], row["area_p_holm"], -area["difference"], alpha)
        row["verdict"] = _overall((row["converges_faster"], row["varies_less"]))
    columns = [*cell_fields, *_VERDICT_COLUMNS, *(["held_equal"] if held_equal else [])]
    return pd.DataFrame(rows, columns=columns)


def _answer(status: str, p_adjusted: float, statistic: float, alpha: float) -> str:
    """One part's answer: a side only with a valid test that rejects after adjustment; negative favours treatment."""
    if status != OK:
        return status
    if p_adjusted < alpha:
        return SUPPORTED if statistic < 0 else CONTRADICTED
    return INCONCLUSIVE


def _overall(parts: Sequence[str]) -> str:
    if all(p == SUPPORTED for p in parts):
        return SUPPORTED
    for answer in (CONTRADICTED, TOO_FEW_SEEDS, IDENTICAL, NO_SPREAD):
        if answer in parts:
            return answer
    return INCONCLUSIVE


def _figures(comparison: dict, prefix: str, *, test: bool) -> dict[str, float]:
    """difference, its standard deviation over pairs and its interval under `prefix`; with `test`, its p-value too
    (NaN unless ok)."""
    out = {
        f"{prefix}_difference": comparison["difference"],
        f"{prefix}_sd": comparison["difference_std"],
        f"{prefix}_ci_low": comparison["difference_ci_low"],
        f"{prefix}_ci_high": comparison["difference_ci_high"],
    }
    if test:
        out[f"{prefix}_p"] = comparison["difference_p"] if comparison["difference_status"] == OK else math.nan
    return out


def _pairing(comparison: dict, pair_on: Sequence[str]) -> str:
    if comparison["pairing"] == "unpaired":
        return "unpaired"
    unmatched = f" ({comparison['unmatched']} unmatched runs left out)" if comparison["unmatched"] else ""
    return f"paired on {', '.join(pair_on)}{unmatched}"


def _held_equal(runs: pd.DataFrame, fields: Sequence[str]) -> str:
    """'field=value' for each field both arms share, 'field DIFFERS (a, b)' otherwise."""
    parts = []
    for field in fields:
        values = list(dict.fromkeys(runs[field]))
        parts.append(f"{field}={values[0]}" if len(values) == 1 else f"{field} DIFFERS ({', '.join(map(str, values))})")
    return "; ".join(parts)


def _cell_ids(results: pd.DataFrame, cell_fields: Sequence[str]) -> np.ndarray:
    if not cell_fields:
        return np.zeros(len(results), dtype=int)
    return results.groupby(list(cell_fields), sort=False, dropna=False).ngroup().to_numpy()


__all__ = [
    "CONTRADICTED",
    "INCONCLUSIVE",
    "SUPPORTED",
    "TARGET_FRACTIONS",
    "Columns",
    "Criteria",
    "convergence",
    "curve_area",
    "depends_on_target",
    "target_sensitivity",
    "verdict",
]
