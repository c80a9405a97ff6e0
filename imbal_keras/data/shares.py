"""The class-share arithmetic of the rebalancing strategies, in plain NumPy (no TensorFlow).

How many examples of each class a pass, a batch or a replica gets (`apportion`, `pass_sizes`, `stratified_counts`,
`deal_counts`), the per-class loss weights and keep probabilities that move the natural distribution to a target
(`class_weights`, `acceptance_probabilities`), the class-sampling shares of the long-tail samplers
(`power_shares`, `progressive_shares`), and the checks that a target can be reached. The tf.data builders
(`pipelines`, `streaming`), the strategy registry and the data loaders all compute shares here, so reading the
registry or loading data never imports TensorFlow.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from imbal_keras.errors import UserInputError, check

__all__ = [
    "acceptance_probabilities",
    "apportion",
    "balanced",
    "check_reachable",
    "class_counts",
    "class_weights",
    "counts_per_batch",
    "deal_counts",
    "pass_sizes",
    "power_shares",
    "progressive_shares",
    "resolve_target",
    "sampling_schedule",
    "stratified_counts",
]


def class_counts(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Examples per class, shape (K,)."""
    return np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)[:num_classes]


def balanced(num_classes: int) -> np.ndarray:
    """The uniform target distribution."""
    return np.full(num_classes, 1.0 / num_classes)


def class_weights(
    counts: Sequence[int],
    target_distribution: Sequence[float] | None = None,
    *,
    normalization: str = "mean_one",
) -> np.ndarray:
    """Per-class loss weights that turn the training distribution into `target_distribution` in expectation.

    w_c is proportional to t_c / n_c, so the weighted class mass n_c * w_c is proportional to the target t_c.

    Args:
      counts: training examples per class n_c, shape (K,).
      target_distribution: target shares t_c; None means uniform (1/K each).
      normalization: `mean_one`: the mean weight over the training examples is 1, w_c = N t_c / n_c, which for a
        uniform target is N / (K n_c) (the TensorFlow imbalanced-data tutorial's formula).
        `sum_to_num_classes`: the K weights sum to K (at 1:99 exactly 0.02 and 1.98).

    Returns:
      float64 array of shape (K,); classes with no examples get weight 0.
    """
    n = np.asarray(counts, dtype=np.float64)
    t = balanced(len(n)) if target_distribution is None else np.asarray(target_distribution, np.float64)
    ratio = np.divide(t, n, out=np.zeros_like(n), where=n > 0)
    if normalization == "mean_one":
        return n.sum() * ratio
    if normalization == "sum_to_num_classes":
        return len(n) * ratio / ratio.sum()
    raise ValueError(
        f"normalization must be 'mean_one' or 'sum_to_num_classes'. Received: normalization={normalization!r}"
    )


def apportion(total: int, shares: Sequence[float]) -> np.ndarray:
    """Integer counts summing to `total`, proportional to `shares`: floors, then largest remainders get +1."""
    exact = total * np.asarray(shares, dtype=np.float64)
    counts = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: total - counts.sum()]] += 1
    return counts


def stratified_counts(batch_size: int, target_distribution: Sequence[float]) -> np.ndarray:
    """Examples per class in every stratified batch: round(B t_c), fixed up to sum to B by largest remainder."""
    return apportion(batch_size, target_distribution)


def deal_counts(counts: Sequence[int], num_replicas: int) -> np.ndarray:
    """Splits one global batch's class counts over `num_replicas` equal replica batches, as evenly as possible.

    Positions of the global batch are laid out class by class and dealt round robin, so every replica gets
    `len(batch) / num_replicas` positions and each class count differs by at most one between replicas.

    Returns:
      int64 array (num_replicas, K) whose columns sum to `counts`.
    """
    counts = np.asarray(counts, dtype=np.int64)
    position_class = np.repeat(np.arange(len(counts)), counts)
    replica = np.arange(len(position_class)) % num_replicas
    dealt = np.zeros((num_replicas, len(counts)), np.int64)
    np.add.at(dealt, (replica, position_class), 1)
    return dealt


def pass_sizes(counts: Sequence[int], target_distribution: Sequence[float], *, mode: str) -> np.ndarray:
    """Examples drawn per class in one pass of `upsample` (mode='up') or `downsample` (mode='down').

    `up` keeps every example at least once per pass and repeats classes up to the target:
    m_c = round(t_c * max_k n_k / t_k). `down` never repeats an example within a pass and drops down to the
    target: m_c = round(t_c * min_k n_k / t_k). Both range over classes with t_k > 0.
    """
    n = np.asarray(counts, dtype=np.float64)
    t = np.asarray(target_distribution, dtype=np.float64)
    active = t > 0
    scale = (n[active] / t[active]).max() if mode == "up" else (n[active] / t[active]).min()
    return np.where(active, np.round(t * scale), 0).astype(np.int64)


def acceptance_probabilities(counts: Sequence[int], target_distribution: Sequence[float]) -> np.ndarray:
    """Per-class keep probabilities of rejection resampling: a_c = (t_c / p_c) / max_k (t_k / p_k)."""
    n = np.asarray(counts, dtype=np.float64)
    t = np.asarray(target_distribution, dtype=np.float64)
    p = n / n.sum()
    ratio = np.divide(t, p, out=np.zeros_like(t), where=p > 0)
    return ratio / ratio.max()


