"""Strategies of the long-tail literature: four losses and two class-aware samplers.

- `focal`, `class_balanced`, `logit_adjusted`, `ldam` train on the natural stream and change the loss
  (`imbal_keras.losses`); `class_balanced` weights examples through the pipeline's sample weights, `ldam` defers
  its class-balanced weights to a fraction of the step budget (DRW) with a callback that binds the switch to the
  optimizer's step counter.
- `sqrt_sampling`, `progressive_sampling` change the batches: every slot draws a class, then an example
  (`pipelines.class_sampled`, `streaming.class_sampled`).

These strategies bring their own class distribution (loss or sampling shares) and ignore the run's target
distribution. Their `training_distribution` is where the loss pulls a constant prediction: the minimiser of the
expected loss on the training stream (`losses.minimising_distribution`), so the output bias starts where the
loss wants it (uniform for `logit_adjusted` at tau = 1, above the prior for `focal`); for the samplers it is the
batch share at step 0.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from imbal_keras.data import shares
from imbal_keras.data.batch_sampling import BatchSampling
from imbal_keras.errors import check
from imbal_keras.strategies import Param, Strategy, StrategyContext, register
from imbal_keras.strategies.reweighting import (
    WEIGHT_REDUCTION,
    natural_pipeline,
    natural_stream,
    normalised,
    weighted_pipeline,
    weighted_stream,
)

__all__ = [
    "BASE_LOSS",
    "BETA",
    "DRW_FRACTION",
    "FOCAL_ALPHA",
    "GAMMA",
    "LDAM_SCALE",
    "MAX_MARGIN",
    "SAMPLING_Q",
    "TAU",
]

GAMMA = Param(
    "gamma",
    float,
    2.0,
    "Focal loss focusing parameter: each example's loss is scaled by (1 - p_y)^gamma; 0 is the cross-entropy.",
    low=0.0,
)
FOCAL_ALPHA = Param(
    "focal_alpha",
    str,
    "none",
    "Focal loss alpha_y, a fixed weight per true class, always applied: none (1 for every class) or "
    "inverse_frequency (alpha_c = N / (K n_c), mean example weight 1).",
    choices=("none", "inverse_frequency"),
)
BETA = Param(
    "beta",
    float,
    0.9999,
    "Class-balanced weights w_c proportional to (1 - beta) / (1 - beta^n_c), summing to K: near 0 equal weights, "
    "near 1 inverse frequency.",
    low=0.0,
    high=1.0,
    low_inclusive=False,
    high_inclusive=False,
)
BASE_LOSS = Param(
    "base_loss",
    str,
    "cross_entropy",
    "The loss the class-balanced weights multiply: cross_entropy, or focal (with gamma).",
    choices=("cross_entropy", "focal"),
)
TAU = Param(
    "tau",
    float,
    1.0,
    "Logit adjustment strength: the loss adds tau * log(prior) to the logits; 0 is the cross-entropy.",
    low=0.0,
)
MAX_MARGIN = Param(
    "max_margin",
    float,
    0.5,
    "LDAM margin of the rarest class; class c's is max_margin * (n_min / n_c)^(1/4).",
    low=0.0,
)
LDAM_SCALE = Param(
    "ldam_scale",
    float,
    1.0,
    "LDAM scale s of the margin-adjusted logits (the paper's 30 goes with normalised cosine logits).",
    low=0.0,
    low_inclusive=False,
)
DRW_FRACTION = Param(
    "drw_fraction",
    float,
    0.8,
    "Deferred re-weighting: class-balanced weights (beta) from this fraction of the step budget on; 1 never.",
    low=0.0,
    high=1.0,
)
SAMPLING_Q = Param(
    "sampling_q",
    float,
    0.5,
    "Class sampling p_c proportional to n_c^q: 1 instance-balanced, 0.5 square-root, 0 class-balanced.",
    low=0.0,
    high=1.0,
)

# A switch step no run reaches.
_NEVER = 2**62
_KANG = "Kang et al., Decoupling Representation and Classifier for Long-Tailed Recognition, ICLR 2020"


def _natural(ctx: StrategyContext) -> np.ndarray:
    return normalised(ctx.class_counts)


def _loss_minimiser(loss_fn, weights_fn=None):
    """`training_distribution`: the constant prediction minimising `loss_fn(ctx)` on the (weighted) natural stream."""

    def distribution(ctx: StrategyContext) -> np.ndarray:
        from imbal_keras import losses

        mass = _natural(ctx) if weights_fn is None else _natural(ctx) * weights_fn(ctx)
        return losses.minimising_distribution(loss_fn(ctx), mass)

    return distribution


def _focal(ctx: StrategyContext, *, reduction: str = "sum_over_batch_size"):
    from imbal_keras import losses

    alpha = None
    if ctx.param(FOCAL_ALPHA) == "inverse_frequency":
        alpha = shares.class_weights(ctx.class_counts, normalization="mean_one")
    return losses.FocalLoss(gamma=ctx.param(GAMMA), alpha=alpha, reduction=reduction)


register(
    Strategy(
        name="focal",
        summary="Natural batches, focal loss -alpha_y (1 - p_y)^gamma log p_y: easy examples count less.",
        reference="Lin et al., Focal Loss for Dense Object Detection, ICCV 2017",
        params=(GAMMA, FOCAL_ALPHA),
        pipeline=natural_pipeline,
        stream=natural_stream,
        batch_sampling=lambda ctx: BatchSampling.natural(ctx.class_counts, name="focal"),
        training_distribution=_loss_minimiser(_focal),
        expected_batch_share=_natural,
        loss=_focal,
    )
)


def _class_balanced_weights(ctx: StrategyContext) -> np.ndarray:
    from imbal_keras import losses

    return losses.class_balanced_weights(ctx.class_counts, ctx.param(BETA))


def _class_balanced_loss(ctx: StrategyContext):
    from imbal_keras import losses

    reduction = ctx.param(WEIGHT_REDUCTION)
    if ctx.param(BASE_LOSS) == "focal":
        return losses.FocalLoss(gamma=ctx.param(GAMMA), reduction=reduction)
    return losses.cross_entropy(ctx.num_classes, reduction=reduction)


register(
    Strategy(
        name="class_balanced",
        summary="Natural batches, loss weights from the effective number of samples, (1 - beta) / (1 - beta^n_c).",
        reference="Cui et al., Class-Balanced Loss Based on Effective Number of Samples, CVPR 2019",
        params=(BETA, BASE_LOSS, GAMMA, WEIGHT_REDUCTION),
        pipeline=weighted_pipeline(_class_balanced_weights),
        stream=weighted_stream(_class_balanced_weights),
        training_distribution=_loss_minimiser(_class_balanced_loss, _class_balanced_weights),
        expected_batch_share=_natural,
        loss_weights=_class_balanced_weights,
        batch_sampling=lambda ctx: BatchSampling.weighted(
            ctx.class_counts,
            _class_balanced_weights(ctx),
            reduction=ctx.param(WEIGHT_REDUCTION),
            name="class_balanced",
        ),
        loss=_class_balanced_loss,
    )
)


def _logit_adjusted(ctx: StrategyContext):
    from imbal_keras import losses

    return losses.LogitAdjustedLoss(ctx.class_counts, tau=ctx.param(TAU))


register(
    Strategy(
        name="logit_adjusted",
        summary="Natural batches, cross-entropy of logits + tau log(prior): the model learns prior-free logits.",
        reference="Menon et al., Long-tail learning via logit adjustment, ICLR 2021",
        params=(TAU,),
        pipeline=natural_pipeline,
        stream=natural_stream,
        batch_sampling=lambda ctx: BatchSampling.natural(ctx.class_counts, name="logit_adjusted"),
        training_distribution=_loss_minimiser(_logit_adjusted),
        expected_batch_share=_natural,
        loss=_logit_adjusted,
    )
)


def _ldam(ctx: StrategyContext):
    from imbal_keras import losses

    return losses.LDAMLoss(ctx.class_counts, max_margin=ctx.param(MAX_MARGIN), scale=ctx.param(LDAM_SCALE))


def _drw_switch_step(ctx: StrategyContext) -> int:
    """The first optimizer step with class-balanced weights: drw_fraction of the budget (1: never)."""
    fraction = ctx.param(DRW_FRACTION)
    if fraction == 1.0:
        return _NEVER
    check(
        ctx.total_steps >= 1,
        f"drw_fraction={fraction:g} needs the run's step budget to place the switch. "
        f"Received: total_steps={ctx.total_steps}",
        argument="total_steps",
    )
    return int(round(fraction * ctx.total_steps))


def _ldam_drw(ctx: StrategyContext):
    from imbal_keras import losses

    return losses.DeferredReweighting(
        _ldam(ctx),
        _class_balanced_weights(ctx),
        switch_step=_drw_switch_step(ctx),
        normalize=ctx.param(WEIGHT_REDUCTION) == "mean_with_sample_weight",
    )


def _drw_callbacks(ctx: StrategyContext) -> list:
    """The callback that binds the deferred re-weighting switch to the optimizer's step counter."""
    from imbal_keras import losses

    return [losses.DeferredReweightingSwitch()]


