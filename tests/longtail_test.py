"""Long-tail profiles, subsampling to a profile and head/medium/tail groups."""

import dataclasses
import os
import re
import shlex

import numpy as np
import pytest

from imbal_keras.data import longtail
from imbal_keras.errors import UserInputError


def test_cifar10_lt_counts():
    # The CIFAR-10-LT training counts at rho = 100 and 10 of Cao et al. (2019).
    assert longtail.profile_counts("exponential", 10, 100, 5000).tolist() == [
        5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50,
    ]  # fmt: skip
    assert longtail.profile_counts("exponential", 10, 10, 5000).tolist() == [
        5000, 3871, 2997, 2320, 1796, 1391, 1077, 834, 645, 500,
    ]  # fmt: skip


@pytest.mark.parametrize(("k", "rho"), [(2, 99), (3, 4), (7, 50.0), (100, 100)])
def test_exponential_profile_by_formula(k, rho):
    counts = longtail.profile_counts("exponential", k, rho, 1000)
    expected = [int(1000 * rho ** (-c / (k - 1))) for c in range(k)]
    assert counts.tolist() == expected
    assert counts[0] == 1000 and counts[-1] == int(1000 / rho)
    assert (np.diff(counts) <= 0).all()


@pytest.mark.parametrize(("k", "expected"), [(4, [200, 200, 2, 2]), (5, [200, 200, 2, 2, 2]), (2, [200, 2])])
def test_step_profile(k, expected):
    assert longtail.profile_counts("step", k, 100, 200).tolist() == expected


def test_rho_1_is_balanced():
    assert longtail.profile_counts("exponential", 4, 1, 30).tolist() == [30] * 4


def test_subsample_reaches_the_profile_exactly_and_is_seeded():
    labels = np.repeat(np.arange(4), 50)[np.random.default_rng(0).permutation(200)]
    counts = longtail.profile_counts("exponential", 4, 10, 40)  # [40, 18, 8, 4]
    kept = longtail.subsample_to_profile(labels, counts, seed=3)
    assert np.bincount(labels[kept], minlength=4).tolist() == counts.tolist() == [40, 18, 8, 4]
    assert len(np.unique(kept)) == len(kept) and (np.diff(kept) > 0).all()
    np.testing.assert_array_equal(kept, longtail.subsample_to_profile(labels, counts, seed=3))
    assert not np.array_equal(kept, longtail.subsample_to_profile(labels, counts, seed=4))


def test_subsample_picks_every_example_of_a_class_equally_often():
    # Keeping 5 of 20 examples: each is kept with probability 1/4; over 400 seeds about 100 times (binomial).
    labels = np.r_[np.zeros(20, np.int64), np.ones(20, np.int64)]
    hits = np.zeros(40)
    for seed in range(400):
        hits[longtail.subsample_to_profile(labels, [20, 5], seed=seed)] += 1
    assert (hits[:20] == 400).all()
    assert np.abs(hits[20:] - 100).max() < 4.5 * np.sqrt(400 * 0.25 * 0.75)


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ([500, 299, 179, 107, 64, 38, 23, 13, 8, 5], ["head"] * 3 + ["medium"] * 4 + ["tail"] * 3),
        ([5, 500, 13, 299], ["tail", "head", "medium", "medium"]),  # ranks, not positions
        ([90, 10], ["head", "tail"]),
        ([4, 4, 4], ["head", "medium", "tail"]),  # ties: lower class id ranks first
    ],
)
def test_groups_by_thirds(counts, expected):
    assert list(longtail.class_groups(counts)) == expected


