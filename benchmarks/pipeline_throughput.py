"""Throughput of the stock tf.data rebalancing recipes and of every imbal_keras strategy, side by side.

All pipelines read the same in-memory arrays (16 float32 features; binary labels at 1:ratio, or with `--classes K`
K classes whose sizes fall exponentially from the largest to the smallest, ratio times fewer, as in CIFAR-10-LT)
in one process, rebalancing towards uniform. Each is consumed inside the graph (`take(n).map(minority
share).batch(n)`, as a Keras train step reads it; the minority is the smallest class),
in `--rounds` interleaved rounds; a row reports the median examples/s, the median of the per-round ratios to
the plain `shuffle().repeat().batch()` pipeline and to the stock `rejection_resample`, and the minority share
per batch (mean, std) over all rounds. The stock `rejection_resample` runs about a thousand times slower, so it
reads `--stock_rejection_examples` examples per round instead.

`--memory`: peak resident memory instead, each pipeline (stock recipes and the in-memory strategies, first batch
size) in its own process over `--examples` rows, reading `--memory_examples` examples after building; the table
shows the RSS after importing TensorFlow, after making the arrays, the peak, and the peak's and the pipeline's
own share (peak minus arrays) as ratios to stock plain's.

  python -m benchmarks.pipeline_throughput --ratio 99 --json /tmp/throughput.json
  python -m benchmarks.pipeline_throughput --classes 10 --ratio 99 --only none upsample sqrt_sampling
  python -m benchmarks.pipeline_throughput --memory --examples 10000000 --batch_sizes 256
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import time
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import imbal_keras.strategies.long_tail  # noqa: E402, F401  (registers the class-aware samplers)
from benchmarks import _memory  # noqa: E402
from imbal_keras import strategies  # noqa: E402
from imbal_keras.data.shares import apportion  # noqa: E402

_FEATURES = 16
_SHUFFLE_BUFFER = 10_000
# The step budget the schedules (progressive_sampling, ldam's switch) are laid over; it does not change the cost.
_TOTAL_STEPS = 10_000
_STOCK_REJECTION = "stock: rejection_resample"
STOCK = ("stock: plain", "stock: class-weight map", "stock: sample_from_datasets", _STOCK_REJECTION)


def make_data(num_examples: int, ratio: int, num_classes: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features (N, 16) float32 and labels (N,) int64 in random order.

    Class c has N s_c examples (largest remainders), s_c proportional to ratio^(-c / (K - 1)): for K = 2 exactly
    N / (ratio + 1) positives (rounded), for K > 2 an exponential long tail with n_0 / n_{K-1} = ratio.
    """
    rng = np.random.default_rng(seed)
    shares = float(ratio) ** (-np.arange(num_classes) / (num_classes - 1))
    counts = apportion(num_examples, shares / shares.sum())
    y = rng.permutation(np.repeat(np.arange(num_classes), counts)).astype(np.int64)
    return rng.standard_normal((num_examples, _FEATURES), dtype=np.float32), y


def _uniform(y) -> np.ndarray:
    k = int(y.max()) + 1
    return np.full(k, 1.0 / k)


def stock_pipelines(x, y, batch_size: int, seed: int) -> dict[str, Callable[[], tf.data.Dataset]]:
    """Builders of the TensorFlow imbalanced-data tutorial's recipes and `rejection_resample`, over the same arrays."""
    target = _uniform(y)
    counts = np.bincount(y, minlength=len(target))
    weights = tf.constant(counts.sum() / (len(target) * counts), tf.float32)

    def shuffled(xs, ys):
        return tf.data.Dataset.from_tensor_slices((xs, ys)).shuffle(_SHUFFLE_BUFFER, seed=seed).repeat()

    def batched(ds):
        return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)

    def per_class():
        return [shuffled(x[y == c], y[y == c]) for c in range(len(target))]

    def resampled():
        return shuffled(x, y).rejection_resample(
            lambda xs, ys: ys, target_dist=target.tolist(), initial_dist=(counts / counts.sum()).tolist(), seed=seed
        )

    recipes = (
        lambda: batched(shuffled(x, y)),
        lambda: batched(shuffled(x, y)).map(lambda xs, ys: (xs, ys, tf.gather(weights, ys))),
        lambda: batched(tf.data.Dataset.sample_from_datasets(per_class(), target.tolist(), seed)),
        lambda: batched(resampled().map(lambda _, xy: xy)),
    )
    return dict(zip(STOCK, recipes, strict=True))


