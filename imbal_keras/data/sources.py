"""Where data comes from: synthetic clusters, CSV and Parquet tables, NumPy `.npz` files, TFDS datasets and a
user's Python function, each loaded into train / validation / test `Split`s held in memory.

By default validation and test keep the class ratio of the data (the imbalanced ratio a deployed model meets);
with `balanced_evaluation` they hold equal class counts, as the long-tail benchmarks do. Only training is ever
rebalanced, by a strategy.

Class ids: 0 is the largest class (the majority); for binary data 1 is the positive (minority) class. A
long-tail profile (`imbalance_ratio`, `class_profile`) is laid over the class ids in that order. Every loader
takes the `Layout` settings (`imbal_keras.data.splits`) as keyword arguments.

The contract of every loader (which files, which columns, which rules for missing and unusable values) is in
docs/datasets.md.
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from imbal_keras.data import dense_generated, dense_tfds
from imbal_keras.data._loading import first_line, not_prepared, tfds_builder
from imbal_keras.data.generated import check_synthetic_memory, synthetic
from imbal_keras.data.splits import (
    SPLITS,
    Data,
    array_data,
    given_split_indices,
    layout_indices,
    layout_of,
    standardised,
)
from imbal_keras.data.tabular import from_frame
from imbal_keras.errors import UserInputError, check, require_extra

if TYPE_CHECKING:
    from imbal_keras.config import DataConfig

__all__ = [
    "read_npz",
    "as_arrays",
    "check_synthetic_memory",
    "dense_from_npz",
    "dense_from_python",
    "from_arrays",
    "from_csv",
    "from_npz",
    "from_parquet",
    "from_python",
    "from_tfds",
    "import_function",
    "is_tf_dataset",
    "load",
    "synthetic",
]


def load(config: DataConfig, *, seed: int = 0) -> Data:
    """Loads the dataset that `config.dataset` names.

    Args:
      config: the data part of an `ExperimentConfig`.
      seed: seeds generation (synthetic), subsampling and the split (the run's data seed).

    Raises:
      UserInputError: a missing or malformed file, an unknown dataset, labels that do not fit, or an
        `ignore_label` for data other than a user's masks or label sequences.
    """
    data = _loaded(config, seed)
    dense_generated.check_ignore_label(config.ignored, data.kind, f"dataset={config.dataset}")
    refused = f"ignore_label applies to a user's masks (npz:, python:, tfds:); {config.dataset} has no ignored pixels"
    refused += f". Received: ignore_label={config.ignore_label}"
    check(data.ignore_label == config.ignored, refused, argument="ignore_label")
    return data


def _loaded(config: DataConfig, seed: int) -> Data:
    """The `Data` of `load`, by the dataset's kind."""
    kind = config.kind
    layout = dict(
        imbalance_ratio=config.effective_imbalance_ratio,
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
    if kind in dense_generated.SYNTHETIC:
        return dense_generated.SYNTHETIC[kind](**dense_generated.dense_layout(layout, f"dataset={config.dataset}"))
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
        return _tfds(config, layout)
    if kind in ("npz", "python"):
        return (from_npz if kind == "npz" else from_python)(config.argument, ignore_label=config.ignored, **layout)
    raise UserInputError(
        f"dataset must be 'synthetic', 'csv:PATH', 'parquet:PATH', 'npz:PATH', 'tfds:NAME' or "
        f"'python:package.module:function'. Received: dataset={config.dataset!r}",
        argument="dataset",
    )


def _tfds(config: DataConfig, layout: dict[str, Any]) -> Data:
    """`tfds:NAME`: segmentation data when `label_feature` names a mask (`dense_tfds.masks_from_tfds`), else a
    classification dataset (`from_tfds`)."""
    image_key, data_dir = config.input_feature or None, config.data_dir or None
    if config.label_feature:
        masks = dense_tfds.masks_from_tfds(
            config.argument, mask_key=config.label_feature, image_key=image_key, data_dir=data_dir,
            ignore_label=config.ignored, **dense_generated.dense_layout(layout, f"dataset={config.dataset}"),
        )  # fmt: skip
        if masks is not None:
            return masks
    return from_tfds(
        config.argument, positive_class=config.positive_class, input_feature=image_key,
        label_feature=config.label_feature or None, data_dir=data_dir, **layout,
    )  # fmt: skip


# Tables: the readers; the encoding is `tabular.from_frame`.


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
        _check_unique_header(path, where)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise UserInputError(f"{where}: cannot be read as CSV ({str(e).splitlines()[0]})", argument="dataset") from None
    return from_frame(frame, name=os.path.basename(path), where=where, **options)


def _check_unique_header(path: str, where: str) -> None:
    """Refuses a CSV header that names a column twice (pandas would rename the second `name.1` silently)."""
    import csv

    with open(path, newline="") as f:
        header = next(csv.reader(f), [])
    repeated = sorted({name for name in header if header.count(name) > 1})
    check(
        not repeated,
        f"{where}: the header names {', '.join(map(repr, repeated))} more than once; rename the columns",
        argument="dataset",
    )


def from_parquet(path: str, **options: Any) -> Data:
    """A Parquet file read with `pandas.read_parquet` (pyarrow); see `from_frame` for the columns and `options`.

    Column types come from the file: a pandas `category` column is categorical without being listed.

    Raises:
      UserInputError: a missing or unreadable file, or anything `from_frame` refuses.
    """
    require_extra("dataset=parquet:PATH", "parquet", ("pyarrow",))
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


# Arrays: .npz files and Python functions.


def read_npz(path: str, where: str) -> dict[str, np.ndarray]:
    """Every array of a NumPy `.npz` file, by key (no pickled objects).

    Args:
      path: the file.
      where: how error lines name it (e.g. `dataset=npz:PATH`).

    Raises:
      UserInputError: a missing or unreadable file.
    """
    check(os.path.isfile(path), f"{where}: no such file", argument="dataset")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (OSError, ValueError) as e:
        raise UserInputError(f"{where}: cannot be read as .npz ({e})", argument="dataset") from None


def from_npz(path: str, *, ignore_label: int | None = None, **layout: Any) -> Data:
    """A NumPy `.npz` file (`np.savez`) with arrays `x` and `y`, or with given splits.

    Keys: `x`, `y` (the toolkit splits them), or `x_train`, `y_train`, `x_test`, `y_test` and optionally
    `x_validation`, `y_validation`; optionally `class_names`. See `from_arrays` for the rules; masks and label
    sequences (targets of 2 or more dimensions) go to `dense_from_npz`, with `ignore_label`.

    Raises:
      UserInputError: a missing or unreadable file, missing keys, or arrays `from_arrays` refuses.
    """
    where = f"dataset=npz:{path}"
    arrays = read_npz(path, where)
    if np.ndim(arrays.get("y", arrays.get("y_train"))) >= 2:
        return dense_from_npz(path, ignore_label=ignore_label, **dense_generated.dense_layout(layout, where))
    dense_generated.check_ignore_label(ignore_label, "single-label", where)
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


def from_python(path: str, *, ignore_label: int | None = None, **layout: Any) -> Data:
    """The data a user's function returns: `python:package.module:function`.

    The function is imported by path and called with `seed=` (the run's data seed) if it takes a `seed`
    argument, else with no argument. It returns what `from_arrays` takes, or dense (masks, sequences) or
    multi-label targets as `dense_from_arrays` takes them (targets with more than one value per example), with
    `ignore_label`.

    Raises:
      UserInputError: a path that does not import, a function that raises, or a value the loader refuses.
    """
    where = f"dataset=python:{path}"
    value = _called(path, layout.get("seed", 0))
    name = path.rpartition(":")[2]
    if _dense_value(value):
        return dense_generated.dense_from_arrays(
            value, ignore_label=ignore_label, name=name, where=where, **dense_generated.dense_layout(layout, where)
        )
    dense_generated.check_ignore_label(ignore_label, "single-label", where)
    return from_arrays(value, name=name, where=where, **layout)


def dense_from_npz(path: str, *, kind: str | None = None, ignore_label: int | None = None, **layout: Any) -> Data:
    """A `.npz` file with arrays `x` and `y`, or `x_train`, `y_train`, `x_test`, `y_test` (and `x_validation`,
    `y_validation`) of dense or multi-label targets; see `dense_generated.dense_from_arrays`.

    Raises:
      UserInputError: a missing or unreadable file, missing keys, or arrays `dense_from_arrays` refuses.
    """
    where = f"dataset=npz:{path}"
    arrays = read_npz(path, where)
    if {"x", "y"} <= set(arrays):
        source: Any = (arrays["x"], arrays["y"])
    else:
        source = {s: (arrays[f"x_{s}"], arrays[f"y_{s}"]) for s in SPLITS if f"x_{s}" in arrays and f"y_{s}" in arrays}
    return dense_generated.dense_from_arrays(
        source, kind=kind, ignore_label=ignore_label, name=os.path.basename(path), where=where, **layout
    )


def dense_from_python(path: str, *, kind: str | None = None, ignore_label: int | None = None, **layout: Any) -> Data:
    """What a user's function `package.module:function` returns (e.g. `(images, masks)`), called with `seed=`
    when it takes one; see `dense_generated.dense_from_arrays`.

    Raises:
      UserInputError: a path that does not import, a function that raises, or a value `dense_from_arrays` refuses.
    """
    value = _called(path, layout.get("seed", 0))
    return dense_generated.dense_from_arrays(
        value, kind=kind, ignore_label=ignore_label, name=path.rpartition(":")[2], where=f"dataset=python:{path}",
        **layout,
    )  # fmt: skip


def _called(path: str, seed: int) -> Any:
    """What the function at `package.module:function` returns, called with `seed=` when it takes a `seed`.

    Raises:
      UserInputError: a path that does not import, or a function that raises (its error as one line).
    """
    function = import_function(path, argument="dataset", shown=f"python:{path}")
    takes_seed = "seed" in inspect.signature(function).parameters
    try:
        return function(seed=seed) if takes_seed else function()
    except UserInputError:
        raise
    except Exception as e:  # noqa: BLE001  (the user's code: report its error as one line)
        raise UserInputError(
            f"dataset=python:{path}: the function raised {type(e).__name__}: {first_line(e)}", argument="dataset"
        ) from None


def _dense_value(value) -> bool:
    """Whether a loader's value holds targets with more than one value per example (masks, sequences, labels)."""
    if isinstance(value, Mapping):
        value = value.get("train", value.get("data"))
    if not isinstance(value, (tuple, list)) or len(value) != 2 or is_tf_dataset(value[1]):
        return False
    return np.ndim(value[1]) >= 2


def from_arrays(
    data,
    *,
    name: str = "arrays",
    where: str = "data",
    **layout: Any,
) -> Data:
    """Data from arrays or `tf.data` datasets, used as given (no scaling: the caller owns its preprocessing).

    `data` is one of:

    - `(x, y)`: every example; split stratified (or, with `balanced_evaluation`, as the long-tail benchmarks do).
    - `{"train": ..., "test": ..., "validation": ...}`: the splits, each `(x, y)` or a `tf.data.Dataset` of
      `(x, y)` (batched or not); without `validation`, a stratified `validation_fraction` of train is held out.
    - either of them as `{"data": ..., "class_names": [...]}` to name the classes.

    `x` is (N, D) tabular features, (N, H, W, C) images, or (N, H, W) images (a channel axis is added); `y` is
    (N,) integer class ids 0..K-1, each present in training. `name` names the data in logs, `where` in messages;
    `**layout` takes the `Layout` fields (`imbalance_ratio`, 0 by default: the data's own ratio, ...).

    Raises:
      UserInputError: the wrong structure, mismatched or wrong shapes, non-numeric or non-finite features, labels
        that are not 0..K-1, or a class absent from the training split.
    """
    class_names = None
    if isinstance(data, Mapping) and "data" in data:
        class_names = tuple(str(n) for n in data.get("class_names", ()))
        data = data["data"]
    settings = layout_of(layout)
    given = _given_arrays(data, where)
    x = np.concatenate([g[0] for g in given.values()])
    y = np.concatenate([g[1] for g in given.values()])
    num_classes = max(int(y.max()) + 1, len(class_names or ()))
    class_names = _class_names(class_names, num_classes, where)
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
        index = layout_indices(y, num_classes, class_names, name, settings)
    else:
        index = given_split_indices(y, positions, num_classes, class_names, name, settings)
    return array_data(x, y, index, num_classes=num_classes, class_names=class_names, name=name)


def _given_arrays(data, where: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """`{"all": (x, y)}` for one pair, else `(x, y)` per given split."""
    if isinstance(data, Mapping):
        unknown = sorted(set(data) - set(SPLITS))
        check(
            not unknown and {"train", "test"} <= set(data),
            f"{where}: expected the splits train and test (and validation). Received: keys {sorted(data)}",
            argument="dataset",
        )
        return {s: as_arrays(data[s], f"{where} ({s})") for s in SPLITS if s in data}
    check(
        isinstance(data, (tuple, list)) and len(data) == 2,
        f"{where}: expected (x, y) or a dict of splits. Received: {type(data).__name__}",
        argument="dataset",
    )
    return {"all": as_arrays(data, where)}


def _class_names(class_names: tuple[str, ...] | None, num_classes: int, where: str) -> tuple[str, ...]:
    """The given class names, checked against K, or the class ids as text."""
    if not class_names:
        return tuple(str(c) for c in range(num_classes))
    check(
        len(class_names) == num_classes,
        f"{where}: {len(class_names)} class_names for labels 0..{num_classes - 1}",
        argument="dataset",
    )
    return class_names


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
        raise UserInputError(f"{where}: x and y must be arrays ({first_line(e)})", argument="dataset") from None
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
            f"{argument}={shown!r} does not import: {type(e).__name__}: {first_line(e)}", argument=argument
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


# TFDS.


def from_tfds(
    name: str,
    *,
    positive_class: int = 0,
    input_feature: str | None = None,
    label_feature: str | None = None,
    data_dir: str | None = None,
    **layout: Any,
) -> Data:
    """A TFDS classification dataset, one-vs-rest or with all its classes.

    Reads every split of the prepared copy in `data_dir` with `tfds.load` and re-splits; nothing is downloaded (a
    dataset not prepared there is refused at once: prepare it with `tfds build NAME --data_dir=DIR`).
    The input and label are the dataset's supervised keys; a dataset without them (one stored with
    `tfds.dataset_builders.store_as_tfds_dataset`, say) uses `input_feature` and `label_feature`, or its one
    `ClassLabel` feature as the label and its one other feature as the input.

    `positive_class` >= 0 relabels that class 1 and the rest 0; with an `imbalance_ratio` r the positive class is
    subsampled to 1:r. -1 keeps the K classes, subsampled to the `class_profile` when r is given (with
    `balanced_evaluation`, only the training split; validation and test keep equal class counts). Images (uint8,
    or values above 1) are scaled to [0, 1]; (H, W) images get a channel axis. `**layout` takes the `Layout`
    fields (`imbalance_ratio`, 0 by default: the data's own ratio, `class_profile`, `balanced_evaluation`,
    `validation_fraction`, `test_fraction`, `seed`).

    Raises:
      UserInputError: a dataset not prepared in `data_dir`, an unknown dataset name or feature, no way to choose
        the features, an input that is not a numeric tensor, images of different sizes, or a `positive_class`
        absent from the data.
    """
    where = f"dataset=tfds:{name}"
    builder = tfds_builder(name, data_dir)
    keys = _tfds_keys(builder.info, input_feature, label_feature, where)
    label_info = builder.info.features[keys[1]]  # _tfds_keys checked it is a feature
    x, raw = _read_tfds(name, list(builder.info.splits) or ["train"], data_dir, keys, where)
    image = x.ndim >= 3
    x = x.astype(np.float32)
    if image:
        x = x / 255.0 if x.max() > 1 else x
        if x.ndim == 3:
            x = x[..., None]
    settings = layout_of(layout)
    y, class_names, title = _tfds_labels(raw, label_info, positive_class, name, where, keys[1])
    index = layout_indices(y, len(class_names), class_names, title, settings)
    data = array_data(x, y, index, num_classes=len(class_names), class_names=class_names, name=title)
    if not image:
        data = standardised(data)
    return data


def _read_tfds(name: str, splits: list[str], data_dir: str | None, keys: tuple[str, str], where: str):
    """Every split's (input, label) pairs as one numeric array x and one int64 label array.

    Raises:
      UserInputError: inputs that do not stack into one array, or that are not numeric.
    """
    import tensorflow as tf
    import tensorflow_datasets as tfds

    input_key, label_key = keys
    xs, ys = [], []
    try:
        datasets = [tfds.load(name, split=split, data_dir=data_dir, download=False) for split in splits]
    except AssertionError:  # TFDS's way of saying that the data is not in data_dir
        raise not_prepared(name, data_dir, where) from None
    try:
        for dataset in datasets:
            dataset = dataset.map(lambda e: (e[input_key], e[label_key]))
            # Batched reads rather than batch_size=-1: the size of a split need not be known up front.
            for x, y in tfds.as_numpy(dataset.batch(4096)):
                xs.append(np.asarray(x))
                ys.append(np.asarray(y).astype(np.int64).reshape(-1))
    except (tf.errors.InvalidArgumentError, ValueError, TypeError) as e:
        raise UserInputError(
            f"{where}: input_feature={input_key!r} cannot be stacked into one array (examples of different "
            f"shapes or a non-numeric feature?): {first_line(e)}",
            argument="input_feature",
        ) from None
    x, raw = np.concatenate(xs), np.concatenate(ys)
    check(
        np.issubdtype(x.dtype, np.number) or x.dtype == bool,
        f"input_feature={input_key!r} of {where} is not numeric (dtype {x.dtype}); choose a tensor or image feature",
        argument="input_feature",
    )
    return x, raw


def _tfds_labels(raw: np.ndarray, label_info, positive_class: int, name: str, where: str, label_key: str):
    """(labels, class names, title): one-vs-rest for `positive_class` >= 0, else every class (each present).

    Raises:
      UserInputError: a positive class absent from the data, or (K classes) a class without an example.
    """
    present = np.unique(raw)
    if positive_class >= 0:
        check(
            positive_class in present,
            f"positive_class={positive_class} does not occur in tfds:{name}; classes present: {present.tolist()[:20]}",
            argument="positive_class",
        )
        y = (raw == positive_class).astype(np.int32)
        return y, ("rest", _class_name(label_info, positive_class)), f"{name} {positive_class}-vs-rest"
    num_classes = getattr(label_info, "num_classes", None) or int(raw.max()) + 1
    absent = sorted(set(range(num_classes)) - set(present.tolist()))
    check(
        not absent,
        f"{where}: class {absent[:1]} of label_feature={label_key!r} has no example; positive_class=-1 needs "
        "every class. Received: positive_class=-1",
        argument="positive_class",
    )
    class_names = tuple(_class_name(label_info, c) for c in range(num_classes))
    return raw.astype(np.int32), class_names, f"{name} {num_classes} classes"


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
