"""Strategies for dense and multi-label targets only: foreground crops (`patches`), repeat-factor sampling
(`repeat_factor`) and the overlap and focal losses (`dice`, `tversky`, `dense_focal`, `ce_dice`).

Each refuses single-label data in one line (`check_applies`); the textbook strategies' dense forms are in
`imbal_keras.strategies.dense_forms`.
"""

from __future__ import annotations

from collections.abc import Callable

from imbal_keras.strategies import (
    SINGLE_LABEL,
    DenseContext,
    DenseForm,
    Param,
    Strategy,
    check_applies,
    register,
)
from imbal_keras.strategies.dense_forms import (
    FOREGROUND_SHARE,
    PATCH_SIZE,
    REPEAT_THRESHOLD,
    natural_form,
    patch_size,
)
from imbal_keras.strategies.long_tail import GAMMA

__all__ = ["DICE_WEIGHT", "DENSE_TARGETS", "TVERSKY_ALPHA", "TVERSKY_BETA"]

# Dense targets (a class per pixel or token), where crops and overlap losses apply; not multi-label targets.
DENSE_TARGETS = ("segmentation", "sequence")

TVERSKY_ALPHA = Param("tversky_alpha", float, 0.3, "Tversky loss weight of false positives.", low=0.0)
TVERSKY_BETA = Param(
    "tversky_beta", float, 0.7, "Tversky loss weight of false negatives (missed rare pixels).", low=0.0
)
DICE_WEIGHT = Param(
    "dice_weight", float, 1.0, "Weight of the Dice term in cross-entropy + Dice.", low=0.0, low_inclusive=False
)


def _single_label_refused(name: str) -> Callable:
    """What a dense-only strategy has in the single-label places: a one-line refusal."""

    def refuse(*args, **kwargs):
        check_applies(name, SINGLE_LABEL)

    return refuse


def _dense_only(name: str, summary: str, form: DenseForm, params: tuple[Param, ...] = (), reference: str = ""):
    refuse = _single_label_refused(name)
    register(
        Strategy(
            name=name,
            summary=summary,
            reference=reference,
            params=params,
            pipeline=refuse,
            training_distribution=refuse,
            expected_batch_share=refuse,
            single_label=False,
            dense=form,
        )
    )


def _patches(features, targets, ctx: DenseContext):
    import numpy as np

    from imbal_keras.data import dense

    spatial = np.shape(targets)[1:3] if np.ndim(targets) >= 3 else np.shape(targets)[1:2]
    options = dense.Patches(
        size=patch_size(tuple(spatial), ctx),
        foreground_share=ctx.param(FOREGROUND_SHARE),
        ignore_label=ctx.ignore_label,
    )
    return dense.patches(features, targets, batch_size=ctx.batch_size, seed=ctx.seed, options=options)


def _repeat_factor(features, targets, ctx: DenseContext):
    from imbal_keras.data import dense

    return dense.repeat_factor_sampled(
        features,
        targets,
        batch_size=ctx.batch_size,
        seed=ctx.seed,
        contains=ctx.contains,
        threshold=ctx.param(REPEAT_THRESHOLD),
    )


def _loss(build: Callable[[DenseContext], object]) -> DenseForm:
    """Natural batches with the loss `build(ctx)`, for dense targets."""
    return DenseForm(kinds=DENSE_TARGETS, pipeline=natural_form.pipeline, loss=build)


def _dice(ctx: DenseContext):
    from imbal_keras import losses

    return losses.DiceLoss()


def _tversky(ctx: DenseContext):
    from imbal_keras import losses

    return losses.TverskyLoss(alpha=ctx.param(TVERSKY_ALPHA), beta=ctx.param(TVERSKY_BETA))


def _dense_focal(ctx: DenseContext):
    from imbal_keras import losses

    return losses.DenseFocalLoss(gamma=ctx.param(GAMMA))


def _ce_dice(ctx: DenseContext):
    from imbal_keras import losses

    return losses.CrossEntropyDiceLoss(dice_weight=ctx.param(DICE_WEIGHT))


_dense_only(
    "patches",
    "Random crops of patch_size, a foreground_share of them centred on a pixel of a rare class.",
    DenseForm(kinds=DENSE_TARGETS, pipeline=_patches),
    (FOREGROUND_SHARE, PATCH_SIZE),
    "nnU-Net's foreground oversampling (Isensee et al., Nature Methods 2021)",
)
_dense_only(
    "repeat_factor",
    "Example i repeated r_i = max over its classes of max(1, sqrt(t / f_c)) times per pass (stochastic rounding).",
    DenseForm(kinds=("segmentation", "sequence", "multilabel"), pipeline=_repeat_factor),
    (REPEAT_THRESHOLD,),
    "LVIS repeat-factor sampling (Gupta et al., CVPR 2019)",
)
_dense_only(
    "dice",
    "Natural batches, soft Dice loss: 1 - mean over classes of 2 TP_c / (2 TP_c + FP_c + FN_c).",
    _loss(_dice),
    reference="V-Net (Milletari et al., 3DV 2016)",
)
_dense_only(
    "tversky",
    "Natural batches, soft Tversky loss: 1 - mean over classes of TP_c / (TP_c + alpha FP_c + beta FN_c).",
    _loss(_tversky),
    (TVERSKY_ALPHA, TVERSKY_BETA),
    "Salehi et al., MLMI 2017",
)
_dense_only(
    "dense_focal",
    "Natural batches, focal loss per pixel (token): -(1 - p_y)^gamma log p_y.",
    _loss(_dense_focal),
    (GAMMA,),
    "Lin et al., ICCV 2017",
)
_dense_only(
    "ce_dice",
    "Natural batches, cross-entropy per pixel plus dice_weight times the soft Dice loss (nnU-Net's loss).",
    _loss(_ce_dice),
    (DICE_WEIGHT,),
    "nnU-Net (Isensee et al., Nature Methods 2021)",
)
