"""Tests of `imbal_keras.grid.sweep`: expansion, parameter axes, presets, names, shards, the grid folder."""

import collections
import json
import os
import subprocess
import sys

import pytest

from imbal_keras import config as config_lib
from imbal_keras import runs
from imbal_keras.config import ExperimentConfig
from imbal_keras.errors import UserInputError
from imbal_keras.grid import presets, sweep

TINY = {"num_examples": 600, "steps": 20, "eval_every": 10, "hidden_units": (8,), "log_composition": False}


def _spec(**axes) -> sweep.GridSpec:
    return sweep.make_spec(TINY, {k: tuple(v) for k, v in axes.items()})


def test_seed_question_preset_pairs_12_training_seeds_on_2_datasets_with_each_training_seed_also_alone():
    spec = presets.spec_from_preset("seed_question")
    configs = sweep.expand(spec)
    assert len(configs) == 576 and spec.cell_fields() == ["data_seed"]
    per_variant = collections.Counter((c.strategy.name, tuple(sorted(c.strategy.params.items()))) for c in configs)
    weighted = {
        ("class_weight", (("class_weight_normalization", n), ("weight_method", "inverse"), ("weight_reduction", r)))
        for n in ("mean_one", "sum_to_num_classes")
        for r in ("sum_over_batch_size", "mean_with_sample_weight")
    }
    plain = {(s, ()) for s in ("none", "upsample")}
    assert set(per_variant) == weighted | plain
    assert set(per_variant.values()) == {96}  # 2 datasets x 12 seeds x (init, order) each following seed or fixed
    assert {
        (c.data.imbalance_ratio, c.training.batch_size, c.training.optimizer, c.training.steps) for c in configs
    } == {(99.0, 16, "sgd", 400)}
    assert sorted({c.training.seed for c in configs}) == list(range(12))
    assert {(c.seed_for("data"), c.training.seed) for c in configs} == {(d, s) for d in (0, 1) for s in range(12)}
    fixed = presets.FIXED_SEED
    assert {(c.seed_for("init"), c.seed_for("order")) for c in configs if c.training.seed == 3} == {
        (3, 3),
        (fixed, 3),
        (3, fixed),
        (fixed, fixed),
    }
    data = configs[0].data
    assert round(data.num_examples * data.test_fraction) == 39_000


def test_a_parameter_axis_applies_only_to_the_strategies_that_declare_it():
    # none: 1 run per seed; class_weight: 2 normalisations x 2 reductions per seed -> (1 + 4) x 3 seeds.
    spec = _spec(
        strategy=["none", "class_weight"],
        class_weight_normalization=["sum_to_num_classes", "mean_one"],
        weight_reduction=["sum_over_batch_size", "mean_with_sample_weight"],
        seed=[0, 1, 2],
    )
    configs = sweep.expand(spec, "/g")
    assert len(configs) == 15
    none = [c for c in configs if c.strategy.name == "none"]
    assert len(none) == 3 and all(dict(c.strategy.params) == {} for c in none)
    # Seeds are the outermost axis: the first 5 runs are seed 0.
    assert [c.training.seed for c in configs[:5]] == [0] * 5
    assert all(c.output.output_dir == os.path.join("/g", sweep.RUNS_DIR) for c in configs)


def test_a_single_parameter_setting_applies_to_the_strategies_that_declare_it():
    spec = sweep.make_spec(
        {**TINY, "weight_reduction": "mean_with_sample_weight"}, {"strategy": ("none", "class_weight")}
    )
    by_name = {c.strategy.name: c for c in sweep.expand(spec)}
    assert by_name["class_weight"].strategy.params["weight_reduction"] == "mean_with_sample_weight"
    assert dict(by_name["none"].strategy.params) == {}


def test_run_names_are_unique_deterministic_and_change_with_any_field():
    configs = sweep.expand(presets.spec_from_preset("seed_question"))
    names = [c.output.run_name for c in configs]
    assert len(set(names)) == 576
    assert names == [c.output.run_name for c in sweep.expand(presets.spec_from_preset("seed_question"))]
    config = configs[0]
    assert sweep.run_name(config) == config.output.run_name
    assert sweep.run_name(config.replace(steps=401)) != config.output.run_name
    assert sweep.run_name(config.replace(order_seed=3)) != config.output.run_name
    assert sweep.run_name(config.replace(output_dir="/elsewhere")) == config.output.run_name
    assert config.output.run_name.startswith(config.replace(run_name="").default_run_name() + "-")