def ours(
    x, y, batch_size: int, seed: int, *, streams: bool = True, only: list[str] | None = None
) -> dict[str, Callable[[], tf.data.Dataset]]:
    """Builders of every registered strategy (or those in `only`), in memory and (`streams`) in its streaming form
    over `from_tensor_slices`."""
    target = _uniform(y)
    names = [name for name in strategies.names(strategies.SINGLE_LABEL) if only is None or name in only]
    ctx = strategies.StrategyContext(
        class_counts=np.bincount(y, minlength=len(target)),
        target_distribution=target,
        batch_size=batch_size,
        seed=seed,
        total_steps=_TOTAL_STEPS,
        shuffle_buffer=_SHUFFLE_BUFFER,
    )
    built = {f"imbal: {name}": functools.partial(strategies.build_pipeline, name, x, y, ctx) for name in names}
    if streams:
        examples = tf.data.Dataset.from_tensor_slices((x, y))
        built.update(
            {f"imbal stream: {name}": functools.partial(strategies.build_stream, name, examples, ctx) for name in names}
        )
    return built


def measure(ds: tf.data.Dataset, num_batches: int, minority: int = 1) -> tuple[float, np.ndarray]:
    """Seconds to read `num_batches` batches in the graph, and each batch's share of class `minority`."""
    shares = ds.map(lambda x, y, *w: tf.reduce_mean(tf.cast(tf.equal(y, tf.cast(minority, y.dtype)), tf.float32)))
    shares.take(2).reduce(0.0, lambda a, s: a + s)  # warm-up: builds the first pass, fills prefetch buffers
    start = time.perf_counter()
    values = shares.take(num_batches).batch(num_batches).get_single_element()
    return time.perf_counter() - start, values.numpy()


