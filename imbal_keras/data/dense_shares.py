"""Class arithmetic of dense (mask, sequence) and multi-label targets, in plain NumPy (no TensorFlow).

A dense target gives every pixel (or token) a class id; a multi-label target gives every example a 0/1 vector over
L labels. Both reduce to two views that the pipelines of `imbal_keras.data.dense` use:

- *frequencies*: pixels per class (`pixel_counts`) or positives per label, turned into loss weights
  (`frequency_weights`: inverse, inverse square root or effective number, as the binary strategies weight
  classes; `positive_weights` for labels);
- *presence*: which classes an example contains (`presence`, an (N, K) boolean matrix; for multi-label data the
  labels themselves), reduced to one group per example (`rarest_present`: the rarest class the example holds) for
  example-level resampling, or to a repeat factor per example (`repeat_factors`, LVIS's repeat-factor sampling).

The registry and the loaders can read all of it without importing TensorFlow.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from imbal_keras.errors import check, is_integer

__all__ = [
    "WEIGHTINGS",
    "checked_multilabel",
    "frequency_weights",
    "pixel_counts",
    "positive_weights",
    "presence",
    "rarest_present",
    "repeat_factors",
    "valid_pixels",
]

WEIGHTINGS = ("inverse", "inverse_sqrt", "effective_number")


def valid_pixels(targets: np.ndarray, ignore_label: int | None) -> np.ndarray:
    """Boolean array of `targets`' shape: True where the pixel carries a class (not `ignore_label`)."""
    targets = np.asarray(targets)
    return np.ones(targets.shape, bool) if ignore_label is None else targets != ignore_label


def pixel_counts(targets: np.ndarray, num_classes: int, *, ignore_label: int | None = None) -> np.ndarray:
    """Pixels (or tokens) per class over all examples, shape (K,); `ignore_label` pixels are not counted.

    Raises:
      UserInputError: a class id outside 0..K-1 that is not the ignore label.
    """
    ids = _checked_ids(targets, num_classes, ignore_label)
    return np.bincount(ids, minlength=num_classes).astype(np.int64)


def frequency_weights(counts: Sequence[float], *, method: str = "inverse", beta: float = 0.999) -> np.ndarray:
    """Per-class weights from class frequencies, normalised so the mean weight over the counted pixels is 1.

    - `inverse`: w_c proportional to 1 / n_c (every class carries the same weighted mass);
    - `inverse_sqrt`: w_c proportional to 1 / sqrt(n_c) (a milder correction);
    - `effective_number`: w_c proportional to (1 - beta) / (1 - beta^n_c) (Cui et al. 2019); beta -> 1 is
      `inverse`, beta -> 0 equal weights. With millions of pixels per class beta must be very close to 1 to differ
      from equal weights (beta^n_c vanishes once n_c >> 1 / (1 - beta)).

    Normalising to a mean of 1 over pixels (sum_c n_c w_c = sum_c n_c) keeps the size of a weighted loss with
    `sum_over_batch_size` comparable to the unweighted one. A class without pixels gets weight 0.

    Args:
      counts: pixels (or examples) per class n_c >= 0, shape (K,), not all zero.
      method: one of `WEIGHTINGS`.
      beta: in (0, 1), for `effective_number` only.

    Returns:
      float64 array of shape (K,).

    Raises:
      UserInputError: an unknown method, negative or all-zero counts, or beta outside (0, 1).
    """
    n = np.asarray(counts, dtype=np.float64)
    check(
        n.ndim == 1 and np.isfinite(n).all() and (n >= 0).all() and n.sum() > 0,
        f"counts must be non-negative per-class counts, not all zero. Received: counts={np.atleast_1d(n).tolist()}",
        argument="counts",
    )
    check(
        method in WEIGHTINGS,
        f"method must be one of {', '.join(WEIGHTINGS)}. Received: method={method!r}",
        argument="method",
    )
    present = n > 0
    raw = np.zeros_like(n)
    if method == "inverse":
        raw[present] = 1.0 / n[present]
    elif method == "inverse_sqrt":
        raw[present] = 1.0 / np.sqrt(n[present])
    else:
        check(
            isinstance(beta, (int, float, np.floating)) and 0 < beta < 1,
            f"beta must be in (0, 1). Received: beta={beta!r}",
            argument="beta",
        )
        raw[present] = (1.0 - beta) / -np.expm1(n[present] * np.log(beta))
    return raw * n.sum() / (raw @ n)