def test_groups_by_shots():
    groups = longtail.class_groups([5000, 101, 100, 20, 19, 1], rule="shots")
    assert list(groups) == ["head", "head", "medium", "medium", "tail", "tail"]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: longtail.profile_counts("linear", 10, 100, 500), r"^profile must be one of exponential, step. "
         r"Received: profile='linear'$"),
        (lambda: longtail.profile_counts("step", 1, 100, 500), r"^num_classes must be an integer >= 2. "
         r"Received: num_classes=1$"),
        (lambda: longtail.profile_counts("step", 10, 0.5, 500), r"^imbalance_ratio must be >= 1. "
         r"Received: imbalance_ratio=0.5$"),
        (lambda: longtail.profile_counts("exponential", 10, 1000, 500), r"^imbalance_ratio=1000 with n_max=500 "
         r"leaves class 9 with no example"),
        (lambda: longtail.subsample_to_profile([0, 1, 2], [1, 1], seed=0), r"^labels must be class ids 0..1. "
         r"Received: a label 2$"),
        (lambda: longtail.subsample_to_profile([0, 0, 1, 1], [1, 3], seed=0), r"^counts asks for 3 examples of "
         r"class 1, which has 2 \(the data cannot reach the profile\). Received: counts=\[1, 3\]$"),
        (lambda: longtail.subsample_to_profile([0, 0, 0], [1, 1], seed=0), r"^counts asks for 1 examples of "
         r"class 1, which has 0"),
        (lambda: longtail.subsample_to_profile([0, 1], [1], seed=0), r"^counts must be integers >= 1, one per "
         r"class \(K >= 2\). Received: counts=\[1\]$"),
        (lambda: longtail.class_groups([10, 0, 3]), r"^train_counts must be >= 1 for every class; class 1 has 0"),
        (lambda: longtail.class_groups([10]), r"^train_counts must have one count per class, K >= 2"),
        (lambda: longtail.class_groups([10, 3], rule="median"), r"^rule must be one of thirds, shots"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_naming_the_argument(call, message):
    with pytest.raises(UserInputError, match=message):
        call()


# The long-tail strategies, as registered (importing the family registers them).
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import imbal_keras.strategies.long_tail  # noqa: E402, F401
from imbal_keras import losses, strategies  # noqa: E402
from imbal_keras.data.shares import progressive_shares  # noqa: E402

LONG_TAIL = ("focal", "class_balanced", "logit_adjusted", "ldam", "sqrt_sampling", "progressive_sampling")
COUNTS = np.array([300, 60, 12])


def _long_tail_arrays():
    y = np.repeat(np.arange(3), COUNTS).astype(np.int64)
    x = np.c_[np.arange(len(y)), np.ones(len(y))].astype(np.float32)
    return x, y


def _ctx(*, total_steps=200, seed=1, batch_size=16, **params):
    return strategies.StrategyContext(
        class_counts=COUNTS,
        target_distribution=np.full(3, 1 / 3),
        batch_size=batch_size,
        seed=seed,
        params=params,
        total_steps=total_steps,
        shuffle_buffer=64,
    )


def test_long_tail_strategies_are_registered_with_references():
    for name in LONG_TAIL:
        strategy = strategies.get(name)
        assert strategy.reference and strategy.summary and len(strategy.summary) <= 120
        for param in strategy.params:
            assert strategies.all_params()[param.name] is param or strategies.all_params()[param.name] == param


@pytest.mark.parametrize("form", ["in_memory", "streaming"])
@pytest.mark.parametrize("name", LONG_TAIL)
def test_batches_are_rows_of_the_input_with_the_documented_share(name, form):
    x, y = _long_tail_arrays()
    ctx = _ctx()
    if form == "in_memory":
        ds = strategies.build_pipeline(name, x, y, ctx)
    else:
        ds = strategies.build_stream(name, tf.data.Dataset.from_tensor_slices((x, y)), ctx)
    assert ds.element_spec[0] == tf.TensorSpec((16, 2), tf.float32)
    # In memory labels become int32 (pipelines._labels); streamed labels keep the input's dtype.
    assert ds.element_spec[1] == tf.TensorSpec((16,), tf.int32 if form == "in_memory" else tf.int64)
    batches = [tuple(t.numpy() for t in b) for b in ds.take(ctx.total_steps)]
    labels = np.concatenate([b[1] for b in batches])
    for b in batches:
        np.testing.assert_array_equal(y[b[0][:, 0].astype(int)], b[1])
    expected = strategies.get(name).expected_batch_share(ctx)
    observed = np.bincount(labels, minlength=3) / len(labels)
    # 4.5 binomial sigmas; natural batches are drawn without replacement within a pass, so less spread.
    assert (np.abs(observed - expected) < 4.5 * np.sqrt(expected * (1 - expected) / len(labels))).all(), observed


def test_class_balanced_carries_the_effective_number_weights():
    x, y = _long_tail_arrays()
    ctx = _ctx(beta=0.99)
    _, by, w = (t.numpy() for t in next(iter(strategies.build_pipeline("class_balanced", x, y, ctx))))
    np.testing.assert_allclose(w, losses.class_balanced_weights(COUNTS, 0.99)[by], rtol=1e-6)
    assert isinstance(strategies.build_loss("class_balanced", ctx), keras.losses.SparseCategoricalCrossentropy)
    focal = strategies.build_loss("class_balanced", _ctx(base_loss="focal", gamma=1.0))
    assert isinstance(focal, losses.FocalLoss) and focal.gamma == 1.0 and focal.alpha is None


def test_losses_take_the_declared_parameters():
    focal = strategies.build_loss("focal", _ctx(gamma=0.5, focal_alpha="inverse_frequency"))
    assert focal.gamma == 0.5
    np.testing.assert_allclose(focal.alpha, COUNTS.sum() / (3 * COUNTS))
    assert strategies.build_loss("focal", _ctx()).alpha is None
    adjusted = strategies.build_loss("logit_adjusted", _ctx(tau=0.5))
    assert adjusted.tau == 0.5
    np.testing.assert_allclose(adjusted.prior, COUNTS / COUNTS.sum())
    drw = strategies.build_loss("ldam", _ctx(total_steps=50, max_margin=0.3, ldam_scale=2.0, beta=0.9))
    assert drw.switch_step == 40 and not drw.normalize
    np.testing.assert_allclose(drw.loss.margins, 0.3 * (12 / COUNTS) ** 0.25)
    assert drw.loss.scale == 2.0
    np.testing.assert_allclose(drw.class_weights, losses.class_balanced_weights(COUNTS, 0.9))
    assert strategies.build_loss("ldam", _ctx(weight_reduction="mean_with_sample_weight")).normalize
    assert strategies.build_loss("ldam", _ctx(drw_fraction=1.0, total_steps=0)).switch_step > 10**15


def test_training_distribution_is_where_the_loss_wants_the_bias():
    np.testing.assert_allclose(strategies.get("logit_adjusted").training_distribution(_ctx()), [1 / 3] * 3, atol=2e-3)
    weighted = COUNTS * losses.class_balanced_weights(COUNTS, 0.9)
    np.testing.assert_allclose(
        strategies.get("class_balanced").training_distribution(_ctx(beta=0.9)), weighted / weighted.sum(), atol=1e-4
    )
    focal = strategies.get("focal").training_distribution(_ctx())
    assert focal[2] > COUNTS[2] / COUNTS.sum()  # focal's constant optimum is flatter than the prior
    np.testing.assert_allclose(strategies.get("sqrt_sampling").training_distribution(_ctx()), [0.6070858, 0.2714970,
                               0.1214172], rtol=1e-6)  # fmt: skip


def test_progressive_expected_share_is_the_budget_average():
    # p(t) is linear in t: the mean over t = 0..T-1 is p((T - 1) / 2).
    ctx = _ctx(total_steps=5)
    by_hand = progressive_shares(COUNTS, np.arange(5), 5).mean(axis=0)
    np.testing.assert_allclose(strategies.get("progressive_sampling").expected_batch_share(ctx), by_hand)


def test_ldam_switches_to_class_balanced_weights_at_its_step_in_fit():
    # lr 0 and one repeated batch: only the DRW switch changes the loss, at step round(0.5 * 6) = 3.
    ctx = _ctx(total_steps=6, drw_fraction=0.5, beta=0.9)
    x = np.random.default_rng(0).normal(size=(6, 2)).astype(np.float32)
    y = np.array([0, 0, 0, 1, 1, 2])
    keras.utils.set_random_seed(0)
    net = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3, activation="softmax")])
    loss = strategies.build_loss("ldam", ctx)
    net.compile(optimizer=keras.optimizers.SGD(0.0), loss=loss)
    history = net.fit(
        tf.data.Dataset.from_tensors((x, y)).repeat(),
        steps_per_epoch=1,
        epochs=6,
        verbose=0,
        shuffle=False,
        callbacks=strategies.build_callbacks("ldam", ctx),
    )
    per_example = loss.loss.call(tf.constant(y, tf.float32), net(x)).numpy()
    weights = losses.class_balanced_weights(COUNTS, 0.9)[y]
    expected = [per_example.mean()] * 3 + [np.mean(weights * per_example)] * 3
    np.testing.assert_allclose(history.history["loss"], expected, rtol=1e-5)


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("class_balanced", {"beta": 1.0}, r"^beta must be in \(0, 1\). Received: beta=1.0$"),
        ("ldam", {"beta": 0}, r"^beta must be in \(0, 1\). Received: beta=0$"),
        ("logit_adjusted", {"tau": -1}, r"^tau must be >= 0. Received: tau=-1$"),
        ("ldam", {"drw_fraction": 1.5}, r"^drw_fraction must be in \[0, 1\]. Received: drw_fraction=1.5$"),
        ("sqrt_sampling", {"sampling_q": -0.5}, r"^sampling_q must be in \[0, 1\]. Received: sampling_q=-0.5$"),
        ("focal", {"gamma": -1}, r"^gamma must be >= 0. Received: gamma=-1$"),
        ("focal", {"focal_alpha": "balanced"}, r"^focal_alpha must be one of none, inverse_frequency"),
    ],
)
def test_parameters_out_of_range_are_one_line(name, params, message):
    with pytest.raises(UserInputError, match=message):
        strategies.get(name).resolve_params(params)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda ctx: strategies.build_pipeline("progressive_sampling", *_long_tail_arrays(), ctx),
         r"^progressive_sampling moves over the run's step budget, which must be >= 1. Received: total_steps=0$"),
        (lambda ctx: strategies.build_loss("ldam", ctx),
         r"^drw_fraction=0.8 needs the run's step budget to place the switch. Received: total_steps=0$"),
    ],
    ids=["progressive_sampling", "ldam"],
)  # fmt: skip
def test_schedules_need_the_step_budget(build, message):
    with pytest.raises(UserInputError, match=message):
        build(_ctx(total_steps=0))


