"""`ExperimentConfig`: everything one run needs, as one frozen tree of plain data.

A config has five parts: `data`, `strategy` (a registered name plus the values of the parameters that strategy
declares), `model`, `training` and `output`. It is built by `flags/` from the command line, by `sweep` from grid
axes, or directly in Python; it is written into the run folder, it names the run, and `flat()` turns it into the
columns of the results tables. Field names are unique across the parts, and a strategy parameter's name is the
same for every strategy that declares it, so one spelling reaches any setting: the flag `--batch_size`, the grid
axis `--batch_size=16,64`, the results column `batch_size`, `ExperimentConfig.from_flat({"batch_size": 16})`.
This package does not import TensorFlow: the strategy registry keeps its parameter declarations free of it.
`DataConfig` lives in `config.data`, the field roles and the checks the parts share in `config.fields`; every
public name is importable from `imbal_keras.config`.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from imbal_keras.config.data import DATASET_KINDS, SYNTHETIC_IMBALANCE_RATIO, DataConfig
from imbal_keras.config.fields import ROLES, check_range, choice_message, is_function_path, role_field, short
from imbal_keras.data.dense_generated import SYNTHETIC as DENSE_SYNTHETIC
from imbal_keras.data.longtail import CLASS_PROFILES
from imbal_keras.errors import UserInputError, check

OPTIMIZERS = ("sgd", "adam")
BUILT_IN_MODELS = ("auto", "mlp", "cnn")


class _FrozenParams(dict):
    """A dict that refuses changes, so a frozen config's strategy parameters stay frozen."""

    def _refuse(self, *args, **kwargs):
        raise TypeError("strategy parameters of a config are read-only; use ExperimentConfig.replace")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _refuse  # type: ignore[assignment]

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.items())))


