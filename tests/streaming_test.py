"""File-backed pipelines over a tf.data.Dataset of (x, y) examples: shares, provenance, seeding, bad input."""

import threading

import numpy as np
import pytest
import tensorflow as tf

import imbal_keras.strategies.long_tail  # noqa: F401  (registers the class-aware samplers)
from imbal_keras import strategies
from imbal_keras.data import pipelines, streaming
from imbal_keras.data.shares import class_weights, power_shares
from imbal_keras.errors import UserInputError

NUM_NEG, NUM_POS = 285, 15  # 1:19


def _arrays():
    y = np.r_[np.zeros(NUM_NEG, np.int64), np.ones(NUM_POS, np.int64)]
    # Feature 0 is the row number, so a batch shows which rows it drew.
    x = np.c_[np.arange(len(y)), np.ones(len(y))].astype(np.float32)
    return x, y


def _dataset():
    return tf.data.Dataset.from_tensor_slices(_arrays())


def _take(ds, n):
    return [tuple(t.numpy() for t in b) for b in ds.take(n)]


def _build(name, *, seed=3, batch_size=8, dataset=None, initial=(NUM_NEG, NUM_POS), target=(0.5, 0.5)):
    ctx = strategies.StrategyContext(
        class_counts=np.asarray(initial),
        target_distribution=np.asarray(target),
        batch_size=batch_size,
        seed=seed,
        total_steps=100,
        shuffle_buffer=64,
    )
    return strategies.build_stream(name, _dataset() if dataset is None else dataset, ctx)


@pytest.fixture(scope="module")
def tfrecord_shards(tmp_path_factory):
    """The same 300 examples in 3 TFRecord shards."""
    folder = tmp_path_factory.mktemp("shards")
    x, y = _arrays()
    paths = []
    for shard, rows in enumerate(np.array_split(np.arange(len(y)), 3)):
        path = str(folder / f"train-{shard}.tfrecord")
        with tf.io.TFRecordWriter(path) as writer:
            for i in rows:
                feature = {
                    "x": tf.train.Feature(float_list=tf.train.FloatList(value=x[i])),
                    "y": tf.train.Feature(int64_list=tf.train.Int64List(value=[y[i]])),
                }
                writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
        paths.append(path)
    return paths


def _read_tfrecords(paths):
    spec = {"x": tf.io.FixedLenFeature([2], tf.float32), "y": tf.io.FixedLenFeature([], tf.int64)}

    def parse(record):
        example = tf.io.parse_single_example(record, spec)
        return example["x"], example["y"]

    return tf.data.TFRecordDataset(paths).map(parse)


def test_count_classes_reads_one_pass(tfrecord_shards):
    np.testing.assert_array_equal(streaming.count_classes(_read_tfrecords(tfrecord_shards), 2), [NUM_NEG, NUM_POS])


def test_count_classes_rejects_out_of_range_labels():
    with pytest.raises(UserInputError, match=r"class ids 0..0. Received a label \[1\]"):
        streaming.count_classes(_dataset(), 1)


@pytest.mark.parametrize("name", strategies.names("tabular"))
def test_every_strategy_streams_rows_with_their_own_labels(name):
    batches = _take(_build(name), 30)
    ds = _build(name)
    assert ds.element_spec[0] == tf.TensorSpec((8, 2), tf.float32)
    assert ds.element_spec[1] == tf.TensorSpec((8,), tf.int64)
    x, y = _arrays()
    for batch in batches:
        np.testing.assert_array_equal(y[batch[0][:, 0].astype(int)], batch[1])


@pytest.mark.parametrize("name", strategies.names("tabular"))
def test_same_seed_same_batches_other_seed_other_batches(name):
    first, again, other = (_take(_build(name, seed=s), 20) for s in (3, 3, 4))
    for a, b in zip(first, again, strict=True):
        for ta, tb in zip(a, b, strict=True):
            np.testing.assert_array_equal(ta, tb)
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(first, other, strict=True))


