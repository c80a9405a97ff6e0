"""Grid speed of warm runs and of seeds side by side against the plain path, in one process, with the results.

Runs the `seed_question` preset (or its first `--seeds` training seeds: 18 runs per seed) with `--workers`
local workers into fresh temporary folders, three ways: the plain path (`warm=False, side_by_side=1`: every run
builds, compiles and traces its model, the one-run path), warm runs (`warm=True, side_by_side=1`: workers keep
compiled models per shape and call several steps at once; `imbal_keras.training.warm`) and seeds side by side
(`warm=True, side_by_side=--pack`: a cell's seeds train in one compiled step; `imbal_keras.training.side_by_side`). The
order rotates over `--repeats`. Prints, per path, the wall time (workers' start-up included, report excluded),
runs/s and the ratio to the plain path; the limit (the time the runs spent training and evaluating inside
`fit`, summed over runs and divided by the workers; side by side, each run counts its share of its pack's
time); and the largest difference between each fast path's results and the plain path's (every numeric column
of results.csv but the timings).

    python -m benchmarks.warm_grids [--seeds 10] [--workers 2] [--repeats 1] [--pack 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from imbal_keras import quiet

quiet.import_tensorflow()

import numpy as np  # noqa: E402

from imbal_keras import runs  # noqa: E402
from imbal_keras.grid import presets, report, runner, sweep  # noqa: E402

_TIMINGS = ("train_seconds", "fit_seconds", "evaluation_seconds")


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
            "fast": sum(p in ("warm", "side by side") for p in paths)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10, help="training seeds of the preset (18 runs each)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1, help="times to run every path (rotating order)")
    parser.add_argument("--pack", type=int, default=sweep.DEFAULT_PACK, help="runs per pack side by side")
    args = parser.parse_args()
    spec = presets.spec_from_preset("seed_question", axes={"seed": tuple(range(args.seeds))})
    load = os.getloadavg()[0]
    paths = {
        "plain path (--nowarm)": (False, 1),
        "warm runs": (True, 1),
        f"side by side ({args.pack})": (True, args.pack),
    }
    measured = {label: [] for label in paths}
    labels = list(paths)
    for repeat in range(args.repeats):
        for label in labels[repeat % 3 :] + labels[: repeat % 3]:
            measured[label].append(_run(spec, args.workers, *paths[label]))
    print(f"seed_question preset, {args.seeds} seeds, {args.workers} workers, repeats {args.repeats}")
    print(f"{'path':<24}{'runs':>6}{'wall s':>9}{'runs/s':>9}{'x plain':>9}{'in fit s':>10}{'limit runs/s':>14}"
          f"{'fast runs':>11}")  # fmt: skip
    base = None
    for label in labels:
        seconds = statistics.median(m["seconds"] for m in measured[label])
        fit = statistics.median(m["fit"] for m in measured[label]) / args.workers
        n = measured[label][0]["runs"]
        base = base or n / seconds
        print(f"{label:<24}{n:>6}{seconds:>9.1f}{n / seconds:>9.2f}{n / seconds / base:>8.2f}x{fit:>10.1f}"
              f"{n / fit:>14.2f}{measured[label][0]['fast']:>11}")  # fmt: skip
    plain = measured[labels[0]][0]["results"]
    for label in labels[1:]:
        fast = measured[label][0]["results"].loc[plain.index]
        numeric = [c for c in plain.columns if plain[c].dtype.kind == "f" and c not in _TIMINGS]
        diff = np.abs(plain[numeric].to_numpy() - fast[numeric].to_numpy())
        worst = numeric[int(np.nanargmax(np.nanmax(diff, axis=0)))]
        print(f"{label}: largest |difference| from the plain path over {len(numeric)} result columns of "
              f"{len(plain)} runs: {np.nanmax(diff):g} ({worst})")  # fmt: skip
    print(f"load average (1 min): {load:.1f} before, {os.getloadavg()[0]:.1f} after")


if __name__ == "__main__":
    main()
