"""Multi-output models: composition and per-class gradients per output, against numpy and a GradientTape.

A functional model with a main softmax head (3 classes) and an auxiliary sigmoid head, compiled with a loss and a
loss weight per output, trained on dict labels, list labels, and with `outputs=` naming one head.
"""

import glob

import callback_testing as ct
import keras
import numpy as np
import pytest
import tensorflow as tf

from imbal_keras.callbacks import BatchComposition, PerClassGradients
from imbal_keras.errors import UserInputError

BATCH, BATCHES = 6, 4
MAIN = np.array([0, 1, 2, 0, 0, 1, 2, 2, 0, 0, 0, 1, 1, 0, 2, 0, 0, 0, 2, 1, 0, 0, 1, 0])
AUX = np.array([1, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 1, 0])
WEIGHTS = {"main": 1.0, "aux": 0.3}


def _two_heads(*, as_list: bool = False) -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((ct.FEATURES,))
    hidden = keras.layers.Dense(4, activation="tanh")(inputs)
    main = keras.layers.Dense(3, activation="softmax", name="main")(hidden)
    aux = keras.layers.Dense(1, activation="sigmoid", name="aux")(hidden)
    net = keras.Model(inputs, [main, aux] if as_list else {"main": main, "aux": aux})
    losses = {"main": "sparse_categorical_crossentropy", "aux": "binary_crossentropy"}
    net.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=list(losses.values()) if as_list else losses,
        loss_weights=list(WEIGHTS.values()) if as_list else WEIGHTS,
    )
    return net


def _data(*, as_list: bool = False) -> tf.data.Dataset:
    labels = (MAIN, AUX.astype(np.float32)) if as_list else {"main": MAIN, "aux": AUX.astype(np.float32)}
    return tf.data.Dataset.from_tensor_slices((ct.features(len(MAIN)), labels)).batch(BATCH)


def _fit(callbacks, *, as_list: bool = False) -> keras.Model:
    return ct.fit(_two_heads(as_list=as_list), _data(as_list=as_list), callbacks, epochs=1)


def _class_losses(net, x, main, aux, weight=None) -> dict:
    """Each head's class parts of the weighted loss, written in the test: the head's per-example cross-entropy
    (times the example's sample weight) on the class's examples, summed, divided by the batch size, times the
    head's loss weight."""
    out = net(x, training=True)
    out = out if isinstance(out, dict) else dict(zip(["main", "aux"], out, strict=True))
    main_terms = -tf.math.log(tf.gather(out["main"], main, batch_dims=1))
    p = tf.clip_by_value(out["aux"][:, 0], 1e-7, 1 - 1e-7)
    aux_terms = -(aux * tf.math.log(p) + (1 - aux) * tf.math.log(1 - p))
    if weight is not None:
        main_terms, aux_terms = main_terms * weight, aux_terms * weight
    parts = {}
    for head, terms, ids, k in (("main", main_terms, main, 3), ("aux", aux_terms, aux, 2)):
        for c in range(k):
            parts[f"{head}_loss_class_{c}"] = WEIGHTS[head] * tf.reduce_sum(terms[ids == c]) / len(ids)
    return parts


def _expected_norms(net, trajectory, steps) -> list[dict]:
    copy = keras.models.clone_model(net)
    expected = []
    for b, step in enumerate(steps):
        copy.set_weights(trajectory.around(step)[0])
        part = slice(b * BATCH, (b + 1) * BATCH)
        x = ct.features(len(MAIN))[part]
        with tf.GradientTape(persistent=True) as tape:
            parts = _class_losses(copy, x, MAIN[part], AUX[part].astype(np.float32))
        row = {name: float(value) for name, value in parts.items()}
        for name, value in parts.items():
            gradients = tape.gradient(value, copy.trainable_weights)
            norm = np.sqrt(sum(0.0 if g is None else np.sum(g.numpy().astype(np.float64) ** 2) for g in gradients))
            row[name.replace("_loss_", "_gradients_norm_")] = norm
        row["loss_total"] = sum(float(v) for v in parts.values())
        expected.append(row)
    return expected


