"""Models: output bias and zero kernel, the CNN sized to the image, categorical one-hots, a model function."""

import dataclasses
import sys
import textwrap

import keras
import numpy as np
import pytest

from imbal_keras import losses, models, strategies
from imbal_keras.data import splits, tabular
from imbal_keras.errors import UserInputError


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


@pytest.mark.parametrize("prior", [[0.99, 0.01], [0.6, 0.3, 0.1]])
def test_zero_output_kernel_starts_every_example_at_the_prior(prior):
    x = np.random.default_rng(0).normal(size=(50, 6)).astype(np.float32)
    model = models.build((6,), len(prior), hidden_units=(8,), training_distribution=prior, zero_output_kernel=True)
    p = model.predict(x, verbose=0)
    expected = [prior[1]] if len(prior) == 2 else prior
    np.testing.assert_allclose(p, np.tile(expected, (50, 1)), rtol=1e-5)


def test_random_output_kernel_spreads_predictions_around_the_prior():
    # With a random kernel the bias fixes the logit only up to a random projection of the hidden activations:
    # the first predictions spread, and their mean moves above 0.01 (the sigmoid is convex left of 0).
    x = np.random.default_rng(0).normal(size=(500, 6)).astype(np.float32)
    model = models.build((6,), 2, hidden_units=(16,), training_distribution=[0.99, 0.01], seed=1)
    p = model.predict(x, verbose=0)[:, 0]
    h = keras.Model(model.inputs, model.layers[-2].output).predict(x, verbose=0)
    kernel, bias = (w.numpy() for w in model.layers[-1].weights)
    np.testing.assert_allclose(p, _sigmoid(h @ kernel[:, 0] + bias[0]), rtol=1e-4)  # by hand
    np.testing.assert_allclose(bias, [np.log(0.01 / 0.99)], rtol=1e-6)
    assert p.std() > 1e-3 and p.mean() > 0.01


def test_output_bias_given_overrides_the_prior():
    model = models.build((3,), 3, hidden_units=(4,), output_bias=[1.0, 2.0, 3.0], training_distribution=[0.5, 0.3, 0.2])
    np.testing.assert_allclose(model.get_layer("output").bias.numpy(), [1, 2, 3])
    with pytest.raises(UserInputError, match=r"^output_bias must hold 3 finite values for 3 classes"):
        models.build((3,), 3, output_bias=[1.0, 2.0])


@pytest.mark.parametrize(
    "num_classes, hidden_units, zero_output_kernel, output_bias",
    [(2, (8, 8), False, None), (4, (5,), True, None), (10, (), False, None), (3, (6, 4), False, (0.1, -0.2, 0.3))],
)
def test_mlp_weights_are_the_built_models_initial_weights(num_classes, hidden_units, zero_output_kernel, output_bias):
    prior = np.arange(1, num_classes + 1) / np.arange(1, num_classes + 1).sum()
    settings = dict(hidden_units=hidden_units, training_distribution=prior, output_bias=output_bias,
                    zero_output_kernel=zero_output_kernel, seed=7)  # fmt: skip
    built = models.build((6,), num_classes, **settings).get_weights()
    drawn = models.mlp_weights(6, num_classes, **settings)
    assert [w.shape for w in drawn] == [w.shape for w in built]
    for a, b in zip(drawn, built, strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    # Another seed draws other weights.
    assert not np.array_equal(models.mlp_weights(6, num_classes, **{**settings, "seed": 8})[0], drawn[0])


@pytest.mark.parametrize(
    ("side", "feature_maps"),
    [
        (28, [26, 13, 11, 5]),  # the network as before for MNIST-sized images
        (8, [6, 3, 1]),  # 8x8 used to fail: the second pooling reached 0
        (9, [7, 3, 1]),
        (4, [2, 1]),
        (3, [1]),
        (64, [62, 31, 29, 14]),
    ],
)
def test_cnn_is_sized_to_the_image(side, feature_maps):
    model = models.build((side, side, 1), 2, kind="image", hidden_units=(4,))
    maps = [
        layer.output.shape[1]
        for layer in model.layers
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.MaxPooling2D))
    ]
    assert maps == feature_maps
    assert model.predict(np.zeros((2, side, side, 1), np.float32), verbose=0).shape == (2, 1)


def test_cnn_refuses_images_below_its_smallest_size():
    with pytest.raises(UserInputError, match=r"^model=cnn takes images \(H, W, C\) of at least 3x3 pixels. Received: "
                       r"input_shape=\(2, 5, 1\)$"):  # fmt: skip
        models.build((2, 5, 1), 2, kind="image")


