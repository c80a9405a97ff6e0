"""Grid speed of the default path (warm runs and packs side by side) against the plain path, in one process.

Runs four grids with `--workers` local workers into fresh temporary folders, each two ways: the plain path
(`warm=False, side_by_side=1`: every run builds, compiles and traces its model, the one-run path) and the default
path (`warm=True, side_by_side=--pack`: packs of runs of equal shapes train in one compiled step,
`imbal_keras.training.side_by_side`; what cannot pack runs warm or plain). The grids:

- `first`: the README's first grid, `--strategy=none,class_weight,upsample --seed=0:10` (every seed its own data);
- `model_function`: `--model=examples.fraud_model:build_model` (an embedding per categorical column) on the
  transactions example's table, the same 3 strategies x `--seeds` seeds;
- `cnn`: the built-in CNN on 16x16 one-channel images (an `.npz` file), the same 3 strategies x `--seeds` seeds;
- `seed_question`: the preset over its first `--preset_seeds` training seeds (48 runs per seed).

Local workers fork from a server that imports TensorFlow once per Python process
(`imbal_keras.grid.launch.worker_context`); it is started before the first grid, so neither path's times include
that import (about 5 s; the command line starts the server beside its own import of TensorFlow). The order of
the two paths alternates over `--repeats`. Prints, per grid and path, the wall time (workers' start-up included,
report excluded), runs/s and the ratio to the plain path; the limit (the time the runs spent
inside `fit`, summed over runs and divided by the workers; in a pack each run counts its share); and the largest
difference between the default path's results and the plain path's (every numeric column of results.csv but
the timings; and in the final test AUPRC).

    python -m benchmarks.warm_grids [--grids first,model_function,cnn,seed_question] [--seeds 10]
        [--preset_seeds 10] [--workers 2] [--repeats 1] [--pack 10]
"""

from __future__ import annotations

import argparse
import operator
import os
import statistics
import tempfile
import time

from imbal_keras import quiet

quiet.import_tensorflow()

import numpy as np  # noqa: E402

from examples.transactions import make_transactions  # noqa: E402
from imbal_keras import runs  # noqa: E402
from imbal_keras.grid import launch, presets, report, runner, sweep, worker  # noqa: E402

_TIMINGS = ("train_seconds", "fit_seconds", "evaluation_seconds")
_STRATEGIES = ("none", "class_weight", "upsample")
GRIDS = ("first", "model_function", "cnn", "seed_question")


def _images(path: str) -> str:
    """4,000 16x16 one-channel images of 2 classes, the positives (10%) brighter in one corner."""
    rng = np.random.default_rng(0)
    y = (rng.random(4000) < 0.1).astype(np.int64)
    x = rng.normal(size=(4000, 16, 16, 1)).astype(np.float32)
    x[y == 1, :4, :4] += 0.5
    np.savez(path, x=x, y=y)
    return path


def _specs(names: list[str], seeds: int, preset_seeds: int, folder: str) -> dict[str, sweep.GridSpec]:
    axes = {"strategy": _STRATEGIES, "seed": tuple(range(seeds))}
    table = os.path.join(folder, "transactions.csv")
    make_transactions(5000).to_csv(table, index=False)
    made = {
        "first": lambda: sweep.make_spec({}, axes),
        "model_function": lambda: sweep.make_spec(
            {
                "model": "examples.fraud_model:build_model",
                "dataset": f"csv:{table}",
                "label_column": "is_fraud",
                "categorical_columns": ("merchant_category", "country"),
                "drop_columns": ("transaction_id",),
                "time_column": "timestamp",
                "imbalance_ratio": 0,
                "steps": 500,
                "eval_every": 100,
                "batch_size": 64,
            },
            axes,
        ),  # fmt: skip
        "cnn": lambda: sweep.make_spec(
            {
                "model": "cnn",
                "dataset": f"npz:{_images(os.path.join(folder, 'images.npz'))}",
                "imbalance_ratio": 0,
                "steps": 300,
                "eval_every": 100,
            },
            axes,
        ),  # fmt: skip
        "seed_question": lambda: presets.spec_from_preset("seed_question", axes={"seed": tuple(range(preset_seeds))}),
    }
    return {name: made[name]() for name in names}


