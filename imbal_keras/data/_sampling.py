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
CLASS_DRAW_STREAM = 3
RANK_STREAM = 4
CLASS_STREAM_BASE = 1000

# Rows assembled per vectorised step of the stratified mixer: large enough that per-step overhead vanishes at
# batch 16, small enough that a step stays a few hundred KiB of indices.
MIX_ROWS = 4096


def base_seed(seed) -> tf.Tensor:
    """The (2,) seed of a pipeline seeded by `seed`: a Python int, or a scalar tensor (a pipeline built inside a
    dataset function, once for many seeds: `imbal_keras.training.side_by_side`)."""
    if isinstance(seed, (int, np.integer)):
        return tf.constant([seed, 0], tf.int64)
    return tf.stack([tf.cast(seed, tf.int64), tf.constant(0, tf.int64)])


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


def class_draws(
    counts: np.ndarray,
    shares: np.ndarray,
    *,
    batch_size: int,
    seed,
    final_shares: np.ndarray | None = None,
    schedule_steps: int = 0,
    num_replicas: int = 1,
) -> tf.data.Dataset:
    """Independent class draws for consecutive batches, `chunk_batches(B)` batches per element.

    Every slot of batch b draws its class from p(t) with t = b // num_replicas, the global step the batch belongs
    to: p(t) = `shares` without a schedule, else (1 - s) shares + s final_shares with s = min(t / schedule_steps,
    1). A slot of class c also draws a uniform rank in 0..n_c-1 (the example within the class, with replacement).
    So a batch's class counts are multinomial(B, p(t)) and the draws of different batches are independent.

    Args:
      counts: n_c, shape (K,); ranks of class c are drawn in 0..n_c-1.
      shares: class probabilities (K,) summing to 1.
      batch_size: slots per batch B.
      seed: shape (2,) seed; chunk i is seeded by `child_seed(seed, i)`.
      final_shares: the probabilities at the end of the schedule, or None for none.
      schedule_steps: global steps over which p moves from `shares` to `final_shares` (>= 1 with a schedule).
      num_replicas: consecutive batches per global step.

    Returns:
      Infinite dataset of `(classes, ranks)`, both int32 of shape (M, B).
    """
    m = chunk_batches(batch_size)
    start = tf.constant(np.asarray(shares, np.float64))
    end = start if final_shares is None else tf.constant(np.asarray(final_shares, np.float64))
    n = tf.constant(np.asarray(counts, np.float64))
    first_batch = tf.range(m, dtype=tf.int64)

    def draw(chunk_seed, chunk):
        if final_shares is None:
            p = tf.tile(start[None, :], [m, 1])
        else:
            step = (chunk * m + first_batch) // num_replicas
            s = tf.minimum(tf.cast(step, tf.float64) / schedule_steps, 1.0)[:, None]
            p = (1.0 - s) * start + s * end
        classes = tf.random.stateless_categorical(
            tf.cast(tf.math.log(p), tf.float32), batch_size, child_seed(chunk_seed, CLASS_DRAW_STREAM), dtype=tf.int32
        )
        u = tf.random.stateless_uniform([m, batch_size], child_seed(chunk_seed, RANK_STREAM), dtype=tf.float64)
        ranks = tf.cast(tf.floor(u * tf.gather(n, classes)), tf.int32)
        return classes, ranks

    return map_fn(numbered(tf.data.Dataset.counter(), seed), draw, parallel=True)