def test_a_class_without_examples_is_named():
    x, y = _long_tail_arrays()
    ctx = dataclasses.replace(_ctx(), class_counts=np.array([300, 0, 12]))
    with pytest.raises(UserInputError, match=r"class_counts must be >= 1 for every class sampled by class; class 1"):
        strategies.build_pipeline("sqrt_sampling", x, y, ctx)
    with pytest.raises(UserInputError, match=r"^class_counts must be > 0 for every class; class 1 has 0"):
        strategies.build_loss("ldam", ctx)


def _doc() -> str:
    with open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "long_tail.md")) as f:
        return f.read()


def test_docs_snippets_run_and_their_numbers_hold():
    scope = {}
    for block in re.findall(r"```python\n(.*?)```", _doc(), re.S):
        exec(block, scope)
    np.testing.assert_allclose(scope["ldam"].margins, [0.158, 0.281, 0.5], atol=5e-4)
    np.testing.assert_allclose(losses.class_balanced_weights(scope["counts"], 0.99), [0.126, 0.317, 2.557], atol=5e-4)
    np.testing.assert_allclose(
        losses.adjust_probabilities([[0.8, 0.15, 0.05]], scope["counts"]), [[0.110, 0.205, 0.685]], atol=5e-4
    )
    assert int(scope["model"].optimizer.iterations) == 12 and scope["drw"].switch_step == 8
    np.testing.assert_allclose(scope["shares"], [0.706, 0.223, 0.071], atol=5e-4)
    assert scope["xb"].shape == (16, 4)
    assert scope["balanced"].shape == (2, 3)
    assert isinstance(scope["loss"], losses.LogitAdjustedLoss) and scope["loss"].tau == 0.5
    assert np.bincount(scope["labels"][scope["keep"]]).tolist() == [100, 10, 10]


