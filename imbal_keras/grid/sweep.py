"""Grids: a spec (base config + values per axis), expansion into runs, run names, shards, packs, the grid folder.

This module only computes: it never trains and never imports TensorFlow (`runner` runs what it computes).

An axis is any flat config name (`imbalance_ratio`, `batch_size`, `strategy`, `seed`, a strategy parameter such
as `weight_reduction`, ...). The runs are the Cartesian product of the axes, except that a strategy parameter
applies only to the strategies that declare it: for the others, that axis collapses to nothing, so e.g.
`weight_reduction` x `upsample` is one run, not two identical ones. Every seed is its own run, kept as its own
folder, because the spread across seeds is what a grid is for. How runs group (which axes expand first, which
make a cell, which runs may share a pack) follows the roles the config fields declare (`config.ROLES`). Named
grids are in `imbal_keras.grid.presets`.

Layout of a grid folder:

  grid.json                   the spec (axes + base config); a rerun with a different spec is refused
  runs/<run name>/            one run folder per run (see `imbal_keras.runs`)
  runs/.partial-<run name>.*  staging folders of runs in progress (or killed); ignored and cleaned on rerun
  events...hparams_config     TensorBoard HParams: the axes and metrics, so `tensorboard --logdir GRID` lists runs
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from imbal_keras import config as config_lib
from imbal_keras import runs
from imbal_keras.config import ExperimentConfig
from imbal_keras.errors import UserInputError, check

GRID_FILE = "grid.json"
RUNS_DIR = "runs"
_SPEC_VERSION = 2
_SHARD_SEED = 0


# `Question.compare` forms: "T:C" / "T:C1,C2" (one treatment against controls), "all:REF" (every strategy against
# REF), "pairs" (every pair).
ALL = "all"
PAIRS = "pairs"
DEFAULT_REFERENCE = "none"
# Metrics a question may name (`test_` / `validation_` + one of these, or `recall_class_<c>`); lower-is-better ones.
QUESTION_METRICS = (
    *runs.METRIC_NAMES,
    *("head_accuracy", "medium_accuracy", "tail_accuracy"),
    # Dense (masks, sequences) and multi-label runs (training.dense_run): higher is better for each.
    *("mean_iou", "mean_dice", "mean_average_precision", "mean_recall", "pixel_accuracy"),
    *("macro_average_precision", "micro_average_precision", "macro_recall"),
)
LOWER_IS_BETTER = ("log_loss", "brier")
_CLASS_RECALL = re.compile(r"(recall|iou|dice|average_precision)_class_\d+")
_DIRECTIONS = {"max": True, "min": False}


@dataclasses.dataclass(frozen=True)
class Question:
    """What a grid's report answers: which strategies are compared, on which metric, within which margins.

    Attributes:
      compare: the comparisons: "T:C" or "T:C1,C2" (strategy T against each control), "all:REF" (every strategy
        against REF) or "pairs" (every pair); empty = every strategy against `none` (`DEFAULT_REFERENCE`).
      metric: a results.csv / curves.csv column (`test_balanced_accuracy`; a bare `balanced_accuracy` means its
        test value), with `:max` or `:min` for a column that is not a recorded metric (`my_col:max`;
        `metric_column`); empty = the task's main metric (`main_metric`).
      metric_margin: the final metric's equivalence margin (absolute; `equivalence.Margins`).
      area_margin: the margin of the mean metric over training (absolute).
      spread_margin: the spread ratio's margin (a factor above 1).
      published: (strategy, figure) pairs of a published result on the same metric, larger = better whatever the
        metric's direction; the report compares the measured ordering with it (`ranking.agreement`).
      published_source: where `published` comes from (paper, table, setting), shown with it.
    """

    compare: str = ""
    metric: str = ""
    metric_margin: float = 0.02
    area_margin: float = 0.02
    spread_margin: float = 1.5
    published: tuple[tuple[str, float], ...] = ()
    published_source: str = ""

    def __post_init__(self):
        parse_compare(self.compare)
        if self.metric:
            object.__setattr__(self, "metric", metric_column(self.metric))
        # grid.json stores the pairs as lists.
        object.__setattr__(self, "published", tuple((str(n), float(v)) for n, v in self.published))

    def families(self, strategies: Sequence[str]) -> list[tuple[str, tuple[str, ...]]]:
        """(treatment, controls) per verdict family, among `strategies` (the grid's, in order); absent names drop."""
        kind, treatment, controls = parse_compare(self.compare or f"{ALL}:{DEFAULT_REFERENCE}")
        present = list(dict.fromkeys(strategies))
        if kind == PAIRS:
            out = [(s, tuple(present[i + 1 :])) for i, s in enumerate(present)]
        elif kind == ALL:
            out = [(s, (controls[0],)) for s in present if s != controls[0] and controls[0] in present]
        else:
            out = [(treatment, tuple(c for c in controls if c in present))] if treatment in present else []
        return [(t, c) for t, c in out if c]

    def resolved_metric(self, num_classes: int) -> str:
        """The metric column: the question's, else test AUPRC for K = 2 and test balanced accuracy for K > 2."""
        return split_metric(self.metric or main_metric(num_classes))[0]

    def higher_is_better(self, num_classes: int) -> bool:
        """The direction of `resolved_metric`: inferred for a recorded metric, else the question's `:max` / `:min`."""
        return split_metric(self.metric or main_metric(num_classes))[1]

    def describe(self, num_classes: int) -> str:
        """The question in words ("every strategy against none on test_balanced_accuracy, higher is better")."""
        kind, treatment, controls = parse_compare(self.compare or f"{ALL}:{DEFAULT_REFERENCE}")
        if kind == PAIRS:
            what = "every pair of strategies"
        else:
            what = f"{treatment or 'every strategy'} against {' and '.join(controls)}"
        metric = self.resolved_metric(num_classes)
        direction = "higher" if self.higher_is_better(num_classes) else "lower"
        default = " (the default question)" if not (self.compare or self.metric) else ""
        return f"{what} on {metric}, {direction} is better{default}"


def parse_compare(text: str) -> tuple[str, str, tuple[str, ...]]:
    """("pairs" | "all" | "one", treatment, controls) of a `Question.compare` text; "" is valid (the default).

    Raises:
      UserInputError: not one of the forms; the message names --compare, the value and the forms.
    """
    forms = "pairs, all:REFERENCE, TREATMENT:CONTROL or TREATMENT:CONTROL1,CONTROL2 (e.g. all:none)"
    text = text.strip()
    if text in ("", PAIRS):
        return (PAIRS if text else ALL), "", (() if text else (DEFAULT_REFERENCE,))
    head, sep, tail = text.partition(":")
    head, controls = head.strip(), tuple(c.strip() for c in tail.split(","))
    check(
        bool(sep and head and all(controls)) and head not in controls and (head != ALL or len(controls) == 1),
        f"--compare must be one of {forms}. Received: --compare={text}",
        argument="compare",
    )
    if head == ALL:
        return ALL, "", controls
    return "one", head, controls


def metric_column(name: str) -> str:
    """The canonical `Question.metric` of a `--metric` value: a column of results.csv or curves.csv, with its
    direction where it cannot be inferred.

    A recorded metric (`balanced_accuracy`, `test_log_loss`, `validation_recall_class_3`; a bare name means its
    test value) has a known direction; `:max` or `:min` may still override it. Any other column needs its
    direction (`my_col:max`: larger is better; `my_col:min`: smaller is better); whether the grid's tables hold
    it is checked when they are read (`check_metric_column`).

    Raises:
      UserInputError: an unknown direction, or a column that is not a recorded metric given without one; the
        message names --metric and the value.
    """
    column, sep, direction = name.strip().rpartition(":") if ":" in name else (name.strip(), "", "")
    check(
        not sep or direction in _DIRECTIONS,
        f"--metric takes COLUMN, COLUMN:max or COLUMN:min. Received: --metric={name}",
        argument="metric",
    )
    recorded = column if column.startswith(("test_", "validation_")) else f"test_{column}"
    if is_recorded_metric(recorded):
        column = recorded
    else:
        check(
            bool(sep) and bool(column),
            f"--metric {column} is not a recorded metric, so its direction is needed: {column}:max (larger is "
            f"better) or {column}:min; recorded metrics: {', '.join(QUESTION_METRICS)}, recall_class_<c>. "
            f"Received: --metric={name}",
            argument="metric",
        )
        return f"{column}:{direction}"
    if sep and _DIRECTIONS[direction] != higher_is_better(column):
        return f"{column}:{direction}"
    return column


def is_recorded_metric(column: str) -> bool:
    """Whether `column` is a metric every run records, on its test or validation split (`test_macro_f1`)."""
    split, _, base = column.partition("_")
    return split in ("test", "validation") and (base in QUESTION_METRICS or bool(_CLASS_RECALL.fullmatch(base)))


def split_metric(metric: str) -> tuple[str, bool]:
    """(column, higher_is_better) of a canonical `Question.metric` (`metric_column`) or a bare column name."""
    column, sep, direction = metric.rpartition(":")
    if sep and direction in _DIRECTIONS:
        return column, _DIRECTIONS[direction]
    return metric, higher_is_better(metric)


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of the metric is better: not for log loss and Brier score, nor a column given as
    `COLUMN:min`."""
    column, sep, direction = metric.rpartition(":")
    if sep and direction in _DIRECTIONS:
        return _DIRECTIONS[direction]
    return metric.partition("_")[2] not in LOWER_IS_BETTER


def check_metric_column(column: str, columns: Sequence[str], *, given: str = "") -> None:
    """Checks that the tables of a grid hold the question's metric column.

    Args:
      column: the metric's column (`Question.resolved_metric`).
      columns: the columns of results.csv and curves.csv.
      given: the `--metric` value as the question holds it (default: `column`), for the message.

    Raises:
      UserInputError: the column is in neither table; the message names --metric, the value and the columns.
    """
    check(
        column in columns,
        f"--metric names {column}, a column neither results.csv nor curves.csv has; their columns: "
        f"{', '.join(dict.fromkeys(columns))}. Received: --metric={given or column}",
        argument="metric",
    )


def main_metric(num_classes: int) -> str:
    """The task's main metric: test AUPRC for K = 2, test balanced accuracy for K > 2."""
    return "test_average_precision" if num_classes <= 2 else "test_balanced_accuracy"


# The toolkit's headline question: "upsampling converges faster and varies less than class weights".
SEED_QUESTION = Question(compare="upsample:class_weight", metric="test_average_precision")
# The long-tail literature's question: every strategy against plain cross-entropy on balanced accuracy, beside the
# papers' ordering: top-1 accuracy = 100 - the top-1 error of Cao et al. (2019), Table 2, on CIFAR-10-LT at
# rho = 100 (ERM 29.64, focal 29.62, class-balanced re-sampling 29.45, class-balanced re-weighting 27.63, LDAM-DRW
# 22.97); Menon et al. (2021) put the logit-adjusted loss level with LDAM-DRW, so it shares LDAM-DRW's figure.
LONG_TAIL_QUESTION = Question(
    compare="all:none",
    metric="test_balanced_accuracy",
    published=(
        ("none", 70.36),
        ("focal", 70.38),
        ("stratified", 70.55),
        ("class_balanced", 72.37),
        ("ldam", 77.03),
        ("logit_adjusted", 77.03),
    ),
    published_source=(
        "top-1 accuracy (%) on CIFAR-10-LT at rho = 100, ResNet-32: Cao et al., NeurIPS 2019, Table 2 (cross-entropy, "
        "focal, class-balanced re-sampling as stratified, class-balanced re-weighting, LDAM-DRW); the logit-adjusted "
        "loss level with LDAM-DRW (Menon et al., ICLR 2021)"
    ),
)


@dataclasses.dataclass(frozen=True)
class GridSpec:
    """What a grid runs: a base config, the values of each axis, and the question its verdict answers.

    Attributes:
      axes: flat name -> tuple of values; names not listed take the base config's value.
      base: every setting that is not an axis; `output_dir` and `run_name` are set per run. Its strategy is
        ignored when `strategy` is an axis; strategy parameters of a grid are always axes (see `make_spec`).
      question: the verdict's comparison.
    """

    axes: Mapping[str, tuple]
    base: ExperimentConfig = ExperimentConfig()
    question: Question = Question()

    def to_dict(self) -> dict[str, Any]:
        """The content of grid.json. `output_dir` is left out: a grid folder may be moved or merged."""
        base = self.base.to_dict()
        for name in config_lib.fields_with_role("output"):
            base["output"].pop(name)
        return {
            "version": _SPEC_VERSION,
            "axes": {k: [list(v) if isinstance(v, tuple) else v for v in values] for k, values in self.axes.items()},
            "base": base,
            "question": dataclasses.asdict(self.question),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GridSpec:
        axes = {k: tuple(tuple(v) if isinstance(v, list) else v for v in values) for k, values in d["axes"].items()}
        question = dict(d["question"])
        if "treatment" in question:  # grid.json written before questions named their comparisons
            question["compare"] = f"{question.pop('treatment')}:{question.pop('control')}"
            question.setdefault("metric", "test_average_precision")
        return cls(axes=axes, base=ExperimentConfig.from_dict(d["base"]), question=Question(**question))

    def ordered_axes(self) -> dict[str, tuple]:
        """Every axis with its values, in expansion order (outermost first): seeds, then the flat-name order.

        Seed axes (the fields whose role is a seed) are outermost, so that a grid stopped half-way already holds a
        few seeds of every cell rather than every seed of a few cells.
        """
        seeds = config_lib.fields_with_role("training_seed", "data_seed")
        order = [*seeds, *(n for n in config_lib.field_names() if n not in seeds)]
        return {name: tuple(self.axes[name]) for name in order if name in self.axes}

    def varying_fields(self) -> list[str]:
        """Axis names with more than one value, in expansion order."""
        return [name for name, values in self.ordered_axes().items() if len(values) > 1]

    def cell_fields(self) -> list[str]:
        """Varying axes that define a cell of the report: the varying fields of the cell key
        (`config.key_fields("cell")`), so not the strategy, its parameters or the seeds of training. A varying
        `data_seed` is a cell field: each cell then holds one dataset, and the spread across a cell's seeds is the
        spread of training alone."""
        cell = set(config_lib.key_fields("cell"))
        return [f for f in self.varying_fields() if f in cell]


def make_spec(
    settings: Mapping[str, Any], axes: Mapping[str, Sequence], *, question: Question = Question()
) -> GridSpec:
    """A spec from flat settings shared by every run and axes.

    The strategy and strategy parameters given as single settings become one-value axes: a parameter applies
    only to the runs whose strategy declares it, which only the expansion knows.

    Raises:
      UserInputError: a setting the config rejects.
    """
    from imbal_keras import strategies

    axes = {k: tuple(v) for k, v in axes.items()}
    plain = {}
    for key, value in settings.items():
        if key == "strategy" or key in strategies.all_params():
            axes.setdefault(key, (value,))
        else:
            plain[key] = value
    return GridSpec(axes=axes, base=ExperimentConfig.from_flat(plain), question=question)


def validate(spec: GridSpec) -> GridSpec:
    """Checks every axis and every run config of `spec`.

    Returns:
      spec, for chaining.

    Raises:
      UserInputError: an unknown axis, an empty axis, a repeated value, a value the config rejects, or a strategy
        parameter axis no strategy of the grid declares; the message names the axis and the value.
    """
    from imbal_keras import strategies

    names = set(config_lib.field_names()) - set(config_lib.fields_with_role("output"))
    strategy_names = spec.axes.get("strategy", (spec.base.strategy.name,))
    for field, values in spec.axes.items():
        check(field in names, f"Unknown grid axis {field!r}. Axes: {', '.join(sorted(names))}", argument=field)
        check(len(values) > 0, f"{field} must list at least one value. Received: {field}=''", argument=field)
        repeated = sorted({str(v) for v in values if list(values).count(v) > 1})
        check(
            not repeated,
            f"{field} lists a value twice. Received: {field}={','.join(map(str, values))}",
            argument=field,
        )
        if field in strategies.all_params():
            users = [s for s in strategy_names if field in {p.name for p in strategies.get(s).params}]
            check(
                bool(users),
                f"{field} applies to {', '.join(strategies.declaring(field))}, none of which the grid runs. "
                f"Received: {field}={','.join(map(str, values))}",
                argument=field,
            )
            for value in values:
                strategies.all_params()[field].validate(value)
        elif field != "strategy":
            for value in values:
                spec.base.replace(**{field: value}).validate()
        else:
            for value in values:
                strategies.get(value)
    for config in expand(spec):
        config.validate()
    return spec


def check_question(question: Question, strategy_names: Sequence[str]) -> None:
    """Checks that every strategy a question given by the user names is one the grid runs.

    Raises:
      UserInputError: a named strategy the grid does not run; the message names --compare and the strategies.
    """
    if not question.compare:
        return
    _, treatment, controls = parse_compare(question.compare)
    for name in (treatment, *controls):
        check(
            not name or name in strategy_names,
            f"--compare names {name}, which the grid does not run; its strategies: {', '.join(strategy_names)}. "
            f"Received: --compare={question.compare}",
            argument="compare",
        )


def expand(spec: GridSpec, grid_dir: str = "") -> list[ExperimentConfig]:
    """The runs of a grid, in a fixed order.

    A strategy parameter axis applies only to the runs whose strategy declares the parameter; for the other
    runs it changes nothing, so they are not repeated.

    Args:
      spec: the grid.
      grid_dir: the grid folder; runs go to `grid_dir/runs/<run name>`.

    Returns:
      Configs with `output_dir` and `run_name` set; run names are unique and depend only on the config.
    """
    from imbal_keras import strategies

    axes = spec.ordered_axes()
    base = spec.base.flat()
    if "strategy" not in axes:  # the base's own strategy keeps its parameters
        axes = {**axes, **{k: (v,) for k, v in spec.base.strategy.params.items() if k not in axes}}
    base.update({"output_dir": os.path.join(grid_dir, RUNS_DIR), "run_name": ""})
    for param in strategies.all_params():
        base.pop(param, None)
    configs: dict[str, ExperimentConfig] = {}
    for values in itertools.product(*axes.values()):
        settings = {**base, **dict(zip(axes, values, strict=True))}
        declared = {p.name for p in strategies.get(settings["strategy"]).params}
        for name in list(settings):
            if name in strategies.all_params() and name not in declared:
                del settings[name]
        config = ExperimentConfig.from_flat(settings)
        config = config.replace(run_name=run_name(config))
        configs.setdefault(config.output.run_name, config)
    return list(configs.values())


def run_name(config: ExperimentConfig) -> str:
    """Readable and unique: the config's default name plus a digest of every setting but the output location.

    The digest keeps names unique where the readable part is not (two csv files with the same base name,
    learning rates equal to 6 digits) and ties a finished folder to exactly the config that made it.
    """
    output = config_lib.fields_with_role("output")
    flat = {k: v for k, v in config.resolved().flat().items() if k not in output}
    digest = hashlib.sha1(json.dumps(flat, sort_keys=True).encode()).hexdigest()[:8]
    return f"{config.default_run_name()}-{digest}"


def parse_shard(text: str) -> tuple[int, int]:
    """`"i/n"` -> (i, n) with 0 <= i < n.

    Raises:
      UserInputError: anything else.
    """
    message = f"shard must be i/n with 0 <= i < n (e.g. 0/4). Received: shard={text!r}"
    index, sep, count = text.partition("/")
    check(sep == "/" and index.strip().isdigit() and count.strip().isdigit(), message, argument="shard")
    i, n = int(index), int(count)
    check(0 <= i < n, message, argument="shard")
    return i, n


def shard(configs: Sequence[ExperimentConfig], index: int, count: int) -> list[ExperimentConfig]:
    """Shard `index` of `count`: every `count`-th run of a fixed shuffle of the grid, in expansion order.

    Striding over the expansion order itself would hand a shard only some strategies whenever `count` divides an
    inner axis (`--strategy=none,upsample --shard=1/2` would be all upsample); a seeded permutation first gives
    every shard a similar mix, and the same shards on every machine. Shard sizes differ by at most one.
    """
    order = np.random.default_rng(_SHARD_SEED).permutation(len(configs))
    return [configs[i] for i in sorted(order[index::count])]


# The grid folder.


def runs_dir(grid_dir: str) -> str:
    return os.path.join(grid_dir, RUNS_DIR)


def load_spec(grid_dir: str, *, argument: str = "output_dir") -> GridSpec:
    """The spec saved in `grid_dir/grid.json`.

    Args:
      grid_dir: the grid folder.
      argument: the setting that named the folder (`output_dir`, `merge_from`), for the error message.

    Raises:
      UserInputError: there is no readable grid.json, or an older version of the toolkit wrote it.
    """
    path = os.path.join(grid_dir, GRID_FILE)
    try:
        with open(path) as f:
            saved = json.load(f)
    except (OSError, ValueError) as e:
        reason = "no such file" if isinstance(e, FileNotFoundError) else " ".join(str(e).split())
        raise UserInputError(
            f"{argument}={grid_dir!r} holds no readable {GRID_FILE} ({reason}): it is not a grid folder",
            argument=argument,
        ) from None
    version = saved.get("version")
    check(
        version == _SPEC_VERSION,
        f"{argument}={grid_dir!r} holds a grid written by an older imbal_keras ({GRID_FILE} version {version}, "
        f"this version reads {_SPEC_VERSION}): rerun the grid into a new --output_dir; its finished runs "
        "stay readable as plain folders",
        argument=argument,
    )
    try:
        return GridSpec.from_dict(saved)
    except (KeyError, TypeError) as e:
        raise UserInputError(
            f"{argument}={grid_dir!r} holds an unreadable {GRID_FILE} ({e})", argument=argument
        ) from None


def prepare(grid_dir: str, spec: GridSpec) -> None:
    """Creates the grid folder and grid.json, or checks that an existing one describes the same grid.

    The question is not part of that check: asking a new question of the same runs (another --compare, --metric or
    margin) replaces the question in grid.json, and the report answers it.

    Raises:
      UserInputError: the folder holds a different grid (the message says which axes or fields differ), or
        it cannot be written. Nothing is changed in that case.
    """
    path = os.path.join(grid_dir, GRID_FILE)
    if os.path.exists(path):
        saved = load_spec(grid_dir)
        check_compatible(saved, spec, grid_dir)
        if saved.question == spec.question:
            return
    try:
        os.makedirs(runs_dir(grid_dir), exist_ok=True)
        runs.write_atomically(path, json.dumps(spec.to_dict(), indent=2, sort_keys=True))
    except OSError as e:
        raise UserInputError(
            f"output_dir={grid_dir!r} is not writable ({e.strerror or e})", argument="output_dir"
        ) from None


def check_compatible(saved: GridSpec, wanted: GridSpec, grid_dir: str, *, argument: str = "output_dir") -> None:
    """Raises `UserInputError` naming what differs if `wanted` does not run the grid saved in `grid_dir` (a folder
    named by the setting `argument`); the question may differ (`prepare`)."""
    a, b = saved.to_dict(), wanted.to_dict()
    differ = [f"axis {k}" for k in sorted(set(a["axes"]) | set(b["axes"])) if a["axes"].get(k) != b["axes"].get(k)]
    flat_a, flat_b = saved.base.resolved().flat(), wanted.base.resolved().flat()
    output = config_lib.fields_with_role("output")
    differ += [
        f"field {k}" for k in sorted(set(flat_a) | set(flat_b)) if k not in output and flat_a.get(k) != flat_b.get(k)
    ]
    check(
        not differ,
        f"{argument}={grid_dir!r} holds a different grid ({'; '.join(differ)} differ from its {GRID_FILE}); "
        "use a new --output_dir or the same settings as before",
        argument=argument,
    )


def merge(sources: Sequence[str], grid_dir: str) -> int:
    """Copies finished runs from other grid folders (shards run on machines without a shared disk) into `grid_dir`.

    Each source must hold the same grid. A `grid_dir` without a grid yet (a new folder) takes the first source's
    grid.json. A run already in `grid_dir` is not copied again; a copy is staged under a hidden name and renamed
    into place, so an interrupted merge leaves nothing half-copied.

    Returns:
      How many runs were copied.

    Raises:
      UserInputError: a source (named as `merge_from`) without grid.json or holding a different grid, or a
        `grid_dir` with neither a grid nor a source to take one from. Nothing is copied in that case.
    """
    specs = [load_spec(source, argument="merge_from") for source in sources]
    new_folder = not os.path.exists(os.path.join(grid_dir, GRID_FILE)) and specs
    spec = specs[0] if new_folder else load_spec(grid_dir)
    for source, source_spec in zip(sources, specs, strict=True):
        check_compatible(source_spec, spec, source, argument="merge_from")
    prepare(grid_dir, spec)
    return sum(runs.copy_finished(runs_dir(source), runs_dir(grid_dir)) for source in sources)


# Runs trained side by side in one pack by default (`--side_by_side`, `imbal_keras.training.side_by_side`).
DEFAULT_PACK = 10


def pack_sizes(packs: Sequence[Sequence[ExperimentConfig]]) -> tuple[tuple[str, int], ...]:
    """The largest pack of each `key("pack")` (runs of equal shapes): a worker trains a smaller pack of that key
    at this size (`side_by_side.run_pack(pad_to=)`), so the packs of a grid that differ in size by a run share
    one traced step."""
    sizes: dict[str, int] = {}
    for pack in packs:
        key = pack[0].key("pack")
        sizes[key] = max(sizes.get(key, 0), len(pack))
    return tuple(sizes.items())


def packs(configs: Sequence[ExperimentConfig], size: int, *, workers: int = 1) -> list[list[ExperimentConfig]]:
    """Groups `configs` into packs of at most `size` runs of equal shapes and budget (`config.key("pack")`).

    A pack's replicas may differ in their training seeds, data seeds and strategies (each reads its own data).
    Within a group, runs of one strategy variant and data seed come together (they share a pipeline and a loss),
    in the order they first come; the group's n runs are cut into ceil(n / size) packs of near-equal size (20
    runs at size 8: 7, 6, 7), that number rounded up to a multiple of `workers` where there are runs enough, so
    that the workers finish together (30 runs at size 10 on 2 workers: 4 packs of 7 or 8, not 3 of 10). Runs that
    cannot train side by side (`plan.plan_pack`: a strategy with training callbacks, say) are cut per strategy
    variant and data seed, as packs that run one by one and say why once; `size` 1 gives one pack per run.
    """
    from imbal_keras.training import plan  # no TensorFlow

    check(
        isinstance(size, int) and size >= 1,
        f"side_by_side must be an integer >= 1 (1 turns it off). Received: side_by_side={size!r}",
        argument="side_by_side",
    )
    groups: dict[tuple, dict[tuple, list[ExperimentConfig]]] = {}
    for config in configs:
        packable = plan.plan_pack(config, size).mode == "packed"
        own = (config.key("compiled"), config.seed_for("data"))
        group = groups.setdefault((config.key("pack"), packable, () if packable else own), {})
        group.setdefault(own, []).append(config)
    out = []
    for parts in groups.values():
        group = [c for part in parts.values() for c in part]
        count = math.ceil(len(group) / size)
        count = min(len(group), math.ceil(count / workers) * workers) if size > 1 else count
        bounds = [round(i * len(group) / count) for i in range(count + 1)]
        out += [group[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    return out


__all__ = [
    "DEFAULT_PACK",
    "GRID_FILE",
    "RUNS_DIR",
    "LONG_TAIL_QUESTION",
    "SEED_QUESTION",
    "GridSpec",
    "Question",
    "higher_is_better",
    "is_recorded_metric",
    "main_metric",
    "metric_column",
    "parse_compare",
    "check_compatible",
    "check_metric_column",
    "check_question",
    "expand",
    "load_spec",
    "make_spec",
    "merge",
    "packs",
    "parse_shard",
    "prepare",
    "run_name",
    "runs_dir",
    "shard",
    "split_metric",
    "validate",
]
