"""The one registry of rebalancing strategies.

A strategy name means the same thing everywhere: registry key, `--strategy` flag value, grid axis value,
results column and TensorBoard tag. Each entry declares its parameters (`Param`: name, type, default, valid
range, one line of meaning); the flags, the grid axes, the results columns, the run names, the report's variant
labels, the command-line reference and the contract tests are all read from these declarations, so registering
a strategy here is all it takes to make it available everywhere.

A parameter name means one thing for every strategy that declares it: `register` refuses a second, different
declaration under the same name. A grid axis over a parameter applies to the strategies that declare it only.

A strategy changes the data (its `pipeline`, and `stream` for file-backed inputs), the loss (`loss_weights`,
applied as per-example sample weights, or a `loss` of its own), adds `callbacks` (schedules), or any mix.

Each strategy declares the kinds of targets it applies to (`Strategy.kinds`): single-label data (`tabular`,
`image`) through its `pipeline`, and dense (`segmentation`, `sequence`) or `multilabel` targets through its
`dense` form (`DenseForm`: a pipeline of weight maps or resampled examples, and a loss); `check_applies` refuses
the others in one line.

Importing this package does not import TensorFlow, so configs and grid expansion stay light: the families import
the TF-free share arithmetic (`imbal_keras.data.shares`, `imbal_keras.data.batch_sampling`) at their top, and the
tf.data builders and losses (`pipelines`, `streaming`, `losses`) by an import statement inside the function that
builds with them, which runs at the first build.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from imbal_keras.errors import UserInputError, check

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

    from imbal_keras.data.batch_sampling import BatchSampling

# = streaming.DEFAULT_SHUFFLE_BUFFER (kept here so that the registry does not import TensorFlow).
DEFAULT_SHUFFLE_BUFFER = 10_000
# Kinds of data (`splits.Data.kind`) by their targets: one label per example, or dense / multi-label targets.
SINGLE_LABEL_KINDS = ("tabular", "image")
DENSE_KINDS = ("segmentation", "sequence", "multilabel")
SINGLE_LABEL = "single-label"


@dataclasses.dataclass(frozen=True)
class Param:
    """A strategy parameter, declared as data.

    Attributes:
      name: flat name: flag, grid axis, results column and config key.
      type: `float`, `int`, `str` or `bool`.
      default: the value when none is given.
      help: one line of meaning.
      low, high: bounds of a numeric parameter (None: unbounded).
      low_inclusive, high_inclusive: whether the bounds themselves are valid.
      choices: the valid values of a `str` parameter.
    """

    name: str
    type: type
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    low_inclusive: bool = True
    high_inclusive: bool = True
    choices: tuple[str, ...] | None = None

    def valid_range(self) -> str:
        """The valid values in words: `one of a, b`, `in (0, 1]`, `>= 0`, or `any`."""
        if self.choices is not None:
            return f"one of {', '.join(self.choices)}"
        if self.low is not None and self.high is not None:
            left, right = "[" if self.low_inclusive else "(", "]" if self.high_inclusive else ")"
            return f"in {left}{self.low:g}, {self.high:g}{right}"
        if self.low is not None:
            return f"{'>=' if self.low_inclusive else '>'} {self.low:g}"
        if self.high is not None:
            return f"{'<=' if self.high_inclusive else '<'} {self.high:g}"
        return "any"

    def parse(self, text: str) -> Any:
        """A value from command-line text.

        Raises:
          UserInputError: text that is not of the parameter's type.
        """
        if self.type is bool:
            lowered = text.strip().lower()
            check(
                lowered in ("true", "false", "1", "0"),
                f"{self.name} must be true or false. Received: {self.name}={text!r}",
                argument=self.name,
            )
            return lowered in ("true", "1")
        try:
            return self.type(text)
        except ValueError:
            raise UserInputError(
                f"{self.name} must be a {self.type.__name__}. Received: {self.name}={text!r}", argument=self.name
            ) from None

    def validate(self, value: Any) -> Any:
        """Returns `value` converted to the parameter's type.

        Raises:
          UserInputError: a value of the wrong type or out of range, naming the parameter and the value.
        """
        message = f"{self.name} must be {self.valid_range()}. Received: {self.name}={value!r}"
        if self.type is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = float(value)
        ok = isinstance(value, self.type) and not (self.type is not bool and isinstance(value, bool))
        check(ok, f"{self.name} must be a {self.type.__name__}. Received: {self.name}={value!r}", argument=self.name)
        if self.choices is not None:
            check(value in self.choices, message, argument=self.name)
        if self.type in (int, float):
            check(not isinstance(value, float) or math.isfinite(value), message, argument=self.name)
            if self.low is not None:
                check(value >= self.low if self.low_inclusive else value > self.low, message, argument=self.name)
            if self.high is not None:
                check(value <= self.high if self.high_inclusive else value < self.high, message, argument=self.name)
        return value


class _Counted:
    """What both contexts answer from their `class_counts` and `params`."""

    class_counts: np.ndarray
    params: Mapping[str, Any]

    @property
    def num_classes(self) -> int:
        return len(self.class_counts)

    def param(self, param: Param) -> Any:
        """The value of `param` in this run (its default when not given)."""
        return self.params.get(param.name, param.default)


@dataclasses.dataclass(frozen=True)
class StrategyContext(_Counted):
    """What a strategy may know about the training data and the run.

    Attributes:
      class_counts: training examples per class, shape (K,).
      target_distribution: class shares to rebalance towards, shape (K,).
      batch_size: examples per batch.
      seed: seeds every random choice of the pipeline.
      params: the strategy's parameter values by name; a parameter missing here takes its declared default.
      total_steps: the run's optimizer-step budget (schedules use it; 0 when unknown).
      num_replicas: R consecutive batches of the stream form one global step (`strategies.distribute` sets it);
        `batch_size` is then the per-replica batch and `stratified` deals the global batch's exact counts over
        the R batches.
      shuffle_buffer: examples in the input shuffle buffer of the streaming forms.
    """

    class_counts: np.ndarray
    target_distribution: np.ndarray
    batch_size: int
    seed: int
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    total_steps: int = 0
    num_replicas: int = 1
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER

    @property
    def natural_distribution(self) -> np.ndarray:
        return self.class_counts / self.class_counts.sum()


@dataclasses.dataclass(frozen=True)
class DenseContext(_Counted):
    """What a strategy may know about dense (mask, sequence) or multi-label training data.

    Attributes:
      kind: `segmentation`, `sequence` or `multilabel`.
      class_counts: pixels (tokens) per class, or positives per label, shape (K,).
      contains: (N, K) boolean: training example i contains class (label) c.
      batch_size: examples (crops) per batch.
      seed: seeds every random choice of the pipeline.
      params: the strategy's parameter values by name; a parameter missing here takes its declared default.
      ignore_label: the target value that is no class, above the class ids; None: every value is a class.
        Weight maps give its pixels weight 0 and keep the value in the batches, so the loss (`ignore_class`,
        `ignore_label`) and the composition callbacks leave them out; crops are never centred on it.
    """

    kind: str
    class_counts: np.ndarray
    contains: np.ndarray
    batch_size: int
    seed: int
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    ignore_label: int | None = None


@dataclasses.dataclass(frozen=True)
class DenseForm:
    """A strategy over dense or multi-label targets.

    Attributes:
      kinds: the kinds of targets it applies to (a subset of `DENSE_KINDS`).
      pipeline: `(features, targets, DenseContext) -> tf.data.Dataset` of `(x, y)` or `(x, y, w)` batches, `w` a
        weight map of the targets' shape.
      loss: `DenseContext -> keras.losses.Loss` of the strategy's own, or None for the cross-entropy per pixel
        (token; per label for multi-label targets), reduced by the `weight_reduction` parameter where declared.
      class_weights: `DenseContext -> (K,)` the weight of each class's pixels (positives of each label) in the
        weight map, or None.
    """

    kinds: tuple[str, ...]
    pipeline: Callable[..., tf.data.Dataset]
    loss: Callable[[DenseContext], keras.losses.Loss] | None = None
    class_weights: Callable[[DenseContext], np.ndarray] | None = None


@dataclasses.dataclass(frozen=True)
class Strategy:
    """A named way of balancing training.

    Attributes:
      name: registry key and flag value.
      summary: one line for `--help` and the docs.
      pipeline: `(features, labels, ctx) -> tf.data.Dataset` of `(x, y)` or `(x, y, w)` batches.
      training_distribution: `ctx -> (K,)` class distribution the model effectively trains on (class share of
        the stream times mean weight, normalised); the output bias is initialised at its log-odds.
      expected_batch_share: `ctx -> (K,)` expected class share of a batch (what the contract tests check).
      reference: the paper or source the strategy follows, one line (empty for the textbook ones).
      params: the parameters the strategy declares, in display order.
      loss_weights: `ctx -> (K,)` per-class loss weights, or None when the strategy leaves the loss alone.
      stream: `(dataset, ctx) -> tf.data.Dataset`, the same strategy over a `tf.data.Dataset` of `(x, y)`
        examples (see `imbal_keras.data.streaming`); `ctx.class_counts` serves as its initial distribution.
      loss: `ctx -> keras.losses.Loss` of the strategy's own, or None for the cross-entropy (reduced by the
        `weight_reduction` parameter where the strategy declares it).
      callbacks: `ctx -> [keras.callbacks.Callback]` the strategy needs during `fit` (schedules), or None.
      callbacks_bind_step: whether `callbacks` only bind the strategy's loss to the optimizer's step counter (its
        `bind_step`, as `DeferredReweightingSwitch` does): a pack of runs side by side binds its own counter,
        which counts every replica's steps, so the strategy trains in packs; other callbacks keep runs apart.
      batch_sampling: `ctx -> BatchSampling` (`imbal_keras.data.batch_sampling`), how the strategy forms batches,
        as data (for the gradient-noise diagnostics), or None where one description cannot say it (schedules).
      single_label: whether it applies to single-label data (`SINGLE_LABEL_KINDS`) through `pipeline`.
      dense: its form over dense or multi-label targets, or None.
    """

    name: str
    summary: str
    pipeline: Callable[..., tf.data.Dataset]
    training_distribution: Callable[[StrategyContext], np.ndarray]
    expected_batch_share: Callable[[StrategyContext], np.ndarray]
    reference: str = ""
    params: tuple[Param, ...] = ()
    loss_weights: Callable[[StrategyContext], np.ndarray] | None = None
    stream: Callable[[tf.data.Dataset, StrategyContext], tf.data.Dataset] | None = None
    loss: Callable[[StrategyContext], keras.losses.Loss] | None = None
    callbacks: Callable[[StrategyContext], list[keras.callbacks.Callback]] | None = None
    callbacks_bind_step: bool = False
    batch_sampling: Callable[[StrategyContext], BatchSampling] | None = None
    single_label: bool = True
    dense: DenseForm | None = None

    @property
    def uses_sample_weights(self) -> bool:
        return self.loss_weights is not None

    @property
    def kinds(self) -> tuple[str, ...]:
        """The kinds of data (`splits.Data.kind`) the strategy applies to."""
        return (SINGLE_LABEL_KINDS if self.single_label else ()) + (self.dense.kinds if self.dense else ())

    def resolve_params(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Every declared parameter's value: given ones validated, missing ones at their defaults.

        Raises:
          UserInputError: a parameter the strategy does not declare, or an invalid value.
        """
        declared = {p.name: p for p in self.params}
        for name in values:
            check(
                name in declared,
                f"{name} does not apply to strategy {self.name!r} (it applies to: "
                f"{', '.join(declaring(name)) or 'no strategy'}). Received: {name}={values[name]!r}",
                argument=name,
            )
        return {p.name: p.validate(values[p.name]) if p.name in values else p.default for p in self.params}


