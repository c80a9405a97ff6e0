"""Segmentation data from a prepared TFDS dataset with masks (`oxford_iiit_pet`, say), nothing downloaded.

`dense_from_tfds` finds the image and the mask among the dataset's features (or takes the ones named), reads every
split of the copy prepared in `data_dir`, and returns the `Data` of `dense_generated.dense_from_arrays`: images
(N, H, W, C) float32 in [0, 1] when stored as bytes, masks (N, H, W) int32 class ids, split stratified on the
rarest class each image contains.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from imbal_keras.data._loading import first_line, not_prepared, tfds_builder
from imbal_keras.data.dense_generated import dense_from_arrays
from imbal_keras.data.splits import Data
from imbal_keras.errors import UserInputError, check, is_integer

__all__ = ["dense_from_tfds", "masks_from_tfds"]


def dense_from_tfds(
    name: str,
    *,
    data_dir: str | None = None,
    image_key: str | None = None,
    mask_key: str | None = None,
    ignore_label: int | None = None,
    size: tuple[int, int] | None = None,
    **layout: Any,
) -> Data:
    """A TFDS dataset of images and masks as segmentation `Data`.

    The mask is `mask_key`, or the dataset's one mask-like feature: an `Image` with one channel, or an integer
    `Tensor` of shape (H, W) or (H, W, 1). The image is `image_key`, or the one other `Image` feature (else the
    one other `Tensor` of rank 2 or more). Every split of the prepared copy is read and the examples are split
    again (`Layout` fields), as `sources.from_tfds` does.

    Args:
      name: the TFDS name, with a config or version if needed (`oxford_iiit_pet:4.*.*`).
      data_dir: the folder holding the prepared copy; None: TFDS's default (`$TFDS_DATA_DIR` or
        ~/tensorflow_datasets).
      image_key: the image feature; None: found as above.
      mask_key: the mask feature; None: found as above.
      ignore_label: a mask value that is no class (a border label such as 255).
      size: (height, width) to resize images (bilinear) and masks (nearest neighbour) to; needed when the
        examples differ in size.
      **layout: `Layout` fields (`validation_fraction`, `test_fraction`, `seed`).

    Raises:
      UserInputError: an unknown dataset, a dataset not prepared in `data_dir` (nothing is downloaded), no or
        several candidate features for the image or the mask, a named feature the dataset does not have, or
        examples of different sizes without `size`.
    """
    where = f"dataset=tfds:{name}"
    builder = tfds_builder(name, data_dir)
    keys = _feature_keys(builder.info.features, image_key, mask_key, where)
    check(
        size is None
        or (isinstance(size, (tuple, list)) and len(size) == 2 and all(is_integer(s) and s >= 1 for s in size)),
        f"size must be (height, width), two integers >= 1. Received: size={size!r}",
        argument="size",
    )
    x, y = _read(name, list(builder.info.splits) or ["train"], data_dir, keys, size)
    x = x.astype(np.float32)
    if x.max(initial=0) > 1:
        x = x / 255.0
    return dense_from_arrays((x, y), kind="segmentation", ignore_label=ignore_label, name=name, where=where, **layout)


def masks_from_tfds(
    name: str,
    *,
    mask_key: str,
    image_key: str | None = None,
    data_dir: str | None = None,
    ignore_label: int | None = None,
    **layout: Any,
) -> Data | None:
    """`dataset=tfds:NAME --label_feature=MASK_KEY` on the command line: the segmentation `Data` of
    `dense_from_tfds` when `mask_key` names a mask-like feature (see `dense_from_tfds`), else None (a
    classification label: `sources.from_tfds` reads the dataset).

    Raises:
      UserInputError: as `dense_from_tfds`; examples of different sizes are refused with the way to resize them (a
        `python:` function calling `dense_from_tfds(size=...)`).
    """
    import tensorflow_datasets as tfds

    features = tfds_builder(name, data_dir).info.features
    if mask_key not in features or not _is_mask(features[mask_key], tfds):
        return None
    try:
        return dense_from_tfds(
            name, data_dir=data_dir, image_key=image_key, mask_key=mask_key, ignore_label=ignore_label, **layout
        )
    except UserInputError as e:
        if e.argument != "size":
            raise
        raise UserInputError(
            f"dataset=tfds:{name}: the examples differ in size and the command line does not resize them; give "
            f"--dataset=python:package.module:function whose function returns "
            f"imbal_keras.data.dense_from_tfds({name!r}, size=(height, width), ...)",
            argument="dataset",
        ) from None


def _feature_keys(features, image_key: str | None, mask_key: str | None, where: str) -> tuple[str, str]:
    """(image, mask) feature names: the ones given (checked), else the one candidate of each."""
    import tensorflow_datasets as tfds

    names = list(features.keys())
    for argument, value in (("image_key", image_key), ("mask_key", mask_key)):
        check(
            value is None or value in names,
            f"{argument}={value!r} is not a feature of {where}; features: {names}",
            argument=argument,
        )
    if mask_key is None:
        masks = [n for n in names if n != image_key and _is_mask(features[n], tfds)]
        mask_key = _one(masks, "mask_key", "mask (an Image with one channel or an integer Tensor (H, W))", where, names)
    if image_key is None:
        others = [n for n in names if n != mask_key]
        images = [n for n in others if isinstance(features[n], tfds.features.Image)]
        images = images or [
            n for n in others if isinstance(features[n], tfds.features.Tensor) and len(features[n].shape) >= 2
        ]
        image_key = _one(images, "image_key", "image", where, names)
    return image_key, mask_key


def _one(found: list[str], argument: str, role: str, where: str, names: list[str]) -> str:
    """The one candidate feature of `found`; an error naming `argument` when there is none or several."""
    check(
        len(found) == 1,
        f"{where} has {len(found)} candidate {role} features {found}; name it with {argument}. Features: {names}",
        argument=argument,
    )
    return found[0]


def _is_mask(feature, tfds) -> bool:
    if isinstance(feature, tfds.features.Image):
        return feature.shape[-1] == 1
    shape = tuple(getattr(feature, "shape", ()))
    integer = isinstance(feature, tfds.features.Tensor) and np.issubdtype(feature.np_dtype, np.integer)
    return integer and (len(shape) == 2 or (len(shape) == 3 and shape[-1] == 1))


def _read(name: str, splits: list[str], data_dir: str | None, keys: tuple[str, str], size) -> tuple:
    """Every split's images and masks as two arrays (masks (N, H, W))."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    image_key, mask_key = keys
    where = f"dataset=tfds:{name}"
    try:
        datasets = [tfds.load(name, split=split, data_dir=data_dir, download=False) for split in splits]
    except AssertionError:  # TFDS's way of saying that the data is not in data_dir
        raise not_prepared(name, data_dir, where) from None

    def pair(example):
        image, mask = example[image_key], example[mask_key]
        mask = mask if mask.shape.rank == 3 else mask[..., None]
        if size is not None:
            image = tf.image.resize(image if image.shape.rank == 3 else image[..., None], size)
            mask = tf.image.resize(mask, size, method="nearest")
        return image, mask[..., 0]

    xs, ys = [], []
    try:
        for dataset in datasets:
            for x, y in tfds.as_numpy(dataset.map(pair).batch(256)):
                xs.append(x)
                ys.append(y)
        return np.concatenate(xs), np.concatenate(ys)
    except (tf.errors.InvalidArgumentError, ValueError) as e:
        raise UserInputError(
            f"{where}: the images or masks do not stack into one array (examples of different sizes?); resize them "
            f"with size=(height, width). Received: size={size!r} ({first_line(e)})",
            argument="size",
        ) from None
