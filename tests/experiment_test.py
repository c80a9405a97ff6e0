"""End to end: one tiny run writes a complete run folder; bad input writes nothing."""

import json
import os

import numpy as np
import pandas as pd
import pytest

from imbal_keras.config import ExperimentConfig
from imbal_keras.errors import UserInputError
from imbal_keras.training import experiment


def _config(**flat):
    return ExperimentConfig.from_flat(flat)


TINY = dict(num_examples=1200, num_features=4, imbalance_ratio=19, steps=30, eval_every=10, hidden_units=(8,))


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    config = _config(strategy="class_weight", output_dir=str(out), **TINY)
    return experiment.run(config, extra_files={"flags.txt": "--strategy=class_weight\n"}, log=None)


def test_run_folder_files_and_columns(finished):
    files = set(os.listdir(finished.run_dir))
    assert {"config.json", "metrics.csv", "result.json", "flags.txt"} <= files
    assert any(f.startswith("events.out.tfevents") for f in files)
    curve = pd.read_csv(os.path.join(finished.run_dir, "metrics.csv"))
    assert curve["step"].tolist() == [10, 20, 30]
    for split in ("validation", "test"):
        for metric in ("average_precision", "roc_auc", "balanced_accuracy", "f1_at_0.5", "f1_at_best_threshold"):
            assert curve[f"{split}_{metric}"].between(0, 1).all(), (split, metric)
        assert (curve[f"{split}_log_loss"] > 0).all() and curve[f"{split}_brier"].between(0, 1).all()


def test_result_json_holds_config_and_final_figures(finished):
    with open(os.path.join(finished.run_dir, "result.json")) as f:
        result = json.load(f)
    assert ExperimentConfig.from_dict(result["config"]) == finished.config
    assert result["final"]["step"] == 30
    train = result["class_counts"]["train"]
    assert train[0] == 19 * train[1]
    n = sum(train)
    np.testing.assert_allclose(result["class_weights"], [n / (2 * train[0]), n / (2 * train[1])])
    np.testing.assert_allclose(result["training_distribution"], [0.5, 0.5])


def test_tensorboard_has_per_step_loss_and_eval_metrics(finished):
    from tensorboard.backend.event_processing import event_accumulator

    acc = event_accumulator.EventAccumulator(finished.run_dir, size_guidance={"tensors": 0})
    acc.Reload()
    tags = acc.Tags()["tensors"]
    assert [e.step for e in acc.Tensors("train/loss")] == list(range(1, 31))
    assert "test/average_precision" in tags and "validation/roc_auc" in tags


def test_same_seed_same_result(tmp_path):
    a = experiment.run(_config(strategy="upsample", output_dir=str(tmp_path), **TINY), log=None)
    b = experiment.run(_config(strategy="upsample", output_dir=str(tmp_path), **TINY), log=None)
    assert b.run_dir == a.run_dir  # the finished run is kept; the same config made the same run
    pd.testing.assert_frame_equal(
        a.curve.drop(columns="elapsed_seconds"), b.curve.drop(columns="elapsed_seconds"), check_exact=True
    )


def test_data_options_change_how_the_pipeline_runs_not_the_result(tmp_path):
    from imbal_keras.grid import worker

    config = _config(strategy="rejection", output_dir=str(tmp_path), **TINY)
    a = experiment.run(config, log=None)
    b = experiment.run(config, log=None, data_options=worker.worker_data_options())
    pd.testing.assert_frame_equal(
        a.curve.drop(columns="elapsed_seconds"), b.curve.drop(columns="elapsed_seconds"), check_exact=True
    )


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(imbalance_ratio=0.5), r"^imbalance_ratio must be >= 1.*Received: imbalance_ratio=0.5"),
        (dict(imbalance_ratio=-3), r"Received: imbalance_ratio=-3"),
        (dict(batch_size=0), r"^batch_size must be >= 1. Received: batch_size=0"),
        (dict(batch_size=5000), r"^batch_size=5000 is larger than the training split \(720 examples\)"),
        (dict(steps=0), r"^steps must be >= 1. Received: steps=0"),
        (dict(target_distribution=(0.2, 0.3, 0.5)), r"one share per class \(2 classes\).*=0.2,0.3,0.5"),
        (dict(target_distribution=(-0.5, 1.5)), r"shares must be >= 0"),
        (dict(target_distribution=(0.5, 0.6)), r"must sum to 1 \(sums to 1.1\)"),
        (dict(dataset="csv:/nonexistent.csv"), r"^dataset=csv:/nonexistent.csv: no such file"),
        (dict(dataset="nope:x"), r"^dataset must be "),
        (dict(dataset="tfds:no_such_dataset_xyz"), r"no TFDS dataset of that name"),
        (dict(output_dir="/proc/no/such/dir"), r"^output_dir='/proc/no/such/dir' is not writable"),
    ],
)
def test_bad_input_is_one_clear_error_and_writes_nothing(tmp_path, changes, message):
    config = _config(output_dir=str(tmp_path / "out"), **TINY).replace(**changes)
    with pytest.raises(UserInputError, match=message) as error:
        experiment.run(config, log=None)
    assert "\n" not in str(error.value)
    out = tmp_path / "out"
    assert not out.exists() or os.listdir(out) == []


