"""Tests of `imbal_keras.runs`: the run folder's atomic publication, listing, cleaning and reading."""

import json
import os
import socket
import stat
import subprocess
import time

import pytest

from imbal_keras import runs
from imbal_keras.config import ExperimentConfig
from imbal_keras.errors import UserInputError


def _fake_run(runs_dir, name, *, finished=True):
    path = os.path.join(runs_dir, name)
    os.makedirs(path)
    if finished:
        with open(os.path.join(path, runs.RESULT_FILE), "w") as f:
            json.dump({}, f)
    return path


def dead_pid() -> int:
    """The pid of a process that has exited."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_finished_runs_and_partials(tmp_path):
    d = str(tmp_path)
    host, dead = socket.gethostname(), dead_pid()
    _fake_run(d, "a")
    _fake_run(d, "b", finished=False)
    _fake_run(d, f".partial-a.{dead}@{host}.x1")
    _fake_run(d, f".partial-c.{dead}@{host}.x2", finished=False)
    _fake_run(d, f".partial-d.{dead}@{host}.x3", finished=False)
    assert runs.finished_runs(d) == ["a"]
    # Only partials of the runs named are removed (another shard may be writing the others).
    assert runs.clean_partials(d, ["c", "a"]) == 2
    assert sorted(os.listdir(d)) == [f".partial-d.{dead}@{host}.x3", "a", "b"]


def test_clean_partials_never_removes_a_live_process_staging_folder(tmp_path):
    d = str(tmp_path)
    host = socket.gethostname()
    live = subprocess.Popen(["sleep", "30"])
    try:
        _fake_run(d, f".partial-a.{live.pid}@{host}.x1", finished=False)  # another live process on this host
        _fake_run(d, ".partial-a.1@elsewhere.x2", finished=False)  # another host, just written
        _fake_run(d, ".partial-a.1@elsewhere.x3", finished=False)  # another host, untouched for two hours
        old = time.time() - 7200
        os.utime(os.path.join(d, ".partial-a.1@elsewhere.x3"), (old, old))
        own = runs.stage(d, "a")  # this process's own
        assert runs.clean_partials(d, ["a"]) == 1
        assert sorted(os.listdir(d)) == sorted(
            [f".partial-a.{live.pid}@{host}.x1", ".partial-a.1@elsewhere.x2", os.path.basename(own)]
        )
    finally:
        live.kill()
        live.wait()
    assert runs.clean_partials(d, ["a"]) == 1  # its process is gone now


def test_publish_keeps_a_finished_run_and_discards_the_duplicate(tmp_path):
    d = str(tmp_path)
    first = runs.publish(runs.stage(d, "r"), d, "r")
    runs.write_json(os.path.join(first, runs.RESULT_FILE), {"copy": 1})
    staging = runs.stage(d, "r")
    runs.write_json(os.path.join(staging, runs.RESULT_FILE), {"copy": 2})
    second = runs.publish(staging, d, "r")
    assert second == first
    assert os.listdir(d) == ["r"]  # never a -2 folder
    assert json.loads((tmp_path / "r" / runs.RESULT_FILE).read_text()) == {"copy": 1}


def test_publish_refuses_a_folder_of_the_name_that_is_not_a_run(tmp_path):
    d = str(tmp_path)
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "notes.txt").write_text("mine")
    with pytest.raises(UserInputError, match=r"^output_dir='.*' already holds 'r', which is not a finished run"):
        runs.publish(runs.stage(d, "r"), d, "r")


def test_files_and_folders_follow_the_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        assert runs.umask() == 0o022
        staging = runs.stage(str(tmp_path / "out"), "r")
        runs.write_atomically(str(tmp_path / "results.csv"), "a\n")
        run_dir = runs.publish(staging, str(tmp_path / "out"), "r")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(os.stat(run_dir).st_mode) == 0o755
    assert stat.S_IMODE(os.stat(tmp_path / "results.csv").st_mode) == 0o644


def test_stage_names_the_argument_when_the_folder_cannot_be_written(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(UserInputError, match=r"^output_dir='.*file/x' is not writable"):
        runs.stage(str(blocker / "x"), "r")


def test_write_atomically_replaces_and_leaves_no_temporary(tmp_path):
    path = str(tmp_path / "t.csv")
    runs.write_atomically(path, "old")
    runs.write_atomically(path, "new")
    assert (tmp_path / "t.csv").read_text() == "new"
    assert os.listdir(tmp_path) == ["t.csv"]


def _record(tmp_path, config):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / runs.CONFIG_FILE).write_text(config.to_json())
    (run_dir / runs.METRICS_FILE).write_text("step,test_average_precision\n10,0.25\n20,0.5\n")
    runs.write_json(
        str(run_dir / runs.RESULT_FILE),
        {
            "final": {"step": 20, "elapsed_seconds": 1.0, "test_average_precision": 0.5, "test_roc_auc": float("nan")},
            "class_counts": {"train": [90, 10]},
            "class_weights": [0.5, 4.5],
            "training_distribution": [0.5, 0.5],
            "train_seconds": 2.0,
            "instrumentation": {"composition_minority_absent_share": 0.25},
        },
    )
    return runs.read(str(run_dir))


def test_read_and_results_row(tmp_path):
    config = ExperimentConfig.from_flat({"strategy": "class_weight", "seed": 3, "order_seed": 7})
    record = _record(tmp_path, config)
    assert record.config == config and list(record.curve["step"]) == [10, 20]
    row = runs.results_row(record)
    assert row["run_name"] == "run" and row["strategy_variant"] == "class_weight"
    assert (row["seed"], row["data_seed"], row["init_seed"], row["order_seed"]) == (3, 3, 3, 7)
    assert row["weight_reduction"] == "sum_over_batch_size" and "output_dir" not in row
    assert row["final_step"] == 20 and row["test_average_precision"] == 0.5
    assert row["test_roc_auc"] != row["test_roc_auc"]  # NaN written as null, read back as NaN
    assert row["mean_example_weight"] == pytest.approx((90 * 0.5 + 10 * 4.5) / 100)
    assert row["instrumentation_composition_minority_absent_share"] == 0.25


def test_read_refuses_unfinished_and_older_folders(tmp_path):
    with pytest.raises(UserInputError, match="is not a finished run"):
        runs.read(str(tmp_path))
    (tmp_path / runs.RESULT_FILE).write_text("{}")
    (tmp_path / runs.CONFIG_FILE).write_text(json.dumps({"strategy": "none", "seed": 0}))
    with pytest.raises(UserInputError, match="written by an older imbal_keras"):
        runs.read(str(tmp_path))
