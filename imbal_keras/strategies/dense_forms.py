"""The dense and multi-label forms of the strategies (`DenseForm`): weight maps, presence resampling, crops and
repeat factors over masks, tag sequences and multi-label targets, and the parameters they declare.

The textbook strategies take their dense form from here (`none`: natural batches; `class_weight`: a weight map;
`upsample` ... `stratified`: resampling by the rarest class an example contains); `imbal_keras.strategies.dense`
registers the strategies that exist for dense targets only (`patches`, `repeat_factor` and the overlap losses).
The tf.data builders (`imbal_keras.data.dense`) and the losses are imported inside the functions that use them,
so the registry stays free of TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from imbal_keras.data.dense_shares import WEIGHTINGS, frequency_weights
from imbal_keras.errors import check
from imbal_keras.strategies import DENSE_KINDS, DenseContext, DenseForm, Param

__all__ = [
    "FOREGROUND_SHARE",
    "PATCH_SIZE",
    "REPEAT_THRESHOLD",
    "WEIGHT_METHOD",
    "dense_class_weights",
    "frequency_class_weights",
    "natural_form",
    "patch_size",
    "presence_form",
    "weighted_form",
]

WEIGHT_METHOD = Param(
    "weight_method",
    str,
    "inverse",
    "How class frequencies n_c become weights: inverse (w_c proportional to 1 / n_c), inverse_sqrt "
    "(1 / sqrt(n_c)) or effective_number ((1 - beta) / (1 - beta^n_c), beta = (N - 1) / N, Cui et al. 2019); "
    "single-label weights multiply it by the target share, dense weight maps count pixels (tokens), multi-label "
    "weights each label's positives (inverse or inverse_sqrt).",
    choices=WEIGHTINGS,
)
FOREGROUND_SHARE = Param(
    "foreground_share",
    float,
    0.33,
    "Share of crops centred on a pixel of a rare class (every class but the most frequent); nnU-Net's 0.33.",
    low=0.0,
    high=1.0,
)
PATCH_SIZE = Param(
    "patch_size",
    int,
    0,
    "Crop side in pixels (tokens for sequences); 0 crops half of each side of the examples.",
    low=0,
)
REPEAT_THRESHOLD = Param(
    "repeat_threshold",
    float,
    0.1,
    "Repeat-factor sampling: classes (labels) in fewer than this share of the examples are repeated, "
    "r = max(1, sqrt(threshold / f_c)) (LVIS).",
    low=0.0,
    high=1.0,
    low_inclusive=False,
)


def frequency_class_weights(counts: np.ndarray, method: str) -> np.ndarray:
    """`dense_shares.frequency_weights` of `counts`, effective numbers with beta = (N - 1) / N, N = sum(counts)."""
    counts = np.asarray(counts, np.float64)
    return frequency_weights(counts, method=method, beta=1.0 - 1.0 / max(counts.sum(), 2.0))


def dense_class_weights(ctx: DenseContext) -> np.ndarray:
    """The class weights of a dense weight map (mean 1 over the pixels), or the positive weights of multi-label
    targets (n_neg / n_pos per label, or its square root).

    Raises:
      UserInputError: `effective_number` for multi-label targets.
    """
    method = ctx.param(WEIGHT_METHOD)
    if ctx.kind != "multilabel":
        return frequency_class_weights(ctx.class_counts, method)
    check(
        method in WEIGHTINGS[:2],
        f"weight_method for multi-label targets must be inverse or inverse_sqrt (positive weights n_neg / n_pos). "
        f"Received: weight_method={method!r}",
        argument="weight_method",
    )
    positives = np.asarray(ctx.class_counts, np.float64)
    ratio = np.divide(len(ctx.contains) - positives, positives, out=np.zeros_like(positives), where=positives > 0)
    return ratio if method == "inverse" else np.sqrt(ratio)


def _natural(features, targets, ctx: DenseContext):
    from imbal_keras.data import dense

    return dense.natural(features, targets, batch_size=ctx.batch_size, seed=ctx.seed)


def _weighted(features, targets, ctx: DenseContext):
    from imbal_keras.data import dense

    weights = dense_class_weights(ctx)
    if ctx.kind == "multilabel":
        return dense.label_weighted(
            features, targets, batch_size=ctx.batch_size, seed=ctx.seed, positive_weights=weights
        )
    ignore = ctx.ignore_label
    if ignore is not None:  # one weight per target value: 0 for the ignore label (and the unused values below it)
        weights = np.concatenate([weights, np.zeros(ignore + 1 - len(weights))])
    return dense.weighted(features, targets, batch_size=ctx.batch_size, seed=ctx.seed, class_weights=weights)


def _presence(method: str) -> Callable:
    def pipeline(features, targets, ctx: DenseContext):
        from imbal_keras.data import dense

        return dense.presence_resampled(
            features, targets, batch_size=ctx.batch_size, seed=ctx.seed, contains=ctx.contains, method=method
        )

    return pipeline


def patch_size(shape: tuple[int, ...], ctx: DenseContext) -> tuple[int, ...]:
    """The crop size of `patches` for targets of spatial shape `shape` ((H, W) or (T,)): `patch_size` per side,
    or half of each side (at least 1) at 0."""
    size = ctx.param(PATCH_SIZE)
    return tuple(size if size else max(1, side // 2) for side in shape)


natural_form = DenseForm(kinds=DENSE_KINDS, pipeline=_natural)
weighted_form = DenseForm(kinds=DENSE_KINDS, pipeline=_weighted, class_weights=dense_class_weights)


def presence_form(method: str) -> DenseForm:
    """Resampling by the rarest class an example contains (`dense.presence_resampled`), as a `DenseForm`."""
    return DenseForm(kinds=DENSE_KINDS, pipeline=_presence(method))
