"""Comparison grids: axes -> run configs, presets, a resumable store of run folders, and executors.

A grid is a base `ExperimentConfig` and a list of values per axis (axis name = config field). Its runs are the
Cartesian product of the axes minus combinations that would repeat another run (see `expand`); every seed is
its own run, kept as its own folder, because the spread across seeds is what a grid is for.

Layout of a grid folder:

  grid.json                   the spec (axes + base config); a rerun with a different spec is refused
  runs/<run name>/            one `experiment.run` folder per run (config.json, metrics.csv, result.json, events)
  runs/.partial-<run name>.*  staging folders of runs in progress (or killed); ignored and cleaned on rerun
  events...hparams_config     TensorBoard HParams: the axes and metrics, so `tensorboard --logdir GRID` lists runs

The store is the run folders themselves: `experiment.run` publishes a folder by one atomic rename only when
the run has finished, so a folder with `result.json` is a finished run and anything else is not. Rerunning the
same grid skips finished runs and redoes the rest; results tables are always rebuilt from the folders.
"""

from __future__ import annotations

import ctypes
import dataclasses
import gc
import glob
import hashlib
import itertools
import json
import math
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from imbal_keras.config import ExperimentConfig
from imbal_keras.errors import UserInputError, check

GRID_FILE = "grid.json"
RUNS_DIR = "runs"
RESULT_FILE = "result.json"  # = experiment.RESULT_FILE; experiment is imported by workers only (it loads Keras)
_PARTIAL_PREFIX = ".partial-"
_HPARAMS_SUFFIX = ".hparams"
_SPEC_VERSION = 1

# Axis flag -> ExperimentConfig field, in expansion order (outermost first). Seeds are outermost so that a
# grid stopped half-way already holds a few seeds of every cell rather than every seed of a few cells.
AXES = {
    "seeds": "seed",
    "datasets": "dataset",
    "imbalance_ratios": "imbalance_ratio",
    "batch_sizes": "batch_size",
    "optimizers": "optimizer",
    "learning_rates": "learning_rate",
    "strategies": "strategy",
    "class_weight_normalizations": "class_weight_normalization",
    "weight_reductions": "weight_reduction",
}
# Fields that only act through per-example loss weights: for a strategy without loss weights every value
# gives the same run, so the grid keeps one (the axis's first value).
LOSS_WEIGHT_FIELDS = ("class_weight_normalization", "weight_reduction")
# Metrics the experiment logs as `validation/<name>` and `test/<name>` (TensorBoard tags and metrics.csv).
METRIC_NAMES = (
    "average_precision",
    "roc_auc",
    "balanced_accuracy",
    "f1_at_0.5",
    "f1_at_best_threshold",
    "log_loss",
    "brier",
)


@dataclasses.dataclass(frozen=True)
class Preset:
    """A named grid: axis values and base config fields.

    Attributes:
      description: one line for `--help` and the README.
      axes: field -> values; fields not listed take the base config's value.
      base: config fields every run of the preset shares (budget, data size, model).
    """

    description: str
    axes: dict[str, tuple]
    base: dict[str, Any]


PRESETS: dict[str, Preset] = {
    "seed_question": Preset(
        description=(
            "Does upsampling converge faster and vary less than class weights? Synthetic 1:99, batch 16, SGD, "
            "equal steps; none, class_weight (both normalisations x both reductions), upsample, downsample, "
            "rejection, stratified; 10 seeds (90 runs)."
        ),
        axes={
            "strategy": ("none", "class_weight", "upsample", "downsample", "rejection", "stratified"),
            "class_weight_normalization": ("mean_one", "sum_to_num_classes"),
            "weight_reduction": ("sum_over_batch_size", "mean_with_sample_weight"),
            "seed": tuple(range(10)),
        },
        base={
            "dataset": "synthetic",
            "imbalance_ratio": 99.0,
            "batch_size": 16,
            "optimizer": "sgd",
            "learning_rate": 0.05,
            "num_examples": 10_000,
            "steps": 400,
            "eval_every": 50,
            "hidden_units": (32, 32),
        },
    ),
}