def positive_weights(labels: np.ndarray, *, method: str = "inverse") -> np.ndarray:
    """Per-label weights of the positives of multi-label targets, shape (L,); negatives keep weight 1.

    `inverse` is n_neg / n_pos per label (the `pos_weight` of a weighted binary cross-entropy: positives and
    negatives of each label then carry the same mass), `inverse_sqrt` its square root. A label without positives
    gets weight 0 (nothing to weight).

    Args:
      labels: (N, L) array of 0/1.
      method: `inverse` or `inverse_sqrt`.

    Raises:
      UserInputError: labels that are not a 2-D 0/1 array, or another method.
    """
    y = checked_multilabel(labels)
    check(
        method in WEIGHTINGS[:2],
        f"method must be inverse or inverse_sqrt. Received: method={method!r}",
        argument="method",
    )
    positives = y.sum(axis=0).astype(np.float64)
    ratio = np.divide(len(y) - positives, positives, out=np.zeros_like(positives), where=positives > 0)
    return ratio if method == "inverse" else np.sqrt(ratio)


def presence(targets: np.ndarray, num_classes: int, *, ignore_label: int | None = None) -> np.ndarray:
    """(N, K) boolean: example i contains at least one pixel (token) of class c.

    Raises:
      UserInputError: a class id outside 0..K-1 that is not the ignore label.
    """
    targets = np.asarray(targets)
    _checked_ids(targets, num_classes, ignore_label)
    flat = targets.reshape(len(targets), -1)
    return np.stack([(flat == c).any(axis=1) for c in range(num_classes)], axis=1)


def rarest_present(contains: np.ndarray) -> np.ndarray:
    """Per example, the class it contains that the fewest examples contain, shape (N,) int32.

    The group an example is resampled by: an image holding a tumour pixel belongs to the tumour group whatever
    else it holds. Ties between equally rare classes go to the lower class id. An example containing nothing
    (a multi-label example without labels) gets group K, one past the classes.

    Args:
      contains: (N, K) boolean presence (`presence`, or multi-label targets).
    """
    contains = np.asarray(contains).astype(bool)
    order = np.argsort(contains.sum(axis=0), kind="stable")  # classes from the rarest up
    ordered = contains[:, order]
    first = np.argmax(ordered, axis=1)
    return np.where(ordered.any(axis=1), order[first], contains.shape[1]).astype(np.int32)


def repeat_factors(contains: np.ndarray, *, threshold: float) -> np.ndarray:
    """LVIS repeat factors (Gupta et al. 2019): r_i = max over the classes c in example i of max(1, sqrt(t / f_c)).

    f_c is the share of examples containing class c and t the `threshold`: classes in fewer than a share t of the
    examples are repeated, the rarer the more. An example containing nothing gets 1.

    Args:
      contains: (N, K) boolean presence.
      threshold: t in (0, 1].

    Returns:
      float64 array (N,), every entry >= 1.

    Raises:
      UserInputError: threshold outside (0, 1].
    """
    check(
        isinstance(threshold, (int, float, np.floating)) and 0 < threshold <= 1,
        f"threshold must be in (0, 1]. Received: threshold={threshold!r}",
        argument="threshold",
    )
    contains = np.asarray(contains).astype(bool)
    share = contains.mean(axis=0)
    per_class = np.maximum(1.0, np.sqrt(np.divide(threshold, share, out=np.ones_like(share), where=share > 0)))
    return np.where(contains, per_class[None, :], 1.0).max(axis=1, initial=1.0)


def checked_multilabel(labels) -> np.ndarray:
    """Multi-label targets as an (N, L) int32 array of 0/1.

    Raises:
      UserInputError: not a non-empty 2-D array of 0 and 1.
    """
    y = np.asarray(labels)
    check(
        y.ndim == 2 and y.size > 0 and np.isin(y, (0, 1)).all(),
        f"labels must be a non-empty (N, L) array of 0 and 1. Received: labels with shape {y.shape}",
        argument="labels",
    )
    return y.astype(np.int32)


def _checked_ids(targets, num_classes: int, ignore_label: int | None) -> np.ndarray:
    """The valid class ids of `targets`, flattened."""
    check(
        is_integer(num_classes) and num_classes >= 2,
        f"num_classes must be an integer >= 2. Received: num_classes={num_classes!r}",
        argument="num_classes",
    )
    targets = np.asarray(targets)
    check(
        np.issubdtype(targets.dtype, np.integer),
        f"targets must be integer class ids. Received: targets with dtype {targets.dtype}",
        argument="targets",
    )
    ids = targets[valid_pixels(targets, ignore_label)]
    bad = ids[(ids < 0) | (ids >= num_classes)]
    check(
        len(bad) == 0,
        f"targets must be class ids 0..{num_classes - 1} or the ignore label {ignore_label}. "
        f"Received: a pixel with class {bad[0] if len(bad) else ''}",
        argument="targets",
    )
    return ids.astype(np.int64)
