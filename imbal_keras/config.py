"""`ExperimentConfig`: everything one run needs, as plain data.

A config is built by `flags/` from the command line, by `grid.py` from grid axes, or directly in Python. It is
the single description of a run: it is written into the run folder, it names the run, and its fields become the
columns of the results tables. Field names equal flag names, so validation messages name the flag.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from typing import Any

from imbal_keras.errors import UserInputError, check

OPTIMIZERS = ("sgd", "adam")
CLASS_WEIGHT_NORMALIZATIONS = ("mean_one", "sum_to_num_classes")
WEIGHT_REDUCTIONS = ("sum_over_batch_size", "mean_with_sample_weight")


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """One training run.

    Attributes:
      dataset: `synthetic`, `csv:PATH` or `tfds:NAME`.
      num_examples: synthetic only: examples over all three splits.
      num_features: synthetic only: feature dimension.
      num_classes: synthetic only: number of classes K (K > 2 gives a geometric long tail).
      class_separation: synthetic only: distance scale between class clusters.
      label_noise: synthetic only: fraction of labels replaced by a uniformly drawn class.
      imbalance_ratio: majority:minority ratio r (99 means 1:99); for `tfds` the positive class is subsampled
        to reach it. `0` for `csv`/`tfds` keeps the data's own ratio.
      label_column: csv only: name of the label column.
      positive_label: csv only: the label value that is the positive class (one-vs-rest); empty means the labels
        are already the integers 0..K-1.
      positive_class: tfds only: the class id that becomes the positive class (one-vs-rest).
      data_dir: tfds only: `tfds.load(data_dir=...)`.
      validation_fraction: share of the data held out for validation (stratified).
      test_fraction: share of the data held out for test (stratified).
      strategy: registered strategy name (see `imbal_keras.strategies`).
      target_distribution: class shares the strategy rebalances towards; empty means uniform.
      class_weight_normalization: `mean_one` (w_c = N/(K n_c)) or `sum_to_num_classes` (sum_c w_c = K).
      weight_reduction: `sum_over_batch_size` (sum w*l / B) or `mean_with_sample_weight` (sum w*l / sum w).
      batch_size: examples per optimizer step.
      steps: optimizer steps (equal across strategies: the budget that makes runs comparable).
      eval_every: evaluate on validation and test every this many steps.
      optimizer: `sgd` or `adam`.
      learning_rate: optimizer learning rate.
      hidden_units: MLP hidden layer widths (tabular data).
      seed: seeds data generation, splits, pipelines and initialisation.
      output_dir: parent folder of the run folder.
      run_name: run folder name; empty derives one from the config.
      log_composition: log the class make-up of every batch.
      gradient_every_n_steps: log per-class gradients every n steps; 0 turns them off.
    """

    dataset: str = "synthetic"
    num_examples: int = 50_000
    num_features: int = 20
    num_classes: int = 2
    class_separation: float = 1.0
    label_noise: float = 0.0
    imbalance_ratio: float = 99.0
    label_column: str = "label"
    positive_label: str = ""
    positive_class: int = 0
    data_dir: str = ""
    validation_fraction: float = 0.2
    test_fraction: float = 0.2
    strategy: str = "none"
    target_distribution: tuple[float, ...] = ()
    class_weight_normalization: str = "mean_one"
    weight_reduction: str = "sum_over_batch_size"
    batch_size: int = 16
    steps: int = 2000
    eval_every: int = 200
    optimizer: str = "sgd"
    learning_rate: float = 0.05
    hidden_units: tuple[int, ...] = (64, 64)
    seed: int = 0
    output_dir: str = "runs"
    run_name: str = ""
    log_composition: bool = True
    gradient_every_n_steps: int = 10

    def __post_init__(self):
        # Lists from JSON or flags become tuples so configs stay hashable and compare equal.
        object.__setattr__(self, "target_distribution", tuple(float(t) for t in self.target_distribution))
        object.__setattr__(self, "hidden_units", tuple(int(h) for h in self.hidden_units))

    def replace(self, **changes: Any) -> ExperimentConfig:
        """Returns a copy with `changes` applied."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict of every field."""
        d = dataclasses.asdict(self)
        d["target_distribution"] = list(self.target_distribution)
        d["hidden_units"] = list(self.hidden_units)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ExperimentConfig:
        """Inverse of `to_dict`; unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        check(not unknown, f"Unknown config fields: {unknown}. Valid fields: {sorted(names)}")
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @property
    def dataset_kind(self) -> str:
        """`synthetic`, `csv` or `tfds`."""
        return self.dataset.split(":", 1)[0]

    @property
    def dataset_arg(self) -> str:
        """The part after `csv:` / `tfds:` (path or dataset name)."""
        return self.dataset.split(":", 1)[1] if ":" in self.dataset else ""

    def default_run_name(self) -> str:
        """A readable, deterministic folder name: dataset, strategy and the axes a grid usually varies."""
        data = self.dataset_kind if self.dataset_kind == "synthetic" else self.dataset_arg.split("/")[-1].split(".")[0]
        parts = [data, self.strategy]
        if self.strategy == "class_weight":
            parts += [self.class_weight_normalization, self.weight_reduction]
        parts += [
            f"r{_short(self.imbalance_ratio)}",
            f"b{self.batch_size}",
            self.optimizer,
            f"lr{_short(self.learning_rate)}",
            f"seed{self.seed}",
        ]
        return "_".join(p.replace(".", "p").replace(":", "-") for p in parts)

    def validate(self) -> ExperimentConfig:
        """Checks every field that can be checked without loading data.

        Returns:
          self, for chaining.

        Raises:
          UserInputError: naming the field (= flag) and the value received.
        """
        # Imported here: the strategy registry imports TensorFlow, configs should not need it.
        from imbal_keras import strategies

        kind = self.dataset_kind
        check(
            kind in ("synthetic", "csv", "tfds") and (kind == "synthetic" or self.dataset_arg),
            f"--dataset must be 'synthetic', 'csv:PATH' or 'tfds:NAME'. Received: dataset={self.dataset!r}",
        )
        strategies.get(self.strategy)  # raises with the list of valid names
        check(
            math.isfinite(self.imbalance_ratio)
            and (self.imbalance_ratio > 0 or (kind != "synthetic" and self.imbalance_ratio == 0)),
            "--imbalance_ratio must be > 0 (99 means 1:99; 0 keeps a csv/tfds dataset's own ratio). "
            f"Received: imbalance_ratio={_short(self.imbalance_ratio)}",
        )
        check(self.batch_size > 0, f"--batch_size must be > 0. Received: batch_size={self.batch_size}")
        check(self.steps > 0, f"--steps must be > 0. Received: steps={self.steps}")
        check(self.eval_every > 0, f"--eval_every must be > 0. Received: eval_every={self.eval_every}")
        check(
            self.learning_rate > 0 and math.isfinite(self.learning_rate),
            f"--learning_rate must be > 0. Received: learning_rate={self.learning_rate}",
        )
        check(self.optimizer in OPTIMIZERS, _choice_message("optimizer", self.optimizer, OPTIMIZERS))
        check(
            self.class_weight_normalization in CLASS_WEIGHT_NORMALIZATIONS,
            _choice_message(
                "class_weight_normalization",
                self.class_weight_normalization,
                CLASS_WEIGHT_NORMALIZATIONS,
            ),
        )
        check(
            self.weight_reduction in WEIGHT_REDUCTIONS,
            _choice_message("weight_reduction", self.weight_reduction, WEIGHT_REDUCTIONS),
        )
        check(
            self.num_classes >= 2,
            f"--num_classes must be >= 2. Received: num_classes={self.num_classes}",
        )
        check(
            self.num_examples > 0,
            f"--num_examples must be > 0. Received: num_examples={self.num_examples}",
        )
        check(
            self.num_features > 0,
            f"--num_features must be > 0. Received: num_features={self.num_features}",
        )
        check(
            0 <= self.label_noise < 1,
            f"--label_noise must be in [0, 1). Received: label_noise={self.label_noise}",
        )
        check(
            self.class_separation >= 0,
            f"--class_separation must be >= 0. Received: class_separation={self.class_separation}",
        )
        for name in ("validation_fraction", "test_fraction"):
            value = getattr(self, name)
            check(0 < value < 1, f"--{name} must be in (0, 1). Received: {name}={value}")
        check(
            self.validation_fraction + self.test_fraction < 1,
            "--validation_fraction + --test_fraction must be < 1. Received: "
            f"validation_fraction={self.validation_fraction}, test_fraction={self.test_fraction}",
        )
        check(
            all(h > 0 for h in self.hidden_units),
            f"--hidden_units must be positive widths. Received: hidden_units={list(self.hidden_units)}",
        )
        check(
            self.gradient_every_n_steps >= 0,
            f"--gradient_every_n_steps must be >= 0 (0 turns it off). "
            f"Received: gradient_every_n_steps={self.gradient_every_n_steps}",
        )
        if self.target_distribution and kind == "synthetic":
            validate_target_distribution(self.target_distribution, self.num_classes)
        return self


def validate_target_distribution(target: Sequence[float], num_classes: int) -> tuple[float, ...]:
    """Checks a target class distribution and returns it as a tuple.

    Raises:
      UserInputError: wrong length, a negative or non-finite share, or shares not summing to 1 (tolerance 1e-6).
    """
    shown = ",".join(_short(t) for t in target)
    check(
        len(target) == num_classes,
        f"--target_distribution needs one share per class ({num_classes} classes). "
        f"Received: target_distribution={shown}",
    )
    check(
        all(math.isfinite(t) and t >= 0 for t in target),
        f"--target_distribution shares must be >= 0. Received: target_distribution={shown}",
    )
    check(
        abs(sum(target) - 1.0) <= 1e-6,
        f"--target_distribution must sum to 1 (sums to {sum(target):.6g}). Received: target_distribution={shown}",
    )
    return tuple(float(t) for t in target)


def _choice_message(name: str, value: Any, choices: Sequence[str]) -> str:
    return f"--{name} must be one of {', '.join(choices)}. Received: {name}={value!r}"


def _short(x: float) -> str:
    """99.0 -> '99', 0.05 -> '0.05'."""
    return f"{x:g}"


__all__ = [
    "ExperimentConfig",
    "UserInputError",
    "validate_target_distribution",
    "OPTIMIZERS",
    "CLASS_WEIGHT_NORMALIZATIONS",
    "WEIGHT_REDUCTIONS",
]
