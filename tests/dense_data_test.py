"""Synthetic dense and multi-label data against the rates they are drawn at; loaders for arrays, .npz, functions."""

import sys
import textwrap

import numpy as np
import pytest

from imbal_keras import data
from imbal_keras.data import dense_shares
from imbal_keras.errors import UserInputError


def _all(d):
    return np.concatenate([d.train.y, d.validation.y, d.test.y])


def _binomial(count, n, p):
    return abs(count - n * p) <= 4 * np.sqrt(n * p * (1 - p)) + 1


def test_segmentation_rare_classes_cover_about_one_percent_of_pixels():
    d = data.segmentation(num_examples=400, seed=3)
    masks = _all(d)
    assert d.kind == "segmentation" and d.num_classes == 3 and d.train.x.shape[1:] == (32, 32, 1)
    assert masks.shape[1:] == (32, 32) and d.class_names == ("background", "object_1", "object_2")
    contains = dense_shares.presence(masks, 3)
    # A disc of radius 2 is 13 pixels; class 1 can be painted over by class 2, so its share is at most 13 / 1024
    # per image holding it, and its presence rate is 0.5 (binomial over 400 images).
    assert _binomial(contains[:, 1].sum(), 400, 0.5) and _binomial(contains[:, 2].sum(), 400, 0.25)
    share = np.bincount(masks.ravel(), minlength=3) / masks.size
    assert share[2] == pytest.approx(contains[:, 2].mean() * 13 / 1024)
    assert 0.003 < share[1] + share[2] < 0.012
    # Every split sees every class (split stratified on the rarest class each image contains).
    for split in d.splits().values():
        assert dense_shares.presence(split.y, 3).any(axis=0).all()


def test_segmentation_is_a_function_of_the_seed():
    a, b, c = (data.segmentation(num_examples=40, seed=s) for s in (1, 1, 2))
    np.testing.assert_array_equal(a.train.x, b.train.x)
    assert not np.array_equal(_all(a), _all(c))


def test_token_tags_follow_their_rates_and_a_marker_precedes_every_tag():
    d = data.token_sequences(num_examples=300, seed=0)
    tags = _all(d)
    tokens = np.concatenate([d.train.x, d.validation.x, d.test.x])
    assert d.kind == "sequence" and tokens.shape == tags.shape == (300, 32)
    counted = tags[:, 1:]  # the first token is never tagged
    for c, rate in ((1, 0.03), (2, 0.01)):
        assert _binomial((counted == c).sum(), counted.size, rate)
    marker = 4 * 3
    np.testing.assert_array_equal(tokens[:, :-1][tags[:, 1:] > 0], marker)


def test_multilabel_tags_have_long_tailed_label_rates():
    d = data.multilabel_tags(num_examples=3000, num_labels=5, imbalance_ratio=50, seed=1)
    y = _all(d)
    rates = 0.3 * 50.0 ** (-np.arange(5) / 4)
    for j in range(5):
        assert _binomial(y[:, j].sum(), len(y), rates[j]), (j, y[:, j].sum(), len(y) * rates[j])
    # Iterative stratification puts every label in every split in proportion.
    assert abs(d.test.y[:, -1].sum() - 0.2 * y[:, -1].sum()) <= 1.5


def test_arrays_with_a_trailing_mask_axis_and_grey_images_load_as_segmentation():
    rng = np.random.default_rng(0)
    masks = (rng.uniform(size=(60, 8, 8, 1)) < 0.05).astype(np.int64)
    d = data.dense_from_arrays((rng.normal(size=(60, 8, 8)), masks), seed=0)
    assert d.kind == "segmentation" and d.train.x.shape[1:] == (8, 8, 1) and d.train.y.shape[1:] == (8, 8)
    assert sum(len(s.y) for s in d.splits().values()) == 60 and d.num_classes == 2
    # Only 2 images hold no class-1 pixel: too few for three splits, so they join the largest group.
    assert (dense_shares.presence(masks[..., 0], 2)[:, 1] == 0).sum() == 2


def test_too_few_examples_to_split_is_one_error_line():
    with pytest.raises(UserInputError, match=r"^data: class .* has 2 examples, too few to split"):
        data.dense_from_arrays((np.zeros((2, 4, 4, 1)), np.zeros((2, 4, 4), int)))


def test_kind_is_inferred_from_the_shapes():
    rng = np.random.default_rng(1)
    tokens, tags = rng.integers(0, 9, size=(40, 6)), (rng.uniform(size=(40, 6)) < 0.2).astype(int)
    assert data.dense_from_arrays((tokens, tags)).kind == "sequence"
    features = rng.normal(size=(40, 3))
    assert data.dense_from_arrays((features, tags)).kind == "multilabel"


def test_npz_with_its_own_splits(tmp_path):
    rng = np.random.default_rng(2)
    masks = (rng.uniform(size=(30, 4, 4)) < 0.3).astype(np.int32)
    path = tmp_path / "masks.npz"
    x = rng.normal(size=(30, 4, 4, 2))
    np.savez(path, x_train=x[:20], y_train=masks[:20], x_test=x[20:], y_test=masks[20:])
    d = data.dense_from_npz(str(path), seed=0)
    np.testing.assert_array_equal(d.test.y, masks[20:])
    assert len(d.train.y) + len(d.validation.y) == 20 and d.name == "masks.npz"


_FUNCTIONS = """
import numpy as np

def scans(seed=0):
    rng = np.random.default_rng(seed)
    masks = (rng.uniform(size=(50, 8, 8)) < 0.02).astype(np.int32)
    return rng.normal(size=(50, 8, 8, 1)) + masks[..., None], masks

def broken():
    raise RuntimeError("scanner offline")
"""


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "user_scans.py").write_text(textwrap.dedent(_FUNCTIONS))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "user_scans", raising=False)
    return "user_scans"


def test_a_python_function_returning_images_and_masks_gets_the_seed(user_module):
    a, b = (
        data.dense_from_python(f"{user_module}:scans", seed=4),
        data.dense_from_python(f"{user_module}:scans", seed=4),
    )
    np.testing.assert_array_equal(a.train.x, b.train.x)
    assert a.kind == "segmentation" and a.name == "scans"


def test_a_function_that_raises_is_one_error_line(user_module):
    with pytest.raises(UserInputError, match=r"^dataset=python:user_scans:broken: the function raised RuntimeError"):
        data.dense_from_python(f"{user_module}:broken")


def test_a_kind_that_does_not_fit_the_targets_is_one_error_line():
    with pytest.raises(UserInputError, match=r"targets of shape \(5, 4\) with inputs \(5, 4\) are not segmentation"):
        data.dense_from_arrays((np.zeros((5, 4)), np.zeros((5, 4), int)), kind="segmentation")