def check_reachable(
    counts: Sequence[float],
    target_distribution: Sequence[float],
    *,
    counts_name: str = "class_counts",
    target_name: str = "target_distribution",
) -> None:
    """Fails fast when the target asks for a class that has no examples (the stream could never fill a batch).

    Args:
      counts: examples (or shares) per class.
      target_distribution: wanted shares (or counts) per class.
      counts_name: the argument `counts` came from, for the message.
      target_name: the argument `target_distribution` came from, for the message.

    Raises:
      UserInputError: naming the first such class.
    """
    counts = np.asarray(counts)
    t = np.asarray(target_distribution, dtype=np.float64)
    check(t.sum() > 0, f"{target_name} has no positive share. Received: {target_name}={t.tolist()}")
    for c in np.flatnonzero(t > 0):
        check(
            c < len(counts) and counts[c] > 0,
            f"{target_name} asks for class {c}, which has no examples. "
            f"Received: {target_name}={t.tolist()}, {counts_name}={counts.tolist()}",
        )


def power_shares(class_counts: Sequence[int], q: float) -> np.ndarray:
    """Class sampling probabilities p_c proportional to n_c^q (Kang et al., ICLR 2020).

    q = 1 is instance-balanced sampling (the natural distribution), q = 1/2 square-root sampling, q = 0
    class-balanced sampling (uniform over classes).

    Raises:
      UserInputError: q outside [0, 1], or a class with no examples.
    """
    check(
        isinstance(q, (int, float, np.integer, np.floating)) and not isinstance(q, bool) and 0 <= q <= 1,
        f"q must be in [0, 1]. Received: q={q!r}",
        argument="q",
    )
    n = _sampled_counts(class_counts)
    return n**q / np.sum(n**q)


def progressive_shares(class_counts: Sequence[int], step, total_steps: int) -> np.ndarray:
    """Progressive-balancing probabilities (Kang et al. 2020): p_c(t) = (1 - t/T) n_c / N + (t/T) / K.

    Instance-balanced at step 0, class-balanced from step T on (t/T is capped at 1).

    Args:
      class_counts: n_c, shape (K,), each >= 1.
      step: global step t (a number, or an array of steps).
      total_steps: T >= 1.

    Returns:
      (K,) probabilities, or (S, K) for S steps.

    Raises:
      UserInputError: total_steps < 1, or a class with no examples.
    """
    _check_schedule_steps(total_steps, "total_steps")
    n = _sampled_counts(class_counts)
    s = np.minimum(np.asarray(step, np.float64) / total_steps, 1.0)[..., None]
    return (1.0 - s) * n / n.sum() + s / len(n)


def _sampled_counts(class_counts) -> np.ndarray:
    n = np.asarray(class_counts, dtype=np.float64)
    empty = np.flatnonzero(n < 1)
    if len(empty):
        raise UserInputError(
            f"class_counts must be >= 1 for every class sampled by class; class {int(empty[0])} has "
            f"{n[empty[0]]:g}. Received: class_counts={np.asarray(class_counts).tolist()}",
            argument="class_counts",
        )
    return n


def _check_schedule_steps(steps, argument: str) -> None:
    check(
        isinstance(steps, (int, np.integer)) and not isinstance(steps, bool) and steps >= 1,
        f"{argument} must be an integer >= 1. Received: {argument}={steps!r}",
        argument=argument,
    )


def sampling_schedule(
    shares: Sequence[float], final_shares: Sequence[float] | None, schedule_steps: int, *, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """The start and end probabilities of `class_sampled`, validated and normalised; end = start without a schedule.

    Args:
      shares: start probabilities, at least `num_classes` entries.
      final_shares: end probabilities of the same length, or None.
      schedule_steps: >= 1 when `final_shares` is given.
      num_classes: classes the data holds.

    Raises:
      UserInputError: negative, non-finite or all-zero shares, too few entries, lengths that differ, or a
        schedule of fewer than 1 step.
    """
    p = _probabilities(shares, "shares", num_classes)
    if final_shares is None:
        return p, p
    _check_schedule_steps(schedule_steps, "schedule_steps")
    p_end = _probabilities(final_shares, "final_shares", num_classes)
    check(
        len(p_end) == len(p),
        f"final_shares has {len(p_end)} entries but shares has {len(p)}. Received: final_shares={p_end.tolist()}",
        argument="final_shares",
    )
    return p, p_end


def _probabilities(shares, argument: str, num_classes: int) -> np.ndarray:
    p = np.asarray(shares, dtype=np.float64)
    check(
        p.ndim == 1 and len(p) >= num_classes and np.isfinite(p).all() and (p >= 0).all() and p.sum() > 0,
        f"{argument} must be non-negative class probabilities, one per class ({num_classes} in the labels). "
        f"Received: {argument}={p.tolist()}",
        argument=argument,
    )
    return p / p.sum()


def counts_per_batch(
    batch_size: int, target_distribution: Sequence[float], class_counts_per_batch: np.ndarray | None = None
) -> np.ndarray:
    """The (R, K) class counts of R consecutive stratified batches: `class_counts_per_batch` or one row of
    `stratified_counts(batch_size, target_distribution)`."""
    if class_counts_per_batch is None:
        return stratified_counts(batch_size, target_distribution)[None, :]
    per_batch = np.atleast_2d(np.asarray(class_counts_per_batch, dtype=np.int64))
    check(
        (per_batch.sum(axis=1) == batch_size).all() and (per_batch >= 0).all(),
        f"class_counts_per_batch rows must be non-negative and sum to batch_size={batch_size}. "
        f"Received: class_counts_per_batch={per_batch.tolist()}",
    )
    return per_batch


def resolve_target(target_distribution: Sequence[float] | None, num_classes: int) -> np.ndarray:
    """The target shares as an array; None or empty means uniform over `num_classes`."""
    if target_distribution is None or len(target_distribution) == 0:
        return balanced(num_classes)
    t = np.asarray(target_distribution, dtype=np.float64)
    check(
        len(t) >= num_classes,
        f"target_distribution has {len(t)} shares but the labels have {num_classes} classes. "
        f"Received: target_distribution={t.tolist()}",
    )
    return t