def _composition(ids: np.ndarray, k: int) -> np.ndarray:
    return np.stack([np.bincount(ids[b * BATCH : (b + 1) * BATCH], minlength=k) for b in range(BATCHES)])


@pytest.mark.parametrize("as_list", [False, True], ids=["dict", "list"])
def test_two_heads_match_numpy_and_a_gradient_tape_and_train_bit_identically(tmp_path, as_list):
    composition = BatchComposition(tmp_path / "c")
    gradients = PerClassGradients(tmp_path / "g", every_n_steps=1)
    trajectory = ct.Trajectory()
    observed = _fit([composition, gradients, trajectory], as_list=as_list)
    plain = _fit([], as_list=as_list)
    for a, b in zip(observed.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)

    frame = composition.dataframe()
    for head, ids, k in (("main", MAIN, 3), ("aux", AUX, 2)):
        columns = [f"{head}_composition_count_class_{c}" for c in range(k)]
        np.testing.assert_array_equal(frame[columns], _composition(ids, k))
        np.testing.assert_array_equal(frame[f"{head}_composition_batch_size"], BATCH)
    assert not any(column.startswith("composition_") for column in frame.columns)

    rows = gradients.dataframe()
    assert len(rows) == BATCHES
    expected = _expected_norms(observed, trajectory, list(range(BATCHES)))
    for b, row in enumerate(expected):
        for column, value in row.items():
            np.testing.assert_allclose(rows.loc[b, column], value, rtol=1e-5, atol=1e-7, err_msg=column)
    heads = ["main"] * 3 + ["aux"] * 2
    counts = [rows[f"{h}_gradients_examples_class_{c}"] for h, c in zip(heads, [0, 1, 2, 0, 1], strict=True)]
    np.testing.assert_array_equal(np.stack(counts, 1), np.concatenate([_composition(MAIN, 3), _composition(AUX, 2)], 1))


def test_outputs_names_the_observed_head(tmp_path):
    composition = BatchComposition(tmp_path / "c", outputs=["main"])
    gradients = PerClassGradients(tmp_path / "g", every_n_steps=2, outputs=["main"], class_names=["a", "b", "c"])
    trajectory = ct.Trajectory()
    observed = _fit([composition, gradients, trajectory])
    frame = composition.dataframe()
    assert [c for c in frame.columns if c.startswith("aux")] == []
    np.testing.assert_array_equal(frame[[f"main_composition_count_class_{c}" for c in range(3)]], _composition(MAIN, 3))
    rows = gradients.dataframe()
    assert list(rows["step"]) == [0, 2]
    expected = _expected_norms(observed, trajectory, [0, 1, 2, 3])
    for i, b in enumerate([0, 2]):
        for c, name in enumerate("abc"):
            np.testing.assert_allclose(
                rows.loc[i, f"main_gradients_norm_class_{name}"], expected[b][f"main_gradients_norm_class_{c}"], 1e-5
            )
            np.testing.assert_allclose(
                rows.loc[i, f"main_loss_class_{name}"], expected[b][f"main_loss_class_{c}"], 1e-5
            )
        # The whole step's loss holds both heads.
        np.testing.assert_allclose(rows.loc[i, "loss_total"], expected[b]["loss_total"], rtol=1e-5)


def test_tags_name_the_output_and_describe_it(tmp_path):
    _fit([PerClassGradients(tmp_path, every_n_steps=1)])
    descriptions = {}
    for path in glob.glob(str(tmp_path / "train" / "*tfevents*")):
        for record in tf.compat.v1.train.summary_iterator(path):
            for value in record.summary.value:
                descriptions.setdefault(value.tag, value.metadata.summary_description)
    assert {"main/gradients/norm/class_2", "aux/loss/class_1", "loss/total"} <= set(descriptions)
    assert descriptions["main/gradients/norm/class_2"].startswith("Output main: ")
    scalars = [tag for tag in descriptions if tag != "custom_scalars__config__"]
    assert all(descriptions[tag] for tag in scalars), [tag for tag in scalars if not descriptions[tag]]


def test_an_unknown_output_is_refused_before_fit(tmp_path):
    with pytest.raises(UserInputError, match="outputs must name outputs of the model"):
        _fit([BatchComposition(tmp_path, outputs=["nope"])])


