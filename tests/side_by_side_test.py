"""Seeds side by side (`imbal_keras.training.side_by_side`): each run of a pack gives the one-run path's results.

Every pack below is also run config by config through `experiment.run` with everything built anew (the one-run
path), and the run folders are compared file by file: the evaluation curve, the per-step composition, loss and
per-class gradients, and the summaries. Batched matrix products may round differently from single ones, so the
comparison allows float32 rounding (RTOL, ATOL below, stated in docs/grids.md); batch compositions are exact.
"""

import dataclasses
import json
import os

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from imbal_keras import runs, strategies
from imbal_keras.callbacks import rows
from imbal_keras.config import ExperimentConfig
from imbal_keras.errors import UserInputError
from imbal_keras.grid import runner, sweep
from imbal_keras.training import experiment, replicas, side_by_side
from imbal_keras.training.warm import WarmModels

TINY = dict(num_examples=1500, num_features=4, imbalance_ratio=9, steps=24, eval_every=8, hidden_units=(8, 8),
            gradient_every_n_steps=3, data_seed=0)  # fmt: skip
# Pipelines, weights, reductions, losses of their own and K > 2 with Adam.
CASES = {
    "none": dict(strategy="none"),
    "class_weight": dict(strategy="class_weight", weight_reduction="mean_with_sample_weight"),
    "upsample": dict(strategy="upsample"),
    "stratified": dict(strategy="stratified"),
    "focal": dict(strategy="focal"),
    # Deferred re-weighting from step 12 of 24, bound to the pack's step counter; normalised per replica's batch.
    "ldam": dict(strategy="ldam", drw_fraction=0.5),
    "ldam_normalized": dict(strategy="ldam", drw_fraction=0.5, weight_reduction="mean_with_sample_weight"),
    # Each replica's gradient-noise diagnostics at steps 0, 5, 10, 15, 20 and 24 (calls end there).
    "diagnosed": dict(strategy="class_weight", diagnose_every=5),
    "diagnosed_ldam": dict(strategy="ldam", drw_fraction=0.5, diagnose_every=6),
    "k4_adam": dict(
        strategy="class_balanced", num_classes=4, imbalance_ratio=8.0, optimizer="adam", learning_rate=0.01
    ),  # fmt: skip
    "k10_logit_adjusted": dict(
        strategy="logit_adjusted", num_classes=10, imbalance_ratio=20.0, class_profile="exponential"
    ),  # fmt: skip
}
SEEDS = (0, 1)
# Float32 rounding of batched against single matrix products, over 24 SGD/Adam steps.
RTOL, ATOL = 1e-4, 1e-5
# A class's effective step splits each coordinate's update by g_c / g, which amplifies rounding where the total
# gradient g is near zero and the update is not (Adam's momentum): 1.5e-4 measured for K = 4 with Adam.
SHARE_RTOL = 1e-3


def _configs(out, case, seeds=SEEDS, **extra):
    return [
        ExperimentConfig.from_flat(
            {**TINY, **CASES[case], **extra, "seed": s, "output_dir": str(out), "run_name": f"{case}_seed{s}"}
        )  # fmt: skip
        for s in seeds
    ]


def _train_losses(run_dir):
    from tensorboard.backend.event_processing import event_accumulator

    events = event_accumulator.EventAccumulator(run_dir, size_guidance={"tensors": 0})
    events.Reload()
    return np.array([(e.step, float(tf.make_ndarray(e.tensor_proto))) for e in events.Tensors("train/loss")])


