"""Train / validation / test splits held in memory, and how every loader subsamples and splits its examples.

`Data` holds the three `Split`s of a dataset; `Layout` is what every loader shares: subsampling to a long-tail
profile (`imbalance_ratio`, `class_profile`), balanced evaluation splits (`balanced_evaluation`), the split
shares and the seed. `layout_indices` subsamples and splits stratified (or forward in time); `given_split_indices`
completes splits a caller gave.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from imbal_keras.data import longtail
from imbal_keras.data.dense_shares import checked_multilabel
from imbal_keras.errors import check

if TYPE_CHECKING:
    from imbal_keras.data.tabular import Feature

__all__ = [
    "SPLITS",
    "Data",
    "Layout",
    "Split",
    "array_data",
    "given_split_indices",
    "iterative_stratification",
    "layout_indices",
    "layout_of",
    "standardised",
    "stratified_split",
]

SPLITS = ("train", "validation", "test")


@dataclasses.dataclass(frozen=True)
class Split:
    """Features `x` (N, ...) and integer targets `y`: labels (N,), masks (N, H, W), tags (N, T) or multi-label
    (N, L) (see `Data.kind`)."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    def class_counts(self, num_classes: int, *, kind: str = "") -> np.ndarray:
        """Examples per class, shape (K,); for dense targets pixels (tokens) per class, for `kind="multilabel"`
        positives per label (a multi-label (N, L) target cannot be told from a tag sequence by its shape)."""
        if kind == "multilabel":
            return np.asarray(self.y).sum(axis=0).astype(np.int64)
        return np.bincount(np.asarray(self.y).reshape(-1), minlength=num_classes)[:num_classes]


@dataclasses.dataclass(frozen=True)
class Data:
    """A dataset ready for training.

    Attributes:
      train, validation, test: the splits.
      num_classes: K.
      class_names: a readable name per class id.
      kind: `tabular` (x is (N, D); the built-in model is an MLP), `image` (x is (N, H, W, C); a CNN),
        `segmentation` (x (N, H, W, C), y (N, H, W) masks), `sequence` (x (N, T), y (N, T) token labels) or
        `multilabel` (y (N, L) of 0/1).
      name: short name for logs.
      features: tables only: what each column of x holds (see `Feature`); empty for other data.
      dropped: rows of each class that no split holds: what an imposed `imbalance_ratio` (or balanced
        evaluation) left out; empty when the loader kept every row.
      ignore_label: masks and label sequences only: a target value that is no class (a border label such as
        255), above the class ids, so `Split.class_counts` leaves it out; None: every value is a class.
    """

    train: Split
    validation: Split
    test: Split
    num_classes: int
    class_names: tuple[str, ...]
    kind: str
    name: str
    features: tuple[Feature, ...] = ()
    dropped: tuple[int, ...] = ()
    ignore_label: int | None = None

    def splits(self) -> dict[str, Split]:
        return {"train": self.train, "validation": self.validation, "test": self.test}

    def describe(self) -> str:
        """One line: examples and class counts per split."""
        parts = [
            f"{name} {len(s)} ({'/'.join(str(c) for c in s.class_counts(self.num_classes, kind=self.kind))})"
            for name, s in self.splits().items()
        ]
        line = f"{self.name}: " + ", ".join(parts) + f" [class counts {'/'.join(self.class_names)}]"
        if any(self.dropped):
            line += f"; the imposed class ratio dropped {'/'.join(map(str, self.dropped))} rows"
        return line


@dataclasses.dataclass(frozen=True)
class Layout:
    """How examples are subsampled and split: the settings every loader shares (as keyword arguments).

    Attributes:
      imbalance_ratio, class_profile: subsample to a long-tail profile (`longtail.profile_shares`); 0 keeps the
        data's own ratio.
      balanced_evaluation: validation and test hold equal class counts, only training follows the profile.
      validation_fraction, test_fraction: split shares.
      seed: seeds the subsampling and the split.
    """

    imbalance_ratio: float = 0.0
    class_profile: str = "exponential"
    balanced_evaluation: bool = False
    validation_fraction: float = 0.2
    test_fraction: float = 0.2
    seed: int = 0


