"""Launching grids: executors (inline, local worker processes, Ray), worker set-up, HParams, progress.

`sweep` computes which runs a grid has; this module runs the unfinished ones and writes what TensorBoard's
HParams tab needs. The executors only run: each run is `run_one(config dict)`, which calls `experiment.run`,
which publishes the run folder atomically, so a killed grid loses at most the runs in flight and a rerun of the
same command skips what finished.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import dataclasses
import gc
import glob
import math
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

from imbal_keras import runs
from imbal_keras.config import ExperimentConfig
from imbal_keras.errors import UserInputError, check
from imbal_keras.grid import sweep

_HPARAMS_SUFFIX = ".hparams"
# The hidden folder a grid's HParams experiment summary is staged in, inside the grid folder.
_GRID_HPARAMS_STAGING = ".partial-hparams-"
# Age after which such a folder is a leftover of a killed process, not one being written.
_STALE_SECONDS = 3600


# TensorBoard HParams.


def hparam_fields(spec: sweep.GridSpec) -> list[str]:
    """The fields shown as hyperparameters: every axis of the grid, in expansion order."""
    return list(spec.ordered_axes())


def write_hparams_config(grid_dir: str, spec: sweep.GridSpec) -> None:
    """Writes the HParams experiment summary (axes and their values, metrics) at the grid root, once.

    Staged in a hidden folder inside the grid folder, never beside it: the grid folder's parent may not be
    writable, and is not the user's to write in. A process killed while writing leaves that folder; a later call
    removes it once it is an hour old (shards of one grid may be writing theirs at the same moment).
    """
    for leftover in glob.glob(os.path.join(glob.escape(grid_dir), f"{_GRID_HPARAMS_STAGING}*")):
        with contextlib.suppress(OSError):
            if time.time() - os.path.getmtime(leftover) > _STALE_SECONDS:
                shutil.rmtree(leftover, ignore_errors=True)
    if glob.glob(os.path.join(glob.escape(grid_dir), f"*{_HPARAMS_SUFFIX}")):
        return
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    hparams = [hp.HParam(f, hp.Discrete([_hparam_value(v) for v in spec.axes[f]])) for f in hparam_fields(spec)]
    metrics = [
        hp.Metric(f"{split}/{name}", display_name=f"{split} {name}")
        for split in ("test", "validation")
        for name in runs.METRIC_NAMES
    ]
    _write_events(
        grid_dir, lambda: hp.hparams_config(hparams=hparams, metrics=metrics), tf, _GRID_HPARAMS_STAGING, grid_dir
    )


def write_run_hparams(run_dir: str, config: ExperimentConfig, fields: Sequence[str]) -> None:
    """Writes the run's hyperparameters into its folder (where its `test/*` scalars are), unless present."""
    if glob.glob(os.path.join(glob.escape(run_dir), f"*{_HPARAMS_SUFFIX}")):
        return
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    flat = config.flat()
    # A strategy parameter the run's strategy does not declare has no value in that run.
    values = {f: _hparam_value(flat[f]) for f in fields if f in flat}
    # Staged as one of the run's partial folders, so a worker killed while writing leaves nothing a rerun keeps.
    staging_prefix = f"{runs.STAGING_PREFIX}{os.path.basename(os.path.normpath(run_dir))}.hparams-"
    _write_events(
        run_dir,
        lambda: hp.hparams(values, trial_id=config.output.run_name),
        tf,
        staging_prefix,
        os.path.dirname(os.path.abspath(run_dir)),
    )


def _hparam_value(value: Any) -> Any:
    return value if isinstance(value, (bool, int, float, str)) else str(value)


