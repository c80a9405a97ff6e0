"""The command: one imbalanced-classification experiment, or a grid of them.

The same program runs as `imbal-keras` (the installed console script), `python -m imbal_keras` and the
repository's `python run_experiment.py`: same flags, help and behaviour.

  imbal-keras --strategy=upsample
  imbal-keras --strategy=class_weight --weight_reduction=mean_with_sample_weight --seed=3
  imbal-keras --dataset=csv:creditcard.csv --label_column=Class --positive_label=1
  imbal-keras --strategy=none,class_weight,upsample --seed=0:10 --workers=2   # a grid
  imbal-keras --preset=seed_question --workers=2                            # a named grid
  imbal-keras --preset=seed_question --shard=3/8 --output_dir=/shared/grid  # one array-job task
  imbal-keras --preset=seed_question --merge --output_dir=/shared/grid      # after all shards

A setting with several comma-separated values (or a range a:b) makes a grid axis. Rerunning a grid's command
skips its finished runs. Ctrl-C stops it with one line and exit code 130; rerunning resumes. See docs/cli.md or
--helpfull for every flag.
"""

import multiprocessing
import os
import re
import signal
import sys


def _interrupted_at_start_up(signum, frame) -> None:
    """Ctrl-C while the program imports (TensorFlow takes seconds): nothing has been written, so leave at once
    with one line rather than an import traceback."""
    del signum, frame  # Unused.
    os.write(_STDERR, b"interrupted: at start-up, before anything ran; rerun the same command\n")
    os._exit(130)


def _may_run_a_grid(arguments: list[str]) -> bool:
    """Whether the command line looks like a grid on local workers: a preset, a worker count, or a setting with
    several values (`a,b` or a range `a:b`). Only decides whether their server starts early; a miss costs time."""
    if any(a.startswith(("--executor=ray", "--executor=inline", "--help")) for a in arguments):
        return False
    values = [a.partition("=")[2] for a in arguments if a.startswith("--")]
    return any(a.startswith(("--preset", "--workers")) for a in arguments) or any(
        "," in v or re.fullmatch(r"-?\d+:-?\d+", v) for v in values
    )


# The terminal's stderr, kept: TensorFlow's import below silences file descriptor 2 while it loads.
_STDERR = os.dup(2)
signal.signal(signal.SIGINT, _interrupted_at_start_up)

# Not in a worker, which imports this module as its parent's main module (multiprocessing's own test for that).
_in_worker = multiprocessing.parent_process() is not None or getattr(
    multiprocessing.current_process(), "_inheriting", False
)
if not _in_worker and _may_run_a_grid(sys.argv[1:]):
    # The server grid workers fork from imports TensorFlow beside this process's own import below, so the workers
    # start at once when the grid is ready (`imbal_keras.grid.launch.worker_context`).
    from imbal_keras.grid import launch, worker

    launch.start_worker_server(worker.PRELOAD)

from imbal_keras import quiet  # noqa: E402

quiet.import_tensorflow()

from absl import flags as absl_flags  # noqa: E402

from imbal_keras import runs  # noqa: E402
from imbal_keras.cli import experiment_flags, grid_flags  # noqa: E402
from imbal_keras.grid import dry_run  # noqa: E402
from imbal_keras.grid import main as grid_main  # noqa: E402
from imbal_keras.training import experiment  # noqa: E402

__all__ = ["main", "run"]


def main(argv):
    """The program after flag parsing: one run, a grid, or the dry run of either."""
    del argv  # Unused.
    # From here Ctrl-C raises KeyboardInterrupt: runs in flight remove their staging folders on the way out.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    describe_only = grid_flags.DRY_RUN.value
    if not grid_flags.is_grid():
        config = experiment_flags.to_config()
        if describe_only:
            print(dry_run.describe_run(config))
            return
        _run_one(config)
        return
    sources = grid_flags.merge_sources()
    spec = None if sources is not None else grid_flags.to_spec()
    if describe_only:
        print(dry_run.describe_grid(spec, grid_flags.grid_dir(), merge_from=sources, **grid_flags.execution()))
        return
    grid_main.run_and_report(spec, grid_flags.grid_dir(), merge_from=sources, **grid_flags.execution())


def run() -> None:
    """The console script `imbal-keras` (and `python -m imbal_keras`): parses the flags and runs `main`."""
    experiment_flags.run_main(main)


def _run_one(config) -> None:
    """One run; an output folder this call created is removed again when the run fails (nothing is written)."""
    output_dir = config.output.output_dir
    created = not os.path.exists(output_dir)
    try:
        experiment.run(config, extra_files={runs.FLAGS_FILE: absl_flags.FLAGS.flags_into_string()})
    except BaseException:
        if created and os.path.isdir(output_dir) and not os.listdir(output_dir):
            os.rmdir(output_dir)
        raise