def test_preset_is_overridable():
    spec = presets.spec_from_preset("seed_question", axes={"seed": (5, 6)}, steps=30)
    configs = sweep.expand(spec)
    assert len(configs) == 96  # 6 variants x 2 datasets x 2 seeds x 4 ways of fixing the training seeds
    assert {c.training.seed for c in configs} == {5, 6} and {c.training.steps for c in configs} == {30}


def test_a_single_setting_replaces_the_presets_axis():
    configs = sweep.expand(presets.spec_from_preset("seed_question", strategy="upsample"))
    assert {c.strategy.name for c in configs} == {"upsample"} and len(configs) == 96


@pytest.mark.parametrize(
    "axes, message",
    [
        ({"strategy": ()}, "strategy must list at least one value"),
        ({"strategy": ("none", "nope")}, "strategy must be one of none, .*Received: strategy='nope'"),
        ({"batch_size": (16, 0)}, "batch_size must be >= 1. Received: batch_size=0"),
        ({"seed": (1, 1)}, "seed lists a value twice"),
        ({"optimizer": ("sgd", "lbfgs")}, "optimizer must be one of sgd, adam. Received: optimizer='lbfgs'"),
        ({"colour": (1, 2)}, "Unknown grid axis 'colour'"),
        ({"output_dir": ("a", "b")}, "Unknown grid axis 'output_dir'"),
        (
            {"strategy": ("none", "upsample"), "weight_reduction": ("sum_over_batch_size",)},
            r"^weight_reduction applies to class_weight(, \w+)*, none of which the grid runs",
        ),
        (
            {"strategy": ("class_weight",), "weight_reduction": ("sum",)},
            "weight_reduction must be one of .*Received: weight_reduction='sum'",
        ),
    ],
    ids=[
        "empty",
        "unknown_strategy",
        "bad_batch",
        "repeated_seed",
        "unknown_optimizer",
        "unknown_axis",
        "output",
        "parameter_of_no_strategy",
        "bad_parameter",
    ],
)
def test_validate_names_the_axis(axes, message):
    with pytest.raises(UserInputError, match=message):
        sweep.validate(sweep.GridSpec(axes=axes, base=ExperimentConfig.from_flat(TINY)))


def test_unknown_preset_lists_the_known_ones():
    known = r"seed_question, long_tail, pixel_question"
    with pytest.raises(UserInputError, match=rf"preset must be one of {known}\. Received: .*'x'"):
        presets.spec_from_preset("x")


@pytest.mark.parametrize("text, expected", [("0/1", (0, 1)), ("3/4", (3, 4)), ("0/10", (0, 10))])
def test_parse_shard(text, expected):
    assert sweep.parse_shard(text) == expected


@pytest.mark.parametrize("text", ["4/4", "-1/4", "1", "a/b", "1/0", "1/2/3", ""])
def test_parse_shard_rejects(text):
    with pytest.raises(UserInputError, match="shard must be i/n"):
        sweep.parse_shard(text)


def test_shards_partition_the_grid():
    configs = sweep.expand(presets.spec_from_preset("seed_question"))
    shards = [sweep.shard(configs, i, 4) for i in range(4)]
    assert [len(s) for s in shards] == [144, 144, 144, 144]
    names = [c.output.run_name for s in shards for c in s]
    assert sorted(names) == sorted(c.output.run_name for c in configs)


def test_spec_round_trips_through_grid_json(tmp_path):
    spec = _spec(strategy=["none", "class_weight"], weight_reduction=["sum_over_batch_size", "mean_with_sample_weight"])
    sweep.prepare(str(tmp_path), spec)
    assert sweep.load_spec(str(tmp_path)) == spec


def test_prepare_refuses_a_different_grid_and_changes_nothing(tmp_path):
    spec = _spec(strategy=["none", "upsample"], seed=[0, 1])
    sweep.prepare(str(tmp_path), spec)
    before = (tmp_path / sweep.GRID_FILE).read_text()
    sweep.prepare(str(tmp_path), spec)  # same grid: fine
    with pytest.raises(UserInputError, match=r"holds a different grid \(axis seed differ"):
        sweep.prepare(str(tmp_path), _spec(strategy=["none", "upsample"], seed=[0, 1, 2]))
    with pytest.raises(UserInputError, match="field steps differ"):
        sweep.prepare(str(tmp_path), sweep.GridSpec(axes=spec.axes, base=spec.base.replace(steps=21)))
    assert (tmp_path / sweep.GRID_FILE).read_text() == before


