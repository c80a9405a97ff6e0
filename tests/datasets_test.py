"""Datasets: exact ratios, disjoint stratified splits, tables, arrays, functions, TFDS, and every bad input."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from imbal_keras.config import DataConfig
from imbal_keras.data import longtail, sources, tabular
from imbal_keras.data.shares import apportion
from imbal_keras.errors import UserInputError


def _all_rows(data):
    return np.concatenate([s.x for s in data.splits().values()])


def test_synthetic_exact_ratio_and_natural_ratio_in_every_split():
    data = sources.synthetic(num_examples=10_000, num_features=6, imbalance_ratio=99, seed=1)
    counts = {name: s.class_counts(2) for name, s in data.splits().items()}
    assert sum(c.sum() for c in counts.values()) == 10_000
    assert sum(c[1] for c in counts.values()) == 100  # exactly 1:99
    np.testing.assert_array_equal(counts["test"], [1980, 20])
    np.testing.assert_array_equal(counts["validation"], [1980, 20])
    np.testing.assert_array_equal(counts["train"], [5940, 60])


def test_splits_are_disjoint():
    data = sources.synthetic(num_examples=2_000, num_features=4, imbalance_ratio=9, seed=0)
    rows = _all_rows(data)
    assert len(np.unique(rows, axis=0)) == len(rows) == 2_000


def test_synthetic_is_deterministic_by_seed():
    a = sources.synthetic(num_examples=500, num_features=4, seed=3)
    b = sources.synthetic(num_examples=500, num_features=4, seed=3)
    c = sources.synthetic(num_examples=500, num_features=4, seed=4)
    np.testing.assert_array_equal(a.train.x, b.train.x)
    np.testing.assert_array_equal(a.test.y, b.test.y)
    assert not np.array_equal(a.train.x, c.train.x)


def test_long_tail_for_k_classes():
    np.testing.assert_allclose(longtail.profile_shares(2, 99), [0.99, 0.01])
    shares = longtail.profile_shares(3, 100)
    np.testing.assert_allclose(shares / shares[-1], [100, 10, 1])
    data = sources.synthetic(num_examples=1110, num_features=4, num_classes=3, imbalance_ratio=100, seed=0)
    total = sum(s.class_counts(3) for s in data.splits().values())
    np.testing.assert_array_equal(total, [1000, 100, 10])


def test_label_noise_keeps_counts_and_moves_features():
    clean = sources.synthetic(num_examples=4000, num_features=4, imbalance_ratio=3, class_separation=3, seed=0)
    noisy = sources.synthetic(
        num_examples=4000, num_features=4, imbalance_ratio=3, class_separation=3, label_noise=0.3, seed=0
    )
    np.testing.assert_array_equal(clean.train.class_counts(2), noisy.train.class_counts(2))

    def mean_gap(d):
        return np.linalg.norm(d.train.x[d.train.y == 1].mean(0) - d.train.x[d.train.y == 0].mean(0))

    assert mean_gap(noisy) < 0.8 * mean_gap(clean)


def test_too_few_examples_for_the_ratio():
    with pytest.raises(UserInputError, match=r"^num_examples=100 at imbalance_ratio=99 leaves a split"):
        sources.synthetic(num_examples=100, imbalance_ratio=99)


def _write_csv(tmp_path, frame, name="data.csv"):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return str(path)


def _frame(n=200, positives=20, seed=0):
    rng = np.random.default_rng(seed)
    label = np.r_[np.zeros(n - positives, int), np.ones(positives, int)]
    return pd.DataFrame({"a": rng.normal(5, 2, n), "b": rng.normal(-1, 3, n), "Class": label})


def test_csv_standardised_with_training_statistics_only(tmp_path):
    path = _write_csv(tmp_path, _frame())
    data = sources.from_csv(path, label_column="Class", seed=0)
    np.testing.assert_allclose(data.train.x.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(data.train.x.std(0), 1, atol=1e-4)
    assert abs(data.test.x.mean()) > 1e-4  # test rows were not used for the statistics
    assert sum(s.class_counts(2)[1] for s in data.splits().values()) == 20
    assert len(_all_rows(data)) == 200


def test_csv_positive_label_one_vs_rest(tmp_path):
    frame = _frame()
    frame["Class"] = np.where(frame["Class"] == 1, "fraud", "ok")
    data = sources.from_csv(_write_csv(tmp_path, frame), label_column="Class", positive_label="fraud")
    assert data.class_names == ("rest", "fraud")
    assert sum(s.class_counts(2)[1] for s in data.splits().values()) == 20


def test_csv_imbalance_ratio_subsamples_to_exact_ratio(tmp_path):
    path = _write_csv(tmp_path, _frame(n=200, positives=20))
    data = sources.from_csv(path, label_column="Class", imbalance_ratio=18, seed=0)
    total = sum(s.class_counts(2) for s in data.splits().values())
    np.testing.assert_array_equal(total, [180, 10])


@pytest.mark.parametrize(
    "content, kwargs, message",
    [
        (None, {}, r"^dataset=csv:.*missing.csv: no such file"),
        ("", {}, r"cannot be read as CSV"),
        ("a,Class\n", {}, r"no data rows"),
        (
            "a,b\n1,2\n3,4\n",
            {"label_column": "Class"},
            r"^label_column='Class' names \['Class'\], not a column of .*\['a', 'b'\]",
        ),
        ("a,Class\n1,0\n2,0\n3,0\n", {"label_column": "Class"}, r"has a single class"),
        ("a,Class\n1,0\n2,1\n3,7\n", {"label_column": "Class"}, r"holds \['0', '1', '7'\], expected the class ids"),
        ("a,Class\n1,0\n2,1\n3,-1\n", {"label_column": "Class"}, r"expected the class ids 0..K-1"),
        (
            "a,Class\nx,0\n2,1\n3,1\n",
            {"label_column": "Class"},
            r"column 'a' is not numeric \(row 0: 'x'\); list it in categorical_columns or drop_columns",
        ),
        ("a,Class\n1,a\n2,b\n", {"label_column": "Class", "positive_label": "z"}, r"^positive_label='z' does not"),
    ],
)
def test_csv_bad_input(tmp_path, content, kwargs, message):
    path = tmp_path / ("missing.csv" if content is None else "bad.csv")
    if content is not None:
        path.write_text(content)
    with pytest.raises(UserInputError, match=message):
        sources.from_csv(str(path), **kwargs)


def test_tfds_one_vs_rest_at_ratio():
    with tfds.testing.mock_data(num_examples=400, policy=tfds.testing.MockPolicy.USE_CODE):
        data = sources.from_tfds("mnist", positive_class=3, imbalance_ratio=9, seed=0)
    total = sum(s.class_counts(2) for s in data.splits().values())
    assert total[1] == total[0] // 9 and total[1] >= 20  # 1:9, keeping as many examples as possible
    assert data.kind == "image" and data.train.x.shape[1:] == (28, 28, 1)
    assert data.train.x.min() >= 0 and data.train.x.max() <= 1


def test_tfds_unknown_name():
    with pytest.raises(UserInputError, match=r"^dataset=tfds:no_such_dataset_xyz: no TFDS dataset"):
        sources.from_tfds("no_such_dataset_xyz")


def test_tfds_absent_positive_class():
    with (
        tfds.testing.mock_data(num_examples=50, policy=tfds.testing.MockPolicy.USE_CODE),
        pytest.raises(UserInputError, match=r"^positive_class=42 does not occur in tfds:mnist"),
    ):
        sources.from_tfds("mnist", positive_class=42)


def test_load_dispatches_on_config():
    data = sources.load(DataConfig(num_examples=1000, num_features=3, imbalance_ratio=4))
    assert data.train.x.shape[1] == 3 and data.num_classes == 2


# Long-tail profiles (issue 12's data part).


def test_synthetic_step_profile_exact_counts():
    data = sources.synthetic(num_examples=2200, num_features=3, num_classes=4, imbalance_ratio=10, class_profile="step")
    total = sum(s.class_counts(4) for s in data.splits().values())
    # shares [1, 1, 0.1, 0.1] / 2.2 of 2200 examples
    np.testing.assert_array_equal(total, [1000, 1000, 100, 100])


def test_synthetic_balanced_evaluation_keeps_validation_and_test_balanced():
    data = sources.synthetic(
        num_examples=1000, num_features=3, num_classes=5, imbalance_ratio=16, balanced_evaluation=True, seed=2
    )
    np.testing.assert_array_equal(data.test.class_counts(5), [40] * 5)
    np.testing.assert_array_equal(data.validation.class_counts(5), [40] * 5)
    train = data.train.class_counts(5)
    assert train.sum() == 600
    np.testing.assert_array_equal(train, apportion(600, longtail.profile_shares(5, 16)))
    assert train[0] / train[-1] == pytest.approx(16, rel=0.05)


def _multiclass_frame(per_class=60, k=4, seed=0):
    rng = np.random.default_rng(seed)
    label = np.repeat(np.arange(k), per_class)
    return pd.DataFrame({"f": rng.normal(size=len(label)) + label, "label": label})


@pytest.mark.parametrize("profile", ["exponential", "step"])
def test_table_long_tail_training_split_and_balanced_evaluation(profile):
    data = tabular.from_frame(
        _multiclass_frame(), imbalance_ratio=10, class_profile=profile, balanced_evaluation=True, seed=1
    )
    # The stratified split gives each class 12 test, 12 validation and 36 training rows; the training split is
    # subsampled to the largest profile 36 rows per class can supply, as the long-tail benchmarks do.
    np.testing.assert_array_equal(data.train.class_counts(4), longtail.profile_counts(profile, 4, 10, 36))
    np.testing.assert_array_equal(data.test.class_counts(4), [12] * 4)
    np.testing.assert_array_equal(data.validation.class_counts(4), [12] * 4)


def test_profile_the_data_cannot_reach():
    with pytest.raises(UserInputError, match=r"^imbalance_ratio=100.0 with n_max=36 leaves class 3 with no example"):
        tabular.from_frame(_multiclass_frame(), imbalance_ratio=100, balanced_evaluation=True)
    with pytest.raises(UserInputError, match=r"^imbalance_ratio=1000 is beyond what the data can reach: class 2"):
        tabular.from_frame(_multiclass_frame(per_class=60), imbalance_ratio=1000)


def test_class_with_zero_examples_and_single_class_are_refused():
    frame = _multiclass_frame()
    frame.loc[frame["label"] == 2, "label"] = 3  # classes 0, 1, 3: class 2 has no example
    with pytest.raises(UserInputError, match=r"^label_column='label' holds \['0', '1', '3'\], expected the class"):
        tabular.from_frame(frame)
    with pytest.raises(UserInputError, match=r"^num_classes must be >= 2. Received: num_classes=1"):
        DataConfig(num_classes=1).validate()


# Tables as they come: categorical and missing values, dropped columns, unusable values, time order.


def _table(n=240, seed=0):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "id": np.arange(n),
            "amount": rng.normal(100, 30, n),
            "merchant": rng.choice(["shop", "fuel", "travel"], n),
            "ts": pd.date_range("2024-01-01", periods=n, freq="h").astype(str),
            "fraud": (np.arange(n) % 6 == 0).astype(int),
        }
    )
    frame.loc[frame.index % 5 == 1, "amount"] = np.nan
    frame.loc[frame.index % 11 == 2, "merchant"] = None
    return frame


def test_table_encoding_uses_training_rows_only():
    # A forward split by time makes the training rows known (the oldest 60%), so every statistic can be
    # recomputed independently with pandas.
    frame = _table(n=240)
    frame.loc[239, "merchant"] = "casino"  # a level only the test split has
    data = tabular.from_frame(
        frame, label_column="fraud", categorical_columns=["merchant"], drop_columns=["id"], time_column="ts"
    )
    assert [(f.name, f.kind) for f in data.features] == [
        ("amount", "numeric"),
        ("amount_missing", "missing_indicator"),
        ("merchant", "categorical"),
    ]
    assert data.features[2].levels == ("fuel", "shop", "travel") and data.features[2].cardinality == 5
    train_rows = frame.iloc[:144]
    median = train_rows["amount"].median()
    filled = frame["amount"].fillna(median)
    mean, std = filled.iloc[:144].mean(), filled.iloc[:144].std(ddof=0)
    codes = frame["merchant"].map({"fuel": 2, "shop": 3, "travel": 4, "casino": 1}).fillna(0)
    expected = np.stack([(filled - mean) / std, frame["amount"].isna().astype(float), codes], axis=1)
    for split, rows in (("train", slice(0, 144)), ("validation", slice(144, 192)), ("test", slice(192, 240))):
        np.testing.assert_allclose(data.splits()[split].x, expected[rows], rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(data.splits()[split].y, frame["fraud"].to_numpy()[rows])
    assert data.test.x[-1, 2] == tabular.UNSEEN_CODE


def test_parquet_keeps_category_dtype_and_matches_csv(tmp_path):
    frame = _table().drop(columns=["ts"])
    frame["merchant"] = frame["merchant"].astype("category")
    frame.to_parquet(tmp_path / "t.parquet")
    frame.to_csv(tmp_path / "t.csv", index=False)
    from_parquet = sources.from_parquet(str(tmp_path / "t.parquet"), label_column="fraud", drop_columns=["id"])
    from_csv = sources.from_csv(
        str(tmp_path / "t.csv"), label_column="fraud", drop_columns=["id"], categorical_columns=["merchant"]
    )
    for split in ("train", "validation", "test"):
        np.testing.assert_allclose(from_parquet.splits()[split].x, from_csv.splits()[split].x, atol=1e-5)
    assert from_parquet.features == from_csv.features


def test_time_split_is_forward_and_keeps_equal_times_together():
    frame = _table(n=300)
    frame["ts"] = pd.to_datetime(frame["ts"]).dt.floor("4h").astype(str)  # groups of 4 rows share a time
    data = tabular.from_frame(
        frame.assign(order=np.arange(300)),
        label_column="fraud",
        drop_columns=["id"],
        categorical_columns=["merchant"],
        time_column="ts",
        validation_fraction=0.2,
        test_fraction=0.2,
    )
    names = [f.name for f in data.features]
    assert "ts" not in names
    column = names.index("order")
    std, mean = frame.index.to_numpy()[:180].std(), frame.index.to_numpy()[:180].mean()
    rows = {s: np.round(split.x[:, column] * std + mean).astype(int) for s, split in data.splits().items()}
    # Train is the oldest 60%, validation the next 20%, test the newest 20%, cut between time groups of 4 rows.
    assert rows["train"].max() < rows["validation"].min() and rows["validation"].max() < rows["test"].min()
    assert sorted(rows["train"]) == list(range(180))
    assert sorted(rows["validation"]) == list(range(180, 240)) and sorted(rows["test"]) == list(range(240, 300))


def test_time_split_moves_a_cut_past_equal_times():
    times = np.arange(20)
    times[11:14] = 11  # rows 11, 12 and 13 share a time; the 60% cut (row 12) falls among them
    frame = pd.DataFrame({"t": times, "v": np.arange(20.0), "label": [0, 1] * 10})
    data = tabular.from_frame(frame, time_column="t", validation_fraction=0.2, test_fraction=0.2)
    v = frame["v"].to_numpy()[:14]
    rows = {s: np.round(split.x[:, 0] * v.std() + v.mean()).astype(int) for s, split in data.splits().items()}
    assert sorted(rows["train"]) == list(range(14))  # the cut moved to after the tied rows
    assert sorted(rows["validation"]) == [14, 15] and sorted(rows["test"]) == [16, 17, 18, 19]


@pytest.mark.parametrize(
    "change, kwargs, message",
    [
        (
            lambda f: f.assign(amount=f["amount"].where(f.index != 7, np.inf)),
            {},
            r"^dataset=data: column 'amount' holds inf at row 7, which float32 features cannot hold",
        ),
        (
            lambda f: f.assign(amount=f["amount"].where(f.index != 3, 1e300)),
            {},
            r"^dataset=data: column 'amount' holds 1e\+300 at row 3",
        ),
        (
            lambda f: f,
            {"categorical_columns": []},
            r"column 'merchant' is not numeric \(row 0: '\w+'\); list it in categorical_columns",
        ),
        (
            lambda f: f.assign(merchant=[f"m{i}" for i in range(len(f))]),
            {"max_categories": 50},
            r"^max_categories=50 is below the 240 levels of categorical column 'merchant' \(an ID\?",
        ),
        (
            lambda f: f.assign(ts=f["ts"].where(f.index != 9, "yesterday-ish")),
            {"time_column": "ts"},
            r"^time_column='ts' does not parse as a time at row 9: 'yesterday-ish'",
        ),
        (
            lambda f: f,
            {"drop_columns": ["id", "nope"]},
            r"^drop_columns='id,nope' names \['nope'\], not a column of data",
        ),
        (
            lambda f: f.assign(amount=np.nan),
            {},
            r"^dataset=data: column 'amount' has no value in the training split; drop it",
        ),
        (
            lambda f: f.assign(fraud=(f.index >= 200).astype(int)),
            {"time_column": "ts"},
            r"^time_column: the forward split leaves the train split \(144 rows\) without an example of class 1",
        ),
    ],
)
def test_table_bad_input_is_one_line(change, kwargs, message):
    settings = {"label_column": "fraud", "categorical_columns": ["merchant"], "drop_columns": ["id", "ts"]}
    if "time_column" in kwargs:
        settings["drop_columns"] = ["id"]
    settings.update(kwargs)
    with pytest.raises(UserInputError, match=message) as error:
        tabular.from_frame(change(_table()), where="dataset=data", **settings)
    assert "\n" not in str(error.value)


def test_table_is_deterministic_by_seed():
    a, b = (tabular.from_frame(_table(), label_column="fraud", categorical_columns=["merchant"],
                                drop_columns=["id", "ts"], seed=5) for _ in range(2))  # fmt: skip
    np.testing.assert_array_equal(a.train.x, b.train.x)
    np.testing.assert_array_equal(a.test.y, b.test.y)


# Arrays: .npz files and Python functions.


def _arrays(n=120, seed=0):
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 4 == 0).astype(np.int64)
    return (rng.normal(size=(n, 3)) + y[:, None]).astype(np.float32), y


def test_npz_all_examples_or_given_splits(tmp_path):
    x, y = _arrays()
    np.savez(tmp_path / "all.npz", x=x, y=y, class_names=np.array(["ok", "fraud"]))
    data = sources.from_npz(str(tmp_path / "all.npz"))
    assert data.class_names == ("ok", "fraud") and sum(len(s) for s in data.splits().values()) == 120
    np.testing.assert_array_equal(
        np.sort(np.concatenate([s.x for s in data.splits().values()]), axis=0), np.sort(x, axis=0)
    )  # fmt: skip  (used as given: no scaling)
    np.savez(tmp_path / "given.npz", x_train=x[:80], y_train=y[:80], x_test=x[80:], y_test=y[80:])
    given = sources.from_npz(str(tmp_path / "given.npz"), validation_fraction=0.25)
    np.testing.assert_array_equal(given.test.x, x[80:])
    assert len(given.train) + len(given.validation) == 80
    np.testing.assert_array_equal(given.validation.class_counts(2), [15, 5])  # a stratified quarter of train


def test_npz_missing_keys(tmp_path):
    np.savez(tmp_path / "bad.npz", features=np.zeros((4, 2)))
    with pytest.raises(UserInputError, match=r"^dataset=npz:.*bad.npz: expected arrays x and y.*missing \['x_train'"):
        sources.from_npz(str(tmp_path / "bad.npz"))


_FUNCTIONS = """
import numpy as np
import tensorflow as tf