def layout_of(options: Mapping[str, Any], *, imbalance_ratio: float = 0.0) -> Layout:
    """The `Layout` a loader's keyword arguments give; `imbalance_ratio` is the loader's default for it.

    Raises:
      TypeError: a keyword that is not a `Layout` field.
    """
    return Layout(**{"imbalance_ratio": imbalance_ratio, **options})


def standardised(data: Data) -> Data:
    """Tabular features standardised with training-split statistics."""
    mean = data.train.x.mean(axis=0)
    std = data.train.x.std(axis=0)
    std[std == 0] = 1.0
    splits = {k: Split(((s.x - mean) / std).astype(np.float32), s.y) for k, s in data.splits().items()}
    return dataclasses.replace(data, **splits)


def layout_indices(
    y: np.ndarray,
    num_classes: int,
    class_names: tuple[str, ...],
    name: str,
    layout: Layout,
    *,
    times: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Indices of the train / validation / test examples of `y`, subsampled to the layout's profile.

    Without `balanced_evaluation`, the whole data is subsampled to the profile first, so every split keeps its
    class ratio. With it, the data is split first, the training split subsampled to the profile and validation and
    test to equal class counts.
    """
    keep = np.arange(len(y))
    if not layout.balanced_evaluation:
        keep = _subsample_to_ratio(y, num_classes, layout.imbalance_ratio, layout.class_profile, layout.seed)
    if times is None:
        index = stratified_split(y[keep], num_classes, class_names, name, layout)
    else:
        index = _time_split(y[keep], times[keep], num_classes, class_names, layout)
    index = {split: keep[i] for split, i in index.items()}
    if layout.balanced_evaluation:
        index = _long_tail_evaluation(y, index, num_classes, layout)
    return index


def given_split_indices(y, positions, num_classes, class_names, name, layout: Layout) -> dict[str, np.ndarray]:
    """Indices of splits given by the caller: validation held out of train if absent, then subsampled."""
    index = dict(positions)
    if "validation" not in index:
        train = index["train"]
        inner = dataclasses.replace(layout, validation_fraction=layout.validation_fraction, test_fraction=1e-9)
        held = stratified_split(y[train], num_classes, class_names, f"{name} (train)", inner, hold_out=("validation",))
        index = {"train": train[held["train"]], "validation": train[held["validation"]], "test": index["test"]}
    if layout.balanced_evaluation:
        return _long_tail_evaluation(y, index, num_classes, layout)
    return {
        split: i[_subsample_to_ratio(y[i], num_classes, layout.imbalance_ratio, layout.class_profile, layout.seed)]
        for split, i in index.items()
    }


def _subsample_to_ratio(y: np.ndarray, num_classes: int, imbalance_ratio: float, profile: str, seed: int) -> np.ndarray:
    """Indices of a class-wise random subset whose counts follow `longtail.profile_shares` (all, if the ratio is 0).

    Keeps as many examples as possible: the class with the fewest examples relative to its share is kept whole.

    Raises:
      UserInputError: the data cannot reach the ratio (a class would keep no example).
    """
    if imbalance_ratio <= 0:
        return np.arange(len(y))
    counts = np.bincount(y, minlength=num_classes)
    shares = longtail.profile_shares(num_classes, imbalance_ratio, profile)
    scale = (counts / shares).min()
    wanted = np.minimum(counts, np.floor(scale * shares + 1e-9).astype(np.int64))
    check(
        wanted.min() >= 1,
        f"imbalance_ratio={imbalance_ratio:g} is beyond what the data can reach: class {int(np.argmin(wanted))} would "
        f"keep no example (class counts {counts.tolist()}). Received: imbalance_ratio={imbalance_ratio:g}",
        argument="imbalance_ratio",
    )
    rng = np.random.default_rng([seed, 1])
    keep = [rng.permutation(np.flatnonzero(y == c))[: wanted[c]] for c in range(num_classes)]
    return np.sort(np.concatenate(keep))


def _long_tail_evaluation(y, index, num_classes: int, layout: Layout) -> dict[str, np.ndarray]:
    """The long-tail benchmarks' layout: training subsampled to the profile, validation and test balanced."""
    result = {}
    for split, i in index.items():
        available = np.bincount(y[i], minlength=num_classes)
        if split == "train":
            if layout.imbalance_ratio <= 0:
                result[split] = i
                continue
            counts = _largest_profile(available, layout.imbalance_ratio, layout.class_profile)
        else:
            counts = np.full(num_classes, available.min())
        check(
            counts.min() >= 1,
            f"balanced_evaluation leaves the {split} split with no example of class {int(np.argmin(available))}; "
            "raise the split's fraction",
            argument="balanced_evaluation",
        )
        result[split] = i[longtail.subsample_to_profile(y[i], counts, seed=layout.seed)]
    return result


def _largest_profile(available: np.ndarray, imbalance_ratio: float, profile: str) -> np.ndarray:
    """The largest `longtail.profile_counts` that the class counts `available` can supply.

    Raises:
      UserInputError: the profile's smallest class would have no example (n_max / imbalance_ratio < 1).
    """
    shares = longtail.profile_shares(len(available), imbalance_ratio, profile)
    relative = shares / shares[0]
    n_max = int(np.min(np.ceil((available + 1) / relative) - 1))
    while n_max > 1:
        counts = longtail.profile_counts(profile, len(available), float(imbalance_ratio), n_max)
        if (counts <= available).all():
            return counts
        n_max -= 1
    return longtail.profile_counts(profile, len(available), float(imbalance_ratio), max(n_max, 1))


def _stratified_counts(n: int, layout: Layout) -> tuple[int, int]:
    """(test, validation) examples of a class with n examples: at least one each, so evaluation sees every class."""
    return max(1, int(round(n * layout.test_fraction))), max(1, int(round(n * layout.validation_fraction)))


def stratified_split(
    y: np.ndarray,
    num_classes: int,
    class_names: tuple[str, ...],
    name: str,
    layout: Layout,
    *,
    split_counts: Mapping[str, np.ndarray] | None = None,
    hold_out: Sequence[str] = ("test", "validation"),
) -> dict[str, np.ndarray]:
    """Stratified split (each class split in the same proportions, or in the given `split_counts`).

    Returns:
      Indices into `y` per split (`train` and the `hold_out` splits), each in a seeded random order.

    Raises:
      UserInputError: a class too small to give every split an example.
    """
    rng = np.random.default_rng([layout.seed, 2])
    # Train, validation, test: the order the split's random permutations are drawn in.
    parts: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS if s == "train" or s in hold_out}
    for c in range(num_classes):
        idx = rng.permutation(np.flatnonzero(y == c))
        if split_counts is not None:
            sizes = [int(split_counts[s][c]) for s in hold_out]
        else:
            test, validation = _stratified_counts(len(idx), layout)
            sizes = [{"test": test, "validation": validation}[s] for s in hold_out]
        check(
            len(idx) - sum(sizes) >= 1,
            f"{name}: class {class_names[c]} has {len(idx)} examples, too few to split",
            argument="dataset",
        )
        start = 0
        for split, size in zip(hold_out, sizes, strict=True):
            parts[split].append(idx[start : start + size])
            start += size
        parts["train"].append(idx[start:])
    return {k: rng.permutation(np.concatenate(v)) for k, v in parts.items()}


