"""Strategies that change which examples form the batches: upsampling, downsampling, rejection, stratified."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from imbal_keras.strategies import Strategy, StrategyContext, lazy_module, register
from imbal_keras.strategies.reweighting import normalised, target

diagnostics = lazy_module("imbal_keras.diagnostics.core")
pipelines = lazy_module("imbal_keras.data.pipelines")
streaming = lazy_module("imbal_keras.data.streaming")


def _resampled(mode: str) -> Callable[[StrategyContext], np.ndarray]:
    return lambda ctx: normalised(pipelines.pass_sizes(ctx.class_counts, target(ctx), mode=mode))


def _targeted(builder_name: str) -> Callable:
    """The in-memory builder `pipelines.<builder_name>` that takes a target distribution, as a `pipeline`."""
    return lambda x, y, ctx: getattr(pipelines, builder_name)(
        x, y, batch_size=ctx.batch_size, seed=ctx.seed, target_distribution=target(ctx)
    )


def _streamed(builder_name: str) -> Callable:
    """The streaming builder `streaming.<builder_name>` that takes a target distribution, as a `stream`."""
    return lambda ds, ctx: getattr(streaming, builder_name)(
        ds,
        batch_size=ctx.batch_size,
        seed=ctx.seed,
        initial_distribution=ctx.class_counts,
        target_distribution=target(ctx),
        shuffle_buffer=ctx.shuffle_buffer,
    )


def _sampling(constructor_name: str) -> Callable:
    """`diagnostics.BatchSampling.<constructor_name>` for the run's counts and target, as a `batch_sampling`."""
    return lambda ctx: getattr(diagnostics.BatchSampling, constructor_name)(
        ctx.class_counts, target_distribution=target(ctx)
    )


def _stratified_counts(ctx: StrategyContext) -> np.ndarray:
    """(R, K) exact class counts of R consecutive batches: one global batch dealt over the replicas."""
    global_counts = pipelines.stratified_counts(ctx.batch_size * ctx.num_replicas, target(ctx))
    return pipelines.deal_counts(global_counts, ctx.num_replicas)


def _stratified_share(ctx: StrategyContext) -> np.ndarray:
    counts = _stratified_counts(ctx).sum(axis=0)
    return counts / counts.sum()


register(
    Strategy(
        name="upsample",
        summary="Repeat minority examples up to the target distribution; every example kept each pass.",
        pipeline=_targeted("upsample"),
        batch_sampling=_sampling("upsample"),
        stream=_streamed("upsample"),
        training_distribution=_resampled("up"),
        expected_batch_share=_resampled("up"),
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
    )
)
register(
    Strategy(
        name="stratified",
        summary="Every batch holds exactly the largest-remainder split of B * target_c examples of class c.",
        pipeline=lambda x, y, ctx: pipelines.stratified(
            x,
            y,
            batch_size=ctx.batch_size,
            seed=ctx.seed,
            target_distribution=target(ctx),
            class_counts_per_batch=_stratified_counts(ctx),
        ),
        stream=lambda ds, ctx: streaming.stratified(
            ds,
            batch_size=ctx.batch_size,
            seed=ctx.seed,
            initial_distribution=ctx.class_counts,
            target_distribution=target(ctx),
            class_counts_per_batch=_stratified_counts(ctx),
            shuffle_buffer=ctx.shuffle_buffer,
        ),
        training_distribution=_stratified_share,
        expected_batch_share=_stratified_share,
        batch_sampling=_sampling("stratified"),
    )
)
