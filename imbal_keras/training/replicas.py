"""The replicas of a pack and what each reads: its own data, pipeline, loss and evaluation inputs.

Runs trained side by side (`imbal_keras.training.side_by_side`) need equal shapes, not equal data: each replica
may have its own data seed (so its own data), strategy and strategy parameters. A `Member` holds one replica's
config, data, setup and loss; `arrange` puts the members of one loss, and within it of one pipeline (strategy
variant and data), next to each other, so that the compiled step reduces each loss over a slice of replicas and
the pipeline of a strategy over its data is built once for all the order seeds that read it (`stacked_dataset`,
kept between packs by `Pipelines`; `data_keys` lets data seeds with equal training arrays share one).
`evaluation_inputs` gives every replica's validation and test inputs at once: shared when the members share
their data, else stacked along a leading replica axis.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from imbal_keras import strategies
from imbal_keras.config import ExperimentConfig
from imbal_keras.data import splits
from imbal_keras.training import experiment
from imbal_keras.training.warm import WarmModels

__all__ = [
    "Member",
    "Pipelines",
    "arrange",
    "data_keys",
    "evaluation_inputs",
    "loss_groups",
    "loss_key",
    "stacked_dataset",
    "with_twins",
]


@dataclasses.dataclass
class Member:
    """One replica of a pack before training.

    Attributes:
      index: its place in the configs given to `run_pack` (results come back in that order).
      config: its run.
      data: its data (`experiment.load_data`; members of one data seed share the object).
      target: its target distribution.
      setup: its `experiment.Setup` (without a pipeline).
      loss: its strategy's loss (`strategies.build_loss`).
      loss_key: what its compiled loss depends on (`loss_key`).
      data_key: what its training data hold (`data_keys`: equal for equal arrays, whatever their data seeds);
        empty: its data seed stands for them.
    """

    index: int
    config: ExperimentConfig
    data: splits.Data
    target: tuple[float, ...]
    setup: experiment.Setup
    loss: Any
    loss_key: str
    data_key: str = ""

    @property
    def pipeline_key(self) -> tuple:
        """Members with an equal key read one pipeline (with their own order seeds): one strategy variant on
        one training split."""
        return (self.config.key("compiled"), self.data_key or self.config.seed_for("data"))


def data_keys(data: Sequence[splits.Data]) -> list[str]:
    """A key per data that is equal for equal training arrays: data seeds that give the same split (a split
    forward in time, a table kept whole) then share a pipeline. Each distinct object is hashed once."""
    keys: dict[int, str] = {}
    for d in data:
        if id(d) not in keys:
            digest = hashlib.blake2b(digest_size=16)
            for array in (d.train.x, d.train.y):
                array = np.ascontiguousarray(array)
                digest.update(f"{array.dtype}{array.shape}".encode())
                digest.update(memoryview(array).cast("B"))
            keys[id(d)] = digest.hexdigest()
    return [keys[id(d)] for d in data]


def loss_key(loss_fn: Any, config: ExperimentConfig, data: splits.Data) -> str:
    """What a compiled pack's traced loss depends on: a Keras loss's class and config but its reduction (each
    replica reduces by its own, `side_by_side`); for any other loss (which may hold constants of its own, e.g.
    per-class margins) everything the run's config and data decide."""
    if type(loss_fn).__module__.startswith("keras."):
        items = sorted((k, v) for k, v in loss_fn.get_config().items() if k not in ("reduction", "name"))
        return f"{type(loss_fn).__qualname__} {items!r}"
    return WarmModels.key(config, data.train.x.shape[1:], data.train.class_counts(data.num_classes))


def arrange(members: Sequence[Member]) -> list[Member]:
    """The members ordered by loss, then by pipeline, then as given: each loss's replicas are one slice of the
    pack, and each pipeline's one slice of its loss's."""
    return sorted(members, key=lambda m: (m.loss_key, repr(m.pipeline_key), m.index))


def loss_groups(members: Sequence[Member]) -> list[tuple[Member, int]]:
    """The first member of each run of consecutive members with one loss (`arrange`), and the run's length."""
    return [(group[0], len(group)) for group in _runs(members, lambda m: m.loss_key)]


def _runs(members: Sequence[Member], key) -> list[list[Member]]:
    return [list(group) for _, group in itertools.groupby(members, key=key)]


class Pipelines:
    """Stacked pipelines kept between the packs of a process, with their order seeds as inputs.

    A pack's stacked pipeline depends on its members' strategy variants and training data, and on how many
    order seeds read each: packs that agree on those (the packs of a grid over training seeds) reuse it, with
    their own seeds assigned to its seed variables before `fit` makes an iterator (each iterator reads them as
    it opens a replica's stream). The last `capacity` are kept.
    """

    def __init__(self, capacity: int = 8):
        self.capacity = capacity
        self._kept: dict[str, tuple[tf.data.Dataset, list[tf.Variable]]] = {}

    def get(self, key: str, build: Callable[[], tuple[tf.data.Dataset, list[tf.Variable]]]):
        """The pipeline and seed variables under `key`, built on first use."""
        if key not in self._kept:
            if len(self._kept) >= self.capacity:
                del self._kept[next(iter(self._kept))]
            self._kept[key] = build()
        return self._kept[key]


