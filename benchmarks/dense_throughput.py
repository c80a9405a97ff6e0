"""Throughput of the dense-target pipelines (weight maps, presence resampling, patch sampling) against plain tf.data.

All pipelines read the same in-memory arrays, the synthetic segmentation set (`imbal_keras.data.segmentation`:
32x32 grey images, masks with a background and two rare disc classes, about 1% of the pixels) in one process. Each
is consumed inside the graph (`take(n).map(rare pixel share).batch(n)`, as a Keras train step reads it) in
`--rounds` interleaved rounds; a row reports the median images/s, the median of the per-round ratios to its
baseline, and the share of rare-class pixels and of images holding a rare class over all rounds.

Baselines, written as a user would without this package:
- `stock: plain`: `from_tensor_slices((x, y)).shuffle().repeat().batch().prefetch()`, the baseline of the weight
  maps and of presence resampling;
- `stock: weight map`: plain plus a batch map `(x, y) -> (x, y, class_weights[y])`, the hand-written recipe
  Keras users fall back on when `class_weight` refuses 3-D targets;
- `stock: random crop`: plain with a per-image `tf.image.stateless_random_crop` of image and mask to
  `--crop`, the baseline of patch sampling (a uniform crop, no foreground forcing).

  python -m benchmarks.dense_throughput --json /tmp/dense_throughput.json
"""

from __future__ import annotations

import argparse
import os
import statistics
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import _memory  # noqa: E402
from benchmarks.pipeline_throughput import measure  # noqa: E402
from imbal_keras import data  # noqa: E402
from imbal_keras.data import dense, dense_shares  # noqa: E402

_SHUFFLE_BUFFER = 10_000
_NUM_CLASSES = 3
# Which baseline each pipeline's ratio is taken against.
BASELINE = {
    "stock: plain": "stock: plain",
    "stock: weight map": "stock: plain",
    "stock: random crop": "stock: random crop",
    "imbal: weight map": "stock: weight map",
    "imbal: presence up": "stock: plain",
    "imbal: presence stratified": "stock: plain",
    "imbal: patches (share 0.33)": "stock: random crop",
}


def make_data(num_examples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 32, 32, 1) float32 and masks (N, 32, 32) int32 of the synthetic segmentation set."""
    d = data.segmentation(num_examples=num_examples, seed=seed, validation_fraction=0.0, test_fraction=0.0)
    return d.train.x, d.train.y


def stock_pipelines(x, y, batch_size: int, crop: int, seed: int) -> dict[str, Callable[[], tf.data.Dataset]]:
    """The hand-written recipes over the same arrays."""
    weights = tf.constant(dense_shares.frequency_weights(dense_shares.pixel_counts(y, _NUM_CLASSES)), tf.float32)

    def shuffled():
        return tf.data.Dataset.from_tensor_slices((x, y)).shuffle(_SHUFFLE_BUFFER, seed=seed).repeat()

    def batched(ds):
        return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)

    def cropped(index, pair):
        image, mask = pair
        both = tf.concat([image, tf.cast(mask[..., None], tf.float32)], axis=-1)
        out = tf.image.stateless_random_crop(both, [crop, crop, 2], seed=tf.stack([index, tf.constant(seed, tf.int64)]))
        return out[..., :1], tf.cast(out[..., 1], tf.int32)

    return {
        "stock: plain": lambda: batched(shuffled()),
        "stock: weight map": lambda: batched(shuffled()).map(
            lambda xs, ys: (xs, ys, tf.gather(weights, ys)), num_parallel_calls=tf.data.AUTOTUNE
        ),
        "stock: random crop": lambda: batched(shuffled().enumerate().map(cropped, num_parallel_calls=tf.data.AUTOTUNE)),
    }


def ours(x, y, batch_size: int, crop: int, seed: int) -> dict[str, Callable[[], tf.data.Dataset]]:
    """This package's pipelines over the same arrays."""
    weights = dense_shares.frequency_weights(dense_shares.pixel_counts(y, _NUM_CLASSES))
    contains = dense_shares.presence(y, _NUM_CLASSES)
    common = {"batch_size": batch_size, "seed": seed}
    return {
        "imbal: weight map": lambda: dense.weighted(x, y, class_weights=weights, **common),
        "imbal: presence up": lambda: dense.presence_resampled(x, y, contains=contains, method="up", **common),
        "imbal: presence stratified": lambda: dense.presence_resampled(
            x, y, contains=contains, method="stratified", **common
        ),
        "imbal: patches (share 0.33)": lambda: dense.patches(x, y, options=dense.Patches(size=(crop, crop)), **common),
    }


