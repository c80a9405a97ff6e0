"""Metrics: hand-computed values and agreement with scikit-learn's reference implementations."""

import numpy as np
import pytest
from sklearn import metrics as skm

from imbal_keras import metrics


def test_average_precision_by_hand():
    # Ranked: pos(0.9), neg(0.8), pos(0.7), neg(0.1): AP = 1/2 * 1 + 1/2 * 2/3.
    y = np.array([1, 0, 1, 0])
    s = np.array([0.9, 0.8, 0.7, 0.1])
    assert metrics.average_precision(y, s) == pytest.approx(0.5 + 1 / 3)


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


def test_best_threshold_maximises_f1():
    rng = np.random.default_rng(0)
    y = (rng.random(500) < 0.1).astype(int)
    s = np.round(rng.normal(0.3 + 0.3 * y, 0.2), 3)
    t = metrics.best_f1_threshold(y, s)
    best = metrics.f1(y, s >= t)
    assert all(metrics.f1(y, s >= u) <= best + 1e-12 for u in np.unique(s))


def test_classification_metrics_columns_binary_and_multiclass():
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.6, 0.4, 0.9])
    out = metrics.classification_metrics(y, p, threshold=0.4)
    assert out["f1_at_0.5"] == pytest.approx(0.5)  # predicted [0, 1, 0, 1]: tp 1, fp 1, fn 1
    assert out["f1_at_best_threshold"] == pytest.approx(0.8)  # predicted [0, 1, 1, 1]
    assert out["balanced_accuracy"] == pytest.approx(0.5)
    y3 = np.array([0, 1, 2, 2])
    p3 = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8], [0.5, 0.1, 0.4]])
    out3 = metrics.classification_metrics(y3, p3)
    assert out3["balanced_accuracy"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert out3["log_loss"] == pytest.approx(skm.log_loss(y3, p3))