@dataclasses.dataclass(frozen=True)
class GridSpec:
    """What a grid runs: a base config and the values of each axis.

    Attributes:
      axes: ExperimentConfig field -> tuple of values; axes not listed take the base config's value.
      base: every field that is not an axis; `output_dir` and `run_name` are set per run.
    """

    axes: dict[str, tuple]
    base: ExperimentConfig = ExperimentConfig()

    def to_dict(self) -> dict[str, Any]:
        """The content of grid.json. `output_dir` is left out: a grid folder may be moved or merged."""
        base = self.base.to_dict()
        base.pop("output_dir")
        base.pop("run_name")
        return {"version": _SPEC_VERSION, "axes": {k: list(v) for k, v in self.axes.items()}, "base": base}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GridSpec:
        return cls(axes={k: tuple(v) for k, v in d["axes"].items()}, base=ExperimentConfig.from_dict(d["base"]))

    def varying_fields(self) -> list[str]:
        """Axis fields with more than one value, in expansion order."""
        return [field for field in AXES.values() if len(self.axes.get(field, ())) > 1]


def spec_from_preset(name: str, *, axes: dict[str, Sequence] | None = None, **base: Any) -> GridSpec:
    """The spec of preset `name`, with `axes` and `base` fields overriding the preset's.

    Raises:
      UserInputError: unknown preset; the message lists the known ones.
    """
    check(name in PRESETS, f"--preset must be one of {', '.join(PRESETS)}. Received: preset={name!r}")
    preset = PRESETS[name]
    merged_axes = {**preset.axes, **{k: tuple(v) for k, v in (axes or {}).items()}}
    return GridSpec(axes=merged_axes, base=ExperimentConfig(**{**preset.base, **base}))


def _flag_of(field: str) -> str:
    return next(flag for flag, f in AXES.items() if f == field)


def validate(spec: GridSpec) -> GridSpec:
    """Checks every axis and every run config of `spec`.

    Returns:
      spec, for chaining.

    Raises:
      UserInputError: an unknown axis, an empty axis, a repeated value, or a value the config rejects; the
        message names the axis flag (e.g. `--strategies`) and the value.
    """
    fields = set(AXES.values())
    for field, values in spec.axes.items():
        check(field in fields, f"Unknown grid axis {field!r}. Axes: {', '.join(AXES.values())}")
        flag = _flag_of(field)
        check(len(values) > 0, f"--{flag} must list at least one value. Received: {flag}=''")
        repeated = sorted({str(v) for v in values if list(values).count(v) > 1})
        check(not repeated, f"--{flag} lists a value twice. Received: {flag}={','.join(map(str, values))}")
        for value in values:
            try:
                spec.base.replace(**{field: value}).validate()
            except UserInputError as e:
                raise UserInputError(f"--{flag} has a bad value {value!r}: {e}") from None
    for config in expand(spec):
        config.validate()
    return spec


def expand(spec: GridSpec, output_dir: str = "") -> list[ExperimentConfig]:
    """The runs of a grid, in a fixed order.

    Exclusions (combinations that are not separate runs):
      - `class_weight_normalization` and `weight_reduction` for a strategy without loss weights (`none`,
        `upsample`, `downsample`, `rejection`, `stratified`): they only scale or renormalise per-example loss
        weights, which such a strategy does not use (its weights are all 1), so every value trains the
        identical model. One run is kept, with the axis's first value.

    Args:
      spec: the grid.
      output_dir: the grid folder; runs go to `output_dir/runs/<run name>`.

    Returns:
      Configs with `output_dir` and `run_name` set; run names are unique and depend only on the config.
    """
    # Imported here, not at the top: worker processes import this module to unpickle their task, and must size
    # TensorFlow's thread pools (and silence its start-up) before anything loads it; the registry loads it.
    from imbal_keras import strategies

    axes = {field: spec.axes.get(field, (getattr(spec.base, field),)) for field in AXES.values()}
    configs: dict[str, ExperimentConfig] = {}
    for values in itertools.product(*axes.values()):
        fields = dict(zip(axes, values, strict=True))
        if not strategies.get(fields["strategy"]).uses_sample_weights:
            fields.update({f: axes[f][0] for f in LOSS_WEIGHT_FIELDS})
        config = spec.base.replace(**fields, output_dir=os.path.join(output_dir, RUNS_DIR), run_name="")
        config = config.replace(run_name=run_name(config))
        configs.setdefault(config.run_name, config)
    return list(configs.values())