STRATEGIES: dict[str, Strategy] = {}
_PARAMS: dict[str, Param] = {}


def register(strategy: Strategy) -> Strategy:
    """Adds `strategy` to the registry.

    Raises:
      ValueError: a name already registered, or a parameter declared differently by another strategy.
    """
    if strategy.name in STRATEGIES:
        raise ValueError(f"A strategy named {strategy.name!r} is already registered.")
    for param in strategy.params:
        known = _PARAMS.get(param.name)
        if known is not None and known != param:
            raise ValueError(f"Parameter {param.name!r} of {strategy.name!r} differs from its earlier declaration.")
        param.validate(param.default)
    STRATEGIES[strategy.name] = strategy
    _PARAMS.update({p.name: p for p in strategy.params})
    return strategy


def names(kind: str | None = None) -> list[str]:
    """Registered strategy names, in registration order; with `kind` (a `splits.Data.kind`, or `SINGLE_LABEL` for
    every single-label kind), those that apply to data of that kind."""
    return [
        name
        for name, s in STRATEGIES.items()
        if kind is None or kind in s.kinds or (kind == SINGLE_LABEL and s.single_label)
    ]


def check_applies(strategy: Strategy | str, kind: str) -> Strategy:
    """Returns the strategy if it applies to data of `kind` (`splits.Data.kind`).

    Raises:
      UserInputError: one line naming --strategy, the data's kind and the kinds the strategy applies to.
    """
    strategy = get(strategy) if isinstance(strategy, str) else strategy
    check(
        kind in strategy.kinds or (kind == SINGLE_LABEL and strategy.single_label),
        f"strategy {strategy.name!r} does not apply to {kind} data (it applies to {', '.join(strategy.kinds)}; "
        f"strategies for {kind} data: {', '.join(names(kind))}). Received: strategy={strategy.name!r}",
        argument="strategy",
    )
    return strategy


