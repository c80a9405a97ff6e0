"""What a command would do, as text, after checking it: nothing is loaded, run or written (`--dry_run`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from imbal_keras.config import ExperimentConfig
from imbal_keras.grid import launch, sweep
from imbal_keras.grid.runner import Execution


def describe_run(config: ExperimentConfig) -> str:
    """What one run would do, after validating its config.

    Raises:
      UserInputError: a bad config.
    """
    config.validate()
    name = config.output.run_name or config.default_run_name()
    return f"1 run: {os.path.join(config.output.output_dir, name)}\n{config.to_json()}"


def describe_grid(
    spec: sweep.GridSpec | None, grid_dir: str, *, merge_from: Sequence[str] | None = None, **execution: Any
) -> str:
    """What a grid command would do, after validating it. A dry run contacts no cluster and runs nothing.

    Args:
      spec: the grid; None with `merge_from` reads it from `grid_dir`.
      grid_dir: the grid folder.
      merge_from: describe a merge of finished runs from these grid folders instead of a run.
      **execution: the fields of `runner.Execution`.

    Raises:
      UserInputError: a bad spec or execution setting, or (for a merge) a folder without a grid.
    """
    how = Execution(**execution)
    launch.check_execution(how.executor, how.workers)
    if merge_from is not None:
        sweep.load_spec(grid_dir)
        return f"merge: copy finished runs of {', '.join(merge_from) or 'no other folder'} into {grid_dir}, then report"
    sweep.validate(spec)
    configs = sweep.shard(sweep.expand(spec, grid_dir), how.shard_index, how.shard_count)
    packs = len(sweep.packs(configs, how.side_by_side, workers=how.worker_count))
    tasks = f", {packs} tasks with seeds side by side" if packs < len(configs) else ""
    lines = [f"{len(configs)} runs into {grid_dir} ({how.executor}, {how.workers} worker(s){tasks}); axes:"]
    lines += [f"  {name}: {_values(values)}" for name, values in spec.ordered_axes().items()]
    lines.append("runs:")
    lines += [f"  {c.output.run_name}" for c in configs[:5]]
    if len(configs) > 5:
        lines.append(f"  ... and {len(configs) - 5} more")
    return "\n".join(lines)


# Values of an axis shown in full up to this many; longer axes show their first and last few and their count.
_SHOWN_VALUES = 8


def _values(values) -> str:
    """An axis's values, readable however many there are: `0,1,2,...,9998,9999 (10000 values)`."""
    text = [str(v) for v in values]
    if len(text) > _SHOWN_VALUES:
        text = [*text[:3], "...", *text[-2:]]
        return f"{','.join(text)} ({len(values)} values)"
    return ",".join(text)


__all__ = ["describe_grid", "describe_run"]
