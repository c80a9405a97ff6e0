"""One run over dense (mask, sequence) or multi-label targets: `experiment.run` hands data of those kinds here.

The run trains exactly `steps` optimizer steps on its strategy's dense pipeline (a weight map, resampled examples,
crops or repeat factors: `strategies.DenseForm`) with its loss, evaluates per-class figures on validation and test
every `eval_every` steps (`dense_evaluation.DenseEvaluator`), records the pixel (token, label) composition of every
batch (`BatchComposition`), and publishes its folder as single-label runs do (`runs.stage`, `runs.publish`):
config.json, metrics.csv, result.json, composition.csv, predictions.npz (the last test evaluation) and the flags.
Dense runs train one at a time (never warm, never side by side).
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import shutil
import time
from collections.abc import Callable, Sequence

import keras
import numpy as np
import pandas as pd

from imbal_keras import callbacks as instrument
from imbal_keras import models, runs, strategies
from imbal_keras.config import BUILT_IN_MODELS, ExperimentConfig
from imbal_keras.data import sources, splits
from imbal_keras.data.dense_shares import pixel_counts, presence
from imbal_keras.errors import UserInputError, check
from imbal_keras.training import fitting
from imbal_keras.training.dense_evaluation import MAIN_FIGURE, DenseEvaluator, format_dense_summary
from imbal_keras.training.results import RunResult

__all__ = ["PATH_REASON", "context", "run"]

# Why a dense run trains on the plain path (result.json's `training_path`).
PATH_REASON = "dense and multi-label targets train one run at a time"
# The arguments a `--model=package.module:function` for dense data may take, by name.
_MODEL_ARGUMENTS = ("input_shape", "num_classes", "kind", "class_names", "hidden_units", "class_shares", "seed")


@dataclasses.dataclass
class _DenseRun:
    """A dense run past loading: its config, data, strategy context, staging folder and logger."""

    config: ExperimentConfig
    data: splits.Data
    strategy: strategies.Strategy
    ctx: strategies.DenseContext
    staging: str
    log: Callable[[str], None]
    started: float


def context(config: ExperimentConfig, data: splits.Data) -> strategies.DenseContext:
    """The strategy's `DenseContext` for a run: pixel (token) counts per class or positives per label, and which
    classes each training example contains, neither counting pixels of the data's ignore label (which it carries)."""
    y, k, ignore = data.train.y, data.num_classes, data.ignore_label
    if data.kind == "multilabel":
        counts, contains = data.train.class_counts(k, kind=data.kind), y.astype(bool)
    else:
        counts, contains = pixel_counts(y, k, ignore_label=ignore), presence(y, k, ignore_label=ignore)
    return strategies.DenseContext(
        kind=data.kind,
        class_counts=counts,
        contains=contains,
        batch_size=config.training.batch_size,
        seed=config.seed_for("order"),
        params=config.strategy.params,
        ignore_label=ignore,
    )