def test_mlp_one_hot_encodes_categorical_columns():
    features = (
        tabular.Feature("amount", "numeric"),
        tabular.Feature("merchant", "categorical", cardinality=4, levels=("a", "b")),
    )
    model = models.build((2,), 2, hidden_units=(3,), features=features, seed=0)
    x = np.array([[0.5, 0.0], [-1.0, 2.0], [2.0, 3.0]], np.float32)
    first, second = (layer for layer in model.layers if isinstance(layer, keras.layers.Dense))
    w1, b1 = (v.numpy() for v in first.weights)
    w2, b2 = (v.numpy() for v in second.weights)
    assert w1.shape == (1 + 4, 3)
    encoded = np.concatenate([x[:, :1], np.eye(4)[x[:, 1].astype(int)]], axis=1)
    expected = _sigmoid(np.maximum(encoded @ w1 + b1, 0) @ w2 + b2)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5)


# A user's model function.

_MODELS = """
import keras
import numpy as np

calls = []

def embedding(input_shape, num_classes, features, seed):
    calls.append({"input_shape": input_shape, "num_classes": num_classes, "features": features, "seed": seed})
    inputs = keras.Input(shape=input_shape)
    code = [i for i, f in enumerate(features) if f.kind == "categorical"][0]
    numeric = keras.ops.take(inputs, [i for i in range(input_shape[0]) if i != code], axis=1)
    embedded = keras.layers.Flatten()(keras.layers.Embedding(features[code].cardinality, 3)(inputs[:, code]))
    h = keras.layers.Dense(8, activation="relu")(keras.layers.Concatenate()([numeric, embedded]))
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(h))

def sequential(input_shape, num_classes):
    return keras.Sequential([keras.Input(input_shape), keras.layers.Dense(4, activation="relu"),
                             keras.layers.Dense(num_classes), keras.layers.Activation("softmax")])

def everything(**kwargs):
    calls.append(sorted(kwargs))
    return sequential(kwargs["input_shape"], kwargs["num_classes"])

def compiled(input_shape):
    model = keras.Sequential([keras.Input(input_shape), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy")
    return model

class _Doubled(keras.layers.Layer):
    def call(self, x):
        return keras.ops.sigmoid(2 * x)

def custom_output(input_shape):
    inputs = keras.Input(input_shape)
    return keras.Model(inputs, _Doubled()(keras.layers.Dense(1)(inputs)))

def two_units(input_shape):
    inputs = keras.Input(input_shape)
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs))

def logits(input_shape):
    inputs = keras.Input(input_shape)
    return keras.Model(inputs, 5 + keras.layers.Dense(1)(inputs))

def not_a_model():
    return "model"

def needs_more(input_shape, vocabulary):
    return None

def raises(input_shape):
    raise RuntimeError("out of memory")

def two_outputs(input_shape):
    inputs = keras.Input(input_shape)
    return keras.Model(inputs, [keras.layers.Dense(1, activation="sigmoid")(inputs)] * 2)
"""


@pytest.fixture
def user_models(tmp_path, monkeypatch):
    (tmp_path / "user_models.py").write_text(textwrap.dedent(_MODELS))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "user_models", raising=False)
    import user_models

    return user_models


def _table_data(k=2, n=90):
    rng = np.random.default_rng(0)
    y = np.arange(n) % k
    x = np.stack([rng.normal(size=n), rng.integers(0, 5, n)], axis=1).astype(np.float32)
    split = splits.Split(x, y.astype(np.int32))
    features = (tabular.Feature("amount", "numeric"), tabular.Feature("merchant", "categorical", cardinality=5))
    names = tuple(str(c) for c in range(k))
    return splits.Data(split, split, split, num_classes=k, class_names=names, kind="tabular", name="t",
                         features=features)  # fmt: skip


def test_model_function_gets_its_arguments_and_its_output_bias(user_models):
    lines = []
    prior = np.array([0.9, 0.1])
    model = models.build_for_run(
        "user_models:embedding", _table_data(), training_distribution=prior, seed=7, log=lines.append
    )
    (call,) = user_models.calls
    assert call["input_shape"] == (2,) and call["num_classes"] == 2 and call["seed"] == 7
    assert call["features"][1].cardinality == 5
    np.testing.assert_allclose(model.layers[-1].bias.numpy(), models.output_bias(prior), rtol=1e-6)
    assert lines == [f"model=user_models:embedding: output bias of layer {model.layers[-1].name!r} set to [-2.1972]"]


