"""Tests of running a grid: worker threads, progress, executors (`imbal_keras.grid.launch`), the grid's task
(`tasks`), HParams and a grid run inline (`runner`)."""

import glob
import operator
import os
import socket
import subprocess
import sys
import tempfile
import time
import types

import pytest
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.plugins.hparams import plugin_data_pb2

from imbal_keras import runs
from imbal_keras.config import ExperimentConfig
from imbal_keras.errors import UserInputError
from imbal_keras.grid import launch, progress, runner, sweep, tasks, worker

TINY = {"num_examples": 600, "steps": 20, "eval_every": 10, "hidden_units": (8,), "log_composition": False}


def _spec(**axes) -> sweep.GridSpec:
    return sweep.make_spec(TINY, {k: tuple(v) for k, v in axes.items()})


@pytest.mark.parametrize("workers, cores, threads", [(1, 2, 2), (2, 2, 1), (4, 2, 1), (2, 8, 4), (3, 8, 2)])
def test_worker_threads_share_the_cores(workers, cores, threads):
    assert launch.worker_threads(workers, cores) == threads


def test_progress_counts_skipped_runs_and_estimates_the_rest():
    lines = []
    tracker = progress.Progress(total=5, skipped=1, log=lines.append, started=time.time() - 10)
    tracker(tasks.RunOutcome("r1", 9.0, 0.25))
    tracker(tasks.RunOutcome("r2", 1.0, error="ValueError: boom"))
    assert lines[0].startswith("[2/5] elapsed 0:00:10 ETA 0:00:30  r1  test AP 0.2500  (9.0s)")
    assert lines[1].startswith("[3/5] elapsed 0:00:10 ETA 0:00:10  r2  FAILED ValueError: boom")


@pytest.mark.parametrize(
    "executor, workers, message", [("local", 0, "^workers must be > 0"), ("dask", 1, "^executor must be one of")]
)
def test_execute_rejects_bad_settings(executor, workers, message):
    with pytest.raises(UserInputError, match=message):
        launch.execute(tasks.GridTask(), [], executor=executor, workers=workers)


@pytest.mark.parametrize("executor, workers", [("inline", 1), ("local", 2)])
def test_executors_run_any_task_and_return_one_outcome_per_payload(executor, workers):
    # The launcher knows nothing of what it runs: `task(payload, threads)`, here an addition.
    threads = launch.worker_threads(workers)
    seen = []
    outcomes = launch.execute(operator.add, [10, 20, 30], executor=executor, workers=workers, on_done=seen.append)
    assert sorted(outcomes) == [10 + threads, 20 + threads, 30 + threads] and seen == outcomes