def run(args) -> list[dict]:
    x, y = make_data(args.examples, args.ratio, args.classes)
    rows = []
    for batch_size in args.batch_sizes:
        builders = {
            **stock_pipelines(x, y, batch_size, args.seed),
            **ours(x, y, batch_size, args.seed, only=args.only),
        }
        pipelines = {name: build() for name, build in builders.items()}
        rates, ratios, stock_ratios, shares = ({name: [] for name in pipelines} for _ in range(4))
        for _ in range(args.rounds):
            round_rate = {}
            for name, ds in pipelines.items():
                examples = args.stock_rejection_examples if name == _STOCK_REJECTION else args.measure_examples
                num_batches = max(1, examples // batch_size)
                seconds, batch_shares = measure(ds, num_batches, args.classes - 1)
                round_rate[name] = num_batches * batch_size / seconds
                shares[name].append(batch_shares)
            for name, rate in round_rate.items():
                rates[name].append(rate)
                ratios[name].append(rate / round_rate["stock: plain"])
                stock_ratios[name].append(rate / round_rate[_STOCK_REJECTION])
        for name in pipelines:
            all_shares = np.concatenate(shares[name])
            rows.append(
                {
                    "batch_size": batch_size,
                    "ratio": f"1:{args.ratio}",
                    "classes": args.classes,
                    "pipeline": name,
                    "examples_per_s": statistics.median(rates[name]),
                    "ratio_to_plain": statistics.median(ratios[name]),
                    "ratio_to_rejection_resample": statistics.median(stock_ratios[name]),
                    "minority_share_mean": float(all_shares.mean()),
                    "minority_share_std": float(all_shares.std()),
                    "examples_measured": int(len(all_shares) * batch_size),
                }
            )
    return rows


def memory_child(args) -> dict:
    """Builds the one pipeline `args.memory_child` over fresh arrays, reads some batches, reports its memory."""
    baseline = _memory.rss_mib()
    x, y = make_data(args.examples, args.ratio, args.classes)
    data = _memory.rss_mib()
    batch_size = args.batch_sizes[0]
    builders = {**stock_pipelines(x, y, batch_size, args.seed), **ours(x, y, batch_size, args.seed, streams=False)}
    start = time.perf_counter()
    examples = args.stock_rejection_examples if args.memory_child == _STOCK_REJECTION else args.memory_examples
    _, shares = measure(builders[args.memory_child](), max(1, examples // batch_size), args.classes - 1)
    return {
        "pipeline": args.memory_child,
        "baseline_mib": baseline,
        "data_mib": data,
        "peak_mib": _memory.peak_mib(),
        "minority_share": float(shares.mean()),
        "seconds": time.perf_counter() - start,
    }


def run_memory(args) -> list[dict]:
    """Every pipeline's `memory_child` in its own process; ratios against stock plain's."""
    forwarded = [
        f"--examples={args.examples}",
        f"--ratio={args.ratio}",
        f"--classes={args.classes}",
        f"--batch_sizes={args.batch_sizes[0]}",
        f"--memory_examples={args.memory_examples}",
        f"--stock_rejection_examples={args.stock_rejection_examples}",
        f"--seed={args.seed}",
    ]
    names = (
        *STOCK,
        *(f"imbal: {n}" for n in strategies.names(strategies.SINGLE_LABEL) if args.only is None or n in args.only),
    )
    rows = _memory.child_rows("benchmarks.pipeline_throughput", "--memory_child", names, forwarded)
    plain = rows[0]
    for r in rows:
        r["own_mib"] = r["peak_mib"] - r["data_mib"]
        r["peak_to_plain"] = r["peak_mib"] / plain["peak_mib"]
        r["own_to_plain"] = r["own_mib"] / (plain["peak_mib"] - plain["data_mib"])
    return rows


def _markdown(header: str, align: str, cells: list[list[str]]) -> str:
    """A Markdown table: `header` and `align` are its first two lines, `cells` one list per row."""
    return "\n".join([header, align, *("| " + " | ".join(row) + " |" for row in cells)])


def format_memory_table(rows: list[dict]) -> str:
    """Markdown table of `run_memory` rows."""
    return _markdown(
        "| pipeline | RSS after import (MiB) | with arrays (MiB) | peak (MiB) | own: peak - arrays (MiB) "
        "| peak / plain | own / plain | minority share | s |",
        "|:---|---:|---:|---:|---:|---:|---:|---:|---:|",
        [
            [r["pipeline"], *(f"{r[k]:.0f}" for k in ("baseline_mib", "data_mib", "peak_mib", "own_mib"))]
            + [f"{r['peak_to_plain']:.2f}x", f"{r['own_to_plain']:.2f}x", f"{r['minority_share']:.3f}"]
            + [f"{r['seconds']:.0f}"]
            for r in rows
        ],
    )


def format_table(rows: list[dict]) -> str:
    """Markdown table of the throughput rows."""
    return _markdown(
        "| batch | pipeline | examples/s | ratio to plain | ratio to rejection_resample "
        "| minority share per batch (mean ± std) | examples read |",
        "|---:|:---|---:|---:|---:|:---|---:|",
        [
            [str(r["batch_size"]), r["pipeline"], f"{r['examples_per_s']:,.0f}", f"{r['ratio_to_plain']:.2f}x"]
            + [f"{r['ratio_to_rejection_resample']:,.0f}x"]
            + [f"{r['minority_share_mean']:.4f} ± {r['minority_share_std']:.4f}", f"{r['examples_measured']:,}"]
            for r in rows
        ],
    )


def _parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=200_000, help="rows in the arrays")
    parser.add_argument("--ratio", type=int, choices=(9, 99, 999), default=99, help="largest:smallest class ratio")
    parser.add_argument("--classes", type=int, default=2, help="K: 2 (binary) or more (exponential long tail)")
    parser.add_argument("--only", nargs="+", help="strategies to measure (default: all); the stock recipes always run")
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[16, 256])
    parser.add_argument("--measure_examples", type=int, default=100_000, help="examples read per pipeline and round")
    parser.add_argument("--stock_rejection_examples", type=int, default=2_048)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument(
        "--memory", action="store_true", help="peak RSS per pipeline, each in its own process (first batch size)"
    )
    parser.add_argument("--memory_examples", type=int, default=51_200, help="examples read per pipeline, --memory")
    parser.add_argument("--memory_child", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = _parse_args(argv)
    if args.memory_child:
        print(json.dumps(memory_child(args)))
        return
    if args.memory:
        rows = run_memory(args)
        print(f"{args.examples:,} examples, K={args.classes} at 1:{args.ratio} in memory, batch {args.batch_sizes[0]}")
        print(format_memory_table(rows))
    else:
        rows = run(args)
        print(
            f"{args.examples:,} examples, K={args.classes} at 1:{args.ratio}, {os.cpu_count()} CPU cores, "
            f"{args.rounds} rounds"
        )
        print(format_table(rows))
    _memory.write_json(args.json, rows)


if __name__ == "__main__":
    main()
