"""End-to-end tests of `run_grid.py` in subprocesses: one-line errors, kill and resume, Ray."""

import os
import signal
import subprocess
import sys
import time
from unittest import mock

import pandas as pd
import pytest
from absl.testing import flagsaver

from flags import experiment_flags
from imbal_keras import grid
from imbal_keras.config import ExperimentConfig

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_FLAGS = ["--num_examples=600", "--steps=20", "--eval_every=10", "--hidden_units=8", "--nolog_composition"]
TINY = ExperimentConfig(num_examples=600, steps=20, eval_every=10, hidden_units=(8,), log_composition=False)


def _command(*args: str) -> list[str]:
    return [sys.executable, os.path.join(REPO, "run_grid.py"), *TINY_FLAGS, *args]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "3"}


# name -> (extra flags, start of the one error line). Each case gets its own --output_dir.
BAD_INPUT = {
    "unknown_preset": (["--preset=nope"], "error: flag --preset=nope: value should be one of <seed_question>"),
    "unknown_strategy": (["--strategies=none,bogus"], "error: --strategies has a bad value 'bogus': --strategy must"),
    "empty_axis": (["--strategies="], "error: --strategies must list at least one value"),
    "zero_workers": (["--workers=0"], "error: flag --workers=0: --workers must be > 0"),
    "shard_out_of_range": (["--shard=2/2"], "error: flag --shard=2/2: --shard must be i/n with 0 <= i < n"),
    "shard_malformed": (["--shard=half"], "error: flag --shard=half: --shard must be i/n"),
    "zero_seeds": (["--seeds=0"], "error: --seeds as a count must be > 0"),
    "non_numeric_axis": (
        ["--learning_rates=0.1,fast"],
        "error: --learning_rates must be a comma-separated list of float",
    ),
    "axis_and_field": (
        ["--strategies=none", "--strategy=upsample"],
        "error: --strategies and --strategy are both given",
    ),
    "incompatible_grid": (["--seeds=3"], "error: --output_dir="),
    "unreachable_ray": (["--executor=ray", "--ray_address=127.0.0.1:9"], "error: "),
    "merge_without_grid": (["--merge"], "error: --output_dir="),
}


def _run_main_in_process(args: list[str], capsys) -> tuple[int | None, str, str]:
    """`run_grid.py ARGS` through its real entry point (`run_main(main)`), in this process.

    Returns (exit code, None on success; stderr; stdout).
    """
    import run_grid

    argv = ["run_grid.py", *TINY_FLAGS, *args]
    with flagsaver.flagsaver(), mock.patch.object(sys, "argv", argv), pytest.raises(SystemExit) as exit_info:
        experiment_flags.run_main(run_grid.main)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.err, captured.out


@pytest.mark.parametrize("name", list(BAD_INPUT))
def test_bad_input_is_one_error_line(name, tmp_path, capsys):
    flags, start = BAD_INPUT[name]
    if name == "incompatible_grid":
        grid.prepare(str(tmp_path), grid.GridSpec(axes={"seed": (0, 1)}, base=TINY))
    code, stderr, _ = _run_main_in_process([*flags, f"--output_dir={tmp_path}"], capsys)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2, stderr
    assert len(lines) == 1, stderr
    assert lines[0].startswith(start), lines[0]
    if name == "incompatible_grid":
        assert "holds a different grid (axis seed differ" in lines[0]
        assert grid.load_spec(str(tmp_path)).axes == {"seed": (0, 1)}  # nothing lost
    if name == "unreachable_ray":
        assert "unreachable" in lines[0] or "needs Ray" in lines[0]


