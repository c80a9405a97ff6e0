"""Losses of the long-tail literature, as Keras losses that return one value per example.

Every loss here computes a per-example loss in `call` and leaves sample weights and the reduction to Keras
(`reduction=` is honoured, `sample_weight` multiplies the per-example values), so `PerClassGradients` can split
the loss and its gradient by class exactly, as it does for Keras' cross-entropies.

All of them take the model's output as it is: probabilities (a (B, 1) sigmoid for two classes, a (B, K) softmax
for K) or logits with `from_logits=True`. Internally a sigmoid output z becomes the two-class logits [0, z]
(softmax([0, z]) = [1 - sigmoid(z), sigmoid(z)]), so every loss has one K-class formula. When the probabilities
come from Keras' own sigmoid/softmax the logits behind them are read directly (`_keras_logits`, as Keras'
cross-entropies do): no clipping, and the gradient flows from the logits only. Other probabilities are turned
into logits as log p (clipped at 1e-7).

Labels are integer class ids, shape (B,) or (B, 1) (float ids are accepted: Keras casts labels to the loss dtype).

- `FocalLoss` (Lin et al. 2017): -alpha_y (1 - p_y)^gamma log p_y.
- `LogitAdjustedLoss` (Menon et al. 2021): cross-entropy of logits + tau log(prior).
- `LDAMLoss` (Cao et al. 2019): cross-entropy of s (logits - Delta_y e_y), Delta_c proportional to n_c^(-1/4).
- `class_balanced_weights` (Cui et al. 2019): w_c proportional to (1 - beta) / (1 - beta^n_c), summing to K.
- `DeferredReweighting` (Cao et al. 2019): any of these (or a Keras loss) unweighted until an optimizer step,
  class-weighted from that step on; its `switch_callback()` ties it to the optimizer's step counter.
- `cross_entropy`: Keras' cross-entropy for K classes with a given reduction (the loss of most strategies).
- `adjust_probabilities`: post-hoc logit adjustment of predicted probabilities (Menon et al. 2021), for any model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from imbal_keras.errors import UserInputError, check

_PACKAGE = "imbal_keras"
# `DeferredReweighting(reduction=...)` left out: the wrapped loss's reduction (None means no reduction in Keras).
_INHERITED = "inherited"
# Probabilities that are not Keras' own sigmoid/softmax output are clipped here before the log.
_PROBABILITY_EPSILON = 1e-7


class _PerExampleLoss(keras.losses.Loss):
    """Shared plumbing: logits in K-class form, class ids, validation of per-class vectors."""

    def __init__(self, *, from_logits: bool, reduction: str, name: str, dtype):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.from_logits = bool(from_logits)

    def get_config(self) -> dict:
        return {**super().get_config(), "from_logits": self.from_logits}

    def _logits_and_ids(self, y_true, y_pred) -> tuple[tf.Tensor, tf.Tensor]:
        """(B, K) logits and (B,) int32 class ids from the labels and the model output."""
        return _class_logits(y_pred, self.from_logits), _class_ids(y_true)

    def _per_class(self, values: tf.Tensor | None, logits: tf.Tensor, argument: str) -> tf.Tensor | None:
        """`values` (K,) as a tensor of the loss dtype, checked against the model's K at trace time."""
        if values is None:
            return None
        num_classes = logits.shape[-1]
        check(
            num_classes is None or len(values) == num_classes,
            f"{argument} has {len(values)} entries but the model predicts {num_classes} classes. "
            f"Received: {argument}={_listed(values)}",
            argument=argument,
        )
        return tf.constant(values, logits.dtype)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FocalLoss(_PerExampleLoss):
    """Focal loss (Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017), binary and K-class.

    Per example: FL = -alpha_y (1 - p_y)^gamma log p_y, with p_y the predicted probability of the true class.
    `gamma` down-weights well-classified examples (gamma = 0 is the cross-entropy). `alpha` is a fixed weight per
    true class: alpha_y multiplies every example of class y, the same as a class weight (sample weight) would,
    and it is always applied when given (unlike Keras' `BinaryFocalCrossentropy`, which ignores its `alpha` unless
    `apply_class_balancing=True`). Lin et al.'s binary alpha = 0.25 for the foreground class is
    `alpha=[0.75, 0.25]` here.

    Args:
      gamma: focusing parameter, >= 0.
      alpha: per-class weights alpha_c >= 0, one per class (two for a sigmoid output), or None for no weighting.
      from_logits: whether the model outputs logits instead of probabilities.
      reduction: Keras reduction of the per-example losses.
      name: loss name.
      dtype: computation dtype.

    Raises:
      UserInputError: gamma < 0, a negative or non-finite alpha, or (when the loss is traced) an alpha whose
        length differs from the number of classes.
    """

    def __init__(
        self,
        *,
        gamma: float = 2.0,
        alpha: Sequence[float] | None = None,
        from_logits: bool = False,
        reduction: str = "sum_over_batch_size",
        name: str = "focal_loss",
        dtype=None,
    ):
        super().__init__(from_logits=from_logits, reduction=reduction, name=name, dtype=dtype)
        self.gamma = _non_negative(gamma, "gamma")
        self.alpha = None if alpha is None else _weights_vector(alpha, "alpha")

    def call(self, y_true, y_pred):
        logits, ids = self._logits_and_ids(y_true, y_pred)
        log_pt = tf.gather(tf.nn.log_softmax(logits), ids, batch_dims=1)
        loss = -log_pt
        if self.gamma > 0:
            # 1 - p_t without cancellation; floored at the smallest normal so (1 - p_t)^gamma has a finite
            # gradient for gamma < 1 when p_t rounds to 1.
            one_minus_pt = tf.maximum(-tf.math.expm1(log_pt), np.finfo(logits.dtype.as_numpy_dtype).tiny)
            loss *= tf.pow(one_minus_pt, self.gamma)
        alpha = self._per_class(self.alpha, logits, "alpha")
        return loss if alpha is None else loss * tf.gather(alpha, ids)

    def get_config(self) -> dict:
        return {**super().get_config(), "gamma": self.gamma, "alpha": self.alpha}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class LogitAdjustedLoss(_PerExampleLoss):
    """Logit-adjusted cross-entropy (Menon et al., "Long-tail learning via logit adjustment", ICLR 2021).

    Per example: -log softmax(z + tau log pi)_y, with z the model's logits and pi the training class prior. The
    model learns logits z that already discount the prior, so its own output (softmax(z)) is the balanced
    predictor; no adjustment at evaluation is needed.

    Args:
      prior: training class counts or shares pi_c > 0, one per class (two for a sigmoid output).
      tau: adjustment strength, >= 0 (0 is the plain cross-entropy, 1 the paper's default).
      from_logits: whether the model outputs logits instead of probabilities.
      reduction: Keras reduction of the per-example losses.
      name: loss name.
      dtype: computation dtype.

    Raises:
      UserInputError: tau < 0, a prior with a zero, negative or non-finite entry, or (when traced) a prior whose
        length differs from the number of classes.
    """

    def __init__(
        self,
        prior: Sequence[float],
        *,
        tau: float = 1.0,
        from_logits: bool = False,
        reduction: str = "sum_over_batch_size",
        name: str = "logit_adjusted_loss",
        dtype=None,
    ):
        super().__init__(from_logits=from_logits, reduction=reduction, name=name, dtype=dtype)
        self.prior = _prior(prior, "prior")
        self.tau = _non_negative(tau, "tau")

    def call(self, y_true, y_pred):
        logits, ids = self._logits_and_ids(y_true, y_pred)
        log_prior = self._per_class(np.log(self.prior).tolist(), logits, "prior")
        return _cross_entropy(logits + self.tau * log_prior, ids)

    def get_config(self) -> dict:
        return {**super().get_config(), "prior": self.prior, "tau": self.tau}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class LDAMLoss(_PerExampleLoss):
    """Label-distribution-aware margin loss (Cao et al., "Learning Imbalanced Datasets with Label-Distribution-Aware
    Margin Loss", NeurIPS 2019).

    Per example: -log softmax(s (z - Delta_y e_y))_y: the true class's logit is lowered by a margin
    Delta_c = C / n_c^(1/4), largest for the rarest class, with C chosen so that max_c Delta_c = `max_margin`.
    The paper uses s = 30 on cosine logits (features and weights normalised, |z| <= 1); this package's models
    have a plain dense output, whose logits are already on the scale the cross-entropy needs, so the default is
    s = 1 (a larger s also scales the gradient by s and leaves the model's own probabilities, softmax(z), far
    too flat).

    Args:
      class_counts: training examples per class n_c > 0, one per class (two for a sigmoid output).
      max_margin: the largest margin, >= 0 (the paper's 0.5).
      scale: s > 0, multiplies the margin-adjusted logits.
      from_logits: whether the model outputs logits instead of probabilities.
      reduction: Keras reduction of the per-example losses.
      name: loss name.
      dtype: computation dtype.

    Raises:
      UserInputError: max_margin < 0, scale <= 0, a class with no examples, or (when traced) counts whose length
        differs from the number of classes.
    """

    def __init__(
        self,
        class_counts: Sequence[float],
        *,
        max_margin: float = 0.5,
        scale: float = 1.0,
        from_logits: bool = False,
        reduction: str = "sum_over_batch_size",
        name: str = "ldam_loss",
        dtype=None,
    ):
        super().__init__(from_logits=from_logits, reduction=reduction, name=name, dtype=dtype)
        self.class_counts = _counts(class_counts, "class_counts")
        self.max_margin = _non_negative(max_margin, "max_margin")
        self.scale = _positive(scale, "scale")

    @property
    def margins(self) -> np.ndarray:
        """Delta_c = max_margin * (n_min / n_c)^(1/4), shape (K,)."""
        return ldam_margins(self.class_counts, max_margin=self.max_margin)

    def call(self, y_true, y_pred):
        logits, ids = self._logits_and_ids(y_true, y_pred)
        margins = self._per_class(self.margins.tolist(), logits, "class_counts")
        shifted = logits - tf.one_hot(ids, tf.shape(logits)[-1], dtype=logits.dtype) * margins
        return _cross_entropy(self.scale * shifted, ids)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "class_counts": self.class_counts,
            "max_margin": self.max_margin,
            "scale": self.scale,
        }


