"""Peak memory of the rebalancing pipelines over a large input, each in its own process, against plain.

`--source stream` (default): 10M rows generated on the fly (`Dataset.range` of blocks, unbatched into examples,
16 float32 features, labels at 1:ratio), never held in memory; the streaming form of every strategy against
the plain `shuffle().repeat().batch()` pipeline over the same generated input. Building `upsample`,
`stratified` and the class-aware samplers scans the whole input once (collecting the rows of every class but the
largest), so every child first reads one full pass of the input and then `--batches` batches.

`--source memory`: the same rows as in-memory arrays; the in-memory pipelines against plain
`from_tensor_slices(...).shuffle().repeat().batch()`.

Each child reports its peak resident set size (`ru_maxrss`) and its RSS right after importing TensorFlow;
the table shows both, their difference (what the pipeline itself holds) and the peak's ratio to plain's.

  python -m benchmarks.streaming_memory --source stream --rows 10000000
  python -m benchmarks.streaming_memory --rows 2000000 --pipelines upsample sqrt_sampling progressive_sampling
"""

from __future__ import annotations

import argparse
import json
import os
import time

from benchmarks import _memory

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_FEATURES = 16
_GEN_BLOCK = 4096
_TARGET = (0.5, 0.5)
PIPELINES = (
    "plain",
    "none",
    "class_weight",
    "upsample",
    "downsample",
    "rejection",
    "stratified",
    "sqrt_sampling",
    "progressive_sampling",
)


def generated(rows: int, ratio: int, seed: int = 0):
    """`rows` examples `(x (16,), y)` computed from their row number; exact class counts are returned too."""
    import numpy as np
    import tensorflow as tf

    def block(i):
        ids = i * _GEN_BLOCK + tf.range(_GEN_BLOCK, dtype=tf.int64)
        # Row r is positive iff r % (ratio + 1) == 0: exact counts, spread evenly through the input.
        y = tf.cast(tf.equal(ids % (ratio + 1), 0), tf.int64)
        x = tf.random.stateless_normal([_GEN_BLOCK, _FEATURES], tf.stack([tf.cast(seed, tf.int64), i]))
        return x, y

    ds = tf.data.Dataset.range(rows // _GEN_BLOCK).map(block).unbatch()
    n = rows // _GEN_BLOCK * _GEN_BLOCK
    positives = -(-n // (ratio + 1))
    return ds, np.array([n - positives, positives])


def child(args) -> dict:
    """Builds one pipeline, reads `--batches` batches, returns its memory figures."""
    import numpy as np
    import tensorflow as tf

    import imbal_keras.strategies.long_tail  # noqa: F401  (registers the class-aware samplers)
    from imbal_keras import strategies

    baseline = _memory.rss_mib()
    ds, counts = generated(args.rows, args.ratio)
    ctx = strategies.StrategyContext(
        class_counts=counts,
        target_distribution=np.asarray(_TARGET),
        batch_size=args.batch_size,
        seed=0,
        total_steps=args.batches,
    )
    start = time.perf_counter()
    if args.source == "memory":
        x, y = (np.asarray(t) for t in ds.batch(args.rows).get_single_element())
        if args.pipeline == "plain":
            train = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(ctx.shuffle_buffer, seed=0).repeat()
            train = train.batch(args.batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
        else:
            train = strategies.build_pipeline(args.pipeline, x, y, ctx)
    elif args.pipeline == "plain":
        train = ds.shuffle(ctx.shuffle_buffer, seed=0).repeat().batch(args.batch_size, drop_remainder=True)
        train = train.prefetch(tf.data.AUTOTUNE)
    else:
        train = strategies.build_stream(args.pipeline, ds, ctx)
    share = train.take(args.batches).reduce(0.0, lambda a, b: a + tf.reduce_mean(tf.cast(b[1], tf.float32)))
    return {
        "pipeline": args.pipeline,
        "baseline_mib": baseline,
        "peak_mib": _memory.peak_mib(),
        "minority_share": float(share) / args.batches,
        "seconds": time.perf_counter() - start,
    }


def run(args) -> list[dict]:
    names = ["plain", *(name for name in args.pipelines if name != "plain")]
    rows = _memory.child_rows("benchmarks.streaming_memory", "--child", names, _forwarded(args))
    plain = rows[0]["peak_mib"]
    for r in rows:
        r["ratio_to_plain"] = r["peak_mib"] / plain
    return rows


def _forwarded(args) -> list[str]:
    return [
        f"--source={args.source}",
        f"--rows={args.rows}",
        f"--ratio={args.ratio}",
        f"--batch_size={args.batch_size}",
        f"--batches={args.batches}",
    ]


def format_table(rows: list[dict]) -> str:
    lines = [
        "| pipeline | RSS after import (MiB) | peak RSS (MiB) | own (MiB) | peak / plain | minority share | s |",
        "|:---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['pipeline']} | {r['baseline_mib']:.0f} | {r['peak_mib']:.0f} | "
            f"{r['peak_mib'] - r['baseline_mib']:.0f} | {r['ratio_to_plain']:.2f}x | {r['minority_share']:.3f} | "
            f"{r['seconds']:.0f} |"
        )
    return "\n".join(lines)


def _parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", choices=("stream", "memory"), default="stream")
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--ratio", type=int, choices=(9, 99, 999), default=99)
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--batches", type=int, default=2_000)
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument(
        "--pipelines", nargs="+", choices=PIPELINES, default=list(PIPELINES), help="pipelines to measure (plain always)"
    )
    parser.add_argument("--child", choices=PIPELINES, dest="pipeline", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = _parse_args(argv)
    if args.pipeline:
        print(json.dumps(child(args)))
        return
    rows = run(args)
    print(f"{args.source}: {args.rows:,} rows at 1:{args.ratio}, batch {args.batch_size}, {args.batches} batches read")
    print(format_table(rows))
    _memory.write_json(args.json, rows)


if __name__ == "__main__":
    main()