def test_docs_tables_match_the_registry():
    strategies_table = _doc().split("| strategy | changes | reference |")[1].split("\n\n")[0]
    assert re.findall(r"^\| `(\w+)` \|", strategies_table, re.M) == list(LONG_TAIL)
    table = _doc().split("<!-- long-tail-params")[1].split("<!-- end long-tail-params")[0]
    rows = re.findall(r"^\| `(\w+)` \| `(\w+)` \| (.*?) \| (.*?) \|", table, re.M)
    expected = [
        (name, p.name, str(p.default), p.valid_range()) for name in LONG_TAIL for p in strategies.get(name).params
    ]
    assert rows == expected


def test_docs_benchmark_commands_parse():
    from benchmarks import pipeline_throughput, streaming_memory

    blocks = re.findall(r"```bash\n(.*?)```", _doc(), re.S)
    throughput, memory = (b for b in blocks if "benchmarks." in b)
    commands = throughput.replace("\\\n", " ").strip().splitlines()
    assert len(commands) == 2
    for command in commands:
        assert shlex.split(command)[:3] == ["python", "-m", "benchmarks.pipeline_throughput"]
        args = pipeline_throughput._parse_args(shlex.split(command)[3:])
        assert set(args.only) <= set(strategies.names()) and args.rounds == 5
    assert shlex.split(memory)[:3] == ["python", "-m", "benchmarks.streaming_memory"]
    args = streaming_memory._parse_args(shlex.split(memory)[3:])
    assert args.rows == 2_000_000 and "sqrt_sampling" in args.pipelines
