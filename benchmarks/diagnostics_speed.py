"""Speed of the gradient-noise diagnostics: the exact mode against stock per-example gradients, and the callback's cost.

1. Exact mode: per-class moments of the per-example gradients of the default 2x64 MLP (20 features, 5,569
   parameters) on 20,000 examples, `diagnostics.class_moments`, against two stock ways of getting the same
   per-example gradients in TensorFlow: `GradientTape.jacobian` (pfor) over a chunk's per-example losses, and one
   `GradientTape` per example in a compiled loop. The stock ways run on a slice (`--stock_examples`) and are scaled
   to 20,000; every way's per-class sums are checked against ours on that slice.
2. Callback: the default run (`experiment.run(ExperimentConfig())`: 30,000 training examples of the default
   synthetic data at 1:99, batch 16, plain SGD, 2,000 steps, evaluation every 200) with and without `GradientNoise`
   at its defaults (every 200 steps and after the last, up to 1,024 examples per class, the six built-in
   strategies) passed as an extra callback. `--repeats` rounds each run both back to back, in alternating order;
   printed are the median wall and process CPU time of each, the median over rounds of the within-round ratio, and
   the time spent inside the callback's diagnoses (tracing included) as a share of the run: the one figure that
   other processes on a shared machine do not blur.

All in one process with `--threads` TensorFlow threads (2: the target machine).

3. With `--agreement` (instead of 1 and 2): the sampled mode against the exact mode on the default data and MLP at
   initialisation, through the real none / class_weight / upsample / stratified pipelines at 250, 1,000 and 4,000
   batches: relative error, relative standard error and z = error / standard error.

    python -m benchmarks.diagnostics_speed [--repeats 5] [--threads 2] [--agreement] [--json rows.json]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import _memory  # noqa: E402
from imbal_keras import diagnostics, losses, models  # noqa: E402
from imbal_keras.callbacks import GradientNoise
from imbal_keras.config import ExperimentConfig  # noqa: E402
from imbal_keras.data import pipelines, sources
from imbal_keras.data.shares import class_weights
from imbal_keras.training import experiment

_EXAMPLES = 20_000
_FEATURES = 20


def _mlp(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = models.build((_FEATURES,), 2, hidden_units=(64, 64), seed=seed)
    model.compile(optimizer=models.optimizer("sgd", 0.05), loss=losses.cross_entropy(2))
    return model


def _stock_jacobian(model, x, y, one_hot, chunk):
    loss = model.loss
    weights = model.trainable_weights

    @tf.function
    def sums(xc, yc, hc):
        with tf.GradientTape() as tape:
            values = loss.call(tf.cast(yc, tf.float32), model(xc, training=False))
        jac = tape.jacobian(values, weights, experimental_use_pfor=True)
        g = tf.concat([tf.reshape(j, [tf.shape(xc)[0], -1]) for j in jac], 1)
        return tf.matmul(hc, g, transpose_a=True)

    return sum(
        sums(x[s : s + chunk], y[s : s + chunk], one_hot[s : s + chunk]).numpy() for s in range(0, len(y), chunk)
    )


def _stock_loop(model, x, y, one_hot):
    loss = model.loss
    weights = model.trainable_weights

    @tf.function
    def sums(xs, ys, hs):
        total = tf.zeros((hs.shape[1], sum(int(np.prod(w.shape)) for w in weights)))
        for i in tf.range(tf.shape(xs)[0]):
            with tf.GradientTape() as tape:
                value = tf.reduce_sum(
                    loss.call(tf.cast(ys[i : i + 1], tf.float32), model(xs[i : i + 1], training=False))
                )
            g = tf.concat([tf.reshape(t, [-1]) for t in tape.gradient(value, weights)], 0)
            total += hs[i][:, None] * g[None, :]
        return total

    return sums(x, y, one_hot).numpy()


def _timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def exact_mode(stock_examples: int) -> list[dict]:
    rng = np.random.default_rng(0)
    y = (rng.random(_EXAMPLES) < 0.05).astype(np.int32)
    x = (rng.normal(size=(_EXAMPLES, _FEATURES)) + y[:, None]).astype(np.float32)
    one_hot = np.eye(2, dtype=np.float32)[y]
    model = _mlp()
    model.predict(x[:64], verbose=0)  # start the runtime, so the first call below times tracing, not start-up
    first, _ = _timed(lambda: diagnostics.class_moments(model, x, y))
    ours, moments = _timed(lambda: diagnostics.class_moments(model, x, y))
    rows = [
        {"way": "diagnostics.class_moments, first call (with tracing)", "seconds_for_20000": first},
        {"way": "diagnostics.class_moments, traced", "seconds_for_20000": ours},
    ]
    # The slice's per-class sums, from ours, to check the stock ways against.
    head = slice(0, stock_examples)
    reference = diagnostics.class_moments(model, x[head], y[head]).means * np.bincount(y[head])[:, None]
    for name, fn in (
        (
            "GradientTape.jacobian (pfor), chunks of 512",
            lambda: _stock_jacobian(model, x[head], y[head], one_hot[head], 512),
        ),
        (
            "one GradientTape per example (tf.function loop)",
            lambda: _stock_loop(model, x[head], y[head], one_hot[head]),
        ),
    ):
        fn()  # trace
        seconds, sums = _timed(fn)
        np.testing.assert_allclose(sums, reference, rtol=1e-3, atol=1e-4)
        rows.append(
            {"way": f"{name}, scaled from {stock_examples}", "seconds_for_20000": seconds * _EXAMPLES / stock_examples}
        )
    assert moments.class_counts.sum() == _EXAMPLES
    for row in rows:
        row["ratio_to_ours"] = row["seconds_for_20000"] / ours
    return rows


# The six strategies that differ in how they form batches (the loss-side ones form natural batches).
_RESAMPLING_AND_WEIGHTS = ("none", "class_weight", "upsample", "downsample", "rejection", "stratified")


class _TimedNoise(GradientNoise):
    """`GradientNoise` that records the wall time of each diagnosis (the first one traces the program)."""

    def diagnose(self, step):
        start = time.perf_counter()
        try:
            return super().diagnose(step)
        finally:
            self.__dict__.setdefault("durations", []).append(time.perf_counter() - start)


def callback_overhead(repeats: int, output_dir: str) -> list[dict]:
    config = ExperimentConfig().replace(output_dir=output_dir)  # the default run: 2,000 steps of batch 16 at 1:99
    data = sources.load(config.data, seed=config.seed_for("data"))
    x, y = data.train.x, data.train.y
    counts = data.train.class_counts(data.num_classes)
    samplings = [diagnostics.describe(name, counts) for name in _RESAMPLING_AND_WEIGHTS]
    names = ("default run", "default run + GradientNoise (defaults)")
    wall, cpu, durations = {n: [] for n in names}, {n: [] for n in names}, []

    def run(with_noise: bool, *, record: bool = True) -> None:
        noise = _TimedNoise(output_dir, x, y, samplings, batch_size=config.training.batch_size) if with_noise else None
        start, start_cpu = time.perf_counter(), time.process_time()
        experiment.run(config, callbacks=[noise] if noise else [], log=None)
        if record:
            wall[names[with_noise]].append(time.perf_counter() - start)
            cpu[names[with_noise]].append(time.process_time() - start_cpu)
            if noise:
                durations.append(noise.durations)

    run(False, record=False)  # one-off process costs (thread pools, kernel caches) stay out of the timings
    for repeat in range(repeats):
        # Each round runs both, back to back, in alternating order: a ratio within a round sees the same load.
        for with_noise in (repeat % 2 == 1, repeat % 2 == 0):
            run(with_noise)
    plain_wall = statistics.median(wall[names[0]])

    def ratios(times):
        return [b / a for a, b in zip(times[names[0]], times[names[1]], strict=True)]

    def paired(times):
        return statistics.median(ratios(times))

    rows = [
        {
            "configuration": name,
            "median_seconds": statistics.median(wall[name]),
            "ratio_to_plain": paired(wall) if name == names[1] else 1.0,
            "median_cpu_seconds": statistics.median(cpu[name]),
            "cpu_ratio_to_plain": paired(cpu) if name == names[1] else 1.0,
        }
        for name in names
    ]
    rows[1]["wall_ratios_by_round"] = ratios(wall)
    rows[1]["cpu_ratios_by_round"] = ratios(cpu)
    inside = statistics.median(sum(d) for d in durations)
    rows[1]["diagnoses_per_run"] = len(durations[0])
    rows[1]["median_seconds_in_diagnoses"] = inside
    rows[1]["diagnoses_share_of_run"] = inside / plain_wall
    rows[1]["median_first_diagnosis_seconds"] = statistics.median(d[0] for d in durations)
    rows[1]["median_later_diagnosis_seconds"] = statistics.median(t for d in durations for t in d[1:])
    return rows


def agreement(batch_counts: list[int]) -> list[dict]:
    """Sampled against exact mode on the default run's data and MLP at initialisation, four real pipelines."""
    data = sources.synthetic(seed=0)
    x, y = data.train.x, data.train.y
    counts = data.train.class_counts(2)
    model = _mlp()
    names = ("none", "class_weight", "upsample", "stratified")
    samplings = [diagnostics.describe(name, counts) for name in names]
    exact = diagnostics.exact(model, x, y, samplings, batch_size=16).set_index("strategy")
    ctx = {"batch_size": 16, "seed": 1}
    weights = class_weights(counts)
    builders = {
        "none": lambda: pipelines.natural(x, y, **ctx),
        "class_weight": lambda: pipelines.weighted(x, y, class_weights=weights, **ctx),
        "upsample": lambda: pipelines.upsample(x, y, **ctx),
        "stratified": lambda: pipelines.stratified(x, y, **ctx),
    }
    rows = []
    for name in names:
        for n in batch_counts:
            estimate = diagnostics.sampled(model, builders[name](), num_batches=n)
            for quantity in ("trace_cov", "grad_sq_norm", "simple_noise_scale"):
                value, se, truth = (
                    getattr(estimate, quantity),
                    getattr(estimate, f"{quantity}_se"),
                    exact.loc[name, quantity],
                )
                rows.append(
                    {
                        "strategy": name,
                        "num_batches": n,
                        "quantity": quantity,
                        "relative_error": value / truth - 1,
                        "relative_se": se / truth,
                        "z": (value - truth) / se,
                    }
                )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="fits per configuration")
    parser.add_argument("--threads", type=int, default=2, help="TensorFlow intra- and inter-op threads")
    parser.add_argument("--stock_examples", type=int, default=1024, help="examples the stock ways are timed on")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument(
        "--agreement",
        action="store_true",
        help="instead: sampled against exact mode (relative error, relative standard error) at 250, 1000, 4000 batches",
    )
    args = parser.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    warnings.filterwarnings("ignore", message="`shuffle=True` was passed")
    load_before = os.getloadavg()[0]
    if args.agreement:
        rows = agreement([250, 1000, 4000])
        print(f"{'strategy':<14} {'batches':>8} {'quantity':<20} {'rel. error':>10} {'rel. SE':>8} {'z':>6}")
        for row in rows:
            print(
                f"{row['strategy']:<14} {row['num_batches']:>8} {row['quantity']:<20} "
                f"{row['relative_error']:>+10.3f} {row['relative_se']:>8.3f} {row['z']:>+6.2f}"
            )
        _memory.write_json(args.json, rows)
        return

    exact_rows = exact_mode(args.stock_examples)
    print(f"{'exact mode: per-class moments, 2x64 MLP, 20,000 examples':<72} {'seconds':>8} {'x ours':>8}")
    for row in exact_rows:
        print(f"{row['way']:<72} {row['seconds_for_20000']:>8.2f} {row['ratio_to_ours']:>7.1f}x")
    with tempfile.TemporaryDirectory() as output_dir:
        callback_rows = callback_overhead(args.repeats, output_dir)
    print(
        f"\n{'callback: the default run (2,000 steps of batch 16), medians':<60} "
        f"{'wall s':>7} {'x run':>8} {'CPU s':>7} {'x run':>8}"
    )
    for row in callback_rows:
        print(
            f"{row['configuration']:<60} {row['median_seconds']:>7.2f} {row['ratio_to_plain']:>7.3f}x "
            f"{row['median_cpu_seconds']:>7.2f} {row['cpu_ratio_to_plain']:>7.3f}x"
        )
    noise = callback_rows[1]
    for clock in ("wall", "cpu"):
        print(f"{clock} ratio by round: " + " ".join(f"{r:.3f}" for r in noise[f"{clock}_ratios_by_round"]))
    print(
        f"{noise['diagnoses_per_run']} diagnoses per run took {noise['median_seconds_in_diagnoses']:.2f} s (median), "
        f"{100 * noise['diagnoses_share_of_run']:.1f}% of the run's wall time; the first (tracing) "
        f"{noise['median_first_diagnosis_seconds']:.2f} s, later ones "
        f"{1000 * noise['median_later_diagnosis_seconds']:.0f} ms"
    )
    print(f"load average (1 min): {load_before:.1f} before, {os.getloadavg()[0]:.1f} after")
    _memory.write_json(args.json, exact_rows + callback_rows)


if __name__ == "__main__":
    main()
