"""The command line, one run or a grid: real runs, kill and resume, shards, Ray, and user mistakes as one
`error:` line with exit code 2, no traceback and nothing written."""

import os
import signal
import subprocess
import sys
import time
from unittest import mock

import pandas as pd
import pytest
from absl.testing import flagsaver

from imbal_keras import runs
from imbal_keras.cli import experiment_flags
from imbal_keras.grid import runner, sweep

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_FLAGS = ["--num_examples=600", "--steps=20", "--eval_every=10", "--hidden_units=8", "--nolog_composition"]
TINY = {"num_examples": 600, "steps": 20, "eval_every": 10, "hidden_units": (8,), "log_composition": False}


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_NUM_INTEROP_THREADS": "1",
            "TF_NUM_INTRAOP_THREADS": "1"}  # fmt: skip


def _command(*args: str) -> list[str]:
    return [sys.executable, os.path.join(REPO, "run_experiment.py"), *TINY_FLAGS, *args]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(_command(*args), capture_output=True, text=True, cwd=REPO, env=_env(), timeout=600)


def _run_main_in_process(args: list[str], capsys) -> tuple[int | None, str, str]:
    """`run_experiment.py ARGS` through its real entry point (`run_main(main)`), in this process.

    Returns (exit code, None on success; stderr; stdout).
    """
    import run_experiment

    argv = ["run_experiment.py", *TINY_FLAGS, *args]
    with flagsaver.flagsaver(), mock.patch.object(sys, "argv", argv), pytest.raises(SystemExit) as exit_info:
        experiment_flags.run_main(run_experiment.main)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.err, captured.out