@keras.saving.register_keras_serializable(package=_PACKAGE)
class DeferredReweighting(keras.losses.Loss):
    """Deferred re-weighting (DRW, Cao et al. 2019) around any per-example loss.

    Until optimizer step `switch_step` (0-based: the value of `optimizer.iterations` when the step starts) the
    wrapped loss is used as it is; from that step on example i is weighted by `class_weights[y_i]` (on top of any
    sample weight). The step is read inside the compiled train step from the optimizer's own counter, so the switch
    happens at exactly that step whatever `steps_per_execution`, and under `tf.distribute`. The counter is bound
    by the callback from `switch_callback()`, which must be passed to `fit` (until it is bound, e.g. when the loss
    is evaluated outside `fit`, the loss is that of step 0; without the callback the switch would never happen):

    ```python
    loss = DeferredReweighting(keras.losses.BinaryCrossentropy(), class_balanced_weights([90, 10], beta=0.999),
                               switch_step=800)
    model.compile(optimizer="sgd", loss=loss)
    model.fit(train, steps_per_epoch=100, epochs=10, callbacks=[loss.switch_callback()])
    ```

    The reduction is the wrapped loss's unless `reduction` is given. With `sum_over_batch_size` the weighted loss
    is sum_i w_i l_i / B, so the weights also change the size of the loss after the switch; `normalize=True`
    divides by the batch's mean weight instead, giving sum_i w_i l_i / sum_i w_i, the reduction of PyTorch's
    `cross_entropy(weight=)` that Cao et al. use. The weights depend on the labels only, so either way the loss
    stays a sum of per-example terms and its per-class split stays exact.

    Args:
      loss: a Keras loss whose `call` returns one value per example (every loss here, Keras' cross-entropies).
      class_weights: weights from the switch on, one per class (two for a sigmoid output), >= 0.
      switch_step: first optimizer step with the weights, >= 0.
      normalize: divide the weighted losses by the batch's mean weight (see above).
      reduction: the Keras reduction; by default the wrapped loss's.
      name: loss name.

    Raises:
      UserInputError: a negative switch_step or weight; (when traced) weights whose length differs from the number
        of classes.
    """

    def __init__(
        self,
        loss: keras.losses.Loss,
        class_weights: Sequence[float],
        *,
        switch_step: int,
        normalize: bool = False,
        reduction: str | None = _INHERITED,
        name: str = "deferred_reweighting",
    ):
        check(
            isinstance(loss, keras.losses.Loss),
            f"loss must be a keras.losses.Loss. Received: loss={loss!r}",
            argument="loss",
        )
        super().__init__(
            name=name, reduction=loss.reduction if reduction == _INHERITED else reduction, dtype=loss.dtype
        )
        self.loss = loss
        self.class_weights = _weights_vector(class_weights, "class_weights")
        check(
            isinstance(switch_step, (int, np.integer)) and switch_step >= 0,
            f"switch_step must be an integer >= 0. Received: switch_step={switch_step!r}",
            argument="switch_step",
        )
        self.switch_step = int(switch_step)
        self.normalize = bool(normalize)
        self._step = None

    @property
    def couples_batch(self) -> bool:
        """Whether an example's value depends on the rest of its batch (`normalize`: the batch's mean weight), so
        that the batches of runs side by side are computed apart."""
        return self.normalize

    def bind_step(self, step_counter: tf.Variable) -> None:
        """Reads the current optimizer step from `step_counter` (the callback binds `optimizer.iterations`)."""
        self._step = step_counter

    def switch_callback(self) -> keras.callbacks.Callback:
        """The callback that binds the model's optimizer step counter when training begins."""
        return DeferredReweightingSwitch(self)

    def call(self, y_true, y_pred):
        per_example = self.loss.call(y_true, y_pred)
        num_classes = _num_classes(y_pred)
        check(
            num_classes is None or len(self.class_weights) == num_classes,
            f"class_weights has {len(self.class_weights)} entries but the model predicts {num_classes} classes. "
            f"Received: class_weights={_listed(self.class_weights)}",
            argument="class_weights",
        )
        weights = tf.constant(self.class_weights, per_example.dtype)
        step = 0 if self._step is None else tf.cast(tf.convert_to_tensor(self._step), tf.int64)
        switched = tf.cast(step, tf.int64) >= self.switch_step
        weight = tf.gather(weights, _class_ids(y_true))
        if self.normalize:
            weight = tf.math.divide_no_nan(weight, tf.reduce_mean(weight))
        return per_example * tf.where(switched, weight, tf.ones_like(per_example))

    def get_config(self) -> dict:
        return {
            "name": self.name,
            "loss": keras.losses.serialize(self.loss),
            "class_weights": self.class_weights,
            "switch_step": self.switch_step,
            "normalize": self.normalize,
            "reduction": self.reduction,
        }

    @classmethod
    def from_config(cls, config: dict) -> DeferredReweighting:
        config = dict(config)
        config["loss"] = keras.losses.deserialize(config["loss"])
        return cls(**config)


