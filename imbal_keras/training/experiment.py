"""One run: the only place where data, strategy, model, loss and callbacks meet.

`run(config)` trains for exactly `config.training.steps` optimizer steps (the budget that makes strategies
comparable), evaluates on the natural-ratio validation and test splits every `eval_every` steps, and writes one
run folder under `config.output.output_dir` through `imbal_keras.runs` (which owns the folder's format and its
atomic publication). It trains warm or plain as `imbal_keras.training.plan.plan_run` says.

The pieces of a run that seeds side by side (`imbal_keras.training.side_by_side`) share are public here: `load_data`
and `setup` (data, strategy, pipeline and initial bias), `log_start`, `StepBudget` (exactly `steps` steps),
`Evaluator` (the evaluation rows, from the run's own forward pass or from given probabilities) and
`evaluate_replicas` (every replica's rows at once), `prediction_rows`,
and `finish` (a `TrainedRun`'s tables and result.json).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from collections.abc import Callable, Sequence

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from imbal_keras import callbacks as instrument
from imbal_keras import losses, metrics, models, runs, strategies
from imbal_keras.callbacks import events as instrument_events
from imbal_keras.callbacks.step_loss import StepLoss
from imbal_keras.config import ExperimentConfig, validate_target_distribution
from imbal_keras.data import longtail, sources, splits
from imbal_keras.data.shares import balanced
from imbal_keras.errors import check
from imbal_keras.training import dense_run, fitting, initialization, plan
from imbal_keras.training.fitting import StepBudget
from imbal_keras.training.results import RunResult
from imbal_keras.training.warm import Entry, WarmModels, snapshot_optimizer, steps_per_call

__all__ = [
    "Evaluator",
    "RunResult",
    "Setup",
    "StepBudget",
    "TrainedRun",
    "evaluate_replicas",
    "finish",
    "format_summary",
    "gradient_noise",
    "load_data",
    "log_start",
    "prediction_rows",
    "run",
    "setup",
]

# Input values per forward call of the evaluation (rows = this / values per example, at least 4096).
_PREDICT_VALUES = 2**22
# Per-step tables of the default training callbacks, by callback class.
_INSTRUMENTATION_FILES = {"BatchComposition": runs.COMPOSITION_FILE, "PerClassGradients": runs.GRADIENTS_FILE}


def run(
    config: ExperimentConfig,
    *,
    extra_files: dict[str, str] | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    log: Callable[[str], None] | None = print,
    data_options: tf.data.Options | None = None,
    warm: WarmModels | None = None,
) -> RunResult:
    """Trains and evaluates one configuration and writes its run folder.

    The run trains warm when `plan.plan_run` says it can (and `warm` is given), else on the plain path; result.json
    says which (`training_path`).

    Args:
      config: the run; validated here.
      extra_files: more files to write into the run folder, name -> text (the entry point passes the flags).
      callbacks: extra Keras callbacks for `fit` (they log into the run folder if they take a log_dir).
      log: where progress lines go; None is silent.
      data_options: `tf.data.Options` applied to the training pipeline (grid workers turn autotuning off with
        them). Options change how the pipeline runs, never which batches it yields.
      warm: a cache of compiled models (`imbal_keras.training.warm`): a run of a shape seen before reuses its compiled
        functions and starts over from its own seeds, with the same results. None builds everything.

    Returns:
      A `RunResult`.

    Raises:
      UserInputError: a bad config, dataset or output folder. Nothing is written in that case.
    """
    log = log or (lambda _: None)
    config.validate()
    _check_diagnosable(config)
    started = time.time()
    data, target = load_data(config, warm)
    if data.kind in strategies.DENSE_KINDS:  # masks, tag sequences, multi-label targets: a run of their own
        return dense_run.run(config, data, extra_files=extra_files, callbacks=callbacks, log=log, started=started)
    strategies.check_applies(config.strategy.name, data.kind)
    output_dir = config.output.output_dir
    run_name = config.output.run_name or config.default_run_name()
    staging = runs.stage(output_dir, run_name)
    try:
        one = _OneRun(config, data, target, staging, log, started, tuple(callbacks), data_options, warm)
        result = _train_and_evaluate(one)
        for name, text in (extra_files or {}).items():
            runs.write_text(os.path.join(staging, name), text)
        run_dir = runs.publish(staging, output_dir, run_name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    result.run_dir = run_dir
    result.summary["run_dir"] = run_dir
    log(format_summary(result))
    return result


def load_data(config: ExperimentConfig, warm: WarmModels | None) -> tuple[splits.Data, tuple[float, ...]]:
    """The run's data, checked against its batch size, and its target distribution.

    Warm workers keep the last few datasets (runs of a grid share them across seeds).

    Raises:
      UserInputError: a dataset that does not load, a batch larger than the training split, a bad target.
    """
    seed = config.seed_for("data")
    load = lambda: sources.load(config.data, seed=seed)  # noqa: E731
    data = load() if warm is None else warm.dataset((repr(config.data), seed), load)
    batch_size = config.training.batch_size
    check(
        batch_size <= len(data.train),
        f"batch_size={batch_size} is larger than the training split ({len(data.train)} examples)",
        argument="batch_size",
    )
    target = validate_target_distribution(
        config.strategy.target_distribution or tuple(balanced(data.num_classes)), data.num_classes
    )
    return data, target


@dataclasses.dataclass
class Setup:
    """What a run builds before its model: the strategy in its context, the training pipeline and the output
    layer's starting point (shared by the one-run path and seeds side by side, `imbal_keras.training.side_by_side`).

    Attributes:
      strategy: the run's registered strategy.
      ctx: the strategy's context (class counts, target, batch size, order seed, parameters, step budget).
      train_ds: the training pipeline, or None when the caller builds it (seeds side by side).
      training_distribution: (K,) the class distribution the strategy trains on.
      output_bias: the output layer's initial bias (`initialization.initial_output_bias`); None until the caller
        sets it when `setup` was asked for none.
      init_seed: the seed of the initial weights.
      minority: the class with the fewest training examples.
    """

    strategy: strategies.Strategy
    ctx: strategies.StrategyContext
    train_ds: tf.data.Dataset | None
    training_distribution: np.ndarray
    output_bias: np.ndarray | None
    init_seed: int
    minority: int

    def build_model(self, config: ExperimentConfig, data: splits.Data, log) -> keras.Model:
        """The run's model with its initial weights (seeded by the run's initialisation seed)."""
        keras.utils.set_random_seed(self.init_seed)
        return models.build_for_run(
            config.model.model,
            data,
            hidden_units=config.model.hidden_units,
            training_distribution=self.training_distribution,
            output_bias=self.output_bias,
            zero_output_kernel=config.model.zero_output_kernel,
            seed=self.init_seed,
            log=log,
        )


def setup(
    config: ExperimentConfig, data: splits.Data, target, data_options, *, pipeline: bool = True, bias: bool = True
) -> Setup:
    """A run's `Setup`.

    Args:
      config: the run.
      data: its data (`load_data`).
      target: its target distribution (`load_data`).
      data_options: `tf.data.Options` for the pipeline, or None.
      pipeline: build the training pipeline; without it `train_ds` is None (seeds side by side build theirs
        together).
      bias: find the initial output bias; without it `output_bias` is None (seeds side by side find a pack's
        together, `initialization.initial_output_biases`).
    """
    training = config.training
    strategy = strategies.get(config.strategy.name)
    counts = data.train.class_counts(data.num_classes)
    ctx = strategies.StrategyContext(
        class_counts=counts,
        target_distribution=np.asarray(target),
        batch_size=training.batch_size,
        seed=config.seed_for("order"),
        params=config.strategy.params,
        total_steps=training.steps,
    )
    train_ds = strategies.build_pipeline(strategy, data.train.x, data.train.y, ctx) if pipeline else None
    if data_options is not None and train_ds is not None:
        train_ds = train_ds.with_options(data_options)
    return Setup(
        strategy=strategy,
        ctx=ctx,
        train_ds=train_ds,
        training_distribution=strategy.training_distribution(ctx),
        output_bias=initialization.initial_output_bias(strategy, ctx, data.train.y) if bias else None,
        init_seed=config.seed_for("init"),
        minority=int(np.argmin(counts)),
    )


@dataclasses.dataclass
class _OneRun:
    """The arguments of one run on the one-run path (`run`), past validation and data loading."""

    config: ExperimentConfig
    data: splits.Data
    target: tuple[float, ...]
    staging: str
    log: Callable[[str], None]
    started: float
    callbacks: tuple[keras.callbacks.Callback, ...]
    data_options: tf.data.Options | None
    warm: WarmModels | None


def _train_and_evaluate(one: _OneRun) -> RunResult:
    """Builds (or takes warm) the run's model, fits it with its evaluations and recorders, and finishes the run."""
    config, data, training = one.config, one.data, one.config.training
    run_setup = setup(config, data, one.target, one.data_options)
    strategy, ctx, counts = run_setup.strategy, run_setup.ctx, run_setup.ctx.class_counts
    path = plan.plan_run(config, extra_callbacks=one.callbacks, warm_enabled=one.warm is not None)
    model, recorders, functions = _model_and_recorders(one, run_setup, path)
    runs.write_text(os.path.join(one.staging, runs.CONFIG_FILE), config.to_json())
    log_start(config, data, run_setup, one.log)
    evaluator = Evaluator(data, training, one.staging, one.log, one.started, prior=counts / counts.sum(),
                          functions=functions)  # fmt: skip
    noise = gradient_noise(config, strategy, ctx, data, one.staging)
    fit_started = time.time()
    try:
        fitting.fit_for_budget(
            model,
            run_setup.train_ds,
            training,
            [evaluator, *strategies.build_callbacks(strategy, ctx), *recorders, *noise, *one.callbacks],
        )
    finally:
        evaluator.close()
    trained = TrainedRun(config, data, one.target, run_setup, one.staging, evaluator,
                         instrumentation=recorders[1:],  # recorders[0] is the StepLoss
                         noise=noise, path=path, started=one.started, fit_started=fit_started)  # fmt: skip
    return finish(trained)


