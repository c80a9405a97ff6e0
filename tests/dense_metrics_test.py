"""Dense and multi-label metrics against scikit-learn: IoU, Dice, pixel AP and recall; macro/micro AP per label."""

import warnings

import numpy as np
import pytest
from sklearn import metrics as skm

from imbal_keras import metrics
from imbal_keras.errors import UserInputError

IGNORE = 255


def _segmentation(seed: int, k: int = 3):
    """Masks (6, 8, 8) with rare classes, a few ignored pixels, and noisy probabilities (6, 8, 8, K)."""
    rng = np.random.default_rng(seed)
    masks = rng.choice(k, size=(6, 8, 8), p=[0.85, 0.1, 0.05]).astype(np.int32)
    logits = rng.normal(size=(*masks.shape, k)) + 2.0 * np.eye(k)[masks]
    masks[0, :2, :3] = IGNORE
    p = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    return masks, np.round(p, 2)  # rounding makes ties, which AP must handle as scikit-learn does


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_segmentation_metrics_agree_with_scikit_learn(seed):
    masks, p = _segmentation(seed)
    found = metrics.segmentation_metrics(masks, p, ignore_label=IGNORE)
    valid = masks != IGNORE
    y, q = masks[valid], p[valid]
    predicted = q.argmax(axis=1)
    iou = skm.jaccard_score(y, predicted, labels=[0, 1, 2], average=None)
    dice = skm.f1_score(y, predicted, labels=[0, 1, 2], average=None)
    recall = skm.recall_score(y, predicted, labels=[0, 1, 2], average=None)
    ap = [skm.average_precision_score(y == c, q[:, c]) for c in range(3)]
    for c in range(3):
        assert found[f"iou_class_{c}"] == pytest.approx(iou[c])
        assert found[f"dice_class_{c}"] == pytest.approx(dice[c])
        assert found[f"recall_class_{c}"] == pytest.approx(recall[c])
        assert found[f"average_precision_class_{c}"] == pytest.approx(ap[c])
        assert found[f"pixel_share_class_{c}"] == pytest.approx(np.mean(y == c))
    assert found["mean_iou"] == pytest.approx(iou.mean())
    assert found["mean_dice"] == pytest.approx(dice.mean())
    assert found["mean_average_precision"] == pytest.approx(np.mean(ap))
    assert found["pixel_accuracy"] == pytest.approx(skm.accuracy_score(y, predicted))


