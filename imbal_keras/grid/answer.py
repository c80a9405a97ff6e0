"""The answer to a grid's question over the whole run, in numbers and in plain sentences.

For every comparison of the question (the treatment strategy's variants against each of the control strategy's,
per cell): the verdict row (`verdict.verdict`), the paired difference of the metric and the ratio of spreads at
every evaluation with simultaneous bands (`curves`), the speed answer at several targets
(`verdict.target_sensitivity`), and how many seeds the grid's own noise calls for (`power`). Only the runs that
vary every training seed together take part (`sgd_runs`); runs that hold one seed fixed measure the spread by
source instead.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from imbal_keras.grid import curves as curves_lib
from imbal_keras.grid import equivalence, power, stats, sweep
from imbal_keras.grid import verdict as verdict_lib

AUPRC = "test_average_precision"
# Training seeds that `sgd_runs` expects to follow a run's `seed`.
_TRAINING_SEEDS = ("init_seed", "order_seed")


@dataclasses.dataclass(frozen=True)
class Setup:
    """How a grid's question is answered.

    Attributes:
      metric: the metric's column (final value and curve); a lower-is-better one is answered on its negative
        (`oriented`).
      higher_is_better: the metric's direction; None infers it from the name (`sweep.higher_is_better`).
      roughness_metric: the curve whose roughness is compared.
      pair_on: the columns identifying a seed shared across variants.
      held_equal: columns reported as held equal between two arms, or as differing.
      margins: the equivalence margins.
      target_fraction: the convergence target of the verdict, as a fraction of the cell's best mean curve.
      published: (strategy, figure) of a published result the ranking is compared with (`sweep.Question`).
      published_source: where it comes from.
    """

    metric: str = AUPRC
    higher_is_better: bool | None = None
    roughness_metric: str = "validation_average_precision"
    pair_on: Sequence[str] = stats.SEED_SOURCES
    held_equal: Sequence[str] = ()
    margins: equivalence.Margins = equivalence.Margins()
    target_fraction: float = 0.9
    published: tuple[tuple[str, float], ...] = ()
    published_source: str = ""

    def larger_is_better(self) -> bool:
        """The metric's direction: `higher_is_better`, or inferred from the metric's name."""
        return sweep.higher_is_better(self.metric) if self.higher_is_better is None else self.higher_is_better


@dataclasses.dataclass(frozen=True)
class Comparison:
    """One treatment variant against one control variant in one cell, over the whole run.

    Attributes:
      cell: the cell's field values.
      row: the verdict row.
      difference: treatment - control at every evaluation, with its simultaneous band.
      spread: sd(treatment) / sd(control) at every evaluation, with its simultaneous band.
      targets: the speed answers at each target ("80%: supported; 90%: inconclusive").
      depends_on_target: whether those answers differ.
      control_steps: the control's mean steps to the verdict's target (restricted mean).
      sensitivity: the rows of `verdict.target_sensitivity` for this cell and control, one per target.
    """

    cell: Mapping[str, object]
    row: pd.Series
    difference: curves_lib.Band
    spread: curves_lib.Band
    targets: str
    depends_on_target: bool
    control_steps: float
    sensitivity: pd.DataFrame


def sgd_runs(results: pd.DataFrame) -> np.ndarray:
    """Per run: whether its training seeds all follow its `seed` (no seed held fixed), the runs a verdict pairs.

    A grid without `init_seed` / `order_seed` columns, or without `seed`, has only such runs.
    """
    keep = np.ones(len(results), dtype=bool)
    if "seed" not in results.columns:
        return keep
    for column in _TRAINING_SEEDS:
        if column in results.columns:
            keep &= (results[column] == results["seed"]).to_numpy()
    return keep


def oriented(table: pd.DataFrame, setup: Setup) -> pd.DataFrame:
    """`table` with the setup's metric negated when lower is better (`Setup.larger_is_better`)."""
    if setup.larger_is_better() or setup.metric not in table:
        return table
    return table.assign(**{setup.metric: -table[setup.metric]})


def with_metric(results: pd.DataFrame, curve_table: pd.DataFrame, question_metric: str, column: str) -> pd.DataFrame:
    """`results` holding the question's metric `column`: as recorded, or each run's last value of a curves.csv
    column.

    Raises:
      UserInputError: neither table has the column; the message names --metric (`question_metric`), the value and
        the columns there are.
    """
    sweep.check_metric_column(column, [*results.columns, *curve_table.columns], given=question_metric)
    if column in results.columns:
        return results
    last = curve_table.sort_values("step").groupby("run_name", sort=False)[column].last()
    return results.assign(**{column: results["run_name"].map(last)})


def families(results: pd.DataFrame, question: sweep.Question) -> list[tuple[str, list[str]]]:
    """Per verdict family of the question (`Question.families`): a treatment variant and its control variants."""
    strategy_of = dict(zip(results["strategy_variant"], results["strategy"], strict=True))
    variants = {}
    for variant, name in strategy_of.items():
        variants.setdefault(name, []).append(variant)
    out = []
    for treatment, controls in question.families(list(variants)):
        control_variants = [v for c in controls for v in variants[c]]
        out += [(t, control_variants) for t in variants[treatment]]
    return out