def _model_and_recorders(one: _OneRun, run_setup: Setup, path: plan.Plan) -> tuple[keras.Model, list, dict]:
    """The run's compiled model, its recorders (the per-batch loss first, then the default instrumentation) and
    the traced functions its evaluation may reuse: a warm entry's when the plan says `warm` and the cache holds
    one of this shape, else built anew (and kept when warm)."""
    config, warm = one.config, one.warm
    key = None
    if path.mode == "warm":
        key = warm.key(config, one.data.train.x.shape[1:], run_setup.ctx.class_counts)
        entry = warm.get(key)
        if entry is not None:
            # Warm: the compiled model of an earlier run of this shape, started over from this run's seeds.
            fresh = run_setup.build_model(config, one.data, one.log)
            entry.model.set_weights(fresh.get_weights())
            del fresh
            entry.reset_optimizer()
            for callback in entry.instrumentation:
                callback.reuse(one.staging)
            return entry.model, entry.instrumentation, entry.functions
    model = _compiled_model(one, run_setup, warm_steps=key is not None)
    recorders = [
        StepLoss(one.staging),
        *instrument.experiment_callbacks(
            one.staging,
            log_composition=config.output.log_composition,
            gradient_every_n_steps=config.output.gradient_every_n_steps,
            minority_class=run_setup.minority,
        ),
    ]
    if key is None:
        if warm is not None:
            warm.say_plain(path.reason)
            one.log(f"plain path, not warm: {path.reason}")
        return model, recorders, {}
    entry = Entry(model, snapshot_optimizer(model), recorders)
    for callback in recorders:
        callback.reuse(one.staging)  # keeps its buffer for the runs that reuse this entry
    warm.put(key, entry)
    return model, recorders, entry.functions