def get(name: str) -> Strategy:
    """Looks a strategy up by name.

    Raises:
      UserInputError: unknown name; the message lists the valid ones.
    """
    try:
        return STRATEGIES[name]
    except KeyError:
        raise UserInputError(
            f"strategy must be one of {', '.join(STRATEGIES)}. Received: strategy={name!r}", argument="strategy"
        ) from None


def all_params() -> dict[str, Param]:
    """Every declared parameter by name, in order of first declaration."""
    return dict(_PARAMS)


def declaring(param_name: str) -> list[str]:
    """Names of the strategies that declare `param_name`."""
    return [s.name for s in STRATEGIES.values() if any(p.name == param_name for p in s.params)]


def build_pipeline(strategy: Strategy | str, features, labels, ctx: StrategyContext) -> tf.data.Dataset:
    """Builds the training stream of `strategy` over in-memory `features` and integer `labels`."""
    strategy = get(strategy) if isinstance(strategy, str) else strategy
    return strategy.pipeline(features, labels, ctx)


def seeded_pipeline(
    strategy: Strategy | str, features, labels, ctx: StrategyContext
) -> Callable[[tf.Tensor], tf.data.Dataset]:
    """`seed -> build_pipeline(strategy, features, labels, ctx with that order seed)`, for `Dataset.interleave`
    over seeds (a scalar int64 tensor each).

    The builder runs as plain Python, as in an eager call of `build_pipeline`, not through AutoGraph (which would
    convert the builder's whole call tree, about 150 functions and a few seconds in each new process); the
    functions the pipeline maps are converted as in an eager call.
    """
    import tensorflow as tf

    strategy = get(strategy) if isinstance(strategy, str) else strategy
    status = tf.__internal__.autograph.control_status_ctx()  # where the interleave is built: eager, unspecified

    @tf.autograph.experimental.do_not_convert
    def pipeline(seed):
        with status:  # the maps inside see the status of an eager call, not do_not_convert's
            return strategy.pipeline(features, labels, dataclasses.replace(ctx, seed=seed))

    return pipeline


