"""The strategies' pipelines under `tf.distribute` (MirroredStrategy and friends).

`tf.distribute.Strategy.distribute_datasets_from_function` calls the dataset function once per input pipeline
(one per worker; MirroredStrategy on one machine has one) and hands its consecutive batches to the worker's
replicas in turn, so R consecutive per-replica batches make one global step. The helpers here build each input
pipeline with

- the per-replica batch size (`global_batch_size / num_replicas_in_sync`),
- its own seed (`replica_seed(seed, input_pipeline_id)`), so pipelines never repeat each other's draws,
- its own shard of an in-memory input, split class by class so every shard keeps the class ratio,
- `StrategyContext.num_replicas` set to the pipeline's replicas, so `stratified` deals the exact counts of a
  global batch (`stratified_counts(global_batch, t)`) over them (`shares.deal_counts`), and the class-aware
  samplers (`sqrt_sampling`, `progressive_sampling`) count their schedule in global steps (R consecutive
  batches are one step); the other strategies keep the documented composition in expectation.

Example:
  ```python
  mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
  ctx = strategies.StrategyContext(class_counts=counts, target_distribution=np.array([0.5, 0.5]),
                                   batch_size=256, seed=0)  # global batch size
  train = distribute.distribute_pipeline(mirrored, "stratified", x, y, ctx)
  ```
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from imbal_keras import strategies
from imbal_keras.data.shares import class_counts
from imbal_keras.errors import check

__all__ = [
    "distribute_pipeline",
    "distribute_stream",
    "replica_seed",
]


def replica_seed(seed: int, input_pipeline_id: int) -> int:
    """A seed for input pipeline `input_pipeline_id`, independent of every other pipeline's and of `seed + i`."""
    return int(np.random.SeedSequence([seed, input_pipeline_id]).generate_state(1, np.uint32)[0])


def distribute_pipeline(
    tf_strategy: tf.distribute.Strategy,
    strategy: strategies.Strategy | str,
    features,
    labels,
    ctx: strategies.StrategyContext,
) -> tf.distribute.DistributedDataset:
    """`strategy`'s in-memory pipeline, one class-stratified shard per input pipeline.

    Args:
      tf_strategy: the distribution strategy.
      strategy: a registered strategy or its name.
      features: array or nested structure of arrays with leading dimension N.
      labels: integer class ids, shape (N,).
      ctx: the run's context; `ctx.batch_size` is the *global* batch size.

    Raises:
      UserInputError: the global batch does not split evenly over the replicas, or a shard would lack a class.
    """
    labels = np.asarray(labels)

    def build(input_context, local_ctx):
        shard = _class_shard(labels, input_context.input_pipeline_id, input_context.num_input_pipelines)
        shard_features = tf.nest.map_structure(lambda f: np.asarray(f)[shard], features)
        shard_labels = labels[shard]
        local_ctx = dataclasses.replace(local_ctx, class_counts=class_counts(shard_labels, len(ctx.class_counts)))
        return strategies.build_pipeline(strategy, shard_features, shard_labels, local_ctx)

    return _distribute(tf_strategy, ctx, build)


def distribute_stream(
    tf_strategy: tf.distribute.Strategy,
    strategy: strategies.Strategy | str,
    dataset_fn: Callable[[tf.distribute.InputContext], tf.data.Dataset],
    ctx: strategies.StrategyContext,
) -> tf.distribute.DistributedDataset:
    """`strategy`'s streaming form over `dataset_fn(input_context)`, the input pipeline's `(x, y)` examples.

    `dataset_fn` shards the input (e.g. `files.shard(n, i)` before reading TFRecords); `ctx.class_counts` is
    the class distribution of the whole input and stands in for each shard's, so shard by file, not by class.
    `ctx.batch_size` is the *global* batch size.
    """
    return _distribute(
        tf_strategy,
        ctx,
        lambda input_context, local_ctx: strategies.build_stream(strategy, dataset_fn(input_context), local_ctx),
    )


def _distribute(tf_strategy, ctx, build) -> tf.distribute.DistributedDataset:
    replicas = tf_strategy.num_replicas_in_sync
    check(
        ctx.batch_size % replicas == 0,
        f"batch_size must be a multiple of the {replicas} replicas. Received: batch_size={ctx.batch_size}",
    )

    def dataset_fn(input_context: tf.distribute.InputContext) -> tf.data.Dataset:
        local_ctx = dataclasses.replace(
            ctx,
            batch_size=input_context.get_per_replica_batch_size(ctx.batch_size),
            seed=replica_seed(ctx.seed, input_context.input_pipeline_id),
            num_replicas=input_context.num_replicas_in_sync // input_context.num_input_pipelines,
        )
        return build(input_context, local_ctx)

    return tf_strategy.distribute_datasets_from_function(dataset_fn)


def _class_shard(labels: np.ndarray, index: int, count: int) -> np.ndarray:
    """Rows of shard `index` of `count`: every count-th example of each class, so shards keep the class ratio."""
    rows = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        check(
            len(members) >= count,
            f"class {c} has {len(members)} examples, fewer than the {count} input pipelines to shard it over",
        )
        rows.append(members[index::count])
    return np.sort(np.concatenate(rows))