def _compiled_model(one: _OneRun, run_setup: Setup, *, warm_steps: bool) -> keras.Model:
    """The run's model, built and compiled; a model kept for warm runs runs several steps per call
    (`warm.steps_per_call`: the same steps in the same order)."""
    training = one.config.training
    model = run_setup.build_model(one.config, one.data, one.log)
    models.compile_for_run(
        model,
        loss=strategies.build_loss(run_setup.strategy, run_setup.ctx),
        optimizer=models.optimizer(training.optimizer, training.learning_rate),
        strategy=run_setup.strategy,
        log=one.log,
        steps_per_execution=steps_per_call(training.steps, training.eval_every) if warm_steps else 1,
    )
    return model


def log_start(config: ExperimentConfig, data: splits.Data, run_setup: Setup, log) -> None:
    """The line a run logs before training."""
    training = config.training
    log(
        f"[{config.strategy.variant()}] {data.describe()}; training distribution "
        f"{np.array2string(run_setup.training_distribution, precision=4)}; {training.steps} steps of batch "
        f"{training.batch_size}"
    )


@dataclasses.dataclass
class TrainedRun:
    """A run that has trained, with what `finish` writes from it.

    Attributes:
      config: the run.
      data: its data.
      target: its target distribution.
      setup: its `Setup`.
      staging: its staging folder.
      evaluator: its `Evaluator` (the evaluation rows).
      instrumentation: its `BatchComposition` and `PerClassGradients` recorders, those it has.
      noise: its gradient-noise diagnostics callbacks (none without `diagnose_every`).
      path: how it trained (`plan.Plan`), kept in result.json as `training_path`.
      started: when the run started (`time.time()`).
      fit_started: when its training started.
      share: its part of the measured seconds (1 / R for R runs trained side by side).
    """

    config: ExperimentConfig
    data: splits.Data
    target: tuple[float, ...]
    setup: Setup
    staging: str
    evaluator: Evaluator
    instrumentation: Sequence[keras.callbacks.Callback]
    noise: Sequence[keras.callbacks.Callback]
    path: plan.Plan
    started: float
    fit_started: float
    share: float = 1.0


