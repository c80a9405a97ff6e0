"""A two-headed functional model trains under `fit` on `multi_output.rebalanced` batches: the per-head losses Keras
logs for one batch match a numpy forward pass of the weighted losses, and one SGD step matches a GradientTape of
the same formula (loss weights included); the callbacks read the per-head weights. Keras itself refuses
`class_weight` for such a model."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from imbal_keras.callbacks import BatchComposition, PerClassGradients
from imbal_keras.data.multi_output import Resampling, rebalanced

N, BATCH, FEATURES, LR = 96, 12, 5, 0.1
RNG = np.random.default_rng(1)
X = RNG.normal(size=(N, FEATURES)).astype(np.float32)
MAIN = RNG.choice(3, size=N, p=[0.7, 0.2, 0.1])
AUX = (RNG.uniform(size=N) < 0.2).astype(np.float32)
LOSS_WEIGHTS = {"main": 1.0, "aux": 0.3}


def _model(*, as_list: bool) -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((FEATURES,))
    hidden = keras.layers.Dense(4, activation="tanh", name="hidden")(inputs)
    main = keras.layers.Dense(3, activation="softmax", name="main")(hidden)
    aux = keras.layers.Dense(1, activation="sigmoid", name="aux")(hidden)
    losses = {"main": "sparse_categorical_crossentropy", "aux": "binary_crossentropy"}
    net = keras.Model(inputs, [main, aux] if as_list else {"main": main, "aux": aux})
    net.compile(
        optimizer=keras.optimizers.SGD(LR),
        loss=list(losses.values()) if as_list else losses,
        loss_weights=list(LOSS_WEIGHTS.values()) if as_list else LOSS_WEIGHTS,
    )
    return net


def _stream(*, as_list: bool) -> tf.data.Dataset:
    labels = [MAIN, AUX] if as_list else {"main": MAIN, "aux": AUX}
    heads = (0, 1) if as_list else ("main", "aux")
    return rebalanced(
        X,
        labels,
        batch_size=BATCH,
        seed=0,
        class_weights={heads[0]: "inverse", heads[1]: {1: 4.0}},
        resampling=Resampling(heads[0], "up"),
    )


def _head_losses(params, x, main, aux, w_main, w_aux, ops):
    """Each head's weighted loss sum_i w_i l_i / B from the layer weights, written with `ops` (numpy or tf)."""
    k1, b1, k2, b2, k3, b3 = params
    hidden = ops.tanh(ops.matmul(x, k1) + b1)
    logits = ops.matmul(hidden, k2) + b2
    exp = ops.exp(logits - ops.max(logits, axis=1, keepdims=True))
    softmax = exp / ops.sum(exp, axis=1, keepdims=True)
    picked = ops.sum(softmax * np.eye(3, dtype=np.float32)[main], axis=1)
    p = ops.clip(1 / (1 + ops.exp(-(ops.matmul(hidden, k3) + b3)))[:, 0], 1e-7, 1 - 1e-7)
    bce = -(aux * ops.log(p) + (1 - aux) * ops.log(1 - p))
    return ops.sum(w_main * -ops.log(picked)) / len(main), ops.sum(w_aux * bce) / len(main)


@pytest.mark.parametrize("as_list", [False, True], ids=["dict", "list"])
def test_logged_losses_and_one_step_match_an_independent_computation(as_list):
    net = _model(as_list=as_list)
    x, y, w = next(iter(_stream(as_list=as_list)))
    heads = (0, 1) if as_list else ("main", "aux")
    batch = (x.numpy(), y[heads[0]].numpy(), y[heads[1]].numpy(), w[heads[0]].numpy(), w[heads[1]].numpy())
    layers = [net.get_layer(name) for name in ("hidden", "main", "aux")]
    before = [v.numpy() for layer in layers for v in (layer.kernel, layer.bias)]
    main_loss, aux_loss = _head_losses(before, *batch, ops=keras.ops)
    variables = [tf.Variable(v) for v in before]
    with tf.GradientTape() as tape:
        parts = _head_losses(variables, *batch, ops=keras.ops)
        total = LOSS_WEIGHTS["main"] * parts[0] + LOSS_WEIGHTS["aux"] * parts[1]
    gradients = tape.gradient(total, variables)

    logs = net.fit(_stream(as_list=as_list), steps_per_epoch=1, epochs=1, verbose=0).history
    logged = {name: values[0] for name, values in logs.items()}
    assert logged["main_loss"] == pytest.approx(float(main_loss), rel=1e-5)
    assert logged["aux_loss"] == pytest.approx(float(aux_loss), rel=1e-5)
    assert logged["loss"] == pytest.approx(float(main_loss) + 0.3 * float(aux_loss), rel=1e-5)
    after_step = [v for layer in layers for v in (layer.kernel, layer.bias)]
    for after, start, gradient in zip(after_step, before, gradients, strict=True):
        np.testing.assert_allclose(after.numpy(), start - LR * gradient.numpy(), rtol=1e-5, atol=1e-6)
    # The weights did something: the weighted main loss is not the unweighted one.
    unweighted, _ = _head_losses(before, *batch[:3], np.ones(BATCH), np.ones(BATCH), ops=keras.ops)
    assert abs(float(unweighted) - float(main_loss)) > 1e-3


def test_training_lowers_the_weighted_loss():
    net = _model(as_list=False)
    history = net.fit(_stream(as_list=False), steps_per_epoch=8, epochs=6, verbose=0).history["loss"]
    assert history[-1] < history[0]


def test_keras_refuses_class_weight_for_two_outputs():
    """Why the weights travel in the data (keras-team/keras #20701)."""
    net = _model(as_list=False)
    with pytest.raises(ValueError, match="class_weight"):
        net.fit(X, {"main": MAIN, "aux": AUX}, class_weight={0: 1.0, 1: 2.0, 2: 3.0}, epochs=1, verbose=0)


def test_the_callbacks_see_each_heads_weights(tmp_path):
    """`BatchComposition` and `PerClassGradients` read the dict of per-head weights: per-class weight sums equal
    numpy's on the batch, and each head's class losses sum to its weighted loss times its loss weight."""
    net = _model(as_list=False)
    x, y, w = next(iter(_stream(as_list=False)))
    layers = [net.get_layer(name) for name in ("hidden", "main", "aux")]
    params = [v.numpy() for layer in layers for v in (layer.kernel, layer.bias)]
    losses = _head_losses(params, x.numpy(), y["main"].numpy(), y["aux"].numpy(), w["main"], w["aux"], ops=keras.ops)
    composition = BatchComposition(str(tmp_path / "composition"))
    gradients = PerClassGradients(str(tmp_path / "gradients"))
    net.fit(_stream(as_list=False), steps_per_epoch=1, epochs=1, verbose=0, callbacks=[composition, gradients])
    row = composition.dataframe().iloc[0]
    for head, k in (("main", 3), ("aux", 2)):
        ids = y[head].numpy().astype(int)
        expected = np.bincount(ids, weights=w[head].numpy(), minlength=k)
        np.testing.assert_allclose([row[f"{head}_composition_weight_class_{c}"] for c in range(k)], expected, rtol=1e-5)
    parts = gradients.dataframe().iloc[0]
    for head, k, loss in (("main", 3, losses[0]), ("aux", 2, losses[1])):
        total = sum(parts[f"{head}_loss_class_{c}"] for c in range(k))
        assert total == pytest.approx(LOSS_WEIGHTS[head] * float(loss), rel=1e-5)
