"""Tables as features: the columns of a pandas DataFrame encoded into a float32 feature matrix.

`from_frame` turns a table with one label column into `Data`: numeric columns imputed (with a missing-value
indicator) and standardised, categorical columns encoded as integer codes (`Feature` says what each column of x
holds), every statistic from the training split only. The readers of CSV and Parquet files are in `sources`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from imbal_keras.data.splits import Data, array_data, layout_indices, layout_of
from imbal_keras.errors import UserInputError, check

__all__ = ["MISSING_CODE", "UNSEEN_CODE", "Feature", "from_frame"]

# Codes of a categorical column: 0 is a missing value, 1 a level the training split does not have, 2.. the
# training split's levels in sorted order.
MISSING_CODE = 0
UNSEEN_CODE = 1


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


def from_frame(
    frame,
    *,
    label_column: str = "label",
    positive_label: str | None = None,
    categorical_columns: Sequence[str] = (),
    drop_columns: Sequence[str] = (),
    time_column: str | None = None,
    max_categories: int = 1000,
    name: str = "table",
    where: str = "data",
    **layout: Any,
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
      name: the dataset's name in logs.
      where: how messages name the data (`dataset=csv:PATH`).
      **layout: the `Layout` fields: `imbalance_ratio`, `class_profile`, `balanced_evaluation` (subsampling to a
        long-tail profile, see `DataConfig`; imbalance_ratio 0, the default, keeps the table's own ratio),
        `validation_fraction`, `test_fraction` (split shares) and `seed` (the subsampling and the split).

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
    dropped = [*drop_columns, *([time_column] if time_column else [])]
    _check_named_columns(
        columns,
        where,
        label_column=[label_column],
        drop_columns=list(drop_columns),
        categorical_columns=list(categorical_columns),
        time_column=[time_column] if time_column else [],
    )
    y, class_names = _labels_from_column(frame[label_column], label_column, positive_label)
    settings = layout_of(layout)
    times = _time_values(frame[time_column], time_column) if time_column else None
    features = frame.drop(columns=[label_column, *dropped])
    check(
        features.shape[1] > 0,
        f"{where}: no feature columns besides the label and the dropped columns",
        argument="dataset",
    )
    categorical = _categorical_columns(features, categorical_columns, max_categories)
    numeric = {c: _numeric_column(features[c], c, where) for c in features.columns if c not in categorical}
    index = layout_indices(y, len(class_names), class_names, name, settings, times=times)
    x, feature_info = _encode(features, numeric, categorical, index["train"], where)
    data = array_data(x, y, index, num_classes=len(class_names), class_names=class_names, name=name)
    return dataclasses.replace(data, features=feature_info)


def _check_named_columns(columns: list[str], where: str, **named: list[str]) -> None:
    """Every column an argument names (argument name -> the columns it names) is a column of the table."""
    for argument, names in named.items():
        unknown = [c for c in names if c not in columns]
        check(
            not unknown,
            f"{argument}={','.join(names)!r} names {unknown[:3]}, not a column of {where}; columns: {columns[:20]}",
            argument=argument,
        )


def _categorical_columns(features, categorical_columns: Sequence[str], max_categories: int) -> list[str]:
    """The columns encoded as categories: those listed and those of pandas `category` dtype, within the limit."""
    categorical = [c for c in features.columns if c in categorical_columns or _is_category_dtype(features[c])]
    for column in categorical:
        levels = features[column].dropna().nunique()
        check(
            levels <= max_categories,
            f"max_categories={max_categories} is below the {levels} levels of categorical column {column!r} (an ID? "
            f"drop it with drop_columns, or raise max_categories). Received: max_categories={max_categories}",
            argument="max_categories",
        )
    return categorical


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