def verdict_tables(
    results: pd.DataFrame, curve_table: pd.DataFrame, question: sweep.Question, cell_fields: Sequence[str], setup: Setup
) -> list[pd.DataFrame]:
    """One verdict table per treatment variant of each family (one Holm family each), on the `sgd_runs`."""
    if setup.metric not in curve_table:
        return []  # a results.csv column without a curve: nothing to answer over training
    results = oriented(results[sgd_runs(results)], setup)
    curve_table = oriented(curve_table, setup)
    return [
        verdict_lib.verdict(
            results, curve_table, treatment=t, controls=controls, cell_fields=cell_fields, **_criteria(setup)
        )  # fmt: skip
        for t, controls in families(results, question)
    ]


def compare_over_training(
    results: pd.DataFrame, curve_table: pd.DataFrame, question: sweep.Question, cell_fields: Sequence[str], setup: Setup
) -> tuple[list[pd.DataFrame], list[Comparison]]:
    """The verdict tables and, per row, the comparison over the whole run.

    Returns:
      (verdict tables, comparisons in table order).
    """
    tables = verdict_tables(results, curve_table, question, cell_fields, setup)
    runs = oriented(results[sgd_runs(results)], setup)
    curve_table = oriented(curve_table, setup)
    comparisons = []
    for table in tables:
        treatment = table["treatment"].iloc[0]
        sensitivity = verdict_lib.target_sensitivity(
            runs, curve_table, treatment=treatment, controls=list(dict.fromkeys(table["control"])),
            cell_fields=cell_fields,
            **_criteria(setup),
        )  # fmt: skip
        keys = [*cell_fields, "control"]
        targets = verdict_lib.depends_on_target(sensitivity, keys).set_index(keys)
        for _, row in table.iterrows():
            target = targets.loc[tuple(row[k] for k in keys) if len(keys) > 1 else row["control"]]
            mine = np.logical_and.reduce([sensitivity[k] == row[k] for k in keys])
            comparison = _comparison(runs, curve_table, row, target, cell_fields, setup)
            comparisons.append(dataclasses.replace(comparison, sensitivity=sensitivity[mine]))
    return tables, comparisons


def _comparison(
    runs: pd.DataFrame,
    curve_table: pd.DataFrame,
    row: pd.Series,
    target: pd.Series,
    cell_fields: Sequence[str],
    setup: Setup,
) -> Comparison:
    cell = {f: row[f] for f in cell_fields}
    in_cell = np.logical_and.reduce([runs[f] == v for f, v in cell.items()] or [np.ones(len(runs), dtype=bool)])
    arm = runs[in_cell & (runs["strategy_variant"] == row["treatment"]).to_numpy()]
    other = runs[in_cell & (runs["strategy_variant"] == row["control"]).to_numpy()]
    steps, a, b = curves_lib.paired_curves(curve_table, arm, other, setup.metric, pair_on=setup.pair_on)
    control_steps = float(other["restricted_steps"].mean()) if "restricted_steps" in other else math.nan
    return Comparison(
        cell=cell,
        row=row,
        difference=curves_lib.difference_band(a, b, steps),
        spread=curves_lib.spread_band(a, b, steps),
        targets=target["answers"],
        depends_on_target=bool(target["depends"]),
        control_steps=control_steps,
        sensitivity=pd.DataFrame(),
    )


def _criteria(setup: Setup) -> dict:
    return {
        "pair_on": setup.pair_on,
        "metric": setup.metric,
        "roughness_metric": setup.roughness_metric,
        "target_fraction": setup.target_fraction,
        "held_equal": setup.held_equal,
        "margins": setup.margins,
    }


def short_labels(variants: Sequence[str]) -> dict[str, str]:
    """A short label per variant: the strategy name when it has one variant, else its initials and a number."""
    by_strategy: dict[str, list[str]] = {}
    for variant in dict.fromkeys(variants):
        by_strategy.setdefault(variant.split("[")[0], []).append(variant)
    labels = {}
    for strategy, members in by_strategy.items():
        if len(members) == 1:
            labels[members[0]] = strategy
            continue
        initials = "".join(word[0] for word in strategy.split("_"))
        labels.update({v: f"{initials}{i}" for i, v in enumerate(members, start=1)})
    return labels