def run_name(config: ExperimentConfig) -> str:
    """Readable and unique: the config's default name plus a digest of every field but the output folder.

    The digest keeps names unique where the readable part is not (two csv files with the same base name,
    learning rates equal to 6 digits) and ties a finished folder to exactly the config that made it.
    """
    fields = config.to_dict()
    fields.pop("output_dir")
    fields.pop("run_name")
    digest = hashlib.sha1(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:8]
    return f"{config.default_run_name()}-{digest}"


def parse_shard(text: str) -> tuple[int, int]:
    """`"i/n"` -> (i, n) with 0 <= i < n.

    Raises:
      UserInputError: anything else.
    """
    message = f"--shard must be i/n with 0 <= i < n (e.g. 0/4). Received: shard={text!r}"
    index, sep, count = text.partition("/")
    check(sep == "/" and index.strip().isdigit() and count.strip().isdigit(), message)
    i, n = int(index), int(count)
    check(0 <= i < n, message)
    return i, n


def shard(configs: Sequence[ExperimentConfig], index: int, count: int) -> list[ExperimentConfig]:
    """Run `index` of every `count` (round robin over the expansion order, so shards get similar mixes)."""
    return list(configs[index::count])


# The store: the run folders.


def load_spec(grid_dir: str) -> GridSpec:
    """The spec saved in `grid_dir/grid.json`.

    Raises:
      UserInputError: there is no readable grid.json.
    """
    path = os.path.join(grid_dir, GRID_FILE)
    try:
        with open(path) as f:
            return GridSpec.from_dict(json.load(f))
    except (OSError, ValueError, KeyError) as e:
        raise UserInputError(f"--output_dir={grid_dir!r} holds no readable {GRID_FILE} ({e})") from None


def prepare(grid_dir: str, spec: GridSpec) -> None:
    """Creates the grid folder and grid.json, or checks that an existing one describes the same grid.

    Raises:
      UserInputError: the folder holds a different grid (the message says which axes or fields differ), or
        it cannot be written. Nothing is changed in that case.
    """
    path = os.path.join(grid_dir, GRID_FILE)
    if os.path.exists(path):
        check_compatible(load_spec(grid_dir), spec, grid_dir)
        return
    try:
        os.makedirs(os.path.join(grid_dir, RUNS_DIR), exist_ok=True)
        write_atomically(path, json.dumps(spec.to_dict(), indent=2, sort_keys=True))
    except OSError as e:
        raise UserInputError(f"--output_dir={grid_dir!r} is not writable ({e.strerror or e})") from None


def check_compatible(saved: GridSpec, wanted: GridSpec, grid_dir: str) -> None:
    """Raises `UserInputError` naming what differs if `wanted` is not the grid saved in `grid_dir`."""
    a, b = saved.to_dict(), wanted.to_dict()
    differ = [f"axis {k}" for k in sorted(set(a["axes"]) | set(b["axes"])) if a["axes"].get(k) != b["axes"].get(k)]
    differ += [f"field {k}" for k in sorted(a["base"]) if a["base"].get(k) != b["base"].get(k)]
    check(
        not differ,
        f"--output_dir={grid_dir!r} holds a different grid ({'; '.join(differ)} differ from its {GRID_FILE}); "
        "use a new --output_dir or the same flags as before",
    )


def finished_runs(grid_dir: str) -> set[str]:
    """Names of the run folders under `grid_dir/runs` that hold a result.json (= finished runs)."""
    runs_dir = os.path.join(grid_dir, RUNS_DIR)
    return {
        os.path.basename(os.path.dirname(p))
        for p in glob.glob(os.path.join(glob.escape(runs_dir), "*", RESULT_FILE))
        if not os.path.basename(os.path.dirname(p)).startswith(".")
    }


def clean_partials(grid_dir: str, names: Iterable[str]) -> int:
    """Removes staging folders left by killed runs of `names` (only those: other shards may be running).

    Returns:
      How many were removed.
    """
    runs_dir = os.path.join(grid_dir, RUNS_DIR)
    removed = 0
    for name in names:
        for path in glob.glob(os.path.join(glob.escape(runs_dir), f"{_PARTIAL_PREFIX}{glob.escape(name)}.*")):
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return removed


