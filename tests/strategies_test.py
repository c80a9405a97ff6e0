"""Contract tests run over every registered strategy, plus the exact formulas behind them."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from imbal_keras import losses, models, strategies
from imbal_keras.data.shares import class_weights, stratified_counts
from imbal_keras.errors import UserInputError

NUM_NEG, NUM_POS = 380, 20  # 1:19
BATCH = 16
NUM_BATCHES = 150


def _data(num_neg=NUM_NEG, num_pos=NUM_POS, dim=3):
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(num_neg, np.int32), np.ones(num_pos, np.int32)]
    # Feature 0 carries the example's index so tests can check which examples were drawn.
    x = np.c_[np.arange(len(y)), rng.normal(size=(len(y), dim - 1))].astype(np.float32)
    return x, y


def _ctx(counts, target=(0.5, 0.5), batch_size=BATCH, seed=7, normalization="mean_one"):
    return strategies.StrategyContext(
        class_counts=np.asarray(counts),
        target_distribution=np.asarray(target),
        batch_size=batch_size,
        seed=seed,
        params={"class_weight_normalization": normalization},
        total_steps=NUM_BATCHES,  # schedules (progressive sampling) run over the batches a test reads
    )


def _batches(name, x, y, ctx, n=NUM_BATCHES):
    ds = strategies.build_pipeline(name, x, y, ctx)
    return ds, [tuple(t.numpy() for t in b) for b in ds.take(n)]


@pytest.fixture(scope="module")
def data():
    return _data()


@pytest.fixture(scope="module", params=strategies.names("tabular"))
def drawn(request, data):
    x, y = data
    ctx = _ctx(np.bincount(y))
    ds, batches = _batches(request.param, x, y, ctx)
    return request.param, ctx, ds, batches


def test_registry_starts_with_the_textbook_strategies():
    assert strategies.names()[:6] == ["none", "class_weight", "upsample", "downsample", "rejection", "stratified"]


def test_unknown_strategy_lists_valid_names():
    with pytest.raises(UserInputError, match=r"^strategy must be one of none, class_weight, .*Received: strategy='x'"):
        strategies.get("x")


@pytest.mark.parametrize("name", strategies.names("tabular"))
def test_every_declared_parameter_is_valid_data(name):
    strategy = strategies.get(name)
    assert strategy.summary and len(strategy.summary.splitlines()) == 1
    for param in strategy.params:
        assert param.type in (int, float, str, bool) and param.help
        assert param.validate(param.default) == param.default
        assert strategies.all_params()[param.name] is param or strategies.all_params()[param.name] == param
    assert strategy.resolve_params({}) == {p.name: p.default for p in strategy.params}


@pytest.mark.parametrize(
    "param, value, message",
    [
        (strategies.Param("beta", float, 0.99, "b", low=0, high=1, low_inclusive=False, high_inclusive=False), 1.0,
         r"^beta must be in \(0, 1\)\. Received: beta=1\.0"),
        (strategies.Param("gamma", float, 2.0, "g", low=0), -1, r"^gamma must be >= 0\. Received: gamma=-1"),
        (strategies.Param("q", float, 0.5, "q", low=0, high=1), "x", r"^q must be a float\. Received: q='x'"),
        (strategies.Param("mode", str, "a", "m", choices=("a", "b")), "c", r"^mode must be one of a, b\. Received"),
        (strategies.Param("n", int, 1, "n", low=1), True, r"^n must be a int\. Received: n=True"),
    ],
)  # fmt: skip
def test_param_validation_names_the_parameter_and_value(param, value, message):
    with pytest.raises(UserInputError, match=message):
        param.validate(value)


def test_param_parse_from_text():
    assert strategies.Param("gamma", float, 2.0, "g").parse("0.5") == 0.5
    assert strategies.Param("on", bool, False, "o").parse("true") is True
    with pytest.raises(UserInputError, match=r"^gamma must be a float\. Received: gamma='two'"):
        strategies.Param("gamma", float, 2.0, "g").parse("two")


def test_a_parameter_declared_twice_must_mean_the_same():
    different = strategies.Param(
        "weight_reduction", str, "sum_over_batch_size", "other", choices=("sum_over_batch_size",)
    )
    with pytest.raises(ValueError, match="differs from its earlier declaration"):
        strategies.register(
            strategies.Strategy(
                name="_test_only",
                summary="x",
                params=(different,),
                pipeline=lambda x, y, ctx: None,
                training_distribution=lambda ctx: None,
                expected_batch_share=lambda ctx: None,
            )
        )
    assert "_test_only" not in strategies.names()


def test_resolve_params_refuses_a_parameter_the_strategy_does_not_declare():
    with pytest.raises(UserInputError, match=r"^weight_reduction does not apply to strategy 'none'"):
        strategies.get("none").resolve_params({"weight_reduction": "sum_over_batch_size"})


def test_element_spec_preserved(drawn):
    name, _, ds, _ = drawn
    x_spec, y_spec = ds.element_spec[:2]
    assert x_spec == tf.TensorSpec((BATCH, 3), tf.float32)
    assert y_spec == tf.TensorSpec((BATCH,), tf.int32)
    assert len(ds.element_spec) == (3 if strategies.get(name).uses_sample_weights else 2)


def test_labels_and_rows_come_from_the_input(drawn, data):
    _, _, _, batches = drawn
    x, y = data
    for b in batches:
        index = b[0][:, 0].astype(int)
        np.testing.assert_array_equal(b[1], y[index])  # each row keeps its own label
        np.testing.assert_array_equal(b[0], x[index])
        assert set(np.unique(b[1])) <= {0, 1}


def test_same_seed_same_stream_other_seed_other_stream(drawn, data):
    name, ctx, _, batches = drawn
    x, y = data
    _, again = _batches(name, x, y, ctx, n=20)
    for a, b in zip(batches[:20], again, strict=True):
        for u, v in zip(a, b, strict=True):
            np.testing.assert_array_equal(u, v)
    _, other = _batches(name, x, y, _ctx(ctx.class_counts, seed=ctx.seed + 1), n=20)
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(batches[:20], other, strict=True))


def test_seeded_pipeline_in_an_interleave_yields_each_seeds_own_stream(drawn, data):
    """`seeded_pipeline` builds inside a traced interleave, its seed a tensor, without AutoGraph on the builder:
    the g-th stream is the one `build_pipeline` gives with the g-th seed."""
    name, ctx, _, batches = drawn
    x, y = data
    seeds = [ctx.seed, ctx.seed + 5]
    pipeline = strategies.seeded_pipeline(name, x, y, ctx)
    streams = tf.data.Dataset.from_tensor_slices(np.asarray(seeds, np.int64)).interleave(
        lambda seed: pipeline(seed).take(20), cycle_length=1
    )
    read = [tuple(t.numpy() for t in b) for b in streams]
    _, other = _batches(name, x, y, _ctx(ctx.class_counts, seed=seeds[1]), n=20)
    for a, b in zip(read, [*batches[:20], *other], strict=True):
        for u, v in zip(a, b, strict=True):
            np.testing.assert_array_equal(u, v)


def test_batch_share_as_documented(drawn):
    name, ctx, _, batches = drawn
    positives = np.array([b[1].sum() for b in batches])
    expected = strategies.get(name).expected_batch_share(ctx)[1]
    if name == "stratified":
        # Exact: every batch holds round(B * 0.5) positives.
        assert (positives == 8).all()
        return
    # Others: the total over all batches is within a 6-sigma binomial band of the expected share.
    total = positives.sum()
    n = BATCH * len(batches)
    sigma = np.sqrt(n * expected * (1 - expected))
    assert abs(total - n * expected) <= 6 * sigma + 1, (name, total, n * expected)
    if name in ("upsample", "downsample", "rejection"):
        # Counts per batch vary like a binomial (the pass is shuffled as a whole), not like the natural stream.
        assert 0.4 * BATCH * 0.25 < positives.var() < 2.0 * BATCH * 0.25


def test_target_reached_for_rejection_and_downsample(data):
    x, y = data
    for name in ("rejection", "downsample"):
        _, batches = _batches(name, x, y, _ctx(np.bincount(y), target=(0.8, 0.2)), n=400)
        share = np.mean([b[1].mean() for b in batches])
        n = 400 * BATCH
        assert abs(share - 0.2) <= 4 * np.sqrt(0.2 * 0.8 / n), (name, share)


def test_upsample_keeps_every_example_each_pass():
    x, y = _data(num_neg=60, num_pos=4)
    # One pass at a balanced target draws all 60 negatives and 60 positives (each positive 15 times).
    ctx = _ctx([60, 4], batch_size=12)
    _, batches = _batches("upsample", x, y, ctx, n=10)
    drawn = np.concatenate([b[0][:, 0] for b in batches]).astype(int)
    counts = np.bincount(drawn, minlength=64)
    np.testing.assert_array_equal(counts[:60], np.ones(60))
    np.testing.assert_array_equal(counts[60:], np.full(4, 15))


def test_downsample_never_repeats_within_a_pass():
    x, y = _data(num_neg=60, num_pos=4)
    ctx = _ctx([60, 4], batch_size=8)  # one pass = 4 negatives + 4 positives
    _, batches = _batches("downsample", x, y, ctx, n=5)
    for b in batches:
        assert len(np.unique(b[0][:, 0])) == 8
        assert b[1].sum() == 4


def test_class_weight_batches_carry_the_formula_weights(data):
    x, y = data
    _, batches = _batches("class_weight", x, y, _ctx(np.bincount(y)), n=50)
    for _, labels, weights in batches:
        np.testing.assert_allclose(weights, np.where(labels == 1, 400 / (2 * 20), 400 / (2 * 380)), rtol=1e-6)


def test_class_weights_mean_one_formula():
    w = class_weights([99, 1], normalization="mean_one")
    np.testing.assert_allclose(w, [100 / (2 * 99), 100 / 2])
    assert np.isclose(np.dot(w, [99, 1]) / 100, 1.0)  # mean weight over the training data is 1


def test_class_weights_sum_to_num_classes_is_literal_002_198():
    np.testing.assert_allclose(class_weights([99, 1], normalization="sum_to_num_classes"), [0.02, 1.98])
    w3 = class_weights([10, 20, 70], normalization="sum_to_num_classes")
    assert np.isclose(w3.sum(), 3)
    np.testing.assert_allclose(w3 * [10, 20, 70], np.full(3, (w3 * [10, 20, 70])[0]))


def test_class_weights_reach_a_non_uniform_target():
    w = class_weights([90, 10], target_distribution=[0.7, 0.3], normalization="mean_one")
    mass = w * [90, 10]
    np.testing.assert_allclose(mass / mass.sum(), [0.7, 0.3])


@pytest.mark.parametrize(
    "reduction, expected",
    [
        # Per-example BCE: -log(1 - 0.2) for the negative, -log(0.6) for the positive, weights 0.5 and 3.
        ("sum_over_batch_size", (0.5 * -np.log(0.8) + 3 * -np.log(0.6)) / 2),
        ("mean_with_sample_weight", (0.5 * -np.log(0.8) + 3 * -np.log(0.6)) / 3.5),
    ],
)
def test_weight_reductions_give_hand_computed_losses(reduction, expected):
    loss = losses.cross_entropy(2, reduction=reduction)
    value = loss(np.array([0, 1]), np.array([[0.2], [0.6]], np.float32), sample_weight=np.array([0.5, 3.0]))
    np.testing.assert_allclose(float(value), expected, rtol=1e-5)


def test_stratified_counts_round_and_sum_to_batch():
    np.testing.assert_array_equal(stratified_counts(16, [0.5, 0.5]), [8, 8])
    np.testing.assert_array_equal(stratified_counts(16, [0.99, 0.01]), [16, 0])
    np.testing.assert_array_equal(stratified_counts(10, [0.22, 0.36, 0.42]), [2, 4, 4])
    assert stratified_counts(7, [1 / 3] * 3).sum() == 7


def test_stratified_exact_for_three_classes():
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(3), [50, 8, 2]).astype(np.int32)
    x = rng.normal(size=(60, 2)).astype(np.float32)
    ctx = _ctx(np.bincount(y), target=(0.5, 0.3, 0.2), batch_size=10)
    for _, labels in _batches("stratified", x, y, ctx, n=20)[1]:
        np.testing.assert_array_equal(np.bincount(labels, minlength=3), [5, 3, 2])


def test_training_distribution_sets_output_bias():
    ctx = _ctx([99, 1])
    np.testing.assert_allclose(strategies.get("none").training_distribution(ctx), [0.99, 0.01])
    for name in ("class_weight", "upsample", "downsample", "rejection", "stratified"):
        np.testing.assert_allclose(strategies.get(name).training_distribution(ctx), [0.5, 0.5], err_msg=name)
    np.testing.assert_allclose(models.output_bias([0.99, 0.01]), [np.log(0.01 / 0.99)])


def test_model_starts_at_the_training_prior():
    keras.utils.set_random_seed(0)
    model = models.build((3,), 2, hidden_units=(4,), training_distribution=[0.99, 0.01])
    bias = model.get_layer("output").bias.numpy()
    np.testing.assert_allclose(1 / (1 + np.exp(-bias)), [0.01], rtol=1e-5)


@pytest.mark.parametrize("name", ["upsample", "downsample", "rejection", "stratified"])
def test_target_share_for_absent_class_is_an_error(name):
    x, y = _data(num_neg=20, num_pos=0)
    ctx = _ctx([20, 0])
    with pytest.raises(UserInputError, match="class 1"):
        _batches(name, x, y, ctx, n=1)


# Dense and multi-label forms: one contract over every strategy that declares the kind.

DENSE_N, SIDE, DENSE_BATCH = 24, 8, 6


def _masks():
    """24 8x8 masks: class 1 (a 2x2 square) in a third of them, class 2 (one pixel) in a sixth; image i's pixel p
    is 1000 i + p, so a batch tells which example and which pixels it came from."""
    masks = np.zeros((DENSE_N, SIDE, SIDE), np.int32)
    masks[::3, 2:4, 2:4] = 1
    masks[1::6, 6, 5] = 2
    images = (1000 * np.arange(DENSE_N)[:, None, None] + np.arange(SIDE * SIDE).reshape(SIDE, SIDE)).astype(np.float32)
    return images[..., None], masks


def _dense_ctx(kind, counts, contains, seed=5, **params):
    return strategies.DenseContext(kind, np.asarray(counts), contains, batch_size=DENSE_BATCH, seed=seed, params=params)


def _dense_batches(name, x, y, ctx, n=60):
    return [tuple(t.numpy() for t in b) for b in strategies.build_dense_pipeline(name, x, y, ctx).take(n)]


@pytest.mark.parametrize("name", strategies.names("segmentation"))
def test_dense_stream_holds_crops_of_the_input_seeded(name):
    x, y = _masks()
    contains = np.stack([(y == c).any(axis=(1, 2)) for c in range(3)], axis=1)
    ctx = _dense_ctx("segmentation", np.bincount(y.ravel()), contains)
    batches = _dense_batches(name, x, y, ctx)
    crop = SIDE // 2 if name == "patches" else SIDE
    for batch in batches:
        images, labels = batch[0][..., 0].astype(int), batch[1]
        assert images.shape == labels.shape == (DENSE_BATCH, crop, crop)
        index, pixel = images // 1000, images % 1000
        np.testing.assert_array_equal(labels, y.reshape(DENSE_N, -1)[index, pixel])  # each pixel keeps its label
        assert len(batch) == (3 if name == "class_weight" else 2)
    again = _dense_batches(name, x, y, ctx, n=10)
    other = _dense_batches(name, x, y, _dense_ctx("segmentation", ctx.class_counts, contains, seed=6), n=10)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(batches, again, strict=False))
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(batches, other, strict=False))


@pytest.mark.parametrize("name", ["upsample", "downsample", "rejection", "stratified", "repeat_factor", "patches"])
def test_dense_resampling_raises_the_share_of_examples_holding_the_rarest_class(name):
    x, y = _masks()
    contains = np.stack([(y == c).any(axis=(1, 2)) for c in range(3)], axis=1)
    ctx = _dense_ctx("segmentation", np.bincount(y.ravel()), contains, foreground_share=0.5, repeat_threshold=0.5)
    batches = _dense_batches(name, x, y, ctx, n=200)
    held = np.concatenate([(b[1] == 2).any(axis=(1, 2)) for b in batches])
    # Presence resampling: the rarest-class group is one of three equal groups (background only, class 1, class 2).
    # Repeat factors: sqrt(0.5 / f_c) for f = 1/6 (class 2), 1/3 (class 1), 1 (background): 4 of 24 images weigh
    # sqrt(3), 8 weigh sqrt(1.5), 12 weigh 1. Patches (4x4 of 8x8): half the crops are forced onto one of the 12
    # images holding class 1 or 2 (4 hold class 2, and the crop is centred on its pixel); the other half take a
    # uniform image (1/6 hold class 2) and a uniform corner, which covers pixel (6, 5) for 2 of 5 rows and 3 of 5
    # columns.
    expected = {
        "repeat_factor": 4 * np.sqrt(3) / (4 * np.sqrt(3) + 8 * np.sqrt(1.5) + 12),
        "patches": 0.5 * 4 / 12 + 0.5 * (1 / 6) * (2 / 5) * (3 / 5),
    }.get(name, 1 / 3)
    n = len(held)
    assert abs(held.mean() - expected) <= 5 * np.sqrt(expected * (1 - expected) / n), (name, held.mean(), expected)
    assert expected > contains[:, 2].mean()  # more than the natural share, 1/6


@pytest.mark.parametrize("name", strategies.names("multilabel"))
def test_multilabel_stream_keeps_each_examples_labels(name):
    labels = np.zeros((30, 4), np.int32)
    labels[::2, 0] = 1
    labels[::5, 1] = 1
    labels[::15, 3] = 1
    x = np.arange(30, dtype=np.float32)[:, None]
    ctx = _dense_ctx("multilabel", labels.sum(axis=0), labels.astype(bool))
    for batch in _dense_batches(name, x, labels, ctx, n=30):
        np.testing.assert_array_equal(batch[1], labels[batch[0][:, 0].astype(int)])
        if name == "class_weight":  # positives weigh n_neg / n_pos of their label, negatives 1
            ratio = (30 - labels.sum(axis=0)) / np.maximum(labels.sum(axis=0), 1)
            np.testing.assert_allclose(batch[2], np.where(batch[1] == 1, ratio, 1.0), rtol=1e-6)


@pytest.mark.parametrize(
    "method, expected",
    [("inverse", [1 / 90, 1 / 10]), ("inverse_sqrt", [1 / np.sqrt(90), 1 / np.sqrt(10)])],
)
def test_single_label_weight_method_scales_the_target_by_the_frequency_weight(method, expected):
    ctx = strategies.StrategyContext(np.array([90, 10]), np.array([0.5, 0.5]), 16, 0, {"weight_method": method})
    w = strategies.get("class_weight").loss_weights(ctx)
    np.testing.assert_allclose(w / w[0], np.asarray(expected) / expected[0])
    assert np.isclose(w @ [90, 10], 100)  # mean_one: the mean example weight is 1


def test_dense_only_strategies_refuse_single_label_data_in_one_line():
    x, y = _data()
    with pytest.raises(UserInputError, match=r"^strategy 'patches' does not apply to single-label data \(it applies"):
        strategies.build_pipeline("patches", x, y, _ctx(np.bincount(y)))