@dataclasses.dataclass(frozen=True)
class StrategyConfig:
    """A registered strategy and the values of the parameters it declares.

    Attributes:
      name: registered strategy name (see `imbal_keras.strategies`).
      target_distribution: class shares the strategy rebalances towards; empty means uniform.
      params: the strategy's parameter values by parameter name; every parameter the strategy declares is
        present (missing ones take their declared default), and no other.
    """

    name: str = "none"
    target_distribution: tuple[float, ...] = ()
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        from imbal_keras import strategies  # declarations only: imports no TensorFlow

        object.__setattr__(self, "target_distribution", tuple(float(t) for t in self.target_distribution))
        strategy = strategies.get(self.name)
        object.__setattr__(self, "params", _FrozenParams(strategy.resolve_params(self.params)))

    def __hash__(self) -> int:
        return hash((self.name, self.target_distribution, tuple(sorted(self.params.items()))))

    def variant(self) -> str:
        """The strategy name plus its parameters that differ from their defaults: `name[p=v,...]`.

        This is the label of a strategy variant in the report; a strategy at its defaults is just its name.
        """
        from imbal_keras import strategies

        declared = strategies.get(self.name).params
        changed = [f"{p.name}={short(self.params[p.name])}" for p in declared if self.params[p.name] != p.default]
        return f"{self.name}[{','.join(changed)}]" if changed else self.name


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The model the toolkit builds.

    Attributes:
      model: `auto` (an MLP for tabular data, a CNN for images), `mlp`, `cnn`, or `package.module:function`, a
        function that builds a Keras model (see docs/models.md for its arguments); only the path travels to grid
        workers, which import it.
      hidden_units: MLP hidden layer widths (tabular data), or the dense head after the convolutions (images).
      zero_output_kernel: start the output layer's kernel at zero, so that every example's first prediction is
        exactly the class prior the output bias encodes (a random kernel spreads predictions around it).
    """

    model: str = role_field("auto", "setting")
    hidden_units: tuple[int, ...] = role_field((64, 64), "setting")
    zero_output_kernel: bool = role_field(False, "setting")

    def __post_init__(self):
        object.__setattr__(self, "hidden_units", tuple(int(h) for h in self.hidden_units))

    def validate(self) -> None:
        check(
            self.model in BUILT_IN_MODELS or is_function_path(self.model),
            f"model must be one of {', '.join(BUILT_IN_MODELS)} or 'package.module:function'. "
            f"Received: model={self.model!r}",
            argument="model",
        )
        check(
            all(h > 0 for h in self.hidden_units),
            f"hidden_units must be positive widths. Received: hidden_units={list(self.hidden_units)}",
            argument="hidden_units",
        )


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """The optimisation budget and the seeds.

    Attributes:
      batch_size: examples per optimizer step.
      steps: optimizer steps (equal across strategies: the budget that makes runs comparable).
      eval_every: evaluate on validation and test every this many steps.
      optimizer: `sgd` or `adam`.
      learning_rate: optimizer learning rate.
      seed: the default of the three seeds below: same seed, same result.
      data_seed: seeds data generation and the train/validation/test split; -1 means `seed`.
      init_seed: seeds the initial weights; -1 means `seed`.
      order_seed: seeds the training pipeline's draws (which examples form which batch); -1 means `seed`.
      posthoc_adjustment_tau: evaluation only: post-hoc logit adjustment (Menon et al. 2021) of the predicted
        probabilities, p_c / pi_c^tau renormalised with pi the training class shares; 0 turns it off.
    """

    batch_size: int = role_field(16, "setting")
    steps: int = role_field(2000, "per_run")
    eval_every: int = role_field(200, "per_run")
    optimizer: str = role_field("sgd", "setting")
    learning_rate: float = role_field(0.05, "setting")
    seed: int = role_field(0, "training_seed")
    data_seed: int = role_field(-1, "data_seed")
    init_seed: int = role_field(-1, "training_seed")
    order_seed: int = role_field(-1, "training_seed")
    posthoc_adjustment_tau: float = role_field(0.0, "per_run")

    def seed_for(self, source: str) -> int:
        """The seed of `source` (`data`, `init` or `order`): its own if set, else `seed`."""
        value = getattr(self, f"{source}_seed")
        return self.seed if value < 0 else value

    def validate(self) -> None:
        check_range(self, "batch_size", low=1)
        check_range(self, "steps", low=1)
        check_range(self, "eval_every", low=1)
        check(
            self.learning_rate > 0 and math.isfinite(self.learning_rate),
            f"learning_rate must be > 0. Received: learning_rate={self.learning_rate}",
            argument="learning_rate",
        )
        check(
            self.optimizer in OPTIMIZERS,
            choice_message("optimizer", self.optimizer, OPTIMIZERS),
            argument="optimizer",
        )
        check_range(self, "seed", low=0)
        for name in ("data_seed", "init_seed", "order_seed"):
            check_range(self, name, low=-1, note=" (-1 means --seed)")
        check_range(self, "posthoc_adjustment_tau", low=0, note=" (0 turns it off)")


@dataclasses.dataclass(frozen=True)
class OutputConfig:
    """Where the run folder goes and what the default callbacks record.

    Attributes:
      output_dir: parent folder of the run folder.
      run_name: run folder name; empty derives one from the config.
      log_composition: log the class make-up of every batch.
      gradient_every_n_steps: log per-class gradients every n steps; 0 turns them off.
      diagnose_every: record the gradient-noise diagnostics of the run's strategy (mean and covariance of its
        mini-batch gradient, noise scale; see docs/diagnostics.md) every n steps; 0 turns them off.
    """

    output_dir: str = role_field("runs", "output")
    run_name: str = role_field("", "output")
    log_composition: bool = role_field(True, "setting")
    gradient_every_n_steps: int = role_field(10, "setting")
    diagnose_every: int = role_field(0, "setting")

    def validate(self) -> None:
        check_range(self, "gradient_every_n_steps", low=0, note=" (0 turns it off)")
        check_range(self, "diagnose_every", low=0, note=" (0 turns it off)")


# Part name -> its class, in the order of the config tree (and of the results columns).
PARTS: dict[str, type] = {
    "data": DataConfig,
    "strategy": StrategyConfig,
    "model": ModelConfig,
    "training": TrainingConfig,
    "output": OutputConfig,
}
# The roles of the strategy part's flat names (its parameters are `variant` too; see `role_of`).
_STRATEGY_ROLES = {"strategy": "variant", "target_distribution": "setting"}


@functools.cache
def role_of(name: str) -> str:
    """The role (a key of ROLES) of the flat field `name` (found once per name: a grid's expansion asks for every
    field of every run; a strategy registered later only adds names, so no answer changes).

    Raises:
      UserInputError: an unknown name.
    """
    from imbal_keras import strategies  # declarations only: imports no TensorFlow

    if name in _STRATEGY_ROLES:
        return _STRATEGY_ROLES[name]
    if name in strategies.all_params():
        return "variant"
    for part_name, part_cls in PARTS.items():
        if part_name == "strategy":
            continue
        for field in dataclasses.fields(part_cls):
            if field.name == name:
                return field.metadata["role"]
    raise UserInputError(f"Unknown config field: {name!r}. Valid fields: {sorted(field_names())}")


def fields_with_role(*roles: str) -> tuple[str, ...]:
    """The flat names whose role is one of `roles`, in `field_names()` order.

    Raises:
      UserInputError: a role that is not a key of ROLES.
    """
    unknown = sorted(set(roles) - set(ROLES))
    check(not unknown, f"Unknown field roles: {unknown}. Valid roles: {sorted(ROLES)}", argument="roles")
    return tuple(name for name in field_names() if role_of(name) in roles)


# The keys that group runs, by the roles of the fields they hold: `compiled`, what a compiled model's traced
# functions depend on (warm runs reuse a model of an equal key); `pack`, what runs trained side by side share (their
# shapes and budget; seeds, data seeds and strategies may differ); `cell`, what a grid cell's runs share but variants.
KEY_ROLES = {
    "compiled": ("variant", "setting"),
    "pack": ("per_run", "setting"),
    "cell": ("data_seed", "per_run", "setting"),
}


def key_fields(key: str) -> tuple[str, ...]:
    """The flat names that make up `key` (a key of KEY_ROLES)."""
    check(key in KEY_ROLES, f"key must be one of {', '.join(KEY_ROLES)}. Received: key={key!r}", argument="key")
    return fields_with_role(*KEY_ROLES[key])


def _fields(part) -> dict[str, Any]:
    """A config part's fields by name, as `dataclasses.asdict` gives them (a copy of any list or dict), without
    its recursion over the scalars and tuples parts hold: a grid's expansion takes every run's fields several
    times."""
    return {
        f.name: copy.deepcopy(value) if isinstance(value := getattr(part, f.name), (list, dict)) else value
        for f in dataclasses.fields(part)
    }


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """One training run: the five parts.

    Build it part by part (`ExperimentConfig(training=TrainingConfig(steps=500))`) or from flat names
    (`ExperimentConfig.from_flat({"steps": 500, "strategy": "class_weight", "weight_reduction": ...})`).
    """

    data: DataConfig = DataConfig()
    strategy: StrategyConfig = StrategyConfig()
    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()
    output: OutputConfig = OutputConfig()

    def replace(self, **flat: Any) -> ExperimentConfig:
        """A copy with flat fields changed (`replace(batch_size=64, strategy="upsample")`).

        Changing `strategy` keeps the parameter values the new strategy also declares.
        """
        from imbal_keras import strategies

        values = self.flat()
        if "strategy" in flat:
            declared = {p.name for p in strategies.get(flat["strategy"]).params}
            for name in self.strategy.params:
                if name not in declared:
                    del values[name]
        values.update(flat)
        return ExperimentConfig.from_flat(values)

    def flat(self) -> dict[str, Any]:
        """Every setting under its flat name: the parts' fields, `strategy` (the name) and its parameters.

        Column order: data, strategy name, target distribution, strategy parameters, model, training, output.
        """
        flat: dict[str, Any] = {}
        for part_name in PARTS:
            part = getattr(self, part_name)
            if part_name == "strategy":
                flat["strategy"] = part.name
                flat["target_distribution"] = part.target_distribution
                flat.update(part.params)
            else:
                flat.update(_fields(part))
        return flat

    @classmethod
    def from_flat(cls, flat: Mapping[str, Any]) -> ExperimentConfig:
        """Inverse of `flat()`; parameters of other strategies than `strategy` are an error.

        Raises:
          UserInputError: an unknown name, or a parameter the strategy does not declare.
        """
        from imbal_keras import strategies

        flat = dict(flat)
        name = flat.pop("strategy", StrategyConfig.name)
        target = flat.pop("target_distribution", ())
        parts: dict[str, Any] = {}
        for part_name, part_cls in PARTS.items():
            if part_name == "strategy":
                continue
            names = {f.name for f in dataclasses.fields(part_cls)}
            parts[part_name] = part_cls(**{k: flat.pop(k) for k in list(flat) if k in names})
        unknown = sorted(k for k in flat if k not in strategies.all_params())
        check(not unknown, f"Unknown config fields: {unknown}. Valid fields: {sorted(field_names())}")
        parts["strategy"] = StrategyConfig(name=name, target_distribution=target, params=flat)
        return cls(**parts)

    def to_dict(self) -> dict[str, Any]:
        """The config tree as plain JSON-able dicts (parts as nested dicts; tuples as lists)."""
        tree = {}
        for part_name in PARTS:
            part = getattr(self, part_name)
            fields = _fields(part) if part_name != "strategy" else {}
            if part_name == "strategy":
                fields = {
                    "name": part.name,
                    "target_distribution": part.target_distribution,
                    "params": dict(part.params),
                }
            tree[part_name] = {k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()}
        return tree

    @classmethod
    def from_dict(cls, tree: Mapping[str, Any]) -> ExperimentConfig:
        """Inverse of `to_dict`; unknown parts or fields are an error naming them."""
        unknown = sorted(set(tree) - set(PARTS))
        check(not unknown, f"Unknown config parts: {unknown}. Valid parts: {list(PARTS)}")
        parts = {}
        for part_name, part_cls in PARTS.items():
            fields = dict(tree.get(part_name, {}))
            valid = {f.name for f in dataclasses.fields(part_cls)}
            extra = sorted(set(fields) - valid)
            check(not extra, f"Unknown {part_name} fields: {extra}. Valid fields: {sorted(valid)}")
            parts[part_name] = part_cls(**fields)
        return cls(**parts)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> ExperimentConfig:
        return cls.from_dict(json.loads(text))

    def resolved(self) -> ExperimentConfig:
        """This config with the data's ratio as it is laid out (`DataConfig.effective_imbalance_ratio`): what
        names a run's results, so the default and an explicit 99 of synthetic data are one run."""
        ratio = self.data.effective_imbalance_ratio
        if ratio == self.data.imbalance_ratio:
            return self
        return dataclasses.replace(self, data=dataclasses.replace(self.data, imbalance_ratio=ratio))

    def seed_for(self, source: str) -> int:
        """The seed of `data`, `init` or `order` (see `TrainingConfig`)."""
        return self.training.seed_for(source)

    def key(self, name: str) -> str:
        """This run's value of the key `name` (a key of KEY_ROLES): the values of its fields, the data seed
        resolved (`seed_for("data")`), as one string. Runs with equal keys share what the key groups by.

        Raises:
          UserInputError: an unknown key.
        """
        fields = set(key_fields(name))
        values = {k: v for k, v in self.flat().items() if k in fields}
        if "data_seed" in fields:
            values["data_seed"] = self.seed_for("data")
        return repr(sorted(values.items()))

    def default_run_name(self) -> str:
        """A readable, deterministic folder name: dataset, strategy variant and the axes a grid usually varies (the
        imposed ratio as `r<rho>`; none for data kept at its own ratio)."""
        data = self.data
        source = data.kind if data.kind.startswith("synthetic") else data.argument.split("/")[-1].split(".")[0]
        t = self.training
        parts = [source, self.strategy.name]
        parts += [short(self.strategy.params[k]) for k in sorted(self.strategy.params)]
        ratio = data.effective_imbalance_ratio
        parts += [f"r{short(ratio)}"] if ratio else []  # none: the data's own ratio
        parts += [
            f"b{t.batch_size}",
            t.optimizer,
            f"lr{short(t.learning_rate)}",
            f"seed{t.seed}",
        ]
        parts += [f"{s}{t.seed_for(s)}" for s in ("data", "init", "order") if getattr(t, f"{s}_seed") >= 0]
        return "_".join(p.replace(".", "p").replace(":", "-").replace("/", "-") for p in parts)

    def validate(self) -> ExperimentConfig:
        """Checks every field that can be checked without loading data.

        Returns:
          self, for chaining.

        Raises:
          UserInputError: naming the field (= flag) and the value received.
        """
        for part_name in PARTS:
            if part_name != "strategy":
                getattr(self, part_name).validate()
        if self.strategy.target_distribution and self.data.kind == "synthetic":
            validate_target_distribution(self.strategy.target_distribution, self.data.num_classes)
        return self


