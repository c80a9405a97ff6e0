"""Faults and data as given: TFDS without local data, duplicate CSV headers, a user's CSV kept at its own ratio,
a full disk while writing a grid's tables, a file-size limit in a run, merging into a new folder, a comma in a
path, and the modes of the files a grid writes."""

import errno
import os
import resource
import socket
import stat
import subprocess
import sys
import time
from unittest import mock

import numpy as np
import pandas as pd
import pytest
from absl.testing import flagsaver

from imbal_keras import runs
from imbal_keras.cli import experiment_flags
from imbal_keras.config import DataConfig
from imbal_keras.data import sources
from imbal_keras.errors import UserInputError
from imbal_keras.grid import main as grid_main
from imbal_keras.grid import sweep

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = {"num_examples": 600, "steps": 20, "eval_every": 10, "hidden_units": (8,), "log_composition": False}


def test_tfds_without_local_data_fails_at_once_naming_data_dir(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    started = time.time()
    with pytest.raises(UserInputError, match=rf"^data_dir='{tmp_path}' holds no prepared copy of dataset=tfds:mnist "):
        sources.load(DataConfig(dataset="tfds:mnist", data_dir=str(tmp_path)))
    assert time.time() - started < 5


def test_duplicate_csv_headers_are_refused(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("amount,amount,label\n1,2,0\n3,4,1\n")
    with pytest.raises(UserInputError, match=r"^dataset=csv:.*t.csv: the header names 'amount' more than once"):
        sources.from_csv(str(path), label_column="label")


def _csv_at_1_to_24(path, n=1200):
    # 1,152 negatives and 48 positives (1:24).
    rng = np.random.default_rng(0)
    y = (np.arange(n) % 25 == 0).astype(int)
    pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "label": y}).to_csv(path, index=False)
    return y


def test_a_users_csv_keeps_its_own_ratio_unless_one_is_imposed(tmp_path):
    path = str(tmp_path / "t.csv")
    y = _csv_at_1_to_24(path)
    given = sources.load(DataConfig(dataset=f"csv:{path}"))
    assert sum(s.class_counts(2) for s in given.splits().values()).tolist() == np.bincount(y).tolist() == [1152, 48]
    assert given.dropped == (0, 0)
    imposed = sources.load(DataConfig(dataset=f"csv:{path}", imbalance_ratio=99))
    assert imposed.dropped == (0, 48 - 1152 // 99)  # 11 positives kept
    assert "the imposed class ratio dropped 0/37 rows" in imposed.describe()


def test_a_comma_in_a_path_is_one_value(tmp_path):
    path = tmp_path / "sales,2024.csv"
    _csv_at_1_to_24(path)
    other = tmp_path / "other.csv"
    _csv_at_1_to_24(other)
    with flagsaver.as_parsed(dataset=f"csv:{path}"):
        single, axes = experiment_flags.settings()
    assert single["dataset"] == f"csv:{path}" and axes == {}
    escaped = str(path).replace(",", "\\,")
    with flagsaver.as_parsed(dataset=f"csv:{other},csv:{escaped}"):
        _, axes = experiment_flags.settings()
    assert axes == {"dataset": (f"csv:{other}", f"csv:{path}")}


def _grid(tmp_path, name="g", shard=(0, 1)):
    from imbal_keras.grid import runner

    grid_dir = str(tmp_path / name)
    spec = sweep.make_spec(TINY, {"strategy": ("none", "upsample")})
    runner.run_grid(spec, grid_dir, executor="inline", shard_index=shard[0], shard_count=shard[1], log=lambda _: None)
    return grid_dir


@pytest.mark.slow
def test_a_full_disk_while_writing_the_tables_says_what_is_complete_and_how_to_finish(tmp_path):
    grid_dir = _grid(tmp_path)

    def full(path, text):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)

    with mock.patch.object(runs, "write_atomically", full), pytest.raises(UserInputError) as raised:
        grid_main.write_report(grid_dir, log=lambda _: None)
    assert str(raised.value) == (
        f"output_dir={grid_dir!r}: No space left on device while writing the grid's tables; its 2 finished runs are "
        f"complete. Free space, then finish the tables with: imbal-keras --merge --output_dir={grid_dir}"
    )
    assert not os.path.exists(os.path.join(grid_dir, "results.csv"))  # nothing half-written
    # The command it names finishes the tables, and what the grid writes follows the umask (not 0600 / 0700).
    previous = os.umask(0o022)
    try:
        paths = grid_main.run_and_report(None, grid_dir, merge_from=[], log=lambda _: None)
    finally:
        os.umask(previous)
    assert os.path.join(grid_dir, "results.csv") in paths
    for name in ("results.csv", "report.md", "grid.json"):
        assert stat.S_IMODE(os.stat(os.path.join(grid_dir, name)).st_mode) == 0o644, name


@pytest.mark.slow
def test_merge_into_a_new_folder(tmp_path):
    first, second = _grid(tmp_path, "s0", (0, 2)), _grid(tmp_path, "s1", (1, 2))
    new = str(tmp_path / "new")
    lines = []
    grid_main.run_and_report(None, new, merge_from=[first, second], log=lines.append)
    assert lines[0] == f"Copied 2 finished runs into {new}"
    assert sweep.load_spec(new) == sweep.load_spec(first)
    assert len(runs.finished_runs(sweep.runs_dir(new))) == 2
    assert len(pd.read_csv(os.path.join(new, "results.csv"))) == 2
    with pytest.raises(UserInputError, match=rf"^merge_from='{tmp_path}/nope' holds no readable grid.json"):
        grid_main.run_and_report(None, str(tmp_path / "other"), merge_from=[str(tmp_path / "nope")])
    assert not (tmp_path / "other").exists()


@pytest.mark.slow
def test_a_file_size_limit_in_a_run_is_one_error_line_and_leaves_nothing(tmp_path):
    out = tmp_path / "out"

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192))

    env = {**os.environ, "PYTHONPATH": REPO, "TF_NUM_INTEROP_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1"}
    command = [sys.executable, os.path.join(REPO, "run_experiment.py"), "--num_examples=600", "--steps=40",
               "--eval_every=20", f"--output_dir={out}"]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True, env=env, preexec_fn=limit, timeout=600)
    assert proc.returncode == 1, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("error: File too large while writing: the run in progress was not published"), line
    assert line.endswith("then rerun the same command to finish")
    assert not out.exists()
