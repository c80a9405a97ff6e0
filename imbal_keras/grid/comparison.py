"""`compare`: your model and your data through strategies x seeds, from a notebook or a script, in one call.

    result = imbal_keras.compare(build_model, (x, y), strategies=["none", "class_weight", "upsample"], seeds=5,
                                 steps=2000, output_dir="comparison")
    result.summary          # per strategy: n, mean, std, CI of every metric; per pair: difference, variance ratio

It is the command line's grid (`sweep.make_spec`, `runner.run_grid`, `main.write_report`) with data and a model
function given as Python objects. Grid workers are separate processes that receive only a config, so the data is
saved once into the output folder (`data/` there, named by a digest of its content: the same data is the same
file, so a rerun resumes the grid) and the model function is referred to by its import path.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from imbal_keras.data import sources
from imbal_keras.errors import UserInputError, check
from imbal_keras.grid import launch, main, report, runner, sweep

DATA_DIR = "data"
DEFAULT_STRATEGIES = ("none", "class_weight", "upsample")


@dataclasses.dataclass(frozen=True)
class Comparison:
    """What `compare` returns: the report folder and its tables.

    Attributes:
      output_dir: the grid folder (runs, tables, report.md, report.html, plots, TensorBoard HParams).
      results: one row per run: its settings, final metrics and convergence figures (results.csv).
      curves: one row per run per evaluation (curves.csv).
      summary: per strategy (`kind` = `cell`): n, mean, std and CI of each metric across seeds; per pair of
        strategies (`kind` = `pair`): difference of means with CI, variance ratio, Brown-Forsythe p (summary.csv).
      report_paths: the tables and reports written.
    """

    output_dir: str
    results: pd.DataFrame
    curves: pd.DataFrame
    summary: pd.DataFrame
    report_paths: tuple[str, ...]

    def mean(self, metric: str = report.AUPRC) -> pd.Series:
        """Mean of `metric` across seeds, per strategy variant (the `cell` rows of `summary`)."""
        cells = self.summary[(self.summary["kind"] == "cell") & (self.summary["metric"] == metric)]
        return cells.set_index("strategy_variant")["mean"]


def compare(
    model: Callable | str = "auto",
    data: Any = None,
    *,
    strategies: Sequence[str] = DEFAULT_STRATEGIES,
    seeds: int | Sequence[int] = 5,
    output_dir: str = "comparison",
    class_counts: Sequence[int] | None = None,
    workers: int = 1,
    executor: str | None = None,
    verbose: int = 1,
    question: sweep.Question | None = None,
    metric: str | None = None,
    **settings: Any,
) -> Comparison:
    """Trains `model` on `data` under each strategy and seed, and writes the comparison's report.

    Args:
      model: a function that builds a Keras model (module level, importable: grid workers import it by path;
        its arguments are in docs/models.md), its path `package.module:function`, or a built-in `auto`, `mlp`,
        `cnn`.
      data: one of
        - `(x, y)` arrays, or a dict of splits `{"train": (x, y), "test": (x, y)[, "validation": ...]}` (see
          `sources.from_arrays`); saved as .npz;
        - a pandas DataFrame with a label column (`label_column=`, default `label`) and the table settings of
          `tabular.from_frame` (`categorical_columns=`, `drop_columns=`, `time_column=`, ...); saved as Parquet;
        - a finite `tf.data.Dataset` of `(x, y)` pairs, read once into memory; `class_counts`, if given, must
          match what it holds;
        - None: the `dataset=` setting names the data (`csv:PATH`, `tfds:NAME`, ...), as on the command line.
      strategies: registered strategy names to compare.
      seeds: how many seeds (0..n-1), or the seeds themselves.
      output_dir: the comparison's folder; rerunning with the same arguments skips finished runs.
      class_counts: examples per class of a `tf.data.Dataset` `data`, checked against the data.
      workers: worker processes (each run is one process's work); 1 runs in this process.
      executor: `inline` (this process), `local` (worker processes) or `ray`; None picks `inline` for one worker
        and `local` for more.
      verbose: 0 silent, 1 one line per finished run and the report's paths.
      question: what the report answers (`sweep.Question(compare="all:none", metric="macro_f1")`); None: every
        strategy against `none` on the task's main metric (AUPRC for K = 2, balanced accuracy for K > 2).
      metric: the question's metric, in place of `question`'s: a results.csv or curves.csv column, a bare recorded
        metric meaning its test value (`macro_f1`), `COLUMN:max` / `COLUMN:min` for any other column
        (`sweep.metric_column`); a column the tables lack is refused once they are read.
      **settings: any setting of the command line by its name (`steps`, `batch_size`, `learning_rate`,
        `eval_every`, `imbalance_ratio`, `label_column`, `categorical_columns`, a strategy parameter, ...). With
        `data` given, `imbalance_ratio` defaults to 0 (the data's own ratio).

    Returns:
      A `Comparison`.

    Raises:
      UserInputError: a model function that cannot be imported by path where it must be, data of a kind or shape
        the loaders refuse, class counts that do not match, a setting the config refuses, or runs that failed
        (after the others finished; call again to retry them). The message is one line.
    """
    log = print if verbose else (lambda _: None)
    created = ""
    seed_values = tuple(range(seeds)) if isinstance(seeds, int) else tuple(int(s) for s in seeds)
    check(len(seed_values) > 0, f"seeds must name at least one seed. Received: seeds={seeds!r}", argument="seeds")
    check(
        not isinstance(strategies, str) and len(strategies) > 0,
        f"strategies must be a list of strategy names. Received: strategies={strategies!r}",
        argument="strategies",
    )
    executor = executor or ("inline" if workers == 1 else "local")
    launch.check_execution(executor, workers)
    if metric is not None:
        question = dataclasses.replace(question or sweep.Question(), metric=metric)
    settings = dict(settings)
    settings["model"] = _model_path(model, executor)
    if data is not None:
        check(
            "dataset" not in settings,
            f"pass data or the dataset setting, not both. Received: dataset={settings.get('dataset')!r}",
            argument="dataset",
        )
        settings.setdefault("imbalance_ratio", 0.0)
        settings["dataset"], created = _save_data(data, output_dir, class_counts)
    else:
        check(class_counts is None, "class_counts applies to a tf.data.Dataset given as data", argument="class_counts")
    axes = {"strategy": tuple(strategies), "seed": seed_values}
    try:
        if question is not None:
            sweep.check_question(question, strategies)
        spec = sweep.make_spec(settings, axes, question=question or sweep.Question())
        outcome = runner.run_grid(spec, output_dir, executor=executor, workers=workers, log=log)
    except UserInputError:
        _remove_saved(created, output_dir)
        raise
    if outcome.failed:
        first = outcome.failed[0]
        raise UserInputError(
            f"{len(outcome.failed)} of {outcome.total} runs failed ({first.run_name}: {first.error}); "
            "call compare again to retry them"
        )
    paths = tuple(main.write_report(output_dir, log))
    results, curves = report.load_runs(output_dir)
    summary = pd.read_csv(os.path.join(output_dir, report.SUMMARY_FILE))
    return Comparison(output_dir=output_dir, results=results, curves=curves, summary=summary, report_paths=paths)


def _remove_saved(path: str, output_dir: str) -> None:
    """Removes a data file this call saved, and the folders it created if they are left empty."""
    if not path:
        return
    os.remove(path)
    for folder in (os.path.dirname(path), output_dir):
        if os.path.isdir(folder) and not os.listdir(folder):
            os.rmdir(folder)


def _model_path(model: Callable | str, executor: str) -> str:
    """The import path of a model function, checked to import back to the same function where runs will."""
    if isinstance(model, str):
        if model not in ("auto", "mlp", "cnn"):
            sources.import_function(model, argument="model")  # fail here, not once per run
        return model
    check(callable(model), f"model must be a function or a path. Received: model={model!r}", argument="model")
    module, name = getattr(model, "__module__", None), getattr(model, "__qualname__", "")
    check(
        bool(module) and "<" not in name,
        f"model must be a module-level function, importable by path (grid workers import it). Received: model={name}",
        argument="model",
    )
    path = f"{module}:{name}"
    check(
        sources.import_function(path, argument="model") is model,
        f"model={path!r} imports a different object than the function given (redefined?)",
        argument="model",
    )
    if module == "__main__" and executor != "inline":
        check(
            executor == "local" and getattr(sys.modules["__main__"], "__file__", None) is not None,
            f"model={path!r} is defined in an interactive session, which {executor} workers cannot import; move "
            "it to a .py module, or use workers=1",
            argument="model",
        )
    return path


def _save_data(data: Any, output_dir: str, class_counts: Sequence[int] | None) -> tuple[str, str]:
    """Saves `data` under `output_dir/data/` (once per content).

    Returns:
      The `dataset` setting that names the file, and the file's path if this call created it (else "").
    """
    if isinstance(data, pd.DataFrame):
        check(class_counts is None, "class_counts applies to a tf.data.Dataset given as data", argument="class_counts")
        buffer = io.BytesIO()
        try:
            data.to_parquet(buffer, index=False)
        except (ValueError, TypeError, ImportError) as e:  # pyarrow refuses mixed-type object columns
            raise UserInputError(
                f"data: the DataFrame cannot be saved for the runs as Parquet ({' '.join(str(e).split())[:200]})",
                argument="data",
            ) from None
        path, created = _write_once(buffer.getvalue(), output_dir, "table", ".parquet")
        return f"parquet:{path}", created
    if sources.is_tf_dataset(data):
        x, y = sources.as_arrays(data, "data")
        counts = np.bincount(y)
        if class_counts is not None:
            check(
                np.array_equal(np.asarray(class_counts), counts),
                f"class_counts does not match the dataset, which holds {counts.tolist()}. Received: "
                f"class_counts={list(class_counts)}",
                argument="class_counts",
            )
        data = (x, y)
    else:
        check(class_counts is None, "class_counts applies to a tf.data.Dataset given as data", argument="class_counts")
    arrays = _arrays_to_save(data)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path, created = _write_once(buffer.getvalue(), output_dir, "arrays", ".npz")
    return f"npz:{path}", created


def _arrays_to_save(data: Any) -> dict[str, np.ndarray]:
    """The `from_npz` keys of `(x, y)` or a dict of splits, checked by `from_arrays` before anything is written."""
    sources.from_arrays(data, name="data", where="data")
    if isinstance(data, Mapping):
        return {f"{k}_{s}": np.asarray(sources.as_arrays(v, "data")[i]) for s, v in data.items()
                for i, k in enumerate("xy")}  # fmt: skip
    x, y = sources.as_arrays(data, "data")
    return {"x": x, "y": y}


def _write_once(content: bytes, output_dir: str, stem: str, suffix: str) -> tuple[str, str]:
    """Writes `content` to `output_dir/data/<stem>-<digest><suffix>` unless it is there.

    Returns:
      The file's absolute path, and the same path if this call wrote it (else "").
    """
    digest = hashlib.sha1(content).hexdigest()[:12]
    folder = os.path.join(os.path.abspath(output_dir), DATA_DIR)
    path = os.path.join(folder, f"{stem}-{digest}{suffix}")
    if os.path.exists(path):
        return path, ""
    try:
        os.makedirs(folder, exist_ok=True)
        _write(path, content)
    except OSError as e:
        raise UserInputError(
            f"output_dir={output_dir!r} is not writable ({e.strerror or e})", argument="output_dir"
        ) from None
    return path, path


def _write(path: str, content: bytes) -> None:
    """Writes `content` under a temporary name and renames it into place, so a reader never sees half a file."""
    partial = f"{path}.partial-{os.getpid()}"
    with open(partial, "wb") as f:
        f.write(content)
    os.replace(partial, path)


__all__ = [
    "DATA_DIR",
    "DEFAULT_STRATEGIES",
    "Comparison",
    "compare",
]
