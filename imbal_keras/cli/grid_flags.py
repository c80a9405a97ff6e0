"""Flags that only grids use: presets, execution (workers, Ray), shards and merging.

A command line is a grid when a preset is named, any setting lists several values (see `experiment_flags`), or
a shard or merge is asked for. `to_spec()` turns it into a `sweep.GridSpec`, `execution()` into the keyword
arguments of `runner.run_grid`.
"""

from __future__ import annotations

import dataclasses

from absl import flags

from imbal_keras.cli import experiment_flags
from imbal_keras.errors import UserInputError, check
from imbal_keras.grid import launch, presets, sweep

_PRESET = flags.DEFINE_enum(
    "preset",
    None,
    list(presets.PRESETS),
    "A named grid; settings given on the command line override its values. "
    + " ".join(f"{name}: {p.description}" for name, p in presets.PRESETS.items()),
)
_WORKERS = flags.DEFINE_integer("workers", 1, "Grids: local worker processes (--executor=local).")
_EXECUTOR = flags.DEFINE_enum(
    "executor",
    "local",
    list(launch.EXECUTORS),
    "Grids: local: a pool of --workers processes; inline: this process, one run at a time; ray: Ray tasks.",
)
_WARM = flags.DEFINE_boolean(
    "warm",
    True,
    "Grids: workers keep compiled models between runs of the same shape and start each run over from its own "
    "seeds (same results, less tracing; docs/grids.md). --nowarm builds every run anew.",
)
_SIDE_BY_SIDE = flags.DEFINE_integer(
    "side_by_side",
    sweep.DEFAULT_PACK,
    "Grids: runs of equal shapes (they may differ in seeds, data seeds and strategies) train together in one "
    "compiled step, up to this many (one-input models without untrained state such as Dropout, strategies "
    "without training callbacks; others run one by one and the log says why; results equal to float rounding, "
    "docs/grids.md). 1 runs every run on its own.",
)
_RAY_ADDRESS = flags.DEFINE_string(
    "ray_address", "", "Grids: Ray cluster to run on (--executor=ray): 'auto', 'ray://HOST:10001', ...; empty = local."
)
_SHARD = flags.DEFINE_string("shard", "0/1", "Grids: run only slice i of n (i/n, 0 <= i < n), e.g. one array-job task.")
_MERGE = flags.DEFINE_bool(
    "merge",
    False,
    "Grids: run nothing; build the tables and report of the grid in --output_dir from its finished runs "
    "(after all shards are done), first copying finished runs from --merge_from.",
)
DRY_RUN = flags.DEFINE_bool(
    "dry_run",
    False,
    "Check the command and print what it would run (the run's config, or the grid's number of runs and their "
    "names), then stop; nothing is trained or written.",
)
_MERGE_FROM = flags.DEFINE_list(
    "merge_from",
    [],
    "With --merge: other grid folders (e.g. per-shard folders on local disks) to copy runs from; --output_dir may "
    "be a new folder, which then takes their grid.",
)

_COMPARE = flags.DEFINE_string(
    "compare",
    None,
    "Grids: the comparisons the report answers: all:REFERENCE (every strategy against REFERENCE), TREATMENT:CONTROL "
    "or TREATMENT:CONTROL1,CONTROL2, or pairs (every pair). Default: a preset's question, else all:none.",
)
_METRIC = flags.DEFINE_string(
    "metric",
    None,
    "Grids: the metric the report answers on, any column of results.csv or curves.csv (test_balanced_accuracy; a "
    "bare recorded metric means its test value; log_loss and brier are lower-is-better); any other column needs "
    "its direction, COLUMN:max or COLUMN:min (my_col:max). Default: a preset's, else AUPRC for K = 2 and balanced "
    "accuracy for K > 2.",
)
_METRIC_MARGIN = flags.DEFINE_float(
    "metric_margin",
    0.02,
    "Grids: the report calls the final metric of two strategies equivalent when two one-sided tests put their "
    "paired difference within +-this (absolute; docs/statistics.md).",
)
_AREA_MARGIN = flags.DEFINE_float(
    "area_margin", 0.02, "Grids: the same margin for the mean metric over training (absolute)."
)
_SPREAD_MARGIN = flags.DEFINE_float(
    "spread_margin",
    1.5,
    "Grids: the spread across seeds of two strategies is called equivalent when the ratio of their standard "
    "deviations lies within (1/this, this).",
)

