"""`DataConfig`: the data part of a config (where the examples come from, how they are split, which label is
no class). Imports no TensorFlow.
"""

from __future__ import annotations

import dataclasses
import math

from imbal_keras.config.fields import check_range, choice_message, is_function_path, role_field, short
from imbal_keras.data.dense_generated import SYNTHETIC as DENSE_SYNTHETIC
from imbal_keras.data.longtail import CLASS_PROFILES
from imbal_keras.errors import check

__all__ = ["DATASET_KINDS", "SYNTHETIC_IMBALANCE_RATIO", "DataConfig"]

DATASET_KINDS = ("synthetic", "csv", "parquet", "npz", "tfds", "python", *DENSE_SYNTHETIC)
# The ratio synthetic data is generated at when `imbalance_ratio` is 0 (the default): 1:99.
SYNTHETIC_IMBALANCE_RATIO = 99.0


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the examples come from and how they are split.

    Attributes:
      dataset: `synthetic`, `csv:PATH`, `parquet:PATH`, `npz:PATH`, `tfds:NAME`, `python:package.module:function`
        (see docs/datasets.md), or embedded dense data: `synthetic_segmentation`, `synthetic_tokens`,
        `synthetic_multilabel` (see docs/segmentation.md, docs/multilabel.md).
      num_examples: synthetic only: examples over all three splits.
      num_features: synthetic only: feature dimension.
      num_classes: synthetic only: number of classes K.
      class_separation: synthetic only: distance scale between class clusters.
      label_noise: synthetic only: fraction of labels replaced by a uniformly drawn class.
      imbalance_ratio: rho = n_max / n_min, the largest class's examples over the smallest's (99 means 1:99);
        synthetic data is generated at it, other data subsampled to it (for `tfds` one-vs-rest, the positive
        class) and the log says how many rows of each class that dropped. `0`, the default, keeps a dataset's
        own ratio: data is used as given; synthetic data, which has no ratio of its own, is then generated at
        1:99.
      class_profile: how class sizes fall from the largest to the smallest for K > 2: `exponential` (n_c
        proportional to rho^(-c/(K-1))) or `step` (the first floor(K/2) classes large, the rest rho times smaller).
        Class 0 is the largest. The same for K = 2 (1:rho).
      balanced_evaluation: validation and test keep equal class counts, as in the long-tail benchmarks; only
        training follows `imbalance_ratio` and `class_profile`. Off: every split keeps the same class ratio.
      label_column: csv/parquet only: name of the label column.
      positive_label: csv/parquet only: the label value that is the positive class (one-vs-rest); empty means the
        labels are already the integers 0..K-1.
      categorical_columns: csv/parquet only: string or integer-coded columns to encode as categories; any other
        non-numeric column is refused.
      drop_columns: csv/parquet only: columns that are not features (IDs, free text).
      time_column: csv/parquet only: split forward in time by this column (oldest rows train, newest test)
        instead of the random stratified split; it is not used as a feature.
      max_categories: csv/parquet only: most levels a categorical column may have (more is refused: an ID?).
      positive_class: tfds only: the class id that becomes the positive class (one-vs-rest); -1 keeps all K classes.
      input_feature: tfds only: the feature that is the model's input; empty uses the supervised keys, or the one
        feature besides the label.
      label_feature: tfds only: the `ClassLabel` feature that is the label; empty uses the supervised keys, or
        the one `ClassLabel` feature. A mask feature (an `Image` with one channel, an integer `Tensor` (H, W))
        makes the run a segmentation run on the named masks, with `input_feature` as the image.
      data_dir: tfds only: `tfds.load(data_dir=...)`.
      ignore_label: masks and label sequences only: a label that is no class (255 is the common border label):
        weight 0 in the pipelines and losses, left out of the pixel counts, class weights, composition and
        metrics, and not counted in the number of classes; -1: none. Refused for single-label and multi-label
        data.
      validation_fraction: share of the data held out for validation (stratified).
      test_fraction: share of the data held out for test (stratified).
    """

    dataset: str = role_field("synthetic", "setting")
    num_examples: int = role_field(50_000, "setting")
    num_features: int = role_field(20, "setting")
    num_classes: int = role_field(2, "setting")
    class_separation: float = role_field(1.0, "setting")
    label_noise: float = role_field(0.0, "setting")
    imbalance_ratio: float = role_field(0.0, "setting")
    class_profile: str = role_field("exponential", "setting")
    balanced_evaluation: bool = role_field(False, "setting")
    label_column: str = role_field("label", "setting")
    positive_label: str = role_field("", "setting")
    categorical_columns: tuple[str, ...] = role_field((), "setting")
    drop_columns: tuple[str, ...] = role_field((), "setting")
    time_column: str = role_field("", "setting")
    max_categories: int = role_field(1000, "setting")
    positive_class: int = role_field(0, "setting")
    input_feature: str = role_field("", "setting")
    label_feature: str = role_field("", "setting")
    data_dir: str = role_field("", "setting")
    ignore_label: int = role_field(-1, "setting")
    validation_fraction: float = role_field(0.2, "setting")
    test_fraction: float = role_field(0.2, "setting")

    def __post_init__(self):
        for name in ("categorical_columns", "drop_columns"):
            value = getattr(self, name)
            object.__setattr__(self, name, (value,) if isinstance(value, str) else tuple(str(c) for c in value))

    @property
    def kind(self) -> str:
        """`synthetic`, `csv`, `parquet`, `npz`, `tfds`, `python` or an embedded dense set's name."""
        return self.dataset.split(":", 1)[0]

    @property
    def effective_imbalance_ratio(self) -> float:
        """The ratio the data is laid out at: `imbalance_ratio`, but synthetic data (no ratio of its own) at 0 is
        generated at `SYNTHETIC_IMBALANCE_RATIO`. 0 for other data keeps its own ratio."""
        at_default = self.kind == "synthetic" and self.imbalance_ratio == 0
        return SYNTHETIC_IMBALANCE_RATIO if at_default else self.imbalance_ratio

    @property
    def ignored(self) -> int | None:
        """`ignore_label` as the loaders take it: None at -1."""
        return None if self.ignore_label == -1 else self.ignore_label

    @property
    def argument(self) -> str:
        """The part after `csv:` / `tfds:` / ... (path, dataset name or `package.module:function`)."""
        return self.dataset.split(":", 1)[1] if ":" in self.dataset else ""

    def validate(self) -> None:
        kind = self.kind
        check(
            kind in DATASET_KINDS and (kind.startswith("synthetic") or self.argument),
            "dataset must be 'synthetic', 'csv:PATH', 'parquet:PATH', 'npz:PATH', 'tfds:NAME' or "
            f"'python:package.module:function' (or {', '.join(DENSE_SYNTHETIC)}). Received: dataset={self.dataset!r}",
            argument="dataset",
        )
        check(
            kind != "python" or is_function_path(self.argument),
            f"dataset must name a function as 'python:package.module:function'. Received: dataset={self.dataset!r}",
            argument="dataset",
        )
        check(
            math.isfinite(self.imbalance_ratio) and (self.imbalance_ratio >= 1 or self.imbalance_ratio == 0),
            "imbalance_ratio must be >= 1 (99 means 1:99), or 0 to keep a dataset's own ratio. "
            f"Received: imbalance_ratio={short(self.imbalance_ratio)}",
            argument="imbalance_ratio",
        )
        check(
            self.class_profile in CLASS_PROFILES,
            choice_message("class_profile", self.class_profile, CLASS_PROFILES),
            argument="class_profile",
        )
        check_range(self, "num_classes", low=2)
        check_range(self, "num_examples", low=1)
        check_range(self, "num_features", low=1)
        if kind == "synthetic":
            from imbal_keras.data.generated import check_synthetic_memory

            check_synthetic_memory(self.num_examples, self.num_features)
        check_range(self, "max_categories", low=1)
        check_range(self, "ignore_label", low=-1, note=" (-1: no ignore label)")
        check_range(self, "positive_class", low=-1, note=" (-1 keeps all classes)")
        check(
            0 <= self.label_noise < 1,
            f"label_noise must be in [0, 1). Received: label_noise={self.label_noise}",
            argument="label_noise",
        )
        check_range(self, "class_separation", low=0)
        for name in ("validation_fraction", "test_fraction"):
            value = getattr(self, name)
            check(0 < value < 1, f"{name} must be in (0, 1). Received: {name}={value}", argument=name)
        check(
            self.validation_fraction + self.test_fraction < 1,
            "validation_fraction + test_fraction must be < 1. Received: "
            f"validation_fraction={self.validation_fraction}, test_fraction={self.test_fraction}",
            argument="validation_fraction",
        )
        both = sorted(set(self.categorical_columns) & {*self.drop_columns, self.label_column, self.time_column})
        check(
            not both,
            f"categorical_columns names a column that is also dropped, the label or the time column: {both}. "
            f"Received: categorical_columns={','.join(self.categorical_columns)}",
            argument="categorical_columns",
        )
