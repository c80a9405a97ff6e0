"""ExperimentConfig: its parts, flat names, round trips, derived names and validation messages."""

import dataclasses
import json

import pytest

from imbal_keras import config as config_lib
from imbal_keras import strategies
from imbal_keras.config import DataConfig, ExperimentConfig, ModelConfig, TrainingConfig, validate_target_distribution
from imbal_keras.errors import UserInputError


def test_parts_round_trip_through_json():
    config = ExperimentConfig.from_flat(
        {
            "strategy": "class_weight",
            "weight_reduction": "mean_with_sample_weight",
            "target_distribution": [0.7, 0.3],
            "hidden_units": [8, 4],
            "order_seed": 5,
        }
    )
    assert config.strategy.target_distribution == (0.7, 0.3) and config.model.hidden_units == (8, 4)
    tree = json.loads(config.to_json())
    assert list(tree) == ["data", "strategy", "model", "training", "output"]
    assert tree["strategy"] == {
        "name": "class_weight",
        "target_distribution": [0.7, 0.3],
        "params": {
            "class_weight_normalization": "mean_one",
            "weight_method": "inverse",
            "weight_reduction": "mean_with_sample_weight",
        },
    }
    assert ExperimentConfig.from_json(config.to_json()) == config
    assert ExperimentConfig.from_flat(config.flat()) == config
    assert hash(ExperimentConfig.from_json(config.to_json())) == hash(config)


def test_flat_names_are_unique_across_parts_and_parameters():
    names = config_lib.field_names()
    assert len(names) == len(set(names))
    part_fields = [f.name for part in config_lib.PARTS.values() for f in dataclasses.fields(part)]
    assert not set(strategies.all_params()) & set(part_fields)


def test_flat_lists_only_the_parameters_of_the_runs_strategy():
    assert "weight_reduction" not in ExperimentConfig().flat()
    assert ExperimentConfig.from_flat({"strategy": "class_weight"}).flat()["weight_reduction"] == "sum_over_batch_size"


def test_strategy_parameters_are_read_only():
    config = ExperimentConfig.from_flat({"strategy": "class_weight"})
    with pytest.raises(TypeError, match="read-only"):
        config.strategy.params["weight_reduction"] = "x"


@pytest.mark.parametrize(
    "flat, message",
    [
        ({"colour": "red"}, r"Unknown config fields: \['colour'\]"),
        ({"strategy": "upsample", "weight_reduction": "sum_over_batch_size"},
         r"^weight_reduction does not apply to strategy 'upsample' \(it applies to: class_weight, "),
        ({"strategy": "class_weight", "weight_reduction": "sum"},
         r"^weight_reduction must be one of sum_over_batch_size, mean_with_sample_weight\. Received: "
         r"weight_reduction='sum'"),
        ({"strategy": "nope"}, r"^strategy must be one of none, class_weight, .*Received: strategy='nope'"),
    ],
)  # fmt: skip
def test_from_flat_names_the_argument(flat, message):
    with pytest.raises(UserInputError, match=message):
        ExperimentConfig.from_flat(flat)


def test_from_dict_rejects_unknown_parts_and_fields():
    with pytest.raises(UserInputError, match=r"Unknown config parts: \['colour'\]"):
        ExperimentConfig.from_dict({"colour": {}})
    with pytest.raises(UserInputError, match=r"Unknown training fields: \['colour'\]"):
        ExperimentConfig.from_dict({"training": {"colour": 1}})