def arrays(seed):
    rng = np.random.default_rng(seed)
    y = (np.arange(200) % 5 == 0).astype(int)
    return rng.normal(size=(200, 4)) + y[:, None], y

def images():
    rng = np.random.default_rng(0)
    y = np.arange(90) % 3
    return {"data": (rng.random((90, 8, 8)), y), "class_names": ["a", "b", "c"]}

def datasets_per_split():
    x, y = arrays(0)
    return {"train": tf.data.Dataset.from_tensor_slices((x[:150], y[:150])),
            "validation": tf.data.Dataset.from_tensor_slices((x[150:175], y[150:175])).batch(7),
            "test": (x[175:], y[175:])}

def wrong_shapes():
    return np.zeros((10, 3)), np.zeros(9, int)

def outside_labels():
    return np.zeros((10, 3)), np.array([0, 1] * 4 + [-1, 1])

def no_class_one_in_train():
    x = np.zeros((30, 2))
    return {"train": (x[:20], np.r_[np.zeros(18, int), [2, 2]]), "test": (x[20:], np.r_[[0] * 5, [1] * 5])}

def raises():
    raise RuntimeError("disk full")

def not_data():
    return "hello"
"""


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "user_data.py").write_text(textwrap.dedent(_FUNCTIONS))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "user_data", raising=False)
    return "user_data"


def test_python_function_gets_the_data_seed(user_module):
    config = DataConfig(dataset=f"python:{user_module}:arrays", imbalance_ratio=0)
    a, b, c = sources.load(config, seed=1), sources.load(config, seed=1), sources.load(config, seed=2)
    np.testing.assert_array_equal(a.train.x, b.train.x)
    assert not np.array_equal(a.train.x, c.train.x)
    assert a.kind == "tabular" and a.num_classes == 2 and sum(len(s) for s in a.splits().values()) == 200


def test_python_function_images_and_datasets(user_module):
    images = sources.from_python(f"{user_module}:images")
    assert images.kind == "image" and images.train.x.shape[1:] == (8, 8, 1) and images.class_names == ("a", "b", "c")
    given = sources.from_python(f"{user_module}:datasets_per_split")
    assert (len(given.train), len(given.validation), len(given.test)) == (150, 25, 25)


@pytest.mark.parametrize(
    "function, message",
    [
        ("no_module_xyz:f", r"^dataset='python:no_module_xyz:f' does not import: ModuleNotFoundError"),
        ("{m}:missing", r"^dataset='python:{m}:missing': module '{m}' has no attribute 'missing'"),
        ("{m}:raises", r"^dataset=python:{m}:raises: the function raised RuntimeError: disk full"),
        ("{m}:not_data", r"^dataset=python:{m}:not_data: expected \(x, y\) or a dict of splits. Received: str"),
        ("{m}:wrong_shapes", r"expected x of shape \(N, ...\) and y of shape \(N,\).*x \(10, 3\), y \(9,\)"),
        ("{m}:outside_labels", r"y must hold integer class ids 0..K-1. Received: dtype int64, values \[-1, 0, 1\]"),
        ("{m}:no_class_one_in_train", r"class 1 has no example in the training data"),
    ],
)
def test_python_function_bad_input(user_module, function, message):
    function, message = function.format(m=user_module), message.format(m=user_module)
    with pytest.raises(UserInputError, match=message) as error:
        sources.load(DataConfig(dataset=f"python:{function}", imbalance_ratio=0))
    assert "\n" not in str(error.value)


def test_infinite_dataset_and_nan_features_are_refused():
    ds = tf.data.Dataset.from_tensor_slices((np.zeros((4, 2)), np.array([0, 1, 0, 1]))).repeat()
    with pytest.raises(UserInputError, match=r"the dataset is infinite"):
        sources.from_arrays({"train": ds, "test": ds})
    x, y = _arrays()
    x[5, 1] = np.nan
    with pytest.raises(UserInputError, match=r"x holds a NaN or infinite value \(example 5\)"):
        sources.from_arrays((x, y))


# TFDS datasets without supervised keys.


class TinyEvents(tfds.core.GeneratorBasedBuilder):
    """A dataset without supervised keys: an 8x8 image, a ClassLabel and a second tensor."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {
                    "pixels": tfds.features.Tensor(shape=(8, 8, 1), dtype=np.uint8),
                    "digit": tfds.features.ClassLabel(names=["zero", "one", "two"]),
                    "weight": tfds.features.Tensor(shape=(2,), dtype=np.float32),
                }
            ),
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        yield 0, {}


