"""The run record: one folder per finished run, its files, and one results row per run.

A run folder holds:

  config.json       the `ExperimentConfig` tree
  metrics.csv       one row per evaluation (step, train loss, validation and test metrics)
  result.json       final and best figures, data and strategy facts, timings, instrumentation summaries
  composition.csv   class make-up of every batch (the `BatchComposition` callback)
  gradients.csv     per-class losses, gradient norms, cosines and update sizes (`PerClassGradients`)
  diagnostics.csv   gradient-noise diagnostics along training (`diagnostics.GradientNoise`, with diagnose_every)
  predictions.npz   dense and multi-label runs: the last test evaluation's targets and predictions
  flags.txt         the command line's flags, when the run came from `run_experiment.py`
  events.out...     TensorBoard scalars, and the run's HParams (`write_run_hparams`, for runs of a grid)

A folder is assembled under a hidden staging name (`.partial-<run name>.<pid>@<host>.<random>`, naming the
process that writes it) and published by one atomic rename only when the run has finished, so a folder that
holds `result.json` is a finished run and anything else is not. An existing finished folder is never replaced:
a second copy of the same run is discarded. Folders and files are created with the user's umask. The
experiment writes through this module, the grid lists and cleans through it and writes TensorBoard's HParams
through it, and the report reads through it: nothing else knows the file names.

This module does not import TensorFlow (the HParams writers import it when they are called).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import glob
import json
import math
import os
import secrets
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from imbal_keras import config as config_lib
from imbal_keras.config import ExperimentConfig
from imbal_keras.errors import UserInputError

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.csv"
RESULT_FILE = "result.json"
FLAGS_FILE = "flags.txt"
COMPOSITION_FILE = "composition.csv"
GRADIENTS_FILE = "gradients.csv"
DIAGNOSTICS_FILE = "diagnostics.csv"
PREDICTIONS_FILE = "predictions.npz"
STAGING_PREFIX = ".partial-"
_HPARAMS_SUFFIX = ".hparams"
INSTRUMENTATION_PREFIX = "instrumentation_"
# Errors of a full disk, a quota or a limit on file sizes: what is complete stays, and the message says so.
STORAGE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
# Age after which a hidden staging folder another host wrote is a leftover of a killed process, not one being
# written.
_STALE_SECONDS = 3600
# Metrics every run records as `validation_<name>` / `test_<name>` in metrics.csv (TensorBoard `test/<name>`),
# summarised by the report and listed in TensorBoard's HParams tab.
METRIC_NAMES = (
    "average_precision",
    "roc_auc",
    "balanced_accuracy",
    "macro_f1",
    "f1_at_0.5",
    "f1_at_best_threshold",
    "log_loss",
    "brier",
)


@dataclasses.dataclass
class RunRecord:
    """A finished run as read back from its folder.

    Attributes:
      run_dir: the folder.
      config: the config that ran.
      curve: one row per evaluation (metrics.csv).
      summary: result.json.
    """

    run_dir: str
    config: ExperimentConfig
    curve: pd.DataFrame
    summary: dict[str, Any]

    @property
    def run_name(self) -> str:
        return os.path.basename(self.run_dir)

    def steps_table(self, file: str) -> pd.DataFrame | None:
        """A per-step table of the run (`COMPOSITION_FILE`, `GRADIENTS_FILE`), or None if it was not recorded."""
        path = os.path.join(self.run_dir, file)
        return pd.read_csv(path) if os.path.exists(path) else None


def stage(output_dir: str, run_name: str) -> str:
    """Creates the hidden folder a run is assembled in, named after this process (see `clean_partials`).

    Raises:
      UserInputError: `output_dir` cannot be written.
    """
    try:
        os.makedirs(output_dir, exist_ok=True)
        path = os.path.join(output_dir, f"{STAGING_PREFIX}{run_name}.{_owner()}.{secrets.token_hex(4)}")
        os.mkdir(path)
        return path
    except OSError as e:
        raise UserInputError(
            f"output_dir={output_dir!r} is not writable ({e.strerror or e})", argument="output_dir"
        ) from None


def publish(staging: str, output_dir: str, run_name: str) -> str:
    """Renames a finished staging folder into place as `output_dir/run_name`.

    A finished run of that name already there (another process ran the same config) is kept and the staging
    folder discarded: the same config gives the same run, and no `-2` copy is ever made.

    Returns:
      The run folder.

    Raises:
      UserInputError: `output_dir/run_name` exists and is not a finished run.
    """
    target = os.path.join(output_dir, run_name)
    try:
        os.rename(staging, target)
        return target
    except OSError as e:
        if e.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.EISDIR, errno.ENOTDIR):
            raise
    if is_finished(target):
        shutil.rmtree(staging, ignore_errors=True)
        return target
    raise UserInputError(
        f"output_dir={output_dir!r} already holds {run_name!r}, which is not a finished run; move it away",
        argument="output_dir",
    )


def write_text(path: str, text: str) -> None:
    """Writes a file of a staging folder (not yet visible as a run, so no atomic rename is needed)."""
    with open(path, "w") as f:
        f.write(text)


def write_json(path: str, value: Any) -> None:
    """Writes `value` as JSON; numpy scalars become numbers and NaN becomes null."""
    write_text(path, json.dumps(_jsonable(value), indent=2))


def write_npz(path: str, **arrays: np.ndarray) -> None:
    """Writes arrays into a compressed `.npz` file (`np.savez_compressed`)."""
    np.savez_compressed(path, **arrays)


def write_atomically(path: str, text: str) -> None:
    """Writes `text` to a temporary file beside `path` and renames it over `path`: readers see old or new."""
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=os.path.dirname(path) or ".")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes it 0600; the file is the user's, as any other they write
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def is_finished(run_dir: str) -> bool:
    """Whether `run_dir` is a published, finished run."""
    return not os.path.basename(run_dir).startswith(".") and os.path.exists(os.path.join(run_dir, RESULT_FILE))


def finished_runs(runs_dir: str) -> list[str]:
    """Names of the finished run folders directly under `runs_dir`, sorted."""
    pattern = os.path.join(glob.escape(runs_dir), "*", RESULT_FILE)
    return sorted(os.path.basename(os.path.dirname(p)) for p in glob.glob(pattern) if is_finished(os.path.dirname(p)))


def clean_partials(runs_dir: str, names) -> int:
    """Removes staging folders left by killed runs of `names` (only those: other shards may be running).

    A staging folder is left only when the process that writes it is gone: on this host, its pid is not alive;
    on another host (a shared disk), it has not changed for an hour. A live process's folder is never removed.

    Returns:
      How many were removed.
    """
    removed = 0
    for name in names:
        prefix = os.path.join(runs_dir, f"{STAGING_PREFIX}{name}.")
        for path in glob.glob(f"{glob.escape(prefix)}*"):
            if _abandoned(path[len(prefix) :].rsplit(".", 1)[0], path):
                shutil.rmtree(path, ignore_errors=True)
                removed += 1
    return removed


def storage_fault(error: BaseException) -> str:
    """The reason, if `error` is a full disk, a quota or a file-size limit (an `OSError` of `STORAGE_ERRNOS`, or
    an error of a native writer such as TensorFlow's that carries the same system message); else empty."""
    if isinstance(error, OSError) and error.errno in STORAGE_ERRNOS:
        return error.strerror or os.strerror(error.errno)
    text = str(error)
    return next((os.strerror(n) for n in STORAGE_ERRNOS if os.strerror(n) in text), "")


def umask() -> int:
    """This process's umask (read without changing it where the system allows)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def process_alive(pid: int) -> bool:
    """Whether a process of this pid runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _owner() -> str:
    """`<pid>@<host>`: the process that writes a staging folder."""
    return f"{os.getpid()}@{socket.gethostname()}"


def _abandoned(owner: str, path: str) -> bool:
    """Whether the staging folder at `path`, written by `owner` (`<pid>@<host>`), is a leftover."""
    pid, at, host = owner.partition("@")
    if at and pid.isdigit() and host == socket.gethostname():
        return int(pid) != os.getpid() and not process_alive(int(pid))
    try:  # another host's folder (or one of an older version): stale once untouched for an hour
        return time.time() - os.path.getmtime(path) > _STALE_SECONDS
    except OSError:
        return False


def copy_finished(source_runs_dir: str, runs_dir: str) -> int:
    """Copies finished runs of `source_runs_dir` that `runs_dir` lacks, each staged and renamed into place.

    Returns:
      How many runs were copied.
    """
    have = set(finished_runs(runs_dir))
    copied = 0
    for name in finished_runs(source_runs_dir):
        if name in have:
            continue
        staging = os.path.join(runs_dir, f"{STAGING_PREFIX}{name}.{_owner()}.merge")
        shutil.rmtree(staging, ignore_errors=True)
        try:
            shutil.copytree(os.path.join(source_runs_dir, name), staging)
            publish(staging, runs_dir, name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        copied += 1
    return copied


def read(run_dir: str) -> RunRecord:
    """Reads a finished run folder.

    Raises:
      UserInputError: the folder is not a finished run, or was written by an older version of the toolkit.
    """
    if not is_finished(run_dir):
        raise UserInputError(f"run_dir={run_dir!r} is not a finished run (it has no {RESULT_FILE})")
    with open(os.path.join(run_dir, CONFIG_FILE)) as f:
        tree = json.load(f)
    if "data" not in tree:
        raise UserInputError(
            f"run_dir={run_dir!r} was written by an older imbal_keras (flat {CONFIG_FILE}); rerun it into a new folder"
        )
    with open(os.path.join(run_dir, RESULT_FILE)) as f:
        summary = json.load(f)
    return RunRecord(
        run_dir, ExperimentConfig.from_dict(tree), pd.read_csv(os.path.join(run_dir, METRICS_FILE)), summary
    )


def results_row(record: RunRecord) -> dict[str, Any]:
    """One row of the results table: the flat config, the final metrics and the run's facts.

    Columns: `run_name`, `strategy_variant` (see `StrategyConfig.variant`), every flat config field (lists
    joined by commas; strategy parameters a run's strategy does not declare are absent and become NaN in a
    table), `data_seed`/`init_seed`/`order_seed` resolved to the seeds actually used, the final evaluation's
    metrics, `final_step`, `best_validation_average_precision_step`, `train_seconds`, per class
    `train_count_class_{c}`, `class_weight_class_{c}`, `training_share_class_{c}`, `class_group_class_{c}` (head /
    medium / tail for K > 2, see `longtail.class_groups`), `mean_example_weight`, and the callbacks' summaries as
    `instrumentation_*`.
    """
    config = record.config.resolved()
    row: dict[str, Any] = {"run_name": record.run_name, "strategy_variant": config.strategy.variant()}
    output = config_lib.fields_with_role("output")
    for key, value in config.flat().items():
        if key not in output:
            row[key] = ",".join(map(str, value)) if isinstance(value, tuple) else value
    row.update(data_used(record))
    for source in ("data", "init", "order"):
        row[f"{source}_seed"] = config.seed_for(source)
    summary = record.summary
    final = dict(summary["final"])
    row["final_step"] = int(final.pop("step"))
    final.pop("elapsed_seconds", None)
    row.update({k: math.nan if v is None else v for k, v in final.items()})
    row["best_validation_average_precision_step"] = summary.get("best_validation_average_precision_step")
    row["train_seconds"] = summary.get("train_seconds")
    counts = summary["class_counts"]["train"]
    weights = summary.get("class_weights") or [1.0] * len(counts)
    for c, (n, w, share) in enumerate(zip(counts, weights, summary["training_distribution"], strict=True)):
        row[f"train_count_class_{c}"] = n
        row[f"class_weight_class_{c}"] = w
        row[f"training_share_class_{c}"] = share
    for c, group in enumerate(summary.get("class_groups") or []):
        row[f"class_group_class_{c}"] = group
    row["mean_example_weight"] = float(np.dot(counts, weights) / np.sum(counts))
    for key, value in (summary.get("instrumentation") or {}).items():
        row[f"{INSTRUMENTATION_PREFIX}{key}"] = value
    return row


# Columns of the data a run actually used (`data_used`).
DATA_USED_COLUMNS = ("data_rows", "data_features", "data_class_counts_train", "data_class_counts_validation",
                     "data_class_counts_test", "data_dropped")  # fmt: skip


def data_used(record: RunRecord) -> dict[str, Any]:
    """The data a run actually trained and was evaluated on, as results columns.

    `data_rows` (all splits), `data_features` (values per example, from result.json; for older runs of
    synthetic data, its `num_features`), `data_class_counts_<split>` (counts per class joined by `/`) and
    `data_dropped` (rows of each class an imposed `imbalance_ratio` left out, joined by `/`; empty when none
    was). The config's `num_examples` and `num_features` describe only synthetic data: for other data they are
    NaN in the results, where these columns say what was used.
    """
    summary, config = record.summary, record.config
    counts = summary.get("class_counts", {})
    features = summary.get("num_features")
    if features is None and config.data.kind == "synthetic":
        features = config.data.num_features
    dropped = summary.get("dropped") or []
    row: dict[str, Any] = {
        # Dense and multi-label runs count pixels or label positives per class: their rows are their examples.
        "data_rows": int(
            sum(summary["examples"].values()) if "examples" in summary else sum(map(sum, counts.values()))
        ),
        "data_features": math.nan if features is None else features,
    }
    for split in ("train", "validation", "test"):
        row[f"data_class_counts_{split}"] = "/".join(map(str, counts.get(split, [])))
    row["data_dropped"] = "/".join(map(str, dropped)) if any(dropped) else ""
    if config.data.kind != "synthetic":
        row.update(num_examples=math.nan, num_features=math.nan)
    return row


# TensorBoard HParams.

# The hidden folder a grid's HParams experiment summary is staged in, inside the grid folder.
_GRID_HPARAMS_STAGING = ".partial-hparams-"


def write_hparams_config(grid_dir: str, axes: Mapping[str, Sequence]) -> None:
    """Writes the HParams experiment summary (the axes and their values, the metrics) at the grid root, once.

    Staged in a hidden folder inside the grid folder, never beside it: the grid folder's parent may not be
    writable, and is not the user's to write in. A process killed while writing leaves that folder; a later call
    removes it once it is an hour old (shards of one grid may be writing theirs at the same moment).

    Args:
      grid_dir: the grid folder.
      axes: flat name -> values of every axis shown as a hyperparameter, in display order.
    """
    for leftover in glob.glob(os.path.join(glob.escape(grid_dir), f"{_GRID_HPARAMS_STAGING}*")):
        with contextlib.suppress(OSError):
            if time.time() - os.path.getmtime(leftover) > _STALE_SECONDS:
                shutil.rmtree(leftover, ignore_errors=True)
    if glob.glob(os.path.join(glob.escape(grid_dir), f"*{_HPARAMS_SUFFIX}")):
        return
    from tensorboard.plugins.hparams import api as hp

    hparams = [hp.HParam(f, hp.Discrete([_hparam_value(v) for v in values])) for f, values in axes.items()]
    metrics = [
        hp.Metric(f"{split}/{name}", display_name=f"{split} {name}")
        for split in ("test", "validation")
        for name in METRIC_NAMES
    ]
    _write_events(
        grid_dir, lambda: hp.hparams_config(hparams=hparams, metrics=metrics), _GRID_HPARAMS_STAGING, grid_dir
    )


def write_run_hparams(run_dir: str, config: ExperimentConfig, fields: Sequence[str]) -> None:
    """Writes the run's hyperparameters (`fields` of its config) into its folder, where its `test/*` scalars are,
    unless they are there."""
    if glob.glob(os.path.join(glob.escape(run_dir), f"*{_HPARAMS_SUFFIX}")):
        return
    from tensorboard.plugins.hparams import api as hp

    flat = config.flat()
    # A strategy parameter the run's strategy does not declare has no value in that run.
    values = {f: _hparam_value(flat[f]) for f in fields if f in flat}
    # Staged as one of the run's partial folders, so a worker killed while writing leaves nothing a rerun keeps.
    staging_prefix = f"{STAGING_PREFIX}{os.path.basename(os.path.normpath(run_dir))}.{_owner()}.hparams-"
    _write_events(
        run_dir,
        lambda: hp.hparams(values, trial_id=config.output.run_name),
        staging_prefix,
        os.path.dirname(os.path.abspath(run_dir)),
    )


def _hparam_value(value: Any) -> Any:
    return value if isinstance(value, (bool, int, float, str)) else str(value)


def _write_events(directory: str, write: Callable[[], Any], staging_prefix: str, staging_parent: str) -> None:
    """Writes one summary into its own event file, staged in a new folder of `staging_parent` and moved into
    `directory`, so it is never half there."""
    import tensorflow as tf

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


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    return value


__all__ = [
    "COMPOSITION_FILE",
    "CONFIG_FILE",
    "DATA_USED_COLUMNS",
    "DIAGNOSTICS_FILE",
    "PREDICTIONS_FILE",
    "FLAGS_FILE",
    "GRADIENTS_FILE",
    "INSTRUMENTATION_PREFIX",
    "METRICS_FILE",
    "METRIC_NAMES",
    "RESULT_FILE",
    "STAGING_PREFIX",
    "STORAGE_ERRNOS",
    "RunRecord",
    "clean_partials",
    "copy_finished",
    "data_used",
    "finished_runs",
    "is_finished",
    "process_alive",
    "publish",
    "read",
    "results_row",
    "stage",
    "storage_fault",
    "umask",
    "write_atomically",
    "write_hparams_config",
    "write_json",
    "write_npz",
    "write_run_hparams",
    "write_text",
]
