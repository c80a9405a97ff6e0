"""Gradient-noise diagnostics checked against closed forms written here in numpy and against real batch draws.

Reference computations are independent of the module: per-example gradients of logistic regression in closed form,
textbook covariances of sampling with and without replacement over the per-example gradient matrix, and Monte Carlo
over batches drawn by the real `imbal_keras.data.pipelines` (features = example indices, so each batch's gradient is
computed here from a fixed matrix of per-example "gradients").
"""

import math
import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from imbal_keras import diagnostics, losses, models
from imbal_keras.callbacks import GradientNoise
from imbal_keras.data import pipelines
from imbal_keras.data.batch_sampling import BatchSampling
from imbal_keras.data.shares import class_weights, stratified_counts
from imbal_keras.diagnostics import exact_mode, sampled_mode
from imbal_keras.diagnostics.moments import PerExampleGradients
from imbal_keras.errors import UserInputError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COUNTS = np.array([360, 40])
B = 16


# ---------------------------------------------------------------------------------------------------------------
# Logistic regression with fixed features: per-example gradients in closed form.


def _features(counts, dims, seed):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(len(counts)), counts)
    x = (rng.normal(size=(len(y), dims)) + 0.7 * y[:, None]).astype(np.float32)
    return x, y


def _linear_model(dims, num_classes, seed):
    """Logistic regression (sigmoid, K = 2) or softmax regression (K > 2) with fixed random weights."""
    keras.utils.set_random_seed(seed)
    units, activation, loss = (
        (1, "sigmoid", "binary_crossentropy")
        if num_classes == 2
        else (num_classes, "softmax", "sparse_categorical_crossentropy")
    )
    model = keras.Sequential([keras.Input((dims,)), keras.layers.Dense(units, activation=activation)])
    rng = np.random.default_rng(seed + 1)
    model.set_weights([rng.normal(scale=0.5, size=(dims, units)), rng.normal(scale=0.5, size=units)])
    model.compile(loss=loss)
    return model


def _numpy_gradients(model, x, y):
    """d l_i / d(kernel, bias) of the cross-entropy in closed form: (p_i - e_{y_i}) outer [x_i, 1], flattened."""
    kernel, bias = (w.numpy().astype(np.float64) for w in model.trainable_weights)
    logits = x.astype(np.float64) @ kernel + bias
    if kernel.shape[1] == 1:
        residual = 1 / (1 + np.exp(-logits)) - y[:, None]
    else:
        p = np.exp(logits - logits.max(1, keepdims=True))
        residual = p / p.sum(1, keepdims=True) - np.eye(kernel.shape[1])[y]
    per_kernel = x.astype(np.float64)[:, :, None] * residual[:, None, :]
    return np.concatenate([per_kernel.reshape(len(y), -1), residual], axis=1)


@pytest.fixture(scope="module")
def binary():
    x, y = _features(COUNTS, 3, seed=0)
    model = _linear_model(3, 2, seed=0)
    return model, x, y, _numpy_gradients(model, x, y)


@pytest.fixture(scope="module")
def three_classes():
    x, y = _features([120, 60, 20], 2, seed=1)
    model = _linear_model(2, 3, seed=1)
    return model, x, y, _numpy_gradients(model, x, y)


def _srswor_trace_cov(values, batch_size):
    """tr Cov of the mean of B draws without replacement from the rows of `values` (textbook, N-1 divisor)."""
    n = len(values)
    spread = ((values - values.mean(0)) ** 2).sum() / (n - 1)
    return (1 - batch_size / n) * spread / batch_size