def test_the_launcher_imports_neither_training_nor_the_report():
    code = (
        "import sys\n"
        "from imbal_keras.grid import launch\n"
        "print(sorted(m for m in sys.modules if m.startswith(('imbal_keras.training', 'imbal_keras.grid.report',"
        " 'tensorflow'))))\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True)
    assert out.stdout.strip() == "[]"


def _hparams_of(run_dir):
    """The hparams (name -> value) in the run folder's HParams event file."""
    (path,) = glob.glob(os.path.join(run_dir, "*.hparams"))
    for event in EventFileLoader(path).Load():
        for value in event.summary.value:
            if value.metadata.plugin_data.plugin_name == "hparams":
                data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
                if data.HasField("session_start_info"):
                    return {
                        k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind"))
                        for k, v in data.session_start_info.hparams.items()
                    }
    return None


def test_run_grid_inline_runs_once_then_skips(tmp_path):
    d = str(tmp_path)
    spec = _spec(strategy=["none", "class_weight"], weight_reduction=["mean_with_sample_weight"], seed=[0])
    lines = []
    first = runner.run_grid(spec, d, executor="inline", log=lines.append)
    assert (first.total, first.skipped, len(first.outcomes), first.failed) == (2, 0, 2, [])
    assert lines[1].startswith("[1/2]") and lines[2].startswith("[2/2]")
    configs = sweep.expand(spec, d)
    names = sorted(c.output.run_name for c in configs)
    assert runs.finished_runs(sweep.runs_dir(d)) == names
    by_strategy = {c.strategy.name: c.output.run_name for c in configs}
    assert _hparams_of(os.path.join(sweep.runs_dir(d), by_strategy["class_weight"])) == {
        "seed": 0.0,
        "strategy": "class_weight",
        "weight_reduction": "mean_with_sample_weight",
    }
    # A parameter the run's strategy does not declare is not one of its hyperparameters.
    assert _hparams_of(os.path.join(sweep.runs_dir(d), by_strategy["none"])) == {"seed": 0.0, "strategy": "none"}
    assert glob.glob(os.path.join(d, "*.hparams"))  # the HParams experiment config at the grid root
    again = runner.run_grid(spec, d, executor="inline", log=lines.append)
    assert (again.total, again.skipped, again.outcomes) == (2, 2, [])
    assert sorted(os.listdir(sweep.runs_dir(d))) == names

    # A worker killed while writing a finished run's HParams: its staging folder goes, the run gets them again.
    run_dir = os.path.join(sweep.runs_dir(d), by_strategy["none"])
    (event_file,) = glob.glob(os.path.join(run_dir, "*.hparams"))
    os.remove(event_file)
    killed = subprocess.Popen(["true"])
    killed.wait()
    owner = f"{killed.pid}@{socket.gethostname()}"
    os.makedirs(os.path.join(sweep.runs_dir(d), f"{runs.STAGING_PREFIX}{by_strategy['none']}.{owner}.hparams-x"))
    runner.run_grid(spec, d, executor="inline", log=lines.append)
    assert sorted(os.listdir(sweep.runs_dir(d))) == names
    assert _hparams_of(run_dir) == {"seed": 0.0, "strategy": "none"}


def test_the_grid_hparams_config_is_written_inside_the_grid_folder_only(tmp_path, monkeypatch):
    """The grid folder's parent may not be writable (simulated: root ignores permissions), so nothing is staged
    there; an hour-old staging folder (a killed process's) is removed, a fresh one (another shard writing) is not;
    the event file holds the experiment's axes."""
    grid = tmp_path / "out" / "grid"
    grid.mkdir(parents=True)
    killed, writing = grid / ".partial-hparams-killed", grid / ".partial-hparams-another-shard"
    killed.mkdir()
    writing.mkdir()
    os.utime(killed, (time.time() - 7200, time.time() - 7200))  # two hours old: left by a killed process
    real_mkdtemp = tempfile.mkdtemp

    def mkdtemp(*args, dir=None, **kwargs):
        if dir is not None and os.path.abspath(dir) == str(tmp_path / "out"):
            raise PermissionError(13, "Permission denied", dir)
        return real_mkdtemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
    spec = _spec(strategy=["none", "upsample"], seed=[0, 1])
    runs.write_hparams_config(str(grid), spec.ordered_axes())
    assert os.listdir(tmp_path / "out") == ["grid"]
    (path,) = glob.glob(os.path.join(grid, "*.hparams"))
    assert sorted(os.listdir(grid)) == sorted([os.path.basename(path), writing.name])
    names = set()
    for event in EventFileLoader(path).Load():
        for value in event.summary.value:
            if value.metadata.plugin_data.plugin_name == "hparams":
                data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
                names |= {info.name for info in data.experiment.hparam_infos}
    assert names == {"strategy", "seed"}
    runs.write_hparams_config(str(grid), spec.ordered_axes())  # once: a second call writes nothing
    assert sorted(os.listdir(grid)) == sorted([os.path.basename(path), writing.name])


def test_a_failing_run_is_reported_and_the_grid_goes_on(tmp_path):
    # 600 examples at 1:99 leave ~357 training examples: batch 1000 fails in experiment.run, batch 16 runs.
    spec = _spec(batch_size=[1000, 16])
    outcome = runner.run_grid(spec, str(tmp_path), executor="inline", log=lambda _: None)
    assert [bool(o.error) for o in outcome.outcomes] == [True, False]
    assert "batch_size=1000 is larger than the training split" in outcome.failed[0].error
    assert len(runs.finished_runs(sweep.runs_dir(str(tmp_path)))) == 1


def test_each_outcome_says_how_the_run_ran_and_progress_names_each_plain_reason_once(tmp_path):
    worker.discard_warm_models()  # a fresh worker cache
    spec = sweep.make_spec(TINY, {"strategy": ("ldam", "none"), "seed": (0, 1)})
    sweep.prepare(str(tmp_path), spec)
    configs = sweep.expand(spec, str(tmp_path))
    lines = []
    tracker = progress.Progress(total=len(configs), skipped=0, log=lines.append)
    packs = launch.execute(
        tasks.GridTask(), [[c.to_dict()] for c in configs], executor="inline", on_done=lambda p: [*map(tracker, p)]
    )
    outcomes = [outcome for pack in packs for outcome in pack]
    reason = "plain: strategy 'ldam' changes its loss or batches during training"
    by_run = {(o.run_name.split("_")[1], o.run_name.split("seed")[1][0]): o.path for o in outcomes}
    assert by_run == {("ldam", "0"): reason, ("ldam", "1"): reason, ("none", "0"): "cold", ("none", "1"): "warm"}
    notes = [line for line in lines if line.startswith("note:")]
    assert len(notes) == 1 and notes[0].endswith("not warm: " + reason.removeprefix("plain: "))
    (plain,) = launch.execute(tasks.GridTask(warm=False), [[configs[0].to_dict()]], executor="inline")
    assert plain[0].path == "plain: warm runs off"


@pytest.mark.parametrize(
    "training_path, expected",
    [
        ({"mode": "plain", "reason": "strategy 'ldam' changes its loss"}, "plain: strategy 'ldam' changes its loss"),
        # Otherwise the path is what the worker saw (`warm=False` below: warm runs off).
        ({"mode": "warm", "reason": "reused a compiled model"}, "plain: warm runs off"),
        (None, "plain: warm runs off"),
    ],
    ids=["plain", "warm", "absent"],
)
def test_an_outcomes_path_reads_the_runs_training_path(tmp_path, monkeypatch, training_path, expected):
    from imbal_keras.training import experiment

    config = ExperimentConfig.from_flat({**TINY, "output_dir": str(tmp_path), "run_name": "r"})
    summary = {"final": {"test_average_precision": 0.5}}
    if training_path is not None:
        summary["training_path"] = training_path
    result = types.SimpleNamespace(config=config, run_dir=str(tmp_path / "r"), summary=summary)
    os.makedirs(result.run_dir)
    monkeypatch.setattr(experiment, "run", lambda *args, **kwargs: result)
    outcome = tasks.run_one(config.to_dict(), (), threads=1, warm=False)
    assert outcome.path == expected
    assert outcome.test_average_precision == 0.5 and outcome.error == ""


@pytest.mark.parametrize(
    "arguments, grid",
    [
        (["--strategy=upsample"], False),
        (["--dataset=csv:fraud.csv", "--label_column=Class"], False),
        (["--strategy=none,class_weight,upsample", "--seed=0:10"], True),
        (["--seed=0:10"], True),
        (["--preset=seed_question", "--workers=2"], True),
        (["--workers=2"], True),
        (["--strategy=none,upsample", "--executor=inline"], False),
        (["--preset=seed_question", "--executor=ray", "--ray_address=auto"], False),
    ],
)
def test_the_command_starts_the_workers_server_early_only_for_a_grid_on_local_workers(arguments, grid):
    from imbal_keras.cli import main

    assert main._may_run_a_grid(arguments) is grid


def test_workers_forked_from_the_server_compute_what_spawned_workers_do():
    """On Linux local workers fork from the server, which imports TensorFlow once; a worker forked from it sets its
    own thread pools and gives a spawned worker's numbers."""
    import concurrent.futures
    import multiprocessing

    from imbal_keras.grid import worker

    assert launch.worker_context(worker.PRELOAD).get_start_method() == "forkserver"
    results = {}
    for name, context in (
        ("server", launch.worker_context(worker.PRELOAD)),
        ("spawn", multiprocessing.get_context("spawn")),
    ):
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
            results[name] = pool.submit(_tensorflow_in_a_worker, 1).result()
    assert results["server"] == results["spawn"]


def _tensorflow_in_a_worker(threads):
    from imbal_keras.grid import worker

    worker.configure_worker(threads)
    import tensorflow as tf

    x = tf.random.stateless_normal([64, 64], seed=[1, 2])
    return float(tf.reduce_sum(tf.linalg.matmul(x, x)))


def test_workers_see_the_environment_of_when_their_pool_started(monkeypatch):
    """A worker forked from a server started earlier sees the variables set since, as a spawned worker would."""
    from imbal_keras.grid import worker

    launch.start_worker_server(worker.PRELOAD)
    monkeypatch.setenv("IMBAL_KERAS_LAUNCH_TEST", "set after the server started")
    (seen,) = launch.execute(_variable, ["IMBAL_KERAS_LAUNCH_TEST"], workers=1, pool=launch.LocalPool(1))
    assert seen == "set after the server started"


def _variable(name, threads):
    return os.environ.get(name)