def build_stream(strategy: Strategy | str, dataset: tf.data.Dataset, ctx: StrategyContext) -> tf.data.Dataset:
    """Builds the training stream of `strategy` over a `tf.data.Dataset` of `(x, y)` examples.

    Raises:
      UserInputError: the strategy has no streaming form.
    """
    strategy = get(strategy) if isinstance(strategy, str) else strategy
    if strategy.stream is None:
        raise UserInputError(
            f"strategy {strategy.name!r} has no streaming form. Received: strategy={strategy.name!r}",
            argument="strategy",
        )
    return strategy.stream(dataset, ctx)


def build_loss(strategy: Strategy | str, ctx: StrategyContext) -> keras.losses.Loss:
    """The loss the model is compiled with: the strategy's own, or the cross-entropy for K classes."""
    strategy = get(strategy) if isinstance(strategy, str) else strategy
    if strategy.loss is not None:
        return strategy.loss(ctx)
    from imbal_keras import losses

    reduction = ctx.params.get("weight_reduction", "sum_over_batch_size")
    return losses.cross_entropy(ctx.num_classes, reduction=reduction)


def build_dense_pipeline(strategy: Strategy | str, features, targets, ctx: DenseContext) -> tf.data.Dataset:
    """Builds the training stream of `strategy` over dense or multi-label `targets`.

    Raises:
      UserInputError: the strategy does not apply to `ctx.kind` data.
    """
    return check_applies(strategy, ctx.kind).dense.pipeline(features, targets, ctx)


