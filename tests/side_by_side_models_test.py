"""Packs of models other than a stack of Dense layers (`imbal_keras.training.side_by_side`): the built-in CNN,
the built-in MLP over categorical columns and a user's model function train side by side through a map of the
model's own call over the replicas, and each run matches its one-run path, run by run (the tolerance of
tests/side_by_side_test.py). Models that cannot pack say why."""

import numpy as np
import pandas as pd
import pytest

from imbal_keras.config import ExperimentConfig
from imbal_keras.data import sources
from imbal_keras.training import experiment, side_by_side
from tests.side_by_side_test import assert_same_run

BASE = dict(steps=24, eval_every=8, batch_size=16, gradient_every_n_steps=3, learning_rate=0.05)
STRATEGIES = ("none", "class_weight", "upsample")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """8x8 one-channel images of 2 classes (the positive ones brighter in a corner), 900 of them."""
    rng = np.random.default_rng(0)
    y = (rng.random(900) < 0.15).astype(np.int64)
    x = rng.normal(size=(900, 8, 8, 1)).astype(np.float32)
    x[y == 1, :3, :3] += 1.0
    path = tmp_path_factory.mktemp("images") / "images.npz"
    np.savez(path, x=x, y=y)
    return str(path)


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """A table of two numeric and one categorical column, the label more likely for one category."""
    rng = np.random.default_rng(1)
    shop = rng.choice(["a", "b", "c", "d"], size=1200)
    amount, age = rng.normal(size=1200), rng.normal(size=1200)
    fraud = rng.random(1200) < 1 / (1 + np.exp(-(-2.5 + amount + 1.5 * (shop == "c"))))
    path = tmp_path_factory.mktemp("table") / "table.csv"
    pd.DataFrame({"amount": amount, "age": age, "shop": shop, "fraud": fraud.astype(int)}).to_csv(path, index=False)
    return str(path)


def _cases(images, table):
    tabular = dict(dataset=f"csv:{table}", label_column="fraud", categorical_columns=("shop",), imbalance_ratio=0)
    return {
        "cnn": dict(dataset=f"npz:{images}", model="cnn", imbalance_ratio=0),
        "categorical_mlp": dict(tabular, model="mlp", hidden_units=(8,)),
        "model_function": dict(tabular, model="examples.fraud_model:build_model"),
        # Each replica's gradient-noise diagnostics through a one-run CNN per loss, at its own weights.
        "cnn_diagnosed": dict(dataset=f"npz:{images}", model="cnn", imbalance_ratio=0, diagnose_every=12),
    }


def _configs(out, flat, seeds=(0, 1)):
    return [
        ExperimentConfig.from_flat(
            {
                **BASE,
                **flat,
                "strategy": strategy,
                "seed": seed,
                "data_seed": -1,
                "output_dir": str(out),
                "run_name": f"{strategy}_{seed}",
            }
        )  # fmt: skip
        for strategy in STRATEGIES
        for seed in seeds
    ]


@pytest.mark.parametrize("case", ["cnn", "categorical_mlp", "model_function", "cnn_diagnosed"])
def test_a_pack_of_another_model_matches_the_one_run_path_run_by_run(tmp_path, images, table, case):
    flat = _cases(images, table)[case]
    results = side_by_side.run_pack(_configs(tmp_path / "pack", flat), log=None)
    assert not isinstance(results, str), results
    for config, result in zip(_configs(tmp_path / "one", flat), results, strict=True):
        assert result.summary["training_path"] == {"mode": "packed", "reason": "", "replicas": 6}
        assert_same_run(result.run_dir, experiment.run(config, log=None).run_dir)


def test_a_model_with_state_that_is_not_trained_does_not_pack(tmp_path, table):
    flat = dict(_cases(None, table)["model_function"], model="tests.side_by_side_models_test:dropout_model")
    reason = side_by_side.run_pack(_configs(tmp_path, flat), log=None)
    assert reason.startswith("the model keeps state that is not trained (in dropout")
    assert not list(tmp_path.iterdir())


