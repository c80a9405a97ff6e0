"""Grid speed of warm runs against the plain path, side by side in one process, with the same results.

Runs the `seed_question` preset (or its first `--seeds` training seeds: 18 runs per seed) with `--workers`
local workers twice into fresh temporary folders: with `warm=False` (every run builds, compiles and traces its
model: the one-run path) and with `warm=True` (workers keep compiled models per shape and call several steps at
once; `imbal_keras.warm`). The order alternates over `--repeats`. Prints, per path, the wall time (workers'
start-up included, report excluded), runs/s and the ratio; the limit (the time the runs spent training and
evaluating inside `fit`, summed over runs and divided by the workers); and the largest difference between the
two paths' results (every numeric column of results.csv but the timings).

    python -m benchmarks.warm_grids [--seeds 10] [--workers 2] [--repeats 1]
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

from imbal_keras import launch, report, runs, sweep  # noqa: E402

_TIMINGS = ("train_seconds", "fit_seconds", "evaluation_seconds")


def _run(spec: sweep.GridSpec, workers: int, warm: bool) -> dict:
    with tempfile.TemporaryDirectory() as grid_dir:
        started = time.perf_counter()
        outcome = launch.run_grid(spec, grid_dir, workers=workers, warm=warm, log=lambda _: None)
        seconds = time.perf_counter() - started
        if outcome.failed:
            raise RuntimeError(f"{len(outcome.failed)} runs failed: {outcome.failed[0].error}")
        results, _ = report.load_runs(grid_dir)
        runs_dir = sweep.runs_dir(grid_dir)
        fit = sum(runs.read(os.path.join(runs_dir, n)).summary["fit_seconds"] for n in results["run_name"])
    paths = [o.path.split(":")[0] for o in outcome.outcomes]
    return {"seconds": seconds, "runs": len(results), "fit": fit, "results": results.set_index("run_name"),
            "warm": paths.count("warm")}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10, help="training seeds of the preset (18 runs each)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1, help="times to run both paths (alternating order)")
    args = parser.parse_args()
    spec = sweep.spec_from_preset("seed_question", axes={"seed": tuple(range(args.seeds))})
    load = os.getloadavg()[0]
    measured = {False: [], True: []}
    for repeat in range(args.repeats):
        for warm in (False, True) if repeat % 2 == 0 else (True, False):
            measured[warm].append(_run(spec, args.workers, warm))
    rows = []
    for warm, label in ((False, "plain path (--nowarm)"), (True, "warm runs (default)")):
        seconds = statistics.median(m["seconds"] for m in measured[warm])
        fit = statistics.median(m["fit"] for m in measured[warm]) / args.workers
        n = measured[warm][0]["runs"]
        rows.append((label, n, seconds, n / seconds, fit, measured[warm][0]["warm"]))
    base = rows[0][3]
    print(f"seed_question preset, {args.seeds} seeds, {args.workers} workers, repeats {args.repeats}")
    print(f"{'path':<24}{'runs':>6}{'wall s':>9}{'runs/s':>9}{'x plain':>9}{'in fit s':>10}{'limit runs/s':>14}"
          f"{'warm runs':>11}")  # fmt: skip
    for label, n, seconds, speed, fit, warm_runs in rows:
        print(f"{label:<24}{n:>6}{seconds:>9.1f}{speed:>9.2f}{speed / base:>8.2f}x{fit:>10.1f}{n / fit:>14.2f}"
              f"{warm_runs:>11}")  # fmt: skip
    plain, fast = measured[False][0]["results"], measured[True][0]["results"].loc[measured[False][0]["results"].index]
    numeric = [c for c in plain.columns if plain[c].dtype.kind == "f" and c not in _TIMINGS]
    diff = np.nanmax(np.abs(plain[numeric].to_numpy() - fast[numeric].to_numpy()))
    print(f"largest |difference| between the paths over {len(numeric)} result columns of {len(plain)} runs: {diff:g}")
    print(f"load average (1 min): {load:.1f} before, {os.getloadavg()[0]:.1f} after")


if __name__ == "__main__":
    main()
