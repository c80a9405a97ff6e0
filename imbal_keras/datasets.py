"""Datasets: `synthetic` (default, no download), `csv:PATH` (pandas) and `tfds:NAME` (one-vs-rest).

Each loader returns a `Data` with train / validation / test `Split`s held in memory. Validation and test keep
the natural (imbalanced) class ratio; only training is ever rebalanced, by a strategy.

Class ids: 0 is the majority class; for binary data 1 is the positive (minority) class.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from imbal_keras.config import DataConfig
from imbal_keras.errors import UserInputError, check
from imbal_keras.pipelines import apportion


@dataclasses.dataclass(frozen=True)
class Split:
    """Features `x` (N, ...) float32 and integer labels `y` (N,)."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    def class_counts(self, num_classes: int) -> np.ndarray:
        return np.bincount(self.y, minlength=num_classes)[:num_classes]


@dataclasses.dataclass(frozen=True)
class Data:
    """A dataset ready for training.

    Attributes:
      train, validation, test: the splits.
      num_classes: K.
      class_names: a readable name per class id.
      kind: `tabular` (gets an MLP) or `image` (gets a small CNN).
      name: short name for logs.
    """

    train: Split
    validation: Split
    test: Split
    num_classes: int
    class_names: tuple[str, ...]
    kind: str
    name: str

    def splits(self) -> dict[str, Split]:
        return {"train": self.train, "validation": self.validation, "test": self.test}

    def describe(self) -> str:
        """One line: examples and class counts per split."""
        parts = [
            f"{name} {len(s)} ({'/'.join(str(c) for c in s.class_counts(self.num_classes))})"
            for name, s in self.splits().items()
        ]
        return f"{self.name}: " + ", ".join(parts) + f" [class counts {'/'.join(self.class_names)}]"


def load(config: DataConfig, *, seed: int = 0) -> Data:
    """Loads the dataset that `config.dataset` names.

    Args:
      config: the data part of an `ExperimentConfig`.
      seed: seeds generation (synthetic), subsampling and the split (the run's data seed).

    Raises:
      UserInputError: a missing or malformed file, an unknown dataset, or labels that do not fit.
    """
    kind = config.kind
    fractions = dict(validation_fraction=config.validation_fraction, test_fraction=config.test_fraction)
    if kind == "synthetic":
        return synthetic(
            num_examples=config.num_examples,
            num_features=config.num_features,
            num_classes=config.num_classes,
            imbalance_ratio=config.imbalance_ratio,
            class_separation=config.class_separation,
            label_noise=config.label_noise,
            seed=seed,
            **fractions,
        )
    if kind == "csv":
        return from_csv(
            config.argument,
            label_column=config.label_column,
            positive_label=config.positive_label or None,
            imbalance_ratio=config.imbalance_ratio,
            seed=seed,
            **fractions,
        )
    if kind == "tfds":
        return from_tfds(
            config.argument,
            positive_class=config.positive_class,
            imbalance_ratio=config.imbalance_ratio,
            data_dir=config.data_dir or None,
            seed=seed,
            **fractions,
        )
    raise UserInputError(
        f"dataset must be 'synthetic', 'csv:PATH' or 'tfds:NAME'. Received: dataset={config.dataset!r}",
        argument="dataset",
    )


def long_tail_shares(num_classes: int, imbalance_ratio: float) -> np.ndarray:
    """Class shares proportional to r^(-c/(K-1)): class 0 is r times as common as class K-1.

    For K=2 this is [r, 1] / (r + 1), i.e. 1:r.
    """
    c = np.arange(num_classes, dtype=np.float64)
    shares = float(imbalance_ratio) ** (-c / (num_classes - 1))
    return shares / shares.sum()