def dropout_model(input_shape, num_classes, seed):
    """A model function whose Dropout keeps a seed of its own (a non-trainable variable)."""
    import keras

    inputs = keras.Input(input_shape)
    h = keras.layers.Dropout(0.2, seed=seed, name="dropout")(keras.layers.Dense(4, activation="relu")(inputs))
    units, activation = (1, "sigmoid") if num_classes == 2 else (num_classes, "softmax")
    return keras.Model(inputs, keras.layers.Dense(units, activation=activation)(h))


def test_the_built_in_cnn_packs_as_grouped_convolutions_with_each_replicas_own_output():
    import keras
    import tensorflow as tf

    from imbal_keras import models
    from imbal_keras.training import chains

    built = [
        models.build((9, 9, 2), 2, kind="image", hidden_units=(4,), training_distribution=[0.8, 0.2], seed=s)
        for s in (0, 1, 2)
    ]
    steps = chains.chain_steps(built[0])
    kinds = [kind for kind, _ in steps]
    assert kinds == ["conv", "pool", "conv", "average", "dense", "dense"], steps
    stacked = [np.stack([m.trainable_variables[i].numpy() for m in built]) for i in range(len(built[0].weights))]
    x = np.random.default_rng(0).normal(size=(3, 5, 9, 9, 2)).astype(np.float32)
    own = tf.sigmoid(chains.chain_logits(steps, stacked, tf.constant(x), 3)).numpy()
    shared = tf.sigmoid(chains.chain_logits(steps, stacked, tf.constant(x[0]), 3)).numpy()
    for r, model in enumerate(built):
        np.testing.assert_allclose(own[r], model(x[r]).numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(shared[r], model(x[0]).numpy(), rtol=1e-5, atol=1e-6)
    # Other layers, or other settings of these, are not a chain (the model's own call is mapped instead).
    inputs = keras.Input((9, 9, 2))
    padded = keras.layers.Conv2D(2, 3, padding="same")(inputs)
    other = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(keras.layers.Flatten()(padded)))
    assert chains.chain_steps(other) is None


CALLS = []


def counting_model(input_shape, num_classes, seed):
    """A model function that counts its calls: a Dense layer seeded by `seed`, then the output."""
    import keras

    CALLS.append(seed)
    inputs = keras.Input(input_shape)
    h = keras.layers.Dense(4, activation="relu", kernel_initializer=keras.initializers.GlorotUniform(seed))(inputs)
    units, activation = (1, "sigmoid") if num_classes == 2 else (num_classes, "softmax")
    return keras.Model(inputs, keras.layers.Dense(units, activation=activation)(h))


def distribution_model(input_shape, num_classes, seed, training_distribution):
    """`counting_model` whose hidden bias starts at the training distribution's first share: its weights depend on
    the distribution beyond the output bias."""

    model = counting_model(input_shape, num_classes, seed)
    model.layers[1].bias.assign(np.full(4, training_distribution[0], np.float32))
    return model


@pytest.mark.parametrize("function", ["counting_model", "distribution_model"])
def test_a_model_function_is_called_once_per_distinct_set_of_arguments_and_each_run_matches(tmp_path, table, function):
    """Replicas of one seed and strategies of different output biases share one build of the user's function (the
    output bias is set per replica); a function that takes the training distribution is called per distribution.
    Every run equals its one-run path."""
    flat = dict(_cases(None, table)["model_function"], model=f"tests.side_by_side_models_test:{function}")
    # The list of the module the toolkit imports the function from (pytest may import this file under another name).
    calls = sources.import_function(flat["model"], argument="model").__globals__["CALLS"]
    calls.clear()
    results = side_by_side.run_pack(_configs(tmp_path / "pack", flat), log=None)
    assert not isinstance(results, str), results
    distinct = {(r.config.seed_for("init"), tuple(r.summary["training_distribution"])) for r in results}
    assert len(calls) == (2 if function == "counting_model" else len(distinct))  # 2 seeds; 6 distributions here
    for config, result in zip(_configs(tmp_path / "one", flat), results, strict=True):
        assert_same_run(result.run_dir, experiment.run(config, log=None).run_dir)