class TinyPair(TinyEvents):
    """One (H, W) image feature and one ClassLabel, no supervised keys."""

    def _info(self):
        features = {
            "pixels": tfds.features.Tensor(shape=(4, 4), dtype=np.uint8),
            "kind": tfds.features.ClassLabel(num_classes=3),
        }
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(features))


class TinyTwoLabels(TinyEvents):
    """Two ClassLabel features: the label must be chosen."""

    def _info(self):
        features = {
            "pixels": tfds.features.Tensor(shape=(4, 4), dtype=np.uint8),
            "a": tfds.features.ClassLabel(num_classes=2),
            "b": tfds.features.ClassLabel(num_classes=3),
        }
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(features))


def _mock(n=300):
    return tfds.testing.mock_data(num_examples=n, policy=tfds.testing.MockPolicy.USE_CODE)


def test_tfds_without_supervised_keys_by_flag_and_all_classes():
    with _mock():
        data = sources.from_tfds("tiny_events", input_feature="pixels", positive_class=-1, imbalance_ratio=0)
    assert data.kind == "image" and data.train.x.shape[1:] == (8, 8, 1) and data.class_names == ("zero", "one", "two")
    assert sum(len(s) for s in data.splits().values()) == 300
    with _mock():
        table_data = sources.from_tfds(
            "tiny_events", input_feature="weight", label_feature="digit", positive_class=1, imbalance_ratio=0
        )
    assert table_data.kind == "tabular" and table_data.class_names == ("rest", "one")


