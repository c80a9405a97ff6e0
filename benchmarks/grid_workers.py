"""Grid wall time with 1 and with 2 local worker processes, side by side in one process.

Runs the same slice of the `seed_question` preset (its first `--seeds` seeds: 9 runs per seed) into fresh
temporary folders, alternating 1 and 2 workers `--repeats` times, and prints the wall time of each (workers'
start-up included, report excluded) and the median speed-up. Each worker sizes its TensorFlow pools to
cores // workers threads, so both settings use every core once.

    python -m benchmarks.grid_workers [--seeds 2] [--repeats 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from imbal_keras import quiet

quiet.import_tensorflow()

from imbal_keras import grid  # noqa: E402


def _time_grid(spec: grid.GridSpec, workers: int) -> float:
    with tempfile.TemporaryDirectory() as grid_dir:
        started = time.perf_counter()
        outcome = grid.run_grid(spec, grid_dir, workers=workers, log=lambda _: None)
        seconds = time.perf_counter() - started
    if outcome.failed:
        raise RuntimeError(f"{len(outcome.failed)} runs failed: {outcome.failed[0].error}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=2, help="seeds of the preset to run (9 runs each)")
    parser.add_argument("--repeats", type=int, default=1, help="alternating 1-worker / 2-worker repeats")
    args = parser.parse_args()
    spec = grid.spec_from_preset("seed_question", axes={"seed": tuple(range(args.seeds))})
    runs = len(grid.expand(spec))
    print(f"seed_question, {args.seeds} seeds = {runs} runs, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    times: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(args.repeats):
        for workers in (1, 2):
            times[workers].append(_time_grid(spec, workers))
            print(f"  {workers} worker(s): {times[workers][-1]:6.1f} s  ({times[workers][-1] / runs:.2f} s/run)")
    one, two = statistics.median(times[1]), statistics.median(times[2])
    print(f"speed-up of 2 workers over 1: {one / two:.2f}x (medians {one:.1f} s vs {two:.1f} s)")


if __name__ == "__main__":
    main()
