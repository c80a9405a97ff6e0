"""Seeded, streaming tf.data rebalancing for multi-output models: class weights per head, resampling by one head.

Keras refuses `class_weight` for a model with several outputs ("`class_weight` is only supported for Models with a
single output", keras-team/keras #20701, tensorflow/tensorflow #41448). `rebalanced` carries the weights in the
data instead: every batch is `(x, y, sample_weight)` with `y` and `sample_weight` structured as the labels (a dict
keyed by output name, or a tuple in output order), which Keras applies per output under `fit`, next to the
model's `loss_weights`.

- *Weights per head* (`head_weights`): each head has its own class -> weight mapping, or a method (`inverse`,
  `inverse_sqrt`, `effective_number`, as `dense_shares.frequency_weights` computes them from the head's class
  counts); a head without weights gets weight 1 for every example.
- *Resampling by one head* (`Resampling`): the examples are resampled by the classes of one named head, with the
  builders of `imbal_keras.data.pipelines` (`up`, `down`, `rejection`, `stratified`), and every other head's
  label travels with its example (the rows are gathered together, so an example's labels never part).

Weights from a method are computed from the labels as given, not from the resampled stream: resampling the main
head to balance also changes the class shares the other heads see in a batch, and weighting a head whose classes
the resampling already balanced weights twice.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from imbal_keras.data import _sampling as sampling
from imbal_keras.data import pipelines
from imbal_keras.data.batch_sampling import BatchSampling
from imbal_keras.data.dense import METHODS, _dropped_groups, _natural_order
from imbal_keras.data.dense_shares import WEIGHTINGS, frequency_weights
from imbal_keras.errors import check, is_integer

__all__ = ["Resampling", "head_weights", "rebalanced"]

Head = str | int

# Per method, the pipeline that resamples and the `BatchSampling` that describes it.
_BUILDERS = {
    "up": (pipelines.upsample, BatchSampling.upsample),
    "down": (pipelines.downsample, BatchSampling.downsample),
    "rejection": (pipelines.rejection, BatchSampling.rejection),
    "stratified": (pipelines.stratified, BatchSampling.stratified),
}


@dataclasses.dataclass(frozen=True)
class Resampling:
    """Example-level resampling driven by one head's classes.

    Attributes:
      head: the output whose labels drive the resampling: a key of the labels dict, or a position in the labels
        list.
      method: one of `up`, `down`, `rejection`, `stratified` (`pipelines.upsample`, `downsample`, `rejection`,
        `stratified` over that head's classes).
      target_distribution: the driving head's class shares in the stream; None: uniform.
    """

    head: Head
    method: str = "up"
    target_distribution: Sequence[float] | None = None

    def __post_init__(self):
        check(
            self.method in METHODS,
            f"method must be one of {', '.join(METHODS)}. Received: method={self.method!r}",
            argument="method",
        )

    def batch_sampling(self, labels) -> BatchSampling:
        """How `rebalanced` forms batches in the driving head's classes, as data (the gradient-noise diagnostics'
        `BatchSampling`), named `{head}_{method}`; class weights are not part of it.

        Args:
          labels: the per-head labels given to `rebalanced`.

        Raises:
          UserInputError: a head the labels do not have, or labels of the head that are not class ids.
        """
        heads = _heads(labels)
        _check_head(self.head, heads, "resampling.head")
        counts = np.bincount(_class_ids(heads[self.head], self.head), minlength=2)
        describe = _BUILDERS[self.method][1]
        return describe(counts, target_distribution=self.target_distribution, name=f"{self.head}_{self.method}")


def head_weights(labels, class_weights: Mapping[Head, Any]) -> dict[Head, np.ndarray]:
    """The per-class weight table of every head: `table[head][c]` is the weight of an example of class c.

    Args:
      labels: per-head labels, a dict `{name: (N,) or (N, 1) class ids}` or a list in output order.
      class_weights: per head (a key of `labels`, or a position), one of: a `{class: weight}` mapping (classes
        not named get 1), a sequence of one weight per class, or a method name of
        `dense_shares.WEIGHTINGS` (weights from the head's class counts, mean 1 over its examples).

    Returns:
      `{head: float32 array (K_h,)}` for every head `class_weights` names (the others weigh every example 1).

    Raises:
      UserInputError: a head name or position `labels` does not have, labels that are not class ids, weights
        for a class the head does not have, or an unknown method.
    """
    heads = _heads(labels)
    for head in class_weights:
        _check_head(head, heads, "class_weights")
    return {
        head: _table(weights, np.bincount(_class_ids(heads[head], head), minlength=2), head)
        for head, weights in class_weights.items()
    }


def rebalanced(
    features,
    labels,
    *,
    batch_size: int,
    seed: int,
    class_weights: Mapping[Head, Any] | None = None,
    resampling: Resampling | None = None,
) -> tf.data.Dataset:
    """Infinite dataset of batches `(x, y, sample_weight)` for a multi-output model.

    Without `resampling` the batches are the data as it is, reshuffled every pass (`pipelines.natural`); with it,
    the examples are resampled by the classes of `resampling.head`. `y` and `sample_weight` have the structure of
    `labels`: a dict keyed by output name, or a tuple in output order; `sample_weight[head]` is (B,) float32,
    `head_weights(labels, class_weights)[head][y_head]`.

    Args:
      features: array or nested structure of arrays with leading dimension N.
      labels: per-head labels, a dict `{output name: (N, ...) array}` or a list in output order. Heads with
        weights, and the driving head, hold class ids (N,) or (N, 1) (integers, or floats of whole numbers such
        as a sigmoid head's 0/1); other heads may hold anything with N rows.
      batch_size: examples per batch B.
      seed: seeds the stream: the same seed gives the same batches.
      class_weights: per head, the weights `head_weights` takes; None: every weight 1.
      resampling: the head and method that resample the examples; None: natural batches.

    Returns:
      Infinite dataset of `(x, y, sample_weight)`.

    Raises:
      UserInputError: labels that are not a non-empty dict or list, heads whose number of examples differs from
        the features', an unknown head, weights for a class a head does not have, or a target share on a class
        the driving head has no example of.
    """
    heads = _heads(labels)
    n = _num_examples(features)
    for head, y in heads.items():
        check(
            len(y) == n,
            f"labels[{head!r}] has {len(y)} examples but features has {n}. Received: labels[{head!r}] of shape "
            f"{y.shape}",
            argument="labels",
        )
    tables = head_weights(labels, class_weights or {})
    targets = dict(heads) if isinstance(labels, Mapping) else tuple(heads.values())
    if resampling is None:
        rows = tf.nest.map_structure(tf.constant, (features, targets))
        stream = sampling.map_fn(
            _natural_order(n, batch_size, seed),
            lambda i: tf.nest.map_structure(lambda r: tf.gather(r, i), rows),
            parallel=True,
        )
    else:
        _check_head(resampling.head, heads, "resampling.head")
        build = _BUILDERS[resampling.method][0]
        stream = build(
            (features, targets),
            _class_ids(heads[resampling.head], resampling.head),
            batch_size=batch_size,
            seed=seed,
            target_distribution=resampling.target_distribution,
        )
        stream = _dropped_groups(stream)
    return sampling.map_fn(stream, _weigher(list(heads), tables), parallel=True).prefetch(sampling.AUTOTUNE)


def _weigher(heads: list[Head], tables: dict[Head, np.ndarray]):
    """The map `(x, y) -> (x, y, sample_weight)`, the weights structured as `y` (a dict, or a tuple in order)."""
    weights = {head: tf.constant(table) for head, table in tables.items()}

    def weigh(x, y):
        w = {}
        for head in heads:
            labels = y[head]
            ids = tf.reshape(tf.cast(labels, tf.int32), [-1]) if head in weights else None
            w[head] = tf.ones(tf.shape(labels)[:1]) if ids is None else tf.gather(weights[head], ids)
        return x, y, w if isinstance(y, dict) else tuple(w[head] for head in heads)

    return weigh


def _heads(labels) -> dict[Head, np.ndarray]:
    """Labels as `{head: array}`: a dict's own keys, a list's positions."""
    check(
        isinstance(labels, (Mapping, list, tuple)) and len(labels) > 0,
        f"labels must be a non-empty dict {{output name: labels}} or list of per-output labels. Received: "
        f"{type(labels).__name__}",
        argument="labels",
    )
    items = labels.items() if isinstance(labels, Mapping) else enumerate(labels)
    return {head: np.asarray(y) for head, y in items}


def _check_head(head: Head, heads: dict[Head, np.ndarray], argument: str) -> None:
    check(
        head in heads,
        f"{argument} names head {head!r}, which the labels do not have; heads: {list(heads)}",
        argument=argument,
    )


def _class_ids(y: np.ndarray, head: Head) -> np.ndarray:
    """A head's labels (N,) or (N, 1) as int32 class ids >= 0."""
    ids = y[:, 0] if y.ndim == 2 and y.shape[1] == 1 else y
    whole = ids.ndim == 1 and len(ids) > 0 and (ids.dtype == bool or np.issubdtype(ids.dtype, np.number))
    whole = whole and bool(np.all(np.isfinite(ids))) and bool(np.all(ids == np.round(ids))) and ids.min() >= 0
    check(
        whole,
        f"labels[{head!r}] must be class ids >= 0 of shape (N,) or (N, 1) to be weighted or resampled by. "
        f"Received: labels[{head!r}] of shape {y.shape} and dtype {y.dtype}",
        argument="labels",
    )
    return ids.astype(np.int32)


def _table(weights, counts: np.ndarray, head: Head) -> np.ndarray:
    """One head's weight per class (K_h,) from its `class_weights` entry and its class counts."""
    k = len(counts)
    where = f"class_weights[{head!r}]"
    if weights is None:
        return np.ones(k, np.float32)
    if isinstance(weights, str):
        check(
            weights in WEIGHTINGS,
            f"{where} must be a {{class: weight}} mapping, one weight per class or one of {', '.join(WEIGHTINGS)}. "
            f"Received: {where}={weights!r}",
            argument="class_weights",
        )
        return frequency_weights(counts, method=weights).astype(np.float32)
    if isinstance(weights, Mapping):
        absent = [c for c in weights if not (is_integer(c) and 0 <= c < k and counts[c] > 0)]
        check(
            not absent,
            f"{where} weighs class {absent[:1]}, which head {head!r} does not have; its classes: "
            f"{np.flatnonzero(counts).tolist()}",
            argument="class_weights",
        )
        table = np.ones(k, np.float32)
        table[list(weights)] = [float(v) for v in weights.values()]
        weights = table
    table = np.asarray(weights, np.float64)
    check(
        table.ndim == 1 and len(table) >= k and np.isfinite(table).all() and (table >= 0).all(),
        f"{where} must give a non-negative weight to each of the head's {k} classes. Received: {where}="
        f"{np.atleast_1d(table).tolist()}",
        argument="class_weights",
    )
    return table.astype(np.float32)


def _num_examples(features) -> int:
    leaves = tf.nest.flatten(features)
    check(len(leaves) > 0, "features is empty: expected arrays with one row per example", argument="features")
    return len(leaves[0])