def test_model_function_with_kwargs_gets_every_argument_and_softmax_after_dense(user_models):
    prior = [0.5, 0.3, 0.2]
    model = models.build_for_run(
        "user_models:everything",
        _table_data(k=3),
        training_distribution=prior,
        zero_output_kernel=True,
        log=lambda _: None,
    )
    assert user_models.calls == [sorted(models.MODEL_FUNCTION_ARGUMENTS)]
    p = model.predict(_table_data(k=3).train.x, verbose=0)
    np.testing.assert_allclose(p, np.tile(prior, (90, 1)), rtol=1e-5)  # Dense + Activation("softmax") found


def test_output_bias_not_found_is_logged(user_models):
    lines = []
    models.build_for_run("user_models:custom_output", _table_data(), training_distribution=[0.9, 0.1], log=lines.append)
    assert lines == [
        "model=user_models:custom_output: output bias not set: the output comes from _Doubled '__doubled', not a "
        "Dense layer with a bias and a sigmoid/softmax; the first prediction is the model's own"
    ]


@pytest.mark.parametrize(
    ("path", "kwargs", "message"),
    [
        ("user_models:nope", {}, r"^model='user_models:nope': module 'user_models' has no attribute 'nope'$"),
        ("no_such_pkg.models:f", {}, r"^model='no_such_pkg.models:f' does not import: ModuleNotFoundError: No module"),
        ("user_models:not_a_model", {}, r"^model='user_models:not_a_model' returned str, not a keras.Model$"),
        ("user_models:needs_more", {}, r"^model='user_models:needs_more' requires argument\(s\) \['vocabulary'\] that"),
        ("user_models:raises", {}, r"^model='user_models:raises' raised RuntimeError: out of memory$"),
        ("user_models:two_units", {}, r"outputs shape \(batch, 2\); with 2 classes it must be \(batch, 1\)"),
        ("user_models:logits", {}, r"does not output probabilities \(outputs in \[.*\]\); end it with a sigmoid"),
        ("user_models:two_outputs", {}, r"^model='user_models:two_outputs' has 2 outputs; it must have one$"),
        ("user_models:custom_output", {"zero_output_kernel": True},
         r"^zero_output_kernel=True needs a Dense output layer with a bias \(the output comes from _Doubled"),
    ],
)  # fmt: skip
def test_model_function_bad_input_is_one_line(user_models, path, kwargs, message):
    with pytest.raises(UserInputError, match=message) as error:
        models.build_for_run(path, _table_data(), training_distribution=[0.9, 0.1], log=lambda _: None, **kwargs)
    assert "\n" not in str(error.value)


def test_compile_with_the_strategy_loss_unless_the_function_compiled():
    lines = []
    strategy = strategies.get("class_weight")
    loss = losses.cross_entropy(2)
    model = models.build((3,), 2, hidden_units=(2,))
    models.compile_for_run(model, loss=loss, optimizer=keras.optimizers.SGD(0.1), strategy=strategy, log=lines.append)
    assert model.loss is loss and isinstance(model.optimizer, keras.optimizers.SGD) and not lines


def test_model_compiled_by_its_function_is_kept(user_models):
    lines = []
    model = user_models.compiled((3,))
    own_optimizer = model.optimizer
    strategy = strategies.get("upsample")
    models.compile_for_run(model, loss=losses.cross_entropy(2), optimizer=keras.optimizers.SGD(0.1), strategy=strategy,
                           log=lines.append)  # fmt: skip
    assert model.optimizer is own_optimizer and model.loss == "binary_crossentropy"
    assert lines[0].startswith("model compiled by its function: its optimizer and loss are kept")
    own_loss = dataclasses.replace(strategies.get("none"), name="focal_like", loss=lambda ctx: losses.cross_entropy(2))
    with pytest.raises(UserInputError, match=r"^strategy='focal_like' works through a loss of its own"):
        models.compile_for_run(model, loss=losses.cross_entropy(2), optimizer=None, strategy=own_loss, log=lines.append)


@pytest.mark.parametrize("model", ["resnet", "pkg.module", "pkg.module:", "pkg-x:f"])
def test_model_setting_must_be_built_in_or_a_path(model):
    from imbal_keras.config import ModelConfig

    with pytest.raises(UserInputError, match=rf"^model must be one of auto, mlp, cnn or 'package.module:function'. "
                       rf"Received: model='{model}'$"):  # fmt: skip
        ModelConfig(model=model).validate()
