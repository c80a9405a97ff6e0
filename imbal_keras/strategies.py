"""The one registry of rebalancing strategies.

A strategy name means the same thing everywhere: registry key, `--strategy` flag value, grid axis value,
results column and TensorBoard tag. Flags, grid axes, the README table and the contract tests all read
`STRATEGIES`, so registering a strategy here is all it takes to make it available everywhere.

A strategy changes the data (its `pipeline`, and `stream` for file-backed inputs), the loss (its
`loss_weights`, applied as per-example sample weights) or both; loss-side strategies (focal, logit adjustment,
...) plug in through the same fields.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from imbal_keras import pipelines, streaming
from imbal_keras.errors import UserInputError


@dataclasses.dataclass(frozen=True)
class StrategyContext:
    """What a strategy may know about the training data and the run.

    Attributes:
      class_counts: training examples per class, shape (K,).
      target_distribution: class shares to rebalance towards, shape (K,).
      batch_size: examples per batch.
      seed: seeds every random choice of the pipeline.
      class_weight_normalization: `mean_one` or `sum_to_num_classes` (see `pipelines.class_weights`).
      num_replicas: R consecutive batches of the stream form one global step (`imbal_keras.distribute` sets it);
        `batch_size` is then the per-replica batch and `stratified` deals the global batch's exact counts over
        the R batches.
      shuffle_buffer: examples in the input shuffle buffer of the streaming forms.
    """

    class_counts: np.ndarray
    target_distribution: np.ndarray
    batch_size: int
    seed: int
    class_weight_normalization: str = "mean_one"
    num_replicas: int = 1
    shuffle_buffer: int = streaming.DEFAULT_SHUFFLE_BUFFER

    @property
    def natural_distribution(self) -> np.ndarray:
        return self.class_counts / self.class_counts.sum()


@dataclasses.dataclass(frozen=True)
class Strategy:
    """A named way of balancing training.

    Attributes:
      name: registry key and flag value.
      summary: one line for `--help` and the README.
      pipeline: `(features, labels, ctx) -> tf.data.Dataset` of `(x, y)` or `(x, y, w)` batches.
      training_distribution: `ctx -> (K,)` class distribution the model effectively trains on (class share of
        the stream times mean weight, normalised); the output bias is initialised at its log-odds.
      loss_weights: `ctx -> (K,)` per-class loss weights, or None when the strategy leaves the loss alone.
      expected_batch_share: `ctx -> (K,)` expected class share of a batch (what the contract tests check).
      stream: `(dataset, ctx) -> tf.data.Dataset`, the same strategy over a `tf.data.Dataset` of `(x, y)`
        examples (see `imbal_keras.streaming`); `ctx.class_counts` serves as its initial distribution.
    """

    name: str
    summary: str
    pipeline: Callable[..., tf.data.Dataset]
    training_distribution: Callable[[StrategyContext], np.ndarray]
    expected_batch_share: Callable[[StrategyContext], np.ndarray]
    loss_weights: Callable[[StrategyContext], np.ndarray] | None = None
    stream: Callable[[tf.data.Dataset, StrategyContext], tf.data.Dataset] | None = None

    @property
    def uses_sample_weights(self) -> bool:
        return self.loss_weights is not None


STRATEGIES: dict[str, Strategy] = {}


def register(strategy: Strategy) -> Strategy:
    """Adds `strategy` to the registry; names are unique."""
    if strategy.name in STRATEGIES:
        raise ValueError(f"A strategy named {strategy.name!r} is already registered.")
    STRATEGIES[strategy.name] = strategy
    return strategy


def names() -> list[str]:
    """Registered strategy names, in registration order."""
    return list(STRATEGIES)


def get(name: str) -> Strategy:
    """Looks a strategy up by name.

    Raises:
      UserInputError: unknown name; the message lists the valid ones.
    """
    try:
        return STRATEGIES[name]
    except KeyError:
        raise UserInputError(
            f"--strategy must be one of {', '.join(STRATEGIES)}. Received: strategy={name!r}"
        ) from None


def build_pipeline(strategy: Strategy | str, features, labels, ctx: StrategyContext) -> tf.data.Dataset:
    """Builds the training stream of `strategy` over in-memory `features` and integer `labels`."""
    strategy = get(strategy) if isinstance(strategy, str) else strategy
    return strategy.pipeline(features, labels, ctx)


def build_stream(strategy: Strategy | str, dataset: tf.data.Dataset, ctx: StrategyContext) -> tf.data.Dataset:
    """Builds the training stream of `strategy` over a `tf.data.Dataset` of `(x, y)` examples.

    Raises:
      UserInputError: the strategy has no streaming form.
    """
    strategy = get(strategy) if isinstance(strategy, str) else strategy
    if strategy.stream is None:
        raise UserInputError(f"strategy {strategy.name!r} has no streaming form. Received: strategy={strategy.name!r}")
    return strategy.stream(dataset, ctx)


def _target(ctx: StrategyContext) -> np.ndarray:
    return np.asarray(ctx.target_distribution, dtype=np.float64)


def _normalised(x: Sequence[float]) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / x.sum()


def _resampled(mode: str) -> Callable[[StrategyContext], np.ndarray]:
    return lambda ctx: _normalised(pipelines.pass_sizes(ctx.class_counts, _target(ctx), mode=mode))


def _targeted(builder: Callable[..., tf.data.Dataset]) -> Callable[..., tf.data.Dataset]:
    """Adapts a `pipelines` builder that takes a target distribution to the `Strategy.pipeline` signature."""
    return lambda x, y, ctx: builder(x, y, batch_size=ctx.batch_size, seed=ctx.seed, target_distribution=_target(ctx))


def _streamed(builder: Callable[..., tf.data.Dataset]) -> Callable[..., tf.data.Dataset]:
    """Adapts a `streaming` builder that takes a target distribution to the `Strategy.stream` signature."""
    return lambda ds, ctx: builder(
        ds,
        batch_size=ctx.batch_size,
        seed=ctx.seed,
        initial_distribution=ctx.class_counts,
        target_distribution=_target(ctx),
        shuffle_buffer=ctx.shuffle_buffer,
    )


def _stratified_counts(ctx: StrategyContext) -> np.ndarray:
    """(R, K) exact class counts of R consecutive batches: one global batch dealt over the replicas."""
    global_counts = pipelines.stratified_counts(ctx.batch_size * ctx.num_replicas, _target(ctx))
    return pipelines.deal_counts(global_counts, ctx.num_replicas)


def _stratified_share(ctx: StrategyContext) -> np.ndarray:
    counts = _stratified_counts(ctx).sum(axis=0)
    return counts / counts.sum()


def _class_weights(ctx: StrategyContext) -> np.ndarray:
    return pipelines.class_weights(ctx.class_counts, _target(ctx), normalization=ctx.class_weight_normalization)


register(
    Strategy(
        name="none",
        summary="Natural distribution: batches drawn as the data comes, reshuffled every pass.",
        pipeline=lambda x, y, ctx: pipelines.natural(x, y, batch_size=ctx.batch_size, seed=ctx.seed),
        stream=lambda ds, ctx: streaming.natural(
            ds, batch_size=ctx.batch_size, seed=ctx.seed, shuffle_buffer=ctx.shuffle_buffer
        ),
        training_distribution=lambda ctx: ctx.natural_distribution,
        expected_batch_share=lambda ctx: ctx.natural_distribution,
    )
)
register(
    Strategy(
        name="class_weight",
        summary="Natural batches, per-example loss weights w_c proportional to target_c / n_c.",
        pipeline=lambda x, y, ctx: pipelines.weighted(
            x, y, batch_size=ctx.batch_size, seed=ctx.seed, class_weights=_class_weights(ctx)
        ),
        training_distribution=lambda ctx: _normalised(ctx.class_counts * _class_weights(ctx)),
        expected_batch_share=lambda ctx: ctx.natural_distribution,
        loss_weights=_class_weights,
        stream=lambda ds, ctx: streaming.weighted(
            ds,
            batch_size=ctx.batch_size,
            seed=ctx.seed,
            class_weights=_class_weights(ctx),
            shuffle_buffer=ctx.shuffle_buffer,
        ),
    )
)
register(
    Strategy(
        name="upsample",
        summary="Repeat minority examples up to the target distribution; every example kept each pass.",
        pipeline=_targeted(pipelines.upsample),
        stream=_streamed(streaming.upsample),
        training_distribution=_resampled("up"),
        expected_batch_share=_resampled("up"),
    )
)
register(
    Strategy(
        name="downsample",
        summary="Drop majority examples down to the target distribution; a fresh subset every pass.",
        pipeline=_targeted(pipelines.downsample),
        stream=_streamed(streaming.downsample),
        training_distribution=_resampled("down"),
        expected_batch_share=_resampled("down"),
    )
)
register(
    Strategy(
        name="rejection",
        summary="Rejection resampling of the repeating natural stream: keep class c with prob. a_c.",
        pipeline=_targeted(pipelines.rejection),
        stream=_streamed(streaming.rejection),
        training_distribution=_target,
        expected_batch_share=_target,
    )
)
register(
    Strategy(
        name="stratified",
        summary="Every batch holds exactly round(B * target_c) examples of class c.",
        pipeline=lambda x, y, ctx: pipelines.stratified(
            x,
            y,
            batch_size=ctx.batch_size,
            seed=ctx.seed,
            target_distribution=_target(ctx),
            class_counts_per_batch=_stratified_counts(ctx),
        ),
        stream=lambda ds, ctx: streaming.stratified(
            ds,
            batch_size=ctx.batch_size,
            seed=ctx.seed,
            initial_distribution=ctx.class_counts,
            target_distribution=_target(ctx),
            class_counts_per_batch=_stratified_counts(ctx),
            shuffle_buffer=ctx.shuffle_buffer,
        ),
        training_distribution=_stratified_share,
        expected_batch_share=_stratified_share,
    )
)