register(
    Strategy(
        name="ldam",
        summary="Natural batches, margin loss with Delta_c ~ n_c^(-1/4); class-balanced weights from drw_fraction on.",
        reference="Cao et al., Learning Imbalanced Datasets with Label-Distribution-Aware Margin Loss, NeurIPS 2019",
        params=(MAX_MARGIN, LDAM_SCALE, DRW_FRACTION, BETA, WEIGHT_REDUCTION),
        pipeline=natural_pipeline,
        stream=natural_stream,
        batch_sampling=lambda ctx: BatchSampling.natural(ctx.class_counts, name="ldam"),
        training_distribution=_loss_minimiser(_ldam),
        expected_batch_share=_natural,
        loss=_ldam_drw,
        callbacks=_drw_callbacks,
        callbacks_bind_step=True,
    )
)


def _power_shares(ctx: StrategyContext) -> np.ndarray:
    return shares.power_shares(ctx.class_counts, ctx.param(SAMPLING_Q))


def _sqrt_arguments(ctx: StrategyContext) -> dict:
    """`class_sampled` arguments of square-root (power q) sampling."""
    return {"shares": _power_shares(ctx), "num_replicas": ctx.num_replicas}


def _class_sampled_pipeline(arguments: Callable[[StrategyContext], dict]) -> Callable:
    """`pipelines.class_sampled` with the keyword arguments `arguments(ctx)`, as a `pipeline`."""

    def pipeline(x, y, ctx: StrategyContext):
        from imbal_keras.data import pipelines

        return pipelines.class_sampled(x, y, batch_size=ctx.batch_size, seed=ctx.seed, **arguments(ctx))

    return pipeline


