"""Flags of `run_grid.py`: one list flag per grid axis, presets, execution, shards and merging.

Every single-value flag of `run_experiment.py` (from `experiment_flags`) works here too and fixes that field for
every run (`--steps=500`); for an axis field it is a one-value axis (`--strategy=upsample` = `--strategies=upsample`).
`to_spec()` turns the parsed command line into a `grid.GridSpec`.
"""

from __future__ import annotations

from absl import flags

from flags import experiment_flags
from imbal_keras import grid
from imbal_keras.config import ExperimentConfig
from imbal_keras.errors import UserInputError, check

_AXIS_HELP = {
    "seeds": "Seeds: one number N means seeds 0..N-1; two or more numbers are the seeds themselves.",
    "strategies": "Strategies (registered names: see --strategy).",
}
_AXIS_FLAGS = {
    name: flags.DEFINE_list(name, None, _AXIS_HELP.get(name, f"Grid axis: values of --{field}, comma-separated."))
    for name, field in grid.AXES.items()
}
_PRESET = flags.DEFINE_enum(
    "preset",
    None,
    list(grid.PRESETS),
    "A named grid; axis and field flags override its values. "
    + " ".join(f"{name}: {p.description}" for name, p in grid.PRESETS.items()),
)
_WORKERS = flags.DEFINE_integer("workers", 1, "Local worker processes (--executor=local).")
_EXECUTOR = flags.DEFINE_enum(
    "executor",
    "local",
    list(grid.EXECUTORS),
    "local: a pool of --workers processes; inline: this process, one run at a time; ray: Ray tasks.",
)
_RAY_ADDRESS = flags.DEFINE_string(
    "ray_address", "", "Ray cluster to run on (--executor=ray): 'auto', 'ray://HOST:10001', ...; empty = local Ray."
)
_SHARD = flags.DEFINE_string("shard", "0/1", "Run only slice i of n (i/n, 0 <= i < n), e.g. one array-job task.")
_MERGE = flags.DEFINE_bool(
    "merge",
    False,
    "Run nothing: build results, summary and report of the grid in --output_dir from its finished runs "
    "(after all shards are done), first copying finished runs from --merge_from.",
)
_MERGE_FROM = flags.DEFINE_list(
    "merge_from", [], "With --merge: other grid folders (e.g. per-shard folders on local disks) to copy runs from."
)

flags.register_validator("workers", lambda v: v > 0, message="--workers must be > 0 (local worker processes)")
flags.register_validator(
    "shard", lambda v: _parses(grid.parse_shard, v), message="--shard must be i/n with 0 <= i < n (e.g. 0/4)"
)


def _parses(parse, value) -> bool:
    try:
        parse(value)
    except UserInputError:
        return False
    return True


def grid_dir() -> str:
    """The grid folder: --output_dir if given, else `grids/<preset>` (or `grids/grid`)."""
    if flags.FLAGS["output_dir"].present:
        return flags.FLAGS.output_dir
    return f"grids/{_PRESET.value or 'grid'}"


def to_spec() -> grid.GridSpec:
    """The grid the command line describes (not yet validated: `grid.validate` does that).

    Raises:
      UserInputError: --run_name given, an axis flag together with its single-value flag, a non-numeric entry
        in a numeric axis, an unknown preset.
    """
    check(not flags.FLAGS["run_name"].present, "--run_name is set per run by the grid; leave it out")
    config = experiment_flags.to_config()
    explicit = {
        name: getattr(config, name)
        for name in config.to_dict()
        if flags.FLAGS[name].present and name not in ("output_dir", "run_name")
    }
    axes = {}
    for name, field in grid.AXES.items():
        values = _AXIS_FLAGS[name].value
        if values is not None:
            check(field not in explicit, f"--{name} and --{field} are both given; use one of them")
            axes[field] = _axis_values(name, field, values)
        elif field in explicit:
            axes[field] = (explicit.pop(field),)
    if _PRESET.value:
        return grid.spec_from_preset(_PRESET.value, axes=axes, **explicit)
    return grid.GridSpec(axes=axes, base=ExperimentConfig(**explicit))


def _axis_values(name: str, field: str, values: list[str]) -> tuple:
    kind = type(getattr(ExperimentConfig(), field))
    try:
        parsed = tuple(kind(v) for v in values)
    except ValueError:
        raise UserInputError(
            f"--{name} must be a comma-separated list of {kind.__name__} values. Received: {name}={','.join(values)}"
        ) from None
    if name == "seeds" and len(parsed) == 1:
        check(parsed[0] > 0, f"--seeds as a count must be > 0. Received: seeds={parsed[0]}")
        return tuple(range(parsed[0]))
    return parsed


def execution() -> dict:
    """Keyword arguments of `grid.run_grid` for executor, workers, Ray address and shard."""
    index, count = grid.parse_shard(_SHARD.value)
    return {
        "executor": _EXECUTOR.value,
        "workers": _WORKERS.value,
        "ray_address": _RAY_ADDRESS.value,
        "shard_index": index,
        "shard_count": count,
    }


def merge_sources() -> list[str] | None:
    """The folders to merge from (possibly none) if --merge is given, else None."""
    return list(_MERGE_FROM.value) if _MERGE.value else None