def _time_split(
    y: np.ndarray, times: np.ndarray, num_classes: int, class_names: tuple[str, ...], layout: Layout
) -> dict[str, np.ndarray]:
    """Forward split: the oldest share trains, the next validates, the newest tests; equal times stay together.

    Raises:
      UserInputError: a split without an example of some class.
    """
    order = np.argsort(times, kind="stable")
    n = len(order)
    sorted_times = times[order]
    bounds = []
    for share in (layout.validation_fraction + layout.test_fraction, layout.test_fraction):
        b = n - int(round(n * share))
        while 0 < b < n and sorted_times[b] == sorted_times[b - 1]:
            b += 1  # rows with the same time stay in the earlier split
        bounds.append(b)
    index = {"train": order[: bounds[0]], "validation": order[bounds[0] : bounds[1]], "test": order[bounds[1] :]}
    for split, i in index.items():
        counts = np.bincount(y[i], minlength=num_classes)
        check(
            counts.min() >= 1,
            f"time_column: the forward split leaves the {split} split ({len(i)} rows) without an example of class "
            f"{class_names[int(np.argmin(counts))]}; change validation_fraction / test_fraction or split at random",
            argument="time_column",
        )
    return index


def array_data(
    x: np.ndarray,
    y: np.ndarray,
    index: Mapping[str, np.ndarray],
    *,
    num_classes: int,
    class_names: tuple[str, ...],
    name: str,
) -> Data:
    splits = {k: Split(x[v], y[v].astype(np.int32)) for k, v in index.items()}
    kind = "image" if x.ndim == 4 else "tabular"
    used = sum(np.bincount(y[v], minlength=num_classes)[:num_classes] for v in index.values())
    dropped = np.bincount(y, minlength=num_classes)[:num_classes] - used
    return Data(
        **splits,
        num_classes=num_classes,
        class_names=class_names,
        kind=kind,
        name=name,
        dropped=tuple(int(d) for d in dropped),
    )