def assert_same_run(pack_dir, one_dir):
    """Asserts that a packed run's folder holds the one-run path's results within the tolerance above (also used
    by tests/side_by_side_models_test.py)."""
    assert sorted(f for f in os.listdir(pack_dir) if "tfevents" not in f) == sorted(
        f for f in os.listdir(one_dir) if "tfevents" not in f
    )
    for name in (runs.METRICS_FILE, runs.COMPOSITION_FILE, runs.GRADIENTS_FILE, runs.DIAGNOSTICS_FILE):
        if not os.path.exists(os.path.join(one_dir, name)):
            continue
        a = pd.read_csv(os.path.join(pack_dir, name)).drop(columns=["elapsed_seconds"], errors="ignore")
        b = pd.read_csv(os.path.join(one_dir, name)).drop(columns=["elapsed_seconds"], errors="ignore")
        assert list(a.columns) == list(b.columns), name
        assert a.shape == b.shape and len(a) > 0, name
        if name == runs.COMPOSITION_FILE:
            pd.testing.assert_frame_equal(a, b)  # the same batches, exactly
            continue
        words = [c for c in a.columns if a[c].dtype.kind not in "biuf"]  # the diagnostics' strategy name, say
        pd.testing.assert_frame_equal(a[words], b[words])
        shares = [c for c in a.columns if c.startswith("gradients_effective_step_")]
        rest = [c for c in a.columns if c not in shares and c not in words]
        np.testing.assert_allclose(a[rest].to_numpy(float), b[rest].to_numpy(float), rtol=RTOL, atol=ATOL, err_msg=name)
        np.testing.assert_allclose(a[shares].to_numpy(float), b[shares].to_numpy(float), rtol=SHARE_RTOL, atol=ATOL)
    losses_pack, losses_one = _train_losses(pack_dir), _train_losses(one_dir)
    np.testing.assert_array_equal(losses_pack[:, 0], losses_one[:, 0])
    np.testing.assert_allclose(losses_pack[:, 1], losses_one[:, 1], rtol=RTOL, atol=ATOL)
    with open(os.path.join(pack_dir, runs.RESULT_FILE)) as f:
        pack = json.load(f)
    with open(os.path.join(one_dir, runs.RESULT_FILE)) as f:
        one = json.load(f)
    assert pack.keys() == one.keys()
    for summary in (pack, one):  # the runs went to different folders
        summary["config"]["output"].pop("output_dir")
    for key in ("config", "class_counts", "training_distribution", "initial_output_bias", "class_weights"):
        assert pack[key] == one[key], key
    assert pack["instrumentation"].keys() == one["instrumentation"].keys()
    for key, value in one["instrumentation"].items():
        if value is None:  # a summary without a value (no recorded step had the minority, say)
            assert pack["instrumentation"][key] is None, key
            continue
        rtol = SHARE_RTOL if "effective_step" in key else RTOL
        np.testing.assert_allclose(pack["instrumentation"][key], value, rtol=rtol, atol=ATOL, err_msg=key)
    configs = []
    for run_dir in (pack_dir, one_dir):
        with open(os.path.join(run_dir, runs.CONFIG_FILE)) as f:
            configs.append(f.read().replace(os.path.dirname(run_dir), "OUT"))
    assert configs[0] == configs[1]


@pytest.mark.parametrize("case", list(CASES))
def test_every_run_of_a_pack_matches_the_one_run_path(tmp_path, case):
    results = side_by_side.run_pack(_configs(tmp_path / "pack", case), log=None)
    assert not isinstance(results, str), results
    for config, result in zip(_configs(tmp_path / "one", case), results, strict=True):
        one = experiment.run(config, log=None)
        assert os.path.basename(result.run_dir) == os.path.basename(one.run_dir)
        assert_same_run(result.run_dir, one.run_dir)
        assert result.summary["training_path"] == {"mode": "packed", "reason": "", "replicas": len(SEEDS)}
        assert one.summary["training_path"] == {"mode": "plain", "reason": "warm runs off"}
    # Nothing but the run folders is left behind.
    assert sorted(os.listdir(tmp_path / "pack")) == sorted(f"{case}_seed{s}" for s in SEEDS)


# Every strategy that trains side by side, in one pack, each run on data of its own but two that share theirs.
PACKABLE = [
    s.name for s in strategies.STRATEGIES.values() if (s.callbacks is None or s.callbacks_bind_step) and s.single_label
]