class DeferredReweightingSwitch(keras.callbacks.Callback):
    """Binds `DeferredReweighting` losses to the optimizer step counter of the model being trained.

    Binding happens in `on_train_begin`, before Keras traces the train step, so the compiled step reads
    `optimizer.iterations` itself; nothing runs per batch.

    Args:
      loss: the `DeferredReweighting` loss to bind, or None for every one the model is compiled with (so a
        strategy can hand out the callback without holding the loss object).

    Raises:
      UserInputError: (when training begins) `loss` is None and the model's loss has no `DeferredReweighting`.
    """

    def __init__(self, loss: DeferredReweighting | None = None):
        super().__init__()
        self.loss = loss

    def on_train_begin(self, logs=None):
        found = [self.loss] if self.loss is not None else _deferred_losses(self.model.loss)
        check(
            bool(found),
            "DeferredReweightingSwitch found no DeferredReweighting loss on the model. "
            f"Received: loss={self.model.loss!r}",
            argument="loss",
        )
        for loss in found:
            loss.bind_step(self.model.optimizer.iterations)


def _deferred_losses(loss) -> list[DeferredReweighting]:
    """The `DeferredReweighting` losses in a compiled loss (one loss, or a list or dict of them)."""
    if isinstance(loss, DeferredReweighting):
        return [loss]
    if isinstance(loss, dict):
        loss = list(loss.values())
    if isinstance(loss, (list, tuple)):
        return [found for item in loss for found in _deferred_losses(item)]
    return []


