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

from imbal_keras.cli.main import main, run

__all__ = ["main"]

if __name__ == "__main__":
    run()
