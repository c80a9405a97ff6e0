"""Runs one imbalanced-classification experiment, or a grid of them.

  python run_experiment.py --strategy=upsample
  python run_experiment.py --strategy=class_weight --weight_reduction=mean_with_sample_weight --seed=3
  python run_experiment.py --dataset=csv:creditcard.csv --label_column=Class --positive_label=1
  python run_experiment.py --strategy=none,class_weight,upsample --seed=0:10 --workers=2   # a grid
  python run_experiment.py --preset=seed_question --workers=2                            # a named grid
  python run_experiment.py --preset=seed_question --shard=3/8 --output_dir=/shared/grid  # one array-job task
  python run_experiment.py --preset=seed_question --merge --output_dir=/shared/grid      # after all shards

A setting with several comma-separated values (or a range a:b) makes a grid axis. Rerunning a grid's command
skips its finished runs. See docs/cli.md or --helpfull for every flag.
"""

from imbal_keras import quiet

quiet.import_tensorflow()

from absl import flags as absl_flags  # noqa: E402

from flags import experiment_flags, grid_flags  # noqa: E402
from imbal_keras import runs  # noqa: E402
from imbal_keras.grid import cli, dry_run  # noqa: E402
from imbal_keras.training import experiment  # noqa: E402


def main(argv):
    del argv  # Unused.
    describe_only = grid_flags.DRY_RUN.value
    if not grid_flags.is_grid():
        config = experiment_flags.to_config()
        if describe_only:
            print(dry_run.describe_run(config))
            return
        experiment.run(config, extra_files={runs.FLAGS_FILE: absl_flags.FLAGS.flags_into_string()})
        return
    sources = grid_flags.merge_sources()
    spec = None if sources is not None else grid_flags.to_spec()
    if describe_only:
        print(dry_run.describe_grid(spec, grid_flags.grid_dir(), merge_from=sources, **grid_flags.execution()))
        return
    cli.run_and_report(spec, grid_flags.grid_dir(), merge_from=sources, **grid_flags.execution())


if __name__ == "__main__":
    experiment_flags.run_main(main)
