"""Metrics: hand-computed values and agreement with scikit-learn's reference implementations."""

import warnings

import numpy as np
import pytest
from sklearn import metrics as skm

from imbal_keras import metrics
from imbal_keras.errors import UserInputError


def test_average_precision_by_hand():
    # Ranked: pos(0.9), neg(0.8), pos(0.7), neg(0.1): AP = 1/2 * 1 + 1/2 * 2/3.
    y = np.array([1, 0, 1, 0])
    s = np.array([0.9, 0.8, 0.7, 0.1])
    assert metrics.average_precision(y, s) == pytest.approx(0.5 + 1 / 3)


def test_average_precision_without_positives_is_nan_where_scikit_learn_says_zero():
    y, s = np.zeros(4, dtype=int), np.array([0.1, 0.2, 0.3, 0.4])
    assert np.isnan(metrics.average_precision(y, s))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert skm.average_precision_score(y, s) == 0.0  # the convention we deliberately do not follow


def test_roc_auc_by_hand_with_tie():
    # Positives 0.9, 0.5; negatives 0.8, 0.5, 0.1. Pairs won: 0.9 beats all three (3), 0.5 loses to 0.8 (0),
    # ties 0.5 (0.5) and beats 0.1 (1): 4.5 of 6.
    y = np.array([1, 0, 1, 0, 0])
    s = np.array([0.9, 0.8, 0.5, 0.5, 0.1])
    assert metrics.roc_auc(y, s) == pytest.approx(4.5 / 6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agree_with_scikit_learn_on_imbalanced_scores_with_ties(seed):
    rng = np.random.default_rng(seed)
    y = (rng.random(2000) < 0.02).astype(int)
    s = np.round(np.clip(rng.normal(0.2 + 0.3 * y, 0.15), 0, 1), 2)  # rounding creates many ties
    assert metrics.average_precision(y, s) == pytest.approx(skm.average_precision_score(y, s), abs=1e-12)
    assert metrics.roc_auc(y, s) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
    predicted = (s >= 0.5).astype(int)
    assert metrics.balanced_accuracy(y, predicted, 2) == pytest.approx(skm.balanced_accuracy_score(y, predicted))
    assert metrics.f1(y, predicted) == pytest.approx(skm.f1_score(y, predicted))
    p = np.clip(s, 0.01, 0.99)
    assert metrics.log_loss(y, p) == pytest.approx(skm.log_loss(y, p))
    assert metrics.brier(y, p) == pytest.approx(skm.brier_score_loss(y, p))


def test_log_loss_clips_at_the_precision_of_the_input_dtype_like_scikit_learn():
    # One certain right answer and one certain wrong one: the loss is -log(eps) / 2.
    y = np.array([0, 1])
    for dtype in (np.float64, np.float32):
        p = np.array([0.0, 0.0], dtype=dtype)
        expected = -np.log(np.finfo(dtype).eps) / 2
        assert metrics.log_loss(y, p) == pytest.approx(expected, rel=1e-6)
        assert metrics.log_loss(y, p) == pytest.approx(skm.log_loss(y, p), rel=1e-6)
    assert metrics.log_loss(y, np.array([0.0, 0.0])) == pytest.approx(18.0218, abs=1e-4)  # not 8.06 (1e-7 clip)


def test_best_threshold_maximises_f1():
    rng = np.random.default_rng(0)
    y = (rng.random(500) < 0.1).astype(int)
    s = np.round(rng.normal(0.3 + 0.3 * y, 0.2), 3)
    t = metrics.best_f1_threshold(y, s)
    best = metrics.f1(y, s >= t)
    assert all(metrics.f1(y, s >= u) <= best + 1e-12 for u in np.unique(s))


def test_binary_keys_by_hand():
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.6, 0.4, 0.9])
    out = metrics.classification_metrics(y, p, threshold=0.4)
    assert set(out) == {
        "average_precision", "roc_auc", "f1_at_0.5", "f1_at_best_threshold", "balanced_accuracy", "macro_f1",
        "recall_class_0", "recall_class_1", "log_loss", "brier",
    }  # fmt: skip
    assert out["f1_at_0.5"] == pytest.approx(0.5)  # predicted [0, 1, 0, 1]: tp 1, fp 1, fn 1
    assert out["f1_at_best_threshold"] == pytest.approx(0.8)  # predicted [0, 1, 1, 1]
    assert out["balanced_accuracy"] == pytest.approx(0.5)
    assert out["recall_class_0"] == pytest.approx(0.5) and out["recall_class_1"] == pytest.approx(0.5)
    assert out["macro_f1"] == pytest.approx(0.5)  # both classes: tp 1, fp 1, fn 1
    assert "f1_at_best_threshold" not in metrics.classification_metrics(y, p)


def test_multiclass_macro_f1_counts_every_class_the_issue_example():
    # A 4-class model on a split holding classes 0 and 1, each with F1 0.75 (tp 3, fp 1, fn 1). Averaging over
    # the classes present gave 0.75; over all four classes, as scikit-learn with labels=range(4), it is 0.375.
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    predicted = np.array([0, 0, 0, 1, 1, 1, 1, 0])
    p = np.eye(4)[predicted] * 0.7 + 0.075
    out = metrics.classification_metrics(y, p)
    assert out["macro_f1"] == pytest.approx(0.375)
    assert skm.f1_score(y, predicted, labels=range(4), average="macro", zero_division=0) == pytest.approx(0.375)