def test_three_classes_long_tail(tmp_path):
    config = _config(strategy="stratified", num_classes=3, output_dir=str(tmp_path), **TINY)
    result = experiment.run(config.replace(num_examples=1550, imbalance_ratio=25), log=None)
    assert result.summary["class_counts"]["train"][0] == 25 * result.summary["class_counts"]["train"][2]
    np.testing.assert_allclose(result.summary["training_distribution"], [6 / 16, 5 / 16, 5 / 16])
    assert "test_f1_at_best_threshold" not in result.curve  # a single threshold is a binary notion
    assert result.summary["class_groups"] == ["head", "medium", "tail"]
    assert {"test_head_accuracy", "test_medium_accuracy", "test_tail_accuracy", "test_recall_class_2"} <= set(
        result.curve
    )
    assert result.curve["test_roc_auc"].between(0, 1).all()


def test_tfds_images_get_a_cnn(tmp_path):
    import tensorflow_datasets as tfds

    config = _config(
        dataset="tfds:mnist",
        positive_class=3,
        imbalance_ratio=4,
        steps=4,
        eval_every=2,
        batch_size=8,
        output_dir=str(tmp_path),
    )
    with tfds.testing.mock_data(num_examples=150, policy=tfds.testing.MockPolicy.USE_CODE):
        result = experiment.run(config, log=None)
    assert result.curve["step"].tolist() == [2, 4]
    assert result.summary["dataset"] == "mnist 3-vs-rest"


def test_instrumentation_flows_into_results_and_does_not_change_training(tmp_path, finished):
    files = set(os.listdir(finished.run_dir))
    assert {"composition.csv", "gradients.csv"} <= files
    composition = pd.read_csv(os.path.join(finished.run_dir, "composition.csv"))
    assert len(composition) == 30  # every step
    assert len(pd.read_csv(os.path.join(finished.run_dir, "gradients.csv"))) == 3  # every 10th step
    assert "composition_frac_batches_without_minority" in finished.summary["instrumentation"]
    plain = experiment.run(
        finished.config.replace(output_dir=str(tmp_path), log_composition=False, gradient_every_n_steps=0), log=None
    )
    assert plain.summary["instrumentation"] == {}
    assert not {"composition.csv", "gradients.csv"} & set(os.listdir(plain.run_dir))
    columns = [c for c in plain.curve if c != "elapsed_seconds"]
    pd.testing.assert_frame_equal(plain.curve[columns], finished.curve[columns], check_exact=True)


def test_posthoc_adjustment_changes_evaluation_only(tmp_path):
    config = _config(strategy="none", output_dir=str(tmp_path), **TINY)
    plain = experiment.run(config, log=None)
    adjusted = experiment.run(config.replace(posthoc_adjustment_tau=1.0), log=None)
    pd.testing.assert_series_equal(plain.curve["train_loss"], adjusted.curve["train_loss"], check_exact=True)
    # p / pi^tau renormalised is monotone in p for two classes: rankings (AUPRC, ROC-AUC) stay, calibration moves.
    np.testing.assert_allclose(plain.curve["test_roc_auc"], adjusted.curve["test_roc_auc"], atol=1e-12)
    assert (plain.curve["test_log_loss"] - adjusted.curve["test_log_loss"]).abs().min() > 1e-3


def test_gradient_noise_diagnostics_are_recorded_without_changing_training(tmp_path, finished):
    config = finished.config.replace(output_dir=str(tmp_path), diagnose_every=10)
    diagnosed = experiment.run(config, log=None)
    table = pd.read_csv(os.path.join(diagnosed.run_dir, "diagnostics.csv"))
    assert sorted(set(table["step"])) == [0, 10, 20, 30] and set(table["strategy"]) == {"class_weight"}
    # The exact mode at 1:19 and batch 16 (natural batches): P(no positive) is the hypergeometric zero term.
    summary = diagnosed.summary["instrumentation"]
    assert 0.3 < summary["diagnostics_p_no_minority"] < 0.5
    assert summary["diagnostics_simple_noise_scale_final"] > 0
    columns = [c for c in diagnosed.curve if c != "elapsed_seconds"]
    pd.testing.assert_frame_equal(diagnosed.curve[columns], finished.curve[columns], check_exact=True)


def test_diagnostics_refuse_a_schedule_before_anything_is_written(tmp_path):
    config = _config(strategy="progressive_sampling", diagnose_every=10, output_dir=str(tmp_path / "out"), **TINY)
    with pytest.raises(UserInputError, match=r"^diagnose_every needs a strategy .*'progressive_sampling'"):
        experiment.run(config, log=None)
    assert not (tmp_path / "out").exists()