def test_a_grid_folder_of_the_older_format_is_refused_with_what_to_do(tmp_path):
    (tmp_path / sweep.GRID_FILE).write_text(json.dumps({"version": 1, "axes": {"strategy": ["none"]}, "base": {}}))
    with pytest.raises(UserInputError, match=r"written by an older imbal_keras .*version 1.*new --output_dir"):
        sweep.load_spec(str(tmp_path))


def _fake_run(grid_dir, name, *, finished=True):
    path = os.path.join(grid_dir, sweep.RUNS_DIR, name)
    os.makedirs(path)
    if finished:
        with open(os.path.join(path, runs.RESULT_FILE), "w") as f:
            json.dump({}, f)
    return path


def test_merge_copies_missing_finished_runs_from_a_compatible_grid(tmp_path):
    spec = _spec(seed=[0, 1])
    main, shard, other = (str(tmp_path / n) for n in ("main", "shard", "other"))
    for d in (main, shard):
        sweep.prepare(d, spec)
    sweep.prepare(other, _spec(seed=[0, 1, 2]))
    _fake_run(main, "a")
    _fake_run(shard, "a")
    _fake_run(shard, "b")
    _fake_run(shard, "c", finished=False)
    assert sweep.merge([shard], main) == 1
    assert runs.finished_runs(sweep.runs_dir(main)) == ["a", "b"]
    assert sweep.merge([shard], main) == 0
    with pytest.raises(UserInputError, match="holds a different grid"):
        sweep.merge([other], main)


def test_expansion_does_not_import_tensorflow():
    code = (
        "import sys\n"
        "from imbal_keras.grid import presets, sweep\n"
        "configs = sweep.expand(presets.spec_from_preset('seed_question'))\n"
        "assert len(configs) == 576\n"
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_cells_hold_one_dataset_when_the_data_seed_varies():
    spec = _spec(strategy=["none", "upsample"], seed=[0, 1], data_seed=[0, 1], batch_size=[16, 32])
    assert spec.cell_fields() == ["data_seed", "batch_size"]
    assert _spec(strategy=["none", "upsample"], seed=[0, 1], order_seed=[3, 4]).cell_fields() == []


def test_long_tail_preset_runs_every_strategy_of_the_literature_on_k10():
    spec = sweep.validate(presets.spec_from_preset("long_tail"))
    configs = sweep.expand(spec)
    assert len(configs) == 100  # 10 strategies x 10 seeds
    literature = {"focal", "class_balanced", "logit_adjusted", "ldam", "sqrt_sampling", "progressive_sampling"}
    assert {c.strategy.name for c in configs} >= literature | {"none", "class_weight", "upsample"}
    data = configs[0].data
    assert (data.num_classes, data.imbalance_ratio, data.class_profile, data.balanced_evaluation) == (
        10, 100.0, "exponential", True
    )  # fmt: skip


def test_a_fields_role_decides_how_it_groups_runs(monkeypatch):
    axes = {"strategy": ("none", "upsample"), "seed": (0, 1), "learning_rate": (0.05, 0.1)}
    spec = sweep.make_spec({**TINY, "data_seed": 0}, axes)
    configs = sweep.expand(spec)
    # A setting: a cell field, and runs that differ in it never share a pack (strategies and seeds may).
    assert spec.cell_fields() == ["learning_rate"]
    assert len(sweep.packs(configs, 10)) == 2
    assert list(spec.ordered_axes()) == ["seed", "strategy", "learning_rate"]
    # Declared a seed of training instead, the same field groups as the seeds do: no cell, one pack, expanded
    # among the outermost axes.
    role_of = config_lib.role_of
    monkeypatch.setattr(config_lib, "role_of", lambda n: "training_seed" if n == "learning_rate" else role_of(n))
    assert spec.cell_fields() == []
    assert len(sweep.packs(configs, 10)) == 1
    assert list(spec.ordered_axes()) == ["learning_rate", "seed", "strategy"]
