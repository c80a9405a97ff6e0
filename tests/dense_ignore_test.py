"""The ignore label and TFDS masks on the command line: a user's masks with a 255 border train under `class_weight`
with `--ignore_label=255`, and the weight maps, per-class IoU, composition and class count of the run folder agree
with numpy and scikit-learn over the pixels that are not ignored; `--dataset=tfds:NAME --label_feature=MASK` reads a
tiny prepared TFDS dataset as masks; bad values and misplaced ignore labels are one-line errors."""

import os

import dense_testing
import numpy as np
import pandas as pd
import pytest
from dense_testing import STEPS, run_main
from dense_tfds_test import TinyScans, TinySizes
from sklearn.metrics import jaccard_score

from imbal_keras import runs, strategies
from imbal_keras.config import DataConfig, ExperimentConfig
from imbal_keras.data import sources
from imbal_keras.errors import UserInputError
from imbal_keras.training import dense_run

IGNORE = 255
USER_MODULE = '''
import numpy as np

def bordered_scans(seed=0):
    """40 16x16 images: a 4x4 square of class 1 in every other one, a 2x2 of class 2 in every fourth, and a
    one-pixel border of 255 (no class) around every image."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((40, 16, 16), np.int32)
    for i in range(0, 40, 2):
        r, c = rng.integers(1, 11, 2)
        masks[i, r : r + 4, c : c + 4] = 1
    for i in range(1, 40, 4):
        r, c = rng.integers(1, 13, 2)
        masks[i, r : r + 2, c : c + 2] = 2
    images = rng.normal(size=masks.shape) + 1.5 * masks
    masks[:, 0, :] = masks[:, -1, :] = masks[:, :, 0] = masks[:, :, -1] = 255
    return images.astype(np.float32), masks


def labels_only(seed=0):
    return np.zeros((20, 3), np.float32), np.arange(20) % 2
'''


@pytest.fixture(scope="module")
def user_dataset(tmp_path_factory):
    for _ in dense_testing.user_module(tmp_path_factory, "dense_ignore_user_scans", USER_MODULE):
        yield "python:dense_ignore_user_scans"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("tfds"))
    for builder in (TinyScans, TinySizes):
        builder(data_dir=folder).download_and_prepare()
    return folder


def _one_run(folder) -> runs.RunRecord:
    (name,) = os.listdir(folder)
    return runs.read(str(folder / name))


@pytest.mark.slow
def test_users_masks_with_a_border_train_under_class_weight_and_leave_the_border_out(user_dataset, tmp_path, capsys):
    args = [f"--dataset={user_dataset}:bordered_scans", "--strategy=class_weight", f"--ignore_label={IGNORE}"]
    code, err = run_main([*args, f"--output_dir={tmp_path}"], capsys)
    assert code in (None, 0), err
    record = _one_run(tmp_path)
    data = sources.load(record.config.data, seed=record.config.seed_for("data"))
    valid = data.train.y != IGNORE
    # 3 classes, not 256; the pixel counts leave the border out.
    assert data.num_classes == 3 and data.ignore_label == IGNORE and len(record.summary["class_names"]) == 3
    counts = np.bincount(data.train.y[valid], minlength=3)
    assert record.summary["class_counts"]["train"] == counts.tolist() and record.summary["ignore_label"] == IGNORE
    # Weight maps: w_c = N / (K n_c) over the pixels that are no border, and 0 on the border (numpy).
    ctx = dense_run.context(record.config, data)
    stream = strategies.build_dense_pipeline("class_weight", data.train.x, data.train.y, ctx)
    batches = [tuple(t.numpy() for t in batch) for batch in stream.take(STEPS)]
    expected = counts.sum() / (3 * counts)
    for _, y, w in batches:
        ignored = y == IGNORE
        assert ignored.any() and (w[ignored] == 0).all()
        np.testing.assert_allclose(w[~ignored], expected[y[~ignored]], rtol=1e-6)
    # Per-class IoU of the final evaluation against scikit-learn over the saved test pixels that are no border.
    saved = np.load(tmp_path / os.listdir(tmp_path)[0] / runs.PREDICTIONS_FILE)
    kept = saved["y_true"] != IGNORE
    iou = jaccard_score(saved["y_true"][kept], saved["y_pred"][kept], average=None, labels=[0, 1, 2])
    final = record.curve.iloc[-1]
    for c in range(3):
        present = (saved["y_true"][kept] == c).any() or (saved["y_pred"][kept] == c).any()
        assert (
            final[f"test_iou_class_{c}"] == pytest.approx(iou[c]) if present else np.isnan(final[f"test_iou_class_{c}"])
        )
    shares = np.bincount(saved["y_true"][kept], minlength=3) / kept.sum()
    assert [final[f"test_pixel_share_class_{c}"] for c in range(3)] == pytest.approx(shares)
    # Composition of every batch: pixels per class and images holding each class, the border counted nowhere.
    composition = record.steps_table(runs.COMPOSITION_FILE)
    counted = np.array([np.bincount(y[y != IGNORE], minlength=3) for _, y, _ in batches])
    np.testing.assert_array_equal(composition[[f"composition_count_class_{c}" for c in range(3)]].to_numpy(), counted)
    holding = np.array([[(y == c).any(axis=(1, 2)).sum() for c in range(3)] for _, y, _ in batches])
    np.testing.assert_array_equal(
        composition[[f"composition_examples_class_{c}" for c in range(3)]].to_numpy(), holding
    )


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["none", "upsample", "patches", "repeat_factor", "dice", "tversky", "ce_dice",
                                      "dense_focal"])  # fmt: skip
