"""The training plan (`imbal_keras.training.plan`): one test per rule that keeps a run off the warm or packed path,
and the runs that take them."""

import dataclasses

import keras
import pytest

from imbal_keras import strategies
from imbal_keras.callbacks import BatchComposition
from imbal_keras.config import ExperimentConfig
from imbal_keras.training import plan


def _config(**flat):
    return ExperimentConfig.from_flat({"hidden_units": (8,), **flat})


class _EpochCallback(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        pass


class _BatchCallback(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        pass


def _dense_model(*layers, inputs=(6,), output_activation="sigmoid"):
    return keras.Sequential([keras.Input(inputs), *layers, keras.layers.Dense(1, activation=output_activation)])


# One run.


def test_a_run_with_a_built_in_model_and_no_per_batch_callbacks_runs_warm():
    assert plan.plan_run(_config()) == plan.Plan("warm")
    assert plan.plan_run(_config(model="cnn")).mode == "warm"
    assert plan.plan_run(_config(), extra_callbacks=[_EpochCallback()]) == plan.Plan("warm")
    assert plan.plan_run(_config()).record() == {"mode": "warm", "reason": ""}


def test_a_strategy_with_callbacks_runs_plain():
    path = plan.plan_run(_config(strategy="ldam"))
    assert path == plan.Plan("plain", "strategy 'ldam' changes its loss or batches during training")
    assert path.record() == {"mode": "plain", "reason": path.reason}


def test_a_model_function_runs_plain():
    path = plan.plan_run(_config(model="my_package.models:build"))
    assert path.mode == "plain" and path.reason == "a model function's model may keep state of its own between runs"


def test_gradient_noise_diagnostics_run_plain():
    path = plan.plan_run(_config(diagnose_every=5))
    assert path.mode == "plain" and path.reason == "diagnose_every traces the gradient-noise diagnostics per run"


def test_extra_recorders_run_plain(tmp_path):
    path = plan.plan_run(_config(), extra_callbacks=[BatchComposition(str(tmp_path))])
    assert path.mode == "plain" and path.reason == "extra imbal_keras recorders are attached"


def test_extra_callbacks_that_read_every_batch_run_plain():
    path = plan.plan_run(_config(), extra_callbacks=[_EpochCallback(), _BatchCallback()])
    assert path.mode == "plain"
    assert path.reason == "extra callbacks read every batch (warm runs call several steps at once)"


def test_with_warm_runs_off_that_is_the_reason_given():
    assert plan.plan_run(_config(), warm_enabled=False) == plan.Plan("plain", "warm runs off")
    # The caller's choice comes first, even where a rule would keep the run plain anyway.
    assert plan.plan_run(_config(strategy="ldam"), warm_enabled=False) == plan.Plan("plain", "warm runs off")
    assert "changes its loss" in plan.plan_run(_config(strategy="ldam")).reason


# A pack.


def test_a_pack_of_dense_layers_with_an_additive_loss_trains_packed():
    model = _dense_model(keras.layers.Dense(4, activation="relu"), keras.layers.Dense(4, activation="linear"))
    path = plan.plan_pack(_config(), 3, model=model, loss=keras.losses.BinaryCrossentropy())
    assert path == plan.Plan("packed", replicas=3)
    assert path.record() == {"mode": "packed", "reason": "", "replicas": 3}
    assert plan.plan_pack(_config(), 3) == path  # before anything is built: the config's rules only
    softmax = _dense_model(output_activation="softmax")
    loss = keras.losses.SparseCategoricalCrossentropy(reduction="sum")
    assert plan.plan_pack(_config(), 2, model=softmax, loss=loss).mode == "packed"
    assert [layer.units for layer in plan.dense_layers(model)] == [4, 4, 1]
    assert [plan.activation_name(layer) for layer in plan.dense_layers(model)] == ["relu", "linear", "sigmoid"]


def test_a_pack_keeps_the_one_run_rules_but_packs_model_functions_deferred_reweighting_and_diagnostics(monkeypatch):
    scheduled = dataclasses.replace(strategies.get("none"), name="scheduled", callbacks=lambda ctx: [])
    monkeypatch.setitem(strategies.STRATEGIES, "scheduled", scheduled)
    path = plan.plan_pack(_config(strategy="scheduled"), 2)
    assert path.mode == "plain" and "changes its loss or batches during training" in path.reason
    # Every replica's model is built anew for its pack: a model function's model packs (it does not run warm).
    assert plan.plan_pack(_config(model="my_package.models:build"), 2) == plan.Plan("packed", replicas=2)
    # ldam's callback only binds its loss to the step counter: a pack binds its own (one run alone stays plain).
    assert plan.plan_pack(_config(strategy="ldam"), 2) == plan.Plan("packed", replicas=2)
    assert plan.plan_run(_config(strategy="ldam")).mode == "plain"
    # Each replica's gradient-noise diagnostics run at its own weights (one run alone stays plain).
    assert plan.plan_pack(_config(diagnose_every=4), 2) == plan.Plan("packed", replicas=2)


def test_a_cnn_packs():
    assert plan.plan_pack(_config(model="cnn"), 2) == plan.Plan("packed", replicas=2)


@pytest.mark.parametrize(
    "model",
    [
        _dense_model(keras.layers.Dense(4, use_bias=False)),
        _dense_model(keras.layers.Dense(4, activation="tanh")),
        _dense_model(inputs=(3, 2)),
        _dense_model(keras.layers.Conv1D(2, 2), keras.layers.Flatten(), inputs=(4, 3)),
    ],
    ids=["no_bias", "tanh", "3d_inputs", "conv"],
)
def test_models_other_than_a_dense_stack_pack_through_their_own_call(model):
    assert plan.plan_pack(_config(), 2, model=model) == plan.Plan("packed", replicas=2)
    assert not plan.stacked_dense(model)
    assert plan.stacked_dense(_dense_model(keras.layers.Dense(4, activation="relu")))


def test_an_op_between_layers_packs_through_the_models_own_call():
    # The built-in MLP's one-hot encoding of a lone categorical column is such an op.
    inputs = keras.Input((1,))
    encoded = keras.ops.one_hot(keras.ops.cast(inputs[:, 0], "int32"), 4)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(encoded))
    assert plan.plan_pack(_config(), 2, model=model).mode == "packed" and not plan.stacked_dense(model)
    assert plan.output_layer(model) is model.layers[-1]


def test_a_model_with_state_that_is_not_trained_is_not_packed():
    path = plan.plan_pack(_config(), 2, model=_dense_model(keras.layers.Dropout(0.5, name="drop")))
    assert path.reason == "the model keeps state that is not trained (in drop: moving statistics, dropout seeds)"
    path = plan.plan_pack(_config(), 2, model=_dense_model(keras.layers.BatchNormalization(name="norm")))
    assert path.reason.startswith("the model keeps state that is not trained (in norm")


def test_a_model_with_losses_of_its_own_or_compiled_by_its_function_is_not_packed():
    regularized = _dense_model(keras.layers.Dense(4, kernel_regularizer="l2"))
    path = plan.plan_pack(_config(), 2, model=regularized)
    assert path.reason == "the model adds losses of its own (regularizers)"
    compiled = _dense_model()
    compiled.compile(optimizer="sgd", loss="binary_crossentropy")
    path = plan.plan_pack(_config(), 2, model=compiled)
    assert path.reason == "the model function compiled its model (its own optimizer and loss)"


def test_an_output_other_than_sigmoid_or_softmax_is_not_packed():
    path = plan.plan_pack(_config(), 2, model=_dense_model(output_activation="linear"))
    assert path.reason == "the output activation is 'linear', not sigmoid or softmax"


@pytest.mark.parametrize(
    "loss, name",
    [
        (keras.losses.BinaryCrossentropy(reduction=None), "BinaryCrossentropy"),
        (keras.losses.binary_crossentropy, "function"),  # no reduction, no per-example `call`
    ],
)
def test_a_loss_without_an_additive_reduction_is_not_packed(loss, name):
    path = plan.plan_pack(_config(), 2, model=_dense_model(), loss=loss)
    assert path == plan.Plan("plain", f"the loss {name} has no additive reduction")


def test_configs_that_differ_in_seeds_data_seeds_strategies_and_output_share_a_pack_key():
    base = dict(strategy="class_weight", data_seed=3, steps=20)
    key = _config(**base).key("pack")
    mates = [dict(seed=1), dict(init_seed=5), dict(order_seed=7), dict(output_dir="elsewhere", run_name="r")]
    mates += [dict(data_seed=4), dict(strategy="upsample"), dict(weight_reduction="mean_with_sample_weight")]
    assert all(_config(**{**base, **mate}).key("pack") == key for mate in mates)
    others = [dict(steps=30), dict(batch_size=64), dict(hidden_units=(4,))]
    assert all(_config(**{**base, **other}).key("pack") != key for other in others)
    # Without a fixed data seed each seed draws its own data: the runs still share a pack key.
    assert _config(data_seed=-1, seed=0).key("pack") == _config(data_seed=-1, seed=1).key("pack")


def test_replicas_whose_data_differ_in_shape_do_not_pack():
    import dataclasses

    import numpy as np

    from imbal_keras.training import experiment

    config = _config(num_examples=600, num_features=4, data_seed=0)
    data, _ = experiment.load_data(config, None)
    other, _ = experiment.load_data(config.replace(data_seed=1), None)
    assert plan.plan_pack(config, 3, data=[data, other, data]) == plan.Plan("packed", replicas=3)
    shorter = dataclasses.replace(other, test=dataclasses.replace(other.test, x=other.test.x[:-1], y=other.test.y[:-1]))
    assert (
        plan.plan_pack(config, 2, data=[data, shorter]).reason
        == "the replicas' validation or test splits differ in size"
    )
    wider = dataclasses.replace(other, train=dataclasses.replace(other.train, x=np.ones((len(other.train), 5))))
    assert plan.plan_pack(config, 2, data=[data, wider]).reason.endswith("data differ in input shape or classes")


@pytest.mark.parametrize("kind", ["segmentation", "sequence", "multilabel"])
def test_data_that_are_not_single_label_classification_do_not_pack(kind):
    import dataclasses

    from imbal_keras.training import experiment

    config = _config(num_examples=600, num_features=4)
    data, _ = experiment.load_data(config, None)
    dense = dataclasses.replace(data, kind=kind)
    reason = plan.plan_pack(config, 2, data=[dense, dense]).reason
    assert reason == f"the data are {kind}, not single-label classification (they take the one-run path)"