def _multiclass_case(seed, n=300, k=5):
    rng = np.random.default_rng(seed)
    y = rng.choice(k, size=n, p=[0.6, 0.2, 0.1, 0.07, 0.03])
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y]
    logits = np.round(logits, 1)  # ties in the one-vs-rest scores
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, p


@pytest.mark.parametrize("seed", [0, 1])
def test_multiclass_keys_agree_with_scikit_learn(seed):
    y, p = _multiclass_case(seed)
    k = p.shape[1]
    predicted = p.argmax(axis=1)
    out = metrics.classification_metrics(y, p, groups=["head", "medium", "medium", "tail", "tail"])
    onehot = np.eye(k)[y]
    assert out["average_precision"] == pytest.approx(skm.average_precision_score(onehot, p, average="macro"))
    assert out["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p, multi_class="ovr", average="macro"))
    assert out["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, predicted))
    assert out["macro_f1"] == pytest.approx(skm.f1_score(y, predicted, average="macro", labels=range(k)))
    recalls = skm.recall_score(y, predicted, labels=range(k), average=None)
    for c in range(k):
        assert out[f"recall_class_{c}"] == pytest.approx(recalls[c])
    assert out["log_loss"] == pytest.approx(skm.log_loss(y, p))
    assert out["brier"] == pytest.approx(skm.brier_score_loss(y, p, labels=range(k)))
    assert out["head_accuracy"] == pytest.approx(recalls[0])
    assert out["medium_accuracy"] == pytest.approx((recalls[1] + recalls[2]) / 2)
    assert out["tail_accuracy"] == pytest.approx((recalls[3] + recalls[4]) / 2)
    assert "f1_at_0.5" not in out


def test_multiclass_absent_class():
    # Class 2 has no examples: its recall is NaN and it is left out of balanced accuracy, AP and ROC-AUC (undefined
    # there) but counts 0 in macro-F1 when it is predicted.
    y = np.array([0, 0, 1, 1, 3, 3])
    p = np.array(
        [[0.7, 0.1, 0.1, 0.1], [0.1, 0.1, 0.7, 0.1], [0.1, 0.7, 0.1, 0.1],
         [0.1, 0.6, 0.2, 0.1], [0.1, 0.1, 0.1, 0.7], [0.2, 0.1, 0.1, 0.6]]
    )  # fmt: skip
    predicted = p.argmax(axis=1)
    out = metrics.classification_metrics(y, p, groups=["head", "head", "tail", "tail"])
    assert np.isnan(out["recall_class_2"])
    assert out["balanced_accuracy"] == pytest.approx((0.5 + 1 + 1) / 3)
    assert out["tail_accuracy"] == pytest.approx(1.0)  # class 2 has no examples; class 3 is all right
    assert out["head_accuracy"] == pytest.approx(0.75)
    assert out["macro_f1"] == pytest.approx(skm.f1_score(y, predicted, labels=range(4), average="macro"))
    present = [0, 1, 3]
    onehot = np.eye(4)[y][:, present]
    assert out["average_precision"] == pytest.approx(skm.average_precision_score(onehot, p[:, present]))
    assert out["roc_auc"] == pytest.approx(skm.roc_auc_score(onehot, p[:, present]))


def test_group_without_classes_is_nan_and_every_group_key_present():
    y, p = _multiclass_case(0)
    out = metrics.classification_metrics(y, p, groups=["head"] * 5)
    assert out["head_accuracy"] == pytest.approx(out["balanced_accuracy"])
    assert np.isnan(out["medium_accuracy"]) and np.isnan(out["tail_accuracy"])
    group_keys = {"head_accuracy", "medium_accuracy", "tail_accuracy"}
    assert group_keys <= set(out) and group_keys.isdisjoint(metrics.classification_metrics(y, p))


@pytest.mark.parametrize(
    "groups",
    [["head", "tail"], ["head", "medium", "tail", "tail", "rare"]],
    ids=["wrong_length", "unknown_group"],
)
def test_bad_groups_name_the_argument(groups):
    y, p = _multiclass_case(0)
    with pytest.raises(UserInputError, match=r"groups must give .* 5 classes\. Received: groups=\["):
        metrics.classification_metrics(y, p, groups=groups)


def test_binary_float32_model_output_column():
    # The experiment passes the (N, 1) float32 sigmoid output as is.
    rng = np.random.default_rng(3)
    y = (rng.random(400) < 0.1).astype(int)
    p = np.clip(rng.normal(0.2 + 0.5 * y, 0.2), 0, 1).astype(np.float32)[:, None]
    out = metrics.classification_metrics(y, p, groups=["head", "tail"])
    assert out["log_loss"] == pytest.approx(skm.log_loss(y, p[:, 0]), rel=1e-6)
    assert out["average_precision"] == pytest.approx(skm.average_precision_score(y, p[:, 0]))
    assert out["tail_accuracy"] == pytest.approx(skm.recall_score(y, p[:, 0] >= 0.5))
    assert out["macro_f1"] == pytest.approx(skm.f1_score(y, p[:, 0] >= 0.5, average="macro"))