def field_names() -> list[str]:
    """Every flat name: the parts' fields, `strategy`, `target_distribution` and every strategy parameter."""
    from imbal_keras import strategies

    names = []
    for part_name, part_cls in PARTS.items():
        if part_name == "strategy":
            names += ["strategy", "target_distribution", *strategies.all_params()]
        else:
            names += [f.name for f in dataclasses.fields(part_cls)]
    return names


def field_help() -> dict[str, str]:
    """Flat name -> one line of help, from the parts' `Attributes:` docstrings and the parameter declarations."""
    import re

    from imbal_keras import strategies

    helps: dict[str, str] = {}
    for part_cls in PARTS.values():
        section = (part_cls.__doc__ or "").split("Attributes:", 1)[-1]
        for match in re.finditer(r"^\s{6}(\w+): (.*?)(?=^\s{6}\w+: |\Z)", section, re.M | re.S):
            helps[match.group(1)] = " ".join(match.group(2).split())
    helps["strategy"] = helps.pop("name")
    helps.pop("params")
    for param in strategies.all_params().values():
        helps[param.name] = f"{param.help} Strategies: {', '.join(strategies.declaring(param.name))}."
    return helps


def field_default(name: str) -> Any:
    """The default of a flat field (a strategy parameter's declared default)."""
    from imbal_keras import strategies

    if name == "strategy":
        return StrategyConfig.name
    if name == "target_distribution":
        return ()
    if name in strategies.all_params():
        return strategies.all_params()[name].default
    for part_cls in PARTS.values():
        for f in dataclasses.fields(part_cls):
            if f.name == name:
                return f.default
    raise KeyError(name)