def test_every_dense_strategy_trains_with_the_ignore_label_and_counts_no_border_pixel(
    strategy, user_dataset, tmp_path, capsys
):
    args = [f"--dataset={user_dataset}:bordered_scans", f"--strategy={strategy}", f"--ignore_label={IGNORE}"]
    code, err = run_main([*args, f"--output_dir={tmp_path}"], capsys)
    assert code in (None, 0), err
    record = _one_run(tmp_path)
    assert np.isfinite(record.curve["train_loss"]).all() and record.curve["test_mean_iou"].notna().all()
    # Composition of every batch against numpy counts of the same stream without its border pixels.
    data = sources.load(record.config.data, seed=record.config.seed_for("data"))
    stream = strategies.build_dense_pipeline(
        strategy, data.train.x, data.train.y, dense_run.context(record.config, data)
    )
    batches = [batch[1].numpy() for batch in stream.take(STEPS)]
    assert any((y == IGNORE).any() for y in batches)
    counted = np.array([np.bincount(y[y != IGNORE], minlength=3) for y in batches])
    composition = record.steps_table(runs.COMPOSITION_FILE)
    np.testing.assert_array_equal(composition[[f"composition_count_class_{c}" for c in range(3)]].to_numpy(), counted)


@pytest.mark.slow
def test_tfds_masks_named_by_label_feature_train_with_the_ignore_label(data_dir, tmp_path, capsys):
    args = ["--dataset=tfds:tiny_scans", "--label_feature=segmentation_mask", "--input_feature=image",
            f"--data_dir={data_dir}", f"--ignore_label={IGNORE}", "--strategy=upsample"]  # fmt: skip
    code, err = run_main([*args, f"--output_dir={tmp_path}"], capsys)
    assert code in (None, 0), err
    record = _one_run(tmp_path)
    assert record.summary["kind"] == "segmentation"
    assert record.summary["class_names"] == ["class_0", "class_1", "class_2"]
    # The masks the builder wrote: 60 examples of 8x8, a row of 255 (no class) on every second one.
    data = sources.load(record.config.data, seed=record.config.seed_for("data"))
    masks = np.concatenate([s.y for s in data.splits().values()])
    assert masks.shape == (60, 8, 8) and (masks == IGNORE).sum() == 30 * 8
    total = sum(np.asarray(record.summary["class_counts"][s]) for s in ("train", "validation", "test"))
    np.testing.assert_array_equal(total, np.bincount(masks[masks != IGNORE], minlength=3))
    saved = np.load(tmp_path / os.listdir(tmp_path)[0] / runs.PREDICTIONS_FILE)
    kept = saved["y_true"] != IGNORE
    iou = jaccard_score(saved["y_true"][kept], saved["y_pred"][kept], average=None, labels=[0])
    assert record.curve.iloc[-1]["test_iou_class_0"] == pytest.approx(iou[0])


def test_a_classification_label_of_the_same_tfds_dataset_still_loads_as_classes(data_dir):
    config = DataConfig(dataset="tfds:tiny_scans", label_feature="species", input_feature="image",
                        data_dir=data_dir, positive_class=-1)  # fmt: skip
    data = sources.load(config)
    assert data.kind == "image" and data.num_classes == 2 and data.ignore_label is None


def test_masks_of_different_sizes_say_how_to_resize_them(data_dir):
    config = DataConfig(dataset="tfds:tiny_sizes", label_feature="mask", data_dir=data_dir)
    with pytest.raises(UserInputError) as info:
        sources.load(config)
    message = str(info.value)
    assert len(message.splitlines()) == 1
    assert message.startswith("dataset=tfds:tiny_sizes: the examples differ in size")
    assert info.value.argument == "dataset"
    assert "--dataset=python:package.module:function" in message and "dense_from_tfds('tiny_sizes', size=" in message


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dataset=synthetic_segmentation", "--ignore_label=-2"],
         r"^error: --ignore_label must be >= -1 \(-1: no ignore label\)\. Received: ignore_label=-2$"),
        (["--dataset=synthetic", "--ignore_label=255"],
         r"^error: --ignore_label applies to masks and label sequences, not to tabular data \(dataset=synthetic\); "
         r"leave it at -1\. Received: ignore_label=255$"),
        (["--dataset=python:dense_ignore_user_scans:labels_only", "--ignore_label=255"],
         r"^error: --ignore_label applies to masks and label sequences, not to single-label data .*ignore_label=255$"),
        (["--dataset=synthetic_multilabel", "--ignore_label=255"],
         r"^error: --ignore_label applies to masks and label sequences, not to multilabel data "
         r"\(dataset=synthetic_multilabel\); leave it at -1\. Received: ignore_label=255$"),
        (["--dataset=synthetic_segmentation", "--ignore_label=255"],
         r"^error: --ignore_label applies to a user's masks .*; synthetic_segmentation has no ignored pixels\..*$"),
        (["--dataset=python:dense_ignore_user_scans:bordered_scans", "--ignore_label=1"],
         r"^error: --ignore_label must lie above the class ids 0\.\.\d+, .*Received: ignore_label=1$"),
    ],
)  # fmt: skip
def test_bad_ignore_labels_are_one_line_errors_and_write_nothing(args, message, user_dataset, tmp_path, capsys):
    code, err = run_main([*args, f"--output_dir={tmp_path}"], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert pd.Series([err.strip()]).str.match(message).all(), err
    assert not os.path.exists(tmp_path) or not os.listdir(tmp_path)


def test_the_ignore_label_is_a_config_field_that_imports_no_tensorflow():
    config = ExperimentConfig.from_flat({"dataset": "npz:masks.npz", "ignore_label": 255})
    assert config.data.ignored == 255 and DataConfig().ignored is None
    assert config.flat()["ignore_label"] == 255