def stacked_dataset(
    members: Sequence[Member], data_options: tf.data.Options | None, pipelines: Pipelines | None = None
) -> tf.data.Dataset:
    """The members' pipelines, each element stacked along a leading replica axis, in the members' order.

    A pipeline (one strategy variant on one training split) is built once, inside a dataset function that reads
    its members' order seeds from a variable, and interleaved over them one batch at a time: tracing a
    pipeline's functions costs more than a short run's training. Every random op of a pipeline is stateless
    and seeded from that seed, so each replica's stream is the batches its one-run pipeline yields. The
    pipelines of a pack are zipped and their elements concatenated; a pipeline without sample weights gets
    weights of 1 (the same loss, composition and gradients: a weight of 1 multiplies exactly, and the weights'
    sum is the batch size). With `pipelines`, a stacked pipeline of the same key (`Pipelines`) is reused with
    these seeds. When every pipeline has one reader (data seeds varying with the seeds), each is built directly,
    as its run builds it.
    """
    groups = _runs(members, lambda m: m.pipeline_key)
    if all(len(group) == 1 for group in groups):
        # Every pipeline read by one replica (data seeds varying with the seeds): each built as its run builds
        # it, which costs about half of a pipeline traced inside an interleave, and not kept (no other pack
        # reads these data with these seeds).
        return _stacked([_own(group[0]).batch(1, drop_remainder=True) for group in groups], data_options)
    # Everything a group's pipeline is built from but its seeds: strategy variant, context, data and size.
    key = repr([(group[0].pipeline_key, _unseeded(group[0]), len(group)) for group in groups])

    def build():
        seeds = [tf.Variable(np.zeros(len(group), np.int64), trainable=False) for group in groups]
        parts = [_interleaved(group, variable) for group, variable in zip(groups, seeds, strict=True)]
        return _stacked(parts, data_options), seeds

    # Not the options: they change how a pipeline runs, never which batches it yields.
    dataset, seeds = build() if pipelines is None else pipelines.get(key, build)
    for group, variable in zip(groups, seeds, strict=True):
        variable.assign(np.array([m.setup.ctx.seed for m in group], np.int64))
    return dataset


def with_twins(dataset: tf.data.Dataset, count: int) -> tf.data.Dataset:
    """A stacked pipeline whose last replica's batch is repeated `count` more times along the replica axis (the
    twins `side_by_side.run_pack(pad_to=)` trains and drops)."""
    if not count:
        return dataset

    def padded(*parts):
        return tuple(tf.concat([part, tf.repeat(part[-1:], count, axis=0)], axis=0) for part in parts)

    return dataset.map(padded)


def _stacked(parts: list[tf.data.Dataset], data_options: tf.data.Options | None) -> tf.data.Dataset:
    """Pipelines of stacked elements zipped, their elements concatenated along the replica axis."""
    # Every part with weights (of 1 where its strategy has none), so that packs with and without weighted
    # strategies share one element structure, and so one traced step.
    parts = [part.map(_with_weights) if len(part.element_spec) == 2 else part for part in parts]
    stacked = tf.data.Dataset.zip(tuple(parts)).map(_concatenated) if len(parts) > 1 else parts[0]
    stacked = stacked.prefetch(2)
    return stacked if data_options is None else stacked.with_options(data_options)


def _own(member: Member) -> tf.data.Dataset:
    return strategies.build_pipeline(member.setup.strategy, member.data.train.x, member.data.train.y, member.setup.ctx)


def _unseeded(member: Member) -> str:
    return f"{member.setup.strategy.name} {dataclasses.replace(member.setup.ctx, seed=0)!r}"


def _interleaved(group: Sequence[Member], seeds: tf.Variable) -> tf.data.Dataset:
    """The batches of one pipeline's members, stacked (G, ...), the g-th read with the order seed `seeds[g]`."""
    first = group[0]
    data = first.data
    pipeline = strategies.seeded_pipeline(first.setup.strategy, data.train.x, data.train.y, first.setup.ctx)
    stacked = tf.data.Dataset.range(len(group)).interleave(
        lambda g: pipeline(tf.gather(seeds, g)), cycle_length=len(group), block_length=1
    )
    return stacked.batch(len(group), drop_remainder=True)


def _concatenated(*elements):
    """One element of zipped pipelines: each part (x, y, weights) concatenated along the replica axis."""
    return tuple(tf.concat(list(parts), axis=0) for parts in zip(*elements, strict=True))


def _with_weights(x, y):
    return x, y, tf.ones(tf.shape(y), tf.float32)


def evaluation_inputs(members: Sequence[Member]) -> tuple[np.ndarray, np.ndarray, bool]:
    """Every member's validation and test inputs: `(validation, test, stacked)`; (N, ...) shared by every
    replica when the members share their data, else (R, N, ...) with each member's own (`stacked` True)."""
    first = members[0].data
    if all(m.data is first for m in members):
        return first.validation.x, first.test.x, False
    validation = np.stack([m.data.validation.x for m in members]).astype(np.float32, copy=False)
    test = np.stack([m.data.test.x for m in members]).astype(np.float32, copy=False)
    return validation, test, True