@pytest.mark.parametrize("k", [2, 4, 10])
def test_a_pack_of_every_strategy_on_data_of_its_own_matches_the_one_run_path_run_by_run(tmp_path, k):
    extra = {"num_classes": k, "imbalance_ratio": 9.0 if k == 2 else 8.0, "data_seed": -1}
    if k == 4:
        extra.update(optimizer="adam", learning_rate=0.01)

    def configs(sub):
        return [
            ExperimentConfig.from_flat(
                {
                    **TINY,
                    **extra,
                    "strategy": name,
                    "seed": i,
                    "output_dir": str(tmp_path / sub),
                    "run_name": name,
                    **({"data_seed": 100} if i < 2 else {}),
                }
            )  # fmt: skip
            for i, name in enumerate(PACKABLE)
        ]

    results = side_by_side.run_pack(configs("pack"), log=None)
    assert not isinstance(results, str), results
    assert len({r.config.seed_for("data") for r in results}) == len(PACKABLE) - 1
    for config, result in zip(configs("one"), results, strict=True):
        assert result.config.output.run_name == config.output.run_name
        one = experiment.run(config, log=None)
        assert_same_run(result.run_dir, one.run_dir)
        assert result.summary["training_path"] == {"mode": "packed", "reason": "", "replicas": len(PACKABLE)}


def test_a_run_does_not_depend_on_its_pack_mates_and_a_warm_pack_repeats_a_cold_one(tmp_path):
    warm = WarmModels()
    first = side_by_side.run_pack(_configs(tmp_path / "a", "class_weight", seeds=(0, 1, 2)), warm=warm, log=None)
    other = side_by_side.run_pack(_configs(tmp_path / "b", "class_weight", seeds=(5, 1, 7)), warm=warm, log=None)
    again = side_by_side.run_pack(_configs(tmp_path / "c", "class_weight", seeds=(0, 1, 2)), warm=warm, log=None)
    assert warm.hits == 2 and warm.misses == 1  # one compiled pack served all three
    assert_same_run(first[1].run_dir, other[1].run_dir)
    for a, b in zip(first, again, strict=True):  # same seeds, same pack: the same numbers, bitwise
        for name in (runs.METRICS_FILE, runs.COMPOSITION_FILE, runs.GRADIENTS_FILE):
            x = pd.read_csv(os.path.join(a.run_dir, name)).drop(columns=["elapsed_seconds"], errors="ignore")
            y = pd.read_csv(os.path.join(b.run_dir, name)).drop(columns=["elapsed_seconds"], errors="ignore")
            pd.testing.assert_frame_equal(x, y)


def test_packs_whose_losses_differ_in_their_reductions_or_weights_share_one_compiled_step(tmp_path):
    """Two packs of 3 whose replicas mix the cross-entropy's reductions, and strategies with and without weights, in
    different layouts: one compiled pack serves both, and every run equals its one-run path."""
    layouts = {
        "a": [("class_weight", "mean_with_sample_weight", 0), ("class_weight", "mean_with_sample_weight", 1),
              ("none", None, 2)],
        "b": [("class_weight", "sum_over_batch_size", 3), ("none", None, 4),
              ("upsample", None, 5)],
    }  # fmt: skip

    def configs(sub, layout):
        return [
            ExperimentConfig.from_flat(
                {
                    **TINY,
                    "strategy": name,
                    "seed": seed,
                    "output_dir": str(tmp_path / sub),
                    "run_name": f"{name}_{seed}",
                    **({"weight_reduction": reduction} if reduction else {}),
                }
            )  # fmt: skip
            for name, reduction, seed in layout
        ]

    warm = WarmModels()
    for sub, layout in layouts.items():
        results = side_by_side.run_pack(configs(f"pack_{sub}", layout), warm=warm, log=None)
        assert not isinstance(results, str), results
        for config, result in zip(configs(f"one_{sub}", layout), results, strict=True):
            assert_same_run(result.run_dir, experiment.run(config, log=None).run_dir)
    assert (warm.misses, warm.hits) == (1, 1)


def test_a_smaller_pack_padded_with_twins_shares_the_compiled_step_and_matches_the_one_run_path(tmp_path):
    """Packs of 3 and 2 runs, the second padded to 3 with a twin of its last replica (`pad_to`): one traced
    step, and each run equal to its one-run path (the twin's results dropped)."""
    warm = WarmModels()
    for sub, seeds in (("three", (0, 1, 2)), ("two", (3, 4))):
        results = side_by_side.run_pack(_configs(tmp_path / sub, "upsample", seeds=seeds), warm=warm, log=None,
                                        pad_to=3)  # fmt: skip
        assert not isinstance(results, str), results
        assert len(results) == len(seeds) and len(os.listdir(tmp_path / sub)) == len(seeds)
        for config, result in zip(_configs(tmp_path / f"one_{sub}", "upsample", seeds=seeds), results, strict=True):
            assert result.summary["training_path"]["replicas"] == len(seeds)
            assert_same_run(result.run_dir, experiment.run(config, log=None).run_dir)
    assert (warm.misses, warm.hits) == (1, 1)