def test_tfds_the_one_classlabel_and_the_one_other_feature():
    with _mock():
        data = sources.from_tfds("tiny_pair", positive_class=-1, imbalance_ratio=0)
    assert data.train.x.shape[1:] == (4, 4, 1) and data.num_classes == 3
    with _mock():
        chosen = sources.from_tfds(
            "tiny_two_labels", label_feature="a", input_feature="pixels", positive_class=-1, imbalance_ratio=0
        )
    assert chosen.num_classes == 2


@pytest.mark.parametrize(
    "name, kwargs, message",
    [
        ("tiny_events", {}, r"^input_feature: .* has 2 features besides the label 'digit'; choose the input"),
        ("tiny_two_labels", {}, r"has no supervised keys and 2 ClassLabel features \['a', 'b'\]; choose the label"),
        ("tiny_events", {"input_feature": "pixel"}, r"^input_feature='pixel' is not a feature of dataset=tfds"),
        ("tiny_events", {"input_feature": "pixels", "label_feature": "weight"}, r"is not a ClassLabel feature"),
    ],
)
def test_tfds_feature_choice_errors(name, kwargs, message):
    message = message.replace("^input_feature: ", "^dataset=tfds:tiny_events")
    with _mock(20), pytest.raises(UserInputError, match=message):
        sources.from_tfds(name, **kwargs)