def test_stratified_batches_hold_exact_counts_and_cycle_the_cached_class():
    # 4 of 8 are positives; 15 positives: every 15 consecutive positive draws are a permutation (checked per 30).
    batches = _take(_build("stratified"), 15)
    assert [int(b[1].sum()) for b in batches] == [4] * 15
    positives = np.concatenate([b[0][b[1] == 1, 0] for b in batches]).astype(int)
    counts = np.bincount(positives - NUM_NEG, minlength=NUM_POS)
    np.testing.assert_array_equal(counts, [4] * NUM_POS)


def test_upsample_reads_every_majority_example_once_per_pass(tfrecord_shards):
    ds = _build("upsample", dataset=_read_tfrecords(tfrecord_shards), batch_size=8)
    # One window is 4096 rows (512 batches of 8) with exactly 2048 of each class. The negatives are streamed in
    # input order and shuffled in whole windows of 64 rows, so they are the first 2048 streamed rows:
    # 2048 = 285 * 7 + 53, i.e. 7 whole passes and rows 0..52 once more.
    batches = _take(ds, 512)
    labels = np.concatenate([b[1] for b in batches])
    rows = np.concatenate([b[0][:, 0] for b in batches]).astype(int)
    assert labels.sum() == 2048
    negatives = np.bincount(rows[labels == 0], minlength=NUM_NEG)
    np.testing.assert_array_equal(negatives, np.where(np.arange(NUM_NEG) < 53, 8, 7))
    # Batches vary around B/2 = 4 positives (hypergeometric inside the window), unlike stratified.
    assert len({int(b[1].sum()) for b in batches}) > 3


def test_rejection_share_within_binomial_bounds():
    batches = _take(_build("rejection", batch_size=50), 40)
    share = np.mean(np.concatenate([b[1] for b in batches]))
    assert abs(share - 0.5) < 4 * np.sqrt(0.25 / 2000)


def test_weighted_stream_carries_class_weights():
    (batch,) = _take(_build("class_weight", batch_size=64), 1)
    weights = class_weights([NUM_NEG, NUM_POS], [0.5, 0.5])
    np.testing.assert_allclose(batch[2], weights[batch[1]])
    np.testing.assert_allclose(weights, [300 * 0.5 / 285, 300 * 0.5 / 15])


@pytest.mark.parametrize("name", ["upsample", "downsample", "rejection", "stratified"])
def test_initial_distribution_without_a_target_class_fails_naming_it(name):
    with pytest.raises(
        UserInputError, match=r"asks for class 1, which has no examples.*initial_distribution=\[300.0, 0.0\]"
    ):
        _build(name, initial=(300, 0))


def _within(seconds, fn):
    """fn()'s result or exception; fails instead of waiting longer than `seconds` (a stream that hangs)."""
    outcome = {}

    def target():
        try:
            outcome["value"] = fn()
        except Exception as e:  # noqa: BLE001 - handed back to the test thread
            outcome["error"] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"still running after {seconds} s: the stream hangs instead of failing")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


@pytest.mark.parametrize("name", ["upsample", "downsample", "rejection", "stratified"])
def test_input_without_a_target_class_fails_after_one_scan(name):
    # The counts claim 15 positives, the input has none: without the scan rejection would wait for them.
    negatives_only = _dataset().filter(lambda x, y: y == 0)
    with pytest.raises(UserInputError, match=r"class 1 has no examples in the input dataset.*counted \[285, 0\]"):
        _within(60, lambda: _take(_build(name, dataset=negatives_only, target=(0.0, 1.0)), 1))


def test_rejection_scan_stops_once_every_target_class_is_seen():
    # Only the first 65,536-row scan block is read, so an input whose tail would fail the label check builds.
    tail = tf.data.Dataset.from_tensor_slices((np.zeros((1, 2), np.float32), np.array([7], np.int64)))
    big = _dataset().repeat(300).concatenate(tail)  # 90,000 good rows, then a bad label
    (batch,) = _within(60, lambda: _take(_build("rejection", dataset=big), 1))
    assert set(batch[1].tolist()) <= {0, 1}
    with pytest.raises(UserInputError, match=r"Received a label \[7\]"):
        streaming.count_classes(big, 2)


