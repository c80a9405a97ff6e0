"""The rebalancing strategies over file-backed inputs: a `tf.data.Dataset` of `(x, y)` examples.

The input may be larger than memory (TFRecord shards, a TFDS split, rows generated on the fly). Every builder
returns an infinite dataset of batches `(x, y)` or `(x, y, w)` like its in-memory twin in `pipelines`, and never
holds a copy of the class that is read from the input:

- `natural` / `weighted`: `shuffle(shuffle_buffer).repeat().batch(B)`, plus `w = class_weights[y]`.
- `rejection` / `downsample`: the input is read in order in chunks of `_CHUNK` rows; each row of class c is kept
  with probability a_c (`shares.acceptance_probabilities`) by one stateless uniform draw per chunk and a
  `boolean_mask`; the kept rows are shuffled in windows of `shuffle_buffer` rows (one permutation each) and
  `rebatch`ed. Nothing runs per element, so the cost is reading the input: 1 / sum_c p_c a_c rows per kept row
  (50 at 1:99 towards 50/50). Streaming has no passes of known size to subsample exactly, so `downsample` keeps
  the same per-example probabilities m_c / n_c, which equal a_c: the two are one builder here.
- `upsample` / `stratified`: one class, the one needing the fewest repeats (largest n_c / t_c, the majority at
  1:99), is *streamed*: read in order, masked per chunk and shuffled in windows as above. Every other class with
  a target share is *cached*: its rows are collected by one scan of the input when the pipeline is built (at
  1:99 that is 1% of the rows) and cycled through fresh permutations, as in memory. Batches are mixed with exact
  class counts by `_sampling.mix`; `upsample` mixes windows of `_UPSAMPLE_WINDOW` rows with counts
  `stratified_counts(window, t)` and cuts them into batches, so a batch's class count is hypergeometric around
  B t_c (as in memory), while `stratified` puts exactly `stratified_counts(B, t)` into every batch.
- `class_sampled` (square-root and progressive sampling): every slot draws its class, exactly as in memory for the
  same seed; the largest class is streamed (one row read per slot, kept by the slots that drew it), the others are
  cached by one scan and drawn with replacement.

The class counts (`initial_distribution`, counts or shares) must be given, as for
`tf.data.Dataset.rejection_resample`; `count_classes` gets them with one vectorised scan. A class the target asks
for but the input lacks fails with a `UserInputError` naming it instead of a stream that waits forever for it:
from the counts, or from the build-time scan. `rejection` / `downsample` scan only until every target class has
appeared (the first block at 1:99), a full pass only when one is missing. An infinite input is refused.

Determinism: `natural` / `weighted` shuffle the input with `seed`; every other random choice is stateless, seeded
by the seed and the chunk or window number; all maps are deterministic. The same seed and the same input order
give the same batches.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from imbal_keras.data import _sampling as sampling
from imbal_keras.data.shares import (
    acceptance_probabilities,
    check_reachable,
    counts_per_batch,
    resolve_target,
    sampling_schedule,
    stratified_counts,
)
from imbal_keras.errors import check

__all__ = [
    "DEFAULT_SHUFFLE_BUFFER",
    "class_sampled",
    "count_classes",
    "natural",
    "rejection",
    "stratified",
    "upsample",
    "weighted",
]

# Input rows per vectorised keep step: per-step overhead is negligible at this size, the chunk stays small.
_CHUNK = 4096
# Rows per upsampling window: the window is where the class counts are exact, batches inside it vary.
_UPSAMPLE_WINDOW = 4096
# Examples per step of the build-time scans.
_SCAN_BLOCK = 65536
DEFAULT_SHUFFLE_BUFFER = 10_000


def count_classes(dataset: tf.data.Dataset, num_classes: int) -> np.ndarray:
    """Examples per class in one pass over a dataset of `(x, y)` examples, shape (K,).

    Raises:
      UserInputError: a label outside 0..num_classes-1.
    """
    counts, _ = _scan(dataset, num_classes, cached=())
    return counts


def natural(
    dataset: tf.data.Dataset,
    *,
    batch_size: int,
    seed: int,
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
    sample_weights: Sequence[float] | None = None,
) -> tf.data.Dataset:
    """Batches of the input as it comes, through a seeded shuffle buffer; `(x, y, w)` with `sample_weights`."""
    if shuffle_buffer > 0:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    batches = dataset.repeat().batch(batch_size, drop_remainder=True)
    if sample_weights is not None:
        weights = tf.constant(np.asarray(sample_weights), tf.float32)
        batches = sampling.map_fn(batches, lambda x, y: (x, y, tf.gather(weights, y)))
    return batches.prefetch(sampling.AUTOTUNE)


def weighted(
    dataset: tf.data.Dataset,
    *,
    batch_size: int,
    seed: int,
    class_weights: Sequence[float],
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
) -> tf.data.Dataset:
    """`natural` batches with per-example weights `class_weights[y]`: `(x, y, w)`."""
    return natural(
        dataset, batch_size=batch_size, seed=seed, shuffle_buffer=shuffle_buffer, sample_weights=class_weights
    )


def rejection(
    dataset: tf.data.Dataset,
    *,
    batch_size: int,
    seed: int,
    initial_distribution: Sequence[float],
    target_distribution: Sequence[float] | None = None,
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
) -> tf.data.Dataset:
    """Keeps each example of class c with probability a_c, so the kept stream has class shares t in expectation.

    Args:
      dataset: `(x, y)` examples, finite; it is repeated.
      batch_size: examples per batch B.
      seed: seeds the acceptance draws and the window shuffles.
      initial_distribution: class counts or shares of the input, shape (K,).
      target_distribution: class shares t; None means uniform.
      shuffle_buffer: kept rows per shuffled window; 0 keeps them in input order.

    Raises:
      UserInputError: the target asks for a class with no examples (by `initial_distribution`, or none in a full
        pass over the input), or the input is infinite.
    """
    p, t = _distributions(initial_distribution, target_distribution)
    _check_scanned(_scan(dataset, len(p), cached=(), until_seen=t > 0)[0], t)
    accept = acceptance_probabilities(p, t)
    kept = _accepted(dataset, accept, sampling.base_seed(seed), shuffle_buffer)
    return kept.rebatch(batch_size, drop_remainder=True).prefetch(sampling.AUTOTUNE)


downsample = rejection


def upsample(
    dataset: tf.data.Dataset,
    *,
    batch_size: int,
    seed: int,
    initial_distribution: Sequence[float],
    target_distribution: Sequence[float] | None = None,
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
) -> tf.data.Dataset:
    """Streams the class needing the fewest repeats once per input pass and cycles the cached others to the target.

    Args and Raises: as `stratified`. Windows of `_UPSAMPLE_WINDOW` rows (rounded to whole batches) hold exactly
    `stratified_counts(window, t)` examples of each class; batches are cut from shuffled windows.
    """
    window = batch_size * max(1, _UPSAMPLE_WINDOW // batch_size)
    p, t = _distributions(initial_distribution, target_distribution)
    counts = stratified_counts(window, t)[None, :]
    windows = _mixed(dataset, seed, shuffle_buffer, p, t, counts)
    return windows.rebatch(batch_size, drop_remainder=True).prefetch(sampling.AUTOTUNE)


def stratified(
    dataset: tf.data.Dataset,
    *,
    batch_size: int,
    seed: int,
    initial_distribution: Sequence[float],
    target_distribution: Sequence[float] | None = None,
    class_counts_per_batch: np.ndarray | None = None,
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
) -> tf.data.Dataset:
    """Every batch holds exactly `stratified_counts(B, t)[c]` examples of class c (or row i % R of the override).

    Building it scans the input once to collect the rows of the cached classes (every class with a target
    share except the streamed one).

    Args:
      dataset: `(x, y)` examples, finite; it is repeated.
      batch_size: examples per batch B.
      seed: seeds the window shuffles, the class cycles and the in-batch shuffles.
      initial_distribution: class counts or shares of the input, shape (K,); picks the streamed class.
      target_distribution: class shares t; None means uniform.
      class_counts_per_batch: optional (R, K) exact counts, see `pipelines.stratified`.
      shuffle_buffer: rows of the streamed class per shuffled window; 0 keeps them in input order.

    Raises:
      UserInputError: the target asks for a class that has no examples (by `initial_distribution` or found by
        the scan), or the input is infinite.
    """
    p, t = _distributions(initial_distribution, target_distribution)
    counts = counts_per_batch(batch_size, t, class_counts_per_batch)
    return _mixed(dataset, seed, shuffle_buffer, p, t, counts).prefetch(sampling.AUTOTUNE)


def class_sampled(
    dataset: tf.data.Dataset,
    *,
    batch_size: int,
    seed: int,
    initial_distribution: Sequence[float],
    shares: Sequence[float],
    final_shares: Sequence[float] | None = None,
    schedule_steps: int = 0,
    num_replicas: int = 1,
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
) -> tf.data.Dataset:
    """Class-aware sampling over a file-backed input: the streaming form of `pipelines.class_sampled`.

    Each slot draws its class from p(t) (multinomial batches, the schedule exact per batch, as in memory). The
    largest class (by `initial_distribution`) is *streamed*: read in order, shuffled in windows, one row per slot
    of every chunk of batches, of which the slots that drew it keep theirs; the input is thus read once per
    slot / pi_head rows (1.01 rows per slot at 1:99, 2.5 for CIFAR-10-LT at rho = 100), and streamed rows are not
    repeated within a pass. Every other class is *cached*: its rows are collected by one scan of the input when the
    pipeline is built and drawn uniformly with replacement, as in memory.

    Args:
      dataset: `(x, y)` examples, finite; it is repeated.
      batch_size: examples per batch B.
      seed: seeds the class draws, the draws within cached classes and the window shuffles.
      initial_distribution: class counts or shares of the input, shape (K,); picks the streamed class.
      shares: class probabilities (K,), normalised here.
      final_shares: probabilities at the end of the schedule, or None for constant `shares`.
      schedule_steps: global steps of the schedule, >= 1 when `final_shares` is given.
      num_replicas: consecutive batches per global step.
      shuffle_buffer: rows of the streamed class per shuffled window; 0 keeps them in input order.

    Raises:
      UserInputError: a share vector that does not fit, a share on a class the input lacks (by
        `initial_distribution` or found by the scan), a schedule of fewer than 1 step, or an infinite input.
    """
    p_input = _input_distribution(initial_distribution)
    p, p_end = sampling_schedule(shares, final_shares, schedule_steps, num_classes=len(p_input))
    check(
        len(p) == len(p_input),
        f"shares has {len(p)} entries but initial_distribution has {len(p_input)}. Received: shares={p.tolist()}",
        argument="shares",
    )
    check_reachable(p_input, p, counts_name="initial_distribution", target_name="shares")
    check_reachable(p_input, p_end, counts_name="initial_distribution", target_name="final_shares")
    wanted = p + p_end
    streamed = int(np.argmax(p_input))
    cached = [c for c in np.flatnonzero(wanted > 0) if c != streamed]
    scanned, rows = _scan(dataset, len(p_input), cached=cached)
    _check_scanned(scanned, wanted)
    chunk = sampling.chunk_batches(batch_size)
    draws = sampling.class_draws(
        np.maximum(scanned, 1),
        p,
        batch_size=batch_size,
        seed=sampling.base_seed(seed),
        final_shares=None if final_shares is None else p_end,
        schedule_steps=schedule_steps,
        num_replicas=num_replicas,
    )
    only_streamed = np.arange(len(p_input)) == streamed
    streamed_rows = _accepted(dataset, only_streamed, sampling.class_seed(seed, streamed), shuffle_buffer)
    streamed_rows = streamed_rows.rebatch(chunk * batch_size, drop_remainder=True)
    # Cached rows, class by class, in one table; slot (c, rank) is row offsets[c] + rank. Without cached classes
    # (only the streamed one has a share) the streamed rows alone fill the slots.
    table = streamed_rows.element_spec
    if cached:
        table = tf.nest.map_structure(lambda *parts: tf.constant(np.concatenate(parts)), *(rows[c] for c in cached))
    sizes = np.zeros(len(p_input), np.int64)
    sizes[cached] = scanned[cached]
    offsets = tf.constant(np.r_[0, np.cumsum(sizes)[:-1]].astype(np.int32))

    def fill(draw, streamed_chunk):
        classes, ranks = draw
        is_streamed = tf.equal(classes, streamed)
        index = tf.where(is_streamed, 0, tf.gather(offsets, classes) + ranks)

        def field(from_stream, from_cache):
            rank = from_stream.shape.rank
            from_stream = tf.reshape(from_stream, [chunk, batch_size, *from_stream.shape[1:]])
            if not cached:
                return from_stream
            mask = tf.reshape(is_streamed, [chunk, batch_size] + [1] * (rank - 1))
            return tf.where(mask, from_stream, tf.gather(from_cache, index))

        return tf.nest.map_structure(field, streamed_chunk, table)

    batches = sampling.map_fn(tf.data.Dataset.zip(draws, streamed_rows), fill, parallel=True)
    return batches.unbatch().prefetch(sampling.AUTOTUNE)


def _mixed(dataset, seed, shuffle_buffer, p, t, counts_per_batch) -> tf.data.Dataset:
    """Batches of `counts_per_batch` rows: one streamed class from the input, the others cached in memory."""
    wanted = counts_per_batch.sum(axis=0)
    check_reachable(p, wanted, counts_name="initial_distribution")
    active = np.flatnonzero(wanted > 0)
    streamed = active[np.argmax(p[active] / t[active])]
    cached = [int(c) for c in active if c != streamed]
    scanned, rows = _scan(dataset, len(p), cached=cached)
    _check_scanned(scanned, wanted)
    chunk = sampling.chunk_batches(int(counts_per_batch.sum()))

    def in_chunks(rows_c, k):
        return tf.nest.map_structure(lambda r: tf.reshape(r, tf.concat([[chunk, k], tf.shape(r)[1:]], 0)), rows_c)

    parts = []
    for c in active:
        k = int(wanted[c])
        if c == streamed:
            only_c = np.arange(len(p)) == c
            class_rows = _accepted(dataset, only_c, sampling.class_seed(seed, int(c)), shuffle_buffer)
            class_rows = class_rows.rebatch(chunk * k, drop_remainder=True)
        else:
            table = tf.nest.map_structure(tf.constant, rows[c])
            index = sampling.cycled(int(scanned[c]), chunk * k, sampling.class_seed(seed, int(c)))
            class_rows = sampling.map_fn(
                index, lambda i, table=table: tf.nest.map_structure(lambda f: tf.gather(f, i), table)
            )
        parts.append(sampling.map_fn(class_rows, lambda *xy, k=k: in_chunks(xy, k)))
    return sampling.mix(parts, counts_per_batch, sampling.base_seed(seed))


def _input_distribution(initial_distribution) -> np.ndarray:
    """`initial_distribution` validated, as given (counts or shares)."""
    p = np.asarray(initial_distribution, dtype=np.float64)
    check(
        p.ndim == 1 and len(p) > 0 and (p >= 0).all() and p.sum() > 0,
        f"initial_distribution must be non-negative class counts or shares, one per class. "
        f"Received: initial_distribution={p.tolist()}",
    )
    return p


def _distributions(initial_distribution, target_distribution) -> tuple[np.ndarray, np.ndarray]:
    p = _input_distribution(initial_distribution)
    t = resolve_target(target_distribution, len(p))
    check(
        len(t) == len(p),
        f"target_distribution has {len(t)} shares but initial_distribution has {len(p)}. "
        f"Received: target_distribution={t.tolist()}",
    )
    check_reachable(p, t, counts_name="initial_distribution")
    return p / p.sum(), t


def _accepted(dataset, accept, seed, window: int) -> tf.data.Dataset:
    """The rows of the repeated input that pass one keep draw each, as shuffled windows of `window` rows.

    The input is read in order in chunks of `_CHUNK` rows; chunk i keeps row r of class c iff u_r < accept[c], with
    u drawn by one stateless uniform op seeded by `(seed, i)`, so an accept of 1 or 0 keeps or drops a class
    outright. The kept rows are cut into windows of `window` rows and each window is permuted (seeded by its
    number): the vectorised counterpart of a shuffle buffer of that size. `window` 0 leaves them in input order.

    Returns:
      Dataset of structures of shape (window, ...), or of the kept part of each chunk when `window` is 0.
    """
    accept = tf.constant(np.asarray(accept), tf.float32)

    def kept(chunk_seed, rows):
        keep = tf.random.stateless_uniform(tf.shape(rows[1]), chunk_seed) < tf.gather(accept, rows[1])
        return tf.nest.map_structure(lambda f: tf.boolean_mask(f, keep), rows)

    chunks = sampling.numbered(dataset.repeat().batch(_CHUNK), sampling.child_seed(seed, sampling.ACCEPT_STREAM))
    rows = sampling.map_fn(chunks, kept, parallel=True)
    if window == 0:
        return rows

    def shuffled(window_seed, rows):
        order = sampling.permutation(window, window_seed)
        return tf.nest.map_structure(lambda f: tf.gather(f, order), rows)

    windows = sampling.numbered(
        rows.rebatch(window, drop_remainder=True), sampling.child_seed(seed, sampling.PASS_STREAM)
    )
    return sampling.map_fn(windows, shuffled, parallel=True)


def _scan(dataset: tf.data.Dataset, num_classes: int, *, cached: Sequence[int], until_seen=None):
    """One pass over the input: class counts (K,) and the rows of the `cached` classes as numpy structures.

    With `until_seen` (a (K,) mask), the scan stops early once every class in it has appeared: the counts are
    then partial, but a class missing from them was missing from the whole pass.

    Raises:
      UserInputError: a label outside 0..num_classes-1, or an infinite input (the scan would never end).
    """
    check(
        dataset.cardinality() != tf.data.INFINITE_CARDINALITY,
        "the input dataset must be finite (the pipeline repeats it). Received: an infinite dataset",
    )
    counts = np.zeros(num_classes, np.int64)
    parts = {c: [] for c in cached}
    for x, y in dataset.batch(_SCAN_BLOCK).as_numpy_iterator():
        bad = y[(y < 0) | (y >= num_classes)]
        check(len(bad) == 0, f"labels must be class ids 0..{num_classes - 1}. Received a label {bad[:1].tolist()}")
        counts += np.bincount(y, minlength=num_classes)
        for c in cached:
            mask = y == c
            parts[c].append(tf.nest.map_structure(lambda f, mask=mask: f[mask], (x, y)))
        if until_seen is not None and (counts[until_seen] > 0).all():
            break
    rows = {c: tf.nest.map_structure(lambda *f: np.concatenate(f), *p) for c, p in parts.items() if p}
    return counts, rows


def _check_scanned(counts: np.ndarray, wanted: np.ndarray) -> None:
    for c in np.flatnonzero(wanted > 0):
        check(
            counts[c] > 0,
            f"class {c} has no examples in the input dataset, but the target asks for it "
            f"(one full pass counted {counts.tolist()}); check initial_distribution",
        )
