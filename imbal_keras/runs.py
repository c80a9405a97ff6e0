"""The run record: one folder per finished run, its files, and one results row per run.

A run folder holds:

  config.json       the `ExperimentConfig` tree
  metrics.csv       one row per evaluation (step, train loss, validation and test metrics)
  result.json       final and best figures, data and strategy facts, timings, instrumentation summaries
  composition.csv   class make-up of every batch (the `BatchComposition` callback)
  gradients.csv     per-class losses, gradient norms, cosines and update sizes (`PerClassGradients`)
  diagnostics.csv   gradient-noise diagnostics along training (`diagnostics.GradientNoise`, with diagnose_every)
  flags.txt         the command line's flags, when the run came from `run_experiment.py`
  events.out...     TensorBoard scalars

A folder is assembled under a hidden staging name (`.partial-<run name>.<random>`) and published by one atomic
rename only when the run has finished, so a folder that holds `result.json` is a finished run and anything else
is not; an existing folder is never replaced. The experiment writes through this module, the grid lists and
cleans through it, and the report reads through it: nothing else knows the file names.

This module does not import TensorFlow.
"""

from __future__ import annotations

import dataclasses
import glob
import itertools
import json
import math
import os
import shutil
import tempfile
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
STAGING_PREFIX = ".partial-"
INSTRUMENTATION_PREFIX = "instrumentation_"
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
    """Creates the hidden folder a run is assembled in.

    Raises:
      UserInputError: `output_dir` cannot be written.
    """
    try:
        os.makedirs(output_dir, exist_ok=True)
        return tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{run_name}.", dir=output_dir)
    except OSError as e:
        raise UserInputError(
            f"output_dir={output_dir!r} is not writable ({e.strerror or e})", argument="output_dir"
        ) from None


def publish(staging: str, output_dir: str, run_name: str) -> str:
    """Renames a finished staging folder into place; never replaces an existing run (adds -2, -3, ...).

    Returns:
      The run folder.
    """
    for n in itertools.count(1):
        candidate = os.path.join(output_dir, run_name if n == 1 else f"{run_name}-{n}")
        if not os.path.exists(candidate):
            os.rename(staging, candidate)
            return candidate
    raise AssertionError("unreachable")


def write_text(path: str, text: str) -> None:
    """Writes a file of a staging folder (not yet visible as a run, so no atomic rename is needed)."""
    with open(path, "w") as f:
        f.write(text)


def write_json(path: str, value: Any) -> None:
    """Writes `value` as JSON; numpy scalars become numbers and NaN becomes null."""
    write_text(path, json.dumps(_jsonable(value), indent=2))


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


def is_finished(run_dir: str) -> bool:
    """Whether `run_dir` is a published, finished run."""
    return not os.path.basename(run_dir).startswith(".") and os.path.exists(os.path.join(run_dir, RESULT_FILE))


def finished_runs(runs_dir: str) -> list[str]:
    """Names of the finished run folders directly under `runs_dir`, sorted."""
    pattern = os.path.join(glob.escape(runs_dir), "*", RESULT_FILE)
    return sorted(os.path.basename(os.path.dirname(p)) for p in glob.glob(pattern) if is_finished(os.path.dirname(p)))


def clean_partials(runs_dir: str, names) -> int:
    """Removes staging folders left by killed runs of `names` (only those: other shards may be running).

    Returns:
      How many were removed.
    """
    removed = 0
    for name in names:
        for path in glob.glob(os.path.join(glob.escape(runs_dir), f"{STAGING_PREFIX}{glob.escape(name)}.*")):
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return removed


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
        staging = os.path.join(runs_dir, f"{STAGING_PREFIX}{name}.merge")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(os.path.join(source_runs_dir, name), staging)
        os.rename(staging, os.path.join(runs_dir, name))
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
    config = record.config
    row: dict[str, Any] = {"run_name": record.run_name, "strategy_variant": config.strategy.variant()}
    output = config_lib.fields_with_role("output")
    for key, value in config.flat().items():
        if key not in output:
            row[key] = ",".join(map(str, value)) if isinstance(value, tuple) else value
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
