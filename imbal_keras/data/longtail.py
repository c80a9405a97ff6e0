"""Long-tailed class profiles as in the long-tail benchmarks (CIFAR-10-LT, CIFAR-100-LT), and head/medium/tail groups.

- `profile_shares`: the class shares of a profile, class 0 `imbalance_ratio` times as common as class K-1 (what
  the loaders subsample every dataset to).
- `profile_counts`: the training examples per class of an `exponential` or `step` profile with imbalance ratio
  rho = n_max / n_min, computed as in the CIFAR-LT code of Cao et al. (2019) (counts truncated to integers):
  CIFAR-10-LT at rho = 100 is `profile_counts("exponential", 10, 100, 5000)` = [5000, 2997, ..., 83, 50].
- `subsample_to_profile`: which examples of a (balanced) training split to keep to reach those counts, a seeded
  random subset of each class. The benchmarks subsample the training split only and keep the test split balanced,
  so that every class counts equally in the test accuracy; do the same.
- `class_groups`: each class's group, `head`, `medium` or `tail`, from the training counts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from imbal_keras.errors import UserInputError, check, is_integer

CLASS_PROFILES = ("exponential", "step")
GROUPS = ("head", "medium", "tail")
GROUP_RULES = ("thirds", "shots")
# The many-/medium-/few-shot thresholds of Liu et al. (2019), used on ImageNet-LT, Places-LT and CIFAR-100-LT:
# many-shot > 100 training examples, few-shot < 20, medium-shot in between.
_MANY_SHOT = 100
_FEW_SHOT = 20

__all__ = [
    "CLASS_PROFILES",
    "GROUPS",
    "GROUP_RULES",
    "class_groups",
    "profile_counts",
    "profile_shares",
    "subsample_to_profile",
]


def profile_shares(num_classes: int, imbalance_ratio: float, profile: str = "exponential") -> np.ndarray:
    """Class shares of a long-tail profile: class 0 is `imbalance_ratio` times as common as class K-1.

    `exponential`: proportional to r^(-c/(K-1)); `step`: the first floor(K/2) classes weigh 1, the others 1/r.
    For K=2 both are [r, 1] / (r + 1), i.e. 1:r.
    """
    c = np.arange(num_classes, dtype=np.float64)
    if profile == "step":
        shares = np.where(c < num_classes // 2, 1.0, 1.0 / float(imbalance_ratio))
    else:
        shares = float(imbalance_ratio) ** (-c / (num_classes - 1))
    return shares / shares.sum()


def profile_counts(profile: str, num_classes: int, imbalance_ratio: float, n_max: int) -> np.ndarray:
    """Training examples per class of a long-tail profile, largest first.

    - `exponential`: n_c = int(n_max * rho^(-c / (K - 1))), c = 0..K-1: from n_max down to n_max / rho.
    - `step`: the first floor(K / 2) classes have n_max, the others int(n_max / rho).

    Args:
      profile: `exponential` or `step`.
      num_classes: K >= 2.
      imbalance_ratio: rho = n_max / n_min >= 1.
      n_max: examples of the largest class, >= 1.

    Returns:
      int64 array of shape (K,).

    Raises:
      UserInputError: an unknown profile, K < 2, rho < 1, n_max < 1, or a profile whose smallest class would have
        no example (n_max / rho < 1).
    """
    check(
        profile in CLASS_PROFILES,
        f"profile must be one of {', '.join(CLASS_PROFILES)}. Received: profile={profile!r}",
        argument="profile",
    )
    check(
        is_integer(num_classes) and num_classes >= 2,
        f"num_classes must be an integer >= 2. Received: num_classes={num_classes!r}",
        argument="num_classes",
    )
    check(
        isinstance(imbalance_ratio, (int, float, np.integer, np.floating))
        and not isinstance(imbalance_ratio, bool)
        and np.isfinite(imbalance_ratio)
        and imbalance_ratio >= 1,
        f"imbalance_ratio must be >= 1. Received: imbalance_ratio={imbalance_ratio!r}",
        argument="imbalance_ratio",
    )
    check(
        is_integer(n_max) and n_max >= 1,
        f"n_max must be an integer >= 1. Received: n_max={n_max!r}",
        argument="n_max",
    )
    c = np.arange(num_classes)
    if profile == "exponential":
        counts = [int(n_max * imbalance_ratio ** (-i / (num_classes - 1))) for i in c]
    else:
        counts = [n_max if i < num_classes // 2 else int(n_max / imbalance_ratio) for i in c]
    counts = np.asarray(counts, np.int64)
    check(
        counts.min() >= 1,
        f"imbalance_ratio={imbalance_ratio!r} with n_max={n_max} leaves class {int(np.argmin(counts))} with no "
        f"example (n_max / imbalance_ratio < 1). Received: imbalance_ratio={imbalance_ratio!r}",
        argument="imbalance_ratio",
    )
    return counts


def subsample_to_profile(labels, counts: Sequence[int], *, seed: int) -> np.ndarray:
    """Indices of a subset of `labels` with exactly `counts[c]` examples of class c.

    Each class keeps a random subset (without replacement) of its examples, drawn by `np.random.default_rng` seeded
    with `(seed, c)`, so a class's subset does not depend on the others' counts.

    Args:
      labels: integer class ids 0..K-1, shape (N,).
      counts: examples to keep per class, shape (K,), each >= 1.
      seed: seeds the subsets.

    Returns:
      int64 indices into `labels`, sorted (the kept examples in their original order).

    Raises:
      UserInputError: labels outside 0..K-1, a count < 1, or a class with fewer examples than its count (naming the
        class, the count needed and the examples available).
    """
    labels = np.asarray(labels)
    counts = np.asarray(counts)
    num_classes = len(counts)
    check(
        counts.ndim == 1 and num_classes >= 2 and np.issubdtype(counts.dtype, np.integer) and (counts >= 1).all(),
        f"counts must be integers >= 1, one per class (K >= 2). Received: counts={counts.tolist()}",
        argument="counts",
    )
    _check_labels(labels, num_classes)
    available = np.bincount(labels, minlength=num_classes)
    short = np.flatnonzero(available < counts)
    if len(short):
        c = int(short[0])
        raise UserInputError(
            f"counts asks for {int(counts[c])} examples of class {c}, which has {int(available[c])} "
            f"(the data cannot reach the profile). Received: counts={counts.tolist()}",
            argument="counts",
        )
    kept = [
        np.random.default_rng([seed, c]).choice(np.flatnonzero(labels == c), int(counts[c]), replace=False)
        for c in range(num_classes)
    ]
    return np.sort(np.concatenate(kept)).astype(np.int64)


def class_groups(train_counts: Sequence[int], *, rule: str = "thirds") -> tuple[str, ...]:
    """Each class's group, `head`, `medium` or `tail`, from its training examples.

    - `thirds` (default): classes ranked by training count (ties: lower class id first); the round(K / 3) largest
      are head, the round(K / 3) smallest tail, the rest medium. Every group is non-empty for K >= 3 (K = 2: one head,
      one tail) whatever the scale of the counts, so it suits small synthetic data.
    - `shots`: the many-/medium-/few-shot split of Liu et al. (2019): head > 100 training examples, tail < 20,
      medium 20 to 100. It compares with the ImageNet-LT / CIFAR-100-LT literature, but a group is empty when no
      class falls in its range (e.g. every class > 100).

    Args:
      train_counts: training examples per class, shape (K,), each >= 1.
      rule: `thirds` or `shots`.

    Returns:
      K group names, one per class, in class order.

    Raises:
      UserInputError: an unknown rule, K < 2, or a class with no training examples.
    """
    check(
        rule in GROUP_RULES,
        f"rule must be one of {', '.join(GROUP_RULES)}. Received: rule={rule!r}",
        argument="rule",
    )
    counts = np.asarray(train_counts)
    check(
        counts.ndim == 1 and len(counts) >= 2,
        f"train_counts must have one count per class, K >= 2. Received: train_counts={counts.tolist()}",
        argument="train_counts",
    )
    empty = np.flatnonzero(counts < 1)
    if len(empty):
        raise UserInputError(
            f"train_counts must be >= 1 for every class; class {int(empty[0])} has {counts[empty[0]]}. "
            f"Received: train_counts={counts.tolist()}",
            argument="train_counts",
        )
    if rule == "shots":
        return tuple("head" if n > _MANY_SHOT else "tail" if n < _FEW_SHOT else "medium" for n in counts)
    k = len(counts)
    rank = np.empty(k, np.int64)
    rank[np.argsort(-counts, kind="stable")] = np.arange(k)
    third = int(np.floor(k / 3 + 0.5))  # round half up: K = 2 gives one head and one tail
    return tuple("head" if r < third else "tail" if r >= k - third else "medium" for r in rank)


def _check_labels(labels: np.ndarray, num_classes: int) -> None:
    check(
        labels.ndim == 1 and np.issubdtype(labels.dtype, np.integer),
        f"labels must be a 1-D array of integer class ids. Received: labels of shape {labels.shape} and dtype "
        f"{labels.dtype}",
        argument="labels",
    )
    bad = labels[(labels < 0) | (labels >= num_classes)]
    if len(bad):
        raise UserInputError(
            f"labels must be class ids 0..{num_classes - 1}. Received: a label {int(bad[0])}", argument="labels"
        )