def test_a_grid_pads_its_packs_to_the_largest_of_their_shape():
    configs = [c for s in range(5) for c in _configs("out", "none", seeds=(s,))]
    other = [c.replace(steps=16) for c in configs[:2]]
    packs = sweep.packs([*configs, *other], 3)
    assert sorted(len(p) for p in packs) == [2, 2, 3]
    assert dict(sweep.pack_sizes(packs)) == {configs[0].key("pack"): 3, other[0].key("pack"): 2}


def test_deferred_reweighting_switches_at_its_step_in_a_reused_compiled_pack(tmp_path):
    """The second pack of ldam runs reuses the first's compiled step, its loss bound to that pack's optimizer
    counter, which starts again at 0: each run switches at its own step 12, as alone."""
    warm = WarmModels()
    for seeds in ((0, 1), (2, 3)):
        results = side_by_side.run_pack(_configs(tmp_path / f"pack{seeds}", "ldam", seeds=seeds), warm=warm, log=None)
        assert not isinstance(results, str), results
        for config, result in zip(_configs(tmp_path / f"one{seeds}", "ldam", seeds=seeds), results, strict=True):
            assert_same_run(result.run_dir, experiment.run(config, log=None).run_dir)
    assert (warm.misses, warm.hits) == (1, 1)


def test_instrumentation_off_writes_what_the_one_run_path_writes(tmp_path):
    extra = dict(log_composition=False, gradient_every_n_steps=0)
    (result,) = side_by_side.run_pack(_configs(tmp_path / "pack", "none", seeds=(3,), **extra), log=None)
    one = experiment.run(_configs(tmp_path / "one", "none", seeds=(3,), **extra)[0], log=None)
    assert sorted(os.listdir(result.run_dir)) != [] and not os.path.exists(
        os.path.join(result.run_dir, runs.GRADIENTS_FILE)
    )
    assert_same_run(result.run_dir, one.run_dir)


@pytest.fixture
def scheduled(monkeypatch):
    """A strategy `scheduled` with a callback of its own (not one that only binds the loss to the step counter):
    its runs cannot train side by side."""
    strategy = dataclasses.replace(
        strategies.get("none"), name="scheduled", callbacks=lambda ctx: [keras.callbacks.Callback()]
    )
    monkeypatch.setitem(strategies.STRATEGIES, "scheduled", strategy)


@pytest.mark.parametrize(
    "extra, reason",
    [
        (dict(strategy="scheduled"), "changes its loss or batches during training"),
        (dict(model="tests.side_by_side_models_test:dropout_model"), "state that is not trained (in dropout"),
    ],
)
@pytest.mark.usefixtures("scheduled")
def test_what_cannot_train_side_by_side_says_why_and_writes_nothing(tmp_path, extra, reason):
    configs = [
        ExperimentConfig.from_flat({**TINY, **extra, "seed": s, "output_dir": str(tmp_path), "run_name": f"r{s}"})
        for s in (0, 1)
    ]
    said = side_by_side.run_pack(configs, log=None)
    assert isinstance(said, str) and reason in said
    assert not os.listdir(tmp_path)


def test_configs_that_differ_in_more_than_their_seeds_data_and_strategies_are_refused(tmp_path):
    a, b = _configs(tmp_path, "none", seeds=(0,))[0], _configs(tmp_path, "none", seeds=(1,), steps=16)[0]
    with pytest.raises(UserInputError, match=r"differ only in their seeds, data seeds and strategies"):
        side_by_side.run_pack([a, b], log=None)
    assert not os.listdir(tmp_path)


