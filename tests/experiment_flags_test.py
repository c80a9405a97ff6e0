"""Flags are generated from the config parts and the registry, and turn back into the same config or grid."""

import pytest
from absl import flags as absl_flags
from absl.testing import flagsaver

from imbal_keras import config as config_lib
from imbal_keras import strategies
from imbal_keras.cli import experiment_flags, grid_flags
from imbal_keras.config import ExperimentConfig
from imbal_keras.errors import UserInputError


def _parsed(*argv):
    """Parses `argv` as the command line (restored afterwards) and returns (config or None, settings)."""
    with flagsaver.flagsaver():
        absl_flags.FLAGS.unparse_flags()
        absl_flags.FLAGS(["run_experiment.py", *argv])
        single, axes = experiment_flags.settings()
        config = None if axes else experiment_flags.to_config()
        spec = grid_flags.to_spec() if grid_flags.is_grid() else None
    return config, (single, axes), spec


def test_every_flat_setting_is_a_flag():
    for name in config_lib.field_names():
        assert name in absl_flags.FLAGS, name
    assert _parsed()[0] == ExperimentConfig()


def test_flags_become_config_settings():
    config, _, spec = _parsed(
        "--strategy=class_weight", "--weight_reduction=mean_with_sample_weight", "--target_distribution=0.8,0.2",
        "--hidden_units=32", "--batch_size=64", "--order_seed=3",
    )  # fmt: skip
    assert spec is None
    assert config == ExperimentConfig.from_flat(
        {"strategy": "class_weight", "weight_reduction": "mean_with_sample_weight", "target_distribution": (0.8, 0.2),
         "hidden_units": (32,), "batch_size": 64, "order_seed": 3}
    )  # fmt: skip


def test_several_values_or_a_range_make_a_grid():
    _, (single, axes), spec = _parsed("--strategy=none,upsample", "--seed=0:3", "--batch_size=16,64", "--steps=30")
    assert axes == {"strategy": ("none", "upsample"), "seed": (0, 1, 2), "batch_size": (16, 64)}
    assert single == {"steps": 30}
    assert spec.base.training.steps == 30 and spec.axes["seed"] == (0, 1, 2)


def test_a_preset_is_a_grid_and_single_settings_override_it():
    _, _, spec = _parsed("--preset=seed_question", "--seed=0:2", "--steps=30")
    assert spec.axes["seed"] == (0, 1) and spec.base.training.steps == 30
    assert spec.axes["strategy"][0] == "none"


def test_strategy_and_parameter_help_come_from_the_registry():
    assert "99 means 1:99" in absl_flags.FLAGS["imbalance_ratio"].help
    assert ", ".join(strategies.names()) in absl_flags.FLAGS["strategy"].help
    help_ = absl_flags.FLAGS["weight_reduction"].help
    assert "sum w l / sum w" in help_ and "Strategies: class_weight" in help_ and "Default sum_over_batch_size" in help_


def test_several_values_are_refused_where_one_run_is_wanted():
    with flagsaver.flagsaver():
        absl_flags.FLAGS.unparse_flags()
        absl_flags.FLAGS(["run_experiment.py", "--seed=0,1"])
        with pytest.raises(UserInputError, match="--seed lists several values"):
            experiment_flags.to_config()