def _class_sampled_stream(arguments: Callable[[StrategyContext], dict]) -> Callable:
    """`streaming.class_sampled` with the keyword arguments `arguments(ctx)`, as a `stream`."""

    def stream(ds, ctx: StrategyContext):
        from imbal_keras.data import streaming

        return streaming.class_sampled(
            ds,
            batch_size=ctx.batch_size,
            seed=ctx.seed,
            initial_distribution=ctx.class_counts,
            shuffle_buffer=ctx.shuffle_buffer,
            **arguments(ctx),
        )

    return stream


register(
    Strategy(
        name="sqrt_sampling",
        summary="Each slot draws class c with probability ~ n_c^q (q = 1/2: square root), then an example.",
        reference=_KANG,
        params=(SAMPLING_Q,),
        pipeline=_class_sampled_pipeline(_sqrt_arguments),
        stream=_class_sampled_stream(_sqrt_arguments),
        training_distribution=_power_shares,
        expected_batch_share=_power_shares,
        batch_sampling=lambda ctx: BatchSampling.iid(_power_shares(ctx), name="sqrt_sampling"),
    )
)


def _schedule(ctx: StrategyContext) -> dict:
    """`class_sampled` arguments of progressive balancing: natural to uniform over the step budget."""
    check(
        ctx.total_steps >= 1,
        f"progressive_sampling moves over the run's step budget, which must be >= 1. "
        f"Received: total_steps={ctx.total_steps}",
        argument="total_steps",
    )
    return {
        "shares": shares.progressive_shares(ctx.class_counts, 0, ctx.total_steps),
        "final_shares": np.full(ctx.num_classes, 1.0 / ctx.num_classes),
        "schedule_steps": int(ctx.total_steps),
        "num_replicas": ctx.num_replicas,
    }


def _progressive_mean_share(ctx: StrategyContext) -> np.ndarray:
    """The batch share averaged over the budget's steps 0..T-1: the schedule is linear, so its value at (T-1)/2."""
    schedule = _schedule(ctx)
    return shares.progressive_shares(ctx.class_counts, (schedule["schedule_steps"] - 1) / 2, ctx.total_steps)


register(
    Strategy(
        name="progressive_sampling",
        summary="Class sampling moving linearly from instance-balanced to class-balanced over the step budget.",
        reference=_KANG,
        pipeline=_class_sampled_pipeline(_schedule),
        stream=_class_sampled_stream(_schedule),
        training_distribution=lambda ctx: _schedule(ctx)["shares"],
        expected_batch_share=_progressive_mean_share,
    )
)
