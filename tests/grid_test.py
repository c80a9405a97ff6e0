"""Tests of `imbal_keras.grid`: expansion and exclusions, presets, names, shards, the store, executors."""

import collections
import glob
import json
import os
import time

import pytest
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.plugins.hparams import plugin_data_pb2

from imbal_keras import grid
from imbal_keras.config import ExperimentConfig
from imbal_keras.errors import UserInputError

TINY = ExperimentConfig(num_examples=600, steps=20, eval_every=10, hidden_units=(8,), log_composition=False)


def _spec(**axes) -> grid.GridSpec:
    return grid.GridSpec(axes={k: tuple(v) for k, v in axes.items()}, base=TINY)


def test_seed_question_preset_has_the_90_runs_of_the_issue():
    configs = grid.expand(grid.spec_from_preset("seed_question"))
    assert len(configs) == 90
    per_variant = collections.Counter((c.strategy, c.class_weight_normalization, c.weight_reduction) for c in configs)
    weighted = {
        ("class_weight", n, r)
        for n in ("mean_one", "sum_to_num_classes")
        for r in ("sum_over_batch_size", "mean_with_sample_weight")
    }
    plain = {
        (s, "mean_one", "sum_over_batch_size") for s in ("none", "upsample", "downsample", "rejection", "stratified")
    }
    assert set(per_variant) == weighted | plain
    assert set(per_variant.values()) == {10}
    assert {(c.imbalance_ratio, c.batch_size, c.optimizer, c.steps) for c in configs} == {(99.0, 16, "sgd", 400)}
    assert sorted({c.seed for c in configs}) == list(range(10))


def test_expand_drops_loss_weight_axes_for_strategies_without_loss_weights():
    # none: 1 run per seed; class_weight: 2 normalisations x 2 reductions per seed -> (1 + 4) x 3 seeds.
    spec = _spec(
        strategy=["none", "class_weight"],
        class_weight_normalization=["sum_to_num_classes", "mean_one"],
        weight_reduction=["sum_over_batch_size", "mean_with_sample_weight"],
        seed=[0, 1, 2],
    )
    configs = grid.expand(spec, "/g")
    assert len(configs) == 15
    none = [c for c in configs if c.strategy == "none"]
    assert {(c.class_weight_normalization, c.weight_reduction) for c in none} == {
        ("sum_to_num_classes", "sum_over_batch_size")
    }
    # Seeds are the outermost axis: the first 5 runs are seed 0.
    assert [c.seed for c in configs[:5]] == [0] * 5
    assert all(c.output_dir == os.path.join("/g", grid.RUNS_DIR) for c in configs)


def test_run_names_are_unique_deterministic_and_change_with_any_field():
    configs = grid.expand(grid.spec_from_preset("seed_question"))
    names = [c.run_name for c in configs]
    assert len(set(names)) == 90
    assert names == [c.run_name for c in grid.expand(grid.spec_from_preset("seed_question"))]
    config = configs[0]
    assert grid.run_name(config) == config.run_name
    assert grid.run_name(config.replace(steps=401)) != config.run_name
    assert grid.run_name(config.replace(output_dir="/elsewhere")) == config.run_name
    assert config.run_name.startswith(config.replace(run_name="").default_run_name() + "-")


def test_preset_is_overridable():
    spec = grid.spec_from_preset("seed_question", axes={"seed": (5, 6)}, steps=30)
    configs = grid.expand(spec)
    assert len(configs) == 18
    assert {c.seed for c in configs} == {5, 6} and {c.steps for c in configs} == {30}


@pytest.mark.parametrize(
    "axes, message",
    [
        ({"strategy": ()}, "--strategies must list at least one value"),
        ({"strategy": ("none", "nope")}, "--strategies has a bad value 'nope'"),
        ({"batch_size": (16, 0)}, "--batch_sizes has a bad value 0"),
        ({"seed": (1, 1)}, "--seeds lists a value twice"),
        ({"optimizer": ("sgd", "lbfgs")}, "--optimizers has a bad value 'lbfgs'"),
        ({"steps": (1, 2)}, "Unknown grid axis 'steps'"),
    ],
    ids=["empty", "unknown_strategy", "bad_batch", "repeated_seed", "unknown_optimizer", "unknown_axis"],
)
def test_validate_names_the_axis_flag(axes, message):
    with pytest.raises(UserInputError, match=message.replace("(", r"\(").replace("'", "'")):
        grid.validate(grid.GridSpec(axes=axes, base=TINY))


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(UserInputError, match=r"--preset must be one of seed_question\. Received: preset='x'"):
        grid.spec_from_preset("x")


@pytest.mark.parametrize("text, expected", [("0/1", (0, 1)), ("3/4", (3, 4)), ("0/10", (0, 10))])
def test_parse_shard(text, expected):
    assert grid.parse_shard(text) == expected


@pytest.mark.parametrize("text", ["4/4", "-1/4", "1", "a/b", "1/0", "1/2/3", ""])
def test_parse_shard_rejects(text):
    with pytest.raises(UserInputError, match="--shard must be i/n"):
        grid.parse_shard(text)


def test_shards_partition_the_grid():
    configs = grid.expand(grid.spec_from_preset("seed_question"))
    shards = [grid.shard(configs, i, 4) for i in range(4)]
    assert [len(s) for s in shards] == [23, 23, 22, 22]
    names = [c.run_name for s in shards for c in s]
    assert sorted(names) == sorted(c.run_name for c in configs)


@pytest.mark.parametrize("workers, cores, threads", [(1, 2, 2), (2, 2, 1), (4, 2, 1), (2, 8, 4), (3, 8, 2)])
def test_worker_threads_share_the_cores(workers, cores, threads):
    assert grid.worker_threads(workers, cores) == threads