def _write_events(directory: str, write: Callable[[], Any], tf, staging_prefix: str, staging_parent: str) -> None:
    """Writes one summary into its own event file, staged in a new folder of `staging_parent` and moved into
    `directory`, so it is never half there."""
    staging = tempfile.mkdtemp(prefix=staging_prefix, dir=staging_parent)
    try:
        writer = tf.summary.create_file_writer(staging, filename_suffix=_HPARAMS_SUFFIX)
        with writer.as_default():
            write()
        writer.close()
        (event_file,) = os.listdir(staging)
        os.rename(os.path.join(staging, event_file), os.path.join(directory, event_file))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# Execution.


@dataclasses.dataclass(frozen=True)
class RunOutcome:
    """What a worker reports back for one run.

    Attributes:
      run_name: the run.
      seconds: wall time of the run in its worker.
      test_average_precision: final test AUPRC (NaN if the run failed).
      error: one line if the run failed, else empty.
      path: `side by side` (trained in one compiled step with other seeds, `imbal_keras.training.side_by_side`), `warm`
        (the worker reused a compiled model), `cold` (it compiled one to keep) or `plain: <reason>` (the run
        cannot be warm, or warm runs are off).
      note: why a run of a pack did not train side by side, else empty.
    """

    run_name: str
    seconds: float
    test_average_precision: float = math.nan
    error: str = ""
    path: str = ""
    note: str = ""