@pytest.mark.slow
def test_command_line_run_writes_flags_and_prints_summary(tmp_path):
    proc = _run("--strategy=class_weight", "--weight_reduction=mean_with_sample_weight", f"--output_dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr
    (run_name,) = os.listdir(tmp_path)
    assert run_name == "synthetic_class_weight_mean_one_inverse_mean_with_sample_weight_r99_b16_sgd_lr0p05_seed0"
    flags_text = (tmp_path / run_name / runs.FLAGS_FILE).read_text()
    assert "--strategy=class_weight" in flags_text and "--steps=20" in flags_text
    record = runs.read(str(tmp_path / run_name))
    assert record.config.strategy.params["weight_reduction"] == "mean_with_sample_weight"
    assert len(record.curve) == 2
    assert "step     20/20" in proc.stdout and "average_precision" in proc.stdout


# name -> (extra flags, start of the one error line). Each case gets its own --output_dir.
BAD_INPUT = {
    "unknown_strategy": (["--strategy=bogus"], "error: --strategy must be one of none, class_weight"),
    "unknown_strategy_in_grid": (["--strategy=none,bogus"], "error: --strategy must be one of none, class_weight"),
    "ratio": (["--imbalance_ratio=0.5"], "error: --imbalance_ratio must be >= 1"),
    "negative_seed": (["--seed=-7"], "error: --seed must be >= 0. Received: seed=-7"),
    "negative_seed_in_grid": (["--seed=-7,3"], "error: --seed must be >= 0. Received: seed=-7"),
    "data_beyond_memory": (
        ["--num_examples=10000000000"],
        "error: --num_examples=10000000000 with num_features=20 needs about 2607.7 GiB of memory to generate;",
    ),
    "merge_from_without_merge": (
        ["--merge_from=/elsewhere"],
        "error: flags merge=False, merge_from=['/elsewhere']: --merge_from applies only with --merge",
    ),
    "merge_from_not_a_grid": (
        ["--merge", "--merge_from=/no/such/grid"],
        "error: --merge_from='/no/such/grid' holds no readable grid.json (no such file): it is not a grid folder",
    ),
    "compare_with_merge": (
        ["--merge", "--compare=upsample:none"],
        "error: --compare cannot be changed by --merge, which reports the grid's own question;",
    ),
    "failing_model_function": (["--model=user_models:raises"], "error: --model='user_models:raises' raised"),
    "failing_model_function_in_grid": (
        ["--model=user_models:raises", "--seed=0:2"],
        "error: --model='user_models:raises' raised RuntimeError: out of memory",
    ),
    "model_function_wrong_shape": (
        ["--model=user_models:two_units", "--seed=0:2"],
        "error: --model='user_models:two_units' outputs shape (batch, 2)",
    ),
    "model_function_not_a_model": (
        ["--model=user_models:not_a_model"],
        "error: --model='user_models:not_a_model' returned str, not a keras.Model",
    ),
    "target": (["--target_distribution=0.5,x"], "error: --target_distribution must be a comma-separated list"),
    "parameter_of_another_strategy": (
        ["--strategy=upsample", "--weight_reduction=mean_with_sample_weight"],
        "error: --weight_reduction does not apply to strategy 'upsample' (it applies to: class_weight",
    ),
    "bad_parameter": (
        ["--strategy=class_weight", "--weight_reduction=sum"],
        "error: --weight_reduction must be one of sum_over_batch_size, mean_with_sample_weight. Received",
    ),
    "parameter_axis_of_no_strategy": (
        ["--strategy=none,upsample", "--weight_reduction=sum_over_batch_size,mean_with_sample_weight"],
        "error: --weight_reduction applies to class_weight",
    ),
    "unknown_preset": (
        ["--preset=nope"],
        "error: flag --preset=nope: value should be one of <seed_question|long_tail|pixel_question>",
    ),
    "empty_axis": (["--strategy=none,"], "error: --strategy must list at least one value"),
    "zero_workers": (["--workers=0"], "error: flag --workers=0: --workers must be > 0"),
    "shard_out_of_range": (["--shard=2/2"], "error: flag --shard=2/2: --shard must be i/n with 0 <= i < n"),
    "shard_malformed": (["--shard=half"], "error: flag --shard=half: --shard must be i/n"),
    "bad_seed_range": (["--seed=3:1"], "error: --seed range must be a:b with integers a < b"),
    "non_numeric_axis": (["--learning_rate=0.1,fast"], "error: --learning_rate must be a float. Received"),
    "old_plural_flag": (["--strategies=none,upsample"], "error: Unknown command line flag 'strategies'"),
    "incompatible_grid": (["--seed=0:3"], "error: --output_dir="),
    "unreachable_ray": (["--seed=0:2", "--executor=ray", "--ray_address=127.0.0.1:9"], "error: "),
    "merge_without_grid": (["--merge"], "error: --output_dir="),
    "model_path_in_grid": (
        ["--model=nope.mod:fn", "--seed=0:2"],
        "error: --model='nope.mod:fn' does not import",
    ),
}


_USER_MODELS = """
import keras

def raises(input_shape):
    raise RuntimeError("out of memory")

def two_units(input_shape):
    inputs = keras.Input(input_shape)
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs))

def not_a_model():
    return "model"
"""


@pytest.fixture
def user_models(tmp_path, monkeypatch):
    """A module of model functions that fail, importable as `user_models`."""
    (tmp_path / "user_models.py").write_text(_USER_MODELS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "user_models", raising=False)


@pytest.mark.parametrize("name", list(BAD_INPUT))
def test_bad_input_is_one_error_line_and_writes_nothing(name, tmp_path, capsys, user_models):
    flags, start = BAD_INPUT[name]
    out = tmp_path / "out"
    if name == "incompatible_grid":
        sweep.prepare(str(out), sweep.make_spec(TINY, {"seed": (0, 1)}))
    before = sorted(os.listdir(out)) if out.exists() else []
    code, stderr, _ = _run_main_in_process([*flags, f"--output_dir={out}"], capsys)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2, stderr
    assert len(lines) == 1, stderr
    assert lines[0].startswith(start), lines[0]
    assert (sorted(os.listdir(out)) if out.exists() else []) == before
    if name == "incompatible_grid":
        assert "holds a different grid (axis seed differ" in lines[0]
        assert sweep.load_spec(str(out)).axes["seed"] == (0, 1)  # nothing lost
    if name == "unreachable_ray":
        assert "unreachable" in lines[0] or "needs Ray" in lines[0]


def test_entry_point_subprocess_prints_one_line(tmp_path):
    """The same through a real `python run_experiment.py` (TensorFlow's start-up chatter must not reach stderr)."""
    sweep.prepare(str(tmp_path / "g"), sweep.make_spec(TINY, {"seed": (0, 1)}))
    names = ("unknown_strategy", "incompatible_grid")
    processes = [
        subprocess.Popen(
            _command(*BAD_INPUT[name][0], f"--output_dir={tmp_path / 'g'}"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        for name in names
    ]
    for process, name in zip(processes, names, strict=True):
        _, stderr = process.communicate(timeout=600)
        assert process.returncode == 2, stderr
        assert len(stderr.strip().splitlines()) == 1 and stderr.startswith(BAD_INPUT[name][1]), stderr
        assert "Traceback" not in stderr


@pytest.mark.slow
def test_killed_grid_resumes_without_duplicates(tmp_path):
    grid_dir = str(tmp_path / "g")
    runs_dir = sweep.runs_dir(grid_dir)
    command = _command(
        "--strategy=none,upsample", "--seed=0:3", "--workers=1", "--side_by_side=1", f"--output_dir={grid_dir}"
    )
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=_env())
    deadline = time.time() + 240
    while not (os.path.isdir(runs_dir) and runs.finished_runs(runs_dir)) and time.time() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    survivors = runs.finished_runs(runs_dir)
    assert 1 <= len(survivors) < 6, "the grid was not killed mid-way"
    stamps = {n: os.path.getmtime(os.path.join(runs_dir, n, runs.RESULT_FILE)) for n in survivors}

    rerun = subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"6 runs, {len(survivors)} already finished, {6 - len(survivors)} to run" in rerun.stdout
    finished = runs.finished_runs(runs_dir)
    assert len(finished) == 6
    assert sorted(os.listdir(runs_dir)) == finished  # no partials, no -2
    for name, stamp in stamps.items():  # finished runs were skipped, not redone
        assert os.path.getmtime(os.path.join(runs_dir, name, runs.RESULT_FILE)) == stamp
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
    axes = ["--strategy=none,upsample", "--seed=0:2", "--executor=inline"]
    first, second = str(tmp_path / "shard0"), str(tmp_path / "shard1")
    for index, folder in enumerate((first, second)):
        code, stderr, out = _run_main_in_process([*axes, f"--shard={index}/2", f"--output_dir={folder}"], capsys)
        assert code is None, stderr
        assert "Shard done." in out
        assert len(runs.finished_runs(sweep.runs_dir(folder))) == 2
        assert not os.path.exists(os.path.join(folder, "report.md"))  # shards leave the report to the merge
    assert set(runs.finished_runs(sweep.runs_dir(first))).isdisjoint(runs.finished_runs(sweep.runs_dir(second)))

    code, stderr, out = _run_main_in_process(["--merge", f"--merge_from={second}", f"--output_dir={first}"], capsys)
    assert code is None, stderr
    assert f"Copied 2 finished runs into {first}" in out and "runs of the grid are not finished" not in out
    spec = sweep.load_spec(first)
    assert runs.finished_runs(sweep.runs_dir(first)) == sorted(c.output.run_name for c in sweep.expand(spec, first))
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
        spec = sweep.make_spec(TINY, {"strategy": ("none", "stratified"), "seed": (0,)})
        lines = []
        outcome = runner.run_grid(spec, str(tmp_path), executor="ray", log=lines.append)
    finally:
        ray.shutdown()
    assert outcome.failed == [] and len(outcome.outcomes) == 2
    expected = sorted(c.output.run_name for c in sweep.expand(spec, str(tmp_path)))
    assert runs.finished_runs(sweep.runs_dir(str(tmp_path))) == expected
    assert "(ray, 1 worker(s))" in lines[0]


def test_dry_run_checks_and_describes_without_writing(tmp_path, capsys):
    out = tmp_path / "out"
    code, stderr, stdout = _run_main_in_process(["--strategy=none,upsample", "--seed=0:3", "--dry_run",
                                                 f"--output_dir={out}"], capsys)  # fmt: skip
    assert code is None, stderr
    assert stdout.startswith(
        f"6 runs into {out} (local, 1 worker(s), 1 tasks with seeds side by side); axes:\n"
        "  seed: 0,1,2\n  strategy: none,upsample\n"
    )
    # A 10,000-run grid prints readable lines, not one line of every value.
    code, stderr, stdout = _run_main_in_process(["--strategy=none,upsample", "--seed=0:5000", "--dry_run",
                                                 f"--output_dir={out}"], capsys)  # fmt: skip
    assert code is None, stderr
    assert stdout.startswith(f"10000 runs into {out} (local, 1 worker(s), 1000 tasks with seeds side by side); axes:\n"
                             "  seed: 0,1,2,...,4998,4999 (5000 "
                             "values)\n  strategy: none,upsample\nruns:\n")  # fmt: skip
    # Every line but the first (which holds the output folder's path, as long as the user made it) is short.
    assert stdout.rstrip().endswith("... and 9995 more") and max(map(len, stdout.splitlines()[1:])) < 120
    # The strategies' seeds share one pack (one task), data seed fixed or not.
    code, stderr, stdout = _run_main_in_process(["--strategy=none,upsample", "--seed=0:3", "--data_seed=0",
                                                 "--dry_run", f"--output_dir={out}"], capsys)  # fmt: skip
    assert code is None, stderr
    assert stdout.startswith(f"6 runs into {out} (local, 1 worker(s), 1 tasks with seeds side by side); axes:")
    code, stderr, _ = _run_main_in_process(["--seed=0:3", "--side_by_side=0", "--dry_run"], capsys)
    assert code == 2 and "--side_by_side must be >= 1" in stderr and "Traceback" not in stderr
    code, stderr, stdout = _run_main_in_process(["--strategy=upsample", "--dry_run", f"--output_dir={out}"], capsys)
    assert code is None, stderr
    assert stdout.startswith(f"1 run: {out}/synthetic_upsample_r99_b16_sgd_lr0p05_seed0\n{{")
    assert not out.exists()
    code, stderr, _ = _run_main_in_process(["--strategy=upsample", "--steps=0", "--dry_run"], capsys)
    assert code == 2 and stderr.startswith("error: --steps must be >= 1. Received: steps=0")


@pytest.mark.parametrize(
    ("dataset", "module", "extra"),
    [("parquet:table.parquet", "pyarrow", "parquet"), ("tfds:mnist", "tensorflow_datasets", "tfds")],
    ids=["parquet", "tfds"],
)
def test_a_missing_extra_is_one_error_line_naming_it(tmp_path, monkeypatch, capsys, dataset, module, extra):
    import importlib.util

    (tmp_path / "table.parquet").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == module else real(name, *a))
    code, stderr, _ = _run_main_in_process([f"--dataset={dataset}", f"--output_dir={tmp_path / 'out'}"], capsys)
    assert code == 2 and "Traceback" not in stderr
    (line,) = stderr.strip().splitlines()
    assert (
        line == f"error: dataset={dataset.split(':')[0]}:{'PATH' if extra == 'parquet' else 'NAME'} needs the "
        f"'{extra}' extra ({module} not installed): pip install 'imbal_keras[{extra}]'"
    )
    assert not (tmp_path / "out").exists()
