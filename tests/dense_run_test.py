"""Dense runs through the entry point: a user's segmentation function as `--dataset=python:module:function` trains
under a weight map, presence upsampling and a Dice loss, and its run folder's per-class IoU and pixel composition
agree with scikit-learn and numpy."""

import json
import os

import dense_testing
import numpy as np
import pandas as pd
import pytest
from dense_testing import EVERY, STEPS, run_main
from sklearn.metrics import jaccard_score

from imbal_keras import metrics, runs, strategies
from imbal_keras.config import ExperimentConfig
from imbal_keras.data import sources
from imbal_keras.training import dense_run

USER_MODULE = '''
import numpy as np

def scans(seed=0):
    """40 16x16 images; every other one holds a bright 4x4 square of class 1, every fourth a 2x2 of class 2."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((40, 16, 16), np.int32)
    for i in range(0, 40, 2):
        r, c = rng.integers(0, 12, 2)
        masks[i, r : r + 4, c : c + 4] = 1
    for i in range(1, 40, 4):
        r, c = rng.integers(0, 14, 2)
        masks[i, r : r + 2, c : c + 2] = 2
    return (rng.normal(size=masks.shape) + 1.5 * masks).astype(np.float32), masks
'''


@pytest.fixture(scope="module")
def user_dataset(tmp_path_factory):
    for _ in dense_testing.user_module(tmp_path_factory, "dense_run_user_scans", USER_MODULE):
        yield "python:dense_run_user_scans:scans"


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["class_weight", "upsample", "dice"])
def test_user_segmentation_function_trains_and_its_folder_holds_per_class_iou_and_composition(
    strategy, user_dataset, tmp_path, capsys
):
    code, err = run_main([f"--dataset={user_dataset}", f"--strategy={strategy}", f"--output_dir={tmp_path}"], capsys)
    assert code in (None, 0), err
    (name,) = os.listdir(tmp_path)
    record = runs.read(str(tmp_path / name))
    assert record.summary["kind"] == "segmentation" and list(record.curve["step"]) == [3, 6]
    # Per-class IoU of the final evaluation against scikit-learn on the saved test predictions.
    saved = np.load(tmp_path / name / runs.PREDICTIONS_FILE)
    data = sources.load(record.config.data, seed=record.config.seed_for("data"))
    np.testing.assert_array_equal(saved["y_true"], data.test.y)
    expected = jaccard_score(saved["y_true"].ravel(), saved["y_pred"].ravel(), average=None, labels=[0, 1, 2])
    final = record.curve.iloc[-1]
    for c in range(3):
        present = (saved["y_true"] == c).any() or (saved["y_pred"] == c).any()
        assert (
            final[f"test_iou_class_{c}"] == pytest.approx(expected[c])
            if present
            else np.isnan(final[f"test_iou_class_{c}"])
        )
    shares = np.bincount(data.test.y.ravel(), minlength=3) / data.test.y.size
    assert [final[f"test_pixel_share_class_{c}"] for c in range(3)] == pytest.approx(shares)
    row = runs.results_row(record)
    assert row["test_mean_iou"] == pytest.approx(final["test_mean_iou"])
    # Pixel composition of every batch against numpy counts of the same stream.
    composition = record.steps_table(runs.COMPOSITION_FILE)
    ctx = dense_run.context(record.config, data)
    stream = strategies.build_dense_pipeline(strategy, data.train.x, data.train.y, ctx)
    batches = [b[1].numpy() for b in stream.take(STEPS)]
    counted = np.array([np.bincount(y.ravel(), minlength=3) for y in batches])
    np.testing.assert_array_equal(composition[[f"composition_count_class_{c}" for c in range(3)]].to_numpy(), counted)
    holding = np.array([[(y == c).any(axis=(1, 2)).sum() for c in range(3)] for y in batches])
    np.testing.assert_array_equal(
        composition[[f"composition_examples_class_{c}" for c in range(3)]].to_numpy(), holding
    )


