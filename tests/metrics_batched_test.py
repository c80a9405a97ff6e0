"""Batched metrics: every replica's figures against scikit-learn and against the one-replica functions."""

import warnings

import numpy as np
import pytest
from sklearn import metrics as skm

from imbal_keras import metrics
from imbal_keras.errors import UserInputError


def _binary(seed, replicas=4, n=1500):
    rng = np.random.default_rng(seed)
    y = (rng.random((replicas, n)) < 0.05).astype(np.int64)
    # Rounded to two decimals: many ties, as a sigmoid's float32 outputs give on large splits.
    s = np.round(np.clip(rng.normal(0.3 + 0.25 * y, 0.15), 0.0, 1.0), 2).astype(np.float32)
    return y, s


def _assert_figures_equal(batched, single):
    assert batched.keys() == single.keys()
    for key, value in single.items():
        if np.isnan(value):
            assert np.isnan(batched[key]), key
        else:
            assert batched[key] == pytest.approx(value, rel=1e-12, abs=1e-15), key


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_binary_replicas_match_scikit_learn_and_the_one_replica_figures(seed):
    y, s = _binary(seed)
    thresholds = np.array([0.3, 0.4, 0.5, 0.6])
    figures, none = metrics.batched_classification_metrics(y, s[:, :, None], thresholds=thresholds)
    assert none is None
    chosen, best = metrics.batched_classification_metrics(y, s[:, :, None], best_threshold=True)
    for r in range(len(y)):
        got = figures[r]
        assert got["average_precision"] == pytest.approx(skm.average_precision_score(y[r], s[r]), abs=1e-12)
        assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y[r], s[r]), abs=1e-12)
        assert got["f1_at_0.5"] == pytest.approx(skm.f1_score(y[r], s[r] >= 0.5))
        assert got["f1_at_best_threshold"] == pytest.approx(skm.f1_score(y[r], s[r] >= thresholds[r]))
        assert got["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y[r], s[r] >= 0.5))
        assert got["macro_f1"] == pytest.approx(skm.f1_score(y[r], s[r] >= 0.5, average="macro"))
        # scikit-learn computes these two in the input's float32.
        assert got["log_loss"] == pytest.approx(skm.log_loss(y[r], s[r], labels=[0, 1]), rel=1e-6)
        assert got["brier"] == pytest.approx(skm.brier_score_loss(y[r], s[r]), rel=1e-6)
        precision, recall, cuts = skm.precision_recall_curve(y[r], s[r])
        f1s = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-300)
        assert skm.f1_score(y[r], s[r] >= best[r]) == pytest.approx(np.max(f1s))  # the best F1 of every cut
        assert best[r] == metrics.best_f1_threshold(y[r] == 1, s[r])
        assert chosen[r]["f1_at_best_threshold"] == pytest.approx(np.max(f1s))
        _assert_figures_equal(chosen[r], metrics.classification_metrics(y[r], s[r], threshold=best[r]))
        single = metrics.classification_metrics(y[r], s[r][:, None], threshold=thresholds[r])
        _assert_figures_equal(got, single)
        # ROC AUC counts pairs: equal bit for bit.
        assert got["roc_auc"] == single["roc_auc"]


def test_shared_labels_two_column_probabilities_and_degenerate_replicas():
    y, s = _binary(3, replicas=3, n=400)
    y = y[0]
    p = np.stack([1 - s, s], axis=2)
    p[1] = 0.5  # every score tied
    figures, _ = metrics.batched_classification_metrics(y, p)
    for r in range(3):
        _assert_figures_equal(figures[r], metrics.classification_metrics(y, p[r]))
    none = np.zeros_like(y)  # no positives: AP and ROC AUC undefined, NaN
    figures, best = metrics.batched_classification_metrics(none, s, best_threshold=True)
    assert all(np.isnan(f["average_precision"]) and np.isnan(f["roc_auc"]) for f in figures)
    assert np.array_equal(best, [metrics.best_f1_threshold(none, row) for row in s])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert skm.average_precision_score(none, s[0]) == 0.0  # the convention not followed


@pytest.mark.filterwarnings("ignore:The y_prob values do not sum to one")  # float32 softmax outputs
@pytest.mark.parametrize("k", [4, 10])
def test_multiclass_replicas_match_scikit_learn_and_the_one_replica_figures(k):
    rng = np.random.default_rng(k)
    replicas, n = 3, 2000
    prior = np.geomspace(1.0, 0.02, k)
    y = rng.choice(k, size=(replicas, n), p=prior / prior.sum())
    logits = rng.normal(size=(replicas, n, k)) + 1.5 * np.eye(k)[y]
    p = (np.exp(logits) / np.exp(logits).sum(axis=2, keepdims=True)).astype(np.float32)
    groups = [("head",) * 2 + ("medium",) * (k - 4) + ("tail",) * 2, None, ("tail",) * k]
    figures, best = metrics.batched_classification_metrics(y, p, groups=groups, best_threshold=True)
    assert best is None
    for r in range(replicas):
        got = figures[r]
        present = [c for c in range(k) if (y[r] == c).any()]
        onehot = np.eye(k)[y[r]]
        assert got["average_precision"] == pytest.approx(
            np.mean([skm.average_precision_score(onehot[:, c], p[r, :, c]) for c in present]), abs=1e-12
        )
        assert got["roc_auc"] == pytest.approx(
            np.mean([skm.roc_auc_score(onehot[:, c], p[r, :, c]) for c in present]), abs=1e-12
        )
        predicted = np.argmax(p[r], axis=1)
        assert got["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y[r], predicted))
        assert got["macro_f1"] == pytest.approx(
            skm.f1_score(y[r], predicted, labels=range(k), average="macro", zero_division=0)
        )
        assert got["log_loss"] == pytest.approx(skm.log_loss(y[r], p[r], labels=range(k)), rel=1e-6)
        _assert_figures_equal(got, metrics.classification_metrics(y[r], p[r], groups=groups[r]))


def test_groups_of_the_wrong_length_are_refused():
    y, s = _binary(0, replicas=2, n=50)
    with pytest.raises(UserInputError, match="groups"):
        metrics.batched_classification_metrics(y, s, groups=[("head",), None])
