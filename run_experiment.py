"""Runs one imbalanced-classification experiment.

  python run_experiment.py --strategy=upsample
  python run_experiment.py --strategy=class_weight --weight_reduction=mean_with_sample_weight --seed=3
  python run_experiment.py --dataset=csv:creditcard.csv --label_column=Class --positive_label=1

See --helpfull for every flag; each is a field of `imbal_keras.config.ExperimentConfig`.
"""

from imbal_keras import quiet

quiet.import_tensorflow()

from absl import flags as absl_flags  # noqa: E402

from flags import experiment_flags  # noqa: E402
from imbal_keras import experiment  # noqa: E402


def main(argv):
    del argv  # Unused.
    experiment.run(
        experiment_flags.to_config(),
        extra_files={"flags.txt": absl_flags.FLAGS.flags_into_string()},
    )


if __name__ == "__main__":
    experiment_flags.run_main(main)