def _run(spec: sweep.GridSpec, workers: int, warm: bool, pack: int) -> dict:
    with tempfile.TemporaryDirectory() as grid_dir:
        started = time.perf_counter()
        outcome = runner.run_grid(spec, grid_dir, workers=workers, warm=warm, side_by_side=pack, log=lambda _: None)
        seconds = time.perf_counter() - started
        if outcome.failed:
            raise RuntimeError(f"{len(outcome.failed)} runs failed: {outcome.failed[0].error}")
        results, _ = report.load_runs(grid_dir)
        runs_dir = sweep.runs_dir(grid_dir)
        fit = sum(runs.read(os.path.join(runs_dir, n)).summary["fit_seconds"] for n in results["run_name"])
    paths = [o.path.split(":")[0] for o in outcome.outcomes]
    return {"seconds": seconds, "runs": len(results), "fit": fit, "results": results.set_index("run_name"),
            "packed": sum(p == "side by side" for p in paths), "warm": sum(p == "warm" for p in paths)}  # fmt: skip


def _largest_difference(plain, fast) -> str:
    fast = fast.loc[plain.index]
    numeric = [c for c in plain.columns if plain[c].dtype.kind == "f" and c not in _TIMINGS]
    diff = np.abs(plain[numeric].to_numpy() - fast[numeric].to_numpy())
    diff[np.isnan(diff)] = -1.0  # a column without values in both (NaN) is no difference
    worst = numeric[int(np.argmax(np.max(diff, axis=0)))]
    main = np.nanmax(np.abs(plain["test_average_precision"] - fast["test_average_precision"]))
    return f"{max(np.max(diff), 0.0):.2g} ({worst}, over {len(numeric)} columns); test AUPRC {main:.2g}"


def _print_rows(name: str, measured: dict, labels: list[str], workers: int) -> None:
    """One line per path of a grid: medians over the repeats, the ratio to the plain path, the limit."""
    base = None
    for label in labels:
        seconds = statistics.median(m["seconds"] for m in measured[label])
        fit = statistics.median(m["fit"] for m in measured[label]) / workers
        first = measured[label][0]
        n = first["runs"]
        base = base or n / seconds
        plain = measured[labels[0]][0]["results"]
        diff = _largest_difference(plain, first["results"]) if label != labels[0] else ""
        print(f"{name:<16}{label:<34}{n:>6}{seconds:>9.1f}{n / seconds:>9.2f}{n / seconds / base:>8.2f}x"
              f"{n / fit:>14.2f}{first['packed']:>8}{first['warm']:>6}  {diff}", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grids", default=",".join(GRIDS), help=f"comma-separated, of {', '.join(GRIDS)}")
    parser.add_argument("--seeds", type=int, default=10, help="training seeds per grid")
    parser.add_argument("--preset_seeds", type=int, default=10, help="training seeds of the preset (48 runs each)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1, help="times to run every path (alternating order)")
    parser.add_argument("--pack", type=int, default=sweep.DEFAULT_PACK, help="runs per pack side by side")
    args = parser.parse_args()
    paths = {"plain (--nowarm --side_by_side=1)": (False, 1), "default": (True, args.pack)}
    labels = list(paths)
    print(f"{args.seeds} seeds per grid ({args.preset_seeds} for the preset), {args.workers} workers, repeats "
          f"{args.repeats}, packs of {args.pack}")  # fmt: skip
    print(f"{'grid':<16}{'path':<34}{'runs':>6}{'wall s':>9}{'runs/s':>9}{'x plain':>9}{'limit runs/s':>14}"
          f"{'packed':>8}{'warm':>6}  largest difference", flush=True)  # fmt: skip
    started = time.perf_counter()
    launch.execute(operator.add, [0], workers=1, pool=launch.LocalPool(1, preload=worker.PRELOAD))
    print(f"workers' server started (imports TensorFlow once, for both paths): {time.perf_counter() - started:.1f} s",
          flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        for name, spec in _specs(args.grids.split(","), args.seeds, args.preset_seeds, folder).items():
            load = os.getloadavg()[0]
            measured = {label: [] for label in labels}
            for repeat in range(args.repeats):
                for label in labels[repeat % 2 :] + labels[: repeat % 2]:
                    measured[label].append(_run(spec, args.workers, *paths[label]))
            _print_rows(name, measured, labels, args.workers)
            print(f"  load average (1 min): {load:.1f} before, {os.getloadavg()[0]:.1f} after", flush=True)


if __name__ == "__main__":
    main()
