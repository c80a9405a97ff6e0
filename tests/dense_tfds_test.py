"""TFDS datasets with masks: tiny datasets built into a temporary data_dir (nothing downloaded), read back example
by example against the masks and images the builders wrote, and every refusal in one line."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from imbal_keras.data import dense_from_tfds
from imbal_keras.errors import UserInputError

SIDE = 8


def _mask(i: int) -> np.ndarray:
    """Example i's mask: background 0, a 2x2 square of class 1 in every third example, a 2x3 bar of class 2 in
    every fifth, and a border of 255 (no class) in every second."""
    mask = np.zeros((SIDE, SIDE), np.uint8)
    if i % 3 == 0:
        mask[2:4, 2:4] = 1
    if i % 5 == 0:
        mask[5:7, 3:6] = 2
    if i % 2 == 0:
        mask[0, :] = 255
    return mask


def _image(i: int, side: int = SIDE) -> np.ndarray:
    """An RGB image whose first pixel stores the example's number (so the test can find it after the re-split)."""
    image = np.full((side, side, 3), 7, np.uint8)
    image[1:, 1:, 1] = 200
    image[0, 0, 0] = i
    return image


class TinyScans(tfds.core.GeneratorBasedBuilder):
    """RGB images, one-channel Image masks and a ClassLabel, in a train and a test split."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        features = {
            "image": tfds.features.Image(shape=(SIDE, SIDE, 3)),
            "segmentation_mask": tfds.features.Image(shape=(SIDE, SIDE, 1)),
            "species": tfds.features.ClassLabel(num_classes=2),
        }
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(features))

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(range(0, 45)), "test": self._generate_examples(range(45, 60))}

    def _generate_examples(self, numbers):
        for i in numbers:
            yield i, {"image": _image(i), "segmentation_mask": _mask(i)[..., None], "species": i % 2}


class TinyTensorMasks(TinyScans):
    """A grey Image and an integer Tensor mask: two mask candidates, so the mask must be named."""

    def _info(self):
        features = {
            "scan": tfds.features.Image(shape=(SIDE, SIDE, 1)),
            "labels": tfds.features.Tensor(shape=(SIDE, SIDE), dtype=np.int32),
        }
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(features))

    def _generate_examples(self, numbers):
        for i in numbers:
            yield i, {"scan": _image(i)[..., :1], "labels": _mask(i).astype(np.int32)}


class TinySizes(TinyScans):
    """Images and masks of two sizes (8x8 and 12x12): they stack only when resized."""

    def _info(self):
        features = {
            "image": tfds.features.Image(shape=(None, None, 3)),
            "mask": tfds.features.Image(shape=(None, None, 1)),
        }
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(features))

    def _generate_examples(self, numbers):
        for i in numbers:
            side = SIDE if i % 2 else 12
            mask = np.pad(_mask(i), ((0, side - SIDE), (0, side - SIDE)))
            yield i, {"image": _image(i, side), "mask": mask[..., None]}


class TinyNoMask(TinyScans):
    """An image and a ClassLabel only."""

    def _info(self):
        features = {
            "image": tfds.features.Image(shape=(SIDE, SIDE, 3)),
            "kind": tfds.features.ClassLabel(num_classes=2),
        }
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(features))

    def _generate_examples(self, numbers):
        for i in numbers:
            yield i, {"image": _image(i), "kind": i % 2}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("tfds"))
    for builder in (TinyScans, TinyTensorMasks, TinySizes, TinyNoMask):
        builder(data_dir=folder).download_and_prepare()
    return folder


def _numbers(split) -> np.ndarray:
    return np.rint(split.x[:, 0, 0, 0] * 255).astype(int)


def test_images_and_masks_found_and_paired_with_their_examples(data_dir):
    data = dense_from_tfds("tiny_scans", data_dir=data_dir, ignore_label=255, seed=0)
    assert data.kind == "segmentation" and data.num_classes == 3 and data.name == "tiny_scans"
    numbers = np.concatenate([_numbers(s) for s in data.splits().values()])
    np.testing.assert_array_equal(np.sort(numbers), np.arange(60))  # every example of both TFDS splits, once
    for split in data.splits().values():
        assert split.x.shape[1:] == (SIDE, SIDE, 3) and split.x.dtype == np.float32
        for x, y, i in zip(split.x, split.y, _numbers(split), strict=True):
            np.testing.assert_array_equal(y, _mask(i))
            np.testing.assert_allclose(x * 255, _image(i), atol=1e-4)
    # Stratified on the rarest class an image contains: every split holds images with class 2.
    assert all((s.y == 2).any() for s in data.splits().values())


def test_named_mask_among_two_candidates(data_dir):
    with pytest.raises(
        UserInputError,
        match=r"^dataset=tfds:tiny_tensor_masks has 2 candidate mask .*\['scan', 'labels'\]; name it with mask_key",
    ):
        dense_from_tfds("tiny_tensor_masks", data_dir=data_dir)
    data = dense_from_tfds("tiny_tensor_masks", data_dir=data_dir, mask_key="labels", ignore_label=255)
    assert data.train.x.shape[1:] == (SIDE, SIDE, 1)
    for x, y in zip(data.train.x, data.train.y, strict=True):
        np.testing.assert_array_equal(y, _mask(int(round(x[0, 0, 0] * 255))))


def test_examples_of_different_sizes_need_a_size(data_dir):
    with pytest.raises(UserInputError, match=r"^dataset=tfds:tiny_sizes: the images or masks do not stack .*size=None"):
        dense_from_tfds("tiny_sizes", data_dir=data_dir)
    data = dense_from_tfds("tiny_sizes", data_dir=data_dir, size=(6, 6), ignore_label=255)
    assert data.train.x.shape[1:] == (6, 6, 3) and data.train.y.shape[1:] == (6, 6)
    # Nearest-neighbour resizing keeps class ids: no value between the mask's own values appears.
    values = set(np.unique(np.concatenate([s.y.ravel() for s in data.splits().values()])).tolist())
    assert values <= {0, 1, 2, 255} and {0, 1, 2} <= values


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("tiny_no_mask", {}, r"^dataset=tfds:tiny_no_mask has 0 candidate mask .*; name it with mask_key"),
        ("tiny_scans", {"mask_key": "mask"}, r"^mask_key='mask' is not a feature of dataset=tfds:tiny_scans; "),
        ("tiny_scans", {"image_key": "img"}, r"^image_key='img' is not a feature of dataset=tfds:tiny_scans; "),
        (
            "tiny_scans",
            {"size": (0, 4)},
            r"^size must be \(height, width\), two integers >= 1. Received: size=\(0, 4\)$",
        ),
        ("tiny_scans", {"size": 8}, r"^size must be \(height, width\), two integers >= 1. Received: size=8$"),
        ("no_such_scans_xyz", {}, r"^dataset=tfds:no_such_scans_xyz: no TFDS dataset of that name"),
    ],
)
def test_refusals_in_one_line(data_dir, name, kwargs, message):
    with pytest.raises(UserInputError, match=message) as error:
        dense_from_tfds(name, data_dir=data_dir, **kwargs)
    assert "\n" not in str(error.value)


def test_a_dataset_not_prepared_is_not_downloaded(tmp_path):
    with pytest.raises(UserInputError, match=r"^data_dir='.*' holds no prepared copy of dataset=tfds:tiny_scans"):
        dense_from_tfds("tiny_scans", data_dir=str(tmp_path))
