"""Running a grid: the unfinished runs of a spec (or of one shard of it), packed, launched and reported on.

`sweep` computes which runs a grid has; `run_grid` checks everything, takes the grid folder's lock
(`lock.GridLock`: one process per grid, or per shard), prepares the folder, skips what finished, packs the rest
(`sweep.packs`), hands the packs to an executor (`launch.execute`) with the grid's worker task
(`tasks.GridTask`) and prints progress (`progress.Progress`). Ctrl-C ends it with `Interrupted`, saying how many
runs finished; finished runs stay, runs in flight leave nothing but hidden staging folders.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

from imbal_keras import runs
from imbal_keras.grid import launch, lock, progress, sweep, tasks, worker


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped a grid. `str(self)` is the one line to show, saying how many runs finished.

    Attributes:
      finished: runs of the grid (or shard) finished, including those found finished at the start.
      total: runs of the grid (or shard).
    """

    def __init__(self, finished: int, total: int):
        super().__init__(f"interrupted: {finished} of {total} runs finished; rerun the same command to resume")
        self.finished = finished
        self.total = total


@dataclasses.dataclass(frozen=True)
class Execution:
    """How a grid's runs are executed (`run_grid`'s keyword arguments).

    Attributes:
      executor: `local` (a pool of `workers` processes, forked from a server that imported TensorFlow once
        (`launch.worker_context`), each running many runs with max(1, cores // workers) threads), `inline` (this
        process, one run at a time) or `ray` (Ray tasks on the cluster at `ray_address`, one CPU each).
      workers: local worker processes.
      ray_address: Ray cluster address (`auto`, `ray://host:10001`, ...); empty starts a local Ray instance.
      shard_index: the shard of the grid to run, in [0, shard_count).
      shard_count: shards the grid is cut into (`sweep.shard`).
      warm: workers keep compiled models between runs (`imbal_keras.training.warm`); False builds every run anew.
      side_by_side: runs of equal shapes (they may differ in their seeds, data seeds and strategies) train
        together in one compiled step, up to this many (`imbal_keras.training.side_by_side`); 1 runs every run
        on its own.
    """

    executor: str = "local"
    workers: int = 1
    ray_address: str = ""
    shard_index: int = 0
    shard_count: int = 1
    warm: bool = True
    side_by_side: int = sweep.DEFAULT_PACK

    def check(self) -> None:
        """Raises `UserInputError` for a bad executor, worker count or pack size."""
        launch.check_execution(self.executor, self.workers)
        sweep.packs([], self.side_by_side)

    @property
    def worker_count(self) -> int:
        """Workers running at once: `workers` for the local pool, else 1 as the progress lines count them."""
        return self.workers if self.executor == "local" else 1


@dataclasses.dataclass(frozen=True)
class GridOutcome:
    """What `run_grid` did.

    Attributes:
      total: runs in this grid (or shard).
      skipped: runs found finished and not rerun.
      outcomes: this invocation's runs, in completion order.
    """

    total: int
    skipped: int
    outcomes: list[tasks.RunOutcome]

    @property
    def failed(self) -> list[tasks.RunOutcome]:
        return [o for o in self.outcomes if o.error]


def hparam_fields(spec: sweep.GridSpec) -> list[str]:
    """The fields shown as hyperparameters: every axis of the grid, in expansion order."""
    return list(spec.ordered_axes())


def check_first_run(spec: sweep.GridSpec, grid_dir: str) -> None:
    """Loads the data and builds the model of the grid's first run in this process.

    A model function or data that every run would refuse is then one error before anything is written, not
    one failure per run and a grid folder of nothing.

    Raises:
      UserInputError: the model function fails or returns no fitting Keras model; the data does not load.
    """
    from imbal_keras import models, strategies
    from imbal_keras.data import sources

    config = sweep.expand(spec, grid_dir)[0]
    data = sources.load(config.data, seed=config.seed_for("data"))
    if data.kind in strategies.DENSE_KINDS:  # dense runs build the model of their kind (training.dense_run)
        return
    counts = data.train.class_counts(data.num_classes)
    models.build_for_run(
        config.model.model,
        data,
        hidden_units=config.model.hidden_units,
        training_distribution=counts / counts.sum(),
        zero_output_kernel=config.model.zero_output_kernel,
        seed=config.seed_for("init"),
        log=lambda _: None,
    )


def _needs_first_run_check(spec: sweep.GridSpec, execution: Execution) -> bool:
    """A model function, or data that is not synthetic, is checked in this process before the grid starts
    (not on Ray, whose data may live only on the cluster)."""
    configs = sweep.expand(spec)
    return execution.executor != "ray" and any(
        c.model.model not in ("auto", "mlp", "cnn") or c.data.kind != "synthetic" for c in configs
    )


