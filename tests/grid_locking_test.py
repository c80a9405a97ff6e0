"""One writer per grid folder (or shard): the lock, its stale takeover, and two real processes on one folder."""

import json
import os
import socket
import subprocess
import sys
import time

import pandas as pd
import pytest

from imbal_keras import runs
from imbal_keras.errors import UserInputError
from imbal_keras.grid import lock, sweep

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_FLAGS = ["--num_examples=600", "--steps=40", "--eval_every=20", "--hidden_units=8", "--nolog_composition"]


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def _write_lock(grid_dir, name, **holder):
    os.makedirs(grid_dir, exist_ok=True)
    path = os.path.join(grid_dir, name)
    with open(path, "w") as f:
        json.dump({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(), **holder}, f)
    return path


def test_a_second_holder_is_refused_with_one_line_naming_the_first(tmp_path):
    grid = str(tmp_path / "g")
    with lock.GridLock(grid):
        with pytest.raises(UserInputError, match=rf"^output_dir='{grid}' is in use by pid {os.getpid()} on host "):
            lock.GridLock(grid).__enter__()
        assert os.listdir(grid) == [".lock-0-of-1"]
    assert not os.path.exists(grid)  # created by the lock, left empty: removed again


@pytest.mark.parametrize(
    ("held", "wanted", "conflict"),
    [((0, 4), (1, 4), False), ((0, 4), (0, 4), True), ((0, 1), (1, 4), True), ((1, 4), (0, 1), True)],
)
def test_shards_of_one_cut_share_a_folder_other_cuts_do_not(tmp_path, held, wanted, conflict):
    grid = str(tmp_path)
    with lock.GridLock(grid, *held):
        if conflict:
            with pytest.raises(UserInputError, match="is in use by"):
                lock.GridLock(grid, *wanted).__enter__()
            assert os.listdir(grid) == [f".lock-{held[0]}-of-{held[1]}"]  # the refused one removed its own
        else:
            with lock.GridLock(grid, *wanted):
                assert len(os.listdir(grid)) == 2


def test_a_stale_lock_is_taken_over_with_a_line(tmp_path):
    grid = str(tmp_path)
    dead = _dead_pid()
    _write_lock(grid, ".lock-0-of-1", pid=dead)
    lines = []
    with lock.GridLock(grid, log=lines.append):
        assert lock.read_holder(os.path.join(grid, ".lock-0-of-1")).pid == os.getpid()
    assert len(lines) == 1 and lines[0].startswith(f"Taking over the stale lock of pid {dead} on host ")


def test_staleness_by_pid_start_time_and_age(tmp_path):
    path = _write_lock(str(tmp_path), ".lock-0-of-1")
    me = lock.read_holder(path)
    assert not lock.stale(me, path)  # this live process
    assert lock.stale(lock.Holder(_dead_pid(), socket.gethostname(), time.time()), path)
    reused = lock.Holder(os.getpid(), socket.gethostname(), time.time(), process_start=1)  # a reused pid
    assert lock.stale(reused, path)
    elsewhere = lock.Holder(1, "another-host", time.time())
    assert not lock.stale(elsewhere, path)  # refreshed just now
    old = time.time() - lock.STALE_SECONDS - 60
    os.utime(path, (old, old))
    assert lock.stale(elsewhere, path)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": REPO, "TF_NUM_INTEROP_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1"}


# Two commands of the same grid that differ only in how they execute it (runs one by one, so the second
# process starts while the first is mid-grid).
COMMANDS = {"inline": ["--executor=inline"], "local": ["--executor=local", "--workers=1"]}


def _start(grid_dir, how):
    command = [sys.executable, "-u", os.path.join(REPO, "run_experiment.py"), *TINY_FLAGS,
               "--strategy=none,upsample", "--seed=0:10", "--side_by_side=1", f"--output_dir={grid_dir}",
               *COMMANDS[how]]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())


def _wait_for_a_finished_run(grid_dir, process, timeout=300):
    runs_dir = sweep.runs_dir(grid_dir)
    deadline = time.time() + timeout
    while not (os.path.isdir(runs_dir) and runs.finished_runs(runs_dir)):
        assert process.poll() is None and time.time() < deadline, "the first process finished no run"
        time.sleep(0.1)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("first_how", "second_how", "together"),
    [("inline", "local", False), ("local", "inline", False), ("inline", "local", True)],
    ids=["inline_then_local", "local_then_inline", "started_together"],
)
def test_two_processes_on_one_folder(tmp_path, first_how, second_how, together):
    """The one that comes second is refused with one line naming the other; the other finishes every run once."""
    grid_dir = str(tmp_path / "g")
    runs_dir = sweep.runs_dir(grid_dir)
    first = _start(grid_dir, first_how)
    if not together:
        _wait_for_a_finished_run(grid_dir, first)
    second = _start(grid_dir, second_how)
    processes = [first, second]
    outputs = [p.communicate(timeout=600) for p in processes]
    codes = sorted(p.returncode for p in processes)
    assert codes == [0, 2], outputs
    winner, loser = (0, 1) if first.returncode == 0 else (1, 0)
    if not together:
        assert winner == 0
    (line,) = outputs[loser][1].strip().splitlines()
    holder = processes[winner].pid
    assert line.startswith(f"error: --output_dir='{grid_dir}' is in use by pid {holder} on host "), line
    assert "Traceback" not in outputs[0][1] + outputs[1][1]
    names = runs.finished_runs(runs_dir)
    assert sorted(os.listdir(runs_dir)) == names and len(names) == 20  # no -2 folders, no partials
    results = pd.read_csv(os.path.join(grid_dir, "results.csv"))
    assert len(results) == 20 and results["run_name"].is_unique
    assert not [f for f in os.listdir(grid_dir) if f.startswith(".lock")]  # released


def test_a_lock_being_written_is_not_taken_over(tmp_path):
    # Another process created the lock and has not written its holder yet: refused, not taken over.
    (tmp_path / ".lock-0-of-1").write_text("")
    with pytest.raises(UserInputError, match=r"is in use by a process; wait for it"):
        lock.GridLock(str(tmp_path)).__enter__()
    old = time.time() - lock.STALE_SECONDS - 60  # left half-written by a process killed long ago: taken over
    os.utime(tmp_path / ".lock-0-of-1", (old, old))
    with lock.GridLock(str(tmp_path), log=lambda _: None):
        assert lock.read_holder(str(tmp_path / ".lock-0-of-1")).pid == os.getpid()
