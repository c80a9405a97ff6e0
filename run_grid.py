"""Runs a comparison grid: every combination of the axes, every seed its own run; then tables and a report.

  python run_grid.py --preset=seed_question --workers=2 --output_dir=grids/seed_question
  python run_grid.py --strategies=none,upsample,class_weight --seeds=5 --steps=500 --output_dir=grids/mine
  python run_grid.py --preset=seed_question --shard=3/8 --output_dir=/shared/grid   # one array-job task
  python run_grid.py --merge --output_dir=/shared/grid                              # after all shards

Rerunning the same command skips finished runs. See the README (Comparison grids) and --helpfull.
"""

from imbal_keras import quiet

quiet.import_tensorflow()

from flags import experiment_flags, grid_flags  # noqa: E402
from imbal_keras import grid, report  # noqa: E402
from imbal_keras.errors import UserInputError  # noqa: E402


def main(argv):
    del argv  # Unused.
    grid_dir = grid_flags.grid_dir()
    sources = grid_flags.merge_sources()
    if sources is not None:
        spec = grid.load_spec(grid_dir)
        print(f"Copied {grid.collect(sources, grid_dir)} finished runs into {grid_dir}")
    else:
        spec = grid_flags.to_spec()
        execution = grid_flags.execution()
        outcome = grid.run_grid(spec, grid_dir, **execution)
        if outcome.failed:
            raise UserInputError(
                f"{len(outcome.failed)} of {outcome.total} runs failed (see the FAILED lines); "
                "rerun the same command to retry them"
            )
        if execution["shard_count"] > 1:
            print(f"Shard done. When every shard is: python run_grid.py --merge --output_dir={grid_dir}")
            return
    missing = len({c.run_name for c in grid.expand(spec, grid_dir)} - grid.finished_runs(grid_dir))
    if missing:
        print(f"{missing} runs of the grid are not finished yet; the report covers the finished ones")
    for path in report.build(grid_dir):
        print(f"wrote {path}")
    print(f"TensorBoard (HParams tab): tensorboard --logdir {grid_dir}")


if __name__ == "__main__":
    experiment_flags.run_main(main)
