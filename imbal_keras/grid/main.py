"""What the command line does for a grid: run it (or merge shards' runs into it), then write its report.

`run_experiment.py` calls `run_and_report`; `imbal_keras.compare` uses the same two steps (`runner.run_grid`,
then `write_report`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from imbal_keras import runs
from imbal_keras.errors import UserInputError
from imbal_keras.grid import lock, report, runner, sweep


def write_report(grid_dir: str, log: Callable[[str], None] = print) -> list[str]:
    """Writes the tables and reports of the grid in `grid_dir` (`report.build`) and logs their paths.

    Returns:
      The paths written.

    Raises:
      UserInputError: the disk is full or a file-size limit is reached while writing (one line saying which
        runs are complete and the command that finishes the tables; each table is replaced whole or not at all).
    """
    try:
        paths = report.build(grid_dir)
    except Exception as e:
        reason = runs.storage_fault(e)
        if not reason:
            raise
        finished = len(runs.finished_runs(sweep.runs_dir(grid_dir)))
        raise UserInputError(
            f"output_dir={grid_dir!r}: {reason} while writing the grid's tables; its {finished} finished "
            f"runs are complete. Free space, then finish the tables with: imbal-keras --merge --output_dir={grid_dir}",
            argument="output_dir",
        ) from None
    for path in paths:
        log(f"wrote {path}")
    return paths


def run_and_report(
    spec: sweep.GridSpec | None,
    grid_dir: str,
    *,
    merge_from: Sequence[str] | None = None,
    log: Callable[[str], None] = print,
    **execution: Any,
) -> list[str]:
    """Runs a grid (or merges shards' runs into it), then writes its report.

    Args:
      spec: the grid; None with `merge_from` reads it from `grid_dir`.
      grid_dir: the grid folder.
      merge_from: run nothing; copy finished runs from these grid folders (possibly none) into `grid_dir`, which
        may be a new folder (it then takes the first source's grid).
      log: where progress lines go.
      **execution: the fields of `runner.Execution` (executor, workers, ray_address, shard_index, shard_count,
        warm, side_by_side).

    Returns:
      The paths of the tables and reports written (none after a shard that is not the whole grid).

    Raises:
      UserInputError: bad input, a grid folder in use, a full disk, or runs that failed (after the others
        finished: rerun to retry them).
      runner.Interrupted: Ctrl-C.
    """
    if merge_from is not None:
        with lock.GridLock(grid_dir, log=log):
            copied = sweep.merge(merge_from, grid_dir)
        spec = sweep.load_spec(grid_dir)
        log(f"Copied {copied} finished runs into {grid_dir}")
    else:
        outcome = runner.run_grid(spec, grid_dir, log=log, **execution)
        if outcome.failed:
            raise UserInputError(
                f"{len(outcome.failed)} of {outcome.total} runs failed (see the FAILED lines); "
                "rerun the same command to retry them"
            )
        if execution.get("shard_count", 1) > 1:
            log(f"Shard done. When every shard is, rerun the command with --merge --output_dir={grid_dir}")
            return []
    expected = {c.output.run_name for c in sweep.expand(spec, grid_dir)}
    missing = len(expected - set(runs.finished_runs(sweep.runs_dir(grid_dir))))
    if missing:
        log(f"{missing} runs of the grid are not finished yet; the report covers the finished ones")
    paths = write_report(grid_dir, log)
    log(f"TensorBoard (HParams tab): tensorboard --logdir {grid_dir}")
    return paths


__all__ = ["run_and_report", "write_report"]
