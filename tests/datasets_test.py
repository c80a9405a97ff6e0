"""Datasets: exact ratios, disjoint stratified splits, CSV and TFDS paths, and every bad input."""

import numpy as np
import pandas as pd
import pytest
import tensorflow_datasets as tfds

from imbal_keras import datasets
from imbal_keras.config import DataConfig
from imbal_keras.errors import UserInputError


def _all_rows(data):
    return np.concatenate([s.x for s in data.splits().values()])


def test_synthetic_exact_ratio_and_natural_ratio_in_every_split():
    data = datasets.synthetic(num_examples=10_000, num_features=6, imbalance_ratio=99, seed=1)
    counts = {name: s.class_counts(2) for name, s in data.splits().items()}
    assert sum(c.sum() for c in counts.values()) == 10_000
    assert sum(c[1] for c in counts.values()) == 100  # exactly 1:99
    np.testing.assert_array_equal(counts["test"], [1980, 20])
    np.testing.assert_array_equal(counts["validation"], [1980, 20])
    np.testing.assert_array_equal(counts["train"], [5940, 60])


def test_splits_are_disjoint():
    data = datasets.synthetic(num_examples=2_000, num_features=4, imbalance_ratio=9, seed=0)
    rows = _all_rows(data)
    assert len(np.unique(rows, axis=0)) == len(rows) == 2_000


def test_synthetic_is_deterministic_by_seed():
    a = datasets.synthetic(num_examples=500, num_features=4, seed=3)
    b = datasets.synthetic(num_examples=500, num_features=4, seed=3)
    c = datasets.synthetic(num_examples=500, num_features=4, seed=4)
    np.testing.assert_array_equal(a.train.x, b.train.x)
    np.testing.assert_array_equal(a.test.y, b.test.y)
    assert not np.array_equal(a.train.x, c.train.x)


def test_long_tail_for_k_classes():
    np.testing.assert_allclose(datasets.long_tail_shares(2, 99), [0.99, 0.01])
    shares = datasets.long_tail_shares(3, 100)
    np.testing.assert_allclose(shares / shares[-1], [100, 10, 1])
    data = datasets.synthetic(num_examples=1110, num_features=4, num_classes=3, imbalance_ratio=100, seed=0)
    total = sum(s.class_counts(3) for s in data.splits().values())
    np.testing.assert_array_equal(total, [1000, 100, 10])


def test_label_noise_keeps_counts_and_moves_features():
    clean = datasets.synthetic(num_examples=4000, num_features=4, imbalance_ratio=3, class_separation=3, seed=0)
    noisy = datasets.synthetic(
        num_examples=4000, num_features=4, imbalance_ratio=3, class_separation=3, label_noise=0.3, seed=0
    )
    np.testing.assert_array_equal(clean.train.class_counts(2), noisy.train.class_counts(2))

    def mean_gap(d):
        return np.linalg.norm(d.train.x[d.train.y == 1].mean(0) - d.train.x[d.train.y == 0].mean(0))

    assert mean_gap(noisy) < 0.8 * mean_gap(clean)


def test_too_few_examples_for_the_ratio():
    with pytest.raises(UserInputError, match=r"--num_examples=100 at imbalance_ratio=99"):
        datasets.synthetic(num_examples=100, imbalance_ratio=99)


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
    data = datasets.from_csv(path, label_column="Class", seed=0)
    np.testing.assert_allclose(data.train.x.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(data.train.x.std(0), 1, atol=1e-4)
    assert abs(data.test.x.mean()) > 1e-4  # test rows were not used for the statistics
    assert sum(s.class_counts(2)[1] for s in data.splits().values()) == 20
    assert len(_all_rows(data)) == 200


def test_csv_positive_label_one_vs_rest(tmp_path):
    frame = _frame()
    frame["Class"] = np.where(frame["Class"] == 1, "fraud", "ok")
    data = datasets.from_csv(_write_csv(tmp_path, frame), label_column="Class", positive_label="fraud")
    assert data.class_names == ("rest", "fraud")
    assert sum(s.class_counts(2)[1] for s in data.splits().values()) == 20


def test_csv_imbalance_ratio_subsamples_to_exact_ratio(tmp_path):
    path = _write_csv(tmp_path, _frame(n=200, positives=20))
    data = datasets.from_csv(path, label_column="Class", imbalance_ratio=18, seed=0)
    total = sum(s.class_counts(2) for s in data.splits().values())
    np.testing.assert_array_equal(total, [180, 10])


@pytest.mark.parametrize(
    "content, kwargs, message",
    [
        (None, {}, r"--dataset=csv:.*missing.csv: no such file"),
        ("", {}, r"cannot be read as CSV"),
        ("a,Class\n", {}, r"no data rows"),
        ("a,b\n1,2\n3,4\n", {"label_column": "Class"}, r"--label_column='Class' is not a column.*\['a', 'b'\]"),
        ("a,Class\n1,0\n2,0\n3,0\n", {"label_column": "Class"}, r"has a single class"),
        ("a,Class\n1,0\n2,1\n3,7\n", {"label_column": "Class"}, r"holds \['0', '1', '7'\], expected the class ids"),
        ("a,Class\n1,0\n2,1\n3,-1\n", {"label_column": "Class"}, r"expected the class ids 0..K-1"),
        ("a,Class\nx,0\n2,1\n3,1\n", {"label_column": "Class"}, r"feature column 'a' is not numeric \(row 0: 'x'\)"),
        ("a,Class\n1,0\n,1\n3,1\n", {"label_column": "Class"}, r"feature column 'a' has 1 missing values"),
        ("a,Class\n1,a\n2,b\n", {"label_column": "Class", "positive_label": "z"}, r"--positive_label='z' does not"),
    ],
)
def test_csv_bad_input(tmp_path, content, kwargs, message):
    path = tmp_path / ("missing.csv" if content is None else "bad.csv")
    if content is not None:
        path.write_text(content)
    with pytest.raises(UserInputError, match=message):
        datasets.from_csv(str(path), **kwargs)


def test_tfds_one_vs_rest_at_ratio():
    with tfds.testing.mock_data(num_examples=400, policy=tfds.testing.MockPolicy.USE_CODE):
        data = datasets.from_tfds("mnist", positive_class=3, imbalance_ratio=9, seed=0)
    total = sum(s.class_counts(2) for s in data.splits().values())
    assert total[1] == total[0] // 9 and total[1] >= 20  # 1:9, keeping as many examples as possible
    assert data.kind == "image" and data.train.x.shape[1:] == (28, 28, 1)
    assert data.train.x.min() >= 0 and data.train.x.max() <= 1


def test_tfds_unknown_name():
    with pytest.raises(UserInputError, match=r"--dataset=tfds:no_such_dataset_xyz: no TFDS dataset"):
        datasets.from_tfds("no_such_dataset_xyz")


def test_tfds_absent_positive_class():
    with (
        tfds.testing.mock_data(num_examples=50, policy=tfds.testing.MockPolicy.USE_CODE),
        pytest.raises(UserInputError, match=r"--positive_class=42 does not occur in tfds:mnist"),
    ):
        datasets.from_tfds("mnist", positive_class=42)


def test_load_dispatches_on_config():
    data = datasets.load(DataConfig(num_examples=1000, num_features=3, imbalance_ratio=4))
    assert data.train.x.shape[1] == 3 and data.num_classes == 2
