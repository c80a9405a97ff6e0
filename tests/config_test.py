"""ExperimentConfig: round trips, derived names and validation messages."""

import pytest

from imbal_keras.config import ExperimentConfig, validate_target_distribution
from imbal_keras.errors import UserInputError


def test_dict_round_trip_and_json():
    config = ExperimentConfig(strategy="upsample", target_distribution=[0.7, 0.3], hidden_units=[8, 4])
    assert config.target_distribution == (0.7, 0.3) and config.hidden_units == (8, 4)
    assert ExperimentConfig.from_dict(config.to_dict()) == config


def test_from_dict_rejects_unknown_fields():
    with pytest.raises(UserInputError, match=r"Unknown config fields: \['colour'\]"):
        ExperimentConfig.from_dict({"colour": "red"})


def test_default_run_name_names_the_axes():
    assert ExperimentConfig(strategy="upsample").default_run_name() == "synthetic_upsample_r99_b16_sgd_lr0p05_seed0"
    weighted = ExperimentConfig(strategy="class_weight", class_weight_normalization="sum_to_num_classes", seed=4)
    assert weighted.default_run_name() == (
        "synthetic_class_weight_sum_to_num_classes_sum_over_batch_size_r99_b16_sgd_lr0p05_seed4"
    )
    assert ExperimentConfig(dataset="csv:/data/fraud.csv").default_run_name().startswith("fraud_none_r99_")


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(optimizer="rmsprop"), r"--optimizer must be one of sgd, adam. Received: optimizer='rmsprop'"),
        (dict(weight_reduction="sum"), r"--weight_reduction must be one of .*Received: weight_reduction='sum'"),
        (dict(eval_every=0), r"--eval_every must be > 0. Received: eval_every=0"),
        (dict(learning_rate=-1.0), r"--learning_rate must be > 0. Received: learning_rate=-1.0"),
        (dict(num_classes=1), r"--num_classes must be >= 2. Received: num_classes=1"),
        (dict(label_noise=1.0), r"--label_noise must be in \[0, 1\). Received: label_noise=1.0"),
        (dict(test_fraction=0.6, validation_fraction=0.5), r"--validation_fraction \+ --test_fraction must be < 1"),
        (dict(gradient_every_n_steps=-1), r"--gradient_every_n_steps must be >= 0"),
        (dict(dataset="csv:"), r"--dataset must be 'synthetic', 'csv:PATH' or 'tfds:NAME'. Received: dataset='csv:'"),
    ],
)
def test_validate_names_the_flag_and_value(changes, message):
    with pytest.raises(UserInputError, match=message):
        ExperimentConfig(**changes).validate()


def test_zero_ratio_allowed_only_for_files():
    ExperimentConfig(dataset="csv:x.csv", imbalance_ratio=0).validate()
    with pytest.raises(UserInputError, match="imbalance_ratio=0"):
        ExperimentConfig(imbalance_ratio=0).validate()


def test_target_distribution_checks():
    assert validate_target_distribution([0.25, 0.75], 2) == (0.25, 0.75)
    with pytest.raises(
        UserInputError, match=r"one share per class \(3 classes\). Received: target_distribution=0.5,0.5"
    ):
        validate_target_distribution([0.5, 0.5], 3)
