"""Datasets: synthetic, CSV and Parquet tables, NumPy `.npz` files, TFDS datasets and a user's Python function.

Each loader returns a `Data` with train / validation / test `Split`s held in memory. By default validation and
test keep the class ratio of the data (the imbalanced ratio a deployed model meets); with
`balanced_evaluation` they hold equal class counts, as the long-tail benchmarks do. Only training is ever
rebalanced, by a strategy.

Class ids: 0 is the largest class (the majority); for binary data 1 is the positive (minority) class. A
long-tail profile (`imbalance_ratio`, `class_profile`) is laid over the class ids in that order.

The contract of every loader (which files, which columns, which rules for missing and unusable values) is in
docs/datasets.md.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from imbal_keras.config import CLASS_PROFILES, DataConfig
from imbal_keras.data import longtail
from imbal_keras.data.shares import apportion
from imbal_keras.errors import UserInputError, check

SPLITS = ("train", "validation", "test")
# Codes of a categorical column: 0 is a missing value, 1 a level the training split does not have, 2.. the
# training split's levels in sorted order.
MISSING_CODE = 0
UNSEEN_CODE = 1


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
class Feature:
    """One column of a table's feature matrix `x` (N, D).

    Attributes:
      name: the table's column name; `<column>_missing` for a missing-value indicator.
      kind: `numeric` (missing values imputed, then standardised), `missing_indicator` (1.0 where the column's
        value was missing, else 0.0) or `categorical` (an integer code stored as float32, not standardised).
      cardinality: categorical only: the number of codes, levels + 2 (code 0: missing, 1: a level the training
        split does not have, 2..: the training split's levels in sorted order).
      levels: categorical only: the level of each code from 2 on.
    """

    name: str
    kind: str
    cardinality: int = 0
    levels: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Data:
    """A dataset ready for training.

    Attributes:
      train, validation, test: the splits.
      num_classes: K.
      class_names: a readable name per class id.
      kind: `tabular` (x is (N, D); the built-in model is an MLP) or `image` (x is (N, H, W, C); a CNN).
      name: short name for logs.
      features: tables only: what each column of x holds (see `Feature`); empty for other data.
    """

    train: Split
    validation: Split
    test: Split
    num_classes: int
    class_names: tuple[str, ...]
    kind: str
    name: str
    features: tuple[Feature, ...] = ()

    def splits(self) -> dict[str, Split]:
        return {"train": self.train, "validation": self.validation, "test": self.test}

    def describe(self) -> str:
        """One line: examples and class counts per split."""
        parts = [
            f"{name} {len(s)} ({'/'.join(str(c) for c in s.class_counts(self.num_classes))})"
            for name, s in self.splits().items()
        ]
        return f"{self.name}: " + ", ".join(parts) + f" [class counts {'/'.join(self.class_names)}]"


@dataclasses.dataclass(frozen=True)
class _Layout:
    """How examples are subsampled and split: the settings every loader shares."""

    imbalance_ratio: float = 0.0
    class_profile: str = "exponential"
    balanced_evaluation: bool = False
    validation_fraction: float = 0.2
    test_fraction: float = 0.2
    seed: int = 0


def load(config: DataConfig, *, seed: int = 0) -> Data:
    """Loads the dataset that `config.dataset` names.

    Args:
      config: the data part of an `ExperimentConfig`.
      seed: seeds generation (synthetic), subsampling and the split (the run's data seed).

    Raises:
      UserInputError: a missing or malformed file, an unknown dataset, or labels that do not fit.
    """
    kind = config.kind
    layout = dict(
        imbalance_ratio=config.imbalance_ratio,
        class_profile=config.class_profile,
        balanced_evaluation=config.balanced_evaluation,
        validation_fraction=config.validation_fraction,
        test_fraction=config.test_fraction,
        seed=seed,
    )
    if kind == "synthetic":
        return synthetic(
            num_examples=config.num_examples,
            num_features=config.num_features,
            num_classes=config.num_classes,
            class_separation=config.class_separation,
            label_noise=config.label_noise,
            **layout,
        )
    if kind in ("csv", "parquet"):
        loader = from_csv if kind == "csv" else from_parquet
        return loader(
            config.argument,
            label_column=config.label_column,
            positive_label=config.positive_label or None,
            categorical_columns=config.categorical_columns,
            drop_columns=config.drop_columns,
            time_column=config.time_column or None,
            max_categories=config.max_categories,
            **layout,
        )
    if kind == "tfds":
        return from_tfds(
            config.argument,
            positive_class=config.positive_class,
            input_feature=config.input_feature or None,
            label_feature=config.label_feature or None,
            data_dir=config.data_dir or None,
            **layout,
        )
    if kind == "npz":
        return from_npz(config.argument, **layout)
    if kind == "python":
        return from_python(config.argument, **layout)
    raise UserInputError(
        f"dataset must be 'synthetic', 'csv:PATH', 'parquet:PATH', 'npz:PATH', 'tfds:NAME' or "
        f"'python:package.module:function'. Received: dataset={config.dataset!r}",
        argument="dataset",
    )


def long_tail_shares(num_classes: int, imbalance_ratio: float, profile: str = "exponential") -> np.ndarray:
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


def synthetic(
    *,
    num_examples: int = 50_000,
    num_features: int = 20,
    num_classes: int = 2,
    imbalance_ratio: float = 99.0,
    class_profile: str = "exponential",
    balanced_evaluation: bool = False,
    class_separation: float = 1.0,
    label_noise: float = 0.0,
    validation_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> Data:
    """Gaussian clusters with a controllable imbalance, deterministic by seed.

    Each class is a mixture of two unit-variance Gaussian clusters whose centres are drawn with standard
    deviation `class_separation` in the first max(2, D // 4) dimensions (the rest are pure noise), so the
    classes overlap and a hidden layer helps. Class sizes follow `long_tail_shares(K, r, class_profile)` exactly
    (1:r for K=2), apportioned over all `num_examples`; with `balanced_evaluation` only the training share of the
    examples follows them and validation and test hold equal class counts.
    `label_noise` is the share of each class whose features are drawn from another class's clusters: labels
    become wrong with respect to the features while class counts stay exact.

    Raises:
      UserInputError: too few examples to give every class at least one example in every split.
    """
    rng = np.random.default_rng(seed)
    shares = long_tail_shares(num_classes, imbalance_ratio, class_profile)
    split_counts = None
    if balanced_evaluation:
        held_out = {
            "test": int(round(num_examples * test_fraction)),
            "validation": int(round(num_examples * validation_fraction)),
        }
        uniform = np.full(num_classes, 1.0 / num_classes)
        split_counts = {split: apportion(n, uniform) for split, n in held_out.items()}
        split_counts["train"] = apportion(num_examples - sum(held_out.values()), shares)
        counts = sum(split_counts.values())
        rarest = min(int(c.min()) for c in split_counts.values())
    else:
        counts = apportion(num_examples, shares)
        rarest = int(counts.min()) - 2
    check(
        rarest >= 1,
        f"num_examples={num_examples} at imbalance_ratio={imbalance_ratio:g} leaves a split without an example "
        f"of the rarest class (it has {int(counts.min())} examples in all); raise num_examples",
        argument="num_examples",
    )
    informative = min(num_features, max(2, num_features // 4))
    centres = np.zeros((num_classes, 2, num_features))
    centres[:, :, :informative] = rng.normal(scale=class_separation, size=(num_classes, 2, informative))
    y = np.repeat(np.arange(num_classes), counts)
    source = y.copy()
    noisy = rng.random(len(y)) < label_noise
    shift = rng.integers(1, num_classes, size=len(y))
    source[noisy] = (y[noisy] + shift[noisy]) % num_classes
    cluster = rng.integers(0, 2, size=len(y))
    x = (centres[source, cluster] + rng.normal(size=(len(y), num_features))).astype(np.float32)
    y = y.astype(np.int32)
    names = ("negative", "positive") if num_classes == 2 else tuple(f"class_{c}" for c in range(num_classes))
    name = f"synthetic 1:{imbalance_ratio:g}" + (f" {class_profile}" if num_classes > 2 else "")
    layout = _Layout(validation_fraction=validation_fraction, test_fraction=test_fraction, seed=seed)
    index = _stratified_split(y, num_classes, names, name, layout, split_counts=split_counts)
    return _array_data(x, y, index, num_classes=num_classes, class_names=names, name=name)


# Tables.


def from_csv(path: str, **options: Any) -> Data:
    """A CSV file read with `pandas.read_csv`; see `from_frame` for the columns and `options`.

    Raises:
      UserInputError: a missing, empty or unreadable file, or anything `from_frame` refuses.
    """
    import pandas as pd

    where = f"dataset=csv:{path}"
    check(os.path.isfile(path), f"{where}: no such file", argument="dataset")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise UserInputError(f"{where}: cannot be read as CSV ({str(e).splitlines()[0]})", argument="dataset") from None
    return from_frame(frame, name=os.path.basename(path), where=where, **options)


def from_parquet(path: str, **options: Any) -> Data:
    """A Parquet file read with `pandas.read_parquet` (pyarrow); see `from_frame` for the columns and `options`.

    Column types come from the file: a pandas `category` column is categorical without being listed.

    Raises:
      UserInputError: a missing or unreadable file, or anything `from_frame` refuses.
    """
    import pandas as pd

    where = f"dataset=parquet:{path}"
    check(os.path.isfile(path), f"{where}: no such file", argument="dataset")
    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError) as e:
        raise UserInputError(
            f"{where}: cannot be read as Parquet ({str(e).splitlines()[0]})", argument="dataset"
        ) from None
    return from_frame(frame, name=os.path.basename(path), where=where, **options)


def from_frame(
    frame,
    *,
    label_column: str = "label",
    positive_label: str | None = None,
    categorical_columns: Sequence[str] = (),
    drop_columns: Sequence[str] = (),
    time_column: str | None = None,
    max_categories: int = 1000,
    imbalance_ratio: float = 0.0,
    class_profile: str = "exponential",
    balanced_evaluation: bool = False,
    validation_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 0,
    name: str = "table",
    where: str = "data",
) -> Data:
    """A pandas DataFrame with one label column; every other column is a feature unless dropped.

    Rules (every statistic from the training split only, so nothing of validation or test leaks into training):

    - numeric columns: a missing value (NaN, empty cell) is replaced by the column's training median, and a
      `<column>_missing` 0/1 indicator column is added after every column that has a missing value anywhere;
      then the column is standardised with the training mean and standard deviation.
    - categorical columns (`categorical_columns`, and columns of pandas `category` dtype) are encoded with pandas as
      integer codes: 0 missing, 1 a level absent from the training split, 2.. the training levels in sorted order
      (see `Feature`). A column with more than `max_categories` distinct levels is refused.
    - a boolean column is numeric 0/1.
    - refused with one line: a non-numeric column not listed as categorical, an infinite value or one beyond
      float32's range, a numeric column without a value in the training split, a time column that does not parse.

    Args:
      frame: the table.
      label_column: the label column.
      positive_label: the label value (compared as text) that is the positive class; every other value is negative
        (one-vs-rest). None: the labels must already be the integers 0..K-1, each present.
      categorical_columns: columns to encode as categories.
      drop_columns: columns to leave out (IDs, timestamps, free text).
      time_column: split forward in time by this column (numbers, or text `pandas.to_datetime` parses): the oldest
        rows train, the newest test; rows with equal times stay in one split. It is not a feature. None: a
        random stratified split.
      max_categories: most distinct levels a categorical column may have.
      imbalance_ratio, class_profile, balanced_evaluation: subsampling to a long-tail profile (see
        `DataConfig`); 0 keeps the table's own ratio.
      validation_fraction, test_fraction: split shares.
      seed: seeds the subsampling and the split.
      name: the dataset's name in logs.
      where: how messages name the data (`dataset=csv:PATH`).

    Returns:
      `Data` of kind `tabular` with `features` describing each column of x.

    Raises:
      UserInputError: anything the rules above refuse, a missing label column, labels that do not fit, an unknown
        column in an argument, or a class too small to split; the message names the column, row and value.
    """
    import pandas as pd

    check(isinstance(frame, pd.DataFrame), f"{where}: expected a pandas DataFrame. Received: {type(frame).__name__}")
    check(len(frame) > 0, f"{where}: the table has no data rows", argument="dataset")
    columns = [str(c) for c in frame.columns]
    frame = frame.set_axis(columns, axis=1)
    for argument, names in (
        ("label_column", [label_column]),
        ("drop_columns", list(drop_columns)),
        ("categorical_columns", list(categorical_columns)),
        ("time_column", [time_column] if time_column else []),
    ):
        unknown = [c for c in names if c not in columns]
        check(
            not unknown,
            f"{argument}={','.join(names)!r} names {unknown[:3]}, not a column of {where}; columns: {columns[:20]}",
            argument=argument,
        )
    y, class_names = _labels_from_column(frame[label_column], label_column, positive_label)
    layout = _Layout(imbalance_ratio, class_profile, balanced_evaluation, validation_fraction, test_fraction, seed)
    times = _time_values(frame[time_column], time_column) if time_column else None
    features = frame.drop(columns=[label_column, *drop_columns, *([time_column] if time_column else [])])
    check(
        features.shape[1] > 0,
        f"{where}: no feature columns besides the label and the dropped columns",
        argument="dataset",
    )
    categorical = [c for c in features.columns if c in categorical_columns or _is_category_dtype(features[c])]
    for column in categorical:
        levels = features[column].dropna().nunique()
        check(
            levels <= max_categories,
            f"max_categories={max_categories} is below the {levels} levels of categorical column {column!r} (an ID? "
            f"drop it with drop_columns, or raise max_categories). Received: max_categories={max_categories}",
            argument="max_categories",
        )
    numeric = {c: _numeric_column(features[c], c, where) for c in features.columns if c not in categorical}
    index = _layout_indices(y, len(class_names), class_names, name, layout, times=times)
    x, feature_info = _encode(features, numeric, categorical, index["train"], where)
    data = _array_data(x, y, index, num_classes=len(class_names), class_names=class_names, name=name)
    return dataclasses.replace(data, features=feature_info)


def _is_category_dtype(column) -> bool:
    import pandas as pd

    return isinstance(column.dtype, pd.CategoricalDtype)


def _labels_from_column(raw, label_column: str, positive_label: str | None) -> tuple[np.ndarray, tuple[str, ...]]:
    """Integer labels and class names from the label column."""
    import pandas as pd

    check(
        not raw.isna().any(),
        f"label_column={label_column!r} has {int(raw.isna().sum())} empty labels",
        argument="label_column",
    )
    if positive_label is not None:
        text = raw.astype(str).str.strip()
        check(
            (text == positive_label).any(),
            f"positive_label={positive_label!r} does not occur in column {label_column!r}; "
            f"values: {sorted(text.unique())[:10]}",
            argument="positive_label",
        )
        y = (text == positive_label).to_numpy().astype(np.int32)
        names = ("rest", str(positive_label))
    else:
        numeric = pd.to_numeric(raw, errors="coerce")
        values = sorted(raw.astype(str).unique())
        integral = numeric.notna().all() and (numeric == numeric.round()).all() and (numeric >= 0).all()
        check(
            bool(integral) and set(numeric.astype(int)) == set(range(int(numeric.max()) + 1)),
            f"label_column={label_column!r} holds {values[:10]}, expected the class ids 0..K-1, each present "
            "(or pass positive_label to pick the positive class)",
            argument="label_column",
        )
        y = numeric.to_numpy().astype(np.int32)
        names = tuple(str(c) for c in range(int(y.max()) + 1))
    check(
        np.unique(y).size >= 2,
        f"label_column={label_column!r} has a single class ({names[int(y[0])]}); need at least 2",
        argument="label_column",
    )
    return y, names


def _time_values(column, time_column: str) -> np.ndarray:
    """The time column as sortable float64 (numbers as they are, text parsed by `pandas.to_datetime`)."""
    import pandas as pd

    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        values = column.to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values)
    else:
        if pd.api.types.is_datetime64_any_dtype(column):
            parsed = column
        else:
            parsed = pd.to_datetime(column.astype("string"), errors="coerce", format="mixed")
        bad = parsed.isna().to_numpy()
        values = np.where(bad, 0, parsed.to_numpy(dtype="datetime64[ns]").astype(np.int64)).astype(np.float64)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise UserInputError(
            f"time_column={time_column!r} does not parse as a time at row {row}: {column.iloc[row]!r}",
            argument="time_column",
        )
    return values


def _numeric_column(column, name: str, where: str) -> np.ndarray:
    """A feature column as float64 with NaN for missing values; refuses text and values float32 cannot hold."""
    import pandas as pd

    values = pd.to_numeric(column, errors="coerce") if not pd.api.types.is_bool_dtype(column) else column
    values = values.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = np.isnan(values) & column.notna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise UserInputError(
            f"{where}: column {name!r} is not numeric (row {row}: {column.iloc[row]!r}); list it in "
            "categorical_columns or drop_columns",
            argument="dataset",
        )
    unusable = np.isinf(values) | (np.abs(np.nan_to_num(values)) > np.finfo(np.float32).max)
    if unusable.any():
        row = int(np.flatnonzero(unusable)[0])
        raise UserInputError(
            f"{where}: column {name!r} holds {float(values[row])!r} at row {row}, which float32 features cannot hold; "
            "replace or drop it",
            argument="dataset",
        )
    return values


def _category_text(column):
    """Levels as text; whole floats (integer codes read with NaN) as integers: 3.0 -> '3'."""
    import pandas as pd

    if pd.api.types.is_float_dtype(column):
        present = column.dropna()
        if (present == present.round()).all():
            return column.astype("Int64").astype("string")
    return column.astype("string")


def _encode(features, numeric: Mapping[str, np.ndarray], categorical, train: np.ndarray, where: str):
    """The feature matrix (N, D) float32 and what each column holds, with statistics of the `train` rows only."""
    blocks: list[np.ndarray] = []
    info: list[Feature] = []
    for column in features.columns:
        if column in categorical:
            text = _category_text(features[column])
            levels = tuple(sorted(text.iloc[train].dropna().unique()))
            codes = {level: i + 2 for i, level in enumerate(levels)}
            mapped = text.map(codes).astype("Float64").fillna(float(UNSEEN_CODE))
            encoded = np.where(text.isna().to_numpy(), MISSING_CODE, mapped.to_numpy(dtype=np.float64))
            blocks.append(encoded)
            info.append(Feature(column, "categorical", cardinality=len(levels) + 2, levels=levels))
            continue
        values = numeric[column]
        missing = np.isnan(values)
        train_values = values[train][~missing[train]]
        check(
            len(train_values) > 0,
            f"{where}: column {column!r} has no value in the training split; drop it with drop_columns",
            argument="dataset",
        )
        filled = np.where(missing, np.median(train_values), values)
        mean, std = filled[train].mean(), filled[train].std()
        blocks.append((filled - mean) / (std if std > 0 else 1.0))
        info.append(Feature(column, "numeric"))
        if missing.any():
            blocks.append(missing.astype(np.float64))
            info.append(Feature(f"{column}_missing", "missing_indicator"))
    return np.stack(blocks, axis=1).astype(np.float32), tuple(info)


# Arrays: .npz files and Python functions.


def from_npz(path: str, **layout: Any) -> Data:
    """A NumPy `.npz` file (`np.savez`) with arrays `x` and `y`, or with given splits.

    Keys: `x`, `y` (the toolkit splits them), or `x_train`, `y_train`, `x_test`, `y_test` and optionally
    `x_validation`, `y_validation`; optionally `class_names`. See `from_arrays` for the rules.

    Raises:
      UserInputError: a missing or unreadable file, missing keys, or arrays `from_arrays` refuses.
    """
    where = f"dataset=npz:{path}"
    check(os.path.isfile(path), f"{where}: no such file", argument="dataset")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError) as e:
        raise UserInputError(f"{where}: cannot be read as .npz ({e})", argument="dataset") from None
    names = arrays.pop("class_names", None)
    if {"x", "y"} <= set(arrays):
        source: Any = (arrays["x"], arrays["y"])
    else:
        missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in arrays]
        check(
            not missing,
            f"{where}: expected arrays x and y, or x_train, y_train, x_test, y_test (and x_validation, y_validation); "
            f"missing {missing}, found {sorted(arrays)}",
            argument="dataset",
        )
        source = {s: (arrays[f"x_{s}"], arrays[f"y_{s}"]) for s in SPLITS if f"x_{s}" in arrays}
    if names is not None:
        source = {"data": source, "class_names": [str(n) for n in names]}
    return from_arrays(source, name=os.path.basename(path), where=where, **layout)


def from_python(path: str, **layout: Any) -> Data:
    """The data a user's function returns: `python:package.module:function`.

    The function is imported by path and called with `seed=` (the run's data seed) if it takes a `seed`
    argument, else with no argument. It returns what `from_arrays` takes.

    Raises:
      UserInputError: a path that does not import, a function that raises, or a value `from_arrays` refuses.
    """
    where = f"dataset=python:{path}"
    function = import_function(path, argument="dataset", shown=f"python:{path}")
    takes_seed = "seed" in inspect.signature(function).parameters
    try:
        value = function(seed=layout.get("seed", 0)) if takes_seed else function()
    except UserInputError:
        raise
    except Exception as e:  # noqa: BLE001  (the user's code: report its error as one line)
        raise UserInputError(
            f"{where}: the function raised {type(e).__name__}: {_first_line(e)}", argument="dataset"
        ) from None
    return from_arrays(value, name=path.rpartition(":")[2], where=where, **layout)


def from_arrays(
    data,
    *,
    imbalance_ratio: float = 0.0,
    class_profile: str = "exponential",
    balanced_evaluation: bool = False,
    validation_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 0,
    name: str = "arrays",
    where: str = "data",
) -> Data:
    """Data from arrays or `tf.data` datasets, used as given (no scaling: the caller owns its preprocessing).

    `data` is one of:

    - `(x, y)`: every example; split stratified (or, with `balanced_evaluation`, as the long-tail benchmarks do).
    - `{"train": ..., "test": ..., "validation": ...}`: the splits, each `(x, y)` or a `tf.data.Dataset` of
      `(x, y)` (batched or not); without `validation`, a stratified `validation_fraction` of train is held out.
    - either of them as `{"data": ..., "class_names": [...]}` to name the classes.

    `x` is (N, D) tabular features, (N, H, W, C) images, or (N, H, W) images (a channel axis is added); `y` is
    (N,) integer class ids 0..K-1, each present in training.

    Raises:
      UserInputError: the wrong structure, mismatched or wrong shapes, non-numeric or non-finite features, labels
        that are not 0..K-1, or a class absent from the training split.
    """
    class_names = None
    if isinstance(data, Mapping) and "data" in data:
        class_names = tuple(str(n) for n in data.get("class_names", ()))
        data = data["data"]
    layout = _Layout(imbalance_ratio, class_profile, balanced_evaluation, validation_fraction, test_fraction, seed)
    if isinstance(data, Mapping):
        unknown = sorted(set(data) - set(SPLITS))
        check(
            not unknown and {"train", "test"} <= set(data),
            f"{where}: expected the splits train and test (and validation). Received: keys {sorted(data)}",
            argument="dataset",
        )
        given = {s: as_arrays(data[s], f"{where} ({s})") for s in SPLITS if s in data}
    else:
        check(
            isinstance(data, (tuple, list)) and len(data) == 2,
            f"{where}: expected (x, y) or a dict of splits. Received: {type(data).__name__}",
            argument="dataset",
        )
        given = {"all": as_arrays(data, where)}
    x = np.concatenate([g[0] for g in given.values()])
    y = np.concatenate([g[1] for g in given.values()])
    num_classes = max(int(y.max()) + 1, len(class_names or ()))
    if class_names:
        check(
            len(class_names) == num_classes,
            f"{where}: {len(class_names)} class_names for labels 0..{num_classes - 1}",
            argument="dataset",
        )
    else:
        class_names = tuple(str(c) for c in range(num_classes))
    starts = np.cumsum([0, *(len(g[1]) for g in given.values())])
    positions = {s: np.arange(starts[i], starts[i + 1]) for i, s in enumerate(given)}
    train_labels = y[positions.get("train", positions.get("all"))]
    absent = np.flatnonzero(np.bincount(train_labels, minlength=num_classes) == 0)
    check(
        len(absent) == 0,
        f"{where}: class {int(absent[0]) if len(absent) else ''} has no example in the training data "
        f"(labels must be 0..K-1, each present); class counts {np.bincount(y, minlength=num_classes).tolist()}",
        argument="dataset",
    )
    if "all" in positions:
        index = _layout_indices(y, num_classes, class_names, name, layout)
    else:
        index = _given_split_indices(y, positions, num_classes, class_names, name, layout)
    return _array_data(x, y, index, num_classes=num_classes, class_names=class_names, name=name)


def as_arrays(value, where: str = "data") -> tuple[np.ndarray, np.ndarray]:
    """`(x float32 (N, ...), y int32 (N,))` from a pair of arrays or a finite `tf.data.Dataset` of pairs.

    (N, H, W) images get a channel axis.

    Args:
      value: `(x, y)` or a `tf.data.Dataset` of `(x, y)`, batched or not.
      where: how messages name the data.

    Raises:
      UserInputError: the wrong structure, mismatched or wrong shapes, non-numeric or non-finite features, or
        labels that are not integers >= 0.
    """
    if is_tf_dataset(value):
        value = _dataset_arrays(value, where)
    check(
        isinstance(value, (tuple, list)) and len(value) == 2,
        f"{where}: expected a pair (x, y). Received: {type(value).__name__}",
        argument="dataset",
    )
    try:
        x, y = np.asarray(value[0]), np.asarray(value[1])
    except ValueError as e:
        raise UserInputError(f"{where}: x and y must be arrays ({_first_line(e)})", argument="dataset") from None
    check(
        y.ndim == 1 and x.ndim >= 2 and len(x) == len(y) and len(y) > 0,
        f"{where}: expected x of shape (N, ...) and y of shape (N,) with N > 0. Received: x {x.shape}, y {y.shape}",
        argument="dataset",
    )
    check(
        np.issubdtype(x.dtype, np.number) or x.dtype == bool,
        f"{where}: x must be numeric. Received: dtype {x.dtype}",
        argument="dataset",
    )
    x = x.astype(np.float32)
    bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
    check(
        not bad.any(),
        f"{where}: x holds a NaN or infinite value (example {int(np.argmax(bad))}); impute or drop it first",
        argument="dataset",
    )
    integral = np.issubdtype(y.dtype, np.integer) or (
        np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(y == np.round(y))
    )
    check(
        integral and y.min() >= 0,
        f"{where}: y must hold integer class ids 0..K-1. Received: dtype {y.dtype}, "
        f"values {np.unique(y)[:10].tolist()}",
        argument="dataset",
    )
    if x.ndim == 3:  # (N, H, W) images: one channel
        x = x[..., None]
    return x, y.astype(np.int32)


def is_tf_dataset(value) -> bool:
    """Whether `value` is a `tf.data.Dataset`."""
    import tensorflow as tf

    return isinstance(value, tf.data.Dataset)


def _dataset_arrays(dataset, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Reads a finite `tf.data.Dataset` of `(x, y)` pairs, batched or not, into two arrays."""
    import tensorflow as tf

    spec = dataset.element_spec
    check(
        isinstance(spec, tuple) and len(spec) == 2 and all(isinstance(s, tf.TensorSpec) for s in spec),
        f"{where}: the dataset must yield (x, y) pairs of tensors. Received: element_spec {spec}",
        argument="dataset",
    )
    check(
        dataset.cardinality() != tf.data.INFINITE_CARDINALITY,
        f"{where}: the dataset is infinite (repeat()); pass a finite one",
        argument="dataset",
    )
    if spec[1].shape.rank == 0:
        dataset = dataset.batch(4096)
    xs, ys = [], []
    for x, y in dataset.as_numpy_iterator():
        xs.append(x)
        ys.append(np.reshape(y, -1))
    check(len(xs) > 0, f"{where}: the dataset is empty", argument="dataset")
    return np.concatenate(xs), np.concatenate(ys)


def import_function(path: str, *, argument: str, shown: str | None = None) -> Callable:
    """The function at `package.module:function` (a dotted attribute path after the colon is allowed).

    Args:
      path: `package.module:function`.
      argument: the argument the path came from, named in errors (`model`, `dataset`).
      shown: the value as the user wrote it, for errors (defaults to `path`).

    Raises:
      UserInputError: a malformed path, a module that does not import, a missing attribute or one that is not
        callable; one line naming the argument and the value.
    """
    shown = shown if shown is not None else path
    module_name, sep, attribute = path.partition(":")
    check(
        bool(sep and module_name and attribute),
        f"{argument} must be 'package.module:function'. Received: {argument}={shown!r}",
        argument=argument,
    )
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as e:  # noqa: BLE001  (an import runs user code: any error is one line)
        raise UserInputError(
            f"{argument}={shown!r} does not import: {type(e).__name__}: {_first_line(e)}", argument=argument
        ) from None
    for part in attribute.split("."):
        check(
            hasattr(target, part),
            f"{argument}={shown!r}: module {module_name!r} has no attribute {attribute!r}",
            argument=argument,
        )
        target = getattr(target, part)
    check(callable(target), f"{argument}={shown!r} is not a function", argument=argument)
    return target


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# TFDS.


def from_tfds(
    name: str,
    *,
    positive_class: int = 0,
    input_feature: str | None = None,
    label_feature: str | None = None,
    imbalance_ratio: float = 99.0,
    class_profile: str = "exponential",
    balanced_evaluation: bool = False,
    data_dir: str | None = None,
    validation_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> Data:
    """A TFDS classification dataset, one-vs-rest or with all its classes.

    Reads every split with `tfds.load` (downloading as usual when the data is not in `data_dir`) and re-splits.
    The input and label are the dataset's supervised keys; a dataset without them (one stored with
    `tfds.dataset_builders.store_as_tfds_dataset`, say) uses `input_feature` and `label_feature`, or its one
    `ClassLabel` feature as the label and its one other feature as the input.

    `positive_class` >= 0 relabels that class 1 and the rest 0 and subsamples the positive class to 1:r;
    -1 keeps the K classes and subsamples them to the `class_profile` (with `balanced_evaluation`, only the
    training split; validation and test keep equal class counts). Images (uint8, or values above 1) are
    scaled to [0, 1]; (H, W) images get a channel axis.

    Raises:
      UserInputError: an unknown dataset name or feature, no way to choose the features, an input that is not a
        numeric tensor, images of different sizes, or a `positive_class` absent from the data.
    """
    import tensorflow as tf
    import tensorflow_datasets as tfds

    where = f"dataset=tfds:{name}"
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise UserInputError(
            f"{where}: no TFDS dataset of that name (see tfds.list_builders())", argument="dataset"
        ) from None
    features = builder.info.features
    input_key, label_key = _tfds_keys(builder.info, input_feature, label_feature, where)
    label_info = features[label_key]  # _tfds_keys checked it is a feature
    split_names = list(builder.info.splits) or ["train"]
    xs, ys = [], []
    try:
        for split in split_names:
            dataset = tfds.load(name, split=split, data_dir=data_dir).map(lambda e: (e[input_key], e[label_key]))
            # Batched reads rather than batch_size=-1: the size of a split need not be known up front.
            for x, y in tfds.as_numpy(dataset.batch(4096)):
                xs.append(np.asarray(x))
                ys.append(np.asarray(y).astype(np.int64).reshape(-1))
    except (tf.errors.InvalidArgumentError, ValueError, TypeError) as e:
        raise UserInputError(
            f"{where}: input_feature={input_key!r} cannot be stacked into one array (examples of different "
            f"shapes or a non-numeric feature?): {_first_line(e)}",
            argument="input_feature",
        ) from None
    x, raw = np.concatenate(xs), np.concatenate(ys)
    check(
        np.issubdtype(x.dtype, np.number) or x.dtype == bool,
        f"input_feature={input_key!r} of {where} is not numeric (dtype {x.dtype}); choose a tensor or image feature",
        argument="input_feature",
    )
    present = np.unique(raw)
    image = x.ndim >= 3
    x = x.astype(np.float32)
    if image:
        x = x / 255.0 if x.max() > 1 else x
        if x.ndim == 3:
            x = x[..., None]
    layout = _Layout(imbalance_ratio, class_profile, balanced_evaluation, validation_fraction, test_fraction, seed)
    if positive_class >= 0:
        check(
            positive_class in present,
            f"positive_class={positive_class} does not occur in tfds:{name}; classes present: {present.tolist()[:20]}",
            argument="positive_class",
        )
        y = (raw == positive_class).astype(np.int32)
        class_names = ("rest", _class_name(label_info, positive_class))
        title = f"{name} {positive_class}-vs-rest"
    else:
        num_classes = getattr(label_info, "num_classes", None) or int(raw.max()) + 1
        absent = sorted(set(range(num_classes)) - set(present.tolist()))
        check(
            not absent,
            f"{where}: class {absent[:1]} of label_feature={label_key!r} has no example; positive_class=-1 needs "
            "every class. Received: positive_class=-1",
            argument="positive_class",
        )
        y = raw.astype(np.int32)
        class_names = tuple(_class_name(label_info, c) for c in range(num_classes))
        title = f"{name} {num_classes} classes"
    index = _layout_indices(y, len(class_names), class_names, title, layout)
    data = _array_data(x, y, index, num_classes=len(class_names), class_names=class_names, name=title)
    if not image:
        data = _standardised(data)
    return data


def _tfds_keys(info, input_feature: str | None, label_feature: str | None, where: str) -> tuple[str, str]:
    """(input, label) feature names: given, the supervised keys, or the one ClassLabel and the one other feature."""
    import tensorflow_datasets as tfds

    features = info.features
    names = list(features.keys()) if hasattr(features, "keys") else []
    supervised = info.supervised_keys if isinstance(info.supervised_keys, tuple) else None
    for argument, value in (("input_feature", input_feature), ("label_feature", label_feature)):
        check(
            value is None or value in names,
            f"{argument}={value!r} is not a feature of {where}; features: {names}",
            argument=argument,
        )
    label_feature = label_feature or (supervised[1] if supervised and not input_feature else None)
    if label_feature is None:
        labels = [n for n in names if isinstance(features[n], tfds.features.ClassLabel)]
        check(
            len(labels) == 1,
            f"{where} has no supervised keys and {len(labels)} ClassLabel features {labels}; choose the label with "
            f"label_feature. Features: {names}",
            argument="label_feature",
        )
        label_feature = labels[0]
    check(
        label_feature not in names or isinstance(features[label_feature], tfds.features.ClassLabel),
        f"label_feature={label_feature!r} of {where} is not a ClassLabel feature",
        argument="label_feature",
    )
    input_feature = input_feature or (supervised[0] if supervised and supervised[1] == label_feature else None)
    if input_feature is None:
        others = [n for n in names if n != label_feature]
        check(
            len(others) == 1,
            f"{where} has {len(others)} features besides the label {label_feature!r}; choose the input with "
            f"input_feature. Features: {names}",
            argument="input_feature",
        )
        input_feature = others[0]
    return input_feature, label_feature


def _class_name(label_info, class_id: int) -> str:
    names = getattr(label_info, "names", None)
    return str(names[class_id]) if names and class_id < len(names) else f"class_{class_id}"


def _standardised(data: Data) -> Data:
    """Tabular features standardised with training-split statistics."""
    mean = data.train.x.mean(axis=0)
    std = data.train.x.std(axis=0)
    std[std == 0] = 1.0
    splits = {k: Split(((s.x - mean) / std).astype(np.float32), s.y) for k, s in data.splits().items()}
    return dataclasses.replace(data, **splits)


# Subsampling and splitting.


def _layout_indices(
    y: np.ndarray,
    num_classes: int,
    class_names: tuple[str, ...],
    name: str,
    layout: _Layout,
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
        index = _stratified_split(y[keep], num_classes, class_names, name, layout)
    else:
        index = _time_split(y[keep], times[keep], num_classes, class_names, layout)
    index = {split: keep[i] for split, i in index.items()}
    if layout.balanced_evaluation:
        index = _long_tail_evaluation(y, index, num_classes, layout)
    return index


def _given_split_indices(y, positions, num_classes, class_names, name, layout: _Layout) -> dict[str, np.ndarray]:
    """Indices of splits given by the caller: validation held out of train if absent, then subsampled."""
    index = dict(positions)
    if "validation" not in index:
        train = index["train"]
        inner = dataclasses.replace(layout, validation_fraction=layout.validation_fraction, test_fraction=1e-9)
        held = _stratified_split(y[train], num_classes, class_names, f"{name} (train)", inner, hold_out=("validation",))
        index = {"train": train[held["train"]], "validation": train[held["validation"]], "test": index["test"]}
    if layout.balanced_evaluation:
        return _long_tail_evaluation(y, index, num_classes, layout)
    return {
        split: i[_subsample_to_ratio(y[i], num_classes, layout.imbalance_ratio, layout.class_profile, layout.seed)]
        for split, i in index.items()
    }


def _subsample_to_ratio(y: np.ndarray, num_classes: int, imbalance_ratio: float, profile: str, seed: int) -> np.ndarray:
    """Indices of a class-wise random subset whose counts follow `long_tail_shares` (all, if the ratio is 0).

    Keeps as many examples as possible: the class with the fewest examples relative to its share is kept whole.

    Raises:
      UserInputError: the data cannot reach the ratio (a class would keep no example).
    """
    if imbalance_ratio <= 0:
        return np.arange(len(y))
    counts = np.bincount(y, minlength=num_classes)
    shares = long_tail_shares(num_classes, imbalance_ratio, profile)
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


def _long_tail_evaluation(y, index, num_classes: int, layout: _Layout) -> dict[str, np.ndarray]:
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
    shares = long_tail_shares(len(available), imbalance_ratio, profile)
    relative = shares / shares[0]
    n_max = int(np.min(np.ceil((available + 1) / relative) - 1))
    while n_max > 1:
        counts = longtail.profile_counts(profile, len(available), float(imbalance_ratio), n_max)
        if (counts <= available).all():
            return counts
        n_max -= 1
    return longtail.profile_counts(profile, len(available), float(imbalance_ratio), max(n_max, 1))


def _stratified_counts(n: int, layout: _Layout) -> tuple[int, int]:
    """(test, validation) examples of a class with n examples: at least one each, so evaluation sees every class."""
    return max(1, int(round(n * layout.test_fraction))), max(1, int(round(n * layout.validation_fraction)))


def _stratified_split(
    y: np.ndarray,
    num_classes: int,
    class_names: tuple[str, ...],
    name: str,
    layout: _Layout,
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
    y: np.ndarray, times: np.ndarray, num_classes: int, class_names: tuple[str, ...], layout: _Layout
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


def _array_data(
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
    return Data(**splits, num_classes=num_classes, class_names=class_names, kind=kind, name=name)


__all__ = [
    "CLASS_PROFILES",
    "Data",
    "Feature",
    "Split",
    "as_arrays",
    "from_arrays",
    "from_csv",
    "from_frame",
    "from_npz",
    "from_parquet",
    "from_python",
    "from_tfds",
    "import_function",
    "is_tf_dataset",
    "load",
    "long_tail_shares",
    "synthetic",
]