def test_default_run_name_names_the_strategy_parameters_and_the_axes():
    assert ExperimentConfig.from_flat({"strategy": "upsample"}).default_run_name() == (
        "synthetic_upsample_r99_b16_sgd_lr0p05_seed0"
    )
    weighted = ExperimentConfig.from_flat(
        {"strategy": "class_weight", "class_weight_normalization": "sum_to_num_classes", "seed": 4}
    )
    assert weighted.default_run_name() == (
        "synthetic_class_weight_sum_to_num_classes_inverse_sum_over_batch_size_r99_b16_sgd_lr0p05_seed4"
    )
    assert ExperimentConfig.from_flat({"order_seed": 2}).default_run_name().endswith("_seed0_order2")
    # A user's data keeps its own ratio by default: no ratio in the name; an imposed one is named.
    as_given = ExperimentConfig.from_flat({"dataset": "csv:/data/fraud.csv"})
    assert as_given.default_run_name().startswith("fraud_none_b16_")
    imposed = ExperimentConfig.from_flat({"dataset": "csv:/data/fraud.csv", "imbalance_ratio": 24})
    assert imposed.default_run_name().startswith("fraud_none_r24_b16_")
    # Embedded dense data is named by its dataset name.
    assert (
        ExperimentConfig.from_flat({"dataset": "synthetic_segmentation"})
        .default_run_name()
        .startswith("synthetic_segmentation_none_b16_")
    )


def test_variant_shows_the_parameters_that_differ_from_their_defaults():
    assert ExperimentConfig.from_flat({"strategy": "class_weight"}).strategy.variant() == "class_weight"
    config = ExperimentConfig.from_flat({"strategy": "class_weight", "weight_reduction": "mean_with_sample_weight"})
    assert config.strategy.variant() == "class_weight[weight_reduction=mean_with_sample_weight]"


def test_each_seed_defaults_to_seed():
    training = TrainingConfig(seed=4, init_seed=9)
    assert [training.seed_for(s) for s in ("data", "init", "order")] == [4, 9, 4]


@pytest.mark.parametrize(
    "part, message",
    [
        (TrainingConfig(optimizer="rmsprop"), r"^optimizer must be one of sgd, adam. Received: optimizer='rmsprop'"),
        (TrainingConfig(eval_every=0), r"^eval_every must be >= 1. Received: eval_every=0"),
        (TrainingConfig(learning_rate=-1.0), r"^learning_rate must be > 0. Received: learning_rate=-1.0"),
        (TrainingConfig(order_seed=-2), r"^order_seed must be >= -1 \(-1 means --seed\). Received: order_seed=-2"),
        (DataConfig(num_classes=1), r"^num_classes must be >= 2. Received: num_classes=1"),
        (DataConfig(label_noise=1.0), r"^label_noise must be in \[0, 1\). Received: label_noise=1.0"),
        (DataConfig(test_fraction=0.6, validation_fraction=0.5), r"^validation_fraction \+ test_fraction must be < 1"),
        (DataConfig(dataset="csv:"), r"^dataset must be 'synthetic', 'csv:PATH', .*Received: dataset='csv:'"),
        (ModelConfig(hidden_units=(4, 0)), r"^hidden_units must be positive widths"),
    ],
)  # fmt: skip
def test_validate_names_the_argument_and_value(part, message):
    name = next(n for n, cls in config_lib.PARTS.items() if isinstance(part, cls))
    with pytest.raises(UserInputError, match=message) as raised:
        dataclasses.replace(ExperimentConfig(), **{name: part}).validate()
    # The command line shows the same message with the flag.
    assert raised.value.command_line_message().startswith("--")


def test_data_is_kept_at_its_own_ratio_unless_one_is_imposed():
    # The default 0 keeps a user's data as given; synthetic data, which has no ratio, is generated at 1:99, and
    # names and results the same run as an explicit 99.
    assert ExperimentConfig.from_flat({"dataset": "csv:x.csv"}).validate().data.effective_imbalance_ratio == 0
    assert ExperimentConfig().validate().data.effective_imbalance_ratio == config_lib.SYNTHETIC_IMBALANCE_RATIO == 99
    explicit = ExperimentConfig.from_flat({"imbalance_ratio": 99})
    assert explicit.default_run_name() == ExperimentConfig().default_run_name()
    assert explicit.flat() == ExperimentConfig().resolved().flat()
    with pytest.raises(UserInputError, match=r"^imbalance_ratio must be >= 1 .*Received: imbalance_ratio=0.5"):
        ExperimentConfig.from_flat({"imbalance_ratio": 0.5}).validate()


