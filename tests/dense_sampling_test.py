"""Presence resampling and patch sampling: the shares they produce against the target or an exact enumeration."""

import numpy as np
import pytest

from imbal_keras.data import dense, dense_shares
from imbal_keras.errors import UserInputError


def _data(n: int = 40, size: int = 12):
    """Masks where a quarter of the images hold class 1 (a 2x2 square) and every tenth class 2 (one pixel)."""
    masks = np.zeros((n, size, size), np.int32)
    for i in range(0, n, 4):
        masks[i, 2 + i % 7 : 4 + i % 7, 5:7] = 1
    for i in range(0, n, 10):
        masks[i, 9, 1 + i % 9] = 2
    return np.arange(n, dtype=np.float32)[:, None, None] + np.zeros((n, size, size), np.float32), masks


def _sigma_bound(count, n, p):
    return abs(count - n * p) <= 4 * np.sqrt(n * p * (1 - p)) + 1


@pytest.mark.parametrize("method", dense.METHODS)
def test_presence_groups_move_to_the_uniform_target(method):
    x, masks = _data()
    contains = dense_shares.presence(masks, 3)
    groups = dense_shares.rarest_present(contains)
    stream = dense.presence_resampled(x, masks, batch_size=12, seed=5, contains=contains, method=method)
    drawn = np.concatenate([groups[xb.numpy()[:, 0, 0].astype(int)] for xb, _ in stream.take(150)])
    shares = np.bincount(drawn, minlength=3) / len(drawn)
    if method == "stratified":
        np.testing.assert_array_equal(np.bincount(drawn, minlength=3), [len(drawn) // 3] * 3)
    else:  # batches within a pass are not independent draws: a loose bound of 0.04 around 1/3
        np.testing.assert_allclose(shares, [1 / 3] * 3, atol=0.04)


def test_presence_resampling_returns_each_example_with_its_own_mask():
    x, masks = _data()
    stream = dense.presence_resampled(x, masks, batch_size=8, seed=1, contains=dense_shares.presence(masks, 3))
    xb, yb = next(iter(stream))
    np.testing.assert_array_equal(yb.numpy(), masks[xb.numpy()[:, 0, 0].astype(int)])


def test_presence_resampling_refuses_an_unknown_method():
    x, masks = _data()
    with pytest.raises(UserInputError, match="method must be one of up, down, rejection, stratified"):
        dense.presence_resampled(x, masks, batch_size=4, seed=0, contains=dense_shares.presence(masks, 3), method="x")


def _uniform_crop_share(masks, h, w):
    """Exact share of uniform crops (uniform image, uniform position) that contain a foreground pixel."""
    hits = []
    for m in masks:
        for r in range(m.shape[0] - h + 1):
            for c in range(m.shape[1] - w + 1):
                hits.append((m[r : r + h, c : c + w] > 0).any())
    return float(np.mean(hits))


@pytest.mark.parametrize("share", [0.0, 0.33, 1.0])
def test_crops_contain_the_rare_classes_as_often_as_the_share_says(share):
    x, masks = _data()
    uniform = _uniform_crop_share(masks, 4, 4)
    expected = share + (1 - share) * uniform
    options = dense.Patches(size=(4, 4), foreground_share=share)
    stream = dense.patches(x[..., None], masks, batch_size=16, seed=2, options=options)
    crops = np.concatenate([yb.numpy() for _, yb in stream.take(60)])
    hits = int((crops.reshape(len(crops), -1) > 0).any(axis=1).sum())
    if share == 1.0:
        assert hits == len(crops)
    else:
        assert _sigma_bound(hits, len(crops), expected), (hits, len(crops), expected)


def test_crops_are_the_images_own_pixels_and_seeded():
    x, masks = _data()
    images = x + masks  # pixel value = example id + class, so a crop's x and y must agree
    options = dense.Patches(size=(5, 3))
    first = [
        tuple(t.numpy() for t in b)
        for b in dense.patches(images[..., None], masks, batch_size=8, seed=4, options=options).take(3)
    ]
    again = [
        tuple(t.numpy() for t in b)
        for b in dense.patches(images[..., None], masks, batch_size=8, seed=4, options=options).take(3)
    ]
    for (xb, yb), (xa, ya) in zip(first, again, strict=True):
        assert xb.shape == (8, 5, 3, 1) and yb.shape == (8, 5, 3)
        np.testing.assert_array_equal(xb[..., 0] - np.floor(xb[..., 0] - yb + 0.5), yb)
        np.testing.assert_array_equal(xb, xa)
        np.testing.assert_array_equal(yb, ya)


def test_sequence_windows_contain_the_rare_tag():
    rng = np.random.default_rng(0)
    tags = (rng.uniform(size=(30, 40)) < 0.02).astype(np.int32)
    tags[0, 5] = 1
    tokens = rng.integers(0, 9, size=(30, 40, 2)).astype(np.int32)
    options = dense.Patches(size=(6,), foreground_share=1.0)
    for xb, yb in dense.patches(tokens, tags, batch_size=8, seed=0, options=options).take(5):
        assert xb.shape == (8, 6, 2) and yb.shape == (8, 6)
        assert (yb.numpy() == 1).any(axis=1).all()


def test_a_crop_larger_than_the_image_is_one_error_line():
    x, masks = _data()
    with pytest.raises(UserInputError, match=r"size must fit in the targets' \(12, 12\). Received: size=\(13, 2\)"):
        dense.patches(x[..., None], masks, batch_size=2, seed=0, options=dense.Patches(size=(13, 2)))


def test_ignored_pixels_are_never_crop_centres_and_weight_maps_compose_with_crops():
    _, masks = _data()
    masks[:, 0, :] = 255  # an ignored top row in every image
    rows = np.broadcast_to(np.arange(12, dtype=np.float32)[None, :, None, None], (*masks.shape, 1))
    options = dense.Patches(size=(3, 3), foreground_share=1.0, ignore_label=255)
    crops = dense.patches(rows, masks, batch_size=8, seed=3, options=options)
    weighted = dense.with_weight_map(crops, [1.0, 5.0, 9.0], ignore_label=255)
    for xb, yb, wb in weighted.take(10):
        y, w, row = yb.numpy(), wb.numpy(), xb.numpy()[..., 0]
        assert ((y == 1) | (y == 2)).reshape(len(y), -1).any(axis=1).all()  # every crop holds a rare class
        np.testing.assert_array_equal(w == 0, row == 0)  # weight 0 exactly on the ignored row
        np.testing.assert_array_equal(y[row == 0], 0)