def _prepare(spec: sweep.GridSpec, grid_dir: str, execution: Execution) -> tuple[list, set[str]]:
    """Creates (or checks) the grid folder and its HParams, under the grid's lock (taken by the caller).

    Returns:
      The configs of the shard, and the names of the grid's finished runs.
    """
    sweep.prepare(grid_dir, spec)
    configs = sweep.shard(sweep.expand(spec, grid_dir), execution.shard_index, execution.shard_count)
    runs_dir = sweep.runs_dir(grid_dir)
    # Finished runs too: a worker killed while writing a finished run's HParams leaves a partial folder of it.
    finished = set(runs.finished_runs(runs_dir))
    runs.clean_partials(runs_dir, [c.output.run_name for c in configs])
    runs.write_hparams_config(grid_dir, spec.ordered_axes())
    for config in configs:  # a run killed between publishing its folder and writing its HParams gets them now
        if config.output.run_name in finished:
            runs.write_run_hparams(os.path.join(runs_dir, config.output.run_name), config, hparam_fields(spec))
    return configs, finished


def _check(spec: sweep.GridSpec, execution: Execution) -> None:
    """Every check that needs no grid folder, past the execution settings' own (`Execution.check`, done first):
    nothing is written before they pass (an unreachable cluster or a failing model function leaves no grid folder
    behind)."""
    sweep.validate(spec)
    if _needs_first_run_check(spec, execution):
        check_first_run(spec, "")
    if execution.executor == "ray":
        launch.connect_ray(execution.ray_address)


def run_grid(
    spec: sweep.GridSpec, grid_dir: str, *, log: Callable[[str], None] = print, **execution: Any
) -> GridOutcome:
    """Runs the unfinished runs of a grid (or of one shard of it).

    Args:
      spec: the grid.
      grid_dir: the grid folder.
      log: where progress lines go.
      **execution: the fields of `Execution` (executor, workers, ray_address, shard_index, shard_count, warm,
        side_by_side).

    Returns:
      What ran, and what was found finished.

    Raises:
      UserInputError: an invalid spec, a folder holding a different grid or in use by another process, a bad
        executor setting, a model function or data that fails (nothing is written in these cases).
      Interrupted: Ctrl-C; its message is the line to show.
    """
    how = Execution(**execution)
    how.check()
    # Local workers start now and import TensorFlow while this process checks the grid and prepares its folder.
    pool = (
        launch.LocalPool(how.workers, worker.configure_worker, preload=worker.PRELOAD)
        if how.executor == "local"
        else None
    )
    try:
        return _run(spec, grid_dir, how, pool, log)
    finally:
        if pool is not None:
            pool.close()


def _run(
    spec: sweep.GridSpec, grid_dir: str, how: Execution, pool: launch.LocalPool | None, log: Callable[[str], None]
) -> GridOutcome:
    """`run_grid` past its execution settings' checks, with its local workers (if any) starting."""
    _check(spec, how)
    with lock.GridLock(grid_dir, how.shard_index, how.shard_count, log=log) as held:
        configs, finished = _prepare(spec, grid_dir, how)
        todo = [c for c in configs if c.output.run_name not in finished]
        shard_note = f" (shard {how.shard_index}/{how.shard_count})" if how.shard_count > 1 else ""
        log(
            f"Grid {grid_dir}{shard_note}: {len(configs)} runs, {len(configs) - len(todo)} already finished, "
            f"{len(todo)} to run ({how.executor}, {how.worker_count} worker(s))"
        )
        tracker = progress.Progress(total=len(configs), skipped=len(configs) - len(todo), log=log)
        outcomes: list[tasks.RunOutcome] = []

        def done(pack_outcomes: list[tasks.RunOutcome]) -> None:
            for outcome in pack_outcomes:
                outcomes.append(outcome)
                tracker(outcome)
            held.refresh()

        packs = sweep.packs(todo, how.side_by_side, workers=how.worker_count)
        try:
            launch.execute(
                tasks.GridTask(fields=tuple(hparam_fields(spec)), warm=how.warm, pad_to=sweep.pack_sizes(packs)),
                [[c.to_dict() for c in pack] for pack in packs],
                executor=how.executor,
                workers=how.workers,
                ray_address=how.ray_address,
                setup=worker.configure_worker,
                on_done=done,
                pool=pool,
            )
        except KeyboardInterrupt:
            # The stopped workers' staging folders: their processes are gone, so nothing half-written stays.
            runs_dir, names = sweep.runs_dir(grid_dir), {c.output.run_name for c in configs}
            runs.clean_partials(runs_dir, names)
            # Counted on disk: a worker may have published a run after its last progress line.
            raise Interrupted(len(names & set(runs.finished_runs(runs_dir))), len(configs)) from None
    line = progress.paths_line(outcomes)
    if line:
        log(line)
    return GridOutcome(total=len(configs), skipped=len(configs) - len(todo), outcomes=outcomes)


__all__ = ["Execution", "GridOutcome", "Interrupted", "check_first_run", "hparam_fields", "run_grid"]
