"""GradientNoise on the JAX backend: plain-fit weights, and moments from per-example `jax.grad` written here."""

import jax
import jax_testing as jt
import numpy as np

import imbal_keras.callbacks as ik
from imbal_keras.data.batch_sampling import BatchSampling
from imbal_keras.diagnostics import QUANTITIES, ClassMoments, predict, subsample

CASE = jt.Case([(8, "relu"), (1, "sigmoid")], examples=64)
EXAMPLES_PER_CLASS = 16


def _fit(model, data, callbacks):
    x, y, _ = data
    model.fit(x, y, batch_size=CASE.batch_size, epochs=2, shuffle=False, verbose=0, callbacks=callbacks)


def _expected_rows(weights, x, y, samplings, counts) -> list[dict]:
    """The diagnosis at `weights` from per-example gradients of `jt.forward` and `jt.per_example_loss`."""

    def loss(params, xi, yi):
        return jt.per_example_loss(CASE, yi[None], jt.forward(CASE, params, xi[None]))[0]

    grads = jax.vmap(jax.grad(loss), in_axes=(None, 0, 0))([np.asarray(w) for w in weights], x, y)
    flat = np.concatenate([np.asarray(g, np.float64).reshape(len(y), -1) for g in grads], axis=1)
    moments = ClassMoments.from_gradients(flat, y.astype(int), num_classes=2, class_counts=counts)
    return [predict(moments, s, batch_size=CASE.batch_size).as_row() for s in samplings]


def test_gradient_noise_trains_like_a_plain_fit_and_matches_per_example_jax_grad(tmp_path):
    data = CASE.data()
    x, y, _ = data
    labels = y.astype(int)
    counts = np.bincount(labels, minlength=2)
    samplings = [BatchSampling.natural(counts), BatchSampling.upsample(counts)]
    plain, observed = jt.keras_model(CASE), jt.keras_model(CASE)
    trajectory = jt.Trajectory()
    noise = ik.GradientNoise(
        str(tmp_path),
        x,
        labels,
        samplings,
        batch_size=CASE.batch_size,
        every_n_steps=3,
        examples_per_class=EXAMPLES_PER_CLASS,
    )
    _fit(plain, data, [])
    _fit(observed, data, [noise, trajectory])

    for u, v in zip(observed.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_array_equal(u, v)
    frame = noise.dataframe()
    steps = sorted(set(frame["step"]))
    assert steps == [0, 3, 6, 8]
    index = subsample(labels, examples_per_class=EXAMPLES_PER_CLASS, seed=0)
    for step in steps:
        expected = _expected_rows(trajectory.weights[step], x[index], y[index], samplings, counts)
        found = frame[frame["step"] == step].to_dict("records")
        for row, want in zip(found, expected, strict=True):
            for quantity in QUANTITIES:
                np.testing.assert_allclose(row[quantity], want[quantity], rtol=2e-5, atol=1e-9, err_msg=quantity)
