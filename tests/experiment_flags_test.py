"""Flags are generated from ExperimentConfig and turn back into the same config."""

import dataclasses

from absl import flags as absl_flags
from absl.testing import flagsaver

from flags import experiment_flags
from imbal_keras import strategies
from imbal_keras.config import ExperimentConfig


def _parsed(**values):
    if not absl_flags.FLAGS.is_parsed():
        absl_flags.FLAGS.mark_as_parsed()
    with flagsaver.flagsaver(**values):
        return experiment_flags.to_config()


def test_every_config_field_is_a_flag_with_its_default():
    for field in dataclasses.fields(ExperimentConfig):
        assert field.name in absl_flags.FLAGS, field.name
    assert _parsed() == ExperimentConfig()


def test_strategy_choices_come_from_the_registry():
    assert absl_flags.FLAGS["strategy"].parser.enum_values == strategies.names()


def test_flags_become_config_fields():
    config = _parsed(strategy="upsample", target_distribution=["0.8", "0.2"], hidden_units=["32"], batch_size=64)
    assert config == ExperimentConfig(
        strategy="upsample", target_distribution=(0.8, 0.2), hidden_units=(32,), batch_size=64
    )


def test_help_text_comes_from_the_docstring():
    assert "99 means 1:99" in absl_flags.FLAGS["imbalance_ratio"].help
    assert "sum_c w_c = K" in absl_flags.FLAGS["class_weight_normalization"].help
