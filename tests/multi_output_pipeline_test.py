"""Multi-output rebalancing (`data.multi_output`): weights per head against numpy, the driving head's resampled class
shares against their target (binomial bounds, exact counts for stratified batches), every head's labels still with
their own example, seeded streams, and each refusal in one line."""

import numpy as np
import pytest

from imbal_keras.data import multi_output
from imbal_keras.data.multi_output import Resampling, head_weights, rebalanced
from imbal_keras.errors import UserInputError

N, BATCH, BATCHES = 240, 16, 150
RNG = np.random.default_rng(7)
MAIN = RNG.choice(3, size=N, p=[0.75, 0.2, 0.05])
AUX = (RNG.uniform(size=N) < 0.15).astype(np.float32)
BOXES = RNG.normal(size=(N, 4)).astype(np.float32)  # a regression head: carried, never weighted
# Feature column 0 is the example's number, so a batch says which examples it holds.
X = np.concatenate([np.arange(N)[:, None], RNG.normal(size=(N, 2))], axis=1).astype(np.float32)


def _labels():
    return {"main": MAIN, "aux": AUX, "boxes": BOXES}


def _batches(stream, count=BATCHES):
    return [tuple(part for part in batch) for batch in stream.take(count).as_numpy_iterator()]


def _numpy_weights(counts, method, beta=0.999):
    """The three weightings written out: proportional to 1/n, 1/sqrt(n), (1 - beta) / (1 - beta^n), scaled so the
    mean weight over the examples is 1."""
    n = np.asarray(counts, np.float64)
    raw = {"inverse": 1 / n, "inverse_sqrt": 1 / np.sqrt(n), "effective_number": (1 - beta) / (1 - beta**n)}[method]
    return raw * n.sum() / (raw * n).sum()


@pytest.mark.parametrize("method", ["inverse", "inverse_sqrt", "effective_number"])
def test_method_weights_per_head_match_numpy(method):
    tables = head_weights(_labels(), {"main": method, "aux": method})
    np.testing.assert_allclose(tables["main"], _numpy_weights(np.bincount(MAIN), method), rtol=1e-6)
    np.testing.assert_allclose(tables["aux"], _numpy_weights(np.bincount(AUX.astype(int)), method), rtol=1e-6)
    assert set(tables) == {"main", "aux"}  # the regression head has no table: its examples weigh 1
    # Mean weight 1 over each head's examples.
    assert abs(tables["main"][MAIN].mean() - 1) < 1e-6 and abs(tables["aux"][AUX.astype(int)].mean() - 1) < 1e-6


def test_mapping_and_sequence_weights():
    tables = head_weights(_labels(), {"main": [1.0, 2.0, 8.0], "aux": {1: 5.0}})
    np.testing.assert_array_equal(tables["main"], [1, 2, 8])
    np.testing.assert_array_equal(tables["aux"], [1, 5])  # a class the mapping leaves out weighs 1


@pytest.mark.parametrize("as_list", [False, True], ids=["dict", "list"])
def test_batches_carry_each_heads_weights_and_labels_with_their_example(as_list):
    labels = list(_labels().values()) if as_list else _labels()
    heads = (0, 1, 2) if as_list else ("main", "aux", "boxes")
    weights = {heads[0]: {2: 10.0}, heads[1]: "inverse"}
    stream = rebalanced(X, labels, batch_size=BATCH, seed=3, class_weights=weights, resampling=Resampling(heads[0]))
    aux_table = _numpy_weights(np.bincount(AUX.astype(int)), "inverse")
    for x, y, w in _batches(stream, 40):
        assert isinstance(y, tuple) == as_list and isinstance(w, tuple) == as_list
        index = x[:, 0].astype(int)
        np.testing.assert_array_equal(y[heads[0]], MAIN[index])
        np.testing.assert_array_equal(y[heads[1]], AUX[index])
        np.testing.assert_array_equal(y[heads[2]], BOXES[index])
        np.testing.assert_array_equal(w[heads[0]], np.where(MAIN[index] == 2, 10.0, 1.0))
        np.testing.assert_allclose(w[heads[1]], aux_table[AUX[index].astype(int)], rtol=1e-6)
        np.testing.assert_array_equal(w[heads[2]], np.ones(BATCH))