def cross_entropy(num_classes: int, *, reduction: str = "sum_over_batch_size") -> keras.losses.Loss:
    """Keras' cross-entropy for K classes (binary for K = 2) with the given reduction of per-example losses.

    `sum_over_batch_size` is sum_i w_i l_i / B (Keras' default); `mean_with_sample_weight` is
    sum_i w_i l_i / sum_i w_i (PyTorch's `weight=` behaviour). They differ only when weights are present.
    """
    if num_classes == 2:
        return keras.losses.BinaryCrossentropy(reduction=reduction)
    return keras.losses.SparseCategoricalCrossentropy(reduction=reduction)


def class_balanced_weights(class_counts: Sequence[float], beta: float) -> np.ndarray:
    """Class-balanced weights from the effective number of samples (Cui et al., CVPR 2019).

    The effective number of n_c examples is E_c = (1 - beta^n_c) / (1 - beta); the weight is its inverse,
    w_c proportional to (1 - beta) / (1 - beta^n_c), normalised so that sum_c w_c = K (as in the paper). beta -> 0
    gives equal weights, beta -> 1 inverse-frequency weights; the paper's CIFAR-LT values are 0.9 to 0.9999.

    Args:
      class_counts: training examples per class n_c, each > 0.
      beta: in (0, 1).

    Returns:
      float64 array of shape (K,), summing to K.

    Raises:
      UserInputError: beta outside (0, 1), or a class with no examples.
    """
    check(
        _is_real(beta) and 0 < beta < 1,
        f"beta must be in (0, 1). Received: beta={beta!r}",
        argument="beta",
    )
    n = _counts(class_counts, "class_counts")
    weights = (1.0 - beta) / -np.expm1(np.asarray(n) * np.log(beta))  # 1 - beta^n without cancellation
    return len(n) * weights / weights.sum()


