"""Throughput of the stock tf.data rebalancing recipes and of every imbal_keras strategy, side by side.

All pipelines read the same in-memory arrays (16 float32 features, binary labels at 1:ratio) in one process.
Each is consumed inside the graph (`take(n).map(minority share).batch(n)`, as a Keras train step reads it),
in `--rounds` interleaved rounds; a row reports the median examples/s, the median of the per-round ratios to
the plain `shuffle().repeat().batch()` pipeline, and the minority share per batch (mean, std) over all rounds.
The stock `rejection_resample` runs about a thousand times slower, so it reads `--stock_rejection_examples`
examples per round instead.

  python -m benchmarks.pipeline_throughput --ratio 99 --json /tmp/throughput.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from imbal_keras import strategies  # noqa: E402

_FEATURES = 16
_SHUFFLE_BUFFER = 10_000
_TARGET = (0.5, 0.5)


def make_data(num_examples: int, ratio: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features (N, 16) float32 and labels (N,) int64 with exactly N / (ratio + 1) positives (rounded)."""
    rng = np.random.default_rng(seed)
    y = np.zeros(num_examples, np.int64)
    y[rng.choice(num_examples, round(num_examples / (ratio + 1)), replace=False)] = 1
    return rng.standard_normal((num_examples, _FEATURES)).astype(np.float32), y


def stock_pipelines(x, y, batch_size: int, seed: int) -> dict[str, tf.data.Dataset]:
    """The recipes of the TensorFlow imbalanced-data tutorial and `rejection_resample`, over the same arrays."""
    counts = np.bincount(y, minlength=2)
    weights = tf.constant(counts.sum() / (2.0 * counts), tf.float32)

    def shuffled(xs, ys):
        return tf.data.Dataset.from_tensor_slices((xs, ys)).shuffle(_SHUFFLE_BUFFER, seed=seed).repeat()

    def batched(ds):
        return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)

    per_class = [shuffled(x[y == c], y[y == c]) for c in (0, 1)]
    resampled = shuffled(x, y).rejection_resample(
        lambda xs, ys: ys, target_dist=list(_TARGET), initial_dist=(counts / counts.sum()).tolist(), seed=seed
    )
    return {
        "stock: plain": batched(shuffled(x, y)),
        "stock: class-weight map": batched(shuffled(x, y)).map(lambda xs, ys: (xs, ys, tf.gather(weights, ys))),
        "stock: sample_from_datasets": batched(tf.data.Dataset.sample_from_datasets(per_class, list(_TARGET), seed)),
        "stock: rejection_resample": batched(resampled.map(lambda _, xy: xy)),
    }


def ours(x, y, batch_size: int, seed: int) -> dict[str, tf.data.Dataset]:
    """Every registered strategy, in memory and in its streaming form over `from_tensor_slices`."""
    ctx = strategies.StrategyContext(
        class_counts=np.bincount(y, minlength=2),
        target_distribution=np.asarray(_TARGET),
        batch_size=batch_size,
        seed=seed,
        shuffle_buffer=_SHUFFLE_BUFFER,
    )
    examples = tf.data.Dataset.from_tensor_slices((x, y))
    built = {f"imbal: {name}": strategies.build_pipeline(name, x, y, ctx) for name in strategies.names()}
    built.update({f"imbal stream: {name}": strategies.build_stream(name, examples, ctx) for name in strategies.names()})
    return built


def measure(ds: tf.data.Dataset, num_batches: int) -> tuple[float, np.ndarray]:
    """Seconds to read `num_batches` batches in the graph, and each batch's minority share."""
    shares = ds.map(lambda x, y, *w: tf.reduce_mean(tf.cast(y, tf.float32)))
    shares.take(2).reduce(0.0, lambda a, s: a + s)  # warm-up: builds the first pass, fills prefetch buffers
    start = time.perf_counter()
    values = shares.take(num_batches).batch(num_batches).get_single_element()
    return time.perf_counter() - start, values.numpy()


def run(args) -> list[dict]:
    x, y = make_data(args.examples, args.ratio)
    rows = []
    for batch_size in args.batch_sizes:
        pipelines = {**stock_pipelines(x, y, batch_size, args.seed), **ours(x, y, batch_size, args.seed)}
        rates, ratios, shares = ({name: [] for name in pipelines} for _ in range(3))
        for _ in range(args.rounds):
            round_rate = {}
            for name, ds in pipelines.items():
                examples = args.stock_rejection_examples if "rejection_resample" in name else args.measure_examples
                num_batches = max(1, examples // batch_size)
                seconds, batch_shares = measure(ds, num_batches)
                round_rate[name] = num_batches * batch_size / seconds
                shares[name].append(batch_shares)
            for name, rate in round_rate.items():
                rates[name].append(rate)
                ratios[name].append(rate / round_rate["stock: plain"])
        for name in pipelines:
            all_shares = np.concatenate(shares[name])
            rows.append(
                {
                    "batch_size": batch_size,
                    "ratio": f"1:{args.ratio}",
                    "pipeline": name,
                    "examples_per_s": statistics.median(rates[name]),
                    "ratio_to_plain": statistics.median(ratios[name]),
                    "minority_share_mean": float(all_shares.mean()),
                    "minority_share_std": float(all_shares.std()),
                    "examples_measured": int(len(all_shares) * batch_size),
                }
            )
    return rows


def format_table(rows: list[dict]) -> str:
    """Markdown table of the rows."""
    lines = [
        "| batch | pipeline | examples/s | ratio to plain | minority share per batch (mean ± std) | examples read |",
        "|---:|:---|---:|---:|:---|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['batch_size']} | {r['pipeline']} | {r['examples_per_s']:,.0f} | {r['ratio_to_plain']:.2f}x | "
            f"{r['minority_share_mean']:.4f} ± {r['minority_share_std']:.4f} | {r['examples_measured']:,} |"
        )
    return "\n".join(lines)


def _parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=200_000, help="rows in the arrays")
    parser.add_argument("--ratio", type=int, choices=(9, 99, 999), default=99, help="majority:minority ratio")
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[16, 256])
    parser.add_argument("--measure_examples", type=int, default=100_000, help="examples read per pipeline and round")
    parser.add_argument("--stock_rejection_examples", type=int, default=2_048)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the rows to this JSON file")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = _parse_args(argv)
    rows = run(args)
    print(f"{args.examples:,} examples at 1:{args.ratio}, {os.cpu_count()} CPU cores, {args.rounds} rounds")
    print(format_table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