def test_one_sample_weight_array_weighs_both_heads(tmp_path):
    weight = np.random.default_rng(7).uniform(0.5, 2.0, len(MAIN)).astype(np.float32)
    labels = {"main": MAIN, "aux": AUX.astype(np.float32)}
    data = tf.data.Dataset.from_tensor_slices((ct.features(len(MAIN)), labels, weight)).batch(BATCH)
    composition = BatchComposition(tmp_path / "c")
    gradients = PerClassGradients(tmp_path / "g", every_n_steps=1)
    trajectory = ct.Trajectory()
    observed = ct.fit(_two_heads(), data, [composition, gradients, trajectory])
    plain = ct.fit(_two_heads(), data, [])
    for a, b in zip(observed.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)

    frame = composition.dataframe()
    for b in range(BATCHES):
        part = slice(b * BATCH, (b + 1) * BATCH)
        for c in range(3):
            expected = weight[part][MAIN[part] == c].sum()
            np.testing.assert_allclose(frame[f"main_composition_weight_class_{c}"][b], expected, rtol=1e-6)

    def parts(net, batch):
        losses = _class_losses(net, batch.x, batch.y["main"], batch.y["aux"], batch.sample_weight)
        return {head: [losses[f"{head}loss_class_{c}"] for c in range(k)] for head, k in (("main_", 3), ("aux_", 2))}

    x = ct.features(len(MAIN))
    batches = [
        ct.Batch(
            x[b : b + BATCH],
            {"main": MAIN[b : b + BATCH], "aux": AUX[b : b + BATCH].astype(np.float32)},
            weight[b : b + BATCH],
        )
        for b in range(0, len(MAIN), BATCH)
    ]
    ct.assert_rows_match(
        gradients.dataframe(), ct.expected_class_parts(observed, trajectory, list(enumerate(batches)), parts)
    )


def test_an_output_without_labels_is_refused_in_one_line_unless_outputs_leaves_it_out(tmp_path):
    def main_only():
        net = _two_heads()
        net.compile(optimizer=keras.optimizers.SGD(0.1), loss={"main": "sparse_categorical_crossentropy"})
        return net

    data = tf.data.Dataset.from_tensor_slices((ct.features(len(MAIN)), {"main": MAIN})).batch(BATCH)
    for callback in (BatchComposition(tmp_path / "c"), PerClassGradients(tmp_path / "g", every_n_steps=1)):
        with pytest.raises(UserInputError, match="output 'aux'") as error:
            ct.fit(main_only(), data, [callback])
        assert "\n" not in str(error.value)
    gradients = PerClassGradients(tmp_path / "g2", every_n_steps=1, outputs=["main"])
    ct.fit(main_only(), data, [gradients])
    assert len(gradients.dataframe()) == BATCHES


def test_two_heads_with_gradient_accumulation_log_each_batch(tmp_path):
    """A row per batch with the batch's own class losses and gradients; the update where it is applied."""

    def accumulating():
        net = _two_heads()
        optimizer = keras.optimizers.SGD(0.1, gradient_accumulation_steps=2)
        net.compile(optimizer=optimizer, loss=net.loss, loss_weights=WEIGHTS)
        return net

    gradients = PerClassGradients(tmp_path, every_n_steps=1)
    trajectory = ct.Trajectory()
    observed = ct.fit(accumulating(), _data(), [gradients, trajectory])
    plain = ct.fit(accumulating(), _data(), [])
    for a, b in zip(observed.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    rows = gradients.dataframe()
    assert rows["gradients_accumulation_update_applied"].tolist() == [0, 1, 0, 1]
    # The weights change at the second batch of each pair only, so both batches start from the update's weights.
    expected = _expected_norms(observed, trajectory, [0, 0, 1, 1])
    for b, row in enumerate(expected):
        for column, value in row.items():
            np.testing.assert_allclose(rows.loc[b, column], value, rtol=1e-5, atol=1e-7, err_msg=column)
    assert (rows["gradients_update_norm"][[0, 2]] == 0).all() and (rows["gradients_update_norm"][[1, 3]] > 0).all()