def ldam_margins(class_counts: Sequence[float], *, max_margin: float = 0.5) -> np.ndarray:
    """LDAM margins Delta_c = C / n_c^(1/4) with C such that the largest (rarest class) is `max_margin`.

    Raises:
      UserInputError: a class with no examples, or max_margin < 0.
    """
    n = np.asarray(_counts(class_counts, "class_counts"))
    return _non_negative(max_margin, "max_margin") * (n.min() / n) ** 0.25


def adjust_probabilities(probabilities, prior: Sequence[float], *, tau: float = 1.0) -> np.ndarray:
    """Post-hoc logit adjustment (Menon et al. 2021): p'_c proportional to p_c / pi_c^tau, renormalised.

    Equivalent to predicting argmax_c (log p_c - tau log pi_c): it removes the training prior from any model's
    probabilities, whatever strategy trained it. tau = 0 returns the probabilities unchanged.

    Args:
      probabilities: (N, K) class probabilities, or (N,) / (N, 1) probabilities of class 1 for a sigmoid model.
      prior: the training class counts or shares pi_c > 0, shape (K,) (two entries for a sigmoid model).
      tau: adjustment strength, >= 0.

    Returns:
      float64 array of the input's shape.

    Raises:
      UserInputError: tau < 0, a non-positive prior, or a prior whose length differs from the number of classes.
    """
    tau = _non_negative(tau, "tau")
    pi = np.asarray(_prior(prior, "prior"))
    p = np.asarray(probabilities, dtype=np.float64)
    binary = p.ndim == 1 or p.shape[-1] == 1
    columns = np.stack([1.0 - p.reshape(-1), p.reshape(-1)], axis=1) if binary else p
    check(
        len(pi) == columns.shape[1],
        f"prior has {len(pi)} entries but the probabilities have {columns.shape[1]} classes. "
        f"Received: prior={_listed(prior)}",
        argument="prior",
    )
    adjusted = columns * pi ** (-tau)
    adjusted /= adjusted.sum(axis=1, keepdims=True)
    return adjusted[:, 1].reshape(p.shape) if binary else adjusted