def test_entry_point_subprocess_prints_one_line(tmp_path):
    """The same through a real `python run_grid.py` (TensorFlow's start-up chatter must not reach stderr)."""
    grid.prepare(str(tmp_path / "g"), grid.GridSpec(axes={"seed": (0, 1)}, base=TINY))
    processes = [
        subprocess.Popen(
            _command(*BAD_INPUT[name][0], f"--output_dir={tmp_path / 'g'}"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        for name in ("unknown_preset", "incompatible_grid")
    ]
    for process, name in zip(processes, ("unknown_preset", "incompatible_grid"), strict=True):
        _, stderr = process.communicate(timeout=600)
        assert process.returncode == 2, stderr
        assert len(stderr.strip().splitlines()) == 1 and stderr.startswith(BAD_INPUT[name][1]), stderr


@pytest.mark.slow
def test_killed_grid_resumes_without_duplicates(tmp_path):
    grid_dir = str(tmp_path / "g")
    command = _command("--strategies=none,upsample", "--seeds=3", "--workers=1", f"--output_dir={grid_dir}")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=_env())
    deadline = time.time() + 240
    while not grid.finished_runs(grid_dir) and time.time() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    survivors = grid.finished_runs(grid_dir)
    assert 1 <= len(survivors) < 6, "the grid was not killed mid-way"
    stamps = {n: os.path.getmtime(os.path.join(grid_dir, grid.RUNS_DIR, n, grid.RESULT_FILE)) for n in survivors}

    rerun = subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"6 runs, {len(survivors)} already finished, {6 - len(survivors)} to run" in rerun.stdout
    finished = grid.finished_runs(grid_dir)
    assert len(finished) == 6
    assert sorted(os.listdir(os.path.join(grid_dir, grid.RUNS_DIR))) == sorted(finished)  # no partials, no -2
    for name, stamp in stamps.items():  # finished runs were skipped, not redone
        assert os.path.getmtime(os.path.join(grid_dir, grid.RUNS_DIR, name, grid.RESULT_FILE)) == stamp
    results = pd.read_csv(os.path.join(grid_dir, "results.csv"))
    assert len(results) == 6 and results["run_name"].is_unique
    assert sorted(zip(results["strategy"], results["seed"], strict=True)) == [
        (s, k) for s in ("none", "upsample") for k in range(3)
    ]
    curves = pd.read_csv(os.path.join(grid_dir, "curves.csv"))
    assert curves.groupby("run_name")["step"].apply(list).tolist() == [[10, 20]] * 6


@pytest.mark.slow
def test_shards_in_separate_folders_merge_into_one_grid(tmp_path, capsys):
    """Two shards of an array job on machines without a shared disk, then `--merge --merge_from`."""
    axes = ["--strategies=none,upsample", "--seeds=2", "--executor=inline"]
    first, second = str(tmp_path / "shard0"), str(tmp_path / "shard1")
    for index, folder in enumerate((first, second)):
        code, stderr, out = _run_main_in_process([*axes, f"--shard={index}/2", f"--output_dir={folder}"], capsys)
        assert code is None, stderr
        assert "Shard done." in out
        assert len(grid.finished_runs(folder)) == 2
        assert not os.path.exists(os.path.join(folder, "report.md"))  # shards leave the report to the merge
    assert grid.finished_runs(first).isdisjoint(grid.finished_runs(second))

    code, stderr, out = _run_main_in_process(["--merge", f"--merge_from={second}", f"--output_dir={first}"], capsys)
    assert code is None, stderr
    assert f"Copied 2 finished runs into {first}" in out and "runs of the grid are not finished" not in out
    spec = grid.load_spec(first)
    assert grid.finished_runs(first) == {c.run_name for c in grid.expand(spec, first)}
    results = pd.read_csv(os.path.join(first, "results.csv"))
    assert len(results) == 4 and results["run_name"].is_unique
    assert sorted(zip(results["strategy"], results["seed"], strict=True)) == [
        (s, k) for s in ("none", "upsample") for k in range(2)
    ]
    assert os.path.exists(os.path.join(first, "report.md"))


@pytest.mark.slow
def test_ray_executor_on_a_local_ray_instance(tmp_path, monkeypatch):
    ray = pytest.importorskip("ray", reason="Ray is optional: pip install -r requirements-ray.txt")
    monkeypatch.setenv("PYTHONPATH", REPO)  # Ray's worker processes import imbal_keras from the checkout
    ray.init(num_cpus=1, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        spec = grid.GridSpec(axes={"strategy": ("none", "stratified"), "seed": (0,)}, base=TINY)
        lines = []
        outcome = grid.run_grid(spec, str(tmp_path), executor="ray", log=lines.append)
    finally:
        ray.shutdown()
    assert outcome.failed == [] and len(outcome.outcomes) == 2
    assert grid.finished_runs(str(tmp_path)) == {c.run_name for c in grid.expand(spec, str(tmp_path))}
    assert "(ray, 1 worker(s))" in lines[0]
