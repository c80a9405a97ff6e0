"""tf.data primitives shared by the in-memory (`pipelines`) and file-backed (`streaming`) builders.

Everything random here is stateless and seeded by `(seed, chunk_or_pass_number, stream_id)`, so a stream's
elements depend only on the seed and their position, never on threads, `num_parallel_calls` or read-ahead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE

# Stream ids keep the random streams of one seed apart (pass order, acceptance, class streams, in-batch shuffle).
PASS_STREAM = 0
ACCEPT_STREAM = 1
BATCH_SHUFFLE_STREAM = 2
CLASS_STREAM_BASE = 1000

# Rows assembled per vectorised step of the stratified mixer: large enough that per-step overhead vanishes at
# batch 16, small enough that a step stays a few hundred KiB of indices.
MIX_ROWS = 4096


def base_seed(seed: int) -> tf.Tensor:
    return tf.constant([seed, 0], tf.int64)


def class_seed(seed: int, c: int) -> tf.Tensor:
    """The seed of class c's own stream."""
    return child_seed(base_seed(seed), CLASS_STREAM_BASE + c)


def child_seed(seed, stream_id):
    """An independent child seed of `seed` (shape (2,)) for stream `stream_id`."""
    return tf.random.experimental.stateless_fold_in(seed, stream_id)


def permutation(n: int, seed) -> tf.Tensor:
    return tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int32), seed=seed)


def map_fn(dataset: tf.data.Dataset, fn: Callable, *, parallel: bool = False) -> tf.data.Dataset:
    """`dataset.map(fn)` without AutoGraph (the functions are plain tensor code) and always deterministic."""
    fn = tf.autograph.experimental.do_not_convert(fn)
    if parallel:
        return dataset.map(fn, num_parallel_calls=AUTOTUNE, deterministic=True)
    return dataset.map(fn)


def passes(seed, one_pass: Callable) -> tf.data.Dataset:
    """Infinite dataset of index vectors, one per pass; pass i is seeded by `child_seed(seed, i)`."""
    return map_fn(tf.data.Dataset.counter(), lambda i: one_pass(child_seed(seed, i)))


def numbered(dataset: tf.data.Dataset, seed) -> tf.data.Dataset:
    """Pairs element i of `dataset` with its own seed `child_seed(seed, i)`: `(seed_i, element)`."""
    seeds = map_fn(tf.data.Dataset.counter(), lambda i: child_seed(seed, i))
    return tf.data.Dataset.zip(seeds, dataset)


def cycled(n: int, size: int, seed) -> tf.data.Dataset:
    """Infinite dataset of int32 vectors of length `size` that cycle through fresh permutations of range(n)."""
    return passes(seed, lambda s: permutation(n, s)).rebatch(size, drop_remainder=True)


def chunk_batches(batch_rows: int) -> int:
    """Batches of `batch_rows` rows assembled per vectorised mixing step."""
    return max(1, MIX_ROWS // batch_rows)


def mix(parts: Sequence[tf.data.Dataset], counts_per_batch: np.ndarray, seed) -> tf.data.Dataset:
    """Assembles batches with exact class counts from per-class streams, `chunk_batches(rows)` groups at a time.

    Args:
      parts: one dataset per class with `counts_per_batch[:, c].sum() > 0`, in class order; each element is a
        structure of tensors of shape (M, n_c, ...) with M groups of `n_c = counts_per_batch[:, c].sum()` rows.
      counts_per_batch: (R, K) class counts of R consecutive batches (one group), e.g. one row per replica.
      seed: seeds the in-batch shuffles.

    Returns:
      Dataset of batches: structures of shape (B, ...) with B = counts_per_batch[r].sum(); batch i holds
      exactly counts_per_batch[i % R] examples of each class, in random order.
    """
    counts_per_batch = np.asarray(counts_per_batch, dtype=np.int64)
    num_batches, batch_size = counts_per_batch.shape[0], int(counts_per_batch[0].sum())
    group = num_batches * batch_size
    # A group's rows arrive class by class; `arrange` moves them so batch r's slots get counts_per_batch[r].
    slot_batch = np.repeat(np.arange(num_batches), batch_size)
    slot_class = np.concatenate([np.repeat(np.arange(counts_per_batch.shape[1]), row) for row in counts_per_batch])
    class_major = np.lexsort((slot_batch, slot_class))
    arrange = tf.constant(np.argsort(class_major, kind="stable").astype(np.int32))
    # Shuffles stay inside each batch: sort by batch number plus a uniform key in [0, 1).
    batch_key = tf.constant(slot_batch, tf.float32)

    def assemble(step_seed, *class_parts):
        rows = tf.nest.map_structure(lambda *p: tf.concat(p, axis=1), *class_parts)
        m = tf.shape(tf.nest.flatten(rows)[0])[0]
        keys = batch_key + tf.random.stateless_uniform([m, group], child_seed(step_seed, BATCH_SHUFFLE_STREAM))
        order = tf.gather(arrange, tf.argsort(keys, axis=1, stable=True))
        return tf.nest.map_structure(
            lambda r: tf.reshape(
                tf.gather(r, order, axis=1, batch_dims=1),
                tf.concat([[m * num_batches, batch_size], tf.shape(r)[2:]], 0),
            ),
            rows,
        )

    return map_fn(numbered(tf.data.Dataset.zip(tuple(parts)), seed), lambda s, p: assemble(s, *p)).unbatch()