def worker_threads(workers: int, cores: int | None = None) -> int:
    """TensorFlow threads per worker so that `workers` workers together use the cores once: max(1, cores // n)."""
    cores = cores or len(os.sched_getaffinity(0))
    return max(1, cores // workers)


_configured_threads: int | None = None


def configure_worker(threads: int) -> None:
    """Sizes TensorFlow's thread pools, imports what a run needs and freezes it out of the garbage collector.

    Once per process; later calls do nothing.

    The pools are sized through `TF_NUM_INTRAOP_THREADS` / `TF_NUM_INTEROP_THREADS`, which TensorFlow reads
    when its runtime starts (at the first op or device query, here), so this runs before any TensorFlow work
    in the process: true for the local pool's and Ray's workers; the inline executor keeps the parent's pools.
    """
    global _configured_threads
    if _configured_threads is not None:
        return
    _die_with_parent()
    os.environ["TF_NUM_INTRAOP_THREADS"] = os.environ["TF_NUM_INTEROP_THREADS"] = str(threads)
    from imbal_keras import quiet

    quiet.import_tensorflow()
    from imbal_keras.training import experiment  # noqa: F401  (everything a run imports, so the freeze below covers it)

    # `keras.backend.clear_session()` before each run does a full collection, which walked the ~440k objects of
    # TensorFlow's and Keras' modules every time (0.3 s a run). Frozen, they are skipped: 0.02-0.07 s.
    gc.collect()
    gc.freeze()
    _configured_threads = threads


def _die_with_parent() -> None:
    """On Linux, asks the kernel to kill this worker when its parent dies (even by SIGKILL).

    Otherwise a killed grid would leave workers that finish their current run and race a resumed grid.
    """
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


def worker_data_options():
    """`tf.data.Options` for runs in grid workers: autotuning off.

    A worker owns a fixed share of the cores, so tf.data's autotuner has nothing to tune. It also runs a
    background thread per iterator that the iterator's destructor joins; with another worker keeping the other
    core busy, that join waited up to 1.6 s at the end of every other run (seen in gdb: `~LogicalThreadWrapper`
    under `RootDataset::Iterator::~Iterator`), a quarter of the 2-worker grid's time. Batches are unchanged.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return options


# The compiled models this worker process keeps between runs (`imbal_keras.training.warm`), created at its
# first warm run.
_WARM = None


def _worker_cache(threads: int, warm: bool):
    """Sets up this worker process for a run; returns its warm cache (None when warm runs are off)."""
    global _WARM
    configure_worker(threads)
    import keras

    from imbal_keras.training.warm import WarmModels

    if warm and _WARM is None:
        _WARM = WarmModels()  # the grid's progress says how each run ran (RunOutcome.path)
    cache = _WARM if warm else None
    if cache is None:
        # A worker runs many configs: without this, Keras' global state (traced functions, layer registries)
        # grows run after run and every few runs a garbage collection over it stalls one run for 10-30 s. The
        # warm cache bounds that state itself (it clears the session when full).
        keras.backend.clear_session()
    else:
        cache.last_path = ""
    return cache


def _error_line(e: Exception) -> str:
    message = " ".join(str(e).split()) or type(e).__name__
    return f"{type(e).__name__}: {message}"


def run_one(config_dict: dict[str, Any], fields: Sequence[str], threads: int, warm: bool = True) -> RunOutcome:
    """Runs one config in this process and writes its HParams; what every executor calls.

    With `warm`, the process keeps compiled models between runs (`imbal_keras.training.warm`): a run of a shape seen
    before reuses one, with the same results. A failing run is reported, not raised, so one bad run does not
    stop the grid; its staging folder is removed by `experiment.run` and the rerun tries it again.
    """
    from imbal_keras.training import experiment

    cache = _worker_cache(threads, warm)
    config = ExperimentConfig.from_dict(config_dict)
    started = time.time()
    try:
        result = experiment.run(config, log=None, data_options=worker_data_options(), warm=cache)
        write_run_hparams(result.run_dir, config, fields)
    except Exception as e:  # noqa: BLE001  (reported to the parent as one line; the grid goes on)
        return RunOutcome(config.output.run_name, time.time() - started, error=_error_line(e))
    path = "plain: warm runs off" if cache is None else cache.last_path
    return _finished(result, time.time() - started, path)


def _finished(result, seconds: float, path: str) -> RunOutcome:
    final = result.summary["final"].get("test_average_precision")
    return RunOutcome(result.config.output.run_name, seconds, math.nan if final is None else float(final), path=path)


def run_pack(config_dicts: Sequence[dict[str, Any]], fields: Sequence[str], threads: int, warm: bool = True):
    """Runs configs that differ only in their training seeds side by side in this process
    (`imbal_keras.training.side_by_side`) and writes their HParams; returns one outcome per config.

    A pack that cannot train side by side (or fails to) runs its configs one by one with `run_one`, and each
    outcome's `note` says why: a bad config then fails as its own run, and the others still finish.
    """
    if len(config_dicts) == 1:
        return [run_one(config_dicts[0], fields, threads, warm)]
    from imbal_keras.training import side_by_side

    cache = _worker_cache(threads, warm)
    configs = [ExperimentConfig.from_dict(d) for d in config_dicts]
    started = time.time()
    try:
        results = side_by_side.run_pack(configs, warm=cache, log=None, data_options=worker_data_options())
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
            write_run_hparams(result.run_dir, config, fields)
        except Exception as e:  # noqa: BLE001  (the run folder is published; a rerun writes its HParams)
            outcomes.append(RunOutcome(config.output.run_name, seconds, error=_error_line(e)))
            continue
        outcomes.append(_finished(result, seconds, f"side by side: {len(results)} runs"))
    return outcomes


EXECUTORS = ("local", "inline", "ray")


def check_execution(executor: str, workers: int) -> None:
    """Raises `UserInputError` for an unknown executor or a worker count below 1."""
    check(
        executor in EXECUTORS,
        f"executor must be one of {', '.join(EXECUTORS)}. Received: executor={executor!r}",
        argument="executor",
    )
    check(workers > 0, f"workers must be > 0. Received: workers={workers}", argument="workers")


def execute(
    configs: Sequence[ExperimentConfig],
    fields: Sequence[str],
    *,
    executor: str = "local",
    workers: int = 1,
    ray_address: str = "",
    warm: bool = True,
    side_by_side: int = 1,
    on_done: Callable[[RunOutcome], None] = lambda outcome: None,
) -> list[RunOutcome]:
    """Runs `configs` and calls `on_done` in this process as each one finishes.

    Args:
      configs: the runs.
      fields: HParams fields written into each run folder.
      executor: `local` (a pool of `workers` spawned processes, each importing TensorFlow once and running
        many runs with max(1, cores // workers) threads), `inline` (this process, one run at a time) or `ray`
        (Ray tasks on the cluster at `ray_address`, one CPU each).
      workers: local worker processes.
      ray_address: Ray cluster address (`auto`, `ray://host:10001`, ...); empty starts a local Ray instance.
      warm: workers keep compiled models between runs (`imbal_keras.training.warm`); False builds every run anew.
      side_by_side: runs that differ only in their training seeds train together in one compiled step, up to
        this many (`imbal_keras.training.side_by_side`); 1 runs every run on its own.
      on_done: progress callback.

    Returns:
      One outcome per config, in completion order.

    Raises:
      UserInputError: bad executor or worker count, Ray not installed or its cluster unreachable.
    """
    check_execution(executor, workers)
    packs = [[c.to_dict() for c in pack] for pack in sweep.packs(configs, side_by_side)]
    outcomes: list[RunOutcome] = []

    def done(pack_outcomes: list[RunOutcome]) -> None:
        for outcome in pack_outcomes:
            outcomes.append(outcome)
            on_done(outcome)

    if executor == "inline":
        for pack in packs:
            done(run_pack(pack, fields, worker_threads(1), warm))
    elif executor == "local":
        _execute_local(packs, fields, workers, done, warm)
    else:
        _execute_ray(packs, fields, ray_address, done, warm)
    return outcomes


def _execute_local(packs, fields, workers, done, warm) -> None:
    import concurrent.futures
    import multiprocessing

    threads = worker_threads(workers)
    # 'spawn': TensorFlow is not fork-safe. Each worker imports it once, in the initializer.
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=min(workers, len(packs)) or 1,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=configure_worker,
        initargs=(threads,),
    ) as pool:
        futures = [pool.submit(run_pack, pack, fields, threads, warm) for pack in packs]
        try:
            for future in concurrent.futures.as_completed(futures):
                done(future.result())
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _check_reachable(address: str) -> None:
    """Fails fast on a `host:port` address nothing listens on (`ray.init` would retry for minutes)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not (host and port.isdigit()):
        return  # `auto`, empty (start a local Ray) or a form Ray resolves itself
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as e:
        raise UserInputError(
            f"ray_address={address!r} is unreachable ({e.strerror or e})", argument="ray_address"
        ) from None


def _connect_ray(ray_address: str):
    """Imports Ray and connects to its cluster (once per process).

    Raises:
      UserInputError: Ray is not installed, or the cluster is unreachable.
    """
    try:
        import ray
    except ImportError:
        raise UserInputError(
            "executor=ray needs Ray: pip install -r requirements-ray.txt (Received: executor='ray')"
        ) from None
    if not ray.is_initialized():
        _check_reachable(ray_address)
        try:
            ray.init(address=ray_address or None, logging_level="ERROR", log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as e:
            message = " ".join(str(e).split())[:200]
            raise UserInputError(
                f"ray_address={ray_address!r} is unreachable ({message})", argument="ray_address"
            ) from None
    return ray


def _execute_ray(packs, fields, ray_address, done, warm) -> None:
    ray = _connect_ray(ray_address)
    task = ray.remote(num_cpus=1)(run_pack)
    pending = [task.remote(pack, fields, 1, warm) for pack in packs]
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        done(ray.get(ready[0]))


@dataclasses.dataclass
class Progress:
    """Runs done / total, elapsed time and ETA; one line per finished run.

    Attributes:
      total: runs in the grid (or shard).
      skipped: runs already finished before this invocation.
      log: where lines go.
    """

    total: int
    skipped: int
    log: Callable[[str], None] = print
    started: float = dataclasses.field(default_factory=time.time)
    done_now: int = 0
    said: set = dataclasses.field(default_factory=set)

    def __call__(self, outcome: RunOutcome) -> None:
        self.done_now += 1
        elapsed = time.time() - self.started
        remaining = self.total - self.skipped - self.done_now
        eta = elapsed / self.done_now * remaining
        status = f"FAILED {outcome.error}" if outcome.error else f"test AP {outcome.test_average_precision:.4f}"
        if outcome.note and outcome.note not in self.said:
            self.said.add(outcome.note)
            self.log(f"note: {outcome.run_name} did not train side by side with its other seeds: {outcome.note}")
        if outcome.path.startswith("plain: ") and outcome.path not in self.said:
            self.said.add(outcome.path)
            self.log(f"note: {outcome.run_name} ran the plain path, not warm: {outcome.path.removeprefix('plain: ')}")
        self.log(
            f"[{self.skipped + self.done_now}/{self.total}] elapsed {_clock(elapsed)} ETA {_clock(eta)}  "
            f"{outcome.run_name}  {status}  ({outcome.seconds:.1f}s)"
        )


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes // 60:d}:{minutes % 60:02d}:{secs:02d}"


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
    outcomes: list[RunOutcome]

    @property
    def failed(self) -> list[RunOutcome]:
        return [o for o in self.outcomes if o.error]


def _check_model_functions(spec: sweep.GridSpec) -> None:
    """Imports every `package.module:function` model of the grid once here, so a bad path is one error line
    before anything runs (in the workers it would fail once per run)."""
    from imbal_keras.data import sources

    for path in dict.fromkeys(c.model.model for c in sweep.expand(spec)):
        if ":" in path:
            sources.import_function(path, argument="model")


def run_grid(
    spec: sweep.GridSpec,
    grid_dir: str,
    *,
    executor: str = "local",
    workers: int = 1,
    ray_address: str = "",
    shard_index: int = 0,
    shard_count: int = 1,
    warm: bool = True,
    side_by_side: int = sweep.DEFAULT_PACK,
    log: Callable[[str], None] = print,
) -> GridOutcome:
    """Runs the unfinished runs of a grid (or of one shard of it); see `execute` for the executors.

    Raises:
      UserInputError: an invalid spec, a folder holding a different grid, a bad executor setting.
    """
    sweep.validate(spec)
    check_execution(executor, workers)
    sweep.packs([], side_by_side)  # checks side_by_side before anything is written
    _check_model_functions(spec)
    if executor == "ray":  # before anything is written: an unreachable cluster leaves no grid folder behind
        _connect_ray(ray_address)
    sweep.prepare(grid_dir, spec)
    configs = sweep.shard(sweep.expand(spec, grid_dir), shard_index, shard_count)
    runs_dir = sweep.runs_dir(grid_dir)
    finished = set(runs.finished_runs(runs_dir))
    todo = [c for c in configs if c.output.run_name not in finished]
    # Finished runs too: a worker killed while writing a finished run's HParams leaves a partial folder of it.
    runs.clean_partials(runs_dir, [c.output.run_name for c in configs])
    fields = hparam_fields(spec)
    write_hparams_config(grid_dir, spec)
    for config in configs:  # a run killed between publishing its folder and writing its HParams gets them now
        if config.output.run_name in finished:
            write_run_hparams(os.path.join(runs_dir, config.output.run_name), config, fields)
    shard_note = f" (shard {shard_index}/{shard_count})" if shard_count > 1 else ""
    log(
        f"Grid {grid_dir}{shard_note}: {len(configs)} runs, {len(configs) - len(todo)} already finished, "
        f"{len(todo)} to run ({executor}, {workers if executor == 'local' else 1} worker(s))"
    )
    progress = Progress(total=len(configs), skipped=len(configs) - len(todo), log=log)
    outcomes = execute(
        todo,
        fields,
        executor=executor,
        workers=workers,
        ray_address=ray_address,
        warm=warm,
        side_by_side=side_by_side,
        on_done=progress,
    )
    paths = collections.Counter(o.path.split(":")[0] for o in outcomes if not o.error)
    if paths:
        log(
            f"{paths['side by side']} runs trained side by side with other seeds, {paths['warm']} reused a compiled "
            f"model, {paths['cold']} compiled one to keep, {paths['plain']} ran the plain path (--side_by_side=1 "
            "and --nowarm turn these off)"
        )
    return GridOutcome(total=len(configs), skipped=len(configs) - len(todo), outcomes=outcomes)


def run_and_report(
    spec: sweep.GridSpec | None,
    grid_dir: str,
    *,
    merge_from: Sequence[str] | None = None,
    log: Callable[[str], None] = print,
    **execution: Any,
) -> list[str]:
    """What the command line does for a grid: run it (or merge shards' runs into it), then write its report.

    Args:
      spec: the grid; None with `merge_from` reads it from `grid_dir`.
      grid_dir: the grid folder.
      merge_from: run nothing; copy finished runs from these grid folders (possibly none) into `grid_dir`.
      log: where progress lines go.
      **execution: `run_grid`'s executor, workers, ray_address, shard_index, shard_count, warm and side_by_side.

    Returns:
      The paths of the tables and reports written (none after a shard that is not the whole grid).

    Raises:
      UserInputError: bad input, or runs that failed (after the others finished: rerun to retry them).
    """
    from imbal_keras.grid import report

    if merge_from is not None:
        spec = sweep.load_spec(grid_dir)
        log(f"Copied {sweep.merge(merge_from, grid_dir)} finished runs into {grid_dir}")
    else:
        outcome = run_grid(spec, grid_dir, log=log, **execution)
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
    paths = report.build(grid_dir)
    for path in paths:
        log(f"wrote {path}")
    log(f"TensorBoard (HParams tab): tensorboard --logdir {grid_dir}")
    return paths


def describe_run(config: ExperimentConfig) -> str:
    """What one run would do, after validating its config (nothing is loaded or written).

    Raises:
      UserInputError: a bad config.
    """
    config.validate()
    name = config.output.run_name or config.default_run_name()
    return f"1 run: {os.path.join(config.output.output_dir, name)}\n{config.to_json()}"


def describe_grid(
    spec: sweep.GridSpec | None,
    grid_dir: str,
    *,
    merge_from: Sequence[str] | None = None,
    shard_index: int = 0,
    shard_count: int = 1,
    executor: str = "local",
    workers: int = 1,
    ray_address: str = "",
    warm: bool = True,
    side_by_side: int = sweep.DEFAULT_PACK,
) -> str:
    """What a grid command would do, after validating it (nothing is run or written).

    Raises:
      UserInputError: a bad spec or execution setting, or (for a merge) a folder without a grid.
    """
    del ray_address, warm  # a dry run contacts no cluster and runs nothing
    check_execution(executor, workers)
    if merge_from is not None:
        spec = sweep.load_spec(grid_dir)
        return f"merge: copy finished runs of {', '.join(merge_from) or 'no other folder'} into {grid_dir}, then report"
    sweep.validate(spec)
    configs = sweep.shard(sweep.expand(spec, grid_dir), shard_index, shard_count)
    axes = "; ".join(f"{k}={','.join(map(str, v))}" for k, v in spec.ordered_axes().items())
    packs = len(sweep.packs(configs, side_by_side))
    tasks = f", {packs} tasks with seeds side by side" if packs < len(configs) else ""
    lines = [f"{len(configs)} runs into {grid_dir} ({executor}, {workers} worker(s){tasks}); axes: {axes}"]
    lines += [f"  {c.output.run_name}" for c in configs[:5]]
    if len(configs) > 5:
        lines.append(f"  ... and {len(configs) - 5} more")
    return "\n".join(lines)