@pytest.mark.usefixtures("scheduled")
def test_packs_group_runs_of_equal_shapes_a_pipeline_at_a_time_in_near_equal_parts():
    base = {**TINY, "output_dir": "out"}
    configs = [
        ExperimentConfig.from_flat({**base, "strategy": strategy, "seed": s, "run_name": f"{strategy}{s}"})
        for s in range(20)
        for strategy in ("none", "upsample")
    ]
    packs = sweep.packs(configs, 8)
    assert [len(p) for p in packs] == [8] * 5
    assert all(len({c.key("pack") for c in p}) == 1 for p in packs)
    # A strategy's runs come together (they share a pipeline), in the order they first come.
    assert [c.output.run_name for p in packs for c in p] == [f"{n}{s}" for n in ("none", "upsample") for s in range(20)]
    # Without a fixed data seed every seed draws its own data: the runs still share packs.
    own_data = [ExperimentConfig.from_flat({**base, "data_seed": -1, "seed": s}) for s in range(3)]
    assert [len(p) for p in sweep.packs(own_data, 8)] == [3]
    assert [len(p) for p in sweep.packs(configs, 1)] == [1] * 40
    # On 2 workers, 30 runs at size 10 are 4 packs (2 a worker), not 3 (a worker idle while the last one runs).
    assert [len(p) for p in sweep.packs(configs[:30], 10, workers=2)] == [8, 7, 7, 8]
    assert [len(p) for p in sweep.packs(configs[:3], 10, workers=4)] == [1, 1, 1]
    # Runs of another budget, and runs that cannot train side by side (one strategy variant at a time), apart.
    other = [c.replace(steps=16) for c in configs[:3]] + [
        configs[0].replace(strategy="scheduled", data_seed=i) for i in range(3)
    ]
    assert [len(p) for p in sweep.packs(other, 8)] == [3, 1, 1, 1]
    with pytest.raises(UserInputError, match=r"side_by_side must be an integer >= 1.*Received: side_by_side=0"):
        sweep.packs(configs, 0)


@pytest.mark.usefixtures("scheduled")
def test_a_grid_trains_its_seeds_side_by_side_resumes_and_falls_back(tmp_path):
    spec = sweep.make_spec(
        {**TINY, "steps": 16},
        {"strategy": ("none", "scheduled"), "seed": (0, 1, 2)},
    )
    lines = []
    outcome = runner.run_grid(spec, str(tmp_path / "grid"), executor="inline", side_by_side=3, log=lines.append)
    assert not outcome.failed
    paths = {o.run_name: o.path for o in outcome.outcomes}
    assert sum(p == "side by side: 3 runs" for p in paths.values()) == 3
    # A strategy with callbacks of its own: one by one, on the plain path, said once.
    reason = "plain: strategy 'scheduled' changes its loss or batches during training"
    assert sum(p == reason for p in paths.values()) == 3
    assert sum("changes its loss" in line for line in lines) == 1
    assert any(line.startswith("3 runs trained side by side") for line in lines)
    # HParams are written for every run; a rerun skips every finished run.
    runs_dir = sweep.runs_dir(str(tmp_path / "grid"))
    for name in paths:
        assert any(f.endswith(".hparams") for f in os.listdir(os.path.join(runs_dir, name))), name
    again = runner.run_grid(spec, str(tmp_path / "grid"), executor="inline", side_by_side=3, log=lines.append)
    assert again.skipped == 6 and not again.outcomes
    # The grid's side-by-side runs are the runs the one-by-one grid makes (same names, same numbers).
    packed_only = sweep.make_spec({**TINY, "steps": 16}, {"strategy": ("none",), "seed": (0, 1, 2)})
    alone = runner.run_grid(packed_only, str(tmp_path / "alone"), executor="inline", side_by_side=1, warm=False,
                            log=lambda _: None)  # fmt: skip
    assert {o.path for o in alone.outcomes} == {"plain: warm runs off"}
    for name, path in paths.items():
        if path.startswith("side by side"):
            assert_same_run(os.path.join(runs_dir, name), os.path.join(sweep.runs_dir(str(tmp_path / "alone")), name))


def test_a_pack_with_bad_input_fails_run_by_run_with_one_line_each(tmp_path):
    spec = sweep.make_spec({**TINY, "batch_size": 5000}, {"seed": (0, 1)})
    lines = []
    outcome = runner.run_grid(spec, str(tmp_path / "grid"), executor="inline", side_by_side=2, log=lines.append)
    assert len(outcome.failed) == 2
    for failed in outcome.failed:
        assert failed.error.startswith("UserInputError: batch_size=5000 is larger than the training split")
        assert failed.note.startswith("side by side failed (UserInputError: batch_size=5000")
    assert sum("did not train side by side" in line for line in lines) == 1
    assert not runs.finished_runs(sweep.runs_dir(str(tmp_path / "grid")))