def minimising_distribution(loss: keras.losses.Loss, class_mass: Sequence[float]) -> np.ndarray:
    """The constant prediction that minimises the expected loss, as a class distribution.

    Minimises sum_c m_c loss(c, p) over the predicted distribution p (a sigmoid output for K = 2, a softmax for
    K > 2), where m_c is the class's mass in the training batches (its share times its weight). The output bias
    that starts a model at this minimiser is `models.output_bias(...)` of the result: for the cross-entropy it is
    m / sum(m), for the logit-adjusted loss m^(1 - tau) normalised, for the focal and LDAM losses it has no closed
    form and is found numerically (L-BFGS on the bias, from log m).

    Args:
      loss: a loss of this module or a Keras cross-entropy, taking probabilities (`from_logits=False`).
      class_mass: m_c >= 0, shape (K,), K >= 2, not all zero.

    Returns:
      float64 array of shape (K,) summing to 1.

    Raises:
      UserInputError: a negative or all-zero class mass, or fewer than two classes.
    """
    from scipy import optimize

    mass = _vector(class_mass, "class_mass")
    check(
        len(mass) >= 2 and (mass >= 0).all() and mass.sum() > 0,
        f"class_mass must be >= 0, not all zero, for K >= 2 classes. Received: class_mass={_listed(class_mass)}",
        argument="class_mass",
    )
    k = len(mass)
    labels = tf.constant(np.arange(k), tf.float32)
    weights = tf.constant(mass / mass.sum(), tf.float32)
    activation = keras.activations.sigmoid if k == 2 else keras.activations.softmax

    @tf.function(autograph=False)
    def value_and_gradient(bias):
        with tf.GradientTape() as tape:
            tape.watch(bias)
            value = loss(labels, activation(tf.tile(bias[None, :], [k, 1])), sample_weight=weights)
        return value, tape.gradient(value, bias)

    def expected_loss(bias):
        value, gradient = value_and_gradient(tf.constant(bias, tf.float32))
        return float(value), gradient.numpy().astype(np.float64)

    # Start at the cross-entropy's minimiser, log m (up to a constant; the log-odds for a sigmoid).
    log_mass = np.log(np.clip(mass / mass.sum(), 1e-12, None))
    start = log_mass[1:] - log_mass[:1] if k == 2 else log_mass
    bias = optimize.minimize(expected_loss, start, jac=True, method="L-BFGS-B", options={"gtol": 1e-9}).x
    if k == 2:
        p1 = 1.0 / (1.0 + np.exp(-bias[0]))
        return np.array([1.0 - p1, p1])
    p = np.exp(bias - bias.max())
    return p / p.sum()