@pytest.mark.parametrize("fixture", ["binary", "three_classes"])
def test_per_example_gradients_and_moments_match_numpy(fixture, request):
    model, x, y, reference = request.getfixturevalue(fixture)
    k = int(y.max()) + 1
    np.testing.assert_allclose(diagnostics.per_example_gradients(model, x, y), reference, rtol=1e-5, atol=1e-6)

    moments = diagnostics.class_moments(model, x, y)
    means = np.stack([reference[y == c].mean(0) for c in range(k)])
    np.testing.assert_allclose(moments.means, means, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(moments.gram, means @ means.T, rtol=1e-5, atol=1e-7)
    second = np.array([(reference[y == c] ** 2).sum(1).mean() for c in range(k)])
    np.testing.assert_allclose(moments.second_moments, second, rtol=1e-5)
    np.testing.assert_array_equal(moments.class_counts, np.bincount(y))


def _tape_loop_gradients(model, x, y):
    """One GradientTape per example, eagerly: the stock way, slow but plain."""
    rows = []
    for i in range(len(y)):
        with tf.GradientTape() as tape:
            loss = keras.losses.binary_crossentropy(y[i : i + 1, None].astype("float32"), model(x[i : i + 1]))
        rows.append(np.concatenate([g.numpy().ravel() for g in tape.gradient(loss, model.trainable_weights)]))
    return np.array(rows)


def test_dense_closed_form_and_vectorised_paths_match_a_tape_per_example():
    """A Dense chain (closed form) and a model that reuses a layer (not a chain: vectorised) against a loop of tapes."""
    x, y = _features([15, 5], 5, seed=3)
    keras.utils.set_random_seed(3)
    chain = models.build((5,), 2, hidden_units=(4, 3), seed=3)
    inputs = keras.Input((5,))
    shared = keras.layers.Dense(5, activation="tanh")
    reused = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(shared(shared(inputs))))
    for model, closed_form in ((chain, True), (reused, False)):
        model.compile(loss="binary_crossentropy")
        assert PerExampleGradients.of(model, None, max_parameters=10**6).closed_form is closed_form
        reference = _tape_loop_gradients(model, x, y)
        np.testing.assert_allclose(diagnostics.per_example_gradients(model, x, y), reference, rtol=1e-4, atol=1e-6)
        moments = diagnostics.class_moments(model, x, y)
        np.testing.assert_allclose(moments.means[1], reference[y == 1].mean(0), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(moments.second_moments[0], (reference[y == 0] ** 2).sum(1).mean(), rtol=1e-4)


@pytest.mark.parametrize("fixture", ["binary", "three_classes"])
def test_exact_mode_matches_textbook_covariances(fixture, request):
    """Natural and weighted batches: B draws without replacement from N; stratified: per class without replacement;
    class-aware sampling: independent draws. Each against the textbook formula over the per-example matrix."""
    model, x, y, g = request.getfixturevalue(fixture)
    counts = np.bincount(y)
    k = len(counts)
    weights = class_weights(counts)
    shares = np.full(k, 1 / k)
    table = diagnostics.exact(
        model,
        x,
        y,
        [
            BatchSampling.natural(counts),
            BatchSampling.weighted(counts, weights),
            BatchSampling.stratified(counts),
            BatchSampling.iid(shares),
        ],
        batch_size=B,
    ).set_index("strategy")

    weighted = weights[y][:, None] * g
    np.testing.assert_allclose(table.loc["none", "trace_cov"], _srswor_trace_cov(g, B), rtol=1e-5)
    np.testing.assert_allclose(table.loc["none", "grad_sq_norm"], np.sum(g.mean(0) ** 2), rtol=1e-5)
    np.testing.assert_allclose(table.loc["class_weight", "trace_cov"], _srswor_trace_cov(weighted, B), rtol=1e-5)
    balanced = np.mean([g[y == c].mean(0) for c in range(k)], axis=0)
    np.testing.assert_allclose(table.loc["class_weight", "grad_sq_norm"], balanced @ balanced, rtol=1e-5)
    np.testing.assert_allclose(
        table.loc["none", "distance_to_balanced"], np.linalg.norm(g.mean(0) - balanced), rtol=1e-5
    )

    per_batch = stratified_counts(B, shares)
    stratified = sum(per_batch[c] * _srswor_trace_cov(g[y == c], per_batch[c]) * per_batch[c] for c in range(k)) / B**2
    np.testing.assert_allclose(table.loc["stratified", "trace_cov"], stratified, rtol=1e-5)

    # Class-aware sampling: one draw is example i with probability (1/K) / n_{y_i}.
    q = shares[y] / counts[y]
    mean = q @ g
    np.testing.assert_allclose(
        table.loc["class_sampled", "trace_cov"], (q @ (g**2).sum(1) - mean @ mean) / B, rtol=1e-5
    )
    np.testing.assert_allclose(table.loc["class_sampled", "p_no_minority"], (1 - shares[-1]) ** B, rtol=1e-12)
    for row in table.itertuples():
        assert math.isclose(row.trace_sigma, B * row.trace_cov, rel_tol=1e-12)
        assert math.isclose(row.simple_noise_scale, row.trace_sigma / row.grad_sq_norm, rel_tol=1e-12)
        assert math.isclose(row.trace_cov, row.within_class + row.between_class, rel_tol=1e-12)


# ---------------------------------------------------------------------------------------------------------------
# Closed forms against Monte Carlo over the real pipelines.


def _synthetic_gradients(counts, seed=1):
    """Fixed per-example vectors with class-dependent means and unequal spreads, (N, 4)."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(len(counts)), counts)
    means = rng.normal(scale=1.5, size=(len(counts), 4))
    return means[y] + rng.normal(size=(len(y), 4)) * np.array([1.0, 1.0, 2.0, 0.5]), y


def _drawn_gradients(dataset, gradients, sampling, num_batches):
    """Batch gradients of `num_batches` batches of index features, computed here from the per-example matrix."""
    out = []
    for element in dataset.batch(1000).take(num_batches // 1000).as_numpy_iterator():
        index = element[0][..., 0].astype(np.int64)
        w = element[2] if len(element) == 3 else np.ones(index.shape)
        total = np.einsum("nb,nbp->np", w, gradients[index])
        out.append(total / (w.sum(1, keepdims=True) if sampling.reduction == "mean_with_sample_weight" else B))
    return np.concatenate(out)


def _pipeline_case(name, counts):
    """The real pipeline of strategy `name` over index features, and its `BatchSampling`."""
    index = np.arange(counts.sum(), dtype=np.float32)[:, None]
    y = np.repeat(np.arange(len(counts)), counts)
    weights = class_weights(counts)
    common = {"batch_size": B, "seed": 3}
    cases = {
        "none": lambda: (pipelines.natural(index, y, **common), BatchSampling.natural(counts)),
        "class_weight": lambda: (
            pipelines.weighted(index, y, class_weights=weights, **common),
            BatchSampling.weighted(counts, weights),
        ),
        "class_weight_self_normalised": lambda: (
            pipelines.weighted(index, y, class_weights=weights, **common),
            BatchSampling.weighted(counts, weights, reduction="mean_with_sample_weight"),
        ),
        "upsample": lambda: (pipelines.upsample(index, y, **common), BatchSampling.upsample(counts)),
        "downsample": lambda: (pipelines.downsample(index, y, **common), BatchSampling.downsample(counts)),
        "stratified": lambda: (pipelines.stratified(index, y, **common), BatchSampling.stratified(counts)),
        "class_sampled": lambda: (
            pipelines.class_sampled(index, y, shares=[0.5, 0.5], **common),
            BatchSampling.iid([0.5, 0.5]),
        ),
    }
    return cases[name]()


@pytest.mark.parametrize(
    "name",
    ["none", "class_weight", "class_weight_self_normalised", "upsample", "downsample", "stratified", "class_sampled"],
)
def test_closed_form_matches_monte_carlo_over_real_batches(name):
    """N = 400 (360 / 40), B = 16: every pass, pass slice and class stream is a whole number of batches, so the
    closed forms are exact for these pipelines; 4000 batches put the Monte Carlo within ~2% (4 standard errors
    allowed)."""
    gradients, _ = _synthetic_gradients(COUNTS)
    dataset, sampling = _pipeline_case(name, COUNTS)
    moments = diagnostics.ClassMoments.from_gradients(gradients, np.repeat([0, 1], COUNTS), num_classes=2)
    prediction = diagnostics.predict(moments, sampling, batch_size=B)
    draws = _drawn_gradients(dataset, gradients, sampling, 4000)
    deviation = ((draws - prediction.mean_gradient) ** 2).sum(1)
    assert abs(deviation.mean() - prediction.trace_cov) < 4 * deviation.std() / math.sqrt(len(draws))
    # The mean: n |mean - G|^2 / tr Cov has expectation at most 1 (batches within a pass are negatively correlated).
    assert len(draws) * np.sum((draws.mean(0) - prediction.mean_gradient) ** 2) / prediction.trace_cov < 12
    if name == "class_weight_self_normalised":
        assert prediction.closed_form == "enumerated" and prediction.bias_norm > 0.05


def test_rejection_is_approximated_within_the_documented_tolerance():
    """Rejection's kept counts vary from pass to pass; the closed form takes a pass of the expected size. Here (a
    kept pass of 80, B = 16) that understates tr Cov by about 4%; the documented bound is 10%."""
    gradients, y = _synthetic_gradients(COUNTS)
    index = np.arange(COUNTS.sum(), dtype=np.float32)[:, None]
    sampling = BatchSampling.rejection(COUNTS)
    moments = diagnostics.ClassMoments.from_gradients(gradients, y, num_classes=2)
    prediction = diagnostics.predict(moments, sampling, batch_size=B)
    draws = _drawn_gradients(pipelines.rejection(index, y, batch_size=B, seed=3), gradients, sampling, 4000)
    measured = ((draws - prediction.mean_gradient) ** 2).sum(1).mean()
    assert abs(measured / prediction.trace_cov - 1) < 0.10


def test_self_normalised_reduction_three_classes_against_simulation():
    """K = 3, independent draws, weights 1 : 3 : 9 and sum w g / sum w: the enumerated closed form against a numpy
    simulation of the estimator (200,000 batches), mean, bias and covariance."""
    counts = np.array([300, 100, 30])
    gradients, y = _synthetic_gradients(counts, seed=4)
    shares, weights = counts / counts.sum(), np.array([1.0, 3.0, 9.0])
    sampling = BatchSampling.iid(shares, class_weights=weights, reduction="mean_with_sample_weight")
    moments = diagnostics.ClassMoments.from_gradients(gradients, y, num_classes=3)
    prediction = diagnostics.predict(moments, sampling, batch_size=8)

    rng = np.random.default_rng(0)
    draws = rng.choice(len(y), size=(200_000, 8), p=(shares / counts)[y])
    w = weights[y[draws]]
    estimates = np.einsum("nb,nbp->np", w, gradients[draws]) / w.sum(1, keepdims=True)
    deviation = ((estimates - prediction.mean_gradient) ** 2).sum(1)
    assert prediction.closed_form == "enumerated"
    assert abs(deviation.mean() - prediction.trace_cov) < 4 * deviation.std() / math.sqrt(len(draws))
    target = (shares * weights) @ moments.means / (shares @ weights)
    simulated_bias = estimates.mean(0) - target
    np.testing.assert_allclose(np.linalg.norm(simulated_bias), prediction.bias_norm, rtol=0.05)


def test_delta_method_close_to_exact_enumeration(monkeypatch):
    """Where weights are moderate (1 : 2) and B = 64 the delta method is within 2% of the exact enumeration."""
    counts = np.array([600, 200])
    gradients, y = _synthetic_gradients(counts, seed=5)
    moments = diagnostics.ClassMoments.from_gradients(gradients, y, num_classes=2)
    sampling = BatchSampling.weighted(counts, [1.0, 2.0], reduction="mean_with_sample_weight")
    exact = diagnostics.predict(moments, sampling, batch_size=64)
    monkeypatch.setattr(exact_mode, "MAX_COMPOSITIONS", 0)
    delta = diagnostics.predict(moments, sampling, batch_size=64)
    assert (exact.closed_form, delta.closed_form) == ("enumerated", "delta")
    assert abs(delta.trace_cov / exact.trace_cov - 1) < 0.02
    assert abs(delta.bias_norm / exact.bias_norm - 1) < 0.05


# ---------------------------------------------------------------------------------------------------------------
# Hand-checkable cases.


@pytest.mark.parametrize("counts", [[200, 200], [64, 64, 64]])
def test_balanced_data_every_strategy_same_noise_and_stratified_drops_the_between_term(counts):
    """On balanced data every random-batch strategy is the same draw (weights 1, same pass): identical noise.
    Stratified batches differ by exactly the between-class term; that identity is exact when both draw with
    replacement (without replacement the two finite-population factors differ slightly: (n_c - k_c) / (n_c - 1)
    per class against (N - B) / (N - 1))."""
    counts = np.array(counts)
    k = len(counts)
    batch_size = 12  # divisible by K = 2 and 3, so stratified counts are exactly B / K
    gradients, y = _synthetic_gradients(counts, seed=6)
    moments = diagnostics.ClassMoments.from_gradients(gradients, y, num_classes=k)
    weights = class_weights(counts)
    uniform = np.full(k, 1 / k)
    samplings = [
        BatchSampling.natural(counts),
        BatchSampling.weighted(counts, weights),
        BatchSampling.weighted(counts, weights, reduction="mean_with_sample_weight", name="self_normalised"),
        BatchSampling.upsample(counts),
        BatchSampling.downsample(counts),
        BatchSampling.rejection(counts),
        BatchSampling.stratified(counts),
        BatchSampling.iid(uniform, name="independent"),
        BatchSampling("stratified_with_replacement", tuple(uniform), fixed_counts=True),
    ]
    table = diagnostics.noise_table(moments, samplings, batch_size=batch_size).set_index("strategy")
    random_batches = table.iloc[:6]
    for column in ("trace_cov", "within_class", "between_class", "grad_sq_norm"):
        np.testing.assert_allclose(random_batches[column], random_batches[column].iloc[0], rtol=1e-12)
    assert (random_batches["distance_to_balanced"] < 1e-9).all()
    assert random_batches["between_class"].iloc[0] > 0
    assert table.loc["stratified", "between_class"] == 0
    assert table.loc["stratified_with_replacement", "between_class"] == 0
    independent = table.loc["independent"]
    np.testing.assert_allclose(
        table.loc["stratified_with_replacement", "trace_cov"],
        independent["trace_cov"] - independent["between_class"],
        rtol=1e-12,
    )


def test_stratified_has_no_between_class_term_at_any_imbalance(three_classes):
    model, x, y, _ = three_classes
    counts = np.bincount(y)
    table = diagnostics.exact(
        model,
        x,
        y,
        [
            BatchSampling.stratified(counts),
            BatchSampling.stratified(counts, target_distribution=counts / counts.sum(), name="s2"),
        ],
        batch_size=10,
    )
    assert (table["between_class"] == 0).all()
    assert (table["p_no_minority"] == 0).all()


def test_subsampled_moments_are_unbiased():
    """Moments from per-class subsamples (with the |mu_c|^2 correction) average to the full-data moments."""
    counts = np.array([2000, 50])
    gradients, y = _synthetic_gradients(counts, seed=7)
    full = diagnostics.ClassMoments.from_gradients(gradients, y, num_classes=2)
    grams = []
    for seed in range(400):
        index = diagnostics.subsample(y, examples_per_class=20, seed=seed)
        grams.append(
            diagnostics.ClassMoments.from_gradients(gradients[index], y[index], num_classes=2, class_counts=counts).gram
        )
    grams = np.array(grams)
    se = grams.std(0) / math.sqrt(len(grams))
    assert (np.abs(grams.mean(0) - full.gram) < 4 * se + 1e-12).all()
    # Without the correction the diagonal would be high by (1 - m/n) S^2 / m, here over 10 standard errors.
    uncorrected = []
    for seed in range(400):
        index = diagnostics.subsample(y, examples_per_class=20, seed=seed)
        uncorrected.append(np.sum(gradients[index[y[index] == 0]].mean(0) ** 2))
    assert np.mean(uncorrected) - full.gram[0, 0] > 10 * se[0, 0]


def test_subsample_is_seeded_and_keeps_rare_classes_whole():
    y = np.repeat([0, 1, 2], [500, 30, 100])
    first = diagnostics.subsample(y, examples_per_class=64, seed=1)
    np.testing.assert_array_equal(first, diagnostics.subsample(y, examples_per_class=64, seed=1))
    assert not np.array_equal(first, diagnostics.subsample(y, examples_per_class=64, seed=2))
    np.testing.assert_array_equal(np.bincount(y[first]), [64, 30, 64])


def test_p_no_minority_matches_hypergeometric_and_binomial_by_hand():
    counts = np.array([360, 40])
    natural = exact_mode.BatchCounts.of(BatchSampling.natural(counts), B).p_absent(1)
    assert math.isclose(natural, math.comb(360, B) / math.comb(400, B), rel_tol=1e-10)
    independent = exact_mode.BatchCounts.of(BatchSampling.iid([0.9, 0.1]), B).p_absent(1)
    assert math.isclose(independent, 0.9**B, rel_tol=1e-12)


# ---------------------------------------------------------------------------------------------------------------
# Sampled mode.


def test_sampled_mode_agrees_with_exact_mode(binary):
    """1000 batches of the real natural and class-weighted pipelines: every estimate within 4 standard errors of the
    exact value, and the standard error of tr Cov under 6% of it (the tolerance stated in docs/diagnostics.md)."""
    model, x, y, _ = binary
    weights = class_weights(COUNTS)
    cases = [
        (pipelines.natural(x, y, batch_size=B, seed=5), BatchSampling.natural(COUNTS)),
        (
            pipelines.weighted(x, y, batch_size=B, seed=5, class_weights=weights),
            BatchSampling.weighted(COUNTS, weights),
        ),
    ]
    table = diagnostics.exact(model, x, y, [s for _, s in cases], batch_size=B).set_index("strategy")
    for dataset, sampling in cases:
        estimate = diagnostics.sampled(model, dataset, num_batches=1000, minority_class=1)
        exact = table.loc[sampling.name]
        for quantity in ("grad_sq_norm", "trace_cov", "trace_sigma", "simple_noise_scale", "p_no_minority"):
            value, se = getattr(estimate, quantity), getattr(estimate, f"{quantity}_se")
            assert abs(value - exact[quantity]) < 4 * se, (sampling.name, quantity, value, exact[quantity], se)
        assert estimate.trace_cov_se < 0.06 * exact["trace_cov"]
        assert estimate.batch_sizes == (B,) and estimate.num_batches == 1000


def test_sampled_mode_self_normalised_loss_matches_enumerated_exact(binary):
    model, x, y, _ = binary
    weights = class_weights(COUNTS)
    sampling = BatchSampling.weighted(COUNTS, weights, reduction="mean_with_sample_weight")
    loss = keras.losses.BinaryCrossentropy(reduction="mean_with_sample_weight")
    exact = diagnostics.exact(model, x, y, [sampling], batch_size=B, loss=loss).iloc[0]
    dataset = pipelines.weighted(x, y, batch_size=B, seed=6, class_weights=weights)
    estimate = diagnostics.sampled(model, dataset, num_batches=1000, loss=loss)
    assert abs(estimate.trace_cov - exact["trace_cov"]) < 4 * estimate.trace_cov_se
    assert abs(estimate.grad_sq_norm - exact["grad_sq_norm"]) < 4 * estimate.grad_sq_norm_se


def test_sampled_mode_is_deterministic_for_a_seeded_pipeline(binary):
    model, x, y, _ = binary
    first, second = (
        diagnostics.sampled(model, pipelines.upsample(x, y, batch_size=B, seed=2), num_batches=50, minority_class=1)
        for _ in range(2)
    )
    assert first.as_row() == second.as_row()
    np.testing.assert_array_equal(first.mean_gradient, second.mean_gradient)


def test_two_batch_size_estimator_is_unbiased(binary):
    """E[estimates] = (B_big E|g_big|^2 - B_small E|g_small|^2) / (B_big - B_small) etc., with E|g_B|^2 = |G|^2 +
    tr Cov(g_B) from the exact mode at each batch size (without replacement, tr Cov is not exactly tr Sigma / B)."""
    model, x, y, _ = binary
    small, big = 8, 80
    sampling = BatchSampling.natural(COUNTS)
    moments = diagnostics.class_moments(model, x, y)
    norms = {
        b: (p.grad_sq_norm + p.trace_cov)
        for b in (small, big)
        for p in [diagnostics.predict(moments, sampling, batch_size=b)]
    }
    expected_grad_sq = (big * norms[big] - small * norms[small]) / (big - small)
    expected_sigma = (norms[small] - norms[big]) / (1 / small - 1 / big)
    estimate = diagnostics.two_batch_sizes(
        model,
        pipelines.natural(x, y, batch_size=small, seed=1),
        pipelines.natural(x, y, batch_size=big, seed=2),
        num_batches=1000,
    )
    assert estimate.batch_sizes == (small, big) and estimate.method == "two_batch_sizes"
    assert abs(estimate.grad_sq_norm - expected_grad_sq) < 4 * estimate.grad_sq_norm_se
    assert abs(estimate.trace_sigma - expected_sigma) < 4 * estimate.trace_sigma_se
    assert abs(estimate.simple_noise_scale - expected_sigma / expected_grad_sq) < 4 * estimate.simple_noise_scale_se


def test_jackknife_standard_errors_cover_at_the_nominal_rate():
    """Batch gradients from a known Gaussian (|G|^2 = 1, tr Cov = 4): 95% intervals of 400 replications cover the
    truth between 90% and 99% of the time (binomial bounds around 95% at n = 400)."""
    rng = np.random.default_rng(0)
    mean, scale, n, groups = np.array([1.0, 0.0, 0.0, 0.0]), 1.0, 200, 32
    covered = np.zeros(2)
    for _ in range(400):
        g = mean + scale * rng.normal(size=(n, 4))
        sums = np.stack([g[j::groups].sum(0) for j in range(groups)])
        squares = np.array([(g[j::groups] ** 2).sum() for j in range(groups)])
        counts = np.array([len(g[j::groups]) for j in range(groups)], dtype=float)
        est = sampled_mode.one_size_estimates(sums, squares, counts, batch_size=1)
        covered += [
            abs(est["grad_sq_norm"] - 1.0) < 1.96 * est["grad_sq_norm_se"],
            abs(est["trace_cov"] - 4.0) < 1.96 * est["trace_cov_se"],
        ]
    assert ((covered / 400 > 0.90) & (covered / 400 < 0.99)).all(), covered / 400


# ---------------------------------------------------------------------------------------------------------------
# Bad input: one line each.


def _one_line(error):
    message = str(error.value)
    assert "\n" not in message and "Received" in message, message
    return message


def test_unsupported_strategy_is_one_line():
    with pytest.raises(UserInputError) as error:
        diagnostics.describe("progressive", COUNTS)
    message = _one_line(error)
    assert "strategy='progressive'" in message
    assert f"strategy must be one of {', '.join(diagnostics.describable())} " in message


def test_describe_reads_each_strategys_declaration_from_the_registry():
    able = diagnostics.describable()
    assert {"none", "class_weight", "stratified", "focal", "sqrt_sampling"} <= set(able)
    assert "progressive_sampling" not in able  # a schedule: no one description
    reduced = diagnostics.describe("class_weight", COUNTS, params={"weight_reduction": "mean_with_sample_weight"})
    assert reduced == BatchSampling.weighted(COUNTS, class_weights(COUNTS), reduction="mean_with_sample_weight")
    assert diagnostics.describe("upsample", COUNTS, target_distribution=[0.7, 0.3]) == BatchSampling.upsample(
        COUNTS, target_distribution=[0.7, 0.3]
    )
    assert diagnostics.describe("focal", COUNTS) == BatchSampling.natural(COUNTS, name="focal")


@pytest.mark.parametrize(
    "sampling, batch_size, expected",
    [
        (BatchSampling.natural(COUNTS), 401, "larger than the data (400 examples)"),
        (BatchSampling.downsample(COUNTS), 96, "larger than one pass of 'downsample' (80 examples)"),
        (BatchSampling.stratified(COUNTS), 96, "asks 48 examples of class 1 per stratified batch"),
        (BatchSampling.natural(COUNTS), 0, "batch_size must be an integer >= 1"),
    ],
)
def test_batch_size_larger_than_the_data_is_one_line(sampling, batch_size, expected):
    gradients, y = _synthetic_gradients(COUNTS)
    moments = diagnostics.ClassMoments.from_gradients(gradients, y, num_classes=2)
    with pytest.raises(UserInputError) as error:
        diagnostics.predict(moments, sampling, batch_size=batch_size)
    assert expected in _one_line(error)


def test_loss_that_is_not_per_example_is_one_line(binary):
    model, x, y, _ = binary

    def batch_mean(y_true, y_pred):
        return tf.reduce_mean(keras.losses.binary_crossentropy(y_true, y_pred))

    with pytest.raises(UserInputError) as error:
        diagnostics.exact(model, x, y, [BatchSampling.natural(COUNTS)], batch_size=B, loss=batch_mean)
    assert "one value per example" in _one_line(error) and "batch_mean" in str(error.value)


def test_model_too_large_for_the_exact_mode_is_one_line():
    model = models.build((20,), 2, hidden_units=(64, 64))
    model.compile(loss="binary_crossentropy")
    x, y = _features([30, 10], 20, seed=0)
    with pytest.raises(UserInputError) as error:
        diagnostics.exact(model, x, y, [BatchSampling.natural([30, 10])], batch_size=8, max_parameters=1000)
    message = _one_line(error)
    assert "5,569 trainable parameters" in message and "sampled mode" in message


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"class_shares": (0.5, 0.6)}, "class_shares must be"),
        ({"class_shares": (0.5, 0.5), "class_weights": (1.0, -1.0)}, "class_weights must be"),
        ({"class_shares": (0.5, 0.5), "reduction": "sum"}, "reduction must be one of"),
        ({"class_shares": (0.5, 0.5), "pass_size": 0}, "pass_size must be"),
    ],
)
def test_bad_batch_sampling_is_one_line(kwargs, expected):
    with pytest.raises(UserInputError) as error:
        BatchSampling("s", **kwargs)
    assert expected in _one_line(error)


def test_too_few_batches_is_one_line(binary):
    model, x, y, _ = binary
    finite = tf.data.Dataset.from_tensor_slices((x, y)).batch(B, drop_remainder=True)
    with pytest.raises(UserInputError) as error:
        diagnostics.sampled(model, finite, num_batches=100)
    assert "more than the dataset holds (25 batches)" in _one_line(error)


# ---------------------------------------------------------------------------------------------------------------
# The callback.


def _fit(callbacks, x, y, *, steps_per_epoch=5, epochs=2):
    keras.utils.set_random_seed(0)
    model = models.build(x.shape[1:], 2, hidden_units=(4,), seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=losses.cross_entropy(2))
    model.fit(
        pipelines.natural(x, y, batch_size=B, seed=0),
        steps_per_epoch=steps_per_epoch,
        epochs=epochs,
        callbacks=callbacks,
        verbose=0,
        shuffle=False,  # the pipeline shuffles, seeded
    )
    return model


def _scalar_events(directory):
    values = {}
    for name in os.listdir(directory):
        for event in tf.compat.v1.train.summary_iterator(os.path.join(directory, name)):
            for value in event.summary.value:
                values[(event.step, value.tag)] = float(tf.make_ndarray(value.tensor))
    return values


def test_callback_records_on_schedule_without_changing_training(tmp_path):
    x, y = _features(COUNTS, 3, seed=2)
    samplings = [BatchSampling.natural(COUNTS), BatchSampling.upsample(COUNTS)]
    noise = GradientNoise(str(tmp_path), x, y, samplings, batch_size=B, every_n_steps=4, examples_per_class=64)
    observed = _fit([noise], x, y)
    plain = _fit([], x, y)
    for a, b in zip(observed.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)

    frame = noise.dataframe()
    assert frame["step"].tolist() == [0, 0, 4, 4, 8, 8, 10, 10]
    assert frame["strategy"].tolist() == ["none", "upsample"] * 4
    assert frame["epoch"].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]

    # The last row is the exact mode on the same subsample at the final weights.
    index = diagnostics.subsample(y, examples_per_class=64, seed=0)
    final = diagnostics.exact(observed, x[index], y[index], samplings, batch_size=B, class_counts=COUNTS)
    np.testing.assert_allclose(frame[frame["step"] == 10]["trace_cov"], final["trace_cov"], rtol=1e-12)

    events = _scalar_events(tmp_path / "train")
    assert len(events) == 4 * len(noise.tags())
    row = frame.iloc[2]
    for quantity in diagnostics.QUANTITIES:
        assert math.isclose(events[(4, f"diagnostics/none/{quantity}")], row[quantity], rel_tol=1e-6, abs_tol=1e-30)
    assert math.isclose(events[(4, "diagnostics/class_1/second_moment")], row["second_moment_class_1"], rel_tol=1e-6)

    summary = noise.summary()
    assert summary["diagnostics_upsample_trace_cov_final"] == frame.iloc[-1]["trace_cov"]
    assert math.isclose(
        summary["diagnostics_none_simple_noise_scale_mean"],
        frame[frame["strategy"] == "none"]["simple_noise_scale"].mean(),
    )
    noise.to_csv(str(tmp_path / "noise.csv"))
    assert (tmp_path / "noise.csv").read_text().startswith("step,epoch,strategy,batch_size,closed_form,grad_sq_norm")


def test_callback_config_round_trip(tmp_path):
    x, y = _features(COUNTS, 3, seed=2)
    noise = GradientNoise(
        str(tmp_path),
        x,
        y,
        [BatchSampling.stratified(COUNTS)],
        batch_size=B,
        every_n_steps=7,
        loss="binary_crossentropy",
    )
    copy = GradientNoise.from_config(noise.get_config())
    assert copy.samplings == noise.samplings and copy.every_n_steps == 7 and copy.loss == "binary_crossentropy"
    with pytest.raises(UserInputError) as error:
        GradientNoise(str(tmp_path), x, y, [BatchSampling.natural(COUNTS)], batch_size=B, every_n_steps=0)
    assert "every_n_steps" in _one_line(error)


# ---------------------------------------------------------------------------------------------------------------
# The documentation runs.


@pytest.mark.slow
def test_docs_python_blocks_run(tmp_path, monkeypatch):
    with open(os.path.join(ROOT, "docs", "diagnostics.md")) as f:
        blocks = re.findall(r"```python\n(.*?)```", f.read(), re.S)
    assert blocks
    monkeypatch.chdir(tmp_path)
    scope = {}
    for block in blocks:
        exec(block, scope)
