"""Seeded, streaming tf.data pipelines for dense targets (masks, label sequences) and multi-label targets.

Keras has no `class_weight` for targets with more than one value per example (tf.keras 2 refused them: "class_weight
not supported for 3+ dimensional targets"; Keras 3 reads a mask's last axis as one-hot classes and fails), for
multi-output models and for several data adapters. These pipelines carry the
weights in the data instead: every batch is `(x, y, w)` with a weight per pixel, token or label, which Keras
applies as `sample_weight` on every backend.

Targets are
- masks (N, H, W) or (N, H, W, 1) and sequences (N, T) of integer class ids, with an optional `ignore_label`
  (pixels with weight 0 whose label is replaced by 0 in the batches, so a sparse cross-entropy can read it);
- multi-label targets (N, L) of 0/1.

Builders (all return infinite datasets of batches; one seed gives one stream, as in `imbal_keras.data.pipelines`):
- `natural`: batches `(x, y)` of the data as it is, reshuffled every pass;
- `weighted`: natural batches with a weight map `class_weights[y]` (`dense_shares.frequency_weights` gives
  inverse, inverse-sqrt or effective-number weights); `with_weight_map` adds the map to any dataset;
- `presence_resampled`: example-level resampling by the rarest class an example contains ("contains class c"):
  `up`, `down`, `rejection` or `stratified`, the builders of `pipelines` over those groups;
- `patches`: random crops of a fixed size, a share of them centred on a pixel of a rare class (nnU-Net's
  foreground oversampling);
- `label_weighted` and `repeat_factor_sampled` for multi-label targets (positive weights per label; LVIS's
  repeat-factor sampling).

The two reductions of a weighted dense loss, with Keras's own `reduction=`:
- `sum_over_batch_size` (Keras's default): sum_i w_i l_i / P, P the number of pixels in the batch: a weight
  changes both the direction and the size of the loss;
- `mean_with_sample_weight`: sum_i w_i l_i / sum_i w_i, a weighted mean (PyTorch's `weight=`), whose size does not
  depend on how many rare pixels a batch holds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from imbal_keras.data import _sampling as sampling
from imbal_keras.data import pipelines
from imbal_keras.data.dense_shares import (
    checked_multilabel,
    pixel_counts,
    presence,
    rarest_present,
    repeat_factors,
    valid_pixels,
)
from imbal_keras.data.pipelines import _gather as gather_rows
from imbal_keras.errors import check, is_integer

__all__ = [
    "METHODS",
    "Patches",
    "label_weighted",
    "natural",
    "patches",
    "presence_resampled",
    "repeat_factor_sampled",
    "weighted",
    "with_weight_map",
]

METHODS = ("up", "down", "rejection", "stratified")


@dataclasses.dataclass(frozen=True)
class Patches:
    """How `patches` crops.

    Attributes:
      size: crop size (h, w) for masks, (w,) for sequences; at most the target's size.
      foreground_share: probability that a crop is centred on a pixel of a foreground class (nnU-Net's
        `oversample_foreground_percent`, 0.33), in [0, 1].
      foreground_classes: the rare classes crops are forced to contain; None: every class but the one with the
        most pixels.
      ignore_label: a label that is no class: never a crop centre, and not counted when finding the most
        frequent class. Crops keep it; `with_weight_map(..., ignore_label=)` or a loss's `ignore_label` drops it.
    """

    size: tuple[int, ...]
    foreground_share: float = 0.33
    foreground_classes: tuple[int, ...] | None = None
    ignore_label: int | None = None

    def __post_init__(self):
        size = tuple(self.size) if isinstance(self.size, (tuple, list)) else (self.size,)
        check(
            len(size) in (1, 2) and all(is_integer(s) and s >= 1 for s in size),
            f"size must be one or two integers >= 1. Received: size={self.size!r}",
            argument="size",
        )
        object.__setattr__(self, "size", tuple(int(s) for s in size))
        check(
            isinstance(self.foreground_share, (int, float)) and 0 <= self.foreground_share <= 1,
            f"foreground_share must be in [0, 1]. Received: foreground_share={self.foreground_share!r}",
            argument="foreground_share",
        )
        if self.foreground_classes is not None:
            object.__setattr__(self, "foreground_classes", tuple(int(c) for c in self.foreground_classes))


def with_weight_map(
    dataset: tf.data.Dataset, class_weights: Sequence[float], *, ignore_label: int | None = None
) -> tf.data.Dataset:
    """Maps batches (or examples) `(x, y)` of dense targets to `(x, y, w)` with `w = class_weights[y]`.

    A trailing axis of size 1 on `y` is dropped. Pixels with `ignore_label` get weight 0 and label 0.

    Args:
      dataset: elements `(x, y)` with integer `y` of any shape.
      class_weights: one weight per class, shape (K,).
      ignore_label: a label that is no class, or None.
    """
    weights = tf.constant(np.asarray(class_weights, np.float32))

    def add(x, y):
        y = _squeezed(y)
        if ignore_label is None:
            return x, y, tf.gather(weights, y)
        valid = tf.not_equal(y, ignore_label)
        y = tf.where(valid, y, tf.zeros_like(y))
        return x, y, tf.where(valid, tf.gather(weights, y), 0.0)

    return sampling.map_fn(dataset, add, parallel=True)


def natural(features, targets, *, batch_size: int, seed: int) -> tf.data.Dataset:
    """Batches `(x, y)` of the data as it is, reshuffled every pass (the order of `pipelines.natural`).

    Args:
      features: array or nested structure of arrays with leading dimension N.
      targets: (N, H, W), (N, H, W, 1) or (N, T) class ids, or (N, L) multi-label targets.
      batch_size: examples per batch B.
      seed: seeds the pass order.
    """
    targets = _targets(targets)
    return gather_rows(_natural_order(len(targets), batch_size, seed), features, targets)


def weighted(
    features, targets, *, batch_size: int, seed: int, class_weights: Sequence[float], ignore_label: int | None = None
) -> tf.data.Dataset:
    """Natural batches (each pass reshuffled) of `(x, y, w)` with a per-pixel weight map `w = class_weights[y]`.

    Args:
      features: array or nested structure of arrays with leading dimension N.
      targets: (N, H, W), (N, H, W, 1) or (N, T) integer class ids.
      batch_size: examples per batch B.
      seed: seeds the pass order.
      class_weights: one weight per class (`dense_shares.frequency_weights`).
      ignore_label: a label that is no class: weight 0, label 0 in the batches.
    """
    targets = _targets(targets)
    order = _natural_order(len(targets), batch_size, seed)
    if ignore_label is None:  # the weight map is one more gather in the same map as the rows
        return gather_rows(order, features, targets, class_weights)
    return with_weight_map(gather_rows(order, features, targets), class_weights, ignore_label=ignore_label)


def presence_resampled(
    features,
    targets,
    *,
    batch_size: int,
    seed: int,
    contains: np.ndarray,
    method: str = "up",
    target_distribution: Sequence[float] | None = None,
) -> tf.data.Dataset:
    """Example-level resampling by class presence: batches `(x, y)` whose examples' groups follow a target.

    Each example belongs to the group of the rarest class it contains (`dense_shares.rarest_present`; group K for
    an example containing nothing). The groups are resampled as `pipelines` resamples classes: `up` repeats
    examples of rare groups each pass, `down` drops examples of common ones, `rejection` keeps each with its
    group's acceptance probability, `stratified` gives every batch exact group counts. So with the default
    (uniform over the groups that have examples) an image containing the rarest class is as likely as one whose
    rarest class is the background.

    Args:
      features: array or nested structure of arrays with leading dimension N.
      targets: the dense (N, ...) or multi-label (N, L) targets, returned as they are (a trailing axis of size 1
        dropped).
      batch_size: examples per batch B.
      seed: seeds the stream.
      contains: (N, K) boolean presence (`dense_shares.presence(masks, K)`, or the multi-label targets).
      method: one of `METHODS`.
      target_distribution: share of each group (K, or K + 1 with the group of examples containing nothing);
        None: uniform over the groups that have examples.

    Raises:
      UserInputError: an unknown method, or a target share on a group without examples.
    """
    check(
        method in METHODS,
        f"method must be one of {', '.join(METHODS)}. Received: method={method!r}",
        argument="method",
    )
    contains = np.asarray(contains).astype(bool)
    targets = _targets(targets)
    groups = rarest_present(contains)
    if target_distribution is None:
        present = np.bincount(groups, minlength=contains.shape[1] + 1) > 0
        target_distribution = present / present.sum()
    build = {
        "up": pipelines.upsample,
        "down": pipelines.downsample,
        "rejection": pipelines.rejection,
        "stratified": pipelines.stratified,
    }[method]
    stream = build(
        (features, targets), groups, batch_size=batch_size, seed=seed, target_distribution=target_distribution
    )
    return _dropped_groups(stream)


def patches(features, targets, *, batch_size: int, seed: int, options: Patches) -> tf.data.Dataset:
    """Random crops `(x, y)` of `options.size`, a share of them forced to contain a foreground class.

    Each crop is forced with probability `foreground_share`, independently (nnU-Net fixes round(B p) forced crops
    per batch; independent draws keep the share for any batch size, batch size 1 included). A forced crop takes a
    uniform example among those containing a foreground class, a uniform foreground class present in it, a
    uniform pixel of that class, and is centred on that pixel (shifted inside the image at the borders). Other
    crops take a uniform example and a uniform position. So a share of at least `foreground_share` of the crops
    contains a foreground class.

    Args:
      features: images (N, H, W, ...) for masks, or (N, T, ...) for sequences; one array.
      targets: masks (N, H, W) / (N, H, W, 1) or sequences (N, T) of class ids.
      batch_size: crops per batch B.
      seed: seeds the stream.
      options: the crop size, share and classes.

    Returns:
      Infinite dataset of `(x, y)` with x (B, h, w, ...) and y (B, h, w) (or (B, w, ...) and (B, w)).

    Raises:
      UserInputError: a crop larger than the targets, a size of the wrong length, or forced crops without any
        example containing a foreground class.
    """
    targets = _targets(targets)
    sequence = targets.ndim == 2
    check(
        len(options.size) == targets.ndim - 1,
        f"size must have {targets.ndim - 1} entries for targets of shape {targets.shape}. Received: "
        f"size={options.size}",
        argument="size",
    )
    if sequence:  # a sequence is a mask of height 1
        features, targets = np.asarray(features)[:, None], targets[:, None]
    size = (1, *options.size) if sequence else options.size
    check(
        size[0] <= targets.shape[1] and size[1] <= targets.shape[2],
        f"size must fit in the targets' {targets.shape[1:]}. Received: size={options.size}",
        argument="size",
    )
    candidates, foreground = _foreground(targets, options)
    crop = _Cropper(
        tf.constant(np.asarray(features)), tf.constant(targets), size, candidates, foreground, options.foreground_share
    )
    stream = sampling.map_fn(
        sampling.numbered(tf.data.Dataset.counter(), sampling.base_seed(seed)),
        lambda s, _: crop(s, batch_size),
        parallel=True,
    )
    if sequence:
        stream = sampling.map_fn(stream, lambda x, y: (x[:, 0], y[:, 0]))
    return stream.prefetch(sampling.AUTOTUNE)


def label_weighted(
    features, labels, *, batch_size: int, seed: int, positive_weights: Sequence[float]
) -> tf.data.Dataset:
    """Natural batches of multi-label data `(x, y, w)`: w[i, l] = positive_weights[l] where y[i, l] = 1, else 1.

    Use with a loss that keeps one value per label (`imbal_keras.losses.LabelwiseBinaryCrossentropy`): Keras's
    `BinaryCrossentropy` averages over labels before it applies sample weights.

    Args:
      features: array or nested structure of arrays with leading dimension N.
      labels: (N, L) of 0/1.
      batch_size: examples per batch B.
      seed: seeds the pass order.
      positive_weights: (L,) weights of positives (`dense_shares.positive_weights`).
    """
    y = checked_multilabel(labels)
    stream = gather_rows(_natural_order(len(y), batch_size, seed), features, y)
    weights = tf.constant(np.asarray(positive_weights, np.float32))
    return sampling.map_fn(stream, lambda x, y: (x, y, tf.where(y > 0, weights, tf.ones_like(weights))), parallel=True)


def repeat_factor_sampled(features, targets, *, batch_size: int, seed: int, contains, threshold: float = 0.1):
    """Repeat-factor sampling (LVIS, Gupta et al. 2019): batches `(x, y)` where example i appears r_i times per
    pass in expectation, r_i = max over the classes it contains of max(1, sqrt(threshold / f_c))
    (`dense_shares.repeat_factors`).

    Each pass repeats example i floor(r_i) times plus once more with probability r_i - floor(r_i) (stochastic
    rounding, as detectron2's `RepeatFactorTrainingSampler`), then shuffles the pass.

    Args:
      features: array or nested structure of arrays with leading dimension N.
      targets: (N, ...) targets, dense or multi-label, returned as they are.
      batch_size: examples per batch B.
      seed: seeds the stream.
      contains: (N, K) boolean presence, or the multi-label targets.
      threshold: t in (0, 1]: classes in fewer than a share t of the examples are repeated.
    """
    targets = _targets(targets)
    factors = repeat_factors(contains, threshold=threshold)
    whole = tf.constant(np.floor(factors).astype(np.int32))
    fraction = tf.constant(factors - np.floor(factors), tf.float32)
    n = len(factors)

    def one_pass(pass_seed):
        extra = tf.random.stateless_uniform([n], sampling.child_seed(pass_seed, sampling.ACCEPT_STREAM)) < fraction
        index = tf.repeat(tf.range(n, dtype=tf.int32), whole + tf.cast(extra, tf.int32))
        order = sampling.permutation(tf.shape(index)[0], sampling.child_seed(pass_seed, sampling.PASS_STREAM))
        return tf.gather(index, order)

    order = sampling.passes(sampling.base_seed(seed), one_pass).rebatch(batch_size, drop_remainder=True)
    return gather_rows(order, features, targets)


def _natural_order(n: int, batch_size: int, seed: int) -> tf.data.Dataset:
    """Index batches of the data as it is, reshuffled every pass (the order of `pipelines.natural`)."""
    order = sampling.passes(sampling.base_seed(seed), lambda pass_seed: sampling.permutation(n, pass_seed))
    return order.rebatch(batch_size, drop_remainder=True)


class _Cropper:
    """Draws one batch of crops from a batch seed (tensor code only, traced once)."""

    def __init__(self, x, y, size, candidates: np.ndarray, foreground: np.ndarray, share: float):
        self.x, self.y, self.size = x, y, size
        self.candidates = tf.constant(candidates.astype(np.int32))
        self.foreground = tf.constant(foreground)
        self.share = share

    def __call__(self, seed, batch_size: int):
        n, height, width = self.y.shape[0], self.y.shape[1], self.y.shape[2]
        h, w = self.size
        keys = [sampling.child_seed(seed, stream) for stream in range(6)]
        forced = tf.random.stateless_uniform([batch_size], keys[0]) < self.share
        if len(self.candidates) == 0:
            forced = tf.zeros_like(forced)
        anywhere = tf.random.stateless_uniform([batch_size], keys[1], maxval=n, dtype=tf.int32)
        pick = tf.random.stateless_uniform([batch_size], keys[2], maxval=max(len(self.candidates), 1), dtype=tf.int32)
        index = tf.where(forced, tf.gather(self.candidates, tf.minimum(pick, len(self.candidates) - 1)), anywhere)
        masks = tf.gather(self.y, index)
        centre = self._centres(masks, index, keys[3:5])
        uniform = tf.stack(
            [
                tf.random.stateless_uniform([batch_size], keys[5], maxval=height - h + 1, dtype=tf.int32),
                tf.random.stateless_uniform(
                    [batch_size], sampling.child_seed(keys[5], 1), maxval=width - w + 1, dtype=tf.int32
                ),
            ],
            axis=1,
        )
        limit = tf.constant([height - h, width - w], tf.int32)
        start = tf.where(forced[:, None], tf.clip_by_value(centre - tf.constant([h // 2, w // 2]), 0, limit), uniform)
        return _crop(tf.gather(self.x, index), start, self.size), _crop(masks, start, self.size)

    def _centres(self, masks, index, keys):
        """(B, 2) row and column of a uniform pixel of a uniform foreground class present in each mask."""
        present = tf.gather(self.foreground, index)  # (B, K): foreground classes each example contains
        logits = tf.where(present, 0.0, -1e9)
        chosen = tf.random.stateless_categorical(logits, 1, keys[0], dtype=tf.int32)[:, 0]
        flat = tf.reshape(masks, [tf.shape(masks)[0], -1])
        score = tf.random.stateless_uniform(tf.shape(flat), keys[1])
        pixel = tf.argmax(tf.where(tf.equal(flat, chosen[:, None]), score, -1.0), axis=1, output_type=tf.int32)
        width = tf.shape(masks)[2]
        return tf.stack([pixel // width, pixel % width], axis=1)


def _crop(values, start, size):
    """values (B, H, W, ...) cropped at start (B, 2) to (B, h, w, ...)."""
    rows = start[:, :1] + tf.range(size[0])[None, :]
    cols = start[:, 1:] + tf.range(size[1])[None, :]
    return tf.gather(tf.gather(values, rows, axis=1, batch_dims=1), cols, axis=2, batch_dims=1)


def _foreground(targets: np.ndarray, options: Patches) -> tuple[np.ndarray, np.ndarray]:
    """The examples containing a foreground class, and (N, K) presence of foreground classes."""
    num_classes = max(int(targets[valid_pixels(targets, options.ignore_label)].max()) + 1, 2)
    classes = options.foreground_classes
    if classes is None:
        counts = pixel_counts(targets, num_classes, ignore_label=options.ignore_label)
        classes = tuple(c for c in range(num_classes) if c != int(np.argmax(counts)))
    check(
        all(0 <= c < num_classes for c in classes) or options.foreground_share == 0,
        f"foreground_classes must be classes 0..{num_classes - 1}. Received: foreground_classes={classes}",
        argument="foreground_classes",
    )
    fg = np.zeros(num_classes, bool)
    fg[[c for c in classes if 0 <= c < num_classes]] = True
    contains = presence(targets, num_classes, ignore_label=options.ignore_label) & fg[None, :]
    candidates = np.flatnonzero(contains.any(axis=1))
    check(
        len(candidates) > 0 or options.foreground_share == 0,
        f"no example contains a foreground class {list(classes)}, so no crop can be forced. "
        f"Received: foreground_share={options.foreground_share}",
        argument="foreground_share",
    )
    return candidates, contains


def _targets(targets) -> np.ndarray:
    targets = np.asarray(targets)
    if targets.ndim == 4 and targets.shape[-1] == 1:
        targets = targets[..., 0]
    check(
        targets.ndim in (2, 3) and len(targets) > 0 and np.issubdtype(targets.dtype, np.integer),
        f"targets must be integer arrays (N, H, W), (N, H, W, 1), (N, T) or (N, L). Received: targets with shape "
        f"{targets.shape} and dtype {targets.dtype}",
        argument="targets",
    )
    return targets.astype(np.int32)


def _squeezed(y):
    return y[..., 0] if y.shape.rank and y.shape.rank >= 3 and y.shape[-1] == 1 else y


def _dropped_groups(stream: tf.data.Dataset) -> tf.data.Dataset:
    """`((x, y), group)` batches of `pipelines` as `(x, y)`."""
    return sampling.map_fn(stream, lambda features_targets, _: features_targets)