def _class_logits(y_pred: tf.Tensor, from_logits: bool) -> tf.Tensor:
    """(B, K) logits of the model output; a sigmoid output z (B, 1) becomes [0, z]."""
    logits = y_pred if from_logits else getattr(y_pred, "_keras_logits", None)
    binary = y_pred.shape.rank == 1 or y_pred.shape[-1] == 1
    if logits is None:
        p = tf.clip_by_value(y_pred, _PROBABILITY_EPSILON, 1.0 - _PROBABILITY_EPSILON if binary else 1.0)
        logits = tf.math.log(p) - tf.math.log1p(-p) if binary else tf.math.log(p)
    logits = tf.cast(logits, y_pred.dtype)
    if binary:
        z = tf.reshape(logits, [-1, 1])
        return tf.concat([tf.zeros_like(z), z], axis=-1)
    return logits


def _class_ids(y_true: tf.Tensor) -> tf.Tensor:
    """(B,) int32 class ids from labels of shape (B,) or (B, 1)."""
    rank = y_true.shape.rank
    check(
        rank == 1 or (rank == 2 and y_true.shape[-1] == 1),
        f"labels must be class ids of shape (B,) or (B, 1). Received: y_true.shape={y_true.shape}",
        argument="y_true",
    )
    return tf.cast(tf.reshape(y_true, [-1]), tf.int32)


def _num_classes(y_pred: tf.Tensor) -> int | None:
    width = y_pred.shape[-1] if y_pred.shape.rank else None
    return 2 if y_pred.shape.rank == 1 or width == 1 else width


def _cross_entropy(logits: tf.Tensor, ids: tf.Tensor) -> tf.Tensor:
    return -tf.gather(tf.nn.log_softmax(logits), ids, batch_dims=1)


def _is_real(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _non_negative(value, argument: str) -> float:
    check(
        _is_real(value) and math.isfinite(value) and value >= 0,
        f"{argument} must be >= 0. Received: {argument}={value!r}",
        argument=argument,
    )
    return float(value)


def _positive(value, argument: str) -> float:
    check(
        _is_real(value) and math.isfinite(value) and value > 0,
        f"{argument} must be > 0. Received: {argument}={value!r}",
        argument=argument,
    )
    return float(value)


def _listed(values) -> list:
    return np.asarray(values).tolist()


def _vector(values, argument: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise UserInputError(
            f"{argument} must be a sequence of numbers, one per class. Received: {argument}={values!r}",
            argument=argument,
        ) from None
    check(
        array.ndim == 1 and len(array) > 0 and np.isfinite(array).all(),
        f"{argument} must be a sequence of finite numbers, one per class. Received: {argument}={_listed(values)}",
        argument=argument,
    )
    return array


def _weights_vector(values, argument: str) -> list[float]:
    array = _vector(values, argument)
    check(
        (array >= 0).all(),
        f"{argument} must be >= 0. Received: {argument}={_listed(values)}",
        argument=argument,
    )
    return array.tolist()


def _counts(values, argument: str) -> list[float]:
    """Class counts (or shares) as a list, every class > 0: a class with none has no prior, margin or weight."""
    array = _vector(values, argument)
    empty = np.flatnonzero(array <= 0)
    if len(empty):
        raise UserInputError(
            f"{argument} must be > 0 for every class; class {empty[0]} has {array[empty[0]]:g}. "
            f"Received: {argument}={_listed(values)}",
            argument=argument,
        )
    return array.tolist()


def _prior(values, argument: str) -> list[float]:
    """Class counts or shares normalised to a distribution with every entry > 0."""
    array = np.asarray(_counts(values, argument))
    return (array / array.sum()).tolist()


__all__ = [
    "DeferredReweighting",
    "DeferredReweightingSwitch",
    "FocalLoss",
    "LDAMLoss",
    "LogitAdjustedLoss",
    "adjust_probabilities",
    "class_balanced_weights",
    "cross_entropy",
    "ldam_margins",
    "minimising_distribution",
]