def sentences(comparison: Comparison, labels: Mapping[str, str], setup: Setup) -> str:
    """The comparison in a few plain sentences with numbers: over training, by area, by target, at the end."""
    row = comparison.row
    t, c = labels[row["treatment"]], labels[row["control"]]
    cell = ", ".join(f"{k}={v}" for k, v in comparison.cell.items())
    metric = setup.metric.removeprefix("test_").replace("_", " ")
    parts = [f"{cell + ': ' if cell else ''}{t} against {c} ({row['seeds']} paired seeds)."]
    parts.append(
        f"Test {metric} over training: "
        + curves_lib.describe_when(
            comparison.difference, lower=f"{t} lower", higher=f"{t} higher", same="no difference shown"
        )
        + "."
    )
    parts.append(
        "Spread across seeds (sd ratio): "
        + curves_lib.describe_when(
            comparison.spread, lower=f"{t} varies less", higher=f"{t} varies more", same="no difference shown"
        )  # fmt: skip
        + "."
    )
    parts.append(
        f"Mean {metric} over training, {t} - {c}: {_interval(row, 'area')} ({row['faster_by_area']}; "
        f"{_equivalence_text(row['area_equivalent'], setup.margins.area)})."
    )
    depends = "depends on the target" if comparison.depends_on_target else "does not depend on the target"
    parts.append(
        f"Steps to {setup.target_fraction:.0%} of the best mean curve, {t} - {c}: {_interval(row, 'steps')} "
        f"({row['converges_faster']}); the answer {depends} ({comparison.targets})."
    )
    parts.append(
        f"Final {metric}, {t} - {c}: {_interval(row, 'metric')} "
        f"({_equivalence_text(row['metric_equivalent'], setup.margins.metric)}); spread of the final value, sd "
        f"ratio {row['sd_ratio']:.3g} [{row['sd_ratio_ci_low']:.3g}, {row['sd_ratio_ci_high']:.3g}] "
        f"({row['varies_less']}; {_equivalence_text(row['spread_equivalent'], setup.margins.spread, ratio=True)})."
    )
    return " ".join(parts)


def _interval(row: pd.Series, prefix: str) -> str:
    return f"{row[f'{prefix}_difference']:.3g} [{row[f'{prefix}_ci_low']:.3g}, {row[f'{prefix}_ci_high']:.3g}]"


def _equivalence_text(answer: str, margin: float, *, ratio: bool = False) -> str:
    region = f"a factor {margin:g}" if ratio else f"+-{margin:g}"
    if answer in (equivalence.EQUIVALENT, equivalence.NOT_SHOWN):
        return f"{answer} within {region}"
    return f"equivalence: {answer}"


def power_table(comparisons: Sequence[Comparison], labels: Mapping[str, str], setup: Setup) -> pd.DataFrame:
    """From the grid's measured noise: the effects it detects with 80% probability, and the seeds an effect needs.

    Per comparison and figure (final metric, mean over training, steps to target): the pairs, the standard
    deviation of the paired differences, the smallest effect detected with 80% probability at this grid's
    family size (3 tests per row of its verdict table), and the seeds needed for a reference effect: the
    equivalence margin for the metric figures, a twofold speed-up (half the control's mean steps) for steps.
    """
    tests = _family_sizes(comparisons)
    rows = []
    for comparison in comparisons:
        row = comparison.row
        references = {
            "metric": setup.margins.metric,
            "area": setup.margins.area,
            "steps": comparison.control_steps / 2,
        }
        for figure, effect in references.items():
            sd, n, m = float(row[f"{figure}_sd"]), int(str(row["seeds"]).split()[0]), tests[row["treatment"]]
            rows.append(
                {
                    **comparison.cell,
                    "comparison": f"{labels[row['treatment']]} vs {labels[row['control']]}",
                    "figure": figure,
                    "seeds": n,
                    "tests": m,
                    "sd_of_differences": sd,
                    "detectable_at_80%": power.detectable_effect(sd, n, tests=m),
                    "reference_effect": effect,
                    "seeds_for_reference": power.seeds_needed(effect, sd, tests=m),
                }
            )
    return pd.DataFrame(rows)


def _family_sizes(comparisons: Sequence[Comparison]) -> dict[str, int]:
    """Tests per verdict table (3 per row), keyed by its treatment."""
    counts: dict[str, int] = {}
    for comparison in comparisons:
        counts[comparison.row["treatment"]] = counts.get(comparison.row["treatment"], 0) + 3
    return counts


def band_frame(comparisons: Sequence[Comparison], labels: Mapping[str, str]) -> pd.DataFrame:
    """Every comparison's bands, long format: cell fields, comparison, figure (difference or sd_ratio), step,
    estimate, low, high, decided (-1 / +1 where the answer names the step, 0 elsewhere), status."""
    frames = []
    for comparison in comparisons:
        name = f"{labels[comparison.row['treatment']]} vs {labels[comparison.row['control']]}"
        for figure, band in (("difference", comparison.difference), ("sd_ratio", comparison.spread)):
            frame = pd.DataFrame(
                {"step": band.steps, "estimate": band.estimate, "low": band.low, "high": band.high,
                 "decided": band.side()}
            )  # fmt: skip
            frames.append(frame.assign(**comparison.cell, comparison=name, figure=figure, status=band.status))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


__all__ = [
    "AUPRC",
    "Comparison",
    "Setup",
    "families",
    "oriented",
    "band_frame",
    "compare_over_training",
    "power_table",
    "sentences",
    "sgd_runs",
    "short_labels",
    "verdict_tables",
    "with_metric",
]