def finish(trained: TrainedRun) -> RunResult:
    """Writes a trained run's tables and result.json into its staging folder and returns its result."""
    fit_seconds = (time.time() - trained.fit_started) * trained.share
    config, data, staging = trained.config, trained.data, trained.staging
    strategy, ctx = trained.setup.strategy, trained.setup.ctx
    curve = pd.DataFrame(trained.evaluator.rows)
    curve.to_csv(os.path.join(staging, runs.METRICS_FILE), index=False)
    for callback in trained.instrumentation:
        callback.to_csv(os.path.join(staging, _INSTRUMENTATION_FILES[type(callback).__name__]))
    for callback in trained.noise:
        callback.to_csv(os.path.join(staging, runs.DIAGNOSTICS_FILE))
    groups = trained.evaluator.groups
    summary = {
        "config": config.to_dict(),
        "dataset": data.name,
        "class_counts": {split: s.class_counts(data.num_classes).tolist() for split, s in data.splits().items()},
        "num_features": int(np.prod(data.train.x.shape[1:])),
        "dropped": [int(n) for n in data.dropped],
        "target_distribution": list(trained.target),
        "training_distribution": trained.setup.training_distribution.tolist(),
        "initial_output_bias": np.asarray(trained.setup.output_bias).tolist(),
        "class_groups": list(groups) if groups else None,
        "class_weights": strategy.loss_weights(ctx).tolist() if strategy.loss_weights else None,
        "final": curve.iloc[-1].to_dict(),
        "best_validation_average_precision_step": int(curve.loc[curve["validation_average_precision"].idxmax(), "step"])
        if curve["validation_average_precision"].notna().any()
        else None,
        "train_seconds": round((time.time() - trained.started) * trained.share, 3),
        # Inside fit: training steps (with any tracing) and the evaluations.
        "fit_seconds": round(fit_seconds, 3),
        "instrumentation": {**instrument.summarize(trained.instrumentation), **_noise_summary(trained.noise)},
        "training_path": trained.path.record(),
    }
    runs.write_json(os.path.join(staging, runs.RESULT_FILE), summary)
    return RunResult(run_dir=staging, config=config, curve=curve, summary=summary)


def _check_diagnosable(config: ExperimentConfig) -> None:
    """Refuses `diagnose_every` for a strategy whose batches have no single description, before anything runs."""
    strategy = strategies.get(config.strategy.name)
    able = ", ".join(s.name for s in strategies.STRATEGIES.values() if s.batch_sampling)
    check(
        not config.output.diagnose_every or strategy.batch_sampling is not None,
        f"diagnose_every needs a strategy whose batches one description can say; {strategy.name!r} changes them "
        f"during training (strategies that can: {able}). Received: diagnose_every={config.output.diagnose_every}",
        argument="diagnose_every",
    )


def gradient_noise(
    config, strategy, ctx, data, staging, *, callback=instrument.GradientNoise, **kwargs
) -> list[keras.callbacks.Callback]:
    """The gradient-noise diagnostics of the run's own strategy every `diagnose_every` steps (none when 0):
    `callback` (`GradientNoise` or a subclass) with the run's arguments and `kwargs`."""
    every = config.output.diagnose_every
    if not every:
        return []
    sampling = strategy.batch_sampling(ctx)
    return [
        callback(
            staging,
            data.train.x,
            data.train.y,
            [sampling],
            batch_size=ctx.batch_size,
            every_n_steps=every,
            minority_class=int(np.argmin(ctx.class_counts)),
            seed=config.seed_for("data"),
            **kwargs,
        )
    ]


def _noise_summary(noise) -> dict[str, float]:
    """The diagnostics' summary columns under strategy-independent names (`diagnostics_<quantity>_<mean|final>`)."""
    summary = {}
    for callback in noise:
        for key, value in callback.summary().items():
            quantity = key.removeprefix(f"diagnostics_{callback.samplings[0].name}_")
            summary[f"diagnostics_{quantity}"] = value
    return summary