def validate_target_distribution(target: Sequence[float], num_classes: int) -> tuple[float, ...]:
    """Checks a target class distribution and returns it as a tuple.

    Raises:
      UserInputError: wrong length, a negative or non-finite share, or shares not summing to 1 (tolerance 1e-6).
    """
    shown = ",".join(short(t) for t in target)
    check(
        len(target) == num_classes,
        f"target_distribution needs one share per class ({num_classes} classes). Received: target_distribution={shown}",
        argument="target_distribution",
    )
    check(
        all(math.isfinite(t) and t >= 0 for t in target),
        f"target_distribution shares must be >= 0. Received: target_distribution={shown}",
        argument="target_distribution",
    )
    check(
        abs(sum(target) - 1.0) <= 1e-6,
        f"target_distribution must sum to 1 (sums to {sum(target):.6g}). Received: target_distribution={shown}",
        argument="target_distribution",
    )
    return tuple(float(t) for t in target)


__all__ = [
    "BUILT_IN_MODELS",
    "CLASS_PROFILES",
    "DATASET_KINDS",
    "DENSE_SYNTHETIC",
    "KEY_ROLES",
    "OPTIMIZERS",
    "PARTS",
    "ROLES",
    "SYNTHETIC_IMBALANCE_RATIO",
    "DataConfig",
    "ExperimentConfig",
    "ModelConfig",
    "OutputConfig",
    "StrategyConfig",
    "TrainingConfig",
    "UserInputError",
    "field_default",
    "field_help",
    "field_names",
    "fields_with_role",
    "key_fields",
    "role_of",
    "validate_target_distribution",
]