def run(
    config: ExperimentConfig,
    data: splits.Data,
    *,
    extra_files: dict[str, str] | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    log: Callable[[str], None] = print,
    started: float | None = None,
) -> RunResult:
    """Trains and evaluates one dense or multi-label run and publishes its run folder.

    Args:
      config: the run (validated by the caller).
      data: its data, of kind segmentation, sequence or multilabel.
      extra_files: more files for the run folder, name -> text (the entry point passes the flags).
      callbacks: extra Keras callbacks for `fit`.
      log: where progress lines go.
      started: when the run started (`time.time()`); now when None.

    Returns:
      A `RunResult`.

    Raises:
      UserInputError: a strategy or setting that does not apply to the data (nothing is written).
    """
    strategy = strategies.check_applies(config.strategy.name, data.kind)
    _check_settings(config, data)
    ctx = context(config, data)
    run_name = config.output.run_name or config.default_run_name()
    staging = runs.stage(config.output.output_dir, run_name)
    try:
        one = _DenseRun(config, data, strategy, ctx, staging, log, started or time.time())
        result = _train(one, tuple(callbacks))
        for name, text in (extra_files or {}).items():
            runs.write_text(os.path.join(staging, name), text)
        run_dir = runs.publish(staging, config.output.output_dir, run_name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    result.run_dir = run_dir
    result.summary["run_dir"] = run_dir
    log(format_dense_summary(run_dir, result.summary, result.curve))
    return result


def _check_settings(config: ExperimentConfig, data: splits.Data) -> None:
    """Refuses settings of single-label runs that mean nothing here, in one line each."""
    check(
        config.model.model == "auto" or config.model.model not in BUILT_IN_MODELS,
        f"model for {data.kind} data must be auto (the built-in {_BUILT_IN[data.kind]}) or 'package.module:function'. "
        f"Received: model={config.model.model!r}",
        argument="model",
    )
    single_label_only = {
        "diagnose_every": config.output.diagnose_every,
        "posthoc_adjustment_tau": config.training.posthoc_adjustment_tau,
        "target_distribution": ",".join(map(str, config.strategy.target_distribution)),
    }
    for name, value in single_label_only.items():
        check(
            not value, f"{name} applies to single-label data, not {data.kind}. Received: {name}={value}", argument=name
        )


_BUILT_IN = {"segmentation": "unet", "sequence": "sequence_tagger", "multilabel": "multilabel_mlp"}


def _train(one: _DenseRun, extra_callbacks: tuple) -> RunResult:
    """Builds the pipeline and the model, fits with the evaluations and the recorders, and writes the run's files."""
    config, data, ctx, training = one.config, one.data, one.ctx, one.config.training
    train_ds = strategies.build_dense_pipeline(one.strategy, data.train.x, data.train.y, ctx)
    input_shape = tuple(train_ds.element_spec[0].shape[1:])
    shares = _training_shares(one)
    model = _model(config, data, input_shape, shares)
    full_shape = tuple(data.train.x.shape[1:])
    evaluation_model = None if input_shape == full_shape else _model(config, data, full_shape, shares)
    model.compile(
        optimizer=models.optimizer(training.optimizer, training.learning_rate),
        loss=_ignoring(strategies.build_dense_loss(one.strategy, ctx), data.ignore_label),
    )
    runs.write_text(os.path.join(one.staging, runs.CONFIG_FILE), config.to_json())
    one.log(f"[{config.strategy.variant()}] {data.describe()}; {training.steps} steps of batch {training.batch_size}")
    evaluator = DenseEvaluator(data, training, one.staging, one.log, one.started, evaluation_model)
    recorders = _recorders(one)
    fit_started = time.time()
    try:
        fitting.fit_for_budget(model, train_ds, training, [evaluator, *recorders, *extra_callbacks])
    finally:
        evaluator.close()
    return _finish(one, evaluator, recorders, shares, fit_started)


def _ignoring(loss: keras.losses.Loss, ignore_label: int | None) -> keras.losses.Loss:
    """`loss` rebuilt to leave out targets equal to `ignore_label` (Keras's `ignore_class`, or the `ignore_label`
    of the toolkit's dense losses); `loss` itself when there is none."""
    if ignore_label is None:
        return loss
    config = loss.get_config()
    key = "ignore_label" if "ignore_label" in config else "ignore_class"
    check(
        key in config,
        f"ignore_label needs a loss that can leave pixels out; {type(loss).__name__} cannot. "
        f"Received: ignore_label={ignore_label}",
        argument="ignore_label",
    )
    return type(loss).from_config({**config, key: ignore_label})


def _training_shares(one: _DenseRun) -> np.ndarray:
    """The class shares the output bias starts at: pixel (token) shares of the training split, times the class
    weights of a weight map; positive shares of each label for multi-label targets."""
    counts = one.ctx.class_counts.astype(np.float64)
    if one.data.kind == "multilabel":
        return counts / len(one.data.train)
    form = one.strategy.dense
    weights = form.class_weights(one.ctx) if form.class_weights is not None else np.ones_like(counts)
    return counts * weights / (counts @ weights)


def _model(config: ExperimentConfig, data: splits.Data, input_shape: tuple, shares: np.ndarray) -> keras.Model:
    """The built-in model of the data's kind, or the user's function's, for inputs of `input_shape`."""
    seed = config.seed_for("init")
    keras.utils.set_random_seed(seed)
    k = data.num_classes
    if config.model.model == "auto":
        if data.kind == "segmentation":
            return models.unet(input_shape, k, class_shares=shares, seed=seed)
        if data.kind == "sequence":
            vocabulary = int(max(data.train.x.max(), data.validation.x.max(), data.test.x.max())) + 1
            return models.sequence_tagger(vocabulary, k, class_shares=shares, seed=seed)
        return models.multilabel_mlp(input_shape[0], k, hidden_units=config.model.hidden_units,
                                     label_shares=shares, seed=seed)  # fmt: skip
    function = sources.import_function(config.model.model, argument="model")
    arguments = dict(input_shape=input_shape, num_classes=k, kind=data.kind, class_names=data.class_names,
                     hidden_units=config.model.hidden_units, class_shares=shares, seed=seed)  # fmt: skip
    accepted = inspect.signature(function).parameters
    try:
        built = function(**{name: arguments[name] for name in _MODEL_ARGUMENTS if name in accepted})
    except Exception as e:  # noqa: BLE001  (the user's code: one line)
        raise UserInputError(
            f"model={config.model.model!r} raised {type(e).__name__}: {' '.join(str(e).split())[:300]}",
            argument="model",
        ) from None
    check(
        isinstance(built, keras.Model),
        f"model={config.model.model!r} returned {type(built).__name__}, not a keras.Model",
        argument="model",
    )
    return built


def _recorders(one: _DenseRun) -> list:
    """The default instrumentation: composition of every batch (pixels, tokens or label positives per class);
    per-class gradients under a per-pixel cross-entropy of masks and sequences."""
    output = one.config.output
    minority = int(np.argmin(one.ctx.class_counts))
    gradients = (
        output.gradient_every_n_steps if one.strategy.dense.loss is None and one.data.kind != "multilabel" else 0
    )
    # The ignore label is passed, not read from the loss: the toolkit's dense losses call it `ignore_label`.
    common = dict(minority_class=minority, ignore_class=one.data.ignore_label)
    recorders = [instrument.BatchComposition(one.staging, **common)] if output.log_composition else []
    if gradients:
        recorders.append(instrument.PerClassGradients(one.staging, every_n_steps=gradients, **common))
    return recorders


_FILES = {"BatchComposition": runs.COMPOSITION_FILE, "PerClassGradients": runs.GRADIENTS_FILE}


def _finish(one: _DenseRun, evaluator: DenseEvaluator, recorders: list, shares, fit_started: float) -> RunResult:
    """Writes the run's tables, predictions and result.json into its staging folder."""
    config, data, staging = one.config, one.data, one.staging
    curve = pd.DataFrame(evaluator.rows)
    curve.to_csv(os.path.join(staging, runs.METRICS_FILE), index=False)
    for callback in recorders:
        callback.to_csv(os.path.join(staging, _FILES[type(callback).__name__]))
    evaluator.save_predictions(os.path.join(staging, runs.PREDICTIONS_FILE))
    form = one.strategy.dense
    main = f"validation_{MAIN_FIGURE[data.kind]}"
    summary = {
        "config": config.to_dict(),
        "dataset": data.name,
        "kind": data.kind,
        "class_names": list(data.class_names),
        "class_counts": {s: _counts(data, part).tolist() for s, part in data.splits().items()},
        "ignore_label": data.ignore_label,
        "examples": {s: len(part) for s, part in data.splits().items()},
        "num_features": int(np.prod(data.train.x.shape[1:])),
        "dropped": [],
        "target_distribution": [],
        "training_distribution": np.asarray(shares).tolist(),
        "class_weights": form.class_weights(one.ctx).tolist() if form.class_weights is not None else None,
        "final": curve.iloc[-1].to_dict(),
        "best_validation_average_precision_step": _best_step(curve, "validation_average_precision"),
        "best_validation_step": _best_step(curve, main),
        "train_seconds": round(time.time() - one.started, 3),
        "fit_seconds": round(time.time() - fit_started, 3),
        "instrumentation": instrument.summarize(recorders),
        "training_path": {"mode": "plain", "reason": PATH_REASON},
    }
    runs.write_json(os.path.join(staging, runs.RESULT_FILE), summary)
    return RunResult(run_dir=staging, config=config, curve=curve, summary=summary)


def _counts(data: splits.Data, part: splits.Split) -> np.ndarray:
    """Pixels (tokens) per class of a split, its ignore label left out; positives per label for multi-label data."""
    if data.kind == "multilabel":
        return part.class_counts(data.num_classes, kind=data.kind)
    return pixel_counts(part.y, data.num_classes, ignore_label=data.ignore_label)


def _best_step(curve: pd.DataFrame, column: str) -> int | None:
    """The step of the best value of `column`, or None when it was never defined."""
    return int(curve.loc[curve[column].idxmax(), "step"]) if curve[column].notna().any() else None