def build_dense_loss(strategy: Strategy | str, ctx: DenseContext) -> keras.losses.Loss:
    """The loss a dense or multi-label model is compiled with: the strategy's own, else the cross-entropy per pixel
    (token), or the binary cross-entropy per label, reduced by `weight_reduction` where the strategy declares it."""
    form = check_applies(strategy, ctx.kind).dense
    if form.loss is not None:
        return form.loss(ctx)
    import keras

    from imbal_keras import losses

    reduction = ctx.params.get("weight_reduction", "sum_over_batch_size")
    if ctx.kind == "multilabel" and form.class_weights is not None:
        return losses.LabelwiseBinaryCrossentropy(reduction=reduction)  # a (B, L) weight map weights each label
    if ctx.kind == "multilabel":  # unweighted, Keras's own is the same mean over labels (and callbacks know it)
        return keras.losses.BinaryCrossentropy(reduction=reduction)
    return keras.losses.SparseCategoricalCrossentropy(reduction=reduction)


def build_callbacks(strategy: Strategy | str, ctx: StrategyContext) -> list:
    """The callbacks the strategy needs during `fit` (none for most)."""
    strategy = get(strategy) if isinstance(strategy, str) else strategy
    return list(strategy.callbacks(ctx)) if strategy.callbacks is not None else []


# The families register their strategies on import, in this order (= registration order = docs order).
from imbal_keras.strategies import reweighting as _reweighting  # noqa: E402, F401, I001  (registers)
from imbal_keras.strategies import resampling as _resampling  # noqa: E402, F401  (registers)
from imbal_keras.strategies import long_tail as _long_tail  # noqa: E402, F401  (registers)
from imbal_keras.strategies import dense as _dense  # noqa: E402, F401  (registers)

__all__ = [
    "DEFAULT_SHUFFLE_BUFFER",
    "DENSE_KINDS",
    "SINGLE_LABEL",
    "SINGLE_LABEL_KINDS",
    "STRATEGIES",
    "DenseContext",
    "DenseForm",
    "Param",
    "Strategy",
    "StrategyContext",
    "all_params",
    "build_callbacks",
    "build_dense_loss",
    "build_dense_pipeline",
    "build_loss",
    "build_pipeline",
    "build_stream",
    "check_applies",
    "declaring",
    "get",
    "names",
    "register",
]
