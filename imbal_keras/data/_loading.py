"""What the loaders of single-label and dense data share: error text and the TFDS builder lookup."""

from __future__ import annotations

import os

from imbal_keras.errors import UserInputError, require_extra


def first_line(error: BaseException) -> str:
    """The first line of an exception's message, or its type's name when it has none."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def tfds_builder(name: str, data_dir: str | None):
    """The TFDS builder of `name` (its info; nothing read or downloaded).

    Raises:
      UserInputError: tensorflow-datasets not installed, or no TFDS dataset of that name.
    """
    require_extra("dataset=tfds:NAME", "tfds", ("tensorflow_datasets",))
    import tensorflow_datasets as tfds

    try:
        return tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise UserInputError(
            f"dataset=tfds:{name}: no TFDS dataset of that name (see tfds.list_builders())", argument="dataset"
        ) from None


def not_prepared(name: str, data_dir: str | None, where: str) -> UserInputError:
    """The error for a TFDS dataset with no prepared copy in `data_dir` (default `$TFDS_DATA_DIR` or
    ~/tensorflow_datasets): it is not downloaded, since without a network `tfds.load` retries for minutes."""
    folder = data_dir or os.environ.get("TFDS_DATA_DIR") or os.path.join("~", "tensorflow_datasets")
    dataset = name.split(":", 1)[0].split("/", 1)[0]
    return UserInputError(
        f"data_dir={folder!r} holds no prepared copy of {where} (nothing is downloaded): prepare it with "
        f"`tfds build {dataset} --data_dir={folder}`, or point --data_dir at the folder that holds it",
        argument="data_dir",
    )


__all__ = ["first_line", "not_prepared", "tfds_builder"]