def synthetic(
    *,
    num_examples: int = 50_000,
    num_features: int = 20,
    num_classes: int = 2,
    imbalance_ratio: float = 99.0,
    class_separation: float = 1.0,
    label_noise: float = 0.0,
    validation_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> Data:
    """Gaussian clusters with a controllable imbalance, deterministic by seed.

    Each class is a mixture of two unit-variance Gaussian clusters whose centres are drawn with standard
    deviation `class_separation` in the first max(2, D // 4) dimensions (the rest are pure noise), so the
    classes overlap and a hidden layer helps. Class sizes follow `long_tail_shares` exactly (1:r for K=2).
    `label_noise` is the share of each class whose features are drawn from another class's clusters: labels
    become wrong with respect to the features while class counts stay exact.

    Raises:
      UserInputError: too few examples to give every class at least one example in every split.
    """
    rng = np.random.default_rng(seed)
    counts = apportion(num_examples, long_tail_shares(num_classes, imbalance_ratio))
    check(
        counts.min() >= 3,
        f"--num_examples={num_examples} at imbalance_ratio={imbalance_ratio:g} leaves {counts.min()} examples "
        "in the rarest class; it needs at least 3 (one per split)",
    )
    informative = min(num_features, max(2, num_features // 4))
    centres = np.zeros((num_classes, 2, num_features))
    centres[:, :, :informative] = rng.normal(scale=class_separation, size=(num_classes, 2, informative))
    y = np.repeat(np.arange(num_classes), counts)
    source = y.copy()
    noisy = rng.random(len(y)) < label_noise
    if num_classes > 1:
        shift = rng.integers(1, num_classes, size=len(y))
        source[noisy] = (y[noisy] + shift[noisy]) % num_classes
    cluster = rng.integers(0, 2, size=len(y))
    x = centres[source, cluster] + rng.normal(size=(len(y), num_features))
    names = ("negative", "positive") if num_classes == 2 else tuple(f"class_{c}" for c in range(num_classes))
    return _split(
        x.astype(np.float32),
        y.astype(np.int32),
        num_classes=num_classes,
        class_names=names,
        kind="tabular",
        name=f"synthetic 1:{imbalance_ratio:g}",
        validation_fraction=validation_fraction,
        test_fraction=test_fraction,
        seed=seed,
        standardize=False,
    )


def from_csv(
    path: str,
    *,
    label_column: str = "label",
    positive_label: str | None = None,
    imbalance_ratio: float = 0.0,
    validation_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> Data:
    """A CSV file with one label column and numeric feature columns.

    Args:
      path: the CSV file.
      label_column: the label column's name.
      positive_label: the label value (compared as text) that is the positive class; every other value is
        negative (one-vs-rest). None means the labels must already be the integers 0..K-1.
      imbalance_ratio: > 0 subsamples classes to reach `long_tail_shares(K, r)` (1:r for binary);
        0 keeps the file's own ratio.
      validation_fraction, test_fraction: stratified split shares.
      seed: seeds the split and the subsampling.

    Features are standardised with training-split statistics only.

    Raises:
      UserInputError: a missing, empty or malformed file, a missing label column, a single class, labels
        outside the expected set, or non-numeric / NaN features; the message names the column or value.
    """
    import pandas as pd

    where = f"--dataset=csv:{path}"
    check(os.path.isfile(path), f"{where}: no such file")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise UserInputError(f"{where}: cannot be read as CSV ({str(e).splitlines()[0]})") from None
    check(len(frame) > 0, f"{where}: the file has no data rows")
    check(
        label_column in frame.columns,
        f"--label_column={label_column!r} is not a column of {path}; columns: {list(frame.columns)}",
    )
    raw = frame[label_column]
    check(
        not raw.isna().any(),
        f"--label_column={label_column!r} has {int(raw.isna().sum())} empty labels",
    )
    if positive_label is not None:
        text = raw.astype(str).str.strip()
        check(
            (text == positive_label).any(),
            f"--positive_label={positive_label!r} does not occur in column {label_column!r}; "
            f"values: {sorted(text.unique())[:10]}",
        )
        y = (text == positive_label).to_numpy().astype(np.int32)
        names = ("rest", str(positive_label))
    else:
        numeric = pd.to_numeric(raw, errors="coerce")
        values = sorted(raw.astype(str).unique())
        integral = numeric.notna().all() and (numeric == numeric.round()).all() and (numeric >= 0).all()
        check(
            bool(integral) and set(numeric.astype(int)) == set(range(int(numeric.max()) + 1)),
            f"--label_column={label_column!r} holds {values[:10]}, expected the class ids 0..K-1 "
            "(or pass --positive_label to pick the positive class)",
        )
        y = numeric.to_numpy().astype(np.int32)
        names = tuple(str(c) for c in range(int(y.max()) + 1))
    num_classes = len(names)
    check(
        np.unique(y).size >= 2,
        f"--label_column={label_column!r} has a single class ({names[int(y[0])]}); need at least 2",
    )
    features = frame.drop(columns=[label_column])
    check(features.shape[1] > 0, f"{where}: no feature columns besides {label_column!r}")
    for column in features.columns:
        values = pd.to_numeric(features[column], errors="coerce")
        bad = (values.isna() & features[column].notna()).to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise UserInputError(
                f"{where}: feature column {column!r} is not numeric (row {row}: {features[column].iloc[row]!r})"
            )
        check(
            not values.isna().any(),
            f"{where}: feature column {column!r} has {int(values.isna().sum())} missing values (NaN)",
        )
        features[column] = values
    x = features.to_numpy(dtype=np.float32)
    keep = _subsample_to_ratio(y, num_classes, imbalance_ratio, seed)
    return _split(
        x[keep],
        y[keep],
        num_classes=num_classes,
        class_names=names,
        kind="tabular",
        name=os.path.basename(path),
        validation_fraction=validation_fraction,
        test_fraction=test_fraction,
        seed=seed,
        standardize=True,
    )


def from_tfds(
    name: str,
    *,
    positive_class: int = 0,
    imbalance_ratio: float = 99.0,
    data_dir: str | None = None,
    validation_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> Data:
    """A TFDS classification dataset as a one-vs-rest binary problem.

    Loads every split with `tfds.load(name, as_supervised=True)` (downloading as usual when the data is not in
    `data_dir`), relabels `positive_class` as 1 and the rest as 0, subsamples the positive class to reach 1:r
    (`imbalance_ratio`; 0 keeps the natural ratio) and re-splits stratified. Images are scaled to [0, 1].

    Raises:
      UserInputError: an unknown dataset name, a dataset without (input, label) pairs, or a `positive_class`
        absent from the data.
    """
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise UserInputError(
            f"--dataset=tfds:{name}: no TFDS dataset of that name (see tfds.list_builders())"
        ) from None
    check(
        builder.info.supervised_keys is not None,
        f"--dataset=tfds:{name}: the dataset has no (input, label) supervised keys",
    )
    split_names = list(builder.info.splits) or ["train"]
    xs, ys = [], []
    for split in split_names:
        # Batched reads rather than batch_size=-1: the size of a split need not be known up front.
        for x, y in tfds.as_numpy(tfds.load(name, split=split, data_dir=data_dir, as_supervised=True).batch(4096)):
            xs.append(np.asarray(x))
            ys.append(np.asarray(y).astype(np.int64).reshape(-1))
    x, raw = np.concatenate(xs), np.concatenate(ys)
    present = np.unique(raw)
    check(
        positive_class in present,
        f"--positive_class={positive_class} does not occur in tfds:{name}; classes present: {present.tolist()[:20]}",
    )
    y = (raw == positive_class).astype(np.int32)
    keep = _subsample_to_ratio(y, 2, imbalance_ratio, seed)
    image = x.ndim >= 3
    x = x[keep].astype(np.float32)
    if image:
        x = x / 255.0 if x.max() > 1 else x
        if x.ndim == 3:
            x = x[..., None]
    return _split(
        x,
        y[keep],
        num_classes=2,
        class_names=("rest", f"class_{positive_class}"),
        kind="image" if image else "tabular",
        name=f"{name} {positive_class}-vs-rest",
        validation_fraction=validation_fraction,
        test_fraction=test_fraction,
        seed=seed,
        standardize=not image,
    )


def _subsample_to_ratio(y: np.ndarray, num_classes: int, imbalance_ratio: float, seed: int) -> np.ndarray:
    """Indices of a class-wise random subset whose counts follow `long_tail_shares` (all, if ratio is 0).

    Keeps as many examples as possible: the class with the fewest examples relative to its share is kept whole.
    """
    if imbalance_ratio <= 0:
        return np.arange(len(y))
    counts = np.bincount(y, minlength=num_classes)
    shares = long_tail_shares(num_classes, imbalance_ratio)
    scale = (counts / shares).min()
    wanted = np.minimum(counts, np.floor(scale * shares + 1e-9).astype(np.int64))
    rng = np.random.default_rng([seed, 1])
    keep = [rng.permutation(np.flatnonzero(y == c))[: wanted[c]] for c in range(num_classes)]
    return np.sort(np.concatenate(keep))


def _split(
    x: np.ndarray,
    y: np.ndarray,
    *,
    num_classes: int,
    class_names: tuple[str, ...],
    kind: str,
    name: str,
    validation_fraction: float,
    test_fraction: float,
    seed: int,
    standardize: bool,
) -> Data:
    """Stratified train / validation / test split (each class split in the same proportions)."""
    rng = np.random.default_rng([seed, 2])
    parts: dict[str, list[np.ndarray]] = {"train": [], "validation": [], "test": []}
    for c in range(num_classes):
        idx = rng.permutation(np.flatnonzero(y == c))
        # At least one example of every class in every split, so evaluation always sees each class.
        n_test = max(1, int(round(len(idx) * test_fraction)))
        n_val = max(1, int(round(len(idx) * validation_fraction)))
        check(
            len(idx) - n_test - n_val >= 1,
            f"{name}: class {class_names[c]} has {len(idx)} examples, too few to split",
        )
        parts["test"].append(idx[:n_test])
        parts["validation"].append(idx[n_test : n_test + n_val])
        parts["train"].append(idx[n_test + n_val :])
    index = {k: rng.permutation(np.concatenate(v)) for k, v in parts.items()}
    if standardize:
        train_x = x[index["train"]]
        mean = train_x.mean(axis=0)
        std = train_x.std(axis=0)
        std[std == 0] = 1.0
        x = ((x - mean) / std).astype(np.float32)
    splits = {k: Split(x[v], y[v].astype(np.int32)) for k, v in index.items()}
    return Data(**splits, num_classes=num_classes, class_names=class_names, kind=kind, name=name)