def test_class_weight_map_is_inverse_pixel_frequency_with_mean_one():
    rng = np.random.default_rng(0)
    masks = rng.choice(3, size=(12, 6, 6), p=[0.8, 0.15, 0.05]).astype(np.int32)
    masks[0, 0, 0] = 2
    counts = np.bincount(masks.ravel(), minlength=3)
    ctx = strategies.DenseContext("segmentation", counts, np.ones((12, 3), bool), batch_size=4, seed=0,
                                  params={"weight_method": "inverse"})  # fmt: skip
    stream = strategies.build_dense_pipeline("class_weight", masks[..., None].astype(np.float32), masks, ctx)
    _, y, w = (t.numpy() for t in next(iter(stream)))
    expected = counts.sum() / (3 * counts)  # w_c = N / (K n_c): every class carries the same weighted mass
    np.testing.assert_allclose(w, expected[y], rtol=1e-6)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dataset=synthetic", "--strategy=patches"],
         r"^error: --strategy 'patches' does not apply to tabular data .*Received: strategy='patches'$"),
        (["--dataset=synthetic_segmentation", "--strategy=focal"],
         r"^error: --strategy 'focal' does not apply to segmentation data .*Received: strategy='focal'$"),
        (["--dataset=synthetic_multilabel", "--strategy=dice"],
         r"^error: --strategy 'dice' does not apply to multilabel data .*Received: strategy='dice'$"),
        (["--dataset=synthetic_segmentation", "--model=mlp"],
         r"^error: --model for segmentation data must be auto .*Received: model='mlp'$"),
        (["--dataset=synthetic_multilabel", "--strategy=class_weight", "--weight_method=effective_number"],
         r"^error: --weight_method for multi-label targets must be inverse or inverse_sqrt.*"),
        (["--dataset=synthetic_segmentation", "--imbalance_ratio=10"],
         r"^error: dataset=synthetic_segmentation: dense and multi-label data keep their own class ratio.*"),
        (["--dataset=synthetic_tokens", "--diagnose_every=5"],
         r"^error: --diagnose_every applies to single-label data, not sequence\. Received: diagnose_every=5$"),
    ],
)  # fmt: skip
def test_bad_combinations_are_one_line_errors_and_write_nothing(args, message, tmp_path, capsys):
    code, err = run_main([*args, f"--output_dir={tmp_path}"], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert pd.Series([err.strip()]).str.match(message).all(), err
    assert not os.path.exists(tmp_path) or not os.listdir(tmp_path)


@pytest.mark.slow
def test_multilabel_run_records_macro_and_per_label_precision(tmp_path):
    config = ExperimentConfig.from_flat(
        {"dataset": "synthetic_multilabel", "strategy": "repeat_factor", "steps": STEPS, "eval_every": EVERY,
         "batch_size": 16, "output_dir": str(tmp_path), "gradient_every_n_steps": 0}
    )  # fmt: skip
    from imbal_keras.training import experiment

    result = experiment.run(config, log=None)
    saved = np.load(os.path.join(result.run_dir, runs.PREDICTIONS_FILE))
    expected = metrics.multilabel_metrics(saved["y_true"], saved["scores"])
    final = result.curve.iloc[-1]
    assert final["test_macro_average_precision"] == pytest.approx(expected["macro_average_precision"], rel=1e-5)
    assert final["test_micro_average_precision"] == pytest.approx(expected["micro_average_precision"], rel=1e-5)
    with open(os.path.join(result.run_dir, runs.RESULT_FILE)) as f:
        summary = json.load(f)
    assert summary["class_counts"]["test"] == saved["y_true"].sum(axis=0).tolist()
    composition = pd.read_csv(os.path.join(result.run_dir, runs.COMPOSITION_FILE))
    data = sources.load(config.data, seed=config.seed_for("data"))
    stream = strategies.build_dense_pipeline(
        "repeat_factor", data.train.x, data.train.y, dense_run.context(config, data)
    )
    positives = np.array([b[1].numpy().sum(axis=0) for b in stream.take(STEPS)])
    labels = [f"composition_count_class_{j}" for j in range(data.num_classes)]
    np.testing.assert_array_equal(composition[labels].to_numpy(), positives)


@pytest.mark.slow
def test_a_grid_over_a_users_masks_runs_and_reports_on_mean_iou(user_dataset, tmp_path, capsys):
    """Strategies x seeds over dense data through the grid runner (one run at a time), tables and report included;
    the grid's results hold each run's mean IoU as its run folder recorded it."""
    args = [f"--dataset={user_dataset}", "--strategy=none,patches", "--patch_size=8", "--seed=0:2"]
    code, err = run_main([*args, "--metric=test_mean_iou", f"--output_dir={tmp_path}", "--workers=1"], capsys)
    assert code in (None, 0), err
    results = pd.read_csv(tmp_path / "results.csv")
    assert sorted(results["strategy"]) == ["none", "none", "patches", "patches"]
    for _, row in results.iterrows():
        record = runs.read(os.path.join(tmp_path, "runs", row["run_name"]))
        assert row["test_mean_iou"] == pytest.approx(record.curve.iloc[-1]["test_mean_iou"])
    report = (tmp_path / "report.md").read_text()
    # Two seeds: the question is asked on mean IoU and answered "too few seeds", never a side.
    assert "## The question: every strategy against none on test_mean_iou" in report
    assert "patches against none (2 paired seeds)" in report and "too few seeds" in report