def test_tfds_multiclass_long_tail_with_balanced_test():
    with _mock(600):
        data = sources.from_tfds(
            "tiny_events", input_feature="pixels", positive_class=-1, imbalance_ratio=4, balanced_evaluation=True
        )
    train = data.train.class_counts(3)
    assert train[0] >= train[1] >= train[2] and train[0] == 4 * train[2] + (train[0] % 4)
    test = data.test.class_counts(3)
    assert len(set(test.tolist())) == 1 and len(set(data.validation.class_counts(3).tolist())) == 1


def test_load_dispatches_every_kind(tmp_path, user_module):
    x, y = _arrays()
    np.savez(tmp_path / "d.npz", x=x, y=y)
    frame = pd.DataFrame(x, columns=["a", "b", "c"]).assign(label=y)
    frame.to_csv(tmp_path / "d.csv", index=False)
    frame.to_parquet(tmp_path / "d.parquet")
    for dataset in (f"npz:{tmp_path}/d.npz", f"csv:{tmp_path}/d.csv", f"parquet:{tmp_path}/d.parquet"):
        data = sources.load(DataConfig(dataset=dataset, imbalance_ratio=0))
        assert sum(len(s) for s in data.splits().values()) == 120 and data.num_classes == 2, dataset
    assert os.path.exists(tmp_path / "d.parquet")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (DataConfig(dataset="python:no_colon"), r"^dataset must name a function as 'python:package.module:function'"),
        (DataConfig(dataset="xls:a.xls"), r"^dataset must be 'synthetic', 'csv:PATH', 'parquet:PATH', 'npz:PATH'"),
        (DataConfig(class_profile="linear"), r"^class_profile must be one of exponential, step. Received: "),
        (DataConfig(imbalance_ratio=0.5), r"^imbalance_ratio must be >= 1 .*Received: imbalance_ratio=0.5$"),
        (DataConfig(positive_class=-2), r"^positive_class must be >= -1 \(-1 keeps all classes\)"),
        (DataConfig(categorical_columns=["id"], drop_columns=["id"]), r"^categorical_columns names a column that is"),
    ],
)
def test_data_config_refuses_in_one_line(config, message):
    with pytest.raises(UserInputError, match=message):
        config.validate()


def test_loading_data_imports_neither_config_nor_tensorflow():
    code = (
        "import sys; import imbal_keras.data.sources; "
        "print('imbal_keras.config' in sys.modules, 'tensorflow' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]