@pytest.mark.parametrize("name", ["upsample", "downsample", "rejection", "stratified"])
def test_infinite_input_is_rejected_instead_of_scanned_forever(name):
    with pytest.raises(UserInputError, match=r"must be finite .*Received: an infinite dataset"):
        _within(60, lambda: _build(name, dataset=_dataset().repeat()))


def test_target_and_initial_distribution_lengths_must_agree():
    with pytest.raises(UserInputError, match=r"target_distribution has 3 shares but initial_distribution has 2"):
        streaming.rejection(
            _dataset(), batch_size=8, seed=0, initial_distribution=[1, 1], target_distribution=[1, 1, 1]
        )


def _class_sampled(dataset=None, **kwargs):
    kwargs = {"batch_size": 8, "seed": 3, "initial_distribution": (NUM_NEG, NUM_POS), "shuffle_buffer": 64, **kwargs}
    return streaming.class_sampled(_dataset() if dataset is None else dataset, **kwargs)


def test_class_sampled_draws_the_same_classes_as_in_memory(tfrecord_shards):
    shares = power_shares([NUM_NEG, NUM_POS], 0.5)
    ds = _class_sampled(_read_tfrecords(tfrecord_shards), shares=shares)
    assert ds.element_spec == (tf.TensorSpec((8, 2), tf.float32), tf.TensorSpec((8,), tf.int64))
    streamed = _take(ds, 150)
    in_memory = _take(pipelines.class_sampled(*_arrays(), batch_size=8, seed=3, shares=shares), 150)
    x, y = _arrays()
    for (sx, sy), (_, my) in zip(streamed, in_memory, strict=True):
        np.testing.assert_array_equal(sy, my)  # same seed, same class draws
        np.testing.assert_array_equal(y[sx[:, 0].astype(int)], sy)  # rows keep their labels
    labels = np.concatenate([b[1] for b in streamed])
    assert abs(labels.mean() - shares[1]) < 4.5 * np.sqrt(shares[1] * shares[0] / len(labels))


def test_class_sampled_uses_each_streamed_row_at_most_once_per_pass():
    # Each chunk reads one streamed row per slot; the 285 negatives of a pass are all read before any repeats.
    shares = power_shares([NUM_NEG, NUM_POS], 0.5)
    batches = _take(_class_sampled(shares=shares, shuffle_buffer=0, batch_size=5), 57)  # 285 slots
    negatives = np.concatenate([b[0][b[1] == 0, 0] for b in batches]).astype(int)
    assert len(negatives) > 200
    assert len(np.unique(negatives)) == len(negatives)


def test_class_sampled_schedule_moves_at_exactly_the_global_step():
    ds = _class_sampled(shares=[1, 0], final_shares=[0, 1], schedule_steps=3, batch_size=32, num_replicas=2)
    positives = np.array([b[1].mean() for b in _take(ds, 12)]).reshape(6, 2)
    assert (positives[0] == 0).all() and (positives[3:] == 1).all()
    assert (positives[1:3] > 0).all() and (positives[1:3] < 1).all()


def test_class_sampled_only_the_streamed_class():
    (batch,) = _take(_class_sampled(shares=[1, 0]), 1)
    assert batch[1].tolist() == [0] * 8


def test_class_sampled_input_without_a_wanted_class_fails_after_one_scan():
    negatives_only = _dataset().filter(lambda x, y: y == 0)
    with pytest.raises(UserInputError, match=r"class 1 has no examples in the input dataset.*counted \[285, 0\]"):
        _within(60, lambda: _class_sampled(negatives_only, shares=[1, 1]))
    with pytest.raises(UserInputError, match=r"^final_shares asks for class 1, which has no examples"):
        _class_sampled(initial_distribution=(300, 0), shares=[1, 0], final_shares=[1, 1], schedule_steps=5)
    with pytest.raises(UserInputError, match=r"^shares has 3 entries but initial_distribution has 2"):
        _class_sampled(shares=[1, 1, 1])