def test_natural_batches_are_passes_over_the_data():
    stream = rebalanced(X, _labels(), batch_size=BATCH, seed=0)
    seen = np.concatenate([x[:, 0] for x, _, _ in _batches(stream, N // BATCH)]).astype(int)
    np.testing.assert_array_equal(np.sort(seen), np.arange(N))  # one pass: every example once
    assert all((w[h] == 1).all() for _, _, w in _batches(stream, 5) for h in w)


@pytest.mark.parametrize("method", ["up", "down", "rejection"])
@pytest.mark.parametrize("target", [None, (0.5, 0.3, 0.2)], ids=["uniform", "0.5-0.3-0.2"])
def test_driving_head_shares_move_to_the_target(method, target):
    """Each class's share over 150 batches of 16 lies within 4.5 binomial standard errors of its target (a
    conservative bound: a pass draws without replacement, which only narrows the spread)."""
    resampling = Resampling("main", method, target)
    stream = rebalanced(X, _labels(), batch_size=BATCH, seed=11, resampling=resampling)
    main = np.concatenate([y["main"] for _, y, _ in _batches(stream)])
    t = np.full(3, 1 / 3) if target is None else np.asarray(target)
    share = np.bincount(main, minlength=3) / len(main)
    bound = 4.5 * np.sqrt(t * (1 - t) / len(main))
    assert (np.abs(share - t) <= bound).all(), (share, t, bound)
    described = resampling.batch_sampling(_labels())
    assert described.name == f"main_{method}" and described.pass_size is not None
    np.testing.assert_allclose(described.class_shares, t, atol=1.5 / described.pass_size)


def test_stratified_batches_hold_exact_counts():
    stream = rebalanced(X, _labels(), batch_size=BATCH, seed=2, resampling=Resampling("main", "stratified"))
    for _, y, _ in _batches(stream, 30):
        np.testing.assert_array_equal(np.sort(np.bincount(y["main"], minlength=3)), [5, 5, 6])
    described = Resampling("main", "stratified").batch_sampling(_labels())
    assert described.fixed_counts and described.class_population == tuple(np.bincount(MAIN))


def test_resampling_by_the_auxiliary_head():
    stream = rebalanced(X, _labels(), batch_size=BATCH, seed=5, resampling=Resampling("aux", "stratified"))
    for x, y, _ in _batches(stream, 20):
        assert y["aux"].sum() == BATCH // 2
        np.testing.assert_array_equal(y["main"], MAIN[x[:, 0].astype(int)])


def test_same_seed_same_stream_other_seed_another():
    def first(seed):
        resampling = Resampling("main", "up")
        stream = rebalanced(X, _labels(), batch_size=BATCH, seed=seed, resampling=resampling)
        return np.concatenate([x[:, 0] for x, _, _ in _batches(stream, 10)])

    np.testing.assert_array_equal(first(4), first(4))
    assert not np.array_equal(first(4), first(5))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"class_weights": {"mian": "inverse"}}, r"^class_weights names head 'mian', which the labels do not have; "),
        ({"resampling": Resampling("auxx")}, r"^resampling.head names head 'auxx', which the labels do not have; "),
        (
            {"class_weights": {"aux": {2: 3.0}}},
            r"^class_weights\['aux'\] weighs class \[2\], which head 'aux' does not ",
        ),
        ({"class_weights": {"main": [1.0, 2.0]}}, r"^class_weights\['main'\] must give a non-negative weight to each "),
        ({"class_weights": {"main": "balanced"}}, r"^class_weights\['main'\] must be a \{class: weight\} mapping, "),
        ({"class_weights": {"boxes": "inverse"}}, r"^labels\['boxes'\] must be class ids >= 0 of shape \(N,\) or"),
        ({"resampling": Resampling("main", target_distribution=(0.25,) * 4)}, r"^target_distribution"),
    ],
)
def test_refusals_in_one_line(kwargs, message):
    with pytest.raises(UserInputError, match=message) as error:
        rebalanced(X, _labels(), batch_size=BATCH, seed=0, **kwargs)
    assert "\n" not in str(error.value)


def test_mismatched_lengths_and_shapes_refused():
    with pytest.raises(UserInputError, match=r"^labels\['aux'\] has 239 examples but features has 240"):
        rebalanced(X, {"main": MAIN, "aux": AUX[:-1]}, batch_size=BATCH, seed=0)
    with pytest.raises(UserInputError, match=r"^labels must be a non-empty dict"):
        rebalanced(X, MAIN, batch_size=BATCH, seed=0)
    with pytest.raises(UserInputError, match=r"^method must be one of up, down, rejection, stratified"):
        Resampling("main", "smote")
    assert multi_output.__all__ == ["Resampling", "head_weights", "rebalanced"]
