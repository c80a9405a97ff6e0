"""Long-tail profiles, subsampling to a profile and head/medium/tail groups."""

import numpy as np
import pytest

from imbal_keras import longtail
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
