"""Ctrl-C (SIGINT to the whole process group, as a terminal sends it) at start-up and mid-training: one line,
exit code 130, no worker tracebacks, nothing half-written, and the same command resumes."""

import contextlib
import os
import signal
import subprocess
import sys

import pytest

from imbal_keras import runs
from imbal_keras.grid import sweep

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Runs one by one (--side_by_side=1), so the interrupt lands while runs are still training.
GRID = ["--num_examples=600", "--steps=40", "--eval_every=20", "--hidden_units=8", "--strategy=none,upsample",
        "--seed=0:4", "--workers=2", "--side_by_side=1"]  # fmt: skip


def _start(grid_dir):
    env = {**os.environ, "PYTHONPATH": REPO, "TF_NUM_INTEROP_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1"}
    command = [sys.executable, "-u", os.path.join(REPO, "run_experiment.py"), *GRID, f"--output_dir={grid_dir}"]
    # A session of its own: the signal goes to the process group, the command and its workers, as Ctrl-C does.
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
    )


def _interrupt(process):
    os.killpg(process.pid, signal.SIGINT)
    out, err = process.communicate(timeout=300)
    return out, err


@pytest.mark.slow
def test_ctrl_c_at_start_up_is_one_line_and_writes_nothing(tmp_path):
    grid_dir = tmp_path / "g"
    process = _start(grid_dir)
    with contextlib.suppress(subprocess.TimeoutExpired):  # still importing TensorFlow after a second
        process.wait(timeout=1.0)
    _, err = _interrupt(process)
    assert process.returncode == 130, err
    assert err.strip().splitlines() == ["interrupted: at start-up, before anything ran; rerun the same command"]
    assert not grid_dir.exists()


@pytest.mark.slow
def test_ctrl_c_mid_training_says_how_many_finished_and_the_rerun_resumes(tmp_path):
    grid_dir = str(tmp_path / "g")
    process = _start(grid_dir)
    seen = []
    for line in process.stdout:  # interrupt once two runs finished, while the workers train the next ones
        seen.append(line)
        if line.startswith("[2/8]"):
            break
    _, err = _interrupt(process)
    assert process.returncode == 130, err
    (line,) = err.strip().splitlines()  # no traceback of the command or of its workers
    finished = runs.finished_runs(sweep.runs_dir(grid_dir))
    assert 2 <= len(finished) < 8
    assert line == f"interrupted: {len(finished)} of 8 runs finished; rerun the same command to resume"
    # Nothing half-written: only finished runs, no staging folders of the stopped workers, no lock, no tables.
    assert sorted(os.listdir(sweep.runs_dir(grid_dir))) == finished
    assert not [f for f in os.listdir(grid_dir) if f.startswith(".") or f.endswith(".csv")]

    rerun = _start(grid_dir)
    out, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err
    assert f"8 runs, {len(finished)} already finished, {8 - len(finished)} to run" in out
    assert len(runs.finished_runs(sweep.runs_dir(grid_dir))) == 8
