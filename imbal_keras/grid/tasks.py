"""The worker side of a grid: run one config, or a pack of configs side by side, and report each run's outcome.

The executors (`imbal_keras.grid.launch`) call a `GridTask` with one pack of configs (as dicts, which pickle
cheaply) per call. Each run is `imbal_keras.training.experiment.run` (or `imbal_keras.training.side_by_side.run_pack`
for a pack), which publishes the run folder atomically, so a killed grid loses at most the runs in flight and a
rerun of the same command skips what finished; the run's TensorBoard HParams are then written through `runs`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from typing import Any

from imbal_keras import runs
from imbal_keras.config import ExperimentConfig
from imbal_keras.grid import worker
from imbal_keras.training.plan import WARM_OFF


@dataclasses.dataclass(frozen=True)
class RunOutcome:
    """What a worker reports back for one run.

    Attributes:
      run_name: the run.
      seconds: wall time of the run in its worker.
      test_average_precision: final test AUPRC (NaN if the run failed).
      error: one line if the run failed, else empty.
      path: `side by side: <n> runs` (trained in one compiled step with other seeds,
        `imbal_keras.training.side_by_side`), `warm` (the worker reused a compiled model), `cold` (it compiled one
        to keep) or `plain: <reason>` (the run cannot be warm, or warm runs are off).
      note: why a run of a pack did not train side by side, else empty.
    """

    run_name: str
    seconds: float
    test_average_precision: float = math.nan
    error: str = ""
    path: str = ""
    note: str = ""


@dataclasses.dataclass(frozen=True)
class GridTask:
    """What every executor calls in a worker: `task(pack, threads)` runs a pack with `run_pack`.

    Attributes:
      fields: HParams fields written into each run folder.
      warm: workers keep compiled models between runs (`imbal_keras.training.warm`); False builds every run anew.
      pad_to: the grid's largest pack of each `config.key("pack")` (`sweep.pack_sizes`): smaller packs of that
        key train at that size, so that they share one traced step.
    """

    fields: tuple[str, ...] = ()
    warm: bool = True
    pad_to: tuple[tuple[str, int], ...] = ()

    def __call__(self, config_dicts: Sequence[dict[str, Any]], threads: int) -> list[RunOutcome]:
        return run_pack(config_dicts, self.fields, threads, self.warm, pad_to=dict(self.pad_to))


def _error_line(e: Exception) -> str:
    message = " ".join(str(e).split()) or type(e).__name__
    return f"{type(e).__name__}: {message}"


def _path(result, fallback: str) -> str:
    """How a run ran: the plain path's reason from its `training_path` in result.json when it has one, else
    `fallback` (what the worker saw: warm, cold, side by side, or plain with a reason)."""
    training_path = result.summary.get("training_path")
    if training_path is not None and training_path["mode"] == "plain":
        return f"plain: {training_path['reason']}"
    return fallback


def _finished(result, seconds: float, path: str) -> RunOutcome:
    final = result.summary["final"].get("test_average_precision")
    return RunOutcome(
        result.config.output.run_name, seconds, math.nan if final is None else float(final), path=_path(result, path)
    )


def run_one(config_dict: dict[str, Any], fields: Sequence[str], threads: int, warm: bool = True) -> RunOutcome:
    """Runs one config in this process and writes its HParams.

    With `warm`, the process keeps compiled models between runs (`imbal_keras.training.warm`): a run of a shape seen
    before reuses one, with the same results. A failing run is reported, not raised, so one bad run does not
    stop the grid; its staging folder is removed by `experiment.run` and the rerun tries it again.

    Args:
      config_dict: the run's config (`ExperimentConfig.to_dict`).
      fields: HParams fields written into the run folder.
      threads: TensorFlow threads of this process.
      warm: keep compiled models between runs.

    Returns:
      The run's outcome.
    """
    from imbal_keras.training import experiment

    cache = worker.warm_cache(threads, warm)
    config = ExperimentConfig.from_dict(config_dict)
    started = time.time()
    try:
        result = experiment.run(config, log=None, data_options=worker.worker_data_options(), warm=cache)
        runs.write_run_hparams(result.run_dir, config, fields)
    except Exception as e:  # noqa: BLE001  (reported to the parent as one line; the grid goes on)
        return RunOutcome(config.output.run_name, time.time() - started, error=_error_line(e))
    path = f"plain: {WARM_OFF}" if cache is None else cache.last_path
    return _finished(result, time.time() - started, path)


def run_pack(
    config_dicts: Sequence[dict[str, Any]],
    fields: Sequence[str],
    threads: int,
    warm: bool = True,
    *,
    pad_to: dict[str, int] | None = None,
) -> list[RunOutcome]:
    """Runs the configs of one pack (equal `key("pack")`: they may differ in their seeds, data seeds and
    strategies) side by side in this process (`imbal_keras.training.side_by_side`) and writes their HParams;
    returns one outcome per config.

    A pack that cannot train side by side (or fails to) runs its configs one by one with `run_one`, and each
    outcome's `note` says why: a bad config then fails as its own run, and the others still finish.

    Args:
      config_dicts: the pack's configs (`ExperimentConfig.to_dict`).
      fields: HParams fields written into each run folder.
      threads: TensorFlow threads of this process.
      warm: keep compiled models between runs.
      pad_to: replicas to train a pack of each `key("pack")` with (`GridTask.pad_to`); none: the pack's runs.

    Returns:
      One outcome per config, in order.
    """
    if len(config_dicts) == 1:
        return [run_one(config_dicts[0], fields, threads, warm)]
    from imbal_keras.training import side_by_side

    cache = worker.warm_cache(threads, warm)
    configs = [ExperimentConfig.from_dict(d) for d in config_dicts]
    started = time.time()
    try:
        pad = (pad_to or {}).get(configs[0].key("pack"), 0) if warm else 0
        results = side_by_side.run_pack(
            configs, warm=cache, log=None, data_options=worker.worker_data_options(), pad_to=pad
        )
    except Exception as e:  # noqa: BLE001  (each run then runs, and fails or not, on its own)
        results = f"side by side failed ({_error_line(e)})"
    if isinstance(results, str):
        outcomes = [run_one(d, fields, threads, warm) for d in config_dicts]
        # A run that takes the plain path for the same reason says it once, as its path.
        return [o if o.path == f"plain: {results}" else dataclasses.replace(o, note=results) for o in outcomes]
    seconds = (time.time() - started) / len(results)
    outcomes = []
    for config, result in zip(configs, results, strict=True):
        try:
            runs.write_run_hparams(result.run_dir, config, fields)
        except Exception as e:  # noqa: BLE001  (the run folder is published; a rerun writes its HParams)
            outcomes.append(RunOutcome(config.output.run_name, seconds, error=_error_line(e)))
            continue
        outcomes.append(_finished(result, seconds, f"side by side: {len(results)} runs"))
    return outcomes


__all__ = ["GridTask", "RunOutcome", "run_one", "run_pack"]