flags.register_validator("workers", lambda v: v > 0, message="--workers must be > 0 (local worker processes)")
flags.register_validator("metric_margin", lambda v: v > 0, message="--metric_margin must be > 0")
flags.register_validator("area_margin", lambda v: v > 0, message="--area_margin must be > 0")
flags.register_validator("spread_margin", lambda v: v > 1, message="--spread_margin must be > 1 (a factor)")
flags.register_validator(
    "side_by_side", lambda v: v >= 1, message="--side_by_side must be >= 1 (runs per pack; 1 turns packs off)"
)
flags.register_multi_flags_validator(
    ["merge", "merge_from"],
    lambda values: values["merge"] or not values["merge_from"],
    message="--merge_from applies only with --merge (which runs nothing and copies finished runs from those "
    "folders into --output_dir); add --merge, or leave --merge_from out",
)
flags.register_validator(
    "shard", lambda v: _parses(sweep.parse_shard, v), message="--shard must be i/n with 0 <= i < n (e.g. 0/4)"
)


def _parses(parse, value) -> bool:
    try:
        parse(value)
    except UserInputError:
        return False
    return True


def is_grid() -> bool:
    """Whether the command line asks for a grid rather than one run."""
    _, axes = experiment_flags.settings()
    return bool(_PRESET.value or axes or _MERGE.value or flags.FLAGS["shard"].present)


def grid_dir() -> str:
    """The grid folder: --output_dir if given, else `grids/<preset>` (or `grids/grid`)."""
    if flags.FLAGS["output_dir"].present:
        return flags.FLAGS.output_dir
    return f"grids/{_PRESET.value or 'grid'}"


def to_spec() -> sweep.GridSpec:
    """The grid the command line describes (not yet validated: `sweep.validate` does that).

    Raises:
      UserInputError: --run_name given, a bad value.
    """
    check(not flags.FLAGS["run_name"].present, "--run_name is set per run by the grid; leave it out")
    single, axes = experiment_flags.settings()
    single.pop("output_dir", None)
    if _PRESET.value:
        spec = presets.spec_from_preset(_PRESET.value, axes=axes, **single)
    else:
        spec = sweep.make_spec(single, axes)
    return _with_question(spec)


def _with_question(spec: sweep.GridSpec) -> sweep.GridSpec:
    """The spec with the comparisons, metric and equivalence margins of the command line in its question.

    Raises:
      UserInputError: a bad --compare or --metric, or a --compare naming a strategy the grid does not run.
    """
    changes = {"metric_margin": _METRIC_MARGIN.value, "area_margin": _AREA_MARGIN.value}
    changes["spread_margin"] = _SPREAD_MARGIN.value
    if _COMPARE.value is not None:
        changes["compare"] = _COMPARE.value
    if _METRIC.value is not None:
        changes["metric"] = _METRIC.value
    question = dataclasses.replace(spec.question, **changes)
    if _COMPARE.value is not None:
        sweep.check_question(question, spec.axes.get("strategy", (spec.base.strategy.name,)))
    return dataclasses.replace(spec, question=question)


def execution() -> dict:
    """Keyword arguments of `runner.run_grid` (the fields of `runner.Execution`): executor, workers, Ray address,
    shard, warm runs and packs."""
    index, count = sweep.parse_shard(_SHARD.value)
    return {
        "executor": _EXECUTOR.value,
        "workers": _WORKERS.value,
        "ray_address": _RAY_ADDRESS.value,
        "shard_index": index,
        "shard_count": count,
        "warm": _WARM.value,
        "side_by_side": _SIDE_BY_SIDE.value,
    }


def merge_sources() -> list[str] | None:
    """The folders to merge from (possibly none) if --merge is given, else None.

    Raises:
      UserInputError: --compare or --metric with --merge (a merge reports the question the grid was run with).
    """
    if not _MERGE.value:
        return None
    for flag in (_COMPARE, _METRIC):
        check(
            flag.value is None,
            f"--{flag.name} cannot be changed by --merge, which reports the grid's own question; rerun the grid's "
            f"command with --{flag.name} instead (its finished runs are skipped). Received: --{flag.name}={flag.value}",
        )
    return list(_MERGE_FROM.value)


__all__ = [
    "DRY_RUN",
    "execution",
    "grid_dir",
    "is_grid",
    "merge_sources",
    "to_spec",
]
