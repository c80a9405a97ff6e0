"""The natural stream and per-example loss weights: `none` and `class_weight`.

Also the builders the other families share: the natural and the weighted stream, in memory and streaming.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from imbal_keras.data import shares
from imbal_keras.data.batch_sampling import BatchSampling
from imbal_keras.strategies import Param, Strategy, StrategyContext, register
from imbal_keras.strategies.dense_forms import WEIGHT_METHOD, frequency_class_weights, natural_form, weighted_form

__all__ = [
    "CLASS_WEIGHT_NORMALIZATION",
    "WEIGHT_REDUCTION",
    "natural_pipeline",
    "natural_stream",
    "normalised",
    "target",
    "weighted_pipeline",
    "weighted_stream",
]

CLASS_WEIGHT_NORMALIZATION = Param(
    "class_weight_normalization",
    str,
    "mean_one",
    "Scale of the class weights: mean_one: w_c = t_c N / n_c, mean example weight 1; sum_to_num_classes: the "
    "weights sum to K.",
    choices=("mean_one", "sum_to_num_classes"),
)
WEIGHT_REDUCTION = Param(
    "weight_reduction",
    str,
    "sum_over_batch_size",
    "How weighted per-example losses are reduced: sum_over_batch_size: sum w l / B (Keras' default); "
    "mean_with_sample_weight: sum w l / sum w (PyTorch's weight=).",
    choices=("sum_over_batch_size", "mean_with_sample_weight"),
)


def normalised(x) -> np.ndarray:
    """`x / sum(x)` as float64."""
    x = np.asarray(x, dtype=np.float64)
    return x / x.sum()


def target(ctx: StrategyContext) -> np.ndarray:
    """The run's target class distribution as float64."""
    return np.asarray(ctx.target_distribution, dtype=np.float64)


def natural_pipeline(x, y, ctx: StrategyContext):
    """`pipelines.natural` for the run: batches of the data as it is, reshuffled every pass."""
    from imbal_keras.data import pipelines

    return pipelines.natural(x, y, batch_size=ctx.batch_size, seed=ctx.seed)


def natural_stream(ds, ctx: StrategyContext):
    """`streaming.natural` for the run."""
    from imbal_keras.data import streaming

    return streaming.natural(ds, batch_size=ctx.batch_size, seed=ctx.seed, shuffle_buffer=ctx.shuffle_buffer)


def weighted_pipeline(class_weights: Callable[[StrategyContext], np.ndarray]) -> Callable:
    """`pipelines.weighted` with the per-class weights `class_weights(ctx)`, as a `pipeline`."""

    def pipeline(x, y, ctx: StrategyContext):
        from imbal_keras.data import pipelines

        return pipelines.weighted(x, y, batch_size=ctx.batch_size, seed=ctx.seed, class_weights=class_weights(ctx))

    return pipeline


def weighted_stream(class_weights: Callable[[StrategyContext], np.ndarray]) -> Callable:
    """`streaming.weighted` with the per-class weights `class_weights(ctx)`, as a `stream`."""

    def stream(ds, ctx: StrategyContext):
        from imbal_keras.data import streaming

        return streaming.weighted(
            ds,
            batch_size=ctx.batch_size,
            seed=ctx.seed,
            class_weights=class_weights(ctx),
            shuffle_buffer=ctx.shuffle_buffer,
        )

    return stream


def _class_weights(ctx: StrategyContext) -> np.ndarray:
    """w_c proportional to t_c / n_c (`inverse`), t_c / sqrt(n_c) or t_c times the effective-number weight, scaled
    as `class_weight_normalization` says."""
    normalization = ctx.param(CLASS_WEIGHT_NORMALIZATION)
    method = ctx.param(WEIGHT_METHOD)
    if method == "inverse":
        return shares.class_weights(ctx.class_counts, target(ctx), normalization=normalization)
    raw = target(ctx) * frequency_class_weights(ctx.class_counts, method)
    if normalization == "mean_one":
        return raw * ctx.class_counts.sum() / (raw @ ctx.class_counts)
    return len(raw) * raw / raw.sum()


register(
    Strategy(
        name="none",
        summary="Natural distribution: batches drawn as the data comes, reshuffled every pass.",
        pipeline=natural_pipeline,
        stream=natural_stream,
        training_distribution=lambda ctx: ctx.natural_distribution,
        expected_batch_share=lambda ctx: ctx.natural_distribution,
        batch_sampling=lambda ctx: BatchSampling.natural(ctx.class_counts),
        dense=natural_form,
    )
)
register(
    Strategy(
        name="class_weight",
        summary="Natural batches, per-example (per-pixel) loss weights w_c proportional to target_c / n_c.",
        params=(CLASS_WEIGHT_NORMALIZATION, WEIGHT_METHOD, WEIGHT_REDUCTION),
        pipeline=weighted_pipeline(_class_weights),
        training_distribution=lambda ctx: normalised(ctx.class_counts * _class_weights(ctx)),
        expected_batch_share=lambda ctx: ctx.natural_distribution,
        loss_weights=_class_weights,
        batch_sampling=lambda ctx: BatchSampling.weighted(
            ctx.class_counts, _class_weights(ctx), reduction=ctx.param(WEIGHT_REDUCTION)
        ),
        stream=weighted_stream(_class_weights),
        dense=weighted_form,
    )
)