def collect(sources: Sequence[str], grid_dir: str) -> int:
    """Copies finished runs from other grid folders (shards run on machines without a shared disk) into `grid_dir`.

    Each source must hold the same grid. A run already in `grid_dir` is not copied again; a copy is staged
    under a hidden name and renamed into place, so an interrupted merge leaves nothing half-copied.

    Returns:
      How many runs were copied.

    Raises:
      UserInputError: a source without grid.json or holding a different grid.
    """
    spec = load_spec(grid_dir)
    copied = 0
    for source in sources:
        check_compatible(load_spec(source), spec, source)
        have = finished_runs(grid_dir)
        for name in sorted(finished_runs(source) - have):
            staging = os.path.join(grid_dir, RUNS_DIR, f"{_PARTIAL_PREFIX}{name}.merge")
            shutil.rmtree(staging, ignore_errors=True)
            shutil.copytree(os.path.join(source, RUNS_DIR, name), staging)
            os.rename(staging, os.path.join(grid_dir, RUNS_DIR, name))
            copied += 1
    return copied


def write_atomically(path: str, text: str) -> None:
    """Writes `text` to a temporary file beside `path` and renames it over `path`: readers see old or new."""
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=os.path.dirname(path) or ".")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


# TensorBoard HParams.


def hparam_fields(spec: GridSpec) -> list[str]:
    """The fields shown as hyperparameters: every axis of the grid."""
    return [field for field in AXES.values() if field in spec.axes]


def write_hparams_config(grid_dir: str, spec: GridSpec) -> None:
    """Writes the HParams experiment summary (axes and their values, metrics) at the grid root, once."""
    if glob.glob(os.path.join(glob.escape(grid_dir), f"*{_HPARAMS_SUFFIX}")):
        return
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    hparams = [hp.HParam(f, hp.Discrete([_hparam_value(v) for v in spec.axes[f]])) for f in hparam_fields(spec)]
    metrics = [
        hp.Metric(f"{split}/{name}", display_name=f"{split} {name}")
        for split in ("test", "validation")
        for name in METRIC_NAMES
    ]
    _write_events(grid_dir, lambda: hp.hparams_config(hparams=hparams, metrics=metrics), tf)


def write_run_hparams(run_dir: str, config: ExperimentConfig, fields: Sequence[str]) -> None:
    """Writes the run's hyperparameters into its folder (where its `test/*` scalars are), unless present."""
    if glob.glob(os.path.join(glob.escape(run_dir), f"*{_HPARAMS_SUFFIX}")):
        return
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    values = {f: _hparam_value(getattr(config, f)) for f in fields}
    _write_events(run_dir, lambda: hp.hparams(values, trial_id=config.run_name), tf)


def _hparam_value(value: Any) -> Any:
    return value if isinstance(value, (bool, int, float, str)) else str(value)


def _write_events(directory: str, write: Callable[[], Any], tf) -> None:
    """Writes one summary into its own event file, staged elsewhere and moved in, so it is never half there."""
    staging = tempfile.mkdtemp(prefix=".hparams-", dir=os.path.dirname(os.path.abspath(directory)))
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
    """

    run_name: str
    seconds: float
    test_average_precision: float = math.nan
    error: str = ""


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
    from imbal_keras import experiment  # noqa: F401  (everything a run imports, so the freeze below covers it)

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


def run_one(config_dict: dict[str, Any], fields: Sequence[str], threads: int) -> RunOutcome:
    """Runs one config in this process and writes its HParams; what every executor calls.

    A failing run is reported, not raised, so one bad run does not stop the grid; its staging folder is
    removed by `experiment.run` and the rerun tries it again.
    """
    configure_worker(threads)
    import keras

    from imbal_keras import experiment

    # A worker runs many configs: without this, Keras' global state (traced functions, layer registries) grows
    # run after run and every few runs a garbage collection over it stalls one run for 10-30 s.
    keras.backend.clear_session()
    config = ExperimentConfig.from_dict(config_dict)
    started = time.time()
    try:
        result = experiment.run(config, log=None, data_options=worker_data_options())
        write_run_hparams(result.run_dir, config, fields)
    except Exception as e:  # noqa: BLE001  (reported to the parent as one line; the grid goes on)
        message = " ".join(str(e).split()) or type(e).__name__
        return RunOutcome(config.run_name, time.time() - started, error=f"{type(e).__name__}: {message}")
    final = result.summary["final"].get("test_average_precision")
    return RunOutcome(config.run_name, time.time() - started, math.nan if final is None else float(final))


EXECUTORS = ("local", "inline", "ray")


def check_execution(executor: str, workers: int) -> None:
    """Raises `UserInputError` for an unknown executor or a worker count below 1."""
    check(executor in EXECUTORS, f"--executor must be one of {', '.join(EXECUTORS)}. Received: executor={executor!r}")
    check(workers > 0, f"--workers must be > 0. Received: workers={workers}")


def execute(
    configs: Sequence[ExperimentConfig],
    fields: Sequence[str],
    *,
    executor: str = "local",
    workers: int = 1,
    ray_address: str = "",
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
      on_done: progress callback.

    Returns:
      One outcome per config, in completion order.

    Raises:
      UserInputError: bad executor or worker count, Ray not installed or its cluster unreachable.
    """
    check_execution(executor, workers)
    dicts = [c.to_dict() for c in configs]
    outcomes: list[RunOutcome] = []

    def done(outcome: RunOutcome) -> None:
        outcomes.append(outcome)
        on_done(outcome)

    if executor == "inline":
        for d in dicts:
            done(run_one(d, fields, worker_threads(1)))
    elif executor == "local":
        _execute_local(dicts, fields, workers, done)
    else:
        _execute_ray(dicts, fields, ray_address, done)
    return outcomes


