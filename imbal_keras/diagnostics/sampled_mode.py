"""The sampled mode: gradient noise measured from batches of a strategy's real `tf.data` pipeline, for any model.

`sampled` estimates G, tr Cov, |G|^2, tr Sigma and B_simple from batches of one size with jackknife standard
errors; `two_batch_sizes` is the two-batch-size estimator of McCandlish et al. (2018, Appendix A).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from imbal_keras.diagnostics._common import CHUNK_BYTES, cached, check_int, check_single_output, resolve_loss
from imbal_keras.errors import UserInputError, check

__all__ = [
    "NoiseEstimate",
    "one_size_estimates",
    "sampled",
    "two_batch_sizes",
]

# Batches stacked into one graph call (tf.map_fn) of the sampled mode.
_MAX_STACKED_BATCHES = 256


@dataclasses.dataclass(frozen=True)
class NoiseEstimate:
    """Noise measured from batches of a real pipeline, with standard errors (`*_se`).

    Attributes:
      method: `one_batch_size` (`sampled`) or `two_batch_sizes` (`two_batch_sizes`).
      batch_sizes: (B,) or (B_small, B_big).
      num_batches: batches (or pairs of batches) used.
      grad_sq_norm: |G|^2, unbiased.
      trace_cov: tr Cov(g_B), unbiased (one batch size only; NaN otherwise).
      trace_sigma: tr Sigma: B tr Cov(g_B) (one size), or the two-batch-size estimate.
      simple_noise_scale: B_simple = tr Sigma / |G|^2.
      p_no_minority: share of batches without the minority class (NaN without `minority_class`).
      mean_gradient: G estimated as the mean batch gradient, (P,) (one batch size only; None otherwise).
    """

    method: str
    batch_sizes: tuple[int, ...]
    num_batches: int
    grad_sq_norm: float
    grad_sq_norm_se: float
    trace_cov: float
    trace_cov_se: float
    trace_sigma: float
    trace_sigma_se: float
    simple_noise_scale: float
    simple_noise_scale_se: float
    p_no_minority: float
    p_no_minority_se: float
    mean_gradient: np.ndarray | None = None

    def as_row(self) -> dict[str, Any]:
        """The scalar fields, with `batch_sizes` as text ("16" or "8,64")."""
        row = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "mean_gradient"}
        row["batch_sizes"] = ",".join(str(b) for b in self.batch_sizes)
        return row


# Batches are dealt round robin into this many groups; the jackknife leaves out one group at a time.
_JACKKNIFE_GROUPS = 32


def sampled(
    model: keras.Model,
    dataset: tf.data.Dataset,
    *,
    num_batches: int,
    loss=None,
    minority_class: int | None = None,
) -> NoiseEstimate:
    """Estimates G, tr Cov, |G|^2, tr Sigma and B_simple from batches of a strategy's real pipeline.

    With g_j the gradient of batch j (the loss with its reduction and the batch's sample weights) over n batches:
    G = mean g_j; tr Cov = sum |g_j - G|^2 / (n - 1); |G|^2 = (|sum g_j|^2 - sum |g_j|^2) / (n (n - 1)) (unbiased:
    the mean of g_i . g_j over pairs i != j); tr Sigma = B tr Cov; B_simple = tr Sigma / |G|^2. Standard errors:
    delete-a-group jackknife over 32 groups of batches. Memory: 32 gradient-sized vectors.

    Args:
      model: any single-output Keras model.
      dataset: batches `(x, y)` or `(x, y, sample_weight)` of one size B, at least `num_batches` of them.
      num_batches: batches to draw, >= 2 (docs/diagnostics.md states the agreement with the exact mode per count).
      loss: the Keras loss with the reduction training uses; None means the model's compiled loss.
      minority_class: also estimate the share of batches without this class.

    Returns:
      A `NoiseEstimate`.

    Raises:
      UserInputError: too few batches, batches of varying size, no loss.
    """
    check_int(num_batches, "num_batches", minimum=2)
    gradients = _BatchGradients.of(model, loss)
    groups = min(_JACKKNIFE_GROUPS, num_batches)
    sums = np.zeros((groups, gradients.size))
    squares, counts = np.zeros(groups), np.zeros(groups)
    absent, seen = 0, 0
    for g, y in gradients.stream(dataset, num_batches):
        group = (seen + np.arange(len(g))) % groups
        np.add.at(sums, group, g)
        np.add.at(squares, group, np.einsum("ij,ij->i", g, g))
        np.add.at(counts, group, 1)
        seen += len(g)
        if minority_class is not None:
            absent += int(np.sum(~np.any(y == minority_class, axis=1)))
    batch_size = int(y.shape[1])
    estimates = one_size_estimates(sums, squares, counts, batch_size)
    p, p_se = (float("nan"),) * 2
    if minority_class is not None:
        p = absent / num_batches
        p_se = math.sqrt(p * (1 - p) / num_batches)
    return NoiseEstimate(
        method="one_batch_size",
        batch_sizes=(batch_size,),
        num_batches=num_batches,
        p_no_minority=p,
        p_no_minority_se=p_se,
        mean_gradient=sums.sum(0) / num_batches,
        **estimates,
    )


def one_size_estimates(sums: np.ndarray, squares: np.ndarray, counts: np.ndarray, batch_size: int) -> dict:
    """Estimates and jackknife standard errors from per-group sums of g_j (J, P), of |g_j|^2 (J,), counts (J,)."""
    total, total_sq, n = sums.sum(0), squares.sum(), counts.sum()
    cross = sums @ total  # S_g . S
    group_sq = np.einsum("ij,ij->i", sums, sums)

    def values(s_sq, q, m):
        trace_cov = (q - s_sq / m) / (m - 1)
        grad_sq = (s_sq - q) / (m * (m - 1))
        return np.array([grad_sq, trace_cov, batch_size * trace_cov, batch_size * trace_cov / grad_sq])

    full = values(total @ total, total_sq, n)
    # |S - S_g|^2 = |S|^2 - 2 S . S_g + |S_g|^2: every leave-one-group-out estimate from dot products.
    with np.errstate(divide="ignore", invalid="ignore"):
        left_out = np.stack(
            [
                values(total @ total - 2 * cross[g] + group_sq[g], total_sq - squares[g], n - counts[g])
                for g in range(len(counts))
            ]
        )
    groups = len(counts)
    se = np.sqrt((groups - 1) / groups * ((left_out - left_out.mean(0)) ** 2).sum(0))
    names = ("grad_sq_norm", "trace_cov", "trace_sigma", "simple_noise_scale")
    return {
        **dict(zip(names, full.tolist(), strict=True)),
        **{f"{k}_se": float(v) for k, v in zip(names, se, strict=True)},
    }


def two_batch_sizes(
    model: keras.Model,
    small_batches: tf.data.Dataset,
    big_batches: tf.data.Dataset,
    *,
    num_batches: int,
    loss=None,
) -> NoiseEstimate:
    """The two-batch-size estimator of |G|^2 and tr Sigma (McCandlish et al. 2018, Appendix A).

    With E|g_B|^2 = |G|^2 + tr Sigma / B, each pair of a small and a big batch gives the unbiased estimates
    |G|^2 = (B_big |g_big|^2 - B_small |g_small|^2) / (B_big - B_small) and
    tr Sigma = (|g_small|^2 - |g_big|^2) / (1 / B_small - 1 / B_big); both are averaged over the pairs (standard
    error: their standard deviation / sqrt(n)), and B_simple is the ratio of the averages (delta-method standard
    error), as the paper recommends. Only gradient norms are kept, so memory does not grow with the model.

    Args:
      model: any single-output Keras model.
      small_batches: a strategy's pipeline at batch size B_small.
      big_batches: the same pipeline at B_big > B_small (another seed keeps the pairs independent).
      num_batches: pairs to draw, >= 2.
      loss: the Keras loss training uses; None means the model's compiled loss.

    Returns:
      A `NoiseEstimate` (`trace_cov` and `mean_gradient` are not measured: NaN and None).

    Raises:
      UserInputError: too few batches, B_big <= B_small, batches of varying size.
    """
    check_int(num_batches, "num_batches", minimum=2)
    gradients = _BatchGradients.of(model, loss)
    norms, sizes = [], []
    for dataset in (small_batches, big_batches):
        parts = [(np.einsum("ij,ij->i", g, g), y.shape[1]) for g, y in gradients.stream(dataset, num_batches)]
        norms.append(np.concatenate([n for n, _ in parts]))
        sizes.append(int(parts[0][1]))
    norms = np.stack(norms, axis=1)
    small, big = sizes
    check(
        big > small,
        f"big_batches must hold more examples than small_batches. Received: batch sizes {small} and {big}",
        argument="big_batches",
    )
    grad_sq = (big * norms[:, 1] - small * norms[:, 0]) / (big - small)
    sigma = (norms[:, 0] - norms[:, 1]) / (1 / small - 1 / big)
    g_mean, s_mean = grad_sq.mean(), sigma.mean()
    cov = np.cov(np.stack([sigma, grad_sq])) / num_batches
    ratio = s_mean / g_mean
    ratio_var = (cov[0, 0] - 2 * ratio * cov[0, 1] + ratio**2 * cov[1, 1]) / g_mean**2
    return NoiseEstimate(
        method="two_batch_sizes",
        batch_sizes=(small, big),
        num_batches=num_batches,
        grad_sq_norm=float(g_mean),
        grad_sq_norm_se=float(math.sqrt(cov[1, 1])),
        trace_cov=float("nan"),
        trace_cov_se=float("nan"),
        trace_sigma=float(s_mean),
        trace_sigma_se=float(math.sqrt(cov[0, 0])),
        simple_noise_scale=float(ratio),
        simple_noise_scale_se=float(math.sqrt(max(ratio_var, 0.0))),
        p_no_minority=float("nan"),
        p_no_minority_se=float("nan"),
    )


class _BatchGradients:
    """Flat gradients of the loss of many batches at once (with the loss's reduction and each batch's weights).

    Batches are stacked `chunk` at a time and differentiated one after the other inside one graph (`tf.map_fn`),
    so a batch costs its backward pass rather than a Python round trip; unlike `tf.vectorized_map` it traces in a
    fraction of a second.
    """

    def __init__(self, model: keras.Model, loss: keras.losses.Loss):
        self._model = model
        self._loss = loss
        self.size = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
        self._chunk = max(1, min(_MAX_STACKED_BATCHES, CHUNK_BYTES // (4 * max(self.size, 1))))
        self._fn = tf.function(self._gradients, reduce_retracing=True, autograph=False)

    @classmethod
    def of(cls, model: keras.Model, loss) -> _BatchGradients:
        """The batch-gradient program of `model`, reused while the model and loss stay the same."""
        check_single_output(model)
        return cached(model, loss, cls, lambda: cls(model, resolve_loss(model, loss)))

    def _gradients(self, x, y, w):
        weights = self._model.trainable_weights

        def one(batch):
            xb, yb, wb = batch
            with tf.GradientTape() as tape:
                value = self._loss(yb, self._model(xb, training=False), sample_weight=wb)
            grads = tape.gradient(value, weights, unconnected_gradients=tf.UnconnectedGradients.ZERO)
            return tf.concat([tf.reshape(tf.cast(g, tf.float32), [-1]) for g in grads], 0)

        return tf.map_fn(one, (x, y, w), fn_output_signature=tf.float32)

    def stream(self, dataset: tf.data.Dataset, num_batches: int):
        """Yields (gradients (c, P) float64, labels (c, B)) for the first `num_batches` batches of `dataset`.

        Raises:
          UserInputError: the dataset holds fewer batches, or batches of different sizes.
        """
        taken = 0
        stacked = dataset.take(num_batches).map(_with_weights).batch(self._chunk)
        try:
            for x, y, w in stacked:
                taken += int(y.shape[0])
                yield self._fn(x, y, w).numpy().astype(np.float64), y.numpy()
        except tf.errors.InvalidArgumentError as error:
            raise UserInputError(
                "dataset must yield batches of one size (build it with drop_remainder=True). "
                f"Received: batches of different sizes ({str(error).splitlines()[0][:80]})",
                argument="dataset",
            ) from None
        check(
            taken == num_batches,
            f"num_batches={num_batches} is more than the dataset holds ({taken} batches); repeat it. "
            f"Received: num_batches={num_batches}",
            argument="num_batches",
        )


def _with_weights(*element):
    """(x, y) or (x, y, w) -> (x, y, w) with w = 1 when absent (same loss under either reduction)."""
    x, y, w = keras.utils.unpack_x_y_sample_weight(element if len(element) > 1 else element[0])
    return x, y, tf.ones(tf.shape(y)[:1]) if w is None else tf.cast(w, tf.float32)