@pytest.mark.parametrize("seed", ["seed", "data_seed", "init_seed", "order_seed"])
def test_negative_seeds_are_refused_at_validation(seed):
    with pytest.raises(UserInputError, match=rf"^{seed} must be >= .*Received: {seed}=-7$") as raised:
        ExperimentConfig.from_flat({seed: -7}).validate()
    assert raised.value.command_line_message().startswith(f"--{seed} ")


def test_synthetic_data_too_large_for_memory_is_refused_at_validation():
    with pytest.raises(UserInputError, match=r"^num_examples=10000000000 with num_features=20 needs about 2607\.7 GiB"):
        ExperimentConfig.from_flat({"num_examples": 10_000_000_000}).validate()


def test_target_distribution_checks():
    assert validate_target_distribution([0.25, 0.75], 2) == (0.25, 0.75)
    with pytest.raises(
        UserInputError, match=r"one share per class \(3 classes\). Received: target_distribution=0.5,0.5"
    ):
        validate_target_distribution([0.5, 0.5], 3)
    with pytest.raises(UserInputError, match=r"must sum to 1"):
        validate_target_distribution([0.5, 0.6], 2)


def test_every_config_field_declares_one_known_role():
    for part_cls in config_lib.PARTS.values():
        if part_cls is config_lib.StrategyConfig:
            continue
        for field in dataclasses.fields(part_cls):
            assert field.metadata.get("role") in config_lib.ROLES, f"{part_cls.__name__}.{field.name} has no role"
    names = config_lib.field_names()
    assert sorted(sum((config_lib.fields_with_role(r) for r in config_lib.ROLES), ())) == sorted(names)


def test_keys_are_derived_from_roles():
    assert config_lib.fields_with_role("training_seed") == ("seed", "init_seed", "order_seed")
    assert config_lib.fields_with_role("output") == ("output_dir", "run_name")
    compiled, pack, cell = (set(config_lib.key_fields(k)) for k in ("compiled", "pack", "cell"))
    # A pack's replicas may differ in their data seeds and strategies, not in their shapes and budget.
    assert pack < cell and pack < compiled | cell
    assert "steps" in pack - compiled and "data_seed" in cell - pack and "strategy" in compiled - cell - pack
    assert not {"seed", "init_seed", "order_seed", "output_dir", "run_name"} & (compiled | pack | cell)
    with pytest.raises(UserInputError, match=r"Unknown config field: 'nope'"):
        config_lib.role_of("nope")


def test_a_field_without_a_role_is_found(monkeypatch):
    @dataclasses.dataclass(frozen=True)
    class Extra:
        unlabelled: int = 0

    monkeypatch.setitem(config_lib.PARTS, "extra", Extra)
    with pytest.raises(KeyError):
        config_lib.role_of("unlabelled")


def test_a_runs_key_holds_its_keys_fields_with_the_data_seed_resolved():
    a = ExperimentConfig.from_flat({"seed": 1, "steps": 100})
    assert a.key("cell") == a.replace(seed=2, data_seed=1, run_name="x").key("cell")  # data seed 1 either way
    assert a.key("cell") != a.replace(data_seed=2).key("cell")
    assert a.key("pack") == a.replace(data_seed=2, strategy="upsample").key("pack")
    assert a.key("pack") != a.replace(steps=200).key("pack")
    assert a.key("compiled") == a.replace(steps=200, data_seed=5).key("compiled")
    assert a.key("cell") == a.replace(strategy="upsample", init_seed=4).key("cell")
    with pytest.raises(UserInputError, match=r"key must be one of compiled, pack, cell\. Received: key='nope'"):
        a.key("nope")