def _execute_local(dicts, fields, workers, done) -> None:
    import concurrent.futures
    import multiprocessing

    threads = worker_threads(workers)
    # 'spawn': TensorFlow is not fork-safe. Each worker imports it once, in the initializer.
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=min(workers, len(dicts)) or 1,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=configure_worker,
        initargs=(threads,),
    ) as pool:
        futures = [pool.submit(run_one, d, fields, threads) for d in dicts]
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
        raise UserInputError(f"--ray_address={address!r} is unreachable ({e.strerror or e})") from None


def _execute_ray(dicts, fields, ray_address, done) -> None:
    try:
        import ray
    except ImportError:
        raise UserInputError(
            "--executor=ray needs Ray: pip install -r requirements-ray.txt (Received: executor='ray')"
        ) from None
    if not ray.is_initialized():
        _check_reachable(ray_address)
        try:
            ray.init(address=ray_address or None, logging_level="ERROR", log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as e:
            message = " ".join(str(e).split())[:200]
            raise UserInputError(f"--ray_address={ray_address!r} is unreachable ({message})") from None
    task = ray.remote(num_cpus=1)(run_one)
    pending = [task.remote(d, fields, 1) for d in dicts]
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

    def __call__(self, outcome: RunOutcome) -> None:
        self.done_now += 1
        elapsed = time.time() - self.started
        remaining = self.total - self.skipped - self.done_now
        eta = elapsed / self.done_now * remaining
        status = f"FAILED {outcome.error}" if outcome.error else f"test AP {outcome.test_average_precision:.4f}"
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


def run_grid(
    spec: GridSpec,
    grid_dir: str,
    *,
    executor: str = "local",
    workers: int = 1,
    ray_address: str = "",
    shard_index: int = 0,
    shard_count: int = 1,
    log: Callable[[str], None] = print,
) -> GridOutcome:
    """Runs the unfinished runs of a grid (or of one shard of it); see `execute` for the executors.

    Raises:
      UserInputError: an invalid spec, a folder holding a different grid, a bad executor setting.
    """
    validate(spec)
    check_execution(executor, workers)
    prepare(grid_dir, spec)
    configs = shard(expand(spec, grid_dir), shard_index, shard_count)
    finished = finished_runs(grid_dir)
    todo = [c for c in configs if c.run_name not in finished]
    clean_partials(grid_dir, [c.run_name for c in todo])
    fields = hparam_fields(spec)
    write_hparams_config(grid_dir, spec)
    for config in configs:  # a run killed between publishing its folder and writing its HParams gets them now
        if config.run_name in finished:
            write_run_hparams(os.path.join(grid_dir, RUNS_DIR, config.run_name), config, fields)
    shard_note = f" (shard {shard_index}/{shard_count})" if shard_count > 1 else ""
    log(
        f"Grid {grid_dir}{shard_note}: {len(configs)} runs, {len(configs) - len(todo)} already finished, "
        f"{len(todo)} to run ({executor}, {workers if executor == 'local' else 1} worker(s))"
    )
    progress = Progress(total=len(configs), skipped=len(configs) - len(todo), log=log)
    outcomes = execute(todo, fields, executor=executor, workers=workers, ray_address=ray_address, on_done=progress)
    return GridOutcome(total=len(configs), skipped=len(configs) - len(todo), outcomes=outcomes)