@pytest.mark.parametrize("name", sorted(strategies.names(strategies.SINGLE_LABEL)))
def test_the_interleaved_pipeline_gives_each_replica_the_batches_of_its_own_run(name):
    """Every strategy's pipeline built once with the order seed as a tensor yields, per replica, the batches its
    one-run pipeline (seeded by a Python int) yields; zipped with another data seed's pipeline too."""
    config = ExperimentConfig.from_flat({**TINY, "strategy": name, "num_classes": 3, "imbalance_ratio": 10.0})
    members = []
    for i, (seed, data_seed) in enumerate([(4, 0), (9, 0), (5, 3)]):
        run = config.replace(seed=seed, data_seed=data_seed)
        data, target = experiment.load_data(run, None)
        setup = experiment.setup(run, data, target, None, pipeline=False)
        loss = strategies.build_loss(setup.strategy, setup.ctx)
        members.append(replicas.Member(i, run, data, target, setup, loss, replicas.loss_key(loss, run, data)))
    stacked = list(replicas.stacked_dataset(members, None).take(6).as_numpy_iterator())
    for r, member in enumerate(members):
        for batch, expected in zip(stacked, _own_batches(member, 6), strict=True):
            assert len(batch) == 3  # weights of 1 where the strategy has none: one element structure for any pack
            for part, want in zip(batch, expected, strict=True):
                np.testing.assert_array_equal(part[r], want)


def _own_batches(member, count):
    """The first batches of a member's one-run pipeline, with weights of 1 where its strategy has none."""
    own = strategies.build_pipeline(member.setup.strategy, member.data.train.x, member.data.train.y, member.setup.ctx)
    return [b if len(b) == 3 else (*b, np.ones(b[1].shape, np.float32)) for b in own.take(count).as_numpy_iterator()]


@pytest.mark.parametrize(
    "extra",
    [
        # A last evaluation before a full interval, gradients due at steps that fall inside calls, tau > 0.
        dict(strategy="upsample", steps=30, eval_every=8, gradient_every_n_steps=3, posthoc_adjustment_tau=1.0),
        # One call per evaluation, Adam, composition off.
        dict(
            strategy="class_weight",
            steps=20,
            eval_every=20,
            gradient_every_n_steps=7,
            log_composition=False,
            optimizer="adam",
            learning_rate=0.01,
        ),  # fmt: skip
    ],
)
def test_budgets_intervals_and_settings_that_do_not_divide_evenly(tmp_path, extra):
    def configs(sub):
        return [
            ExperimentConfig.from_flat(
                {**TINY, **extra, "seed": s, "output_dir": str(tmp_path / sub), "run_name": f"r{s}"}
            )  # fmt: skip
            for s in (0, 4)
        ]

    results = side_by_side.run_pack(configs("pack"), log=None)
    assert not isinstance(results, str), results
    for config, result in zip(configs("one"), results, strict=True):
        assert_same_run(result.run_dir, experiment.run(config, log=None).run_dir)