def test_prepare_refuses_a_different_grid_and_changes_nothing(tmp_path):
    spec = _spec(strategy=["none", "upsample"], seed=[0, 1])
    grid.prepare(str(tmp_path), spec)
    before = (tmp_path / grid.GRID_FILE).read_text()
    grid.prepare(str(tmp_path), spec)  # same grid: fine
    with pytest.raises(UserInputError, match=r"holds a different grid \(axis seed differ"):
        grid.prepare(str(tmp_path), _spec(strategy=["none", "upsample"], seed=[0, 1, 2]))
    with pytest.raises(UserInputError, match="field steps differ"):
        grid.prepare(str(tmp_path), grid.GridSpec(axes=spec.axes, base=TINY.replace(steps=21)))
    assert (tmp_path / grid.GRID_FILE).read_text() == before
    assert grid.load_spec(str(tmp_path)) == spec


def _fake_run(grid_dir, name, *, finished=True):
    path = os.path.join(grid_dir, grid.RUNS_DIR, name)
    os.makedirs(path)
    if finished:
        with open(os.path.join(path, grid.RESULT_FILE), "w") as f:
            json.dump({}, f)
    return path


def test_store_finished_runs_and_partials(tmp_path):
    d = str(tmp_path)
    _fake_run(d, "a")
    _fake_run(d, "b", finished=False)
    _fake_run(d, ".partial-a.x1")
    _fake_run(d, ".partial-c.x2", finished=False)
    _fake_run(d, ".partial-d.x3", finished=False)
    assert grid.finished_runs(d) == {"a"}
    # Only partials of the runs named are removed (another shard may be writing the others).
    assert grid.clean_partials(d, ["c", "a"]) == 2
    assert sorted(os.listdir(os.path.join(d, grid.RUNS_DIR))) == [".partial-d.x3", "a", "b"]


def test_collect_copies_missing_finished_runs_from_a_compatible_grid(tmp_path):
    spec = _spec(seed=[0, 1])
    main, shard, other = (str(tmp_path / n) for n in ("main", "shard", "other"))
    for d in (main, shard):
        grid.prepare(d, spec)
    grid.prepare(other, _spec(seed=[0, 1, 2]))
    _fake_run(main, "a")
    _fake_run(shard, "a")
    _fake_run(shard, "b")
    _fake_run(shard, "c", finished=False)
    assert grid.collect([shard], main) == 1
    assert grid.finished_runs(main) == {"a", "b"}
    assert grid.collect([shard], main) == 0
    with pytest.raises(UserInputError, match="holds a different grid"):
        grid.collect([other], main)


def test_write_atomically_replaces_and_leaves_no_temporary(tmp_path):
    path = str(tmp_path / "t.csv")
    grid.write_atomically(path, "old")
    grid.write_atomically(path, "new")
    assert (tmp_path / "t.csv").read_text() == "new"
    assert os.listdir(tmp_path) == ["t.csv"]


def test_progress_counts_skipped_runs_and_estimates_the_rest():
    lines = []
    progress = grid.Progress(total=5, skipped=1, log=lines.append, started=time.time() - 10)
    progress(grid.RunOutcome("r1", 9.0, 0.25))
    progress(grid.RunOutcome("r2", 1.0, error="ValueError: boom"))
    assert lines[0].startswith("[2/5] elapsed 0:00:10 ETA 0:00:30  r1  test AP 0.2500  (9.0s)")
    assert lines[1].startswith("[3/5] elapsed 0:00:10 ETA 0:00:10  r2  FAILED ValueError: boom")


@pytest.mark.parametrize(
    "executor, workers, message", [("local", 0, "--workers must be > 0"), ("dask", 1, "--executor")]
)
def test_execute_rejects_bad_settings(executor, workers, message):
    with pytest.raises(UserInputError, match=message):
        grid.execute([], [], executor=executor, workers=workers)


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
    spec = _spec(strategy=["none", "upsample"], seed=[0])
    lines = []
    first = grid.run_grid(spec, d, executor="inline", log=lines.append)
    assert (first.total, first.skipped, len(first.outcomes), first.failed) == (2, 0, 2, [])
    assert lines[1].startswith("[1/2]") and lines[2].startswith("[2/2]")
    names = {c.run_name for c in grid.expand(spec, d)}
    assert grid.finished_runs(d) == names
    upsample = next(c for c in grid.expand(spec, d) if c.strategy == "upsample")
    assert _hparams_of(os.path.join(d, grid.RUNS_DIR, upsample.run_name)) == {"seed": 0.0, "strategy": "upsample"}
    assert glob.glob(os.path.join(d, "*.hparams"))  # the HParams experiment config at the grid root
    again = grid.run_grid(spec, d, executor="inline", log=lines.append)
    assert (again.total, again.skipped, again.outcomes) == (2, 2, [])
    assert sorted(os.listdir(os.path.join(d, grid.RUNS_DIR))) == sorted(names)


def test_a_failing_run_is_reported_and_the_grid_goes_on(tmp_path):
    # 600 examples at 1:99 leave ~357 training examples: batch 1000 fails in experiment.run, batch 16 runs.
    spec = _spec(batch_size=[1000, 16])
    outcome = grid.run_grid(spec, str(tmp_path), executor="inline", log=lambda _: None)
    assert [bool(o.error) for o in outcome.outcomes] == [True, False]
    assert "--batch_size=1000 is larger than the training split" in outcome.failed[0].error
    assert len(grid.finished_runs(str(tmp_path))) == 1