def test_a_class_neither_present_nor_predicted_is_nan_and_left_out_of_the_means():
    masks = np.array([[[0, 0], [1, 1]]])
    p = np.array([[[[0.9, 0.1, 0.0], [0.8, 0.2, 0.0]], [[0.3, 0.7, 0.0], [0.6, 0.4, 0.0]]]])
    found = metrics.segmentation_metrics(masks, p)
    # Class 0: TP 2, FP 1 -> IoU 2/3; class 1: TP 1, FN 1 -> IoU 1/2; class 2: nothing.
    assert np.isnan(found["iou_class_2"]) and np.isnan(found["dice_class_2"])
    assert found["mean_iou"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert found["mean_dice"] == pytest.approx((0.8 + 2 / 3) / 2)


def test_sequences_with_a_trailing_class_axis_count_tokens():
    rng = np.random.default_rng(3)
    tags = rng.choice(2, size=(5, 12), p=[0.9, 0.1])
    p = rng.uniform(size=(5, 12, 2))
    found = metrics.segmentation_metrics(tags, p)
    predicted = p.argmax(axis=-1).ravel()
    assert found["iou_class_1"] == pytest.approx(skm.jaccard_score(tags.ravel(), predicted))


def test_mismatched_pixels_are_one_error_line():
    with pytest.raises(UserInputError, match=r"y_true has 4 pixels but probabilities has 2"):
        metrics.segmentation_metrics(np.zeros((1, 2, 2), int), np.zeros((1, 2, 2)))


@pytest.mark.parametrize("seed", [0, 1])
def test_multilabel_metrics_agree_with_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    rates = np.array([0.4, 0.2, 0.05, 0.02])
    y = (rng.uniform(size=(300, 4)) < rates).astype(int)
    scores = np.round(np.clip(0.2 + 0.4 * y + rng.normal(0, 0.2, size=y.shape), 0, 1), 2)
    found = metrics.multilabel_metrics(y, scores, threshold=0.5)
    assert found["macro_average_precision"] == pytest.approx(skm.average_precision_score(y, scores, average="macro"))
    assert found["micro_average_precision"] == pytest.approx(skm.average_precision_score(y, scores, average="micro"))
    recalls = skm.recall_score(y, (scores >= 0.5).astype(int), average=None)
    aps = skm.average_precision_score(y, scores, average=None)
    for j in range(4):
        assert found[f"average_precision_label_{j}"] == pytest.approx(aps[j])
        assert found[f"recall_label_{j}"] == pytest.approx(recalls[j])
        assert found[f"positive_share_label_{j}"] == pytest.approx(y[:, j].mean())
    assert found["macro_recall"] == pytest.approx(recalls.mean())


def test_a_label_without_positives_is_nan_where_scikit_learn_says_zero():
    y = np.array([[1, 0], [0, 0], [1, 0]])
    scores = np.array([[0.9, 0.2], [0.1, 0.7], [0.6, 0.1]])
    found = metrics.multilabel_metrics(y, scores)
    assert np.isnan(found["average_precision_label_1"]) and np.isnan(found["recall_label_1"])
    assert found["macro_average_precision"] == pytest.approx(1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert skm.average_precision_score(y, scores, average=None)[1] == 0.0


def test_multilabel_shapes_must_match():
    with pytest.raises(UserInputError, match=r"Received: y_true.shape=\(2, 3\), scores.shape=\(2, 2\)"):
        metrics.multilabel_metrics(np.zeros((2, 3)), np.zeros((2, 2)))


def test_class_dice_accumulates_the_confusion_over_batches():
    masks, p = _segmentation(4)
    dice = metrics.ClassDice(3, 1, ignore_label=IGNORE)
    for batch in (slice(0, 2), slice(2, 6)):
        dice.update_state(masks[batch], p[batch])
    valid = masks != IGNORE
    expected = skm.f1_score(masks[valid], p[valid].argmax(axis=1), labels=[1], average=None)[0]
    assert float(dice.result()) == pytest.approx(expected, rel=1e-5)


def test_pixel_average_precision_is_close_to_the_exact_figure():
    masks, p = _segmentation(5)
    metric = metrics.PixelAveragePrecision(2, ignore_label=IGNORE)
    metric.update_state(masks, p)
    valid = masks != IGNORE
    exact = skm.average_precision_score(masks[valid] == 2, p[valid][:, 2])
    assert float(metric.result()) == pytest.approx(exact, abs=0.005)


def test_pixel_average_precision_weights_pixels():
    masks, p = _segmentation(6)
    weights = np.where(masks == 1, 0.0, 1.0)  # pixels of class 1 left out by their weight
    metric = metrics.PixelAveragePrecision(2, ignore_label=IGNORE)
    metric.update_state(masks, p, sample_weight=weights)
    keep = (masks != IGNORE) & (masks != 1)
    exact = skm.average_precision_score(masks[keep] == 2, p[keep][:, 2])
    assert float(metric.result()) == pytest.approx(exact, abs=0.005)


@pytest.mark.parametrize(
    "metric",
    [metrics.ClassDice(3, 2, ignore_label=IGNORE), metrics.PixelAveragePrecision(1, num_thresholds=50)],
    ids=lambda m: type(m).__name__,
)
def test_keras_metrics_survive_a_serialisation_round_trip(metric):
    import keras

    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(metric))
    assert type(again) is type(metric) and again.get_config() == metric.get_config()


def test_the_numpy_metrics_import_no_tensorflow():
    import subprocess
    import sys

    code = (
        "import sys; from imbal_keras import metrics; metrics.segmentation_metrics; print('tensorflow' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"


def test_keras_metrics_run_inside_evaluate():
    import keras

    masks, p = _segmentation(7)
    masks = np.where(masks == IGNORE, 0, masks)
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Identity()])
    model.compile(loss="sparse_categorical_crossentropy", metrics=[metrics.ClassDice(3, 1)])
    result = model.evaluate(p.astype("float32"), masks, batch_size=2, return_dict=True, verbose=0)
    expected = skm.f1_score(masks.ravel(), p.reshape(-1, 3).argmax(axis=1), labels=[1], average=None)[0]
    assert result["dice_class_1"] == pytest.approx(expected, rel=1e-5)
