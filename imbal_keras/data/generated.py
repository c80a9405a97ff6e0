"""Synthetic data: Gaussian clusters at an exact class ratio, deterministic by seed, refused before it is
allocated when it would not fit in memory.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from imbal_keras.data import longtail
from imbal_keras.data.shares import apportion
from imbal_keras.data.splits import Data, Layout, array_data, layout_of, stratified_split
from imbal_keras.errors import check

__all__ = ["check_synthetic_memory", "synthetic"]


def synthetic(
    *,
    num_examples: int = 50_000,
    num_features: int = 20,
    num_classes: int = 2,
    class_separation: float = 1.0,
    label_noise: float = 0.0,
    **layout: Any,
) -> Data:
    """Gaussian clusters with a controllable imbalance, deterministic by seed.

    Each class is a mixture of two unit-variance Gaussian clusters whose centres are drawn with standard
    deviation `class_separation` in the first max(2, D // 4) dimensions (the rest are pure noise), so the
    classes overlap and a hidden layer helps. Class sizes follow `longtail.profile_shares(K, r, class_profile)`
    exactly (1:r for K=2), apportioned over all `num_examples`; with `balanced_evaluation` only the training share
    of the examples follows them and validation and test hold equal class counts.
    `label_noise` is the share of each class whose features are drawn from another class's clusters: labels
    become wrong with respect to the features while class counts stay exact.

    Args:
      num_examples, num_features, num_classes: N, D and K.
      class_separation: standard deviation of the cluster centres.
      label_noise: share of each class drawn from another class's clusters.
      **layout: the `Layout` fields (`imbalance_ratio`, 99 by default, `class_profile`, `balanced_evaluation`,
        `validation_fraction`, `test_fraction`, `seed`).

    Raises:
      UserInputError: too few examples to give every class at least one example in every split.
    """
    settings = layout_of(layout, imbalance_ratio=99.0)
    check_synthetic_memory(num_examples, num_features)
    rng = np.random.default_rng(settings.seed)
    shares = longtail.profile_shares(num_classes, settings.imbalance_ratio, settings.class_profile)
    counts, split_counts = _synthetic_counts(num_examples, shares, settings)
    y = np.repeat(np.arange(num_classes), counts)
    x = _gaussian_clusters(rng, y, num_classes, num_features, class_separation, label_noise)
    y = y.astype(np.int32)
    names = ("negative", "positive") if num_classes == 2 else tuple(f"class_{c}" for c in range(num_classes))
    name = f"synthetic 1:{settings.imbalance_ratio:g}" + (f" {settings.class_profile}" if num_classes > 2 else "")
    index = stratified_split(y, num_classes, names, name, settings, split_counts=split_counts)
    return array_data(x, y, index, num_classes=num_classes, class_names=names, name=name)


# Bytes per generated value: the float64 draws, their float32 copy, and per example the labels and cluster ids.
_BYTES_PER_FEATURE = 12
_BYTES_PER_EXAMPLE = 40


def check_synthetic_memory(num_examples: int, num_features: int, available: int | None = None) -> None:
    """Refuses synthetic data that would not fit in memory, before anything is allocated.

    Args:
      num_examples, num_features: N and D.
      available: bytes of memory available; None reads the machine's (`MemAvailable`, else physical memory).

    Raises:
      UserInputError: the data's estimated size exceeds the memory available (the message gives both).
    """
    needed = num_examples * (num_features * _BYTES_PER_FEATURE + _BYTES_PER_EXAMPLE)
    available = _available_memory() if available is None else available
    check(
        available is None or needed <= available,
        f"num_examples={num_examples} with num_features={num_features} needs about {needed / 2**30:.1f} GiB of "
        f"memory to generate; {(available or 0) / 2**30:.1f} GiB are available: lower num_examples",
        argument="num_examples",
    )


def _available_memory() -> int | None:
    """Bytes of memory available to this process (Linux `MemAvailable`, else physical memory), or None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _synthetic_counts(num_examples: int, shares: np.ndarray, settings: Layout):
    """Examples per class (K,), and per split when `balanced_evaluation` (else None).

    Raises:
      UserInputError: a split would hold no example of the rarest class.
    """
    split_counts = None
    if settings.balanced_evaluation:
        held_out = {
            "test": int(round(num_examples * settings.test_fraction)),
            "validation": int(round(num_examples * settings.validation_fraction)),
        }
        uniform = np.full(len(shares), 1.0 / len(shares))
        split_counts = {split: apportion(n, uniform) for split, n in held_out.items()}
        split_counts["train"] = apportion(num_examples - sum(held_out.values()), shares)
        counts = sum(split_counts.values())
        rarest = min(int(c.min()) for c in split_counts.values())
    else:
        counts = apportion(num_examples, shares)
        rarest = int(counts.min()) - 2
    check(
        rarest >= 1,
        f"num_examples={num_examples} at imbalance_ratio={settings.imbalance_ratio:g} leaves a split without an "
        f"example of the rarest class (it has {int(counts.min())} examples in all); raise num_examples",
        argument="num_examples",
    )
    return counts, split_counts


def _gaussian_clusters(rng, y: np.ndarray, num_classes: int, num_features: int, separation: float, noise: float):
    """Features (N, D) float32: two Gaussian clusters per class, a share `noise` drawn from another class's."""
    informative = min(num_features, max(2, num_features // 4))
    centres = np.zeros((num_classes, 2, num_features))
    centres[:, :, :informative] = rng.normal(scale=separation, size=(num_classes, 2, informative))
    source = y.copy()
    noisy = rng.random(len(y)) < noise
    shift = rng.integers(1, num_classes, size=len(y))
    source[noisy] = (y[noisy] + shift[noisy]) % num_classes
    cluster = rng.integers(0, 2, size=len(y))
    return (centres[source, cluster] + rng.normal(size=(len(y), num_features))).astype(np.float32)
