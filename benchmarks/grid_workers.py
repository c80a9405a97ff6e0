"""Grid wall time with 1 and with 2 local worker processes, side by side in one process.

Runs the same slice of the `seed_question` preset (its first `--seeds` training seeds: 18 runs per seed, 9
variants on 2 datasets) into fresh
temporary folders, cycling through the settings `--repeats` times, and prints the wall time of each (workers'
start-up included, report excluded) and the median speed-ups. Each worker sizes its TensorFlow pools to
cores // workers threads, so both settings use every core once. A third setting, 1 worker held to 1 thread,
shows how much of the speed-up comes from the second worker rather than from dropping the second thread
(which costs small models more in synchronisation than it gains).

    python -m benchmarks.grid_workers [--seeds 2] [--repeats 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from unittest import mock

from imbal_keras import quiet

quiet.import_tensorflow()

from imbal_keras.grid import launch, presets, runner, sweep  # noqa: E402


def _time_grid(spec: sweep.GridSpec, workers: int, threads: int | None) -> float:
    sizing = (lambda workers, cores=None: threads) if threads else launch.worker_threads
    with tempfile.TemporaryDirectory() as grid_dir, mock.patch.object(launch, "worker_threads", sizing):
        started = time.perf_counter()
        outcome = runner.run_grid(spec, grid_dir, workers=workers, log=lambda _: None)
        seconds = time.perf_counter() - started
    if outcome.failed:
        raise RuntimeError(f"{len(outcome.failed)} runs failed: {outcome.failed[0].error}")
    return seconds


SETTINGS = {  # label -> (workers, threads per worker; None = what run_grid picks)
    "1 worker": (1, None),
    "1 worker, 1 thread": (1, 1),
    "2 workers": (2, None),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=2, help="training seeds of the preset to run (18 runs each)")
    parser.add_argument("--repeats", type=int, default=1, help="times to cycle through the settings")
    args = parser.parse_args()
    spec = presets.spec_from_preset("seed_question", axes={"seed": tuple(range(args.seeds))})
    runs = len(sweep.expand(spec))
    print(f"seed_question, {args.seeds} seeds = {runs} runs, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    times: dict[str, list[float]] = {label: [] for label in SETTINGS}
    for _ in range(args.repeats):
        for label, (workers, threads) in SETTINGS.items():
            seconds = _time_grid(spec, workers, threads)
            times[label].append(seconds)
            used = threads or launch.worker_threads(workers)
            print(f"  {label:<20} ({used} thread(s) each): {seconds:6.1f} s  ({seconds / runs:.2f} s/run)")
    median = {label: statistics.median(t) for label, t in times.items()}
    two = median["2 workers"]
    for label in ("1 worker", "1 worker, 1 thread"):
        one = median[label]
        print(f"speed-up of 2 workers over {label}: {one / two:.2f}x (medians {one:.1f} s vs {two:.1f} s)")


if __name__ == "__main__":
    main()
