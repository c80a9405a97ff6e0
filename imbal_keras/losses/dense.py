"""Losses for dense targets (masks, label sequences) and multi-label targets, with per-pixel sample weights.

Dense labels are integer class ids of shape (B, H, W), (B, H, W, 1) or (B, T); the model outputs (B, H, W, K) or
(B, T, K) probabilities (softmax; a (..., 1) sigmoid is two classes) or logits with `from_logits=True`. Pixels whose
label is `ignore_label` count nowhere (weight 0). Sample weights may be a weight map of the labels' shape (from
`imbal_keras.data.dense`) or one weight per example.

- `DiceLoss` (soft Dice, Milletari et al. 2016, V-Net) and `TverskyLoss` (Salehi et al. 2017): computed per example
  and per class from soft counts TP_c = sum_p w_p P_pc G_pc, FP_c = sum_p w_p P_pc (1 - G_pc),
  FN_c = sum_p w_p (1 - P_pc) G_pc (P the predicted probabilities, G the one-hot labels, w the weights);
  Dice_c = (2 TP_c + s) / (2 TP_c + FP_c + FN_c + s), Tversky_c = (TP_c + s) / (TP_c + alpha FP_c + beta FN_c + s);
  the loss is 1 minus their mean over classes, one value per example. These are not sums of per-pixel terms, so
  the weights enter the soft counts (not Keras's weighting of per-example values) and the reduction is over
  examples (`sum_over_batch_size`: the mean; `sum`; or None).
- `DenseFocalLoss`: the focal loss (Lin et al. 2017) per pixel; Keras applies the weight map and its reduction
  (`sum_over_batch_size`: sum w l / number of pixels; `mean_with_sample_weight`: sum w l / sum w).
- `CrossEntropyDiceLoss`: per example, the pixel-weighted cross-entropy sum_p w_p l_p / P plus `dice_weight` times
  the soft Dice loss (nnU-Net's default loss).
- `LabelwiseBinaryCrossentropy`: the binary cross-entropy of multi-label targets (B, L) kept per label, so a
  (B, L) weight map weights each label (Keras's `BinaryCrossentropy` averages labels first).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from imbal_keras.errors import check
from imbal_keras.losses.long_tail import _PACKAGE, FocalLoss, _class_logits, _non_negative, _positive

__all__ = [
    "CrossEntropyDiceLoss",
    "DenseFocalLoss",
    "DiceLoss",
    "LabelwiseBinaryCrossentropy",
    "TverskyLoss",
]

_REDUCTIONS = (None, "none", "sum", "sum_over_batch_size")


class _SoftOverlapLoss(keras.losses.Loss):
    """Shared plumbing of the overlap losses: soft counts per example and class, a reduction over examples."""

    def __init__(self, *, smooth: float, from_logits: bool, ignore_label: int | None, reduction, name: str, dtype):
        check(
            reduction in _REDUCTIONS,
            "reduction must be sum_over_batch_size, sum or None for a per-example overlap loss. "
            f"Received: reduction={reduction!r}",
            argument="reduction",
        )
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.smooth = _non_negative(smooth, "smooth")
        self.from_logits = bool(from_logits)
        self.ignore_label = None if ignore_label is None else int(ignore_label)

    def __call__(self, y_true, y_pred, sample_weight=None):
        with tf.name_scope(self.name):
            per_example = self._per_example(y_true, y_pred, sample_weight)
            if self.reduction in (None, "none"):
                return per_example
            total = tf.reduce_sum(per_example)
            return total if self.reduction == "sum" else total / tf.cast(tf.shape(per_example)[0], total.dtype)

    def call(self, y_true, y_pred):
        return self._per_example(y_true, y_pred, None)

    def _per_example(self, y_true, y_pred, sample_weight):
        """One loss per example, (B,)."""
        return self._from_inputs(*_dense_inputs(y_true, y_pred, sample_weight, self.from_logits, self.ignore_label))

    def _from_inputs(self, log_p, ids, weight):
        """One loss per example from (B, P, K) log-probabilities, (B, P) class ids and (B, P) weights."""
        raise NotImplementedError

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "smooth": self.smooth,
            "from_logits": self.from_logits,
            "ignore_label": self.ignore_label,
        }


@keras.saving.register_keras_serializable(package=_PACKAGE)
class TverskyLoss(_SoftOverlapLoss):
    """Soft Tversky loss (Salehi et al., "Tversky loss function for image segmentation", 2017), per class.

    Per example: 1 - mean_c (TP_c + s) / (TP_c + alpha FP_c + beta FN_c + s) (soft counts in the module docstring).
    beta > alpha weighs missed rare pixels (false negatives) more than false alarms; Salehi et al.'s best was
    alpha = 0.3, beta = 0.7. alpha = beta = 0.5 is the Dice loss up to the smoothing term.

    Args:
      alpha: weight of false positives, >= 0.
      beta: weight of false negatives, >= 0.
      smooth: s >= 0, added to numerator and denominator (a class absent and not predicted scores 1).
      from_logits: whether the model outputs logits.
      ignore_label: a label that is no class, or None.
      reduction: over examples: `sum_over_batch_size` (mean), `sum`, or None.
      name: loss name.
      dtype: computation dtype.

    Raises:
      UserInputError: a negative alpha, beta or smooth; another reduction.
    """

    def __init__(
        self,
        *,
        alpha: float = 0.3,
        beta: float = 0.7,
        smooth: float = 1.0,
        from_logits: bool = False,
        ignore_label: int | None = None,
        reduction: str | None = "sum_over_batch_size",
        name: str = "tversky_loss",
        dtype=None,
    ):
        super().__init__(
            smooth=smooth,
            from_logits=from_logits,
            ignore_label=ignore_label,
            reduction=reduction,
            name=name,
            dtype=dtype,
        )
        self.alpha = _non_negative(alpha, "alpha")
        self.beta = _non_negative(beta, "beta")

    def _from_inputs(self, log_p, ids, weight):
        tp, fp, fn = _soft_counts(log_p, ids, weight)
        score = (tp + self.smooth) / (tp + self.alpha * fp + self.beta * fn + self.smooth)
        return 1.0 - tf.reduce_mean(score, axis=-1)

    def get_config(self) -> dict:
        return {**super().get_config(), "alpha": self.alpha, "beta": self.beta}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class DiceLoss(_SoftOverlapLoss):
    """Soft Dice loss (Milletari et al., "V-Net", 3DV 2016), per class and averaged over classes.

    Per example: 1 - mean_c (2 TP_c + s) / (2 TP_c + FP_c + FN_c + s), i.e. 2 sum P G / (sum P + sum G) per class
    with smoothing (the squared denominators of V-Net are not used; nnU-Net's soft Dice is this one). Every class,
    background included, counts equally, which is what lifts rare classes.

    Args:
      smooth: s >= 0, added to numerator and denominator.
      from_logits: whether the model outputs logits.
      ignore_label: a label that is no class, or None.
      reduction: over examples: `sum_over_batch_size` (mean), `sum`, or None.
      name: loss name.
      dtype: computation dtype.

    Raises:
      UserInputError: a negative smooth; another reduction.
    """

    def __init__(
        self,
        *,
        smooth: float = 1.0,
        from_logits: bool = False,
        ignore_label: int | None = None,
        reduction: str | None = "sum_over_batch_size",
        name: str = "dice_loss",
        dtype=None,
    ):
        super().__init__(
            smooth=smooth,
            from_logits=from_logits,
            ignore_label=ignore_label,
            reduction=reduction,
            name=name,
            dtype=dtype,
        )

    def _from_inputs(self, log_p, ids, weight):
        tp, fp, fn = _soft_counts(log_p, ids, weight)
        return 1.0 - tf.reduce_mean((2.0 * tp + self.smooth) / (2.0 * tp + fp + fn + self.smooth), axis=-1)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CrossEntropyDiceLoss(DiceLoss):
    """Cross-entropy plus soft Dice, per example: sum_p w_p CE_p / P + dice_weight * Dice loss (nnU-Net's loss).

    The cross-entropy term is weighted by the weight map and divided by the number of pixels P of the example
    (the `sum_over_batch_size` reduction of a weighted pixel loss); the Dice term uses the same weights in its
    soft counts.

    Args:
      dice_weight: weight of the Dice term, > 0.
      smooth: s >= 0 of the Dice term.
      from_logits: whether the model outputs logits.
      ignore_label: a label that is no class, or None.
      reduction: over examples: `sum_over_batch_size` (mean), `sum`, or None.
      name: loss name.
      dtype: computation dtype.

    Raises:
      UserInputError: dice_weight <= 0, a negative smooth; another reduction.
    """

    def __init__(
        self,
        *,
        dice_weight: float = 1.0,
        smooth: float = 1.0,
        from_logits: bool = False,
        ignore_label: int | None = None,
        reduction: str | None = "sum_over_batch_size",
        name: str = "cross_entropy_dice_loss",
        dtype=None,
    ):
        super().__init__(
            smooth=smooth,
            from_logits=from_logits,
            ignore_label=ignore_label,
            reduction=reduction,
            name=name,
            dtype=dtype,
        )
        self.dice_weight = _positive(dice_weight, "dice_weight")

    def _from_inputs(self, log_p, ids, weight):
        cross_entropy = tf.reduce_mean(weight * -tf.gather(log_p, ids, batch_dims=2), axis=1)
        return cross_entropy + self.dice_weight * super()._from_inputs(log_p, ids, weight)

    def get_config(self) -> dict:
        return {**super().get_config(), "dice_weight": self.dice_weight}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class DenseFocalLoss(FocalLoss):
    """The focal loss (`FocalLoss`: -alpha_y (1 - p_y)^gamma log p_y) per pixel or token of a dense target.

    Returns one value per pixel, shaped as the labels, so Keras applies a weight map and its reduction:
    `sum_over_batch_size` is sum w l / number of pixels, `mean_with_sample_weight` is sum w l / sum w. Pixels with
    `ignore_label` have loss 0.

    Args:
      gamma: focusing parameter, >= 0.
      alpha: per-class weights, or None.
      from_logits: whether the model outputs logits.
      ignore_label: a label that is no class, or None.
      reduction: Keras reduction of the per-pixel losses.
      name: loss name.
      dtype: computation dtype.
    """

    def __init__(
        self,
        *,
        gamma: float = 2.0,
        alpha=None,
        from_logits: bool = False,
        ignore_label: int | None = None,
        reduction: str = "sum_over_batch_size",
        name: str = "dense_focal_loss",
        dtype=None,
    ):
        super().__init__(gamma=gamma, alpha=alpha, from_logits=from_logits, reduction=reduction, name=name, dtype=dtype)
        self.ignore_label = None if ignore_label is None else int(ignore_label)

    def _logits_and_ids(self, y_true, y_pred):
        logits = _class_logits(y_pred, self.from_logits)
        ids = tf.reshape(tf.cast(y_true, tf.int32), [-1])
        if self.ignore_label is not None:
            ids = tf.where(tf.equal(ids, self.ignore_label), 0, ids)
        return tf.reshape(logits, [-1, logits.shape[-1]]), ids

    def call(self, y_true, y_pred):
        labels = _label_shape(y_true, y_pred)
        loss = tf.reshape(super().call(y_true, y_pred), tf.shape(labels))
        if self.ignore_label is None:
            return loss
        return tf.where(tf.equal(tf.cast(labels, tf.int32), self.ignore_label), tf.zeros_like(loss), loss)

    def get_config(self) -> dict:
        return {**super().get_config(), "ignore_label": self.ignore_label}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class LabelwiseBinaryCrossentropy(keras.losses.Loss):
    """Binary cross-entropy of multi-label targets (B, L), one value per example and label.

    Keras applies a (B, L) weight map (`imbal_keras.data.dense.label_weighted`) label by label, then its
    reduction (`sum_over_batch_size`: sum w l / (B L)).

    Args:
      from_logits: whether the model outputs logits.
      reduction: Keras reduction.
      name: loss name.
      dtype: computation dtype.
    """

    def __init__(
        self,
        *,
        from_logits: bool = False,
        reduction: str = "sum_over_batch_size",
        name: str = "labelwise_binary_crossentropy",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        return keras.ops.binary_crossentropy(tf.cast(y_true, y_pred.dtype), y_pred, from_logits=self.from_logits)

    def get_config(self) -> dict:
        return {**super().get_config(), "from_logits": self.from_logits}


def _soft_counts(log_p, ids, weight):
    """Weighted soft TP, FP and FN per example and class, each (B, K) (formulas in the module docstring), from
    `_dense_inputs`."""
    p = tf.exp(log_p)
    g = tf.one_hot(ids, tf.shape(p)[-1], dtype=p.dtype)
    w = weight[..., None]
    tp = tf.reduce_sum(w * p * g, axis=1)
    return tp, tf.reduce_sum(w * p, axis=1) - tp, tf.reduce_sum(w * g, axis=1) - tp


def _dense_inputs(y_true, y_pred, sample_weight, from_logits: bool, ignore: int | None):
    """(B, P, K) log-probabilities, (B, P) int32 class ids and (B, P) weights (0 on ignored pixels).

    `y_true` holds class ids (B, ...) of the output's spatial shape (a trailing axis of 1 allowed); `y_pred` (B, ...,
    K) probabilities or logits; `sample_weight` a weight map of the labels' shape, one weight per example, or None.
    """
    y_pred = tf.convert_to_tensor(y_pred)
    logits = _class_logits(y_pred, from_logits)
    batch = tf.shape(y_pred)[0]
    log_p = tf.reshape(tf.nn.log_softmax(logits), [batch, -1, logits.shape[-1]])
    ids = tf.reshape(tf.cast(y_true, tf.int32), [batch, -1])
    weight = tf.ones(tf.shape(ids), log_p.dtype)
    if sample_weight is not None:
        weight *= tf.reshape(tf.cast(sample_weight, log_p.dtype), [batch, -1])
    if ignore is not None:
        valid = tf.not_equal(ids, ignore)
        weight *= tf.cast(valid, log_p.dtype)
        ids = tf.where(valid, ids, 0)
    return log_p, ids, weight


def _label_shape(y_true, y_pred):
    """The labels without a trailing axis of 1 when they carry one more axis than the classes leave."""
    if y_true.shape.rank == y_pred.shape.rank and y_true.shape[-1] == 1:
        return y_true[..., 0]
    return y_true