def iterative_stratification(labels: np.ndarray, fractions: Sequence[float], *, seed: int = 0) -> list[np.ndarray]:
    """Splits multi-label examples so every label's positives are shared as `fractions` (Sechidis et al. 2011).

    Iterative stratification: the label with the fewest positives left is dealt first, each of its examples going
    to the subset that still wants the most of that label (ties: the subset that wants the most examples, then
    at random); every label of the example counts against that subset's demand. Examples without labels fill
    the subsets that want the most examples. Rare labels are placed while every subset can still take them, which
    a split stratified on label combinations cannot do once combinations are unique.

    Args:
      labels: (N, L) of 0/1.
      fractions: share of the examples for each subset, summing to 1.
      seed: breaks ties and orders the examples.

    Returns:
      One array of example indices per subset, each sorted.

    Raises:
      UserInputError: labels that are not (N, L) 0/1, or fractions that are not non-negative and summing to 1.
    """
    y = checked_multilabel(labels).astype(bool)
    r = np.asarray(fractions, dtype=np.float64)
    check(
        r.ndim == 1 and (r >= 0).all() and abs(r.sum() - 1) < 1e-9,
        f"fractions must be non-negative and sum to 1. Received: fractions={np.atleast_1d(r).tolist()}",
        argument="fractions",
    )
    rng = np.random.default_rng([seed, 3])
    wanted = r * len(y)  # examples each subset still wants
    wanted_label = r[:, None] * y.sum(axis=0)[None, :]  # (subsets, L) positives each subset still wants
    subset = np.full(len(y), -1)
    left = y.copy()
    while left.any():
        remaining = left.sum(axis=0)
        rarest = np.flatnonzero(remaining == remaining[remaining > 0].min())
        label = rng.choice(rarest)
        for i in rng.permutation(np.flatnonzero(left[:, label])):
            j = _neediest(wanted_label[:, label], wanted, rng)
            subset[i] = j
            wanted[j] -= 1
            wanted_label[j] -= y[i]
            left[i] = False
    for i in rng.permutation(np.flatnonzero(subset < 0)):
        j = _neediest(wanted, wanted, rng)
        subset[i] = j
        wanted[j] -= 1
    return [np.flatnonzero(subset == j) for j in range(len(r))]


def _neediest(demand: np.ndarray, wanted: np.ndarray, rng: np.random.Generator) -> int:
    """The subset with the largest demand; ties to the one wanting the most examples, then at random."""
    best = np.flatnonzero(demand == demand.max())
    best = best[wanted[best] == wanted[best].max()]
    return int(rng.choice(best))
