"""Readable logs: integer counts, a description for every TensorBoard tag, a per-class layout, EMA steps marked."""

import glob
import re

import callback_testing as ct
import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

from imbal_keras.callbacks import BatchComposition, PerClassGradients
from imbal_keras.errors import UserInputError

LABELS = [0, 1, 0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0]


def _fit(tmp_path, optimizer=None):
    net = ct.model(optimizer=optimizer)
    callbacks = [BatchComposition(str(tmp_path)), PerClassGradients(str(tmp_path), every_n_steps=1)]
    ct.fit(net, ct.dataset(LABELS, 2), callbacks)
    return net, callbacks


def test_counts_and_flags_are_integer_columns(tmp_path):
    _, (composition, gradients) = _fit(tmp_path)
    frame = composition.dataframe()
    for column in ["composition_batch_size", "composition_count_class_1", "composition_no_minority"]:
        assert frame[column].dtype == np.int64, column
    assert np.issubdtype(frame["composition_share_class_1"].dtype, np.floating)
    np.testing.assert_array_equal(frame["composition_count_class_1"], np.reshape(LABELS, (-1, 2)).sum(axis=1))
    assert gradients.dataframe()["gradients_examples_class_0"].dtype == np.int64


def test_every_tag_has_a_description_and_each_class_a_layout(tmp_path):
    _fit(tmp_path)
    descriptions, layouts = {}, []
    for path in glob.glob(str(tmp_path / "train" / "*tfevents*")):
        for record in tf.compat.v1.train.summary_iterator(path):
            for value in record.summary.value:
                if value.tag == "custom_scalars__config__":
                    layouts.append(value)
                else:
                    descriptions.setdefault(value.tag, value.metadata.summary_description)
    tags = set(BatchComposition("x", num_classes=2)._tags()) | set(PerClassGradients("x", num_classes=2)._tags())
    assert tags <= set(descriptions)
    assert all(descriptions[tag] for tag in tags), [tag for tag in tags if not descriptions[tag]]
    assert "divided by the whole batch's denominator" in descriptions["loss/class_1"]
    assert layouts, "no custom-scalars layout written"
    accumulator = event_accumulator.EventAccumulator(str(tmp_path / "train"))
    accumulator.Reload()
    assert "gradients/norm/class_1" in accumulator.Tags()["tensors"]


def test_steps_where_ema_overwrites_the_weights_are_marked(tmp_path):
    optimizer = keras.optimizers.SGD(0.1, use_ema=True, ema_overwrite_frequency=3)
    _, (_, gradients) = _fit(tmp_path, optimizer)
    frame = gradients.dataframe()
    # Keras overwrites after update u when (u + 1) % 3 == 0: steps 2 and 5 of the 8.
    np.testing.assert_array_equal(frame["gradients_ema_overwrite"], (np.arange(8) + 1) % 3 == 0)
    assert frame["gradients_ema_overwrite"].dtype == np.int64


def test_class_names_name_the_tags_columns_and_summary(tmp_path):
    callbacks = [
        BatchComposition(str(tmp_path), class_names=["negative", "positive"]),
        PerClassGradients(str(tmp_path), every_n_steps=1, class_names=["negative", "positive"]),
    ]
    ct.fit(ct.model(), ct.dataset(LABELS, 2), callbacks)
    composition, gradients = (callback.dataframe() for callback in callbacks)
    np.testing.assert_array_equal(composition["composition_count_class_positive"], np.reshape(LABELS, (-1, 2)).sum(1))
    assert "gradients_cosine_class_negative_vs_rest" in gradients
    assert "gradients_mean_norm_class_positive" in callbacks[1].summary()
    assert callbacks[0].summary()["composition_mean_minority_per_batch"] == np.mean(np.reshape(LABELS, (-1, 2)).sum(1))
    config = callbacks[1].get_config()
    assert type(callbacks[1]).from_config(config).get_config() == config


@pytest.mark.parametrize("names", [["a"], ["a", "a"], ["a", "b/c"], "ab", ["a", "b", "c"]])
def test_bad_class_names_are_refused_in_one_line(names):
    with pytest.raises(
        UserInputError, match=rf"^BatchComposition: class_names must .* Received: class_names={re.escape(repr(names))}$"
    ):
        BatchComposition("logs", num_classes=2, class_names=names)


def test_class_names_for_another_number_of_classes_than_the_model_has_are_refused(tmp_path):
    callback = BatchComposition(str(tmp_path), class_names=["a", "b", "c"])
    message = r"^BatchComposition: class_names must name each of the model's 2 classes\. Received: .*'c'\]$"
    with pytest.raises(UserInputError, match=message):
        ct.fit(ct.model(), ct.dataset(LABELS, 2), [callback])