@pytest.mark.parametrize(
    "loss",
    [
        keras.losses.BinaryCrossentropy(),
        keras.losses.BinaryCrossentropy(reduction="sum"),
        keras.losses.BinaryCrossentropy(reduction="mean_with_sample_weight"),
    ],
    ids=lambda loss: loss.reduction,
)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_each_replica_reduces_its_loss_as_the_keras_loss_reduces_its_batch(loss, weighted):
    """`rows.reduce_loss` over a leading replica axis gives each replica's `Loss.__call__` bitwise, and its class parts
    (`rows.class_losses`) sum to it."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=(3, 8)).astype(np.float32)
    p = rng.uniform(0.05, 0.95, size=(3, 8)).astype(np.float32)
    weights = rng.uniform(0.5, 2.0, size=(3, 8)).astype(np.float32) if weighted else None
    values = loss.call(tf.reshape(y, [-1]), tf.reshape(p, [-1, 1]))
    reduced, weighted_values, divisor = rows.reduce_loss(loss.reduction, tf.reshape(values, [3, 8]), weights)
    for r in range(3):
        expected = loss(y[r], p[r, :, None], sample_weight=None if weights is None else weights[r])
        np.testing.assert_array_equal(reduced[r].numpy(), expected.numpy())
    codes = tf.fill([3], rows.REDUCTION_CODES[loss.reduction])
    by_code = rows.reduce_loss_by_code(codes, tf.reshape(values, [3, 8]), weights)
    for got, want in zip(by_code, (reduced, weighted_values, divisor), strict=True):
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    one_hot = tf.one_hot(tf.cast(y, tf.int32), 2)
    parts = rows.class_losses(weighted_values, one_hot, divisor)
    np.testing.assert_allclose(tf.reduce_sum(parts, axis=-1).numpy(), reduced.numpy(), rtol=1e-6)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_replicas_of_different_reductions_reduce_in_one_computation_each_as_its_keras_loss(weighted):
    """`rows.reduce_loss_by_code` with a reduction per replica gives each replica its own Keras loss's value
    bitwise; weights of 1 give the unweighted value."""
    rng = np.random.default_rng(1)
    reductions = ["sum_over_batch_size", "mean_with_sample_weight", "sum", "mean"]
    y = rng.integers(0, 2, size=(4, 8)).astype(np.float32)
    p = rng.uniform(0.05, 0.95, size=(4, 8)).astype(np.float32)
    weights = rng.uniform(0.5, 2.0, size=(4, 8)).astype(np.float32) if weighted else np.ones((4, 8), np.float32)
    values = keras.losses.BinaryCrossentropy().call(tf.reshape(y, [-1]), tf.reshape(p, [-1, 1]))
    codes = tf.constant([rows.REDUCTION_CODES[r] for r in reductions])
    reduced, _, _ = rows.reduce_loss_by_code(codes, tf.reshape(values, [4, 8]), weights)
    for r, reduction in enumerate(reductions):
        loss = keras.losses.BinaryCrossentropy(reduction=reduction)
        expected = loss(y[r], p[r, :, None], sample_weight=weights[r] if weighted else None)
        np.testing.assert_array_equal(reduced[r].numpy(), expected.numpy(), err_msg=reduction)


def _members(config, seeds):
    members = []
    for i, (seed, data_seed) in enumerate(seeds):
        run = config.replace(seed=seed, data_seed=data_seed)
        data, target = experiment.load_data(run, None)
        setup = experiment.setup(run, data, target, None, pipeline=False)
        loss = strategies.build_loss(setup.strategy, setup.ctx)
        members.append(replicas.Member(i, run, data, target, setup, loss, replicas.loss_key(loss, run, data)))
    return members


@pytest.mark.parametrize("name", ["class_weight", "upsample", "stratified"])
def test_a_kept_pipeline_gives_the_next_packs_replicas_the_batches_of_their_own_runs(name):
    """A stacked pipeline kept between packs (`replicas.Pipelines`) reads its order seeds from variables: the
    second pack, with other seeds, gets the same pipeline object and each replica its own run's batches."""
    config = ExperimentConfig.from_flat({**TINY, "strategy": name, "num_classes": 3, "imbalance_ratio": 10.0})
    kept = replicas.Pipelines()
    first = replicas.stacked_dataset(_members(config, [(4, 0), (9, 0), (5, 3)]), None, kept)
    list(first.take(2).as_numpy_iterator())
    members = _members(config, [(7, 0), (2, 0), (8, 3)])
    second = replicas.stacked_dataset(members, None, kept)
    assert second is first
    stacked = list(second.take(4).as_numpy_iterator())
    for r, member in enumerate(members):
        for batch, expected in zip(stacked, _own_batches(member, 4), strict=True):
            for part, want in zip(batch, expected, strict=True):
                np.testing.assert_array_equal(part[r], want)


def test_data_seeds_that_give_equal_training_arrays_share_a_data_key():
    config = ExperimentConfig.from_flat(TINY)
    data = [experiment.load_data(config.replace(data_seed=s), None)[0] for s in (0, 0, 1)]
    keys = replicas.data_keys(data)
    assert data[0] is not data[1] and keys[0] == keys[1] != keys[2]