def prediction_rows(values_per_row: int) -> int:
    """Rows per forward call of an evaluation, for rows of `values_per_row` input values (all replicas' for seeds
    side by side): about 4M input values per call, at least 4096 rows."""
    return max(4096, _PREDICT_VALUES // max(1, values_per_row))


class Evaluator(keras.callbacks.Callback):
    """Evaluates validation and test at the end of every `fit` epoch (= every `eval_every` steps).

    Seeds side by side call `evaluate` with each replica's probabilities instead of letting it predict.

    Args:
      data: the run's data.
      training: the run's training config (step budget, evaluation interval, post-hoc adjustment).
      log_dir: where the evaluations' TensorBoard scalars go.
      log: where the evaluation lines go.
      started: when the run started (`time.time()`), for the rows' elapsed seconds.
      prior: (K,) the training class shares (for the post-hoc logit adjustment).
      functions: traced functions by name: the forward pass is kept there (warm runs keep it between runs).

    Attributes:
      rows: one row per evaluation (the content of metrics.csv).
      groups: the head / medium / tail group of each class for K > 2, else None.
    """

    def __init__(self, data, training, log_dir, log, started, *, prior, functions):
        super().__init__()
        self.data, self.training, self.log_dir, self.log, self.started = data, training, log_dir, log, started
        self.prior = prior
        self._functions = functions  # the traced forward pass, kept by warm runs
        self._events = None
        # K > 2: accuracy per head / medium / tail group of classes (by training counts; see longtail.class_groups).
        self.groups = longtail.class_groups(data.train.class_counts(data.num_classes)) if data.num_classes > 2 else None
        self.rows: list[dict[str, float]] = []

    def _predict(self, x: np.ndarray) -> np.ndarray:
        """Probabilities for `x` in chunks through one traced forward pass.

        `model.predict` builds a new input pipeline per call, which costs more than the forward pass on small
        evaluation splits; the traced function is built once per run (once per compiled model with warm runs).
        """
        forward = self._functions.get("forward")
        if forward is None:
            model = self.model
            signature = [tf.TensorSpec((None, *x.shape[1:]), tf.float32)]
            forward = tf.function(lambda inputs: model(inputs, training=False), input_signature=signature)
            self._functions["forward"] = forward
        rows = prediction_rows(int(np.prod(x.shape[1:])))
        return np.concatenate([forward(x[i : i + rows]).numpy() for i in range(0, len(x), rows)])

    def on_epoch_end(self, epoch, logs=None):
        train_loss = float(logs["loss"]) if logs and "loss" in logs else float("nan")
        self.evaluate(epoch, self._predict(self.data.validation.x), self._predict(self.data.test.x), train_loss)

    def evaluate(self, epoch: int, val_p: np.ndarray, test_p: np.ndarray, train_loss: float) -> None:
        """Adds the row of the evaluation after `epoch` from the model's probabilities on validation and test."""
        val_p, test_p = self._adjusted(val_p), self._adjusted(test_p)
        threshold = (
            metrics.best_f1_threshold(self.data.validation.y == 1, val_p[:, 0]) if self.data.num_classes == 2 else None
        )
        figures = [
            metrics.classification_metrics(split.y, p, threshold=threshold, groups=self.groups)
            for split, p in ((self.data.validation, val_p), (self.data.test, test_p))
        ]
        self._record(epoch, figures, threshold, train_loss)

    def _adjusted(self, p: np.ndarray) -> np.ndarray:
        """Probabilities after the post-hoc logit adjustment (unchanged without one)."""
        tau = self.training.posthoc_adjustment_tau
        return losses.adjust_probabilities(p, self.prior, tau=tau) if tau > 0 else p

    def _record(self, epoch: int, figures: list[dict[str, float]], threshold: float | None, train_loss: float):
        """Adds an evaluation's row from its validation and test figures, writes its scalars and logs its line."""
        step = min((epoch + 1) * self.training.eval_every, self.training.steps)
        row = {"step": step, "elapsed_seconds": round(time.time() - self.started, 3)}
        row["train_loss"] = train_loss
        tags, values = [], []
        for split, split_figures in zip(("validation", "test"), figures, strict=True):
            row.update({f"{split}_{k}": v for k, v in split_figures.items()})
            tags += [f"{split}/{k}" for k in split_figures]
            values += list(split_figures.values())
        row["threshold"] = threshold if threshold is not None else float("nan")
        if self._events is None:
            self._events = instrument_events.ScalarEventFile(self.log_dir, tags)
        self._events.write_scalars(np.array([step]), np.asarray([values], np.float32))
        self.rows.append(row)
        self.log(
            f"  step {step:>6}/{self.training.steps}  loss {row['train_loss']:.4f}  "
            f"val AP {row['validation_average_precision']:.4f}  test AP {row['test_average_precision']:.4f}  "
            f"test ROC-AUC {row['test_roc_auc']:.4f}  ({row['elapsed_seconds']:.1f}s)"
        )

    def close(self) -> None:
        """Closes the evaluations' TensorBoard event file."""
        if self._events is not None:
            self._events.close()
            self._events = None


def evaluate_replicas(
    evaluators: Sequence[Evaluator], epoch: int, validation: np.ndarray, test: np.ndarray, train_losses: Sequence[float]
) -> None:
    """Adds every replica's evaluation row, as `Evaluator.evaluate` does for each, with the figures of all
    replicas computed at once (`metrics.batched_classification_metrics`: one sort per replica and split).

    Args:
      evaluators: one per replica (runs trained side by side), each on its own data.
      epoch: the `fit` epoch just ended.
      validation: (R, N, units) every replica's probabilities on its validation split.
      test: (R, N, units) on its test split.
      train_losses: each replica's training loss over the epoch.
    """
    first = evaluators[0]
    binary = first.data.num_classes == 2
    groups = [e.groups for e in evaluators] if not binary else None
    val_p = np.stack([e._adjusted(p) for e, p in zip(evaluators, validation, strict=True)])
    test_p = np.stack([e._adjusted(p) for e, p in zip(evaluators, test, strict=True)])
    val_figures, thresholds = metrics.batched_classification_metrics(
        _labels(evaluators, "validation"), val_p, groups=groups, best_threshold=binary
    )
    test_figures, _ = metrics.batched_classification_metrics(
        _labels(evaluators, "test"), test_p, thresholds=thresholds, groups=groups
    )
    for r, evaluator in enumerate(evaluators):
        threshold = float(thresholds[r]) if thresholds is not None else None
        evaluator._record(epoch, [val_figures[r], test_figures[r]], threshold, train_losses[r])


def _labels(evaluators: Sequence[Evaluator], split: str) -> np.ndarray:
    """The replicas' labels of a split: (N,) when they share their data, else (R, N)."""
    first = evaluators[0].data
    if all(e.data is first for e in evaluators):
        return getattr(first, split).y
    return np.stack([getattr(e.data, split).y for e in evaluators])


def format_summary(result: RunResult) -> str:
    """The one-screen summary printed at the end of a run."""
    final = result.curve.iloc[-1]
    c = result.config
    t = c.training
    lines = [
        "",
        f"Run {os.path.basename(result.run_dir)}  ({result.summary['train_seconds']:.1f}s)",
        f"  data      {result.summary['dataset']}  train class counts {result.summary['class_counts']['train']}",
        f"  strategy  {c.strategy.variant()}  training distribution "
        + ", ".join(f"{p:.4f}" for p in result.summary["training_distribution"]),
    ]
    if result.summary["class_weights"] is not None:
        lines.append(
            f"  weights   {', '.join(f'{w:.4g}' for w in result.summary['class_weights'])} "
            f"({', '.join(f'{k}={v}' for k, v in c.strategy.params.items())})"
        )
    lines += [
        f"  training  {t.steps} steps, batch {t.batch_size}, {t.optimizer} lr {t.learning_rate:g}, "
        f"seeds data/init/order {c.seed_for('data')}/{c.seed_for('init')}/{c.seed_for('order')}",
        f"  {'test metric':<22}{'final':>10}{'best':>10}",
    ]
    for name in (
        "average_precision",
        "roc_auc",
        "balanced_accuracy",
        "f1_at_0.5",
        "f1_at_best_threshold",
    ):
        column = f"test_{name}"
        if column in result.curve:
            lines.append(f"  {name:<22}{final[column]:>10.4f}{result.curve[column].max():>10.4f}")
    for name in ("log_loss", "brier"):
        lines.append(f"  {name:<22}{final[f'test_{name}']:>10.4f}{result.curve[f'test_{name}'].min():>10.4f}")
    lines.append(f"  folder    {result.run_dir}  (tensorboard --logdir {os.path.dirname(result.run_dir)})")
    return "\n".join(lines)