def _rare_image_share(ds: tf.data.Dataset, num_batches: int) -> float:
    """Share of images (crops) in `num_batches` batches that hold a pixel of a rare class (not in the timing)."""
    holds = ds.take(num_batches).map(lambda x, y, *w: tf.reduce_any(tf.reshape(y > 0, [tf.shape(y)[0], -1]), axis=1))
    return float(np.concatenate([b.numpy() for b in holds]).mean())


def run(args) -> list[dict]:
    x, y = make_data(args.examples, args.seed)
    rows = []
    for batch_size in args.batch_sizes:
        builders = {
            **stock_pipelines(x, y, batch_size, args.crop, args.seed),
            **ours(x, y, batch_size, args.crop, args.seed),
        }
        pipelines = {name: build() for name, build in builders.items()}
        num_batches = max(1, args.measure_examples // batch_size)
        rates: dict[str, list[float]] = {name: [] for name in pipelines}
        ratios: dict[str, list[float]] = {name: [] for name in pipelines}
        pixel_shares: dict[str, list[np.ndarray]] = {name: [] for name in pipelines}
        for _ in range(args.rounds):
            round_rate = {}
            for name, ds in pipelines.items():
                # measure() reports each batch's share of class 1; the rare pixels are classes 1 and 2.
                seconds, shares = measure(ds.map(lambda xs, ys, *w: (xs, tf.minimum(ys, 1), *w)), num_batches)
                round_rate[name] = num_batches * batch_size / seconds
                pixel_shares[name].append(shares)
            for name, rate in round_rate.items():
                rates[name].append(rate)
                ratios[name].append(rate / round_rate[BASELINE[name]])
        for name, ds in pipelines.items():
            rows.append(
                {
                    "batch_size": batch_size,
                    "pipeline": name,
                    "baseline": BASELINE[name],
                    "images_per_s": statistics.median(rates[name]),
                    "ratio_to_baseline": statistics.median(ratios[name]),
                    "rare_pixel_share": float(np.concatenate(pixel_shares[name]).mean()),
                    "rare_image_share": _rare_image_share(ds, num_batches),
                }
            )
    return rows


def format_table(rows: list[dict]) -> str:
    """Markdown table of the rows."""
    lines = [
        "| batch | pipeline | images/s | ratio to its baseline | baseline | rare pixel share "
        "| images with a rare class |",
        "|---:|:---|---:|---:|:---|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['batch_size']} | {r['pipeline']} | {r['images_per_s']:,.0f} | {r['ratio_to_baseline']:.2f}x "
            f"| {r['baseline']} | {r['rare_pixel_share']:.4f} | {r['rare_image_share']:.3f} |"
        )
    return "\n".join(lines)


def _parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=4_096, help="images in the arrays")
    parser.add_argument("--crop", type=int, default=16, help="patch height and width")
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--measure_examples", type=int, default=16_384, help="images read per pipeline and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the rows to this JSON file")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = _parse_args(argv)
    rows = run(args)
    print(
        f"{args.examples:,} images 32x32, crops {args.crop}x{args.crop}, {os.cpu_count()} CPU cores, "
        f"{args.rounds} rounds"
    )
    print(format_table(rows))
    _memory.write_json(args.json, rows)


if __name__ == "__main__":
    main()
