"""Strategies that change which examples form the batches: upsampling, downsampling, rejection, stratified.

Over dense and multi-label targets each resamples examples by the rarest class they contain ("contains class c",
`imbal_keras.data.dense.presence_resampled`)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from imbal_keras.data import shares
from imbal_keras.data.batch_sampling import BatchSampling
from imbal_keras.strategies import Strategy, StrategyContext, register
from imbal_keras.strategies.dense_forms import presence_form
from imbal_keras.strategies.reweighting import normalised, target

__all__: list[str] = []  # the module registers its strategies; it has no names of its own to import


def _resampled(mode: str) -> Callable[[StrategyContext], np.ndarray]:
    return lambda ctx: normalised(shares.pass_sizes(ctx.class_counts, target(ctx), mode=mode))


def _targeted(builder_name: str) -> Callable:
    """The in-memory builder `pipelines.<builder_name>` that takes a target distribution, as a `pipeline`."""

    def pipeline(x, y, ctx: StrategyContext):
        from imbal_keras.data import pipelines

        return getattr(pipelines, builder_name)(
            x, y, batch_size=ctx.batch_size, seed=ctx.seed, target_distribution=target(ctx)
        )

    return pipeline


def _streamed(builder_name: str) -> Callable:
    """The streaming builder `streaming.<builder_name>` that takes a target distribution, as a `stream`."""

    def stream(ds, ctx: StrategyContext):
        from imbal_keras.data import streaming

        return getattr(streaming, builder_name)(
            ds,
            batch_size=ctx.batch_size,
            seed=ctx.seed,
            initial_distribution=ctx.class_counts,
            target_distribution=target(ctx),
            shuffle_buffer=ctx.shuffle_buffer,
        )

    return stream


def _sampling(constructor_name: str) -> Callable:
    """`BatchSampling.<constructor_name>` for the run's counts and target, as a `batch_sampling`."""
    return lambda ctx: getattr(BatchSampling, constructor_name)(ctx.class_counts, target_distribution=target(ctx))


def _stratified_counts(ctx: StrategyContext) -> np.ndarray:
    """(R, K) exact class counts of R consecutive batches: one global batch dealt over the replicas."""
    global_counts = shares.stratified_counts(ctx.batch_size * ctx.num_replicas, target(ctx))
    return shares.deal_counts(global_counts, ctx.num_replicas)


def _stratified_share(ctx: StrategyContext) -> np.ndarray:
    counts = _stratified_counts(ctx).sum(axis=0)
    return counts / counts.sum()


def _stratified_pipeline(x, y, ctx: StrategyContext):
    from imbal_keras.data import pipelines

    return pipelines.stratified(
        x,
        y,
        batch_size=ctx.batch_size,
        seed=ctx.seed,
        target_distribution=target(ctx),
        class_counts_per_batch=_stratified_counts(ctx),
    )


def _stratified_stream(ds, ctx: StrategyContext):
    from imbal_keras.data import streaming

    return streaming.stratified(
        ds,
        batch_size=ctx.batch_size,
        seed=ctx.seed,
        initial_distribution=ctx.class_counts,
        target_distribution=target(ctx),
        class_counts_per_batch=_stratified_counts(ctx),
        shuffle_buffer=ctx.shuffle_buffer,
    )


register(
    Strategy(
        name="upsample",
        summary="Repeat minority examples up to the target distribution; every example kept each pass.",
        pipeline=_targeted("upsample"),
        batch_sampling=_sampling("upsample"),
        stream=_streamed("upsample"),
        training_distribution=_resampled("up"),
        expected_batch_share=_resampled("up"),
        dense=presence_form("up"),
    )
)
register(
    Strategy(
        name="downsample",
        summary="Drop majority examples down to the target distribution; a fresh subset every pass.",
        pipeline=_targeted("downsample"),
        batch_sampling=_sampling("downsample"),
        stream=_streamed("downsample"),
        training_distribution=_resampled("down"),
        expected_batch_share=_resampled("down"),
        dense=presence_form("down"),
    )
)
register(
    Strategy(
        name="rejection",
        summary="Rejection resampling of the repeating natural stream: keep class c with prob. a_c.",
        pipeline=_targeted("rejection"),
        batch_sampling=_sampling("rejection"),
        stream=_streamed("rejection"),
        training_distribution=target,
        expected_batch_share=target,
        dense=presence_form("rejection"),
    )
)
register(
    Strategy(
        name="stratified",
        summary="Every batch holds exactly the largest-remainder split of B * target_c examples of class c.",
        pipeline=_stratified_pipeline,
        stream=_stratified_stream,
        training_distribution=_stratified_share,
        expected_batch_share=_stratified_share,
        batch_sampling=_sampling("stratified"),
        dense=presence_form("stratified"),
    )
)
